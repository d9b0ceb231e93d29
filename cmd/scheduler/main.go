// Command scheduler runs moim's scheduler process; see the README for its configuration.
package main

import (
	"os"

	"github.com/moim/moim/cmd/internal/app"
)

func main() { os.Exit(app.Main("moim-scheduler", app.RoleScheduler)) }
