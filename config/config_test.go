package config_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/moim/moim/config"
	"github.com/moim/moim/domain"
)

// env returns a getenv over vars.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// load calls config.Load and fails the test on error.
func load(t *testing.T, args []string, vars map[string]string) *config.Config {
	t.Helper()
	c, err := config.Load(args, env(vars))
	if err != nil {
		t.Fatalf("Load(%q) error: %v", args, err)
	}
	return c
}

// lines splits a joined error into its lines, sorted.
func lines(err error) []string {
	if err == nil {
		return nil
	}
	ls := strings.Split(err.Error(), "\n")
	sort.Strings(ls)
	return ls
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	want := &config.Config{
		Env: "local",
		Log: config.LogConfig{Level: "info", Format: "text"},
		HTTP: config.HTTPConfig{
			Addr:              ":8080",
			ReadHeaderTimeout: 5 * time.Second,
			RequestTimeout:    30 * time.Second,
			ShutdownTimeout:   15 * time.Second,
			BodyLimit:         1048576,
		},
		Database: config.DatabaseConfig{
			ConnMaxLifetime: 30 * time.Minute,
			ConnMaxIdleTime: 5 * time.Minute,
		},
		Auth: config.AuthConfig{AccessTTL: 15 * time.Minute, RefreshTTL: 336 * time.Hour, SessionCacheTTL: time.Minute,
			PasswordMemoryKiB: 19456, PasswordIterations: 2, PasswordParallelism: 1,
			EmailCodeTTL: 10 * time.Minute, PhoneCodeTTL: 5 * time.Minute, ResetTokenTTL: 30 * time.Minute,
			CodeAttempts: 5, CodeResendInterval: time.Minute, CodesPerDay: 10, SMSPerNumberPerDay: 5,
			OAuthStateTTL: 10 * time.Minute, OAuthTimeout: 10 * time.Second, Providers: map[string]config.ProviderConfig{}},
		Admin: config.AdminConfig{User: "admin"},
		RateLimit: config.RateLimitConfig{SignupPerIP: "10/1h", LoginPerIP: "30/1m", RefreshPerIP: "60/1m",
			LoginFailuresPerEmail: "5/1h", LoginFailuresPerIP: "20/1h", LoginDelay: time.Second,
			LoginMaxDelay: 5 * time.Minute, LoginDeviceTTL: 90 * 24 * time.Hour},
		Matching: config.MatchingConfig{MealGroupSize: 2, StudyGroupSize: 2, WaitLimit: 30 * time.Minute, Parallel: 4},
		Rooms: config.RoomsConfig{RunLead: 6 * time.Hour, MaxDaysAhead: 365, AdmissionRetries: 3, AdmissionRetryWait: 100 * time.Millisecond, ListCacheTTL: 5 * time.Second,
			DDayTime: "08:00", StartsSoonBefore: 30 * time.Minute, EndedAfter: time.Hour, ReminderGrace: 15 * time.Minute,
			DDayCategories: []string{"RUN"}, StartsSoonCategories: []string{"RUN"}, EndedCategories: []string{"RUN"},
			EvaluationMin: -5, EvaluationMax: 5},
		Notify: config.NotifyConfig{ClaimTimeout: 5 * time.Minute, MailboxSize: 100},
		Mail: config.MailConfig{Provider: "log", Port: 587, TLS: "mandatory",
			From: "moim <no-reply@moim.localhost>", Timeout: 15 * time.Second},
		SMS:   config.SMSConfig{Provider: "log", BaseURL: "https://sens.apigw.ntruss.com", Timeout: 10 * time.Second},
		Slack: config.SlackConfig{BaseURL: "https://slack.com/api", Timeout: 10 * time.Second},
		Storage: config.StorageConfig{Backend: "local", Local: config.StorageLocalConfig{Dir: "data/objects"},
			S3: config.StorageS3Config{Region: "us-east-1"}},
		Images: config.ImagesConfig{MaxBytes: 15728640, MaxPixels: 50000000, URLExpiry: time.Hour, UploadExpiry: 15 * time.Minute, JPEGQuality: 85, ConcurrentDecodes: 2},
		Worker: config.WorkerConfig{
			Concurrency:       10,
			Queues:            map[string]int{"critical": 6, "default": 3, "low": 1},
			ShutdownTimeout:   25 * time.Second,
			MetricsAddr:       ":9091",
			TaskCheckInterval: 10 * time.Millisecond,
			SweepAfter:        time.Minute,
		},
		Outbox: config.OutboxConfig{
			PollInterval: time.Second,
			BatchSize:    100,
			Retention:    10 * time.Minute,
			KeepSent:     24 * time.Hour,
		},
		Retention: config.RetentionConfig{
			NotificationsRead:   90 * 24 * time.Hour,
			NotificationsUnread: 365 * 24 * time.Hour,
			Deliveries:          30 * 24 * time.Hour,
			Sessions:            7 * 24 * time.Hour,
		},
		Scheduler: config.SchedulerConfig{TimeZone: "Asia/Seoul", CatchUpWindow: time.Hour, MetricsAddr: ":9092"},
		Payments:  config.PaymentsConfig{WebhookTolerance: 5 * time.Minute},
		Missions:  config.MissionsConfig{MaxDaysAhead: 90, ReminderBefore: 30 * time.Minute},
		Tasks:     config.TasksConfig{RoundInterval: 15 * time.Second, RoundSize: 20, InvitationTTL: 24 * time.Hour},
	}
	for _, getenv := range []func(string) string{nil, env(nil)} {
		got, err := config.Load(nil, getenv)
		if err != nil {
			t.Fatalf("Load error: %v", err)
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("Load defaults mismatch (-want +got):\n%s", diff)
		}
		if got.IsProduction() {
			t.Error("IsProduction() = true, want false")
		}
		if u := got.DatabaseURL(); u != "sqlite:data/moim.db" {
			t.Errorf("DatabaseURL() = %q, want sqlite:data/moim.db", u)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("Validate() of the defaults: %v", err)
		}
	}
}

func TestLoadPrecedence(t *testing.T) {
	t.Parallel()
	fileArgs := []string{"--config", "testdata/file.yaml"}
	envVars := map[string]string{
		"MOIM_HTTP_ADDR":            "127.0.0.1:2001",
		"MOIM_HTTP_REQUEST_TIMEOUT": "12s",
		"MOIM_HTTP_CORS_ORIGINS":    "https://env.example",
		"MOIM_WORKER_QUEUES":        "fromenv=3",
	}
	flagArgs := []string{
		"--http.addr=127.0.0.1:3001",
		"--http.request_timeout", "13s",
		"--http.cors_origins=https://flag.example",
		"--worker.queues", "fromflag=4",
	}
	tests := []struct {
		name        string
		args        []string
		vars        map[string]string
		wantAddr    string
		wantTimeout time.Duration
		wantCORS    []string
		wantQueues  map[string]int
		wantTicks   map[string]string
	}{
		{
			name:        "defaults",
			wantAddr:    ":8080",
			wantTimeout: 30 * time.Second,
			wantQueues:  map[string]int{"critical": 6, "default": 3, "low": 1},
		},
		{
			name:        "file over defaults",
			args:        fileArgs,
			wantAddr:    "127.0.0.1:1001",
			wantTimeout: 11 * time.Second,
			wantCORS:    []string{"https://file.example"},
			wantQueues:  map[string]int{"fromfile": 2},
			wantTicks:   map[string]string{"outbox-prune": "*/5 * * * *"},
		},
		{
			name:        "env over file",
			args:        fileArgs,
			vars:        envVars,
			wantAddr:    "127.0.0.1:2001",
			wantTimeout: 12 * time.Second,
			wantCORS:    []string{"https://env.example"},
			wantQueues:  map[string]int{"fromenv": 3},
			wantTicks:   map[string]string{"outbox-prune": "*/5 * * * *"},
		},
		{
			name:        "env over defaults",
			vars:        envVars,
			wantAddr:    "127.0.0.1:2001",
			wantTimeout: 12 * time.Second,
			wantCORS:    []string{"https://env.example"},
			wantQueues:  map[string]int{"fromenv": 3},
		},
		{
			name:        "flags over env and file",
			args:        append(slices.Clone(fileArgs), flagArgs...),
			vars:        envVars,
			wantAddr:    "127.0.0.1:3001",
			wantTimeout: 13 * time.Second,
			wantCORS:    []string{"https://flag.example"},
			wantQueues:  map[string]int{"fromflag": 4},
			wantTicks:   map[string]string{"outbox-prune": "*/5 * * * *"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := load(t, tt.args, tt.vars)
			if c.HTTP.Addr != tt.wantAddr {
				t.Errorf("http.addr = %q, want %q", c.HTTP.Addr, tt.wantAddr)
			}
			if c.HTTP.RequestTimeout != tt.wantTimeout {
				t.Errorf("http.request_timeout = %s, want %s", c.HTTP.RequestTimeout, tt.wantTimeout)
			}
			if diff := cmp.Diff(tt.wantCORS, c.HTTP.CORSOrigins, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("http.cors_origins (-want +got):\n%s", diff)
			}
			// A map from a higher source replaces the lower one whole.
			if diff := cmp.Diff(tt.wantQueues, c.Worker.Queues); diff != "" {
				t.Errorf("worker.queues (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantTicks, c.Scheduler.Ticks, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("scheduler.ticks (-want +got):\n%s", diff)
			}
			// Keys no source sets keep their defaults.
			if c.HTTP.ShutdownTimeout != 15*time.Second {
				t.Errorf("http.shutdown_timeout = %s, want the default 15s", c.HTTP.ShutdownTimeout)
			}
		})
	}
}

func TestLoadEnvForms(t *testing.T) {
	t.Parallel()
	c := load(t, nil, map[string]string{
		"MOIM_HTTP_TRUSTED_PROXIES":    " 10.0.0.0/8, 192.168.0.0/16 ,",
		"MOIM_HTTP_CORS_ORIGINS":       "https://a.example,https://b.example",
		"MOIM_HTTP_BODY_LIMIT":         "2048",
		"MOIM_WORKER_QUEUES":           "Critical=6, default=3,low=1",
		"MOIM_SCHEDULER_TICKS":         "mission-midnight=0 0 * * *,digest=0 9,18 * * *",
		"MOIM_DATABASE_MAX_OPEN_CONNS": "8",
		"MOIM_OUTBOX_RETENTION":        "36h",
		"MOIM_ENV":                     "production",
		"MOIM_STORAGE_S3_PATH_STYLE":   "true",
		"MOIM_STORAGE_LOCAL_DIR":       "/srv/moim/objects",
	})
	if !c.Storage.S3.PathStyle || c.Storage.Local.Dir != "/srv/moim/objects" {
		t.Errorf("storage.s3.path_style = %v, storage.local.dir = %q; want true, /srv/moim/objects", c.Storage.S3.PathStyle, c.Storage.Local.Dir)
	}
	if diff := cmp.Diff([]string{"10.0.0.0/8", "192.168.0.0/16"}, c.HTTP.TrustedProxies); diff != "" {
		t.Errorf("http.trusted_proxies (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"https://a.example", "https://b.example"}, c.HTTP.CORSOrigins); diff != "" {
		t.Errorf("http.cors_origins (-want +got):\n%s", diff)
	}
	if c.HTTP.BodyLimit != 2048 {
		t.Errorf("http.body_limit = %d, want 2048", c.HTTP.BodyLimit)
	}
	if diff := cmp.Diff(map[string]int{"critical": 6, "default": 3, "low": 1}, c.Worker.Queues); diff != "" {
		t.Errorf("worker.queues (-want +got):\n%s", diff)
	}
	// A cron spec may hold commas; a piece without "=" continues the spec.
	wantTicks := map[string]string{"mission-midnight": "0 0 * * *", "digest": "0 9,18 * * *"}
	if diff := cmp.Diff(wantTicks, c.Scheduler.Ticks); diff != "" {
		t.Errorf("scheduler.ticks (-want +got):\n%s", diff)
	}
	if c.Database.MaxOpenConns != 8 {
		t.Errorf("database.max_open_conns = %d, want 8", c.Database.MaxOpenConns)
	}
	if c.Outbox.Retention != 36*time.Hour {
		t.Errorf("outbox.retention = %s, want 36h", c.Outbox.Retention)
	}
	if !c.IsProduction() || c.Log.Format != "json" {
		t.Errorf("env=production: IsProduction() = %v, log.format = %q; want true, json", c.IsProduction(), c.Log.Format)
	}
}

func TestLoadMapFlagRepeated(t *testing.T) {
	t.Parallel()
	c := load(t, []string{"--worker.queues", "a=1", "--worker.queues=b=2,c=3", "--scheduler.ticks", "digest=0 9,18 * * *"}, nil)
	if diff := cmp.Diff(map[string]int{"a": 1, "b": 2, "c": 3}, c.Worker.Queues); diff != "" {
		t.Errorf("worker.queues (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"digest": "0 9,18 * * *"}, c.Scheduler.Ticks); diff != "" {
		t.Errorf("scheduler.ticks (-want +got):\n%s", diff)
	}
}

func TestLoadBadValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		vars map[string]string
		want []string // lines of the error
	}{
		{
			name: "env values that do not parse",
			vars: map[string]string{
				"MOIM_HTTP_REQUEST_TIMEOUT": "soon",
				"MOIM_WORKER_CONCURRENCY":   "ten",
				"MOIM_AUTH_ACCESS_TTL":      "15",
			},
			want: []string{
				"auth.access_ttl: must be a duration such as 500ms, 5s, 15m or 336h",
				"http.request_timeout: must be a duration such as 500ms, 5s, 15m or 336h",
				"worker.concurrency: must be a whole number",
			},
		},
		{
			name: "queue without weight",
			vars: map[string]string{"MOIM_WORKER_QUEUES": "critical=6,default"},
			want: []string{`worker.queues: "default" is not name=value`},
		},
		{
			name: "queue weight not a number",
			vars: map[string]string{"MOIM_WORKER_QUEUES": "critical=high"},
			want: []string{`worker.queues: weight of "critical" must be a whole number`},
		},
		{
			name: "tick without name",
			vars: map[string]string{"MOIM_SCHEDULER_TICKS": "=@hourly"},
			want: []string{`scheduler.ticks: "=@hourly" has no name`},
		},
		{
			name: "bad types and bad values are reported together",
			vars: map[string]string{
				"MOIM_HTTP_REQUEST_TIMEOUT": "abc",
				"MOIM_HTTP_ADDR":            "bad",
				"MOIM_WORKER_QUEUES":        "critical=x",
			},
			want: []string{
				"http.addr: must be host:port",
				"http.request_timeout: must be a duration such as 500ms, 5s, 15m or 336h",
				`worker.queues: weight of "critical" must be a whole number`,
			},
		},
		{
			name: "bare number as duration in the file",
			args: []string{"--config", "testdata/numeric_duration.yaml"},
			want: []string{"http.request_timeout: must be a duration with a unit, such as 5s, 15m or 336h"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := config.Load(tt.args, env(tt.vars))
			if err == nil {
				t.Fatalf("Load = %+v, want an error", c)
			}
			if diff := cmp.Diff(tt.want, lines(err)); diff != "" {
				t.Errorf("error lines (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadConfigFileSources(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		vars     map[string]string
		wantAddr string
	}{
		{"MOIM_CONFIG", nil, map[string]string{"MOIM_CONFIG": "testdata/file.yaml"}, "127.0.0.1:1001"},
		{"--config", []string{"--config", "testdata/other.yaml"}, nil, "127.0.0.1:2002"},
		{"--config=", []string{"--config=testdata/other.yaml"}, nil, "127.0.0.1:2002"},
		{"--config wins over MOIM_CONFIG", []string{"--config", "testdata/other.yaml"}, map[string]string{"MOIM_CONFIG": "testdata/file.yaml"}, "127.0.0.1:2002"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := load(t, tt.args, tt.vars)
			if c.HTTP.Addr != tt.wantAddr {
				t.Errorf("http.addr = %q, want %q", c.HTTP.Addr, tt.wantAddr)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		vars map[string]string
	}{
		{"flag", []string{"--config", "testdata/nope.yaml"}, nil},
		{"env", nil, map[string]string{"MOIM_CONFIG": "testdata/nope.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load(tt.args, env(tt.vars))
			if !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Load error = %v, want fs.ErrNotExist", err)
			}
			if !strings.Contains(err.Error(), "testdata/nope.yaml") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestLoadUnknownKeys(t *testing.T) {
	t.Parallel()
	_, err := config.Load([]string{"--config", "testdata/unknown.yaml"}, nil)
	if err == nil {
		t.Fatal("Load succeeded, want an error naming the unknown keys")
	}
	if !strings.Contains(err.Error(), "unknown keys: bogus, http.adr") {
		t.Errorf("error = %q, want it to name bogus and http.adr", err)
	}
	if strings.Contains(err.Error(), "worker.queues") {
		t.Errorf("error = %q names a queue, but queue names are free-form", err)
	}
}

func TestLoadFlagErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		wantErr string
		wantIs  error
	}{
		{"help", []string{"--help"}, "", pflag.ErrHelp},
		{"unknown flag", []string{"--http.adr=:1"}, "unknown flag: --http.adr", nil},
		{"bad typed value", []string{"--worker.concurrency=many"}, "worker.concurrency", nil},
		{"positional argument", []string{"--http.addr=:1", "extra"}, "unexpected arguments: extra", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load(tt.args, nil)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error = %v, want errors.Is %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestFlagSetHasEveryKey(t *testing.T) {
	t.Parallel()
	fset := config.FlagSet("moim")
	usage := fset.FlagUsages()
	if fset.Lookup("config") == nil {
		t.Error("no --config flag")
	}
	for key := range config.Default().Masked() {
		if fset.Lookup(key) == nil {
			t.Errorf("no flag --%s", key)
		}
		if !strings.Contains(usage, config.EnvName(key)) {
			t.Errorf("usage does not mention %s", config.EnvName(key))
		}
	}
	if got := config.EnvName("http.read_header_timeout"); got != "MOIM_HTTP_READ_HEADER_TIMEOUT" {
		t.Errorf("EnvName = %q, want MOIM_HTTP_READ_HEADER_TIMEOUT", got)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	const dbPassword = "db-pass-do-not-print"
	const shortKey = "short-jwt-key-do-not-print"
	c := load(t, nil, map[string]string{
		"MOIM_ENV":                     "staging",
		"MOIM_LOG_LEVEL":               "loud",
		"MOIM_HTTP_ADDR":               "8080",
		"MOIM_HTTP_BODY_LIMIT":         "0",
		"MOIM_HTTP_SHUTDOWN_TIMEOUT":   "-1s",
		"MOIM_HTTP_TRUSTED_PROXIES":    "10.0.0.1",
		"MOIM_DATABASE_URL":            "oracle://scott:" + dbPassword + "@db/orcl",
		"MOIM_DATABASE_MAX_OPEN_CONNS": "2",
		"MOIM_DATABASE_MAX_IDLE_CONNS": "5",
		"MOIM_REDIS_URL":               "http://cache:6379",
		"MOIM_AUTH_JWT_KEY":            shortKey,
		"MOIM_WORKER_CONCURRENCY":      "0",
		"MOIM_WORKER_QUEUES":           "critical=0",
		"MOIM_OUTBOX_POLL_INTERVAL":    "0s",
		"MOIM_SCHEDULER_TIMEZONE":      "Mars/Olympus_Mons",
	})
	err := c.Validate()
	want := []string{
		"auth.jwt_key: must be at least 32 bytes",
		"database.max_idle_conns: must not exceed database.max_open_conns",
		"database.url: must start with postgres://, postgresql://, mysql:// or sqlite:",
		"env: must be local or production",
		`http.addr: must be host:port`,
		"http.body_limit: must be a positive number of bytes",
		"http.shutdown_timeout: must be a positive duration",
		`http.trusted_proxies: "10.0.0.1" is not a CIDR (write 10.0.0.1/32 for one address)`,
		"log.level: must be debug, info, warn or error",
		"outbox.poll_interval: must be a positive duration",
		"redis.url: must start with redis://, rediss:// or redis-sentinel://",
		`scheduler.timezone: "Mars/Olympus_Mons" is not a known time zone`,
		"worker.concurrency: must be between 1 and 1000",
		`worker.queues: weight of "critical" must be at least 1`,
	}
	if diff := cmp.Diff(want, lines(err)); diff != "" {
		t.Errorf("Validate lines (-want +got):\n%s", diff)
	}
	for _, secret := range []string{dbPassword, shortKey} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("Validate error reveals a secret: %q", err)
		}
	}
}

func TestValidateRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(c *config.Config)
		want   string // the one error line; "" for valid
	}{
		{"sqlite file", func(c *config.Config) { c.Database.URL = "sqlite:/var/lib/moim.db" }, ""},
		{"sqlite memory", func(c *config.Config) { c.Database.URL = "sqlite::memory:" }, ""},
		{"sqlite without path", func(c *config.Config) { c.Database.URL = "sqlite:" }, "database.url: sqlite: needs a file path (sqlite:data/moim.db) or :memory: (sqlite::memory:)"},
		{"postgres", func(c *config.Config) { c.Database.URL = "postgres://u:p@127.0.0.1:5432/moim?sslmode=disable" }, ""},
		{"mysql", func(c *config.Config) { c.Database.URL = "mysql://root@127.0.0.1:3306/test" }, ""},
		{"mysql without slashes", func(c *config.Config) { c.Database.URL = "mysql:root@tcp(db)/moim" }, "database.url: must be a URL such as mysql://user:pass@host:port/dbname"},
		{"postgres without host", func(c *config.Config) { c.Database.URL = "postgres:///moim" }, "database.url: has no host"},
		{"redis", func(c *config.Config) { c.Redis.URL = "redis://:p@127.0.0.1:6379/0" }, ""},
		{"rediss", func(c *config.Config) { c.Redis.URL = "rediss://cache.example:6380/1" }, ""},
		{"redis bad db", func(c *config.Config) { c.Redis.URL = "redis://127.0.0.1:6379/x" }, "redis.url: must be redis://[:password@]host:port/db (or rediss://)"},
		{"sentinel", func(c *config.Config) { c.Redis.URL = "redis-sentinel://:p@s1:26379,s2:26379/0?master=mymaster" }, ""},
		{"sentinel without master", func(c *config.Config) { c.Redis.URL = "redis-sentinel://s1:26379/0" }, "redis.url: must be redis-sentinel://[:password@]host:port[,host:port]/db?master=name"},
		{"idle equal to open", func(c *config.Config) { c.Database.MaxOpenConns, c.Database.MaxIdleConns = 4, 4 }, ""},
		{"idle set, open computed", func(c *config.Config) { c.Database.MaxIdleConns = 50 }, ""},
		{"negative pool", func(c *config.Config) { c.Database.MaxOpenConns = -1 }, "database.max_open_conns: must not be negative"},
		{"port zero", func(c *config.Config) { c.HTTP.Addr = "127.0.0.1:0" }, ""},
		{"named port", func(c *config.Config) { c.HTTP.Addr = "localhost:http" }, "http.addr: must be host:port"},
		{"metrics off", func(c *config.Config) { c.Worker.MetricsAddr = "" }, ""},
		{"retention too short", func(c *config.Config) { c.Outbox.Retention = 30 * time.Second }, "outbox.retention: must be at least 1m0s so a row sent again meets its task id"},
		{"retention at the floor", func(c *config.Config) { c.Outbox.Retention = time.Minute }, ""},
		{"metrics bad", func(c *config.Config) { c.Worker.MetricsAddr = "9091" }, "worker.metrics_addr: must be host:port or empty"},
		{"cors any", func(c *config.Config) { c.HTTP.CORSOrigins = []string{"*", "https://*.example.com"} }, ""},
		{"cors with path", func(c *config.Config) { c.HTTP.CORSOrigins = []string{"https://app.example/x"} }, `http.cors_origins: "https://app.example/x" must be * or an origin such as https://app.example.com`},
		{"public url", func(c *config.Config) { c.HTTP.PublicURL = "https://moim.example/base" }, ""},
		{"public url without scheme", func(c *config.Config) { c.HTTP.PublicURL = "moim.example" }, "http.public_url: must be an http:// or https:// URL"},
		{"catch-up off", func(c *config.Config) { c.Scheduler.CatchUpWindow = 0 }, ""},
		{"catch-up negative", func(c *config.Config) { c.Scheduler.CatchUpWindow = -time.Minute }, "scheduler.catch_up_window: must not be negative"},
		{"empty tick spec", func(c *config.Config) { c.Scheduler.Ticks = map[string]string{"digest": " "} }, `scheduler.ticks: spec of "digest" is empty`},
		{"no queues", func(c *config.Config) { c.Worker.Queues = nil }, "worker.queues: must name at least one queue"},
		{"concurrency max", func(c *config.Config) { c.Worker.Concurrency = 1000 }, ""},
		{"concurrency over max", func(c *config.Config) { c.Worker.Concurrency = 1001 }, "worker.concurrency: must be between 1 and 1000"},
		{"batch size zero", func(c *config.Config) { c.Outbox.BatchSize = 0 }, "outbox.batch_size: must be at least 1"},
		{"refresh shorter than access", func(c *config.Config) { c.Auth.RefreshTTL = time.Minute }, "auth.refresh_ttl: must be longer than auth.access_ttl"},
		{"jwt key 32 bytes", func(c *config.Config) { c.Auth.JWTKey = strings.Repeat("k", 32) }, ""},
		{"admin user with colon", func(c *config.Config) { c.Admin.User = "ad:min" }, "admin.user: must not contain ':'"},
		{"admin email", func(c *config.Config) { c.Admin.Email = "ops@example.com" }, ""},
		{"admin email with name", func(c *config.Config) { c.Admin.Email = "Ops <ops@example.com>" }, "admin.email: must be a bare e-mail address such as ops@example.com"},
		{"log format", func(c *config.Config) { c.Log.Format = "xml" }, "log.format: must be text or json"},
		{"webhook secret", func(c *config.Config) { c.Payments.WebhookSecret = strings.Repeat("s", 16) }, ""},
		{"webhook secret short", func(c *config.Config) { c.Payments.WebhookSecret = "whsec" }, "payments.webhook_secret: must be at least 16 bytes (or empty to disable the webhook)"},
		{"webhook tolerance zero", func(c *config.Config) { c.Payments.WebhookTolerance = 0 }, "payments.webhook_tolerance: must be between 1s and 1h"},
		{"rate off", func(c *config.Config) { c.RateLimit.LoginPerIP = "off" }, ""},
		{"rate seconds", func(c *config.Config) { c.RateLimit.RefreshPerIP = "5/30s" }, ""},
		{"rate without window", func(c *config.Config) { c.RateLimit.SignupPerIP = "10" }, "rate_limit.signup_per_ip: must be requests/window such as 10/1h, or off"},
		{"rate zero", func(c *config.Config) { c.RateLimit.LoginFailuresPerEmail = "0/1m" }, "rate_limit.login_failures_per_email: requests must be a positive whole number"},
		{"login failures per IP off", func(c *config.Config) { c.RateLimit.LoginFailuresPerIP = "off" }, ""},
		{"login delay zero", func(c *config.Config) { c.RateLimit.LoginDelay = 0 }, "rate_limit.login_delay: must be between 10ms and 1m"},
		{"login max delay below the delay", func(c *config.Config) { c.RateLimit.LoginMaxDelay = 500 * time.Millisecond }, "rate_limit.login_max_delay: must be between rate_limit.login_delay and 1h"},
		{"login max delay a day", func(c *config.Config) { c.RateLimit.LoginMaxDelay = 24 * time.Hour }, "rate_limit.login_max_delay: must be between rate_limit.login_delay and 1h"},
		{"no device cookie", func(c *config.Config) { c.RateLimit.LoginDeviceTTL = 0 }, ""},
		{"device cookie negative", func(c *config.Config) { c.RateLimit.LoginDeviceTTL = -time.Hour }, "rate_limit.login_device_ttl: must be between 0 and 9600h (400 days, the most browsers keep a cookie)"},
		{"rate short window", func(c *config.Config) { c.RateLimit.LoginPerIP = "10/10ms" }, "rate_limit.login_per_ip: window must be a duration of at least 1s, such as 1m or 1h"},
		{"argon2 memory tiny", func(c *config.Config) { c.Auth.PasswordMemoryKiB = 64 }, "auth.password_memory_kib: must be between 1024 (1 MiB) and 4194304 (4 GiB)"},
		{"argon2 no passes", func(c *config.Config) { c.Auth.PasswordIterations = 0 }, "auth.password_iterations: must be between 1 and 100"},
		{"smtp", func(c *config.Config) { c.Mail.Provider, c.Mail.Host = "smtp", "smtp.example.com" }, ""},
		{"smtp without host", func(c *config.Config) { c.Mail.Provider = "smtp" }, "mail.host: required with mail.provider smtp"},
		{"smtp bad tls", func(c *config.Config) { c.Mail.Provider, c.Mail.Host, c.Mail.TLS = "smtp", "h", "maybe" }, "mail.tls: must be mandatory, opportunistic or none"},
		{"mail provider", func(c *config.Config) { c.Mail.Provider = "sendgrid" }, "mail.provider: must be log, smtp or none"},
		{"mail off", func(c *config.Config) { c.Mail.Provider = "none" }, ""},
		{"sms off", func(c *config.Config) { c.SMS.Provider = "none" }, ""},
		{"sens without keys", func(c *config.Config) {
			c.SMS.Provider, c.SMS.ServiceID, c.SMS.AccessKey, c.SMS.From = "sens", "ncp:sms:kr:1:moim", "AK", "0212345678"
		}, "sms.secret_key: required with sms.provider sens"},
		{"claim timeout short", func(c *config.Config) { c.Notify.ClaimTimeout = time.Second }, "notify.claim_timeout: must be between 1m (longer than any provider call) and 30m"},
		{"claim timeout long", func(c *config.Config) { c.Notify.ClaimTimeout = time.Hour }, "notify.claim_timeout: must be between 1m (longer than any provider call) and 30m"},
		{"app url", func(c *config.Config) { c.Notify.AppURL = "app.example" }, "notify.app_url: must be an http:// or https:// URL"},
		{"group of 3", func(c *config.Config) { c.Matching.MealGroupSize = 3 }, ""},
		{"group of 9", func(c *config.Config) { c.Matching.StudyGroupSize = 9 }, "matching.study_group_size: must be between 2 and 8"},
		{"wait limit short", func(c *config.Config) { c.Matching.WaitLimit = time.Second }, "matching.wait_limit: must be at least 1m"},
		{"run lead negative", func(c *config.Config) { c.Rooms.RunLead = -time.Hour }, "rooms.run_lead: must be between 0 and 168h"},
		{"max days ahead zero", func(c *config.Config) { c.Rooms.MaxDaysAhead = 0 }, "rooms.max_days_ahead: must be between 1 and 3650"},
		{"mission days ahead", func(c *config.Config) { c.Missions.MaxDaysAhead = 366 }, "missions.max_days_ahead: must be between 1 and 365"},
		{"mission reminder", func(c *config.Config) { c.Missions.ReminderBefore = 0 }, "missions.reminder_before: must be between 1m and 12h"},
		{"task round interval", func(c *config.Config) { c.Tasks.RoundInterval = 1500 * time.Millisecond }, "tasks.round_interval: must be whole seconds between 1s and 1h"},
		{"task round size", func(c *config.Config) { c.Tasks.RoundSize = 0 }, "tasks.round_size: must be between 1 and 1000"},
		{"task invitation ttl", func(c *config.Config) { c.Tasks.InvitationTTL = time.Second }, "tasks.invitation_ttl: must be between 1m and 720h"},
		{"admission retries", func(c *config.Config) { c.Rooms.AdmissionRetries = 21 }, "rooms.admission_retries: must be between 0 and 20"},
		{"admission wait", func(c *config.Config) { c.Rooms.AdmissionRetryWait = time.Minute }, "rooms.admission_retry_wait: must be between 0 and 5s"},
		{"list cache long", func(c *config.Config) { c.Rooms.ListCacheTTL = time.Hour }, "rooms.list_cache_ttl: must be between 0 and 1m"},
		{"dday time", func(c *config.Config) { c.Rooms.DDayTime = "8am" }, `rooms.dday_time: "8am" is not a time of day HH:MM`},
		{"grace zero", func(c *config.Config) { c.Rooms.ReminderGrace = 0 }, "rooms.reminder_grace: must be between 3m0s and 6h0m0s"},
		{"reminder category", func(c *config.Config) { c.Rooms.EndedCategories = []string{"SWIM"} }, `rooms.ended_categories: "SWIM" is not a category (MEAL, STUDY or RUN)`},
		{"evaluation range", func(c *config.Config) { c.Rooms.EvaluationMin = 1 }, "rooms.evaluation_min: evaluation_min..evaluation_max must be a range around 0 within -50..50"},
		{"storage backend", func(c *config.Config) { c.Storage.Backend = "ftp" }, "storage.backend: must be local or s3"},
		{"image bytes", func(c *config.Config) { c.Images.MaxBytes = 0 }, "images.max_bytes: must be between 1024 and 1073741824"},
		{"image pixels", func(c *config.Config) { c.Images.MaxPixels = 144400 }, "images.max_pixels: must be between 1000000 and 500000000"},
		{"image url expiry", func(c *config.Config) { c.Images.URLExpiry = 8 * 24 * time.Hour }, "images.url_expiry: must be between 1m and 168h"},
		{"image upload expiry", func(c *config.Config) { c.Images.UploadExpiry = 0 }, "images.upload_expiry: must be between 1m and 168h"},
		{"storage local without dir", func(c *config.Config) { c.Storage.Local.Dir = " " }, "storage.local.dir: required with storage.backend local"},
		{"storage url key short", func(c *config.Config) { c.Storage.Local.URLKey = "short" }, "storage.local.url_key: must be at least 32 bytes"},
		{"storage public url", func(c *config.Config) { c.Storage.PublicBaseURL = "cdn.example.com" }, "storage.public_base_url: must be an http:// or https:// URL"},
		{"s3 with the default chain", func(c *config.Config) { c.Storage.Backend, c.Storage.S3.Bucket = "s3", "moim" }, ""},
		{"s3 complete", func(c *config.Config) {
			c.Storage.Backend, c.Storage.PublicBaseURL = "s3", "https://cdn.example.com/img"
			c.Storage.S3 = config.StorageS3Config{Bucket: "moim", Endpoint: "http://127.0.0.1:9000", Region: "auto",
				PathStyle: true, AccessKey: "AK", SecretKey: "SK", Prefix: "prod/v1.0/"}
		}, ""},
		{"s3 without bucket", func(c *config.Config) { c.Storage.Backend = "s3" }, "storage.s3.bucket: required with storage.backend s3"},
		{"s3 without region", func(c *config.Config) { c.Storage.Backend, c.Storage.S3.Bucket, c.Storage.S3.Region = "s3", "moim", "" }, "storage.s3.region: required with storage.backend s3"},
		{"s3 bad endpoint", func(c *config.Config) {
			c.Storage.Backend, c.Storage.S3.Bucket, c.Storage.S3.Endpoint = "s3", "moim", "minio:9000"
		}, "storage.s3.endpoint: must be an http:// or https:// URL"},
		{"s3 secret alone", func(c *config.Config) {
			c.Storage.Backend, c.Storage.S3.Bucket, c.Storage.S3.SecretKey = "s3", "moim", "SK"
		}, "storage.s3.access_key: set both access_key and secret_key, or neither for the default credential chain"},
		{"s3 climbing prefix", func(c *config.Config) {
			c.Storage.Backend, c.Storage.S3.Bucket, c.Storage.S3.Prefix = "s3", "moim", "a/../b"
		}, "storage.s3.prefix: must be segments of letters, digits, '-', '_' or '.' separated by '/', none of them . or .."},
		{"s3 absolute prefix", func(c *config.Config) {
			c.Storage.Backend, c.Storage.S3.Bucket, c.Storage.S3.Prefix = "s3", "moim", "/a"
		}, "storage.s3.prefix: must be segments of letters, digits, '-', '_' or '.' separated by '/', none of them . or .."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := load(t, nil, nil)
			tt.mutate(c)
			var want []string
			if tt.want != "" {
				want = []string{tt.want}
			}
			if diff := cmp.Diff(want, lines(c.Validate())); diff != "" {
				t.Errorf("Validate lines (-want +got):\n%s", diff)
			}
		})
	}
}

// Storage URLs are signed with storage.local.url_key, or else with a key
// derived from auth.jwt_key: the same for every process with that key,
// and never the JWT key itself.
func TestStorageURLKey(t *testing.T) {
	t.Parallel()
	jwt := strings.Repeat("j", 32)
	a := load(t, nil, map[string]string{"MOIM_AUTH_JWT_KEY": jwt})
	b := load(t, nil, map[string]string{"MOIM_AUTH_JWT_KEY": jwt})
	other := load(t, nil, map[string]string{"MOIM_AUTH_JWT_KEY": strings.Repeat("o", 32)})
	if !bytes.Equal(a.StorageURLKey(), b.StorageURLKey()) || len(a.StorageURLKey()) != 32 {
		t.Errorf("derived keys differ or are not 32 bytes: %x, %x", a.StorageURLKey(), b.StorageURLKey())
	}
	if bytes.Equal(a.StorageURLKey(), other.StorageURLKey()) || bytes.Equal(a.StorageURLKey(), []byte(jwt)) {
		t.Error("the derived key does not depend on auth.jwt_key, or is auth.jwt_key itself")
	}
	set := load(t, nil, map[string]string{"MOIM_AUTH_JWT_KEY": jwt, "MOIM_STORAGE_LOCAL_URL_KEY": strings.Repeat("u", 32)})
	if string(set.StorageURLKey()) != strings.Repeat("u", 32) {
		t.Errorf("StorageURLKey = %q, want storage.local.url_key", set.StorageURLKey())
	}
}

func TestProductionRequiresSecrets(t *testing.T) {
	t.Parallel()
	c := load(t, nil, map[string]string{"MOIM_ENV": "production"})
	generated, err := c.FillLocalSecrets("")
	if err != nil || len(generated) != 0 {
		t.Fatalf("FillLocalSecrets in production = %v, %v; want nothing", generated, err)
	}
	if c.Auth.JWTKey != "" || c.Admin.Password != "" {
		t.Error("FillLocalSecrets set a secret in production")
	}
	if u := c.DatabaseURL(); u != "" {
		t.Errorf("DatabaseURL() in production = %q, want empty (no SQLite fallback)", u)
	}
	want := []string{
		"admin.password: required in production",
		"auth.jwt_key: required in production",
		"database.url: required in production",
		"mail.provider: log sends no mail (it only keeps it for /admin/mailbox); in production set smtp, or none to turn mail off",
		"redis.url: required in production",
		"sms.provider: log sends no SMS (it only keeps them for /admin/mailbox); in production set sens, or none to turn SMS off",
	}
	if diff := cmp.Diff(want, lines(c.Validate())); diff != "" {
		t.Errorf("Validate lines (-want +got):\n%s", diff)
	}

	full := load(t, nil, map[string]string{
		"MOIM_ENV":            "production",
		"MOIM_DATABASE_URL":   "postgres://moim:pw@db:5432/moim",
		"MOIM_REDIS_URL":      "redis://:pw@cache:6379/0",
		"MOIM_AUTH_JWT_KEY":   strings.Repeat("k", 32),
		"MOIM_ADMIN_PASSWORD": "a-long-admin-password",
		"MOIM_MAIL_PROVIDER":  "none",
		"MOIM_SMS_PROVIDER":   "none",
	})
	if err := full.Validate(); err != nil {
		t.Errorf("Validate of a complete production config: %v", err)
	}
}

func TestFillLocalSecrets(t *testing.T) {
	t.Parallel()
	c := load(t, nil, nil)
	generated, err := c.FillLocalSecrets("")
	if err != nil {
		t.Fatalf("FillLocalSecrets: %v", err)
	}
	if diff := cmp.Diff([]string{"auth.jwt_key", "admin.password"}, generated); diff != "" {
		t.Errorf("generated keys (-want +got):\n%s", diff)
	}
	key, err := base64.StdEncoding.DecodeString(c.Auth.JWTKey)
	if err != nil || len(key) != 32 {
		t.Errorf("auth.jwt_key decodes to %d bytes (err %v), want 32 random bytes in base64", len(key), err)
	}
	if c.Admin.Password == "" {
		t.Error("admin.password is still empty")
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate after FillLocalSecrets: %v", err)
	}
	again, err := c.FillLocalSecrets("")
	if err != nil || len(again) != 0 {
		t.Errorf("second FillLocalSecrets = %v, %v; want nothing to fill", again, err)
	}

	other := load(t, nil, nil)
	if _, err := other.FillLocalSecrets(""); err != nil {
		t.Fatalf("FillLocalSecrets: %v", err)
	}
	if other.Auth.JWTKey == c.Auth.JWTKey || other.Admin.Password == c.Admin.Password {
		t.Error("two configs got the same generated secrets")
	}

	preset := load(t, nil, map[string]string{"MOIM_AUTH_JWT_KEY": strings.Repeat("p", 40)})
	generated, err = preset.FillLocalSecrets("")
	if err != nil {
		t.Fatalf("FillLocalSecrets: %v", err)
	}
	if diff := cmp.Diff([]string{"admin.password"}, generated); diff != "" {
		t.Errorf("generated keys with a preset jwt key (-want +got):\n%s", diff)
	}
	if preset.Auth.JWTKey != strings.Repeat("p", 40) {
		t.Error("FillLocalSecrets replaced a configured jwt key")
	}
}

// Local mode keeps what it generated beside its SQLite file, so a restart
// changes nothing; configured values win and are never written there.
func TestFillLocalSecretsKept(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	vars := map[string]string{"MOIM_DATABASE_URL": "sqlite:" + filepath.Join(dir, "moim.db")}
	first := load(t, nil, vars)
	file := first.LocalSecretsFile()
	if want := filepath.Join(dir, "local-secrets.json"); file != want {
		t.Fatalf("LocalSecretsFile = %q, want %q", file, want)
	}
	generated, err := first.FillLocalSecrets(file)
	if err != nil || len(generated) != 2 {
		t.Fatalf("FillLocalSecrets = %v, %v; want both keys", generated, err)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secrets file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}

	// The next start reads the same values.
	second := load(t, nil, vars)
	if _, err := second.FillLocalSecrets(second.LocalSecretsFile()); err != nil {
		t.Fatal(err)
	}
	if second.Auth.JWTKey != first.Auth.JWTKey || second.Admin.Password != first.Admin.Password {
		t.Error("a restart got other secrets than the first start kept")
	}

	// A configured key wins and is not written; the kept password still serves.
	vars["MOIM_AUTH_JWT_KEY"] = strings.Repeat("c", 40)
	third := load(t, nil, vars)
	if _, err := third.FillLocalSecrets(third.LocalSecretsFile()); err != nil {
		t.Fatal(err)
	}
	if third.Auth.JWTKey != strings.Repeat("c", 40) || third.Admin.Password != first.Admin.Password {
		t.Error("configured key replaced, or kept password lost")
	}
	b, err := os.ReadFile(file)
	if err != nil || strings.Contains(string(b), strings.Repeat("c", 40)) {
		t.Errorf("secrets file %q, %v: must not take a configured key", b, err)
	}

	// A broken file is an error that says what to do, not new secrets.
	if err := os.WriteFile(file, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	broken := load(t, nil, map[string]string{"MOIM_DATABASE_URL": vars["MOIM_DATABASE_URL"]})
	if _, err := broken.FillLocalSecrets(file); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Errorf("FillLocalSecrets(broken file) = %v, want an error saying to delete it", err)
	}

	for _, tt := range []struct{ env, url string }{
		{"local", "sqlite::memory:"},
		{"local", "sqlite:file::memory:?cache=shared"},
		{"local", "postgres://u@h/db"},
		{"production", "sqlite:" + filepath.Join(dir, "moim.db")},
	} {
		c := load(t, nil, map[string]string{"MOIM_ENV": tt.env, "MOIM_DATABASE_URL": tt.url})
		if f := c.LocalSecretsFile(); f != "" {
			t.Errorf("LocalSecretsFile(%s, %s) = %q, want none", tt.env, tt.url, f)
		}
	}
	if f := load(t, nil, nil).LocalSecretsFile(); f != filepath.Join("data", "local-secrets.json") {
		t.Errorf("default LocalSecretsFile = %q, want data/local-secrets.json", f)
	}
}

func TestLogValueMasksSecrets(t *testing.T) {
	t.Parallel()
	secrets := map[string]string{
		"jwt":   "jwt-secret-value-0123456789abcdef-0123",
		"admin": "admin-secret-password",
		"db":    "db-secret-password",
		"redis": "redis-secret-password",
		"s3":    "s3-secret-access-key",
		"url":   "storage-url-key-0123456789abcdef-0123",
		"hook":  "payment-webhook-secret-0123456789",
	}
	c := load(t, nil, map[string]string{
		"MOIM_STORAGE_S3_SECRET_KEY":   secrets["s3"],
		"MOIM_STORAGE_LOCAL_URL_KEY":   secrets["url"],
		"MOIM_PAYMENTS_WEBHOOK_SECRET": secrets["hook"],
		"MOIM_AUTH_JWT_KEY":            secrets["jwt"],
		"MOIM_ADMIN_PASSWORD":          secrets["admin"],
		"MOIM_DATABASE_URL":            "postgres://moim:" + secrets["db"] + "@db.example:5432/moim?sslmode=require",
		"MOIM_REDIS_URL":               "redis://:" + secrets["redis"] + "@cache.example:6379/0",
	})

	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("starting", slog.Any("config", c))
	slog.New(slog.NewTextHandler(&text, nil)).Info("by value", slog.Any("config", *c))
	slog.New(slog.NewJSONHandler(&js, nil)).Info("starting", slog.Any("config", c))
	masked, err := json.Marshal(c.Masked())
	if err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"text": text.String(), "json": js.String(), "Masked": string(masked)} {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s output reveals %q:\n%s", name, s, out)
			}
		}
		for _, want := range []string{
			"postgres://moim:****@db.example:5432/moim?sslmode=require",
			"redis://:****@cache.example:6379/0",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("%s output lacks %q:\n%s", name, want, out)
			}
		}
	}

	// The JSON form keeps sections as objects and durations readable.
	var rec struct {
		Config struct {
			HTTP  map[string]any `json:"http"`
			Auth  map[string]any `json:"auth"`
			Admin map[string]any `json:"admin"`
		} `json:"config"`
	}
	if err := json.Unmarshal(js.Bytes(), &rec); err != nil {
		t.Fatalf("decode JSON log: %v", err)
	}
	if got := rec.Config.Auth["jwt_key"]; got != "****" {
		t.Errorf("auth.jwt_key logged as %v, want ****", got)
	}
	if got := rec.Config.Admin["password"]; got != "****" {
		t.Errorf("admin.password logged as %v, want ****", got)
	}
	if got := rec.Config.HTTP["request_timeout"]; got != "30s" {
		t.Errorf("http.request_timeout logged as %v, want 30s", got)
	}

	unset := load(t, nil, nil).Masked()
	for _, key := range []string{"auth.jwt_key", "admin.password", "redis.url", "payments.webhook_secret"} {
		if unset[key] != "" {
			t.Errorf("Masked()[%s] = %v for an unset secret, want empty", key, unset[key])
		}
	}
	if got := unset["database.url"]; got != "sqlite:data/moim.db" {
		t.Errorf("Masked()[database.url] = %v, want the effective sqlite:data/moim.db", got)
	}
}

func TestMaskedURLForms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url, want string
	}{
		{"mysql://moim:pa%40ss@db:3306/moim", "mysql://moim:****@db:3306/moim"},
		{"postgres://moim@db/moim?password=qs-secret&sslmode=disable", "postgres://moim@db/moim?password=****&sslmode=disable"},
		{"postgres://db/moim", "postgres://db/moim"},
		{"sqlite::memory:", "sqlite::memory:"},
		{"postgres://moim:bad%zzsecret@db/moim", "****"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			c := load(t, nil, map[string]string{"MOIM_DATABASE_URL": tt.url})
			if got := c.Masked()["database.url"]; got != tt.want {
				t.Errorf("masked %q = %q, want %q", tt.url, got, tt.want)
			}
		})
	}
}

func TestNewLoggerAddsRequestID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		format string
		want   string
	}{
		{"json", `"request_id":"req-123"`},
		{"text", "request_id=req-123"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			logger := config.NewLogger(&buf, config.LogConfig{Level: "info", Format: tt.format})
			ctx := domain.WithRequestID(context.Background(), "req-123")

			logger.InfoContext(ctx, "with id")
			logger.With(slog.String("component", "api")).WarnContext(ctx, "derived logger")
			logger.InfoContext(context.Background(), "without id")
			logger.DebugContext(ctx, "below level")
			logger.InfoContext(ctx, "explicit id", slog.String("request_id", "req-123"))

			got := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(got) != 4 {
				t.Fatalf("got %d lines, want 4 (debug filtered):\n%s", len(got), buf.String())
			}
			for _, line := range []string{got[0], got[1], got[3]} {
				if !strings.Contains(line, tt.want) {
					t.Errorf("line lacks %s: %s", tt.want, line)
				}
			}
			if n := strings.Count(got[3], "request_id"); n != 1 {
				t.Errorf("line that logs request_id itself has it %d times, want once: %s", n, got[3])
			}
			if strings.Contains(got[2], "request_id") {
				t.Errorf("line without a request id has one: %s", got[2])
			}
			if tt.format == "json" {
				var rec map[string]any
				if err := json.Unmarshal([]byte(got[0]), &rec); err != nil {
					t.Errorf("json line does not decode: %v", err)
				}
			}
		})
	}
}

func TestNewLoggerLevels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		level     string
		wantLines int // of debug, info, warn, error
	}{
		{"debug", 4}, {"info", 3}, {"warn", 2}, {"error", 1}, {"", 3},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("level %q", tt.level), func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			logger := config.NewLogger(&buf, config.LogConfig{Level: tt.level, Format: "text"})
			logger.Debug("d")
			logger.Info("i")
			logger.Warn("w")
			logger.Error("e")
			if got := strings.Count(buf.String(), "\n"); got != tt.wantLines {
				t.Errorf("lines = %d, want %d:\n%s", got, tt.wantLines, buf.String())
			}
		})
	}
}

// TestExampleFile keeps config.example.yaml honest: it must load to exactly
// the defaults, and name every key with a comment.
func TestExampleFile(t *testing.T) {
	t.Parallel()
	const path = "../config.example.yaml"
	fromFile := load(t, []string{"--config", path}, nil)
	defaults := load(t, nil, nil)
	if diff := cmp.Diff(defaults, fromFile, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("config.example.yaml differs from the defaults (-defaults +file):\n%s", diff)
	}

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	for key := range config.Default().Masked() {
		node := doc.Content[0]
		var keyNode *yaml.Node
		for _, part := range strings.Split(key, ".") {
			keyNode, node = lookup(node, part)
			if node == nil {
				break
			}
		}
		if node == nil {
			t.Errorf("%s: key %s is missing", path, key)
			continue
		}
		if strings.TrimSpace(keyNode.HeadComment+keyNode.LineComment) == "" {
			t.Errorf("%s: key %s has no comment", path, key)
		}
	}
}

// lookup returns the key and value nodes of name in mapping m.
func lookup(m *yaml.Node, name string) (*yaml.Node, *yaml.Node) {
	if m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == name {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

// TestLoadConcurrent shows Load keeps no shared state: each call sees only
// its own arguments and environment.
func TestLoadConcurrent(t *testing.T) {
	t.Parallel()
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := fmt.Sprintf("127.0.0.1:%d", 9000+i)
			queue := fmt.Sprintf("q%d", i)
			c, err := config.Load([]string{"--worker.concurrency", fmt.Sprint(i + 1)},
				env(map[string]string{"MOIM_HTTP_ADDR": addr, "MOIM_WORKER_QUEUES": queue + "=1"}))
			switch {
			case err != nil:
				errs <- err
			case c.HTTP.Addr != addr || c.Worker.Concurrency != i+1 || len(c.Worker.Queues) != 1 || c.Worker.Queues[queue] != 1:
				errs <- fmt.Errorf("load %d got addr %s, concurrency %d, queues %v", i, c.HTTP.Addr, c.Worker.Concurrency, c.Worker.Queues)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestParseRate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in      string
		want    config.Rate
		wantErr bool
	}{
		{"10/1h", config.Rate{Requests: 10, Window: time.Hour}, false},
		{"1/1s", config.Rate{Requests: 1, Window: time.Second}, false},
		{"off", config.Rate{}, false},
		{"", config.Rate{}, true},
		{"-1/1m", config.Rate{}, true},
		{"x/1m", config.Rate{}, true},
		{"10/forever", config.Rate{}, true},
	} {
		got, err := config.ParseRate(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseRate(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	if !(config.Rate{}).Off() {
		t.Error("zero Rate is not Off")
	}
}

func TestLoadBool(t *testing.T) {
	t.Parallel()
	c := load(t, nil, map[string]string{"MOIM_AUTH_REFRESH_COOKIE": "true"})
	if !c.Auth.RefreshCookie {
		t.Error("MOIM_AUTH_REFRESH_COOKIE=true not applied")
	}
	c = load(t, []string{"--auth.refresh_cookie"}, nil)
	if !c.Auth.RefreshCookie {
		t.Error("--auth.refresh_cookie not applied")
	}
}
