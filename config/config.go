// Package config holds moim's configuration: one Config struct with defaults
// in code, an optional YAML file, MOIM_* environment variables and flags, in
// that order of precedence. Only the binaries in cmd/ import it; they copy
// what each constructor needs into that constructor's own parameters.
package config

import (
	"crypto/hmac"
	"crypto/sha256"
	"reflect"
	"time"
)

// The two values of Config.Env.
const (
	EnvLocal      = "local"
	EnvProduction = "production"
)

// localDatabaseURL is where local mode keeps its data when database.url is
// empty, so `make run` works on a fresh checkout.
const localDatabaseURL = "sqlite:data/moim.db"

// Config is the whole configuration. Each field's key is its mapstructure
// path (http.addr); its environment variable is MOIM_ plus the key in upper
// case with dots as underscores (MOIM_HTTP_ADDR); its flag is --key.
// A secret tag marks values that are masked whenever the config is shown.
type Config struct {
	Env       string          `mapstructure:"env" usage:"local or production; production requires every secret and URL"`
	Log       LogConfig       `mapstructure:"log"`
	HTTP      HTTPConfig      `mapstructure:"http"`
	Database  DatabaseConfig  `mapstructure:"database"`
	Redis     RedisConfig     `mapstructure:"redis"`
	Auth      AuthConfig      `mapstructure:"auth"`
	Admin     AdminConfig     `mapstructure:"admin"`
	RateLimit RateLimitConfig `mapstructure:"rate_limit"`
	Matching  MatchingConfig  `mapstructure:"matching"`
	Rooms     RoomsConfig     `mapstructure:"rooms"`
	Missions  MissionsConfig  `mapstructure:"missions"`
	Tasks     TasksConfig     `mapstructure:"tasks"`
	Notify    NotifyConfig    `mapstructure:"notify"`
	Mail      MailConfig      `mapstructure:"mail"`
	SMS       SMSConfig       `mapstructure:"sms"`
	Slack     SlackConfig     `mapstructure:"slack"`
	Storage   StorageConfig   `mapstructure:"storage"`
	Images    ImagesConfig    `mapstructure:"images"`
	Worker    WorkerConfig    `mapstructure:"worker"`
	Outbox    OutboxConfig    `mapstructure:"outbox"`
	Retention RetentionConfig `mapstructure:"retention"`
	Scheduler SchedulerConfig `mapstructure:"scheduler"`
	Payments  PaymentsConfig  `mapstructure:"payments"`
}

// LogConfig selects the log level and format.
type LogConfig struct {
	Level string `mapstructure:"level" usage:"debug, info, warn or error"`
	// Format is "" until Load resolves it: json in production, text locally.
	Format string `mapstructure:"format" usage:"text or json; empty means json in production, text locally"`
}

// HTTPConfig configures the API server.
type HTTPConfig struct {
	Addr              string        `mapstructure:"addr" usage:"API listen address host:port"`
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout" usage:"time allowed to read request headers"`
	RequestTimeout    time.Duration `mapstructure:"request_timeout" usage:"deadline of one request (SSE streams excepted)"`
	ShutdownTimeout   time.Duration `mapstructure:"shutdown_timeout" usage:"grace period for in-flight requests on shutdown"`
	BodyLimit         int64         `mapstructure:"body_limit" usage:"largest accepted request body in bytes"`
	// TrustedProxies are the proxies whose X-Forwarded-For is believed; with
	// none, the connection's remote address is the client.
	TrustedProxies []string `mapstructure:"trusted_proxies" usage:"CIDRs of proxies whose X-Forwarded-For is trusted"`
	CORSOrigins    []string `mapstructure:"cors_origins" usage:"origins allowed by CORS; empty disables CORS"`
	PublicURL      string   `mapstructure:"public_url" usage:"base URL printed at start and put before the local object store's signed URLs; empty leaves those relative to the API"`
}

// DatabaseConfig configures the SQL database and its pool.
type DatabaseConfig struct {
	URL string `mapstructure:"url" secret:"url" usage:"postgres://..., mysql://user:pass@host:port/db, sqlite:path or sqlite::memory:; empty locally means sqlite:data/moim.db"`
	// MaxOpenConns of 0 lets the caller pick 4×GOMAXPROCS, which depends on
	// the machine the process runs on, so it cannot be a fixed default here.
	MaxOpenConns    int           `mapstructure:"max_open_conns" usage:"pool size; 0 means 4×GOMAXPROCS"`
	MaxIdleConns    int           `mapstructure:"max_idle_conns" usage:"idle connections kept; 0 means the same as max_open_conns"`
	ConnMaxLifetime time.Duration `mapstructure:"conn_max_lifetime" usage:"a connection is closed after this age"`
	ConnMaxIdleTime time.Duration `mapstructure:"conn_max_idle_time" usage:"an idle connection is closed after this long"`
}

// RedisConfig locates Redis.
type RedisConfig struct {
	URL string `mapstructure:"url" secret:"url" usage:"redis://[:pass@]host:port/db, rediss://... or redis-sentinel://...?master=name; empty locally means an in-memory Redis"`
}

// AuthConfig configures API tokens.
type AuthConfig struct {
	JWTKey     string        `mapstructure:"jwt_key" secret:"value" usage:"HMAC key for tokens, at least 32 bytes (prefer the environment variable)"`
	AccessTTL  time.Duration `mapstructure:"access_ttl" usage:"lifetime of an access token"`
	RefreshTTL time.Duration `mapstructure:"refresh_ttl" usage:"lifetime of a refresh token"`
	// SessionCacheTTL bounds how long a revocation that could not reach
	// Redis goes unseen, and how often each active session costs a SQL read.
	SessionCacheTTL time.Duration `mapstructure:"session_cache_ttl" usage:"how long Redis may answer whether a session is alive without asking the database"`
	// RefreshCookie suits browser clients: the refresh token then never has
	// to be readable by page scripts.
	RefreshCookie bool `mapstructure:"refresh_cookie" usage:"also set the refresh token as an HttpOnly, Secure, SameSite=Strict cookie"`
	// The argon2id parameters; raising them makes every login slower and
	// each concurrent login take password_memory_kib of memory.
	PasswordMemoryKiB   int `mapstructure:"password_memory_kib" usage:"argon2id memory per password hash in KiB"`
	PasswordIterations  int `mapstructure:"password_iterations" usage:"argon2id passes over that memory"`
	PasswordParallelism int `mapstructure:"password_parallelism" usage:"argon2id lanes (threads) per hash"`

	// One-time codes: e-mail and phone verification, password reset.
	CodeKey            string        `mapstructure:"code_key" secret:"value" usage:"HMAC key that derives and hashes e-mail/SMS codes and reset tokens, shared by API and worker, at least 32 bytes; empty means one derived from auth.jwt_key"`
	EmailCodeTTL       time.Duration `mapstructure:"email_code_ttl" usage:"how long an e-mail verification code works"`
	PhoneCodeTTL       time.Duration `mapstructure:"phone_code_ttl" usage:"how long an SMS verification code works"`
	ResetTokenTTL      time.Duration `mapstructure:"reset_token_ttl" usage:"how long a password-reset link works"`
	CodeAttempts       int           `mapstructure:"code_attempts" usage:"wrong tries a code or reset token allows before a new one is needed"`
	CodeResendInterval time.Duration `mapstructure:"code_resend_interval" usage:"least time between two codes of one kind to one member"`
	CodesPerDay        int           `mapstructure:"codes_per_day" usage:"codes of one kind a member may be sent in 24 hours (and reset mails one address may get)"`
	SMSPerNumberPerDay int           `mapstructure:"sms_per_number_per_day" usage:"verification SMS one phone number may get in 24 hours, whoever asks"`
	// RequireVerifiedEmail lists the features whose changes need a
	// verified e-mail address; none by default so local use stays easy.
	RequireVerifiedEmail []string `mapstructure:"require_verified_email" usage:"features whose changes need a verified e-mail address: rooms, matching, missions, tasks (none by default)"`
	// Social login. Providers are named by their key (auth.providers.kakao);
	// the names of the presets (kakao, google, naver, intra42) need only a
	// client id and secret. A provider's keys come from the file and from
	// MOIM_AUTH_PROVIDERS_<NAME>_<KEY>; they have no flags.
	OAuthStateTTL time.Duration             `mapstructure:"oauth_state_ttl" usage:"how long a social login may take from the redirect to the callback"`
	OAuthTimeout  time.Duration             `mapstructure:"oauth_timeout" usage:"deadline of each call to a social-login provider (discovery, token, user info)"`
	Providers     map[string]ProviderConfig `mapstructure:"providers" usage:"social-login providers by name; see the README"`
}

// ProviderConfig is one social-login provider. Empty fields of a preset's
// name are filled from the preset (see Config.SocialProviders).
type ProviderConfig struct {
	Kind         string   `mapstructure:"kind" usage:"oidc or oauth2"`
	ClientID     string   `mapstructure:"client_id" usage:"client id registered at the provider"`
	ClientSecret string   `mapstructure:"client_secret" secret:"value" usage:"client secret (prefer the environment variable)"`
	Scopes       []string `mapstructure:"scopes" usage:"scopes asked for"`
	RedirectURL  string   `mapstructure:"redirect_url" usage:"callback URL registered at the provider; empty means http.public_url + /v1/auth/oauth/<name>/callback"`
	Issuer       string   `mapstructure:"issuer" usage:"oidc: issuer URL, whose discovery document gives the endpoints"`
	AuthURL      string   `mapstructure:"auth_url" usage:"oauth2: authorization endpoint"`
	TokenURL     string   `mapstructure:"token_url" usage:"oauth2: token endpoint"`
	UserInfoURL  string   `mapstructure:"user_info_url" usage:"oauth2: user-info URL called with the access token"`
	IDField      string   `mapstructure:"id_field" usage:"oauth2: dotted path of the account id in the user-info JSON"`
	EmailField   string   `mapstructure:"email_field" usage:"oauth2: dotted path of the e-mail address"`
	// EmailVerifiedField and TrustEmail decide whether an address links
	// the account to an existing member with it.
	EmailVerifiedField string `mapstructure:"email_verified_field" usage:"oauth2: dotted path of the flag saying the address is verified"`
	NicknameField      string `mapstructure:"nickname_field" usage:"oauth2: dotted path of the profile name, the new member's nickname"`
	TrustEmail         bool   `mapstructure:"trust_email" usage:"count every address the provider gives as verified"`
}

// RateLimitConfig limits the unauthenticated auth endpoints. Each value is
// "requests/window" (10/1h) or "off". The counters live in Redis, so every
// API instance shares them.
type RateLimitConfig struct {
	SignupPerIP  string `mapstructure:"signup_per_ip" usage:"sign-ups per client IP, requests/window or off"`
	LoginPerIP   string `mapstructure:"login_per_ip" usage:"login attempts per client IP, requests/window or off"`
	RefreshPerIP string `mapstructure:"refresh_per_ip" usage:"token refreshes per client IP, requests/window or off"`
	// The login limits (README "Login limits"): only wrong passwords
	// count, and past the free ones each attempt waits instead of being
	// locked out. The window of a failure rate is how long its count
	// lasts after the last attempt.
	LoginFailuresPerEmail string        `mapstructure:"login_failures_per_email" usage:"wrong passwords per e-mail address and trust class (known device, known IP, unknown) before attempts wait, failures/window or off"`
	LoginFailuresPerIP    string        `mapstructure:"login_failures_per_ip" usage:"wrong passwords per client IP over all addresses before attempts wait (a known device skips it), failures/window or off"`
	LoginDelay            time.Duration `mapstructure:"login_delay" usage:"wait after the free failures, doubled with each further failure"`
	LoginMaxDelay         time.Duration `mapstructure:"login_max_delay" usage:"longest wait between login attempts on one failure count"`
	LoginDeviceTTL        time.Duration `mapstructure:"login_device_ttl" usage:"how long a successful login makes the client a known device of the member (0: no cookie)"`
}

// AdminConfig holds the operator's credentials for /admin/queues and the
// admin endpoints (HTTP Basic auth).
type AdminConfig struct {
	User     string `mapstructure:"user" usage:"admin user name"`
	Password string `mapstructure:"password" secret:"value" usage:"admin password (prefer the environment variable)"`
	Email    string `mapstructure:"email" usage:"e-mail of the admin member the all-in-one run creates (default admin@moim.localhost)"`
}

// MatchingConfig tunes random matching.
type MatchingConfig struct {
	MealGroupSize  int           `mapstructure:"meal_group_size" usage:"members per random MEAL match"`
	StudyGroupSize int           `mapstructure:"study_group_size" usage:"members per random STUDY match"`
	WaitLimit      time.Duration `mapstructure:"wait_limit" usage:"an application waiting longer expires (NO_MATCH_FOUND)"`
	// Parallel group transactions stay independent: each flips only its
	// own applications.
	Parallel int `mapstructure:"parallel" usage:"group transactions a matcher run commits at once"`
}

// RoomsConfig tunes rooms.
type RoomsConfig struct {
	RunLead time.Duration `mapstructure:"run_lead" usage:"how far ahead a RUN room must start when it is opened"`
	// A start years ahead is a typo or a probe, and keeps the room open
	// (and listed) for that long.
	MaxDaysAhead int `mapstructure:"max_days_ahead" usage:"how many days ahead a room may start at most"`
	// Joins that lose the optimistic race are tried again in the same task
	// this many times before the task's own retry takes over.
	AdmissionRetries   int           `mapstructure:"admission_retries" usage:"retries of a join or leave that lost the race for the room"`
	AdmissionRetryWait time.Duration `mapstructure:"admission_retry_wait" usage:"mean jittered pause before such a retry"`
	ListCacheTTL       time.Duration `mapstructure:"list_cache_ttl" usage:"how long a page of the room list is cached in Redis (0 = no cache)"`
	// Group-run reminders and evaluation (ErunJrun), read in
	// scheduler.timezone.
	DDayTime             string        `mapstructure:"dday_time" usage:"time of day (HH:MM) of the D-day reminder"`
	StartsSoonBefore     time.Duration `mapstructure:"starts_soon_before" usage:"the starts-soon reminder goes out, and attendance opens, this long before the start"`
	EndedAfter           time.Duration `mapstructure:"ended_after" usage:"a room counts as over this long after its start: the ended reminder, then evaluations"`
	ReminderGrace        time.Duration `mapstructure:"reminder_grace" usage:"how late a reminder may still go out after it was due"`
	DDayCategories       []string      `mapstructure:"dday_categories" usage:"room categories that get the D-day reminder"`
	StartsSoonCategories []string      `mapstructure:"starts_soon_categories" usage:"room categories that get the starts-soon reminder"`
	EndedCategories      []string      `mapstructure:"ended_categories" usage:"room categories that get the ended reminder"`
	EvaluationMin        int           `mapstructure:"evaluation_min" usage:"lowest manner-point change one evaluation of a host may give"`
	EvaluationMax        int           `mapstructure:"evaluation_max" usage:"highest manner-point change one evaluation of a host may give"`
}

// MissionsConfig tunes missions. Their days, windows and reminders are
// read in scheduler.timezone.
type MissionsConfig struct {
	// A start months ahead keeps stakes locked for that long.
	MaxDaysAhead int `mapstructure:"max_days_ahead" usage:"how many days ahead a mission may start at most"`
	// The verify reminder goes out once per member and window.
	ReminderBefore time.Duration `mapstructure:"reminder_before" usage:"a member who has not verified today is reminded this long before a window closes"`
}

// TasksConfig tunes the invitation rounds of helper requests.
type TasksConfig struct {
	// The interval becomes the task-invitations tick's spec ("@every"),
	// unless scheduler.ticks names that tick.
	RoundInterval time.Duration `mapstructure:"round_interval" usage:"how often every task in MATCHING gets a round of invitations"`
	RoundSize     int           `mapstructure:"round_size" usage:"how many helpers one round invites at most"`
	InvitationTTL time.Duration `mapstructure:"invitation_ttl" usage:"an invitation not answered this long after it was sent expires"`
}

// NotifyConfig configures notifications across channels.
type NotifyConfig struct {
	// AppURL makes the app links in mail, SMS and Slack texts absolute.
	AppURL string `mapstructure:"app_url" usage:"base URL of the client app, for links in mail, SMS and Slack (optional)"`
	// ClaimTimeout must exceed the longest provider call: a claim older than
	// this was left by a worker that died mid-send.
	ClaimTimeout time.Duration `mapstructure:"claim_timeout" usage:"after this, an unfinished send is reported UNKNOWN instead of retried"`
	MailboxSize  int           `mapstructure:"mailbox_size" usage:"messages the log providers keep for /admin/mailbox"`
}

// The mail and SMS providers. Log sends nothing and keeps the messages for
// /admin/mailbox, so production refuses it; none turns the channel off (its
// deliveries fail at once as not configured, never count as sent).
const (
	ProviderLog  = "log"
	ProviderSMTP = "smtp"
	ProviderSENS = "sens"
	ProviderNone = "none"
)

// MailConfig configures outgoing mail.
type MailConfig struct {
	Provider string        `mapstructure:"provider" usage:"log (keep in /admin/mailbox, send nothing; refused in production), smtp, or none (no mail)"`
	Host     string        `mapstructure:"host" usage:"SMTP server host"`
	Port     int           `mapstructure:"port" usage:"SMTP server port (587 submission, 465 implicit TLS, 25)"`
	TLS      string        `mapstructure:"tls" usage:"mandatory, opportunistic or none"`
	Username string        `mapstructure:"username" usage:"SMTP user; empty means no AUTH"`
	Password string        `mapstructure:"password" secret:"value" usage:"SMTP password (prefer the environment variable)"`
	From     string        `mapstructure:"from" usage:"sender, e.g. moim <no-reply@example.com>"`
	Timeout  time.Duration `mapstructure:"timeout" usage:"bound on connecting and sending one mail"`
}

// SMSConfig configures text messages (Naver Cloud SENS).
type SMSConfig struct {
	Provider  string        `mapstructure:"provider" usage:"log (keep in /admin/mailbox, send nothing; refused in production), sens, or none (no SMS)"`
	BaseURL   string        `mapstructure:"base_url" usage:"SENS API base URL"`
	ServiceID string        `mapstructure:"service_id" usage:"SENS SMS service id"`
	AccessKey string        `mapstructure:"access_key" usage:"Naver Cloud access key"`
	SecretKey string        `mapstructure:"secret_key" secret:"value" usage:"Naver Cloud secret key (prefer the environment variable)"`
	From      string        `mapstructure:"from" usage:"registered sender number, digits only"`
	Timeout   time.Duration `mapstructure:"timeout" usage:"bound on one SENS request"`
}

// SlackConfig configures the Slack group messages.
type SlackConfig struct {
	Token   string        `mapstructure:"token" secret:"value" usage:"bot token (xoxb-...); empty disables Slack"`
	BaseURL string        `mapstructure:"base_url" usage:"Slack Web API base URL"`
	Timeout time.Duration `mapstructure:"timeout" usage:"bound on one Slack API call"`
}

// The storage backends.
const (
	StorageLocal = "local"
	StorageS3    = "s3"
)

// StorageConfig says where uploaded images and their variants are kept.
type StorageConfig struct {
	Backend string `mapstructure:"backend" usage:"local (a directory) or s3 (S3-compatible object storage)"`
	// PublicBaseURL suits a CDN or a public bucket: download URLs are then
	// not signed and never expire.
	PublicBaseURL string             `mapstructure:"public_base_url" usage:"base URL clients read objects from without a signature (CDN, public bucket); empty means signed, expiring URLs"`
	Local         StorageLocalConfig `mapstructure:"local"`
	S3            StorageS3Config    `mapstructure:"s3"`
}

// StorageLocalConfig configures the local directory backend.
type StorageLocalConfig struct {
	Dir string `mapstructure:"dir" usage:"directory of the objects; every API and worker process must see the same one"`
	// URLKey may stay empty: StorageURLKey then derives one from
	// auth.jwt_key, which every API process shares already.
	URLKey string `mapstructure:"url_key" secret:"value" usage:"HMAC key of the upload and download URLs the API signs, at least 32 bytes; empty means one derived from auth.jwt_key"`
}

// StorageS3Config configures the S3-compatible backend.
type StorageS3Config struct {
	Bucket    string `mapstructure:"bucket" usage:"bucket name"`
	Endpoint  string `mapstructure:"endpoint" usage:"service URL (MinIO, R2, ...); empty means AWS"`
	Region    string `mapstructure:"region" usage:"region the requests are signed for"`
	PathStyle bool   `mapstructure:"path_style" usage:"address the bucket as endpoint/bucket (most S3-compatible services) instead of bucket.endpoint"`
	AccessKey string `mapstructure:"access_key" usage:"access key id; empty with secret_key uses the SDK's default chain (environment, shared files, instance role)"`
	SecretKey string `mapstructure:"secret_key" secret:"value" usage:"secret access key (prefer the environment variable)"`
	Prefix    string `mapstructure:"prefix" usage:"put before every object key (moim/), so deployments can share a bucket"`
}

// ImagesConfig bounds image uploads.
type ImagesConfig struct {
	MaxBytes int64 `mapstructure:"max_bytes" usage:"largest image upload in bytes"`
	// A decoded image takes 4 bytes a pixel, so this bounds a decode's
	// memory; a larger one (a decompression bomb) is refused from its
	// header.
	MaxPixels int64         `mapstructure:"max_pixels" usage:"largest width×height of an image upload, checked before decoding"`
	URLExpiry time.Duration `mapstructure:"url_expiry" usage:"how long a signed image download URL works"`
	// UploadExpiry is how long a pre-signed upload URL works; an upload
	// not completed by then is deleted by the upload-cleanup tick.
	UploadExpiry time.Duration `mapstructure:"upload_expiry" usage:"how long a pre-signed image upload URL works"`
	// JPEGQuality is the quality of the JPEG variants a worker writes.
	JPEGQuality int `mapstructure:"jpeg_quality" usage:"JPEG quality of the variants, 1 to 100"`
	// ConcurrentDecodes caps the images a worker process decodes at once,
	// whatever worker.concurrency is: each decode holds the whole image.
	ConcurrentDecodes int `mapstructure:"concurrent_decodes" usage:"images one worker process decodes at once"`
}

// WorkerConfig configures the asynq server.
type WorkerConfig struct {
	Concurrency int `mapstructure:"concurrency" usage:"tasks processed at once per worker process"`
	// Queues maps queue name to weight. Names are lower-cased, as the file
	// reader does with every key.
	Queues          map[string]int `mapstructure:"queues" usage:"queue weights name=weight,..."`
	ShutdownTimeout time.Duration  `mapstructure:"shutdown_timeout" usage:"grace period for running tasks on shutdown"`
	MetricsAddr     string         `mapstructure:"metrics_addr" usage:"host:port for /metrics and /healthz of a worker process; empty disables"`
	// TaskCheckInterval is how long asynq sleeps when every queue is empty,
	// so it bounds the latency of picking up a new task.
	TaskCheckInterval time.Duration `mapstructure:"task_check_interval" usage:"idle poll interval; bounds task pickup latency"`
	// SweepAfter is how long pending work waits for its own task before a
	// sweep redoes it (its task may have been lost with Redis).
	SweepAfter time.Duration `mapstructure:"sweep_after" usage:"a room request, notification or delivery still pending this long is redone by its sweep"`
}

// OutboxConfig configures the relay that moves outbox rows into Redis.
type OutboxConfig struct {
	PollInterval time.Duration `mapstructure:"poll_interval" usage:"how often the relay looks for unsent rows"`
	BatchSize    int           `mapstructure:"batch_size" usage:"rows relayed per round"`
	// Retention keeps completed tasks in Redis so a row sent again soon
	// after a crash meets a task id conflict instead of running again (a
	// later re-send runs, and the handlers make it a no-op). Each kept task
	// costs Redis memory, so it stays short.
	Retention time.Duration `mapstructure:"retention" usage:"how long completed outbox tasks stay in Redis to catch a row sent again (at least 1m)"`
	KeepSent  time.Duration `mapstructure:"keep_sent" usage:"sent outbox rows are pruned after this"`
}

// RetentionConfig says how long the retention tick keeps rows that would
// otherwise pile up for ever.
type RetentionConfig struct {
	NotificationsRead   time.Duration `mapstructure:"notifications_read" usage:"a notification is deleted this long after it was read"`
	NotificationsUnread time.Duration `mapstructure:"notifications_unread" usage:"a notification never read is deleted this long after it was created"`
	Deliveries          time.Duration `mapstructure:"deliveries" usage:"a sent, failed or unknown delivery is deleted this long after it last changed"`
	Sessions            time.Duration `mapstructure:"sessions" usage:"a session is deleted this long after it expired"`
}

// SchedulerConfig configures the cron scheduler.
type SchedulerConfig struct {
	TimeZone      string        `mapstructure:"timezone" usage:"IANA time zone the tick specs are read in"`
	CatchUpWindow time.Duration `mapstructure:"catch_up_window" usage:"how far back a starting scheduler enqueues missed slots; 0 disables"`
	// Ticks overrides cron specs by tick name; the scheduler checks the names
	// and specs against its catalogue.
	Ticks map[string]string `mapstructure:"ticks" usage:"cron spec overrides name=spec,..."`
	// MetricsAddr differs from the worker's so both can share a host.
	MetricsAddr string `mapstructure:"metrics_addr" usage:"host:port for /metrics and /healthz of a scheduler process; empty disables"`
}

// PaymentsConfig configures POST /v1/payments/webhook, which credits
// points for a payment the provider signed.
type PaymentsConfig struct {
	WebhookSecret string `mapstructure:"webhook_secret" secret:"value" usage:"HMAC-SHA256 key the payment provider signs webhooks with, at least 16 bytes; empty disables the webhook (prefer the environment variable)"`
	// WebhookTolerance bounds how far a signature's timestamp may be from
	// now, so a captured call cannot be replayed later.
	WebhookTolerance time.Duration `mapstructure:"webhook_tolerance" usage:"how far a webhook signature's timestamp may be from now (1s to 1h)"`
}

// Default returns the configuration used when nothing is set.
func Default() *Config {
	return &Config{
		Env: EnvLocal,
		Log: LogConfig{Level: "info"},
		HTTP: HTTPConfig{
			Addr:              ":8080",
			ReadHeaderTimeout: 5 * time.Second,
			RequestTimeout:    30 * time.Second,
			ShutdownTimeout:   15 * time.Second,
			BodyLimit:         1 << 20,
		},
		Database: DatabaseConfig{
			ConnMaxLifetime: 30 * time.Minute,
			ConnMaxIdleTime: 5 * time.Minute,
		},
		Auth: AuthConfig{
			AccessTTL:       15 * time.Minute,
			RefreshTTL:      14 * 24 * time.Hour,
			SessionCacheTTL: time.Minute,
			// OWASP's argon2id recommendation.
			PasswordMemoryKiB:   19456,
			PasswordIterations:  2,
			PasswordParallelism: 1,
			// Octopus's codes lasted 5 minutes; 10 leaves time to switch apps.
			EmailCodeTTL:       10 * time.Minute,
			PhoneCodeTTL:       5 * time.Minute,
			ResetTokenTTL:      30 * time.Minute,
			CodeAttempts:       5,
			CodeResendInterval: time.Minute,
			CodesPerDay:        10,
			SMSPerNumberPerDay: 5,
			OAuthStateTTL:      10 * time.Minute,
			OAuthTimeout:       10 * time.Second,
			Providers:          map[string]ProviderConfig{},
		},
		Matching: MatchingConfig{MealGroupSize: 2, StudyGroupSize: 2, WaitLimit: 30 * time.Minute, Parallel: 4},
		// ErunJrun's 6-hour lead; 42Partner's 3 retries 100 ms apart and 5 s list cache.
		Rooms: RoomsConfig{RunLead: 6 * time.Hour, MaxDaysAhead: 365, AdmissionRetries: 3, AdmissionRetryWait: 100 * time.Millisecond, ListCacheTTL: 5 * time.Second,
			DDayTime: "08:00", StartsSoonBefore: 30 * time.Minute, EndedAfter: time.Hour, ReminderGrace: 15 * time.Minute,
			DDayCategories: []string{"RUN"}, StartsSoonCategories: []string{"RUN"}, EndedCategories: []string{"RUN"},
			EvaluationMin: -5, EvaluationMax: 5},
		Missions: MissionsConfig{MaxDaysAhead: 90, ReminderBefore: 30 * time.Minute},
		Notify:   NotifyConfig{ClaimTimeout: 5 * time.Minute, MailboxSize: 100},
		Mail: MailConfig{
			Provider: ProviderLog,
			Port:     587,
			TLS:      "mandatory",
			From:     "moim <no-reply@moim.localhost>",
			Timeout:  15 * time.Second,
		},
		SMS: SMSConfig{
			Provider: ProviderLog,
			BaseURL:  "https://sens.apigw.ntruss.com",
			Timeout:  10 * time.Second,
		},
		Slack: SlackConfig{BaseURL: "https://slack.com/api", Timeout: 10 * time.Second},
		Storage: StorageConfig{
			Backend: StorageLocal,
			Local:   StorageLocalConfig{Dir: "data/objects"},
			S3:      StorageS3Config{Region: "us-east-1"},
		},
		// ErunJrun's 15 MB a photo.
		Images: ImagesConfig{MaxBytes: 15 << 20, MaxPixels: 50_000_000, URLExpiry: time.Hour,
			UploadExpiry: 15 * time.Minute, JPEGQuality: 85, ConcurrentDecodes: 2},
		RateLimit: RateLimitConfig{
			SignupPerIP:           "10/1h",
			LoginPerIP:            "30/1m",
			RefreshPerIP:          "60/1m",
			LoginFailuresPerEmail: "5/1h",
			LoginFailuresPerIP:    "20/1h",
			LoginDelay:            time.Second,
			LoginMaxDelay:         5 * time.Minute,
			LoginDeviceTTL:        90 * 24 * time.Hour,
		},
		Admin: AdminConfig{User: "admin"},
		Worker: WorkerConfig{
			Concurrency:       10,
			Queues:            map[string]int{"critical": 6, "default": 3, "low": 1},
			ShutdownTimeout:   25 * time.Second,
			MetricsAddr:       ":9091",
			TaskCheckInterval: 10 * time.Millisecond,
			SweepAfter:        time.Minute,
		},
		Outbox: OutboxConfig{
			PollInterval: time.Second,
			BatchSize:    100,
			Retention:    10 * time.Minute,
			KeepSent:     24 * time.Hour,
		},
		Retention: RetentionConfig{
			NotificationsRead:   90 * 24 * time.Hour,
			NotificationsUnread: 365 * 24 * time.Hour,
			Deliveries:          30 * 24 * time.Hour,
			Sessions:            7 * 24 * time.Hour,
		},
		Scheduler: SchedulerConfig{
			TimeZone:      "Asia/Seoul",
			CatchUpWindow: time.Hour,
			Ticks:         map[string]string{},
			MetricsAddr:   ":9092",
		},
		// Stripe's default tolerance.
		Payments: PaymentsConfig{WebhookTolerance: 5 * time.Minute},
		// easytask's 15-second tick and chunk of 20.
		Tasks: TasksConfig{RoundInterval: 15 * time.Second, RoundSize: 20, InvitationTTL: 24 * time.Hour},
	}
}

// IsProduction reports whether env is "production".
func (c *Config) IsProduction() bool { return c.Env == EnvProduction }

// DatabaseURL returns the database to open: database.url, or in local mode
// the embedded SQLite file when it is empty.
func (c *Config) DatabaseURL() string {
	if c.Database.URL == "" && !c.IsProduction() {
		return localDatabaseURL
	}
	return c.Database.URL
}

// StorageURLKey returns the key the local storage backend signs URLs with:
// storage.local.url_key, or else one derived from auth.jwt_key, so that no
// further secret has to be shared between API processes. The derivation
// keeps the two uses apart: a signed URL is no token, nor the reverse.
func (c *Config) StorageURLKey() []byte {
	if c.Storage.Local.URLKey != "" {
		return []byte(c.Storage.Local.URLKey)
	}
	return c.derivedKey("moim storage URL key v1")
}

// derivedKey is a key for one purpose, derived from auth.jwt_key: an HMAC
// of the purpose, so keys of two purposes never open each other's doors.
func (c *Config) derivedKey(purpose string) []byte {
	m := hmac.New(sha256.New, []byte(c.Auth.JWTKey))
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// AccountCodeKey returns the key of account codes and reset tokens:
// auth.code_key, or else one derived from auth.jwt_key (which API and
// worker share already), kept apart from the token key by the derivation.
func (c *Config) AccountCodeKey() []byte {
	if c.Auth.CodeKey != "" {
		return []byte(c.Auth.CodeKey)
	}
	return c.derivedKey("moim account code key v1")
}

// LoginDeviceKey returns the key the known-device cookie of the login limits
// is signed with, derived from auth.jwt_key like StorageURLKey: no further
// secret to share between API processes, and a cookie is no token.
func (c *Config) LoginDeviceKey() []byte { return c.derivedKey("moim login device key v1") }

// OAuthStateKey returns the key social login signs its state with,
// derived from auth.jwt_key like StorageURLKey, for the same reasons.
func (c *Config) OAuthStateKey() []byte { return c.derivedKey("moim oauth state key v1") }

// leaf is one configuration key and the field holding its value.
type leaf struct {
	key    string        // "http.addr"
	value  reflect.Value // the field, addressable when walked from a pointer
	usage  string
	secret string // "", "value" (mask all) or "url" (mask the password)
}

// leaves lists every key of c in declaration order. Maps and slices are
// single keys; only nested structs are sections.
func leaves(c *Config) []leaf {
	var out []leaf
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			key := f.Tag.Get("mapstructure")
			if prefix != "" {
				key = prefix + "." + key
			}
			if f.Type.Kind() == reflect.Struct {
				walk(key, v.Field(i))
				continue
			}
			out = append(out, leaf{key: key, value: v.Field(i), usage: f.Tag.Get("usage"), secret: f.Tag.Get("secret")})
		}
	}
	walk("", reflect.ValueOf(c).Elem())
	return out
}
