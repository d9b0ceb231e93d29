package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/moim/moim/db"
)

// pointsCmd runs `moim points check`: every member's balance must equal
// the sum of their ledger entries. A mismatch is listed and fails the
// command, so a cron job or a deploy step notices.
func pointsCmd(ctx context.Context, env Env) error {
	if len(env.Args) == 0 || env.Args[0] != "check" {
		return errors.New("points needs a subcommand: check")
	}
	env.Args = env.Args[1:]
	cfg, _, err := Setup(env)
	if err != nil {
		return err
	}
	bdb, err := OpenDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer bdb.Close()
	c, err := (db.Points{}).Check(ctx, bdb)
	if err != nil {
		return err
	}
	if len(c.Mismatches) == 0 {
		fmt.Fprintf(env.Stdout, "ok: %d members, balances equal the sum of their entries\n", c.Members)
		return nil
	}
	for _, m := range c.Mismatches {
		balance := fmt.Sprint(m.Balance)
		if !m.HasBalance {
			balance = "missing"
		}
		fmt.Fprintf(env.Stdout, "mismatch: member %s balance %s, entries sum to %d\n", m.MemberID, balance, m.Sum)
	}
	return fmt.Errorf("points check: %d of %d members' balances differ from their entries", len(c.Mismatches), c.Members)
}
