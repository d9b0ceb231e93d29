// Package app wires moim's processes from configuration: the API, the worker,
// the scheduler and the outbox relay. The binaries in cmd/ are thin mains
// over Run; cmd/moim runs every role in one process for local use.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"
	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/auth"
	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/cmd/scheduler/cronrun"
	"github.com/moim/moim/config"
	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
	"github.com/moim/moim/jobs/image"
	"github.com/moim/moim/jobs/memredis"
	"github.com/moim/moim/jobs/notify"
	"github.com/moim/moim/jobs/storage"
	"github.com/moim/moim/templates"

	// The default zone is Asia/Seoul; embed the zone database so a minimal
	// host without tzdata still starts.
	_ "time/tzdata"
)

// Role is one part of the system a process runs.
type Role uint8

// The roles. The outbox relay runs in every process that writes (API and
// worker); the scheduler never touches SQL.
const (
	RoleAPI Role = 1 << iota
	RoleWorker
	RoleScheduler
	RoleAll = RoleAPI | RoleWorker | RoleScheduler
)

func (r Role) String() string {
	var parts []string
	if r&RoleAPI != 0 {
		parts = append(parts, "api")
	}
	if r&RoleWorker != 0 {
		parts = append(parts, "worker")
	}
	if r&RoleScheduler != 0 {
		parts = append(parts, "scheduler")
	}
	return strings.Join(parts, "+")
}

// Env is what a process gets from its surroundings, so tests can run it in
// process with their own arguments, environment and output.
type Env struct {
	Args   []string
	Getenv func(string) string
	Stdout io.Writer // the start-up banner (URLs, generated credentials)
	Stderr io.Writer // logs
	Stdin  io.Reader // `moim admin create --password-stdin`; may be nil
}

// Run loads the configuration and runs roles until ctx is cancelled, then
// shuts everything down within the configured timeouts.
func Run(ctx context.Context, env Env, roles Role) error {
	// Only the all-in-one process keeps its generated secrets: a role run
	// on its own is refused below without a shared database anyway.
	cfg, logger, generated, err := setup(env, roles == RoleAll)
	if err != nil {
		return err
	}
	return run(ctx, env, cfg, logger, roles, generated)
}

// Setup loads and validates the configuration and builds the logger. Local
// mode fills missing secrets with throw-away ones and says so once.
func Setup(env Env) (*config.Config, *slog.Logger, error) {
	cfg, logger, _, err := setup(env, true)
	return cfg, logger, err
}

func setup(env Env, keepSecrets bool) (*config.Config, *slog.Logger, []string, error) {
	cfg, err := config.Load(env.Args, env.Getenv)
	if errors.Is(err, pflag.ErrHelp) && env.Stdout != nil {
		fmt.Fprintf(env.Stdout, "Flags (each also has a MOIM_* environment variable):\n%s", config.FlagSet("moim").FlagUsages())
	}
	if err != nil {
		return nil, nil, nil, err
	}
	// Validate with throw-away secrets first, so that a configuration that
	// is refused leaves no secrets file behind.
	probe := *cfg
	if _, err := probe.FillLocalSecrets(""); err != nil {
		return nil, nil, nil, err
	}
	if err := probe.Validate(); err != nil {
		return nil, nil, nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	secrets := ""
	if keepSecrets {
		secrets = cfg.LocalSecretsFile()
	}
	generated, err := cfg.FillLocalSecrets(secrets)
	if err != nil {
		return nil, nil, nil, err
	}
	logger := config.NewLogger(env.Stderr, cfg.Log)
	switch {
	case len(generated) == 0:
	case secrets != "":
		logger.Info("local secrets kept beside the database; set them to choose your own",
			slog.Any("keys", generated), slog.String("file", secrets))
	default:
		logger.Warn("generated throw-away secrets for local use; set them to keep sessions across restarts",
			slog.Any("keys", generated))
	}
	return cfg, logger, generated, nil
}

type component struct {
	name string
	run  func(ctx context.Context) error
}

// wiring is what Run has opened and hands to each role's component: the
// connections every role shares, instead of a long positional list.
type wiring struct {
	cfg      *config.Config
	logger   *slog.Logger
	bdb      *bun.DB
	rdb      redis.UniversalClient
	redisOpt asynq.RedisConnOpt
	reg      *prometheus.Registry
	relay    *jobs.Relay
	// mailbox keeps what the log providers would have sent; nil when
	// neither mail nor SMS goes through a log provider.
	mailbox *notify.Mailbox
	// store keeps uploaded images; nil in a process without the API or
	// the worker.
	store storage.Store
}

func run(ctx context.Context, env Env, cfg *config.Config, logger *slog.Logger, roles Role, generated []string) (err error) {
	// One short line; the whole configuration (secrets masked, some 2.6 KB)
	// only when debugging.
	logger.Info("starting moim", slog.String("roles", roles.String()), slog.String("env", cfg.Env))
	logger.Debug("configuration", slog.Any("config", cfg))
	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()

	redisURL := cfg.Redis.URL
	if redisURL == "" && roles != RoleAll {
		// Each process would get a private in-memory Redis: the API's tasks
		// would never reach a separate worker.
		return fmt.Errorf("redis.url: required when running the %s role on its own; the in-memory Redis only serves the all-in-one process", roles)
	}
	if cfg.Database.URL == "" && roles != RoleAll && roles&(RoleAPI|RoleWorker) != 0 {
		// Processes sharing one Redis must share one database too, not each
		// fall back to a SQLite file of their own.
		return fmt.Errorf("database.url: required when running the %s role on its own; the default SQLite file only serves the all-in-one process", roles)
	}
	if redisURL == "" {
		mr, err := memredis.Start("127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("start in-memory redis: %w", err)
		}
		closers = append(closers, mr.Close)
		redisURL = mr.URL()
		logger.Warn("no redis.url: using an in-memory Redis; queued tasks vanish on exit, the database keeps everything",
			slog.String("addr", mr.Addr()))
	}
	redisOpt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		return fmt.Errorf("redis.url: %w", err)
	}
	// The same options give asynq and the readiness check their clients, so
	// a Sentinel URL works for both.
	rdb, ok := redisOpt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return fmt.Errorf("redis.url: unsupported client type %T", redisOpt.MakeRedisClient())
	}
	closers = append(closers, func() { _ = rdb.Close() })

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var bdb *bun.DB
	if roles&(RoleAPI|RoleWorker) != 0 {
		bdb, err = openDB(ctx, cfg, logger, roles == RoleAll)
		if err != nil {
			return err
		}
		closers = append(closers, func() { _ = bdb.Close() })
		if err := jobs.RegisterTxMetrics(reg); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	var store storage.Store
	if roles&(RoleAPI|RoleWorker) != 0 {
		store, err = storage.New(ctx, storageOptions(cfg))
		if err != nil {
			return fmt.Errorf("storage: %w", err)
		}
		if c, ok := store.(io.Closer); ok {
			closers = append(closers, func() { _ = c.Close() })
		}
	}

	// Every role enqueues or inspects; asynq's clients register a queue
	// only once per process, so each process puts the names back after
	// Redis lost them.
	queueNames := jobs.QueueNames(cfg.Worker.Queues)
	qlog := logger.With(slog.String("component", "queues"))
	comps := []component{{"queues", func(ctx context.Context) error {
		return jobs.KeepQueuesRegistered(ctx, rdb, queueNames, 0, qlog)
	}}}
	var relay *jobs.Relay
	if bdb != nil {
		relay, err = jobs.NewRelay(bdb, jobs.RelayParams{
			Redis:        redisOpt,
			PollInterval: cfg.Outbox.PollInterval,
			BatchSize:    cfg.Outbox.BatchSize,
			Retention:    cfg.Outbox.Retention,
			Logger:       logger.With(slog.String("component", "relay")),
			Registerer:   reg,
		})
		if err != nil {
			return fmt.Errorf("outbox relay: %w", err)
		}
		closers = append(closers, func() { _ = relay.Close() })
		comps = append(comps, component{"relay", relay.Run})
	}

	var banner []string
	// The log providers keep what they would have sent in Redis; the API
	// shows it to admins, whether the worker runs in this process or not.
	var mailbox *notify.Mailbox
	if cfg.Mail.Provider == config.ProviderLog || cfg.SMS.Provider == config.ProviderLog {
		mailbox = notify.NewMailbox(rdb, cfg.Notify.MailboxSize)
	}
	if roles&RoleWorker != 0 {
		c, err := workerComponent(wiring{cfg, logger, bdb, rdb, redisOpt, reg, relay, mailbox, store}, roles != RoleWorker)
		if err != nil {
			return err
		}
		comps = append(comps, c...)
	}
	if roles&RoleScheduler != 0 {
		c, err := schedulerComponent(cfg, logger, redisOpt, reg, roles == RoleScheduler)
		if err != nil {
			return err
		}
		comps = append(comps, c...)
	}
	if roles&RoleAPI != 0 {
		hasher, err := passwordHasher(cfg)
		if err != nil {
			return err
		}
		c, url, closeAPI, err := apiComponent(wiring{cfg, logger, bdb, rdb, redisOpt, reg, relay, mailbox, store}, hasher)
		if err != nil {
			return err
		}
		closers = append(closers, closeAPI)
		comps = append(comps, c)
		banner = append(banner,
			"API:       "+url,
			"Queue UI:  "+url+"/admin/queues  (user "+cfg.Admin.User+")",
		)
		if roles == RoleAll {
			// One registry for every role: the API's /metrics is the
			// process's (worker.metrics_addr and scheduler.metrics_addr
			// are for the roles run on their own).
			banner = append(banner, "Metrics:   "+url+"/metrics")
		}
		// A generated password exists nowhere else, so it is shown once here
		// (not in the log); a configured one is never printed.
		if slices.Contains(generated, "admin.password") {
			where := "generated for this run"
			if f := cfg.LocalSecretsFile(); f != "" {
				where = "generated, kept in " + f
			}
			banner = append(banner, "Admin:     "+cfg.Admin.User+" / "+cfg.Admin.Password+"  ("+where+")")
		}
		if roles == RoleAll {
			if line, adminID := bootstrapAdmin(ctx, cfg, logger, bdb, hasher); line != "" {
				banner = append(banner, line)
				if !cfg.IsProduction() {
					banner = append(banner, pointsHint(cfg, url, adminID, slices.Contains(generated, "admin.password")))
				}
			}
		}
	}
	if len(banner) > 0 && env.Stdout != nil {
		fmt.Fprintf(env.Stdout, "moim is running (%s)\n  %s\nPress Ctrl-C to stop.\n", roles, strings.Join(banner, "\n  "))
	}
	err = runAll(ctx, logger, comps)
	// The in-memory Redis dies with the process: tasks drained into it now
	// would be marked sent and lost, so its rows wait for the next start.
	if relay != nil && cfg.Redis.URL != "" {
		// Requests and tasks that committed while the process was stopping
		// may have left outbox rows after the relay's last pass: hand them
		// to Redis now rather than at the next start.
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if n, derr := relay.Drain(dctx); derr != nil {
			logger.Warn("final outbox drain failed; rows stay for the next relay", slog.Any("error", derr))
		} else if n > 0 {
			logger.Info("final outbox drain", slog.Int("rows", n))
		}
		cancel()
	}
	return err
}

// runAll runs the components until ctx is done or one fails; a failure stops
// the others. Each component returns once its ctx is cancelled and it has
// finished its own graceful shutdown.
func runAll(ctx context.Context, logger *slog.Logger, comps []component) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for _, c := range comps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.run(ctx)
			if err != nil && !errors.Is(err, context.Canceled) {
				logger.Error("component failed", slog.String("component", c.name), slog.Any("error", err))
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("%s: %w", c.name, err)
				}
				mu.Unlock()
			}
			cancel()
		}()
	}
	wg.Wait()
	logger.Info("moim stopped")
	return firstErr
}

func dbOptions(cfg *config.Config) db.Options {
	maxOpen := cfg.Database.MaxOpenConns
	if maxOpen == 0 {
		maxOpen = 4 * runtime.GOMAXPROCS(0)
	}
	maxIdle := cfg.Database.MaxIdleConns
	if maxIdle == 0 {
		maxIdle = maxOpen
	}
	return db.Options{
		MaxOpenConns:    maxOpen,
		MaxIdleConns:    maxIdle,
		ConnMaxLifetime: cfg.Database.ConnMaxLifetime,
		ConnMaxIdleTime: cfg.Database.ConnMaxIdleTime,
	}
}

// storageOptions maps the storage section. The local backend's signed
// URLs point at the API's /v1/objects/, below http.public_url when it is
// set and relative to the API otherwise.
func storageOptions(cfg *config.Config) storage.Options {
	st := cfg.Storage
	return storage.Options{
		Backend: st.Backend,
		Local: storage.LocalOptions{
			Dir:           st.Local.Dir,
			URLKey:        cfg.StorageURLKey(),
			SignedBaseURL: strings.TrimRight(cfg.HTTP.PublicURL, "/") + "/v1/objects",
			PublicBaseURL: st.PublicBaseURL,
		},
		S3: storage.S3Options{
			Bucket: st.S3.Bucket, Endpoint: st.S3.Endpoint, Region: st.S3.Region, PathStyle: st.S3.PathStyle,
			AccessKey: st.S3.AccessKey, SecretKey: st.S3.SecretKey, Prefix: st.S3.Prefix,
			PublicBaseURL: st.PublicBaseURL,
		},
	}
}

// OpenDB opens the configured database.
func OpenDB(ctx context.Context, cfg *config.Config) (*bun.DB, error) {
	bdb, err := db.Open(ctx, cfg.DatabaseURL(), dbOptions(cfg))
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return bdb, nil
}

func openDB(ctx context.Context, cfg *config.Config, logger *slog.Logger, migrate bool) (*bun.DB, error) {
	bdb, err := OpenDB(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// The all-in-one runner brings its own schema up to date so `make run`
	// works on a fresh checkout; split deployments migrate in the release step.
	if migrate {
		applied, err := db.MigrateUp(ctx, bdb)
		if err != nil {
			_ = bdb.Close()
			return nil, fmt.Errorf("migrate: %w", err)
		}
		if len(applied) > 0 {
			logger.Info("migrations applied", slog.Any("migrations", applied))
		}
	}
	return bdb, nil
}

func workerComponent(w wiring, embedded bool) ([]component, error) {
	cfg, logger, bdb, rdb, redisOpt, reg, relay, mailbox := w.cfg, w.logger, w.bdb, w.rdb, w.redisOpt, w.reg, w.relay, w.mailbox
	wlog := logger.With(slog.String("component", "worker"))
	senders, err := newSenders(cfg, wlog, rdb, mailbox)
	if err != nil {
		return nil, err
	}
	loc, err := time.LoadLocation(cfg.Scheduler.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("scheduler.timezone: %w", err)
	}
	renderer, err := templates.New(loc)
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	// The matcher enqueues its deduplicated runs straight to Redis.
	client := asynq.NewClient(redisOpt)
	insp := asynq.NewInspector(redisOpt)
	mux, err := jobs.NewMux(jobs.Deps{
		Client:    client,
		Inspector: insp,
		Matching: jobs.MatchingParams{
			GroupSize: map[domain.Category]int{
				domain.CategoryMeal:  cfg.Matching.MealGroupSize,
				domain.CategoryStudy: cfg.Matching.StudyGroupSize,
			},
			WaitLimit: cfg.Matching.WaitLimit,
			Parallel:  cfg.Matching.Parallel,
		},
		MatchMetrics: jobs.NewMatchMetrics(reg),
		Admission:    jobs.AdmissionParams{Retries: cfg.Rooms.AdmissionRetries, RetryWait: cfg.Rooms.AdmissionRetryWait},
		RoomMetrics:  jobs.NewRoomMetrics(reg),
		Reminders:    reminderRules(cfg, loc),
		Tasks:        jobs.TaskRoundParams{Size: cfg.Tasks.RoundSize, TTL: cfg.Tasks.InvitationTTL},
		DB:           bdb,
		Logger:       wlog,
		Metrics:      jobs.NewMetrics(reg),
		KeepSent:     cfg.Outbox.KeepSent,
		Retention: jobs.RetentionPolicy{
			NotificationsRead:   cfg.Retention.NotificationsRead,
			NotificationsUnread: cfg.Retention.NotificationsUnread,
			Deliveries:          cfg.Retention.Deliveries,
			Sessions:            cfg.Retention.Sessions,
		},
		Relay:          relay,
		Publisher:      jobs.NewPublisher(rdb),
		Renderer:       renderer,
		Mail:           senders.mail,
		SMS:            senders.sms,
		Slack:          senders.slack,
		MessageIDHost:  messageIDHost(cfg.Mail.From),
		AccountCodeKey: cfg.AccountCodeKey(),
		LinkBase:       cfg.Notify.AppURL,
		ClaimTimeout:   cfg.Notify.ClaimTimeout,
		SweepAfter:     cfg.Worker.SweepAfter,
		Storage:        w.store,
		Images: image.Options{Quality: cfg.Images.JPEGQuality, MaxPixels: cfg.Images.MaxPixels,
			Gate: image.NewGate(cfg.Images.ConcurrentDecodes)},
		UploadExpiry: cfg.Images.UploadExpiry,

		// Mission days and windows are read in the scheduler's zone.
		MissionLocation:       loc,
		MissionReminderBefore: cfg.Missions.ReminderBefore,
	})
	if err != nil {
		_ = client.Close()
		_ = insp.Close()
		return nil, fmt.Errorf("worker: %w", err)
	}
	srv := jobs.NewServer(jobs.ServerParams{
		Redis:             redisOpt,
		Concurrency:       cfg.Worker.Concurrency,
		Queues:            cfg.Worker.Queues,
		ShutdownTimeout:   cfg.Worker.ShutdownTimeout,
		TaskCheckInterval: cfg.Worker.TaskCheckInterval,
		Logger:            wlog,
	})
	comps := []component{{"worker", func(ctx context.Context) error {
		defer func() {
			_ = client.Close()
			_ = insp.Close()
			// The SMTP sender keeps sessions open between mails.
			if c, ok := senders.mail.(io.Closer); ok {
				_ = c.Close()
			}
		}()
		if err := srv.Start(mux); err != nil {
			return err
		}
		<-ctx.Done()
		srv.Shutdown() // waits up to worker.shutdown_timeout for running tasks
		return nil
	}}}
	// A worker process of its own serves /metrics and /healthz on a small
	// port; embedded in the all-in-one runner the API already serves them.
	if !embedded && cfg.Worker.MetricsAddr != "" {
		comps = append(comps, httpComponent("worker-http", cfg.Worker.MetricsAddr, opsHandler(reg), cfg.HTTP, wlog, nil, nil))
	}
	return comps, nil
}

// tickOverrides are scheduler.ticks plus the task-invitations tick every
// tasks.round_interval, unless scheduler.ticks names that tick itself.
func tickOverrides(cfg *config.Config) map[string]string {
	out := make(map[string]string, len(cfg.Scheduler.Ticks)+1)
	for name, spec := range cfg.Scheduler.Ticks {
		out[name] = spec
	}
	if _, ok := out[jobs.TickTaskInvitations]; !ok && cfg.Tasks.RoundInterval > 0 {
		out[jobs.TickTaskInvitations] = "@every " + cfg.Tasks.RoundInterval.String()
	}
	return out
}

func schedulerComponent(cfg *config.Config, logger *slog.Logger, redisOpt asynq.RedisConnOpt, reg *prometheus.Registry, own bool) ([]component, error) {
	loc, err := time.LoadLocation(cfg.Scheduler.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("scheduler.timezone: %w", err)
	}
	slog := logger.With(slog.String("component", "scheduler"))
	r, err := cronrun.New(cronrun.Params{
		Redis:         redisOpt,
		Ticks:         jobs.Ticks(),
		Overrides:     tickOverrides(cfg),
		Location:      loc,
		CatchUpWindow: cfg.Scheduler.CatchUpWindow,
		Logger:        slog,
		Registerer:    reg,
	})
	if err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	comps := []component{{"scheduler", r.Run}}
	if own && cfg.Scheduler.MetricsAddr != "" {
		comps = append(comps, httpComponent("scheduler-http", cfg.Scheduler.MetricsAddr, opsHandler(reg), cfg.HTTP, slog, nil, nil))
	}
	return comps, nil
}

// socialLogin maps auth.providers, presets applied, into the flows; nil
// when none is configured.
func socialLogin(cfg *config.Config) (*auth.Social, error) {
	providers := cfg.SocialProviders()
	if len(providers) == 0 {
		return nil, nil
	}
	params := auth.SocialParams{StateKey: cfg.OAuthStateKey(), StateTTL: cfg.Auth.OAuthStateTTL, Timeout: cfg.Auth.OAuthTimeout}
	for _, p := range providers {
		params.Providers = append(params.Providers, auth.ProviderParams{
			Name: p.Name, Kind: p.Kind, ClientID: p.ClientID, ClientSecret: p.ClientSecret, Scopes: p.Scopes,
			RedirectURL: p.RedirectURL, Issuer: p.Issuer, AuthURL: p.AuthURL, TokenURL: p.TokenURL,
			UserInfoURL: p.UserInfoURL, IDField: p.IDField, EmailField: p.EmailField,
			EmailVerifiedField: p.EmailVerifiedField, NicknameField: p.NicknameField, TrustEmail: p.TrustEmail,
		})
	}
	social, err := auth.NewSocial(params)
	if err != nil {
		return nil, fmt.Errorf("auth.providers: %w", err)
	}
	return social, nil
}

func apiComponent(w wiring, hasher *auth.Hasher) (component, string, func(), error) {
	cfg, logger, bdb, rdb, redisOpt, reg, relay, mailbox := w.cfg, w.logger, w.bdb, w.rdb, w.redisOpt, w.reg, w.relay, w.mailbox
	tokens, err := auth.NewTokens(auth.TokenParams{Key: []byte(cfg.Auth.JWTKey), TTL: cfg.Auth.AccessTTL})
	if err != nil {
		return component{}, "", nil, fmt.Errorf("auth: %w", err)
	}
	sessions, err := auth.NewSessions(auth.SessionParams{
		Store: db.SessionStore{DB: bdb}, Redis: rdb, TTL: cfg.Auth.RefreshTTL, CacheTTL: cfg.Auth.SessionCacheTTL,
		Logger: logger.With(slog.String("component", "api")),
	})
	if err != nil {
		return component{}, "", nil, fmt.Errorf("auth: %w", err)
	}
	social, err := socialLogin(cfg)
	if err != nil {
		return component{}, "", nil, err
	}
	limits, err := rateLimits(cfg.RateLimit)
	if err != nil {
		return component{}, "", nil, err
	}
	// Closed when the server starts shutting down, so event streams end
	// instead of holding the shutdown for its whole grace period.
	streamsDone := make(chan struct{})
	proxies := make([]netip.Prefix, 0, len(cfg.HTTP.TrustedProxies))
	for _, p := range cfg.HTTP.TrustedProxies {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			return component{}, "", nil, fmt.Errorf("http.trusted_proxies: %w", err)
		}
		proxies = append(proxies, pfx)
	}
	queues := make([]string, 0, len(cfg.Worker.Queues))
	for q := range cfg.Worker.Queues {
		queues = append(queues, q)
	}
	sort.Strings(queues)
	// Rooms' dates and times are the scheduler's: one zone for reminders
	// and for what a host types.
	loc, err := time.LoadLocation(cfg.Scheduler.TimeZone)
	if err != nil {
		return component{}, "", nil, fmt.Errorf("scheduler.timezone: %w", err)
	}
	alog := logger.With(slog.String("component", "api"))
	h, closeAPI, err := httpapi.New(httpapi.Deps{
		Logger:         alog,
		DB:             bdb,
		Redis:          rdb,
		RedisConnOpt:   redisOpt,
		Relay:          relay,
		Registry:       reg,
		TrustedProxies: proxies,
		CORSOrigins:    cfg.HTTP.CORSOrigins,
		RequestTimeout: cfg.HTTP.RequestTimeout,
		BodyLimit:      cfg.HTTP.BodyLimit,
		AdminUser:      cfg.Admin.User,
		AdminPassword:  cfg.Admin.Password,
		Queues:         queues,
		Passwords:      hasher,
		Tokens:         tokens,
		Sessions:       sessions,
		RefreshCookie:  cfg.Auth.RefreshCookie,
		Social:         social,
		RateLimits:     limits,
		DeviceKey:      cfg.LoginDeviceKey(),
		Mailbox:        mailbox,
		Storage:        w.store,
		Images: httpapi.ImageParams{MaxBytes: cfg.Images.MaxBytes, MaxPixels: cfg.Images.MaxPixels,
			URLExpiry: cfg.Images.URLExpiry, UploadExpiry: cfg.Images.UploadExpiry},
		StreamsDone: streamsDone,
		MatchWait:   cfg.Matching.WaitLimit,
		RoomRules: domain.RoomRules{RunLead: cfg.Rooms.RunLead,
			MaxAhead: time.Duration(cfg.Rooms.MaxDaysAhead) * 24 * time.Hour},
		RoomLocation:     loc,
		MissionLocation:  loc,
		MissionMaxAhead:  time.Duration(cfg.Missions.MaxDaysAhead) * 24 * time.Hour,
		RoomListCacheTTL: cfg.Rooms.ListCacheTTL,
		GroupRuns: httpapi.GroupRunRules{AttendanceFrom: cfg.Rooms.StartsSoonBefore, EndedAfter: cfg.Rooms.EndedAfter,
			EvaluationMin: cfg.Rooms.EvaluationMin, EvaluationMax: cfg.Rooms.EvaluationMax},
		Payments: httpapi.PaymentParams{WebhookSecret: []byte(cfg.Payments.WebhookSecret),
			WebhookTolerance: cfg.Payments.WebhookTolerance},
		Accounts: httpapi.AccountParams{Key: cfg.AccountCodeKey(), EmailCodeTTL: cfg.Auth.EmailCodeTTL,
			PhoneCodeTTL: cfg.Auth.PhoneCodeTTL, ResetTokenTTL: cfg.Auth.ResetTokenTTL, Attempts: cfg.Auth.CodeAttempts,
			ResendInterval: cfg.Auth.CodeResendInterval, PerDay: cfg.Auth.CodesPerDay,
			SMSPerNumberPerDay: cfg.Auth.SMSPerNumberPerDay, RequireVerifiedEmail: cfg.Auth.RequireVerifiedEmail},
	})
	if err != nil {
		return component{}, "", nil, fmt.Errorf("api: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		closeAPI()
		return component{}, "", nil, fmt.Errorf("http.addr: %w", err)
	}
	url := cfg.HTTP.PublicURL
	if url == "" {
		url = "http://" + displayAddr(ln.Addr())
	}
	c := httpComponent("api", "", h, cfg.HTTP, alog, ln, sync.OnceFunc(func() { close(streamsDone) }))
	c.name = "api"
	return c, strings.TrimRight(url, "/"), closeAPI, nil
}

// displayAddr turns a wildcard listen address into one a browser can open.
func displayAddr(a net.Addr) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return a.String()
	}
	if ap.Addr().IsUnspecified() {
		return fmt.Sprintf("localhost:%d", ap.Port())
	}
	return ap.String()
}

// opsHandler serves /metrics and /healthz for a worker or scheduler process.
func opsHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	})
	return mux
}

// httpComponent serves h on addr (or on ln when given) and shuts down
// gracefully: in-flight requests get up to http.shutdown_timeout to finish.
func httpComponent(name, addr string, h http.Handler, hc config.HTTPConfig, logger *slog.Logger, ln net.Listener, onShutdown func()) component {
	return component{name, func(ctx context.Context) error {
		srv := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: hc.ReadHeaderTimeout,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		}
		if onShutdown != nil {
			srv.RegisterOnShutdown(onShutdown)
		}
		if ln == nil {
			var err error
			if ln, err = net.Listen("tcp", addr); err != nil {
				return fmt.Errorf("listen %s: %w", addr, err)
			}
		}
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		logger.Info("http listening", slog.String("addr", ln.Addr().String()))
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
		}
		sctx, cancel := context.WithTimeout(context.Background(), hc.ShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			// Requests still running past the grace period are cut off; that
			// is the configured behaviour of a stop, not a failure.
			logger.Warn("http shutdown timed out; closing remaining connections", slog.Any("error", err))
			_ = srv.Close()
		}
		return nil
	}}
}

// rateLimits turns the configured limits into the API's.
func rateLimits(rc config.RateLimitConfig) (httpapi.RateLimits, error) {
	var out httpapi.RateLimits
	for _, l := range []struct {
		key   string
		value string
		dst   *httpapi.Rate
	}{
		{"rate_limit.signup_per_ip", rc.SignupPerIP, &out.SignupPerIP},
		{"rate_limit.login_per_ip", rc.LoginPerIP, &out.LoginPerIP},
		{"rate_limit.refresh_per_ip", rc.RefreshPerIP, &out.RefreshPerIP},
		{"rate_limit.login_failures_per_email", rc.LoginFailuresPerEmail, &out.LoginFailuresPerAccount},
		{"rate_limit.login_failures_per_ip", rc.LoginFailuresPerIP, &out.LoginFailuresPerIP},
	} {
		r, err := config.ParseRate(l.value)
		if err != nil {
			return out, fmt.Errorf("%s: %w", l.key, err)
		}
		*l.dst = httpapi.Rate{Requests: r.Requests, Window: r.Window}
	}
	out.LoginDelay, out.LoginMaxDelay, out.DeviceTTL = rc.LoginDelay, rc.LoginMaxDelay, rc.LoginDeviceTTL
	return out, nil
}

// bootstrapAdmin makes sure the all-in-one run has an admin member to log
// in as: admin.email (or a local address) with admin.password. It returns
// the banner line and the member's id, or "" when it could not (the
// reason is logged; the run goes on without it).
func bootstrapAdmin(ctx context.Context, cfg *config.Config, logger *slog.Logger, bdb *bun.DB, hasher *auth.Hasher) (line, memberID string) {
	email := cfg.Admin.Email
	if email == "" {
		email = localAdminEmail
	}
	// Stored as login looks it up: trimmed and lower-cased.
	email, err := domain.NormalizeEmail("admin.email", email)
	if err != nil {
		logger.Warn("bootstrap admin member not created", slog.String("err", domain.ErrorMessage(err)))
		return "", ""
	}
	res, err := ensureAdmin(ctx, bdb, hasher, email, "", cfg.Admin.Password, true)
	if err != nil {
		logger.Warn("bootstrap admin member not created", slog.String("email", email), slog.Any("err", err))
		return "", ""
	}
	logger.Info("bootstrap admin member ready", slog.String("member_id", res.member.ID),
		slog.Bool("created", res.created), slog.Bool("password_reset", res.reset))
	return "Admin login: " + email + " with the admin password (POST /v1/auth/login)", res.member.ID
}

// reminderRules reads the group-run reminder settings (validated by
// config) in the scheduler's time zone.
func reminderRules(cfg *config.Config, loc *time.Location) domain.ReminderRules {
	at, _ := config.ParseClock(cfg.Rooms.DDayTime)
	cats := func(names []string) []domain.Category {
		var out []domain.Category
		for _, n := range names {
			if c, err := domain.ParseCategory(n); err == nil {
				out = append(out, c)
			}
		}
		return out
	}
	return domain.ReminderRules{
		Location: loc, DDayAt: at,
		StartsSoonBefore: cfg.Rooms.StartsSoonBefore, EndedAfter: cfg.Rooms.EndedAfter, Grace: cfg.Rooms.ReminderGrace,
		Categories: map[domain.ReminderKind][]domain.Category{
			domain.ReminderDDay:       cats(cfg.Rooms.DDayCategories),
			domain.ReminderStartsSoon: cats(cfg.Rooms.StartsSoonCategories),
			domain.ReminderEnded:      cats(cfg.Rooms.EndedCategories),
		},
	}
}
