package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/moim/moim/config"
	"github.com/moim/moim/db/missiondb"
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
	c, err := (missiondb.Points{}).Check(ctx, bdb)
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

// pointsHint is the all-in-one banner's line on giving yourself points:
// the admin adjustment for the bootstrap admin, as curl. The password is
// shown only when it was generated (the banner shows it anyway); with a
// configured one curl asks for it.
func pointsHint(cfg *config.Config, url, memberID string, showPassword bool) string {
	cred := cfg.Admin.User
	if showPassword {
		cred += ":" + cfg.Admin.Password
	}
	return fmt.Sprintf(`Points:    curl -u '%s' -H 'Content-Type: application/json' -d '{"member_id":"%s","amount":10000,"reason":"local testing"}' %s/v1/admin/points/adjustments`,
		cred, memberID, url)
}
