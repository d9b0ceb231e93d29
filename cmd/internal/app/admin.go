package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/auth"
	"github.com/moim/moim/config"
	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

// localAdminEmail is the bootstrap admin of the all-in-one run when
// admin.email is not set, so `make run` always has an admin to log in as.
const localAdminEmail = "admin@moim.localhost"

// adminPasswordEnv lets `moim admin create` read the new admin's password
// from the environment when stdin is not used.
const adminPasswordEnv = "MOIM_NEW_ADMIN_PASSWORD"

const adminUsage = `Usage:
  moim admin create --email ADDRESS [--nickname NAME] [--password-stdin]

Creates an admin member, or makes the existing member with that e-mail an
admin (keeping their password). The password of a new admin is read from
the first line of stdin with --password-stdin, otherwise from the
` + adminPasswordEnv + ` environment variable; it is never a flag, so it stays
out of shell history and process lists. The usual configuration (--config,
MOIM_DATABASE_URL, ...) says which database to use.
`

// passwordHasher builds the argon2id hasher from the configuration. Hashes
// run at most GOMAXPROCS at a time: more would only queue for the CPU while
// holding their memory.
func passwordHasher(cfg *config.Config) (*auth.Hasher, error) {
	p := auth.DefaultPasswordParams()
	p.Memory = uint32(cfg.Auth.PasswordMemoryKiB)
	p.Iterations = uint32(cfg.Auth.PasswordIterations)
	p.Parallelism = uint8(cfg.Auth.PasswordParallelism)
	h, err := auth.NewHasher(p, runtime.GOMAXPROCS(0))
	if err != nil {
		return nil, fmt.Errorf("auth.password_*: %w", err)
	}
	return h, nil
}

// adminCmd runs `moim admin ...`.
func adminCmd(ctx context.Context, env Env) error {
	if len(env.Args) == 0 || env.Args[0] != "create" {
		_, _ = io.WriteString(env.Stderr, adminUsage)
		return errors.New("admin needs a subcommand: create")
	}
	fs := pflag.NewFlagSet("moim admin create", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	email := fs.String("email", "", "e-mail address of the admin")
	nickname := fs.String("nickname", "", "nickname of a new admin (default: the e-mail's local part)")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin")
	// Everything the flag set does not know is configuration (--config,
	// --database.url, ...) and goes to Setup.
	fs.ParseErrorsAllowlist.UnknownFlagsHandling = pflag.IgnoreUnknownFlag
	if err := fs.Parse(env.Args[1:]); err != nil {
		return fmt.Errorf("admin create: %w\n%s", err, adminUsage)
	}
	env.Args = configArgs(env.Args[1:], "email", "nickname", "password-stdin")
	if *email == "" {
		return fmt.Errorf("admin create: --email is required\n%s", adminUsage)
	}
	addr, err := domain.NormalizeEmail("email", *email)
	if err != nil {
		return fmt.Errorf("admin create: %s", domain.ErrorMessage(err))
	}
	var password string
	if *fromStdin {
		if env.Stdin == nil {
			return errors.New("admin create: --password-stdin but no stdin")
		}
		line, err := bufio.NewReader(env.Stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("admin create: read password: %w", err)
		}
		password = strings.TrimRight(line, "\r\n")
	} else {
		password = env.Getenv(adminPasswordEnv)
	}

	cfg, logger, err := Setup(env)
	if err != nil {
		return err
	}
	hasher, err := passwordHasher(cfg)
	if err != nil {
		return err
	}
	bdb, err := OpenDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer bdb.Close()
	res, err := ensureAdmin(ctx, bdb, hasher, addr, *nickname, password, false)
	if err != nil {
		return fmt.Errorf("admin create: %w", err)
	}
	logger.Debug("admin create done", "member_id", res.member.ID)
	switch {
	case res.created:
		fmt.Fprintf(env.Stdout, "created admin %s (%s, id %s)\n", res.member.Email, res.member.Nickname, res.member.ID)
	case res.promoted:
		fmt.Fprintf(env.Stdout, "made member %s (%s, id %s) an admin; their password is unchanged\n", res.member.Email, res.member.Nickname, res.member.ID)
	default:
		fmt.Fprintf(env.Stdout, "%s is already an admin (id %s); nothing changed\n", res.member.Email, res.member.ID)
	}
	return nil
}

// configArgs drops the admin command's own flags (and their values) from
// args, leaving the configuration flags.
func configArgs(args []string, own ...string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		name, _, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if strings.HasPrefix(args[i], "--") && slices.Contains(own, name) {
			if !hasValue && name != "password-stdin" && i+1 < len(args) {
				i++ // the value is the next argument
			}
			continue
		}
		out = append(out, args[i])
	}
	return out
}

type ensureResult struct {
	member   *domain.Member
	created  bool
	promoted bool
	reset    bool
}

// ensureAdmin makes email an admin: it creates the member with password (a
// nickname derived from the address when none is given), or promotes the
// existing one. resetPassword also sets an existing member's password to
// password, which the all-in-one bootstrap wants (its admin password may be
// generated anew at each start) and `moim admin create` does not.
func ensureAdmin(ctx context.Context, bdb *bun.DB, hasher *auth.Hasher, email, nickname, password string, resetPassword bool) (ensureResult, error) {
	members := db.Members{}
	now := time.Now().UTC().Truncate(time.Microsecond)
	m, err := members.FindByEmail(ctx, bdb, email)
	switch {
	case err == nil:
		res := ensureResult{member: m}
		if !m.IsAdmin() {
			if err := members.SetRole(ctx, bdb, m.ID, domain.RoleAdmin, now); err != nil {
				return res, err
			}
			m.Role, res.promoted = domain.RoleAdmin, true
		}
		if resetPassword {
			ok, _, err := hasher.Verify(ctx, m.PasswordHash, password)
			if err != nil {
				return res, err
			}
			if !ok {
				hash, err := hasher.Hash(ctx, password)
				if err != nil {
					return res, err
				}
				if _, err := members.Update(ctx, bdb, m.ID, domain.MemberUpdate{PasswordHash: &hash}, now); err != nil {
					return res, err
				}
				res.reset = true
			}
		}
		return res, nil
	case domain.ErrorCode(err) != domain.ENOTFOUND:
		return ensureResult{}, err
	}

	if err := domain.ValidatePassword("password", password); err != nil {
		return ensureResult{}, fmt.Errorf("password (stdin or %s): %s", adminPasswordEnv, domain.ErrorMessage(err))
	}
	if nickname == "" {
		nickname, _, _ = strings.Cut(email, "@")
		if len([]rune(nickname)) < domain.MinNicknameLen {
			nickname = "admin"
		}
		if r := []rune(nickname); len(r) > domain.MaxNicknameLen {
			nickname = string(r[:domain.MaxNicknameLen])
		}
	}
	if nickname, err = domain.NormalizeNickname(nickname); err != nil {
		return ensureResult{}, fmt.Errorf("nickname: %s", domain.ErrorMessage(err))
	}
	hash, err := hasher.Hash(ctx, password)
	if err != nil {
		return ensureResult{}, err
	}
	m = &domain.Member{
		Email:        email,
		PasswordHash: hash,
		Nickname:     nickname,
		Prefs:        domain.DefaultNotificationPrefs(),
		Role:         domain.RoleAdmin,
		CreatedAt:    now,
		UpdatedAt:    now,
	}
	if err := members.Create(ctx, bdb, m); err != nil {
		if domain.ErrorCode(err) == domain.ENICKNAMETAKEN {
			return ensureResult{}, fmt.Errorf("nickname %q is taken; choose another with --nickname", nickname)
		}
		return ensureResult{}, err
	}
	return ensureResult{member: m, created: true}, nil
}
