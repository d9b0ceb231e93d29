// Command moim is the operator's command: with no arguments it runs the whole
// system in one process (SQLite and an in-memory Redis unless configured);
// `moim migrate up|down|status` manages the schema. See `moim help`.
package main

import (
	"os"

	"github.com/moim/moim/cmd/internal/app"
)

func main() { os.Exit(app.MoimMain()) }
