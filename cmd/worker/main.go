// Command worker runs moim's worker process; see the README for its configuration.
package main

import (
	"os"

	"github.com/moim/moim/cmd/internal/app"
)

func main() { os.Exit(app.Main("moim-worker", app.RoleWorker)) }
