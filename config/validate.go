package config

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/hibiken/asynq"
	"maps"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/moim/moim/domain"
)

// minJWTKeyLen is the shortest accepted token key: HMAC-SHA256 wants a key
// at least as long as its 32-byte output.
const minJWTKeyLen = 32

// minOutboxRetention is twice the relay's 30 s claim lease, so a row sent
// again by the next relay usually meets its task id; later re-sends are
// made harmless by the handlers, not by Redis.
const minOutboxRetention = time.Minute

// Validate reports every problem at once, joined with errors.Join, one
// "key: problem" line each. Values of secrets and URLs never appear in it.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			add(key, "must be a positive duration")
		}
	}

	if c.Env != EnvLocal && c.Env != EnvProduction {
		add("env", "must be %s or %s", EnvLocal, EnvProduction)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", "must be debug, info, warn or error")
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		add("log.format", "must be text or json")
	}

	if !validAddr(c.HTTP.Addr) {
		add("http.addr", "must be host:port")
	}
	positive("http.read_header_timeout", c.HTTP.ReadHeaderTimeout)
	positive("http.request_timeout", c.HTTP.RequestTimeout)
	positive("http.shutdown_timeout", c.HTTP.ShutdownTimeout)
	if c.HTTP.BodyLimit <= 0 {
		add("http.body_limit", "must be a positive number of bytes")
	}
	for _, p := range c.HTTP.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			add("http.trusted_proxies", "%q is not a CIDR (write 10.0.0.1/32 for one address)", p)
		}
	}
	for _, o := range c.HTTP.CORSOrigins {
		if o != "*" && !validHTTPURL(o, false) {
			add("http.cors_origins", "%q must be * or an origin such as https://app.example.com", o)
		}
	}
	if c.HTTP.PublicURL != "" && !validHTTPURL(c.HTTP.PublicURL, true) {
		add("http.public_url", "must be an http:// or https:// URL")
	}

	if c.Database.URL != "" {
		if problem := databaseURLProblem(c.Database.URL); problem != "" {
			add("database.url", "%s", problem)
		}
	}
	if c.Database.MaxOpenConns < 0 {
		add("database.max_open_conns", "must not be negative")
	}
	if c.Database.MaxIdleConns < 0 {
		add("database.max_idle_conns", "must not be negative")
	}
	if c.Database.MaxOpenConns > 0 && c.Database.MaxIdleConns > c.Database.MaxOpenConns {
		add("database.max_idle_conns", "must not exceed database.max_open_conns")
	}
	positive("database.conn_max_lifetime", c.Database.ConnMaxLifetime)
	positive("database.conn_max_idle_time", c.Database.ConnMaxIdleTime)

	if c.Redis.URL != "" {
		if problem := redisURLProblem(c.Redis.URL); problem != "" {
			add("redis.url", "%s", problem)
		}
	}

	if c.Auth.JWTKey != "" && len(c.Auth.JWTKey) < minJWTKeyLen {
		add("auth.jwt_key", "must be at least %d bytes", minJWTKeyLen)
	}
	positive("auth.access_ttl", c.Auth.AccessTTL)
	positive("auth.refresh_ttl", c.Auth.RefreshTTL)
	positive("auth.session_cache_ttl", c.Auth.SessionCacheTTL)
	if c.Auth.AccessTTL > 0 && c.Auth.RefreshTTL > 0 && c.Auth.RefreshTTL <= c.Auth.AccessTTL {
		add("auth.refresh_ttl", "must be longer than auth.access_ttl")
	}

	positive("auth.oauth_state_ttl", c.Auth.OAuthStateTTL)
	positive("auth.oauth_timeout", c.Auth.OAuthTimeout)
	c.validateProviders(add)

	if c.Auth.PasswordMemoryKiB < 1024 || c.Auth.PasswordMemoryKiB > 4<<20 {
		add("auth.password_memory_kib", "must be between 1024 (1 MiB) and 4194304 (4 GiB)")
	}
	if c.Auth.PasswordIterations < 1 || c.Auth.PasswordIterations > 100 {
		add("auth.password_iterations", "must be between 1 and 100")
	}
	if c.Auth.PasswordParallelism < 1 || c.Auth.PasswordParallelism > 255 {
		add("auth.password_parallelism", "must be between 1 and 255")
	}
	if c.Auth.CodeKey != "" && len(c.Auth.CodeKey) < minJWTKeyLen {
		add("auth.code_key", "must be at least %d bytes", minJWTKeyLen)
	}
	positive("auth.email_code_ttl", c.Auth.EmailCodeTTL)
	positive("auth.phone_code_ttl", c.Auth.PhoneCodeTTL)
	positive("auth.reset_token_ttl", c.Auth.ResetTokenTTL)
	if c.Auth.CodeAttempts < 1 || c.Auth.CodeAttempts > 100 {
		add("auth.code_attempts", "must be between 1 and 100")
	}
	if c.Auth.CodeResendInterval < 0 {
		add("auth.code_resend_interval", "must not be negative")
	}
	if c.Auth.CodesPerDay < 1 {
		add("auth.codes_per_day", "must be at least 1")
	}
	if c.Auth.SMSPerNumberPerDay < 1 {
		add("auth.sms_per_number_per_day", "must be at least 1")
	}
	gated := domain.EmailGatedFeatures()
	for _, f := range c.Auth.RequireVerifiedEmail {
		if _, ok := gated[f]; !ok {
			known := slices.Sorted(maps.Keys(gated))
			add("auth.require_verified_email", "unknown feature %q; known: %s", f, strings.Join(known, ", "))
		}
	}
	for _, r := range []struct{ key, value string }{
		{"rate_limit.signup_per_ip", c.RateLimit.SignupPerIP},
		{"rate_limit.login_per_ip", c.RateLimit.LoginPerIP},
		{"rate_limit.refresh_per_ip", c.RateLimit.RefreshPerIP},
		{"rate_limit.login_failures_per_email", c.RateLimit.LoginFailuresPerEmail},
		{"rate_limit.login_failures_per_ip", c.RateLimit.LoginFailuresPerIP},
	} {
		if _, err := ParseRate(r.value); err != nil {
			add(r.key, "%v", err)
		}
	}
	if c.RateLimit.LoginDelay < 10*time.Millisecond || c.RateLimit.LoginDelay > time.Minute {
		add("rate_limit.login_delay", "must be between 10ms and 1m")
	}
	// The cap is also how long an owner without a known device or IP waits
	// once a stranger stops guessing.
	if c.RateLimit.LoginMaxDelay < c.RateLimit.LoginDelay || c.RateLimit.LoginMaxDelay > time.Hour {
		add("rate_limit.login_max_delay", "must be between rate_limit.login_delay and 1h")
	}
	if c.RateLimit.LoginDeviceTTL < 0 || c.RateLimit.LoginDeviceTTL > 400*24*time.Hour {
		add("rate_limit.login_device_ttl", "must be between 0 and 9600h (400 days, the most browsers keep a cookie)")
	}

	for _, g := range []struct {
		key  string
		size int
	}{{"matching.meal_group_size", c.Matching.MealGroupSize}, {"matching.study_group_size", c.Matching.StudyGroupSize}} {
		// Slack opens a group DM for at most 8 people.
		if g.size < 2 || g.size > 8 {
			add(g.key, "must be between 2 and 8")
		}
	}
	if c.Matching.WaitLimit < time.Minute {
		add("matching.wait_limit", "must be at least 1m")
	}
	if c.Matching.Parallel < 1 || c.Matching.Parallel > 64 {
		add("matching.parallel", "must be between 1 and 64")
	}
	if c.Missions.MaxDaysAhead < 1 || c.Missions.MaxDaysAhead > 365 {
		add("missions.max_days_ahead", "must be between 1 and 365")
	}
	if c.Missions.ReminderBefore < time.Minute || c.Missions.ReminderBefore > 12*time.Hour {
		add("missions.reminder_before", "must be between 1m and 12h")
	}
	if c.Tasks.RoundInterval < time.Second || c.Tasks.RoundInterval > time.Hour || c.Tasks.RoundInterval%time.Second != 0 {
		add("tasks.round_interval", "must be whole seconds between 1s and 1h")
	}
	if c.Tasks.RoundSize < 1 || c.Tasks.RoundSize > 1000 {
		add("tasks.round_size", "must be between 1 and 1000")
	}
	if c.Tasks.InvitationTTL < time.Minute || c.Tasks.InvitationTTL > 30*24*time.Hour {
		add("tasks.invitation_ttl", "must be between 1m and 720h")
	}
	if c.Rooms.RunLead < 0 || c.Rooms.RunLead > 7*24*time.Hour {
		add("rooms.run_lead", "must be between 0 and 168h")
	}
	if c.Rooms.MaxDaysAhead < 1 || c.Rooms.MaxDaysAhead > 3650 {
		add("rooms.max_days_ahead", "must be between 1 and 3650")
	}
	if c.Rooms.AdmissionRetries < 0 || c.Rooms.AdmissionRetries > 20 {
		add("rooms.admission_retries", "must be between 0 and 20")
	}
	if c.Rooms.AdmissionRetryWait < 0 || c.Rooms.AdmissionRetryWait > 5*time.Second {
		add("rooms.admission_retry_wait", "must be between 0 and 5s")
	}
	if c.Rooms.ListCacheTTL < 0 || c.Rooms.ListCacheTTL > time.Minute {
		add("rooms.list_cache_ttl", "must be between 0 and 1m")
	}
	if _, err := ParseClock(c.Rooms.DDayTime); err != nil {
		add("rooms.dday_time", "%v", err)
	}
	for _, d := range []struct {
		key      string
		v        time.Duration
		min, max time.Duration
	}{
		{"rooms.starts_soon_before", c.Rooms.StartsSoonBefore, 0, 24 * time.Hour},
		{"rooms.ended_after", c.Rooms.EndedAfter, 0, 24 * time.Hour},
		// Well above the tick's minute, so a tick that runs a little late
		// still finds what fell due since the last one.
		{"rooms.reminder_grace", c.Rooms.ReminderGrace, 3 * time.Minute, 6 * time.Hour},
	} {
		if d.v < d.min || d.v > d.max {
			add(d.key, "must be between %v and %v", d.min, d.max)
		}
	}
	for _, l := range []struct {
		key  string
		cats []string
	}{
		{"rooms.dday_categories", c.Rooms.DDayCategories},
		{"rooms.starts_soon_categories", c.Rooms.StartsSoonCategories},
		{"rooms.ended_categories", c.Rooms.EndedCategories},
	} {
		for _, name := range l.cats {
			if name != "MEAL" && name != "STUDY" && name != "RUN" {
				add(l.key, "%q is not a category (MEAL, STUDY or RUN)", name)
			}
		}
	}
	if c.Rooms.EvaluationMin < -50 || c.Rooms.EvaluationMax > 50 || c.Rooms.EvaluationMin >= c.Rooms.EvaluationMax ||
		c.Rooms.EvaluationMin > 0 || c.Rooms.EvaluationMax < 0 {
		add("rooms.evaluation_min", "evaluation_min..evaluation_max must be a range around 0 within -50..50")
	}
	if c.Notify.AppURL != "" && !validHTTPURL(c.Notify.AppURL, true) {
		add("notify.app_url", "must be an http:// or https:// URL")
	}
	// Above 30m a delivery task could use up its retries while a dead
	// worker's claim still looks fresh, and the claim would never be
	// reported.
	if c.Notify.ClaimTimeout < time.Minute || c.Notify.ClaimTimeout > 30*time.Minute {
		add("notify.claim_timeout", "must be between 1m (longer than any provider call) and 30m")
	}
	if c.Notify.MailboxSize < 1 {
		add("notify.mailbox_size", "must be at least 1")
	}
	switch c.Mail.Provider {
	case ProviderLog:
		if c.IsProduction() {
			add("mail.provider", "log sends no mail (it only keeps it for /admin/mailbox); in production set smtp, or none to turn mail off")
		}
	case ProviderNone:
	case ProviderSMTP:
		if c.Mail.Host == "" {
			add("mail.host", "required with mail.provider smtp")
		}
		if c.Mail.Port < 1 || c.Mail.Port > 65535 {
			add("mail.port", "must be a port number")
		}
		switch c.Mail.TLS {
		case "mandatory", "opportunistic", "none":
		default:
			add("mail.tls", "must be mandatory, opportunistic or none")
		}
		if a, err := mail.ParseAddress(c.Mail.From); err != nil || a.Address == "" {
			add("mail.from", "must be an address such as moim <no-reply@example.com>")
		}
	default:
		add("mail.provider", "must be log, smtp or none")
	}
	positive("mail.timeout", c.Mail.Timeout)
	switch c.SMS.Provider {
	case ProviderLog:
		if c.IsProduction() {
			add("sms.provider", "log sends no SMS (it only keeps them for /admin/mailbox); in production set sens, or none to turn SMS off")
		}
	case ProviderNone:
	case ProviderSENS:
		for _, f := range []struct{ key, value string }{
			{"sms.service_id", c.SMS.ServiceID}, {"sms.access_key", c.SMS.AccessKey},
			{"sms.secret_key", c.SMS.SecretKey}, {"sms.from", c.SMS.From},
		} {
			if f.value == "" {
				add(f.key, "required with sms.provider sens")
			}
		}
		if !validHTTPURL(c.SMS.BaseURL, true) {
			add("sms.base_url", "must be an http:// or https:// URL")
		}
	default:
		add("sms.provider", "must be log, sens or none")
	}
	positive("sms.timeout", c.SMS.Timeout)
	if c.Slack.Token != "" && !validHTTPURL(c.Slack.BaseURL, true) {
		add("slack.base_url", "must be an http:// or https:// URL")
	}
	positive("slack.timeout", c.Slack.Timeout)

	c.validateStorage(add)
	if c.Images.MaxBytes < 1<<10 || c.Images.MaxBytes > 1<<30 {
		add("images.max_bytes", "must be between 1024 and 1073741824")
	}
	// The smallest must take a 380×380 room photo.
	if c.Images.MaxPixels < 1_000_000 || c.Images.MaxPixels > 500_000_000 {
		add("images.max_pixels", "must be between 1000000 and 500000000")
	}
	// Signed URLs live at most a week (SigV4's bound).
	if c.Images.URLExpiry < time.Minute || c.Images.URLExpiry > 7*24*time.Hour {
		add("images.url_expiry", "must be between 1m and 168h")
	}
	if c.Images.UploadExpiry < time.Minute || c.Images.UploadExpiry > 7*24*time.Hour {
		add("images.upload_expiry", "must be between 1m and 168h")
	}
	if c.Images.JPEGQuality < 1 || c.Images.JPEGQuality > 100 {
		add("images.jpeg_quality", "must be between 1 and 100")
	}
	if c.Images.ConcurrentDecodes < 1 {
		add("images.concurrent_decodes", "must be at least 1")
	}
	// A short key could be guessed, and with it points credited at will.
	if s := c.Payments.WebhookSecret; s != "" && len(s) < 16 {
		add("payments.webhook_secret", "must be at least 16 bytes (or empty to disable the webhook)")
	}
	if c.Payments.WebhookTolerance < time.Second || c.Payments.WebhookTolerance > time.Hour {
		add("payments.webhook_tolerance", "must be between 1s and 1h")
	}

	switch {
	case c.Admin.User == "":
		add("admin.user", "must not be empty")
	case strings.Contains(c.Admin.User, ":"):
		// Basic auth cannot carry a user name with a colon.
		add("admin.user", "must not contain ':'")
	}
	if c.Admin.Email != "" {
		if a, err := mail.ParseAddress(c.Admin.Email); err != nil || a.Address != c.Admin.Email {
			add("admin.email", "must be a bare e-mail address such as ops@example.com")
		}
	}

	if c.Worker.Concurrency < 1 || c.Worker.Concurrency > 1000 {
		add("worker.concurrency", "must be between 1 and 1000")
	}
	if len(c.Worker.Queues) == 0 {
		add("worker.queues", "must name at least one queue")
	}
	for _, name := range sortedKeys(c.Worker.Queues) {
		switch {
		case name == "":
			add("worker.queues", "a queue name is empty")
		case c.Worker.Queues[name] < 1:
			add("worker.queues", "weight of %q must be at least 1", name)
		}
	}
	positive("worker.shutdown_timeout", c.Worker.ShutdownTimeout)
	if c.Worker.MetricsAddr != "" && !validAddr(c.Worker.MetricsAddr) {
		add("worker.metrics_addr", "must be host:port or empty")
	}
	if c.Scheduler.MetricsAddr != "" && !validAddr(c.Scheduler.MetricsAddr) {
		add("scheduler.metrics_addr", "must be host:port or empty")
	}
	positive("worker.task_check_interval", c.Worker.TaskCheckInterval)
	positive("worker.sweep_after", c.Worker.SweepAfter)

	positive("outbox.poll_interval", c.Outbox.PollInterval)
	if c.Outbox.BatchSize < 1 {
		add("outbox.batch_size", "must be at least 1")
	}
	// A row sent again after a relay's lease ran out should usually still
	// meet its task id in Redis.
	if c.Outbox.Retention < minOutboxRetention {
		add("outbox.retention", "must be at least %s so a row sent again meets its task id", minOutboxRetention)
	}
	positive("outbox.keep_sent", c.Outbox.KeepSent)
	positive("retention.notifications_read", c.Retention.NotificationsRead)
	positive("retention.notifications_unread", c.Retention.NotificationsUnread)
	positive("retention.deliveries", c.Retention.Deliveries)
	positive("retention.sessions", c.Retention.Sessions)

	if c.Scheduler.TimeZone == "" {
		add("scheduler.timezone", "must not be empty")
	} else if _, err := time.LoadLocation(c.Scheduler.TimeZone); err != nil {
		add("scheduler.timezone", "%q is not a known time zone", c.Scheduler.TimeZone)
	}
	if c.Scheduler.CatchUpWindow < 0 {
		add("scheduler.catch_up_window", "must not be negative")
	}
	for _, name := range sortedKeys(c.Scheduler.Ticks) {
		switch {
		case name == "":
			add("scheduler.ticks", "a tick name is empty")
		case strings.TrimSpace(c.Scheduler.Ticks[name]) == "":
			add("scheduler.ticks", "spec of %q is empty", name)
		}
	}

	if c.IsProduction() {
		for _, req := range []struct{ key, val string }{
			{"database.url", c.Database.URL},
			{"redis.url", c.Redis.URL},
			{"auth.jwt_key", c.Auth.JWTKey},
			{"admin.password", c.Admin.Password},
		} {
			if req.val == "" {
				add(req.key, "required in production")
			}
		}
	}
	return errors.Join(errs...)
}

// minStorageURLKeyLen matches the JWT key: the URLs are HMAC-SHA256 too.
const minStorageURLKeyLen = 32

// storagePrefix is one or more segments of letters, digits, '-', '_' and
// '.', separated and optionally ended by '/'.
var storagePrefix = regexp.MustCompile(`^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*/?$`)

func (c *Config) validateStorage(add func(key, format string, args ...any)) {
	st := c.Storage
	if st.PublicBaseURL != "" && !validHTTPURL(st.PublicBaseURL, true) {
		add("storage.public_base_url", "must be an http:// or https:// URL")
	}
	if st.Local.URLKey != "" && len(st.Local.URLKey) < minStorageURLKeyLen {
		add("storage.local.url_key", "must be at least %d bytes", minStorageURLKeyLen)
	}
	switch st.Backend {
	case StorageLocal:
		if strings.TrimSpace(st.Local.Dir) == "" {
			add("storage.local.dir", "required with storage.backend local")
		}
	case StorageS3:
		if st.S3.Bucket == "" {
			add("storage.s3.bucket", "required with storage.backend s3")
		}
		if st.S3.Region == "" {
			add("storage.s3.region", "required with storage.backend s3")
		}
		if st.S3.Endpoint != "" && !validHTTPURL(st.S3.Endpoint, true) {
			add("storage.s3.endpoint", "must be an http:// or https:// URL")
		}
		if (st.S3.AccessKey == "") != (st.S3.SecretKey == "") {
			add("storage.s3.access_key", "set both access_key and secret_key, or neither for the default credential chain")
		}
		if p := st.S3.Prefix; p != "" && (!storagePrefix.MatchString(p) || slices.ContainsFunc(strings.Split(p, "/"), func(seg string) bool {
			return seg == "." || seg == ".."
		})) {
			add("storage.s3.prefix", "must be segments of letters, digits, '-', '_' or '.' separated by '/', none of them . or ..")
		}
	default:
		add("storage.backend", "must be %s or %s", StorageLocal, StorageS3)
	}
}

func randomString(n int, enc *base64.Encoding) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return enc.EncodeToString(b), nil
}

// validAddr reports whether s is host:port with a numeric port; the host may
// be empty (all interfaces) and port 0 picks a free one.
func validAddr(s string) bool {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	_, err = strconv.ParseUint(port, 10, 16)
	return err == nil
}

// validHTTPURL reports whether s is an http(s) URL with a host; an origin
// (withPath false) has nothing after the host.
func validHTTPURL(s string, withPath bool) bool {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return false
	}
	return withPath || (u.Path == "" && u.RawQuery == "" && u.Fragment == "")
}

// databaseURLProblem describes what is wrong with a database URL, or returns
// "". It never quotes the URL, which may hold a password.
func databaseURLProblem(s string) string {
	scheme, rest, _ := strings.Cut(s, ":")
	switch scheme {
	case "sqlite":
		if rest == "" || strings.HasPrefix(rest, "?") {
			return "sqlite: needs a file path (sqlite:data/moim.db) or :memory: (sqlite::memory:)"
		}
		return ""
	case "postgres", "postgresql", "mysql":
		u, err := url.Parse(s)
		if err != nil || !strings.HasPrefix(rest, "//") {
			return "must be a URL such as " + scheme + "://user:pass@host:port/dbname"
		}
		if u.Host == "" {
			return "has no host"
		}
		return ""
	default:
		return "must start with postgres://, postgresql://, mysql:// or sqlite:"
	}
}

// redisURLProblem describes what is wrong with a Redis URL, or returns "".
// It never quotes the URL or the parser's error, which may hold a password.
func redisURLProblem(s string) string {
	scheme, _, _ := strings.Cut(s, "://")
	switch scheme {
	case "redis", "rediss":
		if _, err := redis.ParseURL(s); err != nil {
			return "must be redis://[:password@]host:port/db (or rediss://)"
		}
	case "redis-sentinel":
		// asynq reads the Sentinel form itself: the same parser decides here.
		u, uerr := url.Parse(s)
		if _, err := asynq.ParseRedisURI(s); err != nil || uerr != nil || u.Query().Get("master") == "" {
			return "must be redis-sentinel://[:password@]host:port[,host:port]/db?master=name"
		}
	default:
		return "must start with redis://, rediss:// or redis-sentinel://"
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ParseClock reads a time of day "HH:MM" as the time since midnight.
func ParseClock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a time of day HH:MM", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}
