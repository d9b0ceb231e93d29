// Package httpapi is moim's HTTP layer: the chi router, its middleware, the
// one error-code → status table, and thin handlers that decode, validate,
// call the stores and the outbox, and encode.
package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/auth"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
	"github.com/moim/moim/jobs/image"
	"github.com/moim/moim/jobs/notify"
	"github.com/moim/moim/jobs/storage"
)

// DefaultMatchWait is how long a random-match application waits when
// Deps.MatchWait is not set (42Partner's 30 minutes).
const DefaultMatchWait = 30 * time.Minute

// DefaultBodyLimit caps request bodies when Deps.BodyLimit is not positive.
const DefaultBodyLimit int64 = 1 << 20

// Deps is everything the HTTP layer needs; cmd/api and cmd/moim fill it from
// their config.
type Deps struct {
	Logger *slog.Logger
	DB     *bun.DB
	// Redis is pinged by /readyz.
	Redis redis.UniversalClient
	// RedisConnOpt connects the queue UI and the queue metrics inspector,
	// which open their own clients (closed by the cleanup New returns).
	RedisConnOpt asynq.RedisConnOpt
	// Relay runs the transactions that write outbox rows and kicks the relay
	// once they commit.
	Relay *jobs.Relay
	// Registry serves /metrics; New registers the HTTP and queue metrics in it.
	Registry *prometheus.Registry
	// TrustedProxies are the only peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// CORSOrigins are the browser origins allowed to call the API; none
	// means no CORS headers at all.
	CORSOrigins []string
	// RequestTimeout is every request's context deadline; 0 means none.
	RequestTimeout time.Duration
	// BodyLimit caps request bodies in bytes; 0 means DefaultBodyLimit.
	BodyLimit int64
	// AdminUser and AdminPassword guard the queue UI and /v1/admin (as
	// does an admin member's access token).
	AdminUser, AdminPassword string
	// Passwords hashes and verifies member passwords.
	Passwords *auth.Hasher
	// Tokens issues and verifies access tokens.
	Tokens *auth.Tokens
	// Sessions keeps refresh tokens and the access-token deny-list.
	Sessions *auth.Sessions
	// RefreshCookie also hands the refresh token out as an HttpOnly cookie.
	RefreshCookie bool
	// Social runs social login; nil means no provider is configured.
	Social *auth.Social
	// RateLimits limit sign-up, login and refresh; zero Rates mean none.
	RateLimits RateLimits
	// DeviceKey signs the known-device cookie of the login limits; without
	// one no cookie is set and only known IPs are trusted.
	DeviceKey []byte
	// Mailbox, when set, is shown to admins at /admin/mailbox: what the
	// local log senders would have sent.
	Mailbox *notify.Mailbox
	// StreamsDone, when closed, ends every event stream, so a shutdown does
	// not wait for clients that never hang up.
	StreamsDone <-chan struct{}
	// Heartbeat is the event stream's keep-alive interval; 0 means
	// DefaultHeartbeat.
	Heartbeat time.Duration
	// MatchWait is how long a random-match application waits before it
	// expires; 0 means DefaultMatchWait.
	MatchWait time.Duration
	// Queues are the queue names a ping may be sent to; empty means the
	// standard critical, default and low.
	Queues []string
	// RoomRules are the limits of opening a room (a RUN room's lead time,
	// how far ahead a room may start).
	RoomRules domain.RoomRules
	// RoomLocation is the zone a room's date and start time are read and
	// shown in; nil means DefaultRoomLocation.
	RoomLocation *time.Location
	// RoomListCacheTTL is how long a page of the room list is cached in
	// Redis; 0 turns the cache off.
	RoomListCacheTTL time.Duration
	// MissionMaxAhead is how far ahead a mission may start; 0 means no
	// limit.
	MissionMaxAhead time.Duration
	// MissionLocation is the zone of missions' days and windows; nil means
	// DefaultRoomLocation's zone.
	MissionLocation *time.Location
	// GroupRuns time attendance and evaluation; zero means
	// DefaultGroupRunRules.
	GroupRuns GroupRunRules
	// Storage keeps uploaded images; nil leaves out the image routes.
	// A store that verifies its own signed URLs (the local directory)
	// also gets its objects served under /v1/objects/.
	Storage storage.Store
	// Images bound uploads and set the download URLs' expiry.
	Images ImageParams
	// NowFunc is the clock; nil means time.Now.
	NowFunc func() time.Time
	// Payments configure the payment webhook; without a secret it is off.
	Payments PaymentParams
	// Accounts configure e-mail and phone verification and password
	// reset; Accounts.Key is required.
	Accounts AccountParams
}

// server holds the handlers' dependencies.
type server struct {
	logger         *slog.Logger
	db             *bun.DB
	redis          redis.UniversalClient
	relay          *jobs.Relay
	queues         []string
	now            func() time.Time
	bodyLimit      int64
	trustedProxies []netip.Prefix
	admin          basicAuth
	router         *chi.Mux
	passwords      *auth.Hasher
	tokens         *auth.Tokens
	sessions       *auth.Sessions
	refreshCookie  bool
	login          *loginLimits
	social         *auth.Social
	hub            *hub
	streamMetrics  *streamMetrics
	streamsDone    <-chan struct{}
	heartbeat      time.Duration
	mailbox        *notify.Mailbox
	matchWait      time.Duration
	roomRules      domain.RoomRules
	roomLocation   *time.Location
	roomListTTL    time.Duration
	groupRuns      GroupRunRules
	missionAhead   time.Duration
	missionLoc     *time.Location
	store          storage.Store
	images         ImageParams
	payments       PaymentParams
	accounts       AccountParams
	gated          []string // path prefixes that need a verified e-mail
}

// New builds the API handler. The returned cleanup closes the Redis clients
// of the queue UI and metrics and unregisters the metrics; call it after the
// server has shut down. New fails on a misconfiguration such as a missing
// admin password or metrics already registered in d.Registry.
func New(d Deps) (http.Handler, func(), error) {
	return newHandler(d, nil)
}

// newHandler is New with extra routes, which tests use to mount handlers
// that exercise the middleware (a panicking route, say).
func newHandler(d Deps, extra func(chi.Router)) (http.Handler, func(), error) {
	if err := checkDeps(d); err != nil {
		return nil, nil, fmt.Errorf("httpapi: %w", err)
	}
	s := &server{
		logger:         d.Logger,
		db:             d.DB,
		redis:          d.Redis,
		relay:          d.Relay,
		queues:         d.Queues,
		now:            d.NowFunc,
		bodyLimit:      d.BodyLimit,
		trustedProxies: d.TrustedProxies,
		admin:          newBasicAuth(d.AdminUser, d.AdminPassword),
		passwords:      d.Passwords,
		tokens:         d.Tokens,
		sessions:       d.Sessions,
		refreshCookie:  d.RefreshCookie,
		social:         d.Social,
		streamsDone:    d.StreamsDone,
		heartbeat:      d.Heartbeat,
		mailbox:        d.Mailbox,
		matchWait:      d.MatchWait,
		roomRules:      d.RoomRules,
		roomLocation:   d.RoomLocation,
		roomListTTL:    d.RoomListCacheTTL,
		groupRuns:      d.GroupRuns,
		missionAhead:   d.MissionMaxAhead,
		missionLoc:     d.MissionLocation,
		store:          d.Storage,
		images:         d.Images,
		payments:       d.Payments,
		accounts:       d.Accounts.withDefaults(),
	}
	s.gated = s.accounts.gatedPrefixes()
	if s.images.MaxBytes <= 0 {
		s.images.MaxBytes = DefaultImageMaxBytes
	}
	if s.images.MaxPixels <= 0 {
		s.images.MaxPixels = image.DefaultMaxPixels
	}
	if s.images.URLExpiry <= 0 {
		s.images.URLExpiry = DefaultImageURLExpiry
	}
	if s.images.UploadExpiry <= 0 {
		s.images.UploadExpiry = DefaultImageUploadExpiry
	}
	if s.groupRuns == (GroupRunRules{}) {
		s.groupRuns = DefaultGroupRunRules
	}
	if s.roomLocation == nil {
		s.roomLocation = defaultRoomLocation()
	}
	if s.missionLoc == nil {
		s.missionLoc = defaultRoomLocation()
	}
	if s.matchWait <= 0 {
		s.matchWait = DefaultMatchWait
	}
	if s.heartbeat <= 0 {
		s.heartbeat = DefaultHeartbeat
	}
	if len(s.queues) == 0 {
		s.queues = []string{jobs.QueueCritical, jobs.QueueDefault, jobs.QueueLow}
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.bodyLimit <= 0 {
		s.bodyLimit = DefaultBodyLimit
	}

	metrics := newHTTPMetrics()
	s.streamMetrics = newStreamMetrics()
	insp := asynq.NewInspector(d.RedisConnOpt)
	collectors := append(metrics.collectors(), s.streamMetrics.collectors()...)
	collectors = append(collectors, jobs.NewQueueMetrics(insp, 0, d.Logger))
	var registered []prometheus.Collector
	unregister := func() {
		for _, c := range registered {
			d.Registry.Unregister(c)
		}
	}
	for _, c := range collectors {
		if err := d.Registry.Register(c); err != nil {
			unregister()
			_ = insp.Close()
			return nil, nil, fmt.Errorf("httpapi: register metrics: %w", err)
		}
		registered = append(registered, c)
	}
	monitor := asynqmon.New(queueUIOptions(asynqmon.Options{RedisConnOpt: d.RedisConnOpt}))

	r := chi.NewRouter()
	s.router = r
	// The access log and metrics wrap the recoverer so a panic is recorded
	// as the 500 the client got.
	r.Use(s.requestID, s.realIP, s.accessLog, metrics.instrument, s.recoverer)
	r.Use(bodyLimit(s.bodyLimit))
	if len(d.CORSOrigins) > 0 {
		r.Use(corsHandler(d.CORSOrigins))
	}
	r.Use(s.rejectNUL, s.guardAdmin)
	r.NotFound(s.handleNotFound)
	r.MethodNotAllowed(s.handleMethodNotAllowed)

	// Event streams last as long as the client listens; everything else
	// runs under the request timeout.
	s.registerEventRoutes(r)
	r.Group(func(r chi.Router) {
		if d.RequestTimeout > 0 {
			r.Use(timeout(d.RequestTimeout))
		}
		s.registerHealthRoutes(r, d.Registry)
		s.registerQueueUIRoutes(r, monitor)
		s.registerPingRoutes(r)
		s.registerAuthRoutes(r, d.RateLimits, d.DeviceKey)
		s.registerOAuthRoutes(r, d.RateLimits)
		s.registerAccountRoutes(r, d.RateLimits)
		s.registerMeRoutes(r)
		s.registerNotificationRoutes(r)
		s.registerMatchingRoutes(r)
		s.registerRoomRoutes(r)
		s.registerCommentRoutes(r)
		s.registerGroupRunRoutes(r)
		s.registerMailboxRoutes(r)
		s.registerImageRoutes(r)
		s.registerPointRoutes(r)
		s.registerMissionRoutes(r)
		s.registerMissionVerifyRoutes(r)
		s.registerSkillRoutes(r)
		s.registerTaskRoutes(r)
		s.registerMatchReviewRoutes(r)
		if extra != nil {
			extra(r)
		}
	})
	var stopHub func()
	s.hub, stopHub = startHub(d.Redis, d.Logger)

	cleanup := sync.OnceFunc(func() {
		stopHub()
		if err := monitor.Close(); err != nil {
			s.logger.Warn("close queue ui", slog.Any("err", err))
		}
		if err := insp.Close(); err != nil {
			s.logger.Warn("close queue inspector", slog.Any("err", err))
		}
		unregister()
	})
	return r, cleanup, nil
}

// checkDeps reports every missing dependency at once.
func checkDeps(d Deps) error {
	var errs []error
	if d.Logger == nil {
		errs = append(errs, errors.New("logger is required"))
	}
	if d.DB == nil {
		errs = append(errs, errors.New("database is required"))
	}
	if d.Redis == nil {
		errs = append(errs, errors.New("redis client is required"))
	}
	if d.RedisConnOpt == nil {
		errs = append(errs, errors.New("redis connection option is required"))
	}
	if d.Relay == nil {
		errs = append(errs, errors.New("outbox relay is required"))
	}
	if d.Registry == nil {
		errs = append(errs, errors.New("metrics registry is required"))
	}
	if d.Passwords == nil {
		errs = append(errs, errors.New("password hasher is required"))
	}
	if d.Tokens == nil {
		errs = append(errs, errors.New("token issuer is required"))
	}
	if d.Sessions == nil {
		errs = append(errs, errors.New("session store is required"))
	}
	if len(d.Accounts.Key) == 0 {
		errs = append(errs, errors.New("account code key is required"))
	}
	if d.AdminUser == "" {
		errs = append(errs, errors.New("admin user is required"))
	}
	if d.AdminPassword == "" {
		errs = append(errs, errors.New("admin password is required"))
	}
	return errors.Join(errs...)
}
