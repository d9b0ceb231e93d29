package app

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"

	"github.com/moim/moim/config"
	"github.com/moim/moim/db"
)

const moimUsage = `moim — people matching, rooms and missions on a job/worker backbone.

Usage:
  moim [flags]                  run api + worker + scheduler + outbox relay in one process
  moim api|worker|scheduler     run one process role
  moim migrate up|down|status   apply, roll back (last group) or list migrations
  moim admin create --email A   create an admin member (or promote one); see moim admin
  moim points check             check every balance equals the sum of its entries (non-zero exit if not)
  moim help                     this text

Flags (every key also has a MOIM_* environment variable; see config.example.yaml):
`

// MoimMain is cmd/moim's main: it returns the exit code.
func MoimMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := Env{Args: os.Args[1:], Getenv: os.Getenv, Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin}
	return exitCode("moim", Moim(ctx, env))
}

// Moim runs the moim command line: the all-in-one runner, one role, or the
// migrations.
func Moim(ctx context.Context, env Env) error {
	if len(env.Args) == 0 || len(env.Args[0]) > 0 && env.Args[0][0] == '-' {
		if wantsHelp(env.Args) {
			return usage(env.Stdout)
		}
		return Run(ctx, env, RoleAll)
	}
	sub, rest := env.Args[0], env.Args[1:]
	env.Args = rest
	switch sub {
	case "run":
		return Run(ctx, env, RoleAll)
	case "api":
		return Run(ctx, env, RoleAPI)
	case "worker":
		return Run(ctx, env, RoleWorker)
	case "scheduler":
		return Run(ctx, env, RoleScheduler)
	case "migrate":
		return migrateCmd(ctx, env)
	case "admin":
		return adminCmd(ctx, env)
	case "points":
		return pointsCmd(ctx, env)
	case "help":
		return usage(env.Stdout)
	default:
		return fmt.Errorf("unknown command %q (try: moim help)", sub)
	}
}

// wantsHelp reports whether flags ask for help before a "--".
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// usage writes the commands, then every configuration flag.
func usage(w io.Writer) error {
	_, err := fmt.Fprintf(w, "%s%s", moimUsage, config.FlagSet("moim").FlagUsages())
	return err
}

func migrateCmd(ctx context.Context, env Env) error {
	if len(env.Args) == 0 {
		return fmt.Errorf("migrate needs one of: up, down, status")
	}
	action := env.Args[0]
	env.Args = env.Args[1:]
	cfg, logger, err := Setup(env)
	if err != nil {
		return err
	}
	bdb, err := OpenDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer bdb.Close()
	switch action {
	case "up":
		applied, err := db.MigrateUp(ctx, bdb)
		if err != nil {
			return err
		}
		if len(applied) == 0 {
			fmt.Fprintln(env.Stdout, "database is up to date")
		}
		for _, name := range applied {
			fmt.Fprintln(env.Stdout, "applied", name)
		}
	case "down":
		rolled, err := db.MigrateDown(ctx, bdb)
		if err != nil {
			return err
		}
		if len(rolled) == 0 {
			fmt.Fprintln(env.Stdout, "nothing to roll back")
		}
		for _, name := range rolled {
			fmt.Fprintln(env.Stdout, "rolled back", name)
		}
	case "status":
		states, err := db.MigrationStatus(ctx, bdb)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MIGRATION\tSTATUS\tGROUP")
		for _, s := range states {
			status := "pending"
			if s.Applied {
				status = "applied"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\n", s.Name, status, s.GroupID)
		}
		return tw.Flush()
	default:
		return fmt.Errorf("unknown migrate action %q: use up, down or status", action)
	}
	logger.Debug("migrate done", "action", action)
	return nil
}
