package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
)

// The chaos run's shape: how many members and rooms, how long the load
// lasts, when each fault lands in it, and how long the system may take to
// settle afterwards.
const (
	chaosMembers = 24
	chaosRooms   = 6
	chaosLoadFor = 9 * time.Second
	// The faults, as offsets into the load. What a killed worker's relay
	// had claimed waits for the outbox lease (30s) after the last kill, so
	// the faults come early.
	chaosKillWorker0 = 1500 * time.Millisecond
	chaosKillWorker1 = 3 * time.Second
	chaosFlushAll    = 4500 * time.Millisecond
	chaosRedisCrash  = 6 * time.Second
	// chaosSettle bounds the wait for the system to settle after the load.
	chaosSettle = 60 * time.Second
	// chaosLease is asynq's lease on an active task: the Redis restart must
	// land within it, while the killed worker's task is still its own.
	chaosLease = 30 * time.Second
)

// TestChaos runs the system as production does — separate api, worker (two)
// and scheduler (two) processes built from this checkout, on a PostgreSQL
// database and a Redis of the test's own — under a load of random-match
// applications, room joins and leaves, and notifications, while it kills
// workers (SIGKILL), flushes Redis, and kills a worker with a task in hand
// and restarts Redis empty within that task's lease. Once the load stops
// and the system has settled it checks what must hold whatever happened:
// no application in two matches, every room's count equal to its rows and
// within capacity, every room request decided, every notification sent on
// each of its channels once (the log providers' lines are the sends),
// nothing left in the outbox, and nobody logged out.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: takes about a minute; skipped with -short")
	}
	if os.Getenv(dbtest.PostgresURLEnv) == "" {
		t.Skipf("chaos: %s is not set; the chaos run needs PostgreSQL", dbtest.PostgresURLEnv)
	}
	redisBin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("chaos: no redis-server on PATH; the chaos run starts, flushes and restarts a Redis of its own")
	}
	t.Parallel()
	started := time.Now()
	ctx := context.Background()

	bin := buildBinaries(t)
	built := time.Since(started)
	dbURL := dbtest.URL(t, dbtest.Postgres)
	rds := startChaosRedis(t, redisBin)

	const adminPassword = "chaos-admin-password"
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i*7 + 3)
	}
	var ticks []string
	for _, tick := range jobs.Ticks() {
		// Every sweep every two seconds, on the wall clock so both
		// schedulers name the same slots.
		ticks = append(ticks, tick.Name+"=*/2 * * * * *")
	}
	// Not MOIM_ENV=production: it refuses the log mail and SMS providers,
	// whose lines are the sends this test counts. Every URL and secret is
	// set, so the processes otherwise run as they do in production.
	env := []string{
		"MOIM_DATABASE_URL=" + dbURL,
		"MOIM_REDIS_URL=" + rds.url(),
		"MOIM_STORAGE_LOCAL_DIR=" + filepath.Join(t.TempDir(), "objects"),
		"MOIM_AUTH_JWT_KEY=" + base64.StdEncoding.EncodeToString(key),
		"MOIM_ADMIN_PASSWORD=" + adminPassword,
		"MOIM_LOG_LEVEL=info",
		"MOIM_LOG_FORMAT=json",
		"MOIM_HTTP_ADDR=127.0.0.1:0",
		"MOIM_WORKER_METRICS_ADDR=127.0.0.1:0",
		"MOIM_SCHEDULER_METRICS_ADDR=127.0.0.1:0",
		// Five processes share the server's connections.
		"MOIM_DATABASE_MAX_OPEN_CONNS=8",
		"MOIM_RATE_LIMIT_SIGNUP_PER_IP=off",
		"MOIM_RATE_LIMIT_LOGIN_PER_IP=off",
		"MOIM_RATE_LIMIT_LOGIN_FAILURES_PER_EMAIL=off",
		"MOIM_RATE_LIMIT_LOGIN_FAILURES_PER_IP=off",
		"MOIM_RATE_LIMIT_REFRESH_PER_IP=off",
		"MOIM_AUTH_PASSWORD_MEMORY_KIB=1024",
		"MOIM_AUTH_PASSWORD_ITERATIONS=1",
		"MOIM_OUTBOX_POLL_INTERVAL=200ms",
		"MOIM_NOTIFY_CLAIM_TIMEOUT=1m",
		// A room request whose task Redis lost is taken up again after 5s.
		"MOIM_WORKER_SWEEP_AFTER=5s",
		"MOIM_WORKER_SHUTDOWN_TIMEOUT=5s",
		"MOIM_HTTP_SHUTDOWN_TIMEOUT=2s",
		"MOIM_SCHEDULER_TICKS=" + strings.Join(ticks, ","),
	}
	logDir := t.TempDir()
	newProc := func(name, binary string, args ...string) *chaosProc {
		return newChaosProc(t, name, filepath.Join(bin, binary), env, filepath.Join(logDir, name+".log"), args...)
	}

	if out, err := newProc("migrate", "moim", "migrate", "up").run(); err != nil {
		t.Fatalf("moim migrate up: %v\n%s", err, out)
	}
	api := newProc("api", "api")
	base := api.startAPI()
	workers := []*chaosProc{newProc("worker-1", "worker"), newProc("worker-2", "worker")}
	schedulers := []*chaosProc{newProc("scheduler-1", "scheduler"), newProc("scheduler-2", "scheduler")}
	for _, p := range slices.Concat(workers, schedulers) {
		p.start()
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range slices.Concat([]*chaosProc{api}, workers, schedulers) {
				p.logProblems()
			}
		}
	})

	bdb, err := db.Open(ctx, dbURL, db.Options{MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bdb.Close() })
	rc := redis.NewClient(&redis.Options{Addr: rds.addr()})
	t.Cleanup(func() { _ = rc.Close() })

	l := &chaosLoad{t: t, base: base, adminPassword: adminPassword, statuses: map[string]int{}}
	l.signUp()
	l.openRooms()
	setUp := time.Since(started)

	// The load runs while the faults land.
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// Also when a fault fails the test early: no request may outlive it.
	t.Cleanup(func() { stopLoad(); wg.Wait() })
	for i := range l.members {
		wg.Go(func() { l.memberLoop(loadCtx, i) })
	}
	wg.Go(func() { l.adminLoop(loadCtx) })

	var kills []time.Time // when a worker was killed: its claims may stay open
	killWorker := func(w *chaosProc) {
		kills = append(kills, time.Now())
		w.kill()
	}
	loadStart := time.Now()
	at := func(d time.Duration) { time.Sleep(time.Until(loadStart.Add(d))) }

	at(chaosKillWorker0)
	killWorker(workers[0])
	workers[0].start()
	t.Logf("%5.1fs SIGKILL %s, restarted", time.Since(loadStart).Seconds(), workers[0].name)
	at(chaosKillWorker1)
	killWorker(workers[1])
	workers[1].start()
	t.Logf("%5.1fs SIGKILL %s, restarted", time.Since(loadStart).Seconds(), workers[1].name)
	at(chaosFlushAll)
	if err := rc.FlushAll(ctx).Err(); err != nil {
		t.Fatalf("FLUSHALL: %v", err)
	}
	t.Logf("%5.1fs FLUSHALL", time.Since(loadStart).Seconds())

	at(chaosRedisCrash)
	inHand, leaseEnds := killWorkersWithTaskInHand(t, rc, workers, killWorker)
	crashed := time.Now()
	rds.crash()
	rds.start()
	restarted := time.Since(crashed)
	if !time.Now().Before(leaseEnds) {
		t.Errorf("Redis came back at %s, after the lease of the killed task ended (%s)", time.Now().Format(time.TimeOnly), leaseEnds.Format(time.TimeOnly))
	}
	for _, w := range workers {
		w.start()
	}
	t.Logf("%5.1fs SIGKILL both workers holding %d active task(s) %v (lease until %s); Redis killed and restarted empty in %v; workers restarted",
		time.Since(loadStart).Seconds(), len(inHand), inHand, leaseEnds.Format("15:04:05.000"), restarted.Round(time.Millisecond))

	at(chaosLoadFor)
	stopLoad()
	wg.Wait()
	loadEnd := time.Now()
	t.Logf("load: %d members, %d rooms, %d requests in %v: %s", len(l.members), len(l.rooms), l.total(),
		loadEnd.Sub(loadStart).Round(100*time.Millisecond), l.summary())

	// Settling: wait until nothing is left to do, then check everything.
	c := &chaosCheck{ctx: ctx, db: bdb, kills: kills, logs: []string{workers[0].logPath, workers[1].logPath}}
	var problems []string
	deadline := loadEnd.Add(chaosSettle)
	for {
		problems = c.run()
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	settled := time.Since(loadEnd)
	if len(problems) > 0 {
		t.Logf("not settled %v after the load", settled.Round(100*time.Millisecond))
	} else {
		t.Logf("settled %v after the load", settled.Round(100*time.Millisecond))
	}
	c.logNumbers(t)
	c.logCleared(t, loadEnd)
	for _, p := range problems {
		t.Error(p)
	}
	for _, p := range l.loggedOut() {
		t.Error(p)
	}
	if n := l.count(func(status int) bool { return status >= 500 && status != http.StatusServiceUnavailable }); n > 0 {
		t.Errorf("%d answers were 5xx other than 503 during the load: %s", n, l.summary())
	}
	if n := l.count(func(status int) bool { return status == 0 }); n > 0 {
		t.Errorf("%d requests got no answer during the load", n)
	}
	if n := l.count(func(status int) bool { return status == http.StatusUnauthorized }); n > 0 {
		t.Errorf("%d answers were 401 during the load: a member was logged out", n)
	}
	t.Logf("times: build %v, setup %v, load %v, settle %v, total %v",
		built.Round(100*time.Millisecond), (setUp - built).Round(100*time.Millisecond), chaosLoadFor,
		settled.Round(100*time.Millisecond), time.Since(started).Round(100*time.Millisecond))
}

// buildBinaries builds the four commands, without the race detector so
// they build and run fast, into a temporary directory.
func buildBinaries(t *testing.T) string {
	t.Helper()
	modDir, _ := moduleRoot(t)
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"./cmd/api", "./cmd/worker", "./cmd/scheduler", "./cmd/moim")
	cmd.Dir = modDir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// killWorkersWithTaskInHand kills every worker at a moment when a task is
// active, and returns the ids of the tasks the dead workers held and when
// the first of their leases ends. It tries again (with the workers
// restarted) if the tasks all finished before the kill landed.
func killWorkersWithTaskInHand(t *testing.T, rc *redis.Client, workers []*chaosProc, kill func(*chaosProc)) ([]string, time.Time) {
	t.Helper()
	ctx := context.Background()
	queues := []string{jobs.QueueCritical, jobs.QueueDefault, jobs.QueueLow}
	active := func() (ids []string, leaseEnds time.Time) {
		for _, q := range queues {
			got, err := rc.LRange(ctx, "asynq:{"+q+"}:active", 0, -1).Result()
			if err != nil {
				t.Fatalf("read active tasks: %v", err)
			}
			for _, id := range got {
				ids = append(ids, q+"/"+id)
				score, err := rc.ZScore(ctx, "asynq:{"+q+"}:lease", id).Result()
				if err == nil {
					if end := time.Unix(int64(score), 0); leaseEnds.IsZero() || end.Before(leaseEnds) {
						leaseEnds = end
					}
				}
			}
		}
		return ids, leaseEnds
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if ids, _ := active(); len(ids) == 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		for _, w := range workers {
			kill(w)
		}
		// Nobody is left to finish them: what is active now was in the
		// hands of the dead.
		if ids, leaseEnds := active(); len(ids) > 0 {
			if leaseEnds.IsZero() {
				leaseEnds = time.Now().Add(chaosLease)
			}
			return ids, leaseEnds
		}
		for _, w := range workers {
			w.start()
		}
	}
	t.Fatal("no worker held a task within 20s: the load is too light to kill one with a task in hand")
	return nil, time.Time{}
}

// chaosRedis is a redis-server of the test's own, without persistence, so
// a restart comes back empty.
type chaosRedis struct {
	t    *testing.T
	bin  string
	port int
	log  *os.File
	cmd  *exec.Cmd
	done chan error
}

func startChaosRedis(t *testing.T, bin string) *chaosRedis {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	log, err := os.Create(filepath.Join(t.TempDir(), "redis.log"))
	if err != nil {
		t.Fatal(err)
	}
	r := &chaosRedis{t: t, bin: bin, port: port, log: log}
	r.start()
	t.Cleanup(func() {
		r.crash()
		_ = log.Close()
	})
	return r
}

func (r *chaosRedis) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }
func (r *chaosRedis) url() string  { return "redis://" + r.addr() + "/0" }

// start runs redis-server and waits until it answers.
func (r *chaosRedis) start() {
	r.t.Helper()
	cmd := exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.t.TempDir())
	cmd.Stdout, cmd.Stderr = r.log, r.log
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	r.cmd, r.done = cmd, make(chan error, 1)
	go func() { r.done <- cmd.Wait() }()
	rc := redis.NewClient(&redis.Options{Addr: r.addr(), MaxRetries: -1})
	defer rc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for rc.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server on port %d did not answer within 10s", r.port)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// crash kills redis-server (SIGKILL); without persistence it forgets all.
func (r *chaosRedis) crash() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

// chaosProc is one of the system's processes, which the test may kill and
// start again; every run of it appends to the same log file.
type chaosProc struct {
	t       *testing.T
	name    string
	path    string
	args    []string
	env     []string
	logPath string
	log     *os.File
	cmd     *exec.Cmd
	done    chan error
}

func newChaosProc(t *testing.T, name, path string, env []string, logPath string, args ...string) *chaosProc {
	t.Helper()
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p := &chaosProc{t: t, name: name, path: path, args: args, env: env, logPath: logPath, log: log}
	t.Cleanup(func() {
		p.stop()
		_ = log.Close()
	})
	return p
}

// run runs the process to its end and returns its output.
func (p *chaosProc) run() (string, error) {
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = p.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (p *chaosProc) start() { p.startWith(p.log) }

func (p *chaosProc) startWith(stdout *os.File) {
	p.t.Helper()
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = stdout, p.log
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	p.cmd, p.done = cmd, make(chan error, 1)
	go func() { p.done <- cmd.Wait() }()
}

// startAPI starts the api process and returns its URL from its banner.
func (p *chaosProc) startAPI() string {
	p.t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		p.t.Fatal(err)
	}
	p.startWith(w)
	_ = w.Close()
	banner := readBanner(p.t, r, p.done)
	go func() {
		_, _ = io.Copy(io.Discard, r)
		_ = r.Close()
	}()
	return banner["API"]
}

// kill ends the process at once (SIGKILL), as a crash or an OOM kill would.
func (p *chaosProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
	p.cmd = nil
}

// stop asks the process to shut down (SIGTERM) and kills it if it has not
// within 10s.
func (p *chaosProc) stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Errorf("%s did not stop within 10s of SIGTERM", p.name)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
}

// logProblems shows the process's warnings and errors, for a failed run.
func (p *chaosProc) logProblems() {
	var lines []string
	_ = eachLogLine(p.logPath, func(line chaosLogLine, raw string) {
		if line.Level != "INFO" && line.Level != "DEBUG" {
			lines = append(lines, raw)
		}
	})
	if len(lines) > 40 {
		lines = append(lines[:20], append([]string{"…"}, lines[len(lines)-20:]...)...)
	}
	if len(lines) > 0 {
		p.t.Logf("%s warnings and errors:\n%s", p.name, strings.Join(lines, "\n"))
	}
}

// chaosLogLine is what the test reads of a JSON log line.
type chaosLogLine struct {
	Level     string `json:"level"`
	Msg       string `json:"msg"`
	To        string `json:"to"`
	MessageID string `json:"message_id"`
	Err       string `json:"err"`
}

// eachLogLine calls fn with each line of the log at path. Lines that are
// not JSON (one cut short by SIGKILL, a panic) come with an empty line.
func eachLogLine(path string, fn func(line chaosLogLine, raw string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line chaosLogLine
		_ = json.Unmarshal(sc.Bytes(), &line)
		fn(line, sc.Text())
	}
	return sc.Err()
}

// chaosMember is a member of the load with the tokens of their login.
type chaosMember struct {
	id, email       string
	access, refresh string
	hosts           string // the room they host, if any
	rng             *rand.Rand
	phone           string
}

// chaosLoad drives the API as the members and an admin, and counts the
// answers by request and status.
type chaosLoad struct {
	t             *testing.T
	base          string
	adminPassword string
	members       []*chaosMember
	rooms         []string

	mu       sync.Mutex
	statuses map[string]int // "POST /v1/rooms/{id}/participations 202" → count
}

var chaosClient = &http.Client{Timeout: 20 * time.Second}

// call sends a request and decodes a JSON answer into out (when not nil);
// transport errors count as status 0.
func (l *chaosLoad) call(method, route, path, token, body string, out any) int {
	req, err := http.NewRequest(method, l.base+path, strings.NewReader(body))
	if err != nil {
		l.t.Error(err)
		return 0
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	switch token {
	case "":
	case "admin":
		req.SetBasicAuth("admin", l.adminPassword)
	default:
		req.Header.Set("Authorization", "Bearer "+token)
	}
	status := 0
	resp, err := chaosClient.Do(req)
	if err == nil {
		status = resp.StatusCode
		if out != nil && status < 300 {
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				l.t.Errorf("%s %s: decode answer: %v", method, path, err)
			}
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	l.mu.Lock()
	l.statuses[method+" "+route+" "+strconv.Itoa(status)]++
	l.mu.Unlock()
	return status
}

// signUp creates the members (with a phone and SMS consent, so SMS goes
// too) and logs each in.
func (l *chaosLoad) signUp() {
	for i := range chaosMembers {
		m := &chaosMember{email: fmt.Sprintf("chaos%02d@example.com", i), phone: fmt.Sprintf("+82101234%04d", i),
			rng: rand.New(rand.NewPCG(uint64(i), 0x6d6f696d))}
		body := fmt.Sprintf(`{"email":%q,"password":"chaos password %02d","nickname":"chaos%02d","phone":%q,"sms_consent":true}`,
			m.email, i, i, m.phone)
		var member struct {
			ID string `json:"id"`
		}
		if s := l.call(http.MethodPost, "/v1/auth/signup", "/v1/auth/signup", "", body, &member); s != http.StatusCreated {
			l.t.Fatalf("sign-up %s: status %d", m.email, s)
		}
		m.id = member.ID
		var tok struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
		}
		body = fmt.Sprintf(`{"email":%q,"password":"chaos password %02d"}`, m.email, i)
		if s := l.call(http.MethodPost, "/v1/auth/login", "/v1/auth/login", "", body, &tok); s != http.StatusOK {
			l.t.Fatalf("login %s: status %d", m.email, s)
		}
		m.access, m.refresh = tok.AccessToken, tok.RefreshToken
		l.members = append(l.members, m)
	}
}

// openRooms has the first members each host a room, of capacities from 3
// to 8 (the host counts), two days ahead in Seoul.
func (l *chaosLoad) openRooms() {
	date := time.Now().In(time.FixedZone("KST", 9*3600)).AddDate(0, 0, 2).Format("2006-01-02")
	for i := range chaosRooms {
		body := fmt.Sprintf(`{"category":"MEAL","title":"chaos room %d","date":%q,"start_time":"12:30","place":"개포","capacity":%d}`,
			i, date, 3+i)
		var room struct {
			ID string `json:"id"`
		}
		if s := l.call(http.MethodPost, "/v1/rooms", "/v1/rooms", l.members[i].access, body, &room); s != http.StatusCreated {
			l.t.Fatalf("open room %d: status %d", i, s)
		}
		l.members[i].hosts = room.ID
		l.rooms = append(l.rooms, room.ID)
	}
}

// memberLoop is one member's share of the load until ctx is done: joining
// and leaving rooms, applying for and cancelling random matches, reading
// their notifications.
func (l *chaosLoad) memberLoop(ctx context.Context, i int) {
	m := l.members[i]
	for ctx.Err() == nil {
		room := l.rooms[m.rng.IntN(len(l.rooms))]
		cat := []string{"MEAL", "STUDY"}[m.rng.IntN(2)]
		switch r := m.rng.IntN(12); {
		case r < 4 && room != m.hosts:
			l.call(http.MethodPost, "/v1/rooms/{id}/participations", "/v1/rooms/"+room+"/participations", m.access, "", nil)
		case r < 6 && room != m.hosts:
			l.call(http.MethodDelete, "/v1/rooms/{id}/participations/mine", "/v1/rooms/"+room+"/participations/mine", m.access, "", nil)
		case r < 9:
			l.call(http.MethodPost, "/v1/random-matches", "/v1/random-matches", m.access, chaosApplication(m.rng, cat), nil)
		case r < 10:
			l.call(http.MethodDelete, "/v1/random-matches/mine", "/v1/random-matches/mine?category="+cat, m.access, "", nil)
		default:
			l.call(http.MethodGet, "/v1/notifications", "/v1/notifications?limit=5", m.access, "", nil)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(50+m.rng.IntN(100)) * time.Millisecond):
		}
	}
}

// chaosApplication is a random-match application with random conditions,
// broad enough that most find a partner.
func chaosApplication(rng *rand.Rand, category string) string {
	pick := func(values ...string) []string {
		var out []string
		for _, v := range values {
			if rng.IntN(3) > 0 {
				out = append(out, v)
			}
		}
		return out
	}
	places, _ := json.Marshal(append(pick("SEOCHO", "OUT_OF_CLUSTER"), "GAEPO"))
	second, list := []string{"DELIVERY", "EATOUT", "TAKEOUT"}, "ways_of_eating"
	if category == "STUDY" {
		second, list = []string{"INNER_CIRCLE", "NOT_INNER_CIRCLE"}, "study_types"
	}
	values, _ := json.Marshal(pick(second...))
	return fmt.Sprintf(`{"category":%q,"places":%s,%q:%s}`, category, places, list, values)
}

// adminLoop sends notifications through the admin endpoint until ctx is
// done: to one to three members, of types that go by mail and SMS, by
// mail, or in the app only.
func (l *chaosLoad) adminLoop(ctx context.Context) {
	rng := rand.New(rand.NewPCG(1, 2))
	types := []string{"ROOM_CANCELLED", "JOIN_ACCEPTED", "COMMENT_ON_MY_ROOM"}
	for ctx.Err() == nil {
		var ids []string
		for range 1 + rng.IntN(3) {
			ids = append(ids, l.members[rng.IntN(len(l.members))].id)
		}
		idsJSON, _ := json.Marshal(ids)
		body := fmt.Sprintf(`{"member_ids":%s,"type":%q,"args":{"title":"chaos","link":"/rooms/chaos"}}`,
			idsJSON, types[rng.IntN(len(types))])
		l.call(http.MethodPost, "/v1/admin/notifications", "/v1/admin/notifications", "admin", body, nil)
		select {
		case <-ctx.Done():
		case <-time.After(80 * time.Millisecond):
		}
	}
}

func (l *chaosLoad) count(match func(status int) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for k, c := range l.statuses {
		status, _ := strconv.Atoi(k[strings.LastIndexByte(k, ' ')+1:])
		if match(status) {
			n += c
		}
	}
	return n
}

func (l *chaosLoad) total() int { return l.count(func(int) bool { return true }) }

// summary lists the answers by request and status.
func (l *chaosLoad) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(l.statuses)) {
		fmt.Fprintf(&b, "\n  %-52s %5d", k, l.statuses[k])
	}
	return b.String()
}

// loggedOut checks that every member is still logged in: the access token
// of their login opens /v1/me, the refresh token buys a new pair, and the
// new access token opens /v1/me.
func (l *chaosLoad) loggedOut() []string {
	var problems []string
	for _, m := range l.members {
		if s := l.call(http.MethodGet, "/v1/me", "/v1/me", m.access, "", nil); s != http.StatusOK {
			problems = append(problems, fmt.Sprintf("%s: GET /v1/me with the access token of the login: status %d, want 200", m.email, s))
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		body := fmt.Sprintf(`{"refresh_token":%q}`, m.refresh)
		if s := l.call(http.MethodPost, "/v1/auth/refresh", "/v1/auth/refresh", "", body, &tok); s != http.StatusOK {
			problems = append(problems, fmt.Sprintf("%s: refresh with the token of the login: status %d, want 200", m.email, s))
			continue
		}
		if s := l.call(http.MethodGet, "/v1/me", "/v1/me", tok.AccessToken, "", nil); s != http.StatusOK {
			problems = append(problems, fmt.Sprintf("%s: GET /v1/me after refresh: status %d, want 200", m.email, s))
		}
	}
	return problems
}

// chaosCheck reads the database (and the workers' logs, for what the log
// providers sent) and lists what does not hold.
type chaosCheck struct {
	ctx   context.Context
	db    *bun.DB
	kills []time.Time
	logs  []string // the workers' log files
	nums  []string // the figures of the last run, for the report

	problems []string             // of the last run
	seen     map[string]time.Time // problem kind → when last seen
	lastRun  time.Time
}

// killedMidSend reports whether a delivery claimed at claimed is one a
// worker was killed holding: claimed shortly before a kill. A log send
// takes milliseconds; the margin is for a loaded machine.
func (c *chaosCheck) killedMidSend(claimed time.Time) bool {
	for _, k := range c.kills {
		if !claimed.After(k) && k.Sub(claimed) < 5*time.Second {
			return true
		}
	}
	return false
}

func (c *chaosCheck) run() []string {
	c.nums, c.lastRun = nil, time.Now()
	c.problems = nil
	fail := c.fail
	count := func(query string, args ...any) int {
		var n int
		if err := c.db.NewRaw(query, args...).Scan(c.ctx, &n); err != nil {
			fail("query %q: %v", query, err)
		}
		return n
	}

	// Random matches: every application in at most one match, and every
	// random match made of exactly the applications that point at it.
	matches := count("SELECT count(*) FROM matches WHERE method = ?", int(domain.MatchRandom))
	matched := count("SELECT count(*) FROM random_applications WHERE status = ?", int(domain.ApplicationMatched))
	if n := count(`SELECT count(*) FROM matches m WHERE m.method = ? AND
		(SELECT count(*) FROM match_members mm WHERE mm.match_id = m.id) <>
		(SELECT count(*) FROM random_applications a WHERE a.match_id = m.id)`, int(domain.MatchRandom)); n > 0 {
		fail("%d random matches whose members are not exactly the applications matched into them", n)
	}
	if n := count(`SELECT count(*) FROM random_applications a WHERE a.match_id IS NOT NULL AND NOT EXISTS
		(SELECT 1 FROM match_members mm WHERE mm.match_id = a.match_id AND mm.member_id = a.member_id)`); n > 0 {
		fail("%d applications point at a match their member is not in", n)
	}
	if n := count("SELECT count(*) FROM random_applications WHERE (status = ?) <> (match_id IS NOT NULL)", int(domain.ApplicationMatched)); n > 0 {
		fail("%d applications MATCHED without a match, or with a match but not MATCHED", n)
	}
	waiting := 0
	for _, cat := range []domain.Category{domain.CategoryMeal, domain.CategoryStudy} {
		apps, err := (db.Applications{}).ListWaiting(c.ctx, c.db, cat, time.Now())
		if err != nil {
			fail("list waiting %s applications: %v", cat, err)
			continue
		}
		waiting += len(apps)
		cands := make([]domain.Candidate, len(apps))
		for i, a := range apps {
			cands[i] = domain.Candidate{Key: a.Key, MemberID: a.MemberID, Conditions: a.Conditions, CreatedAt: a.CreatedAt}
		}
		if g := domain.GroupCandidates(cands, 2); len(g) > 0 {
			fail("%d groups of waiting %s applications could be matched but are not (a lost matcher run)", len(g), cat)
		}
	}
	c.nums = append(c.nums, fmt.Sprintf("random matches %d of %d applications matched; %d left waiting without a partner", matches, matched, waiting))

	// Rooms: the count is the rows, within capacity; every request decided.
	if n := count(`SELECT count(*) FROM rooms r WHERE r.participant_count <>
		(SELECT count(*) FROM room_participants p WHERE p.room_id = r.id)`); n > 0 {
		fail("%d rooms whose participant_count is not their number of participants", n)
	}
	if n := count("SELECT count(*) FROM rooms WHERE participant_count > capacity"); n > 0 {
		fail("%d rooms over capacity", n)
	}
	if n := count("SELECT count(*) FROM room_participations WHERE status = ?", int(domain.ParticipationRequested)); n > 0 {
		fail("%d room requests still REQUESTED (never decided)", n)
	}
	var byStatus []struct {
		Status int `bun:"status"`
		N      int `bun:"n"`
	}
	if err := c.db.NewRaw("SELECT status, count(*) AS n FROM room_participations GROUP BY status ORDER BY status").Scan(c.ctx, &byStatus); err != nil {
		fail("count room requests: %v", err)
	}
	var req []string
	for _, s := range byStatus {
		req = append(req, fmt.Sprintf("%s %d", domain.ParticipationStatus(s.Status), s.N))
	}
	var full, seats int
	if err := c.db.NewRaw("SELECT coalesce(sum(participant_count), 0), coalesce(sum(capacity), 0) FROM rooms").Scan(c.ctx, &full, &seats); err != nil {
		fail("count seats: %v", err)
	}
	c.nums = append(c.nums, fmt.Sprintf("room requests: %s; rooms hold %d of %d seats", strings.Join(req, ", "), full, seats))

	c.notifications()

	if n := count("SELECT count(*) FROM outbox WHERE sent_at IS NULL"); n > 0 {
		fail("%d outbox rows never sent", n)
	}
	c.nums = append(c.nums, fmt.Sprintf("outbox rows: %d", count("SELECT count(*) FROM outbox")))
	return c.problems
}

// fail records a problem; its format names its kind, for the report of
// which kinds cleared when.
func (c *chaosCheck) fail(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
	if c.seen == nil {
		c.seen = map[string]time.Time{}
	}
	c.seen[format] = time.Now()
}

// logCleared says, for each kind of problem seen while settling but gone
// by the end, how long after from it was last seen.
func (c *chaosCheck) logCleared(t *testing.T, from time.Time) {
	t.Helper()
	for _, kind := range slices.Sorted(maps.Keys(c.seen)) {
		if last := c.seen[kind]; last.Before(c.lastRun) {
			t.Logf("cleared %v after the load: %q", last.Sub(from).Round(100*time.Millisecond), kind)
		}
	}
}

// notifications checks that every notification has a delivery on each
// channel its type and member call for, each sent, and that the log
// providers were called once per sent delivery: per address for mail, in
// all for SMS.
func (c *chaosCheck) notifications() {
	fail := c.fail
	var rows []struct {
		ID       int64      `bun:"id"`
		Type     int        `bun:"type"`
		MemberID string     `bun:"member_id"`
		Channel  *int       `bun:"channel"`
		Status   *int       `bun:"status"`
		Claimed  *time.Time `bun:"claimed_at"`
	}
	if err := c.db.NewRaw(`SELECT n.id, n.type, m.public_id AS member_id, d.channel, d.status, d.claimed_at
		FROM notifications n JOIN members m ON m.id = n.member_id
		LEFT JOIN deliveries d ON d.notification_id = n.id ORDER BY n.id, d.channel`).Scan(c.ctx, &rows); err != nil {
		fail("read notifications: %v", err)
		return
	}
	members := map[string]*domain.Member{}
	type key struct {
		notification int64
		channel      domain.Channel
	}
	got := map[key]int{} // delivery status by notification and channel
	notifications := map[int64]domain.NotificationType{}
	owner := map[int64]string{}
	maybe := map[key]bool{}
	for _, r := range rows {
		notifications[r.ID] = domain.NotificationType(r.Type)
		owner[r.ID] = r.MemberID
		if r.Channel != nil {
			k := key{r.ID, domain.Channel(*r.Channel)}
			got[k] = *r.Status
			maybe[k] = r.Claimed != nil && c.killedMidSend(*r.Claimed)
		}
	}
	var (
		missing, pending, failed, extra, sent, inDoubt int
		sentMail                                       = map[string]int{}
		doubtMail                                      = map[string]int{}
		sentSMS, doubtSMS                              int
	)
	for id, typ := range notifications {
		m := members[owner[id]]
		if m == nil {
			var err error
			if m, err = (db.Members{}).FindByID(c.ctx, c.db, owner[id]); err != nil {
				fail("member %s: %v", owner[id], err)
				continue
			}
			members[owner[id]] = m
		}
		want := domain.ChannelsFor(typ, m)
		for _, ch := range []domain.Channel{domain.ChannelMail, domain.ChannelSMS, domain.ChannelSlack} {
			k := key{id, ch}
			status, ok := got[k]
			switch {
			case !slices.Contains(want, ch):
				if ok {
					extra++
				}
				continue
			case !ok:
				missing++
				continue
			}
			switch domain.DeliveryStatus(status) {
			case domain.DeliverySent:
				sent++
				if ch == domain.ChannelMail {
					sentMail[m.Email]++
				} else if ch == domain.ChannelSMS {
					sentSMS++
				}
			case domain.DeliverySending, domain.DeliveryUnknown:
				if !maybe[k] {
					pending++
					continue
				}
				// Claimed by a worker that was killed mid-send: sent or
				// not, it must never be sent again.
				inDoubt++
				if ch == domain.ChannelMail {
					doubtMail[m.Email]++
				} else if ch == domain.ChannelSMS {
					doubtSMS++
				}
			case domain.DeliveryPending:
				pending++
			default:
				failed++
			}
		}
	}
	if missing > 0 {
		fail("%d deliveries a notification calls for were never created (a lost fan-out)", missing)
	}
	if pending > 0 {
		fail("%d deliveries still PENDING or SENDING (never sent)", pending)
	}
	if failed > 0 {
		fail("%d deliveries FAILED", failed)
	}
	if extra > 0 {
		fail("%d deliveries on channels their notification does not call for", extra)
	}

	mails, sms, queueNotFound, err := c.sends()
	if err != nil {
		fail("read the workers' logs: %v", err)
	}
	addresses := map[string]bool{}
	for e := range mails {
		addresses[e] = true
	}
	for e := range sentMail {
		addresses[e] = true
	}
	for _, email := range slices.Sorted(maps.Keys(addresses)) {
		if n := mails[email]; n < sentMail[email] || n > sentMail[email]+doubtMail[email] {
			fail("%s got %d mails, want one per delivery: %d sent (+%d claimed by a killed worker)", email, n, sentMail[email], doubtMail[email])
		}
	}
	if sms < sentSMS || sms > sentSMS+doubtSMS {
		fail("%d SMS went out, want one per delivery: %d sent (+%d claimed by a killed worker)", sms, sentSMS, doubtSMS)
	}
	total := 0
	for _, n := range mails {
		total += n
	}
	c.nums = append(c.nums, fmt.Sprintf("notifications %d; deliveries sent %d, in doubt after a kill mid-send %d; log providers sent %d mails and %d SMS",
		len(notifications), sent, inDoubt, total, sms),
		fmt.Sprintf("task attempts that failed on a queue Redis had forgotten: %d", queueNotFound))
}

// sends counts what the log providers sent, from the workers' logs: mails
// by address, and SMS (whose log line names no number); and the task
// attempts that failed because Redis had forgotten a queue.
func (c *chaosCheck) sends() (mails map[string]int, sms, queueNotFound int, err error) {
	mails = map[string]int{}
	for _, path := range c.logs {
		err := eachLogLine(path, func(line chaosLogLine, _ string) {
			switch {
			case line.Msg == "mail not sent: log provider" && strings.HasPrefix(line.MessageID, "<code-"):
				// The sign-up's verification code: an account code, not a
				// notification's delivery.
			case line.Msg == "mail not sent: log provider":
				mails[line.To]++
			case line.Msg == "sms not sent: log provider":
				sms++
			case strings.Contains(line.Err, "queue not found"):
				queueNotFound++
			}
		})
		if err != nil {
			return nil, 0, 0, err
		}
	}
	return mails, sms, queueNotFound, nil
}

func (c *chaosCheck) logNumbers(t *testing.T) {
	t.Helper()
	for _, n := range c.nums {
		t.Log(n)
	}
}
