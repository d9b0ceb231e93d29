package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/moim/moim/cmd/internal/loadenv"
	"github.com/moim/moim/db"
	"github.com/moim/moim/jobs"
)

// recorder is a query hook keeping the SQL of the queries run under a
// context it marked.
type recorder struct {
	mu      sync.Mutex
	queries []string
}

type recordKey struct{}

func (r *recorder) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (r *recorder) AfterQuery(ctx context.Context, ev *bun.QueryEvent) {
	if ctx.Value(recordKey{}) == nil {
		return
	}
	r.mu.Lock()
	r.queries = append(r.queries, ev.Query)
	r.mu.Unlock()
}

// closeSQL runs the worker's close of mission i of set s and returns its
// statements as sent.
func closeSQL(ctx context.Context, bdb *bun.DB, rec *recorder, s missionSet, i int, now time.Time) ([]string, error) {
	rec.mu.Lock()
	rec.queries = nil
	rec.mu.Unlock()
	h := &jobs.MissionTransitionHandler{DB: bdb, Logger: slog.New(slog.DiscardHandler), NowFunc: func() time.Time { return now }}
	trs, err := h.Transition(context.WithValue(ctx, recordKey{}, true), s.first+int64(i))
	if err != nil {
		return nil, err
	}
	if len(trs) != 1 {
		return nil, fmt.Errorf("mission %d: %d transitions, want one close", s.first+int64(i), len(trs))
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.queries, nil
}

// script is the close of one mission as a template over the mission:
// statements whose varying parts are placeholders.
type script struct {
	members    int
	statements []string
}

// Placeholders: {mid}; {mJ} and {mmJ} for slot J's member and membership
// row ids; {uniq} for a fresh unique id. A placeholder inside a quoted
// literal is rendered as a concatenation by pgbench.
var (
	quoted = regexp.MustCompile(`'(?:[^']|'')*'`)
	number = regexp.MustCompile(`\b\d+\b`)
	digits = regexp.MustCompile(`\d+`) // inside a key or "lc<id>"
	// rand.Text's alphabet, lowercased: the public ids NewPublicID makes.
	publicID = regexp.MustCompile(`^[a-z2-7]{26}$`)
)

// templateOf makes a script of the statements of mission i's close.
func templateOf(stmts []string, s missionSet, i int) script {
	names := map[string]string{strconv.FormatInt(s.first+int64(i), 10): "{mid}"}
	for j := range s.members {
		m, mm := s.member(i, j)
		names[strconv.FormatInt(m, 10)] = fmt.Sprintf("{m%d}", j)
		names[strconv.FormatInt(mm, 10)] = fmt.Sprintf("{mm%d}", j)
	}
	nums := func(x string, re *regexp.Regexp) string {
		return re.ReplaceAllStringFunc(x, func(n string) string {
			if v, ok := names[n]; ok {
				return v
			}
			return n
		})
	}
	out := script{members: s.members}
	for _, st := range stmts {
		// Numbers outside literals, keys inside them ("mission-payout:…"),
		// member public ids ("lc<id>"), and fresh public ids.
		var b strings.Builder
		last := 0
		for _, loc := range quoted.FindAllStringIndex(st, -1) {
			b.WriteString(nums(st[last:loc[0]], number))
			lit := st[loc[0]:loc[1]]
			body := lit[1 : len(lit)-1]
			switch {
			case publicID.MatchString(body):
				lit = "'{uniq}'"
			case strings.HasPrefix(body, "ob_") && publicID.MatchString(body[3:]):
				lit = "'ob_{uniq}'" // an outbox task id
			case strings.HasPrefix(body, "mission-") || strings.HasPrefix(body, "lc"):
				lit = "'" + nums(body, digits) + "'"
			}
			b.WriteString(lit)
			last = loc[1]
		}
		b.WriteString(nums(st[last:], number))
		out.statements = append(out.statements, b.String())
	}
	return out
}

// uniqSQL is a fresh 26-character id in PostgreSQL.
const uniqSQL = "substr(md5(random()::text), 1, 26)"

var placeholder = regexp.MustCompile(`\{(mid|m\d+|mm\d+|uniq)\}`)

// forMission renders the statements for mission i of set s, as Go sends
// them.
func (sc script) forMission(s missionSet, i int, uniq func() string) []string {
	vals := map[string]string{"mid": strconv.FormatInt(s.first+int64(i), 10)}
	for j := range s.members {
		m, mm := s.member(i, j)
		vals[fmt.Sprintf("m%d", j)] = strconv.FormatInt(m, 10)
		vals[fmt.Sprintf("mm%d", j)] = strconv.FormatInt(mm, 10)
	}
	out := make([]string, len(sc.statements))
	for k, st := range sc.statements {
		out[k] = placeholder.ReplaceAllStringFunc(st, func(p string) string {
			name := p[1 : len(p)-1]
			if name == "uniq" {
				return uniq()
			}
			return vals[name]
		})
	}
	return out
}

// pgbench renders the script for pgbench: the mission from a sequence,
// its rows computed from it, literals with placeholders as
// concatenations.
func (sc script) pgbench(s missionSet) string {
	var b strings.Builder
	b.WriteString("SELECT nextval('loadclose_baseline') AS i \\gset\n")
	fmt.Fprintf(&b, "\\set mid %d + :i\n", s.first)
	for j := range s.members {
		// pool[(i·members+j) % len(pool)] is consecutive ids from pool[0].
		fmt.Fprintf(&b, "\\set m%d %d + ((:i * %d + %d) %% %d)\n", j, s.pool[0], s.members, j, len(s.pool))
		fmt.Fprintf(&b, "\\set mm%d %d + :i * %d + %d\n", j, s.mmFirst, s.members, j)
	}
	for _, st := range sc.statements {
		st = quoted.ReplaceAllStringFunc(st, func(lit string) string {
			if !placeholder.MatchString(lit) {
				return lit
			}
			parts := []string{}
			body := lit[1 : len(lit)-1]
			last := 0
			for _, loc := range placeholder.FindAllStringIndex(body, -1) {
				if loc[0] > last {
					parts = append(parts, "'"+body[last:loc[0]]+"'")
				}
				if name := body[loc[0]+1 : loc[1]-1]; name == "uniq" {
					parts = append(parts, uniqSQL)
				} else {
					parts = append(parts, ":"+name)
				}
				last = loc[1]
			}
			if last < len(body) {
				parts = append(parts, "'"+body[last:]+"'")
			}
			if len(parts) == 1 {
				return parts[0]
			}
			return "(" + strings.Join(parts, " || ") + ")"
		})
		st = placeholder.ReplaceAllStringFunc(st, func(p string) string { return ":" + p[1:len(p)-1] })
		// pgbench reads one statement per line.
		b.WriteString(strings.ReplaceAll(st, "\n", " ") + ";\n")
	}
	return b.String()
}

// anyPublicID matches public ids anywhere, to compare two missions'
// statements.
var anyPublicID = regexp.MustCompile(`[a-z2-7]{26}`)

// recordClose records the worker's closes of missions 0 and 1 of set s,
// makes the script of the first and checks that it renders the second's
// statements (public ids aside), so no number was mistaken for a row id.
func recordClose(ctx context.Context, bdb *bun.DB, s missionSet, now time.Time) (script, error) {
	rec := &recorder{}
	bdb.AddQueryHook(rec)
	first, err := closeSQL(ctx, bdb, rec, s, 0, now)
	if err != nil {
		return script{}, err
	}
	second, err := closeSQL(ctx, bdb, rec, s, 1, now)
	if err != nil {
		return script{}, err
	}
	rec.mu.Lock()
	rec.queries = nil
	rec.mu.Unlock()
	sc := templateOf(first, s, 0)
	got := sc.forMission(s, 1, func() string { return "x" })
	if len(got) != len(second) {
		return sc, fmt.Errorf("the closes of two missions ran %d and %d statements", len(first), len(second))
	}
	for k := range got {
		a := anyPublicID.ReplaceAllString(got[k], "x")
		b := anyPublicID.ReplaceAllString(quoted.ReplaceAllStringFunc(second[k], func(l string) string {
			if publicID.MatchString(l[1 : len(l)-1]) {
				return "'x'"
			}
			return l
		}), "x")
		if a != b && !strings.Contains(b, "INSERT INTO \"outbox\"") {
			return sc, fmt.Errorf("the script does not render the second close:\n%s\n%s", a, b)
		}
	}
	return sc, nil
}

// runBaseline closes missions 2… of set s (0 and 1 were recorded) with
// the script: by pgbench on PostgreSQL when it is on PATH, else from Go.
// It returns how many missions it closed, the time taken and how it ran.
func runBaseline(ctx context.Context, env *loadenv.Env, sc script, s missionSet, p params) (int, time.Duration, string, error) {
	left := p.n - 2
	if env.Backend == "postgres" || env.Backend == "postgresql" {
		if path, err := exec.LookPath("pgbench"); err == nil {
			return runPgbench(ctx, env, path, sc, s, p.workers, left)
		}
		fmt.Fprintln(os.Stderr, "pgbench is not on PATH: the baseline runs the same SQL straight from Go")
	}
	n, d, err := runFromGo(ctx, env.DB, sc, s, p.workers, left)
	return n, d, fmt.Sprintf("the same SQL from Go over database/sql, %d connections", p.workers), err
}

// runPgbench runs the script with pgbench, clients workers, each closing
// left/workers missions, and takes its time from pgbench's own rate
// (without connection set-up).
func runPgbench(ctx context.Context, env *loadenv.Env, path string, sc script, s missionSet, workers, left int) (int, time.Duration, string, error) {
	if _, err := env.DB.ExecContext(ctx, "DROP SEQUENCE IF EXISTS loadclose_baseline"); err != nil {
		return 0, 0, "", err
	}
	if _, err := env.DB.ExecContext(ctx, "CREATE SEQUENCE loadclose_baseline START 2"); err != nil {
		return 0, 0, "", err
	}
	f, err := os.CreateTemp("", "loadclose-*.sql")
	if err != nil {
		return 0, 0, "", err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(sc.pgbench(s)); err != nil {
		return 0, 0, "", err
	}
	if err := f.Close(); err != nil {
		return 0, 0, "", err
	}
	per := left / workers
	threads := min(workers, runtime.NumCPU())
	cmd := exec.CommandContext(ctx, path, "-n", "-f", f.Name(), "-c", strconv.Itoa(workers), "-j", strconv.Itoa(threads),
		"-t", strconv.Itoa(per), libpqURL(os.Getenv("MOIM_DATABASE_URL")))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, 0, "", fmt.Errorf("pgbench: %v\n%s", err, out)
	}
	m := tpsLine.FindSubmatch(out)
	if m == nil {
		return 0, 0, "", fmt.Errorf("pgbench printed no tps:\n%s", out)
	}
	tps, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil || tps <= 0 {
		return 0, 0, "", fmt.Errorf("pgbench tps %q: %v", m[1], err)
	}
	n := per * workers
	return n, time.Duration(float64(n) / tps * float64(time.Second)),
		fmt.Sprintf("pgbench -c %d -j %d, the recorded SQL", workers, threads), nil
}

var tpsLine = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)

// libpqURL drops the query parameters libpq does not know from a bun
// PostgreSQL URL, keeping sslmode.
func libpqURL(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return u
	}
	q := url.Values{}
	if v := pu.Query().Get("sslmode"); v != "" {
		q.Set("sslmode", v)
	}
	pu.RawQuery = q.Encode()
	if pu.Scheme == "postgresql" {
		pu.Scheme = "postgres"
	}
	return pu.String()
}

// runFromGo runs the script for left missions with workers connections,
// each statement as sent by the worker, rows read and dropped.
func runFromGo(ctx context.Context, bdb *bun.DB, sc script, s missionSet, workers, left int) (int, time.Duration, error) {
	var next atomic.Int64
	next.Store(1)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			conn, err := bdb.DB.Conn(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			for {
				i := int(next.Add(1))
				if i >= left+2 {
					return
				}
				for _, st := range sc.forMission(s, i, db.NewPublicID) {
					if st == "BEGIN" && bdb.Dialect().Name() == dialect.SQLite {
						// As db.Open's SQLite transactions: the write lock
						// first, so none has to be upgraded.
						st = "BEGIN IMMEDIATE"
					}
					rows, err := conn.QueryContext(ctx, st)
					if err != nil {
						errs <- fmt.Errorf("mission %d: %w", i, err)
						return
					}
					for rows.Next() {
					}
					if err := rows.Close(); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	d := time.Since(start)
	close(errs)
	return left, d, <-errs
}
