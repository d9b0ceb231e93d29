// Package slack posts group messages through the Slack Web API with a bot
// token. It knows the protocol only: what to send and when is decided by the
// notification handlers.
//
// The bot needs the scopes users:read.email (users.lookupByEmail), im:write
// and mpim:write (conversations.open) and chat:write (chat.postMessage).
package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/moim/moim/jobs/notify"
)

// Defaults for the zero values of Config.
const (
	DefaultBaseURL     = "https://slack.com/api"
	DefaultTimeout     = 10 * time.Second
	DefaultCacheTTL    = 24 * time.Hour
	DefaultCachePrefix = "moim:slack:user:"
)

// MissTTL is how long an address without a Slack account is remembered
// (never longer than the cache TTL): long enough that a burst of messages
// does not repeat the lookup, short enough that someone who just joined the
// workspace is found the same day.
const MissTTL = time.Hour

// ErrEmptyText is returned, wrapped with notify.Permanent, for a message
// without text.
var ErrEmptyText = errors.New("empty text")

// Config is what the client needs to reach Slack.
type Config struct {
	Token       string                // bot token (xoxb-…); secret: never in errors or logs
	BaseURL     string                // default DefaultBaseURL
	Timeout     time.Duration         // per API call; 0 means DefaultTimeout
	HTTPClient  *http.Client          // optional
	Redis       redis.UniversalClient // caches e-mail → user id; required
	CacheTTL    time.Duration         // for found users; 0 means DefaultCacheTTL
	CachePrefix string                // default DefaultCachePrefix
}

// Validate reports every problem with c, one line each. It never quotes the
// token.
func (c Config) Validate() error {
	var errs []error
	switch {
	case c.Token == "":
		errs = append(errs, errors.New("slack: token is required"))
	case strings.ContainsFunc(c.Token, notPrintable):
		errs = append(errs, errors.New("slack: token must be printable with no spaces"))
	// Only a bot token can open group DMs as the app; a user or app-level
	// token would fail on the first message instead of at startup. Rotated
	// bot tokens carry an "xoxe." prefix.
	case !strings.HasPrefix(c.Token, "xoxb-") && !strings.HasPrefix(c.Token, "xoxe.xoxb-"):
		errs = append(errs, errors.New("slack: token must be a bot token (xoxb-…)"))
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		switch {
		case err != nil:
			errs = append(errs, errors.New("slack: base url is not a url"))
		case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
			errs = append(errs, errors.New("slack: base url must be an absolute http(s) url"))
		case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
			errs = append(errs, errors.New("slack: base url must have no query, fragment or user info"))
		}
	}
	if c.Timeout < 0 {
		errs = append(errs, errors.New("slack: timeout must not be negative"))
	}
	// Without the cache every message repeats a lookup per member against a
	// rate-limited method.
	if c.Redis == nil {
		errs = append(errs, errors.New("slack: redis is required"))
	}
	if c.CacheTTL < 0 {
		errs = append(errs, errors.New("slack: cache ttl must not be negative"))
	} else if c.CacheTTL > 0 && c.CacheTTL < time.Second {
		// Redis expiries are whole seconds here; less would be rounded to
		// "no expiry" or rejected.
		errs = append(errs, errors.New("slack: cache ttl must be at least 1s"))
	}
	if strings.ContainsFunc(c.CachePrefix, unicode.IsSpace) {
		errs = append(errs, errors.New("slack: cache prefix must have no spaces"))
	}
	return errors.Join(errs...)
}

// notPrintable rejects what cannot go into a header as is.
func notPrintable(r rune) bool { return r > unicode.MaxASCII || !unicode.IsGraphic(r) || r == ' ' }

// Client posts group messages to Slack. It is safe for concurrent use.
type Client struct {
	base     string
	token    string
	timeout  time.Duration
	http     *http.Client
	rdb      redis.UniversalClient
	hitTTL   time.Duration
	missTTL  time.Duration
	prefix   string
	authHead string
}

var _ notify.SlackSender = (*Client)(nil)

// New returns a client for cfg, or the errors of cfg.Validate.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Client{
		base:     strings.TrimRight(cfg.BaseURL, "/"),
		token:    cfg.Token,
		timeout:  cfg.Timeout,
		http:     cfg.HTTPClient,
		rdb:      cfg.Redis,
		hitTTL:   cfg.CacheTTL,
		prefix:   cfg.CachePrefix,
		authHead: "Bearer " + cfg.Token,
	}
	if c.base == "" {
		c.base = DefaultBaseURL
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.http == nil {
		c.http = &http.Client{}
	}
	if c.hitTTL == 0 {
		c.hitTTL = DefaultCacheTTL
	}
	c.missTTL = min(MissTTL, c.hitTTL)
	if c.prefix == "" {
		c.prefix = DefaultCachePrefix
	}
	return c, nil
}

// The Slack Web API methods used.
const (
	methodLookup = "users.lookupByEmail"
	methodOpen   = "conversations.open"
	methodPost   = "chat.postMessage"
)

// PostGroup sends m.Text once to the members with the addresses m.Emails:
// as a DM when one of them has a Slack account, as one group DM when
// several have. Addresses without an account (or of a deactivated one) are
// skipped; when none is left the error is notify.ErrNoRecipients. It
// returns "<channel>:<ts>", which identifies the message in Slack.
//
// Errors are marked notify.Permanent for a rejected token or scope, a
// refused conversation (including more members than Slack allows in a
// group DM, 8) or message, an empty text (ErrEmptyText) and no recipients;
// and notify.Temporary for rate limits (with Retry-After), 5xx answers,
// Slack's own transient codes, unknown codes, network errors, timeouts and
// a cancelled ctx. Errors wrap an *APIError when Slack answered.
func (c *Client) PostGroup(ctx context.Context, m notify.SlackGroupMessage) (string, error) {
	if strings.TrimSpace(m.Text) == "" {
		return "", notify.Permanent(fmt.Errorf("slack post group: %w", ErrEmptyText))
	}
	users, err := c.userIDs(ctx, m.Emails)
	if err != nil {
		return "", err
	}
	if len(users) == 0 {
		return "", notify.Permanent(fmt.Errorf("slack post group: %w", notify.ErrNoRecipients))
	}
	channel, err := c.open(ctx, users)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && staleUserCodes[ae.Code] {
			// A cached id may belong to an account deactivated since; the
			// next message should look the addresses up again.
			c.forget(ctx, m.Emails)
		}
		return "", err
	}
	return c.post(ctx, channel, escapeText(m.Text))
}

// staleUserCodes are conversations.open answers that say a user id no longer
// works.
var staleUserCodes = map[string]bool{
	"user_not_found": true, "users_not_found": true, "user_disabled": true, "cannot_dm_bot": true,
}

// missValue marks a cached address without a Slack account; Slack user ids
// never take this form.
const missValue = "-"

// userIDs maps the addresses to Slack user ids, from the cache or by
// lookup, in order and without duplicates, leaving out addresses without an
// account.
func (c *Client) userIDs(ctx context.Context, emails []string) ([]string, error) {
	var addrs []string
	seen := make(map[string]bool, len(emails))
	for _, e := range emails {
		// Slack matches addresses without regard to case; one key per
		// address keeps the cache from holding duplicates.
		e = strings.ToLower(strings.TrimSpace(e))
		if e == "" || seen[e] {
			continue
		}
		seen[e] = true
		addrs = append(addrs, e)
	}
	if len(addrs) == 0 {
		return nil, nil
	}

	cached := c.cacheGet(ctx, addrs)
	var ids []string
	seenID := make(map[string]bool, len(addrs))
	fresh := make(map[string]string)
	for _, e := range addrs {
		id, ok := cached[e]
		if !ok {
			var err error
			id, err = c.lookup(ctx, e)
			if err != nil {
				// What was found so far is still worth keeping for the retry.
				c.cacheSet(ctx, fresh)
				return nil, err
			}
			if id == "" {
				fresh[e] = missValue
			} else {
				fresh[e] = id
			}
		}
		if id == "" || id == missValue || seenID[id] {
			continue
		}
		seenID[id] = true
		ids = append(ids, id)
	}
	c.cacheSet(ctx, fresh)
	return ids, nil
}

// The cache is an optimisation: when Redis fails the addresses are looked
// up again rather than the message held back, so its errors are dropped.

// cacheGet returns the cached entries of addrs: a user id or missValue.
func (c *Client) cacheGet(ctx context.Context, addrs []string) map[string]string {
	// A pipeline of GETs rather than MGET, which a Redis Cluster rejects
	// when the keys fall in different slots.
	pipe := c.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(addrs))
	for i, e := range addrs {
		cmds[i] = pipe.Get(ctx, c.prefix+e)
	}
	_, _ = pipe.Exec(ctx)
	out := make(map[string]string, len(addrs))
	for i, cmd := range cmds {
		if v, err := cmd.Result(); err == nil && v != "" {
			out[addrs[i]] = v
		}
	}
	return out
}

// cacheSet stores entries (a user id or missValue per address).
func (c *Client) cacheSet(ctx context.Context, entries map[string]string) {
	if len(entries) == 0 {
		return
	}
	pipe := c.rdb.Pipeline()
	for e, v := range entries {
		ttl := c.hitTTL
		if v == missValue {
			ttl = c.missTTL
		}
		pipe.Set(ctx, c.prefix+e, v, ttl)
	}
	_, _ = pipe.Exec(ctx)
}

// forget drops the cached entries of the addresses.
func (c *Client) forget(ctx context.Context, emails []string) {
	keys := make([]string, 0, len(emails))
	for _, e := range emails {
		if e = strings.ToLower(strings.TrimSpace(e)); e != "" {
			keys = append(keys, c.prefix+e)
		}
	}
	if len(keys) == 0 {
		return
	}
	// One DEL per key, for the same reason as in cacheGet.
	pipe := c.rdb.Pipeline()
	for _, k := range keys {
		pipe.Del(ctx, k)
	}
	_, _ = pipe.Exec(ctx)
}

// lookup returns the user id of the account with this address, or "" when
// there is no such account or it is deactivated.
func (c *Client) lookup(ctx context.Context, email string) (string, error) {
	// POST rather than GET keeps the address out of URLs, which proxies and
	// error messages repeat.
	form := url.Values{"email": {email}}
	var resp struct {
		User struct {
			ID      string `json:"id"`
			Deleted bool   `json:"deleted"`
		} `json:"user"`
	}
	err := c.call(ctx, methodLookup, "application/x-www-form-urlencoded", []byte(form.Encode()), &resp)
	var ae *APIError
	if errors.As(err, &ae) && ae.Code == "users_not_found" {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if resp.User.Deleted {
		return "", nil
	}
	if resp.User.ID == "" {
		return "", notify.Temporary(fmt.Errorf("slack %s: answer without a user id", methodLookup), 0)
	}
	return resp.User.ID, nil
}

// open opens (or finds) the DM or group DM of users and returns its id.
func (c *Client) open(ctx context.Context, users []string) (string, error) {
	body, err := json.Marshal(struct {
		Users string `json:"users"`
	}{strings.Join(users, ",")})
	if err != nil {
		return "", notify.Permanent(fmt.Errorf("slack %s: encode request: %w", methodOpen, err))
	}
	var resp struct {
		Channel struct {
			ID string `json:"id"`
		} `json:"channel"`
	}
	if err := c.call(ctx, methodOpen, jsonContentType, body, &resp); err != nil {
		return "", err
	}
	if resp.Channel.ID == "" {
		return "", notify.Temporary(fmt.Errorf("slack %s: answer without a channel id", methodOpen), 0)
	}
	return resp.Channel.ID, nil
}

// post sends text to channel and returns "<channel>:<ts>".
func (c *Client) post(ctx context.Context, channel, text string) (string, error) {
	body, err := json.Marshal(struct {
		Channel string `json:"channel"`
		Text    string `json:"text"`
	}{channel, text})
	if err != nil {
		return "", notify.Permanent(fmt.Errorf("slack %s: encode request: %w", methodPost, err))
	}
	var resp struct {
		Channel string `json:"channel"`
		TS      string `json:"ts"`
	}
	if err := c.call(ctx, methodPost, jsonContentType, body, &resp); err != nil {
		return "", err
	}
	if resp.TS == "" {
		// Probably posted, but without a ts nothing can be traced; a retry
		// may duplicate the message, which beats losing it.
		return "", notify.Temporary(fmt.Errorf("slack %s: answer without a ts", methodPost), 0)
	}
	if resp.Channel != "" {
		channel = resp.Channel
	}
	return channel + ":" + resp.TS, nil
}

const jsonContentType = "application/json; charset=utf-8"

// maxResponse caps what is read of an answer; a user object is a few KB.
const maxResponse = 1 << 20

// call POSTs body to method and decodes a successful answer into out. Its
// errors are classified; an answer Slack gave comes as an *APIError.
func (c *Client) call(ctx context.Context, method, contentType string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/"+method, bytes.NewReader(body))
	if err != nil {
		return notify.Permanent(fmt.Errorf("slack %s: build request: %w", method, err))
	}
	req.Header.Set("Authorization", c.authHead)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")

	resp, err := c.http.Do(req)
	if err != nil {
		// A timeout after chat.postMessage went out may mean it was posted;
		// retrying is still the better failure than never sending.
		return notify.Temporary(fmt.Errorf("slack %s: %w", method, err), 0)
	}
	defer resp.Body.Close()
	raw, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponse))

	var env struct {
		OK     bool   `json:"ok"`
		Error  string `json:"error"`
		Needed string `json:"needed"`
	}
	parsed := readErr == nil && json.Unmarshal(raw, &env) == nil
	ae := &APIError{Method: method, StatusCode: resp.StatusCode}
	if parsed && !env.OK {
		ae.Code, ae.Needed = c.clean(env.Error), c.clean(env.Needed)
	}
	code := resp.StatusCode
	switch {
	case code == http.StatusTooManyRequests:
		if ae.Code == "" {
			ae.Code = "ratelimited"
		}
		return notify.Temporary(ae, retryAfter(resp.Header.Get("Retry-After")))
	case code >= 500, code == http.StatusRequestTimeout:
		return notify.Temporary(ae, 0)
	case code/100 != 2 && ae.Code == "":
		// Not Slack's own answer (a wrong base URL, a proxy): retrying the
		// same request cannot help.
		return notify.Permanent(ae)
	case ae.Code != "":
		return classify(ae, resp.Header)
	case readErr != nil:
		return notify.Temporary(fmt.Errorf("slack %s: read response: %w", method, readErr), 0)
	case !parsed:
		return notify.Temporary(fmt.Errorf("slack %s: status %d: answer is not json", method, code), 0)
	case !env.OK:
		return notify.Temporary(fmt.Errorf("slack %s: ok:false without an error code", method), 0)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return notify.Temporary(fmt.Errorf("slack %s: decode answer: %w", method, err), 0)
	}
	return nil
}

// APIError is an answer of Slack other than success: an ok:false error code
// or an HTTP error status.
type APIError struct {
	Method     string // e.g. "chat.postMessage"
	Code       string // Slack's error code ("channel_not_found"); "" when the answer had none
	Needed     string // the missing scope, with missing_scope
	StatusCode int    // the HTTP status
}

// Error names the method and the code (or the status), never the request.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("slack " + e.Method + ": ")
	switch {
	case e.Code != "":
		b.WriteString(e.Code)
		if e.Needed != "" {
			b.WriteString(" (needed " + e.Needed + ")")
		}
		if e.StatusCode/100 != 2 {
			fmt.Fprintf(&b, " (status %d)", e.StatusCode)
		}
	default:
		fmt.Fprintf(&b, "status %d", e.StatusCode)
	}
	return b.String()
}

// permanentCodes are ok:false codes that sending the same request again
// cannot fix: the token, the app's scopes, the users or the message are
// wrong.
var permanentCodes = map[string]bool{
	"invalid_auth": true, "not_authed": true, "account_inactive": true,
	"token_revoked": true, "token_expired": true, "no_permission": true,
	"missing_scope": true, "not_allowed_token_type": true, "access_denied": true,
	"ekm_access_denied": true, "enterprise_is_restricted": true, "team_access_not_granted": true,
	"channel_not_found": true, "is_archived": true, "msg_too_long": true, "no_text": true,
	"invalid_arguments": true, "invalid_form_data": true, "invalid_json": true, "invalid_charset": true,
	"user_not_found": true, "users_not_found": true, "cannot_dm_bot": true, "user_disabled": true,
	"too_many_users": true, "not_enough_users": true, "invalid_user_combination": true,
	"restricted_action": true, "method_deprecated": true, "deprecated_endpoint": true,
}

// classify marks an ok:false answer as permanent or temporary.
func classify(ae *APIError, h http.Header) error {
	if permanentCodes[ae.Code] {
		return notify.Permanent(ae)
	}
	if ae.Code == "ratelimited" {
		return notify.Temporary(ae, retryAfter(h.Get("Retry-After")))
	}
	// fatal_error, internal_error, service_unavailable, request_timeout and
	// every code not listed above: an outage or a code Slack added later
	// should delay the message, not lose it.
	return notify.Temporary(ae, 0)
}

// maxCode caps the text taken from an answer into our errors, which end up
// in the delivery row and the logs.
const maxCode = 100

// clean makes a field of an answer safe for an error message: one line,
// capped, and without the token in case a peer echoes the request.
func (c *Client) clean(s string) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Join(strings.Fields(s), " ")
	s = strings.ReplaceAll(s, c.token, "[redacted]")
	if len(s) > maxCode {
		cut := maxCode
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// retryAfter reads a Retry-After header, in seconds (as Slack sends it) or
// as an HTTP date; 0 when absent, unreadable or already past.
func retryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		// Cap before multiplying so an absurd value cannot overflow.
		return time.Duration(min(secs, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// escapeText escapes the three characters Slack reads as markup, so text
// from members (a nickname "<!channel>") is shown, never acted on. The
// texts use no Slack markup of their own, so everything can be escaped.
func escapeText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
