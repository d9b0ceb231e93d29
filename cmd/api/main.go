// Command api runs moim's api process; see the README for its configuration.
package main

import (
	"os"

	"github.com/moim/moim/cmd/internal/app"
)

func main() { os.Exit(app.Main("moim-api", app.RoleAPI)) }
