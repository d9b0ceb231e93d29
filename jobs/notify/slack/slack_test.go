package slack_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/moim/moim/jobs/jobstest"
	"github.com/moim/moim/jobs/notify"
	"github.com/moim/moim/jobs/notify/slack"
)

// workspace is the fake Slack's users: mina and joon have accounts, hana
// has none, old's account is deactivated.
func workspace() map[string]fakeUser {
	return map[string]fakeUser{
		"mina@moim.example": {ID: "U0MINA"},
		"joon@moim.example": {ID: "U0JOON"},
		"old@moim.example":  {ID: "U0OLD", Deleted: true},
	}
}

const (
	mina = "mina@moim.example"
	joon = "joon@moim.example"
	hana = "hana@moim.example"
	old  = "old@moim.example"
)

type bundle struct {
	fake   *fakeSlack
	client *slack.Client
	rdb    *redis.Client
}

// setup starts a fake Slack and a client for it with a Redis of its own;
// mod may change the config before the client is built.
func setup(t *testing.T, mod func(*slack.Config)) bundle {
	t.Helper()
	fake := newFakeSlack(t, workspace())
	rdb := newRedis(t)
	cfg := slack.Config{Token: testToken, BaseURL: fake.URL(), Timeout: 5 * time.Second, Redis: rdb}
	if mod != nil {
		mod(&cfg)
	}
	c, err := slack.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return bundle{fake: fake, client: c, rdb: rdb}
}

func newRedis(t *testing.T) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(jobstest.RedisURL(t))
	if err != nil {
		t.Fatalf("parse redis url: %v", err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// isTemporary tells a Temporary error from an unclassified one, which
// notify cannot: only the former is written with the prefix.
func isTemporary(err error) bool {
	return err != nil && !notify.IsPermanent(err) && strings.HasPrefix(err.Error(), "temporary")
}

func TestPostGroupSkipsMembersWithoutSlack(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)

	id, err := b.client.PostGroup(context.Background(), notify.SlackGroupMessage{
		Emails: []string{mina, hana, joon},
		Text:   "매칭이 완료되었어요",
	})
	if err != nil {
		t.Fatalf("PostGroup: %v", err)
	}

	var looked []string
	for _, c := range b.fake.callsOf("users.lookupByEmail") {
		looked = append(looked, c.Params["email"])
	}
	if diff := cmp.Diff([]string{mina, hana, joon}, looked); diff != "" {
		t.Errorf("lookups (-want +got):\n%s", diff)
	}
	opens := b.fake.callsOf("conversations.open")
	if len(opens) != 1 {
		t.Fatalf("conversations.open calls = %d, want 1", len(opens))
	}
	if got, want := opens[0].Params["users"], "U0MINA,U0JOON"; got != want {
		t.Errorf("conversations.open users = %q, want %q", got, want)
	}
	posts := b.fake.callsOf("chat.postMessage")
	if len(posts) != 1 {
		t.Fatalf("chat.postMessage calls = %d, want 1", len(posts))
	}
	want := map[string]string{"channel": "G0001", "text": "매칭이 완료되었어요"}
	if diff := cmp.Diff(want, posts[0].Params); diff != "" {
		t.Errorf("chat.postMessage params (-want +got):\n%s", diff)
	}
	for _, c := range append(opens, posts...) {
		if c.ContentType != "application/json; charset=utf-8" {
			t.Errorf("%s content type = %q, want JSON with charset", c.Method, c.ContentType)
		}
	}
	if want := "G0001:1700000000.000001"; id != want {
		t.Errorf("provider id = %q, want %q", id, want)
	}
}

func TestPostGroupOneMemberGetsADM(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)

	// The same address twice in other case, a deactivated account and a
	// blank are all one member.
	id, err := b.client.PostGroup(context.Background(), notify.SlackGroupMessage{
		Emails: []string{mina, "  MINA@moim.example ", old, ""},
		Text:   "hi",
	})
	if err != nil {
		t.Fatalf("PostGroup: %v", err)
	}
	if n := len(b.fake.callsOf("users.lookupByEmail")); n != 2 {
		t.Errorf("lookups = %d, want 2 (mina once, old)", n)
	}
	opens := b.fake.callsOf("conversations.open")
	if len(opens) != 1 || opens[0].Params["users"] != "U0MINA" {
		t.Fatalf("conversations.open calls = %+v, want one with U0MINA", opens)
	}
	if !strings.HasPrefix(id, "D0001:") {
		t.Errorf("provider id = %q, want the DM D0001", id)
	}
}

func TestPostGroupCachesLookups(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	m := notify.SlackGroupMessage{Emails: []string{mina, hana, joon}, Text: "hello"}

	if _, err := b.client.PostGroup(ctx, m); err != nil {
		t.Fatalf("first PostGroup: %v", err)
	}
	if _, err := b.client.PostGroup(ctx, m); err != nil {
		t.Fatalf("second PostGroup: %v", err)
	}
	if n := len(b.fake.callsOf("users.lookupByEmail")); n != 3 {
		t.Errorf("lookups after two sends = %d, want 3 (none the second time)", n)
	}
	opens := b.fake.callsOf("conversations.open")
	if len(opens) != 2 || opens[1].Params["users"] != "U0MINA,U0JOON" {
		t.Errorf("conversations.open calls = %+v, want two with U0MINA,U0JOON", opens)
	}

	for _, tc := range []struct {
		email    string
		min, max time.Duration
	}{
		{mina, slack.DefaultCacheTTL - time.Minute, slack.DefaultCacheTTL},
		{joon, slack.DefaultCacheTTL - time.Minute, slack.DefaultCacheTTL},
		{hana, slack.MissTTL - time.Minute, slack.MissTTL}, // the miss, for less long
	} {
		key := slack.DefaultCachePrefix + tc.email
		ttl, err := b.rdb.TTL(ctx, key).Result()
		if err != nil {
			t.Fatalf("TTL %s: %v", key, err)
		}
		if ttl < tc.min || ttl > tc.max {
			t.Errorf("TTL %s = %v, want between %v and %v", key, ttl, tc.min, tc.max)
		}
	}
	if got, err := b.rdb.Get(ctx, slack.DefaultCachePrefix+mina).Result(); err != nil || got != "U0MINA" {
		t.Errorf("cached id of mina = %q, %v; want U0MINA", got, err)
	}
}

func TestPostGroupMissTTLNotLongerThanCacheTTL(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *slack.Config) { c.CacheTTL = 10 * time.Minute; c.CachePrefix = "test:slack:" })
	ctx := context.Background()

	_, err := b.client.PostGroup(ctx, notify.SlackGroupMessage{Emails: []string{hana}, Text: "hi"})
	if !errors.Is(err, notify.ErrNoRecipients) {
		t.Fatalf("PostGroup = %v, want ErrNoRecipients", err)
	}
	ttl, err := b.rdb.TTL(ctx, "test:slack:"+hana).Result()
	if err != nil || ttl <= 0 || ttl > 10*time.Minute {
		t.Errorf("TTL of the miss = %v, %v; want at most 10m", ttl, err)
	}
}

func TestPostGroupNobodyOnSlack(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		emails     []string
		wantLookup int
	}{
		{"no account", []string{hana, "nobody@moim.example"}, 2},
		{"deactivated", []string{old}, 1},
		{"no addresses", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			_, err := b.client.PostGroup(context.Background(), notify.SlackGroupMessage{Emails: tc.emails, Text: "hi"})
			if !errors.Is(err, notify.ErrNoRecipients) || !notify.IsPermanent(err) {
				t.Fatalf("PostGroup = %v, want a permanent ErrNoRecipients", err)
			}
			if n := len(b.fake.callsOf("users.lookupByEmail")); n != tc.wantLookup {
				t.Errorf("lookups = %d, want %d", n, tc.wantLookup)
			}
			if n := len(b.fake.callsOf("conversations.open")); n != 0 {
				t.Errorf("conversations.open calls = %d, want 0", n)
			}
		})
	}
}

func TestPostGroupEmptyText(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_, err := b.client.PostGroup(context.Background(), notify.SlackGroupMessage{Emails: []string{mina}, Text: " \n"})
	if !errors.Is(err, slack.ErrEmptyText) || !notify.IsPermanent(err) {
		t.Fatalf("PostGroup = %v, want a permanent ErrEmptyText", err)
	}
	if n := len(b.fake.callsOf("users.lookupByEmail")); n != 0 {
		t.Errorf("lookups = %d, want 0", n)
	}
}

func TestPostGroupWrongToken(t *testing.T) {
	t.Parallel()
	const wrong = "xoxb-9999-8888-wRoNgSeCrEt"
	b := setup(t, func(c *slack.Config) { c.Token = wrong })

	_, err := b.client.PostGroup(context.Background(), notify.SlackGroupMessage{Emails: []string{mina}, Text: "hi"})
	if !notify.IsPermanent(err) {
		t.Fatalf("PostGroup = %v, want a permanent error", err)
	}
	var ae *slack.APIError
	if !errors.As(err, &ae) || ae.Code != "invalid_auth" || ae.Method != "users.lookupByEmail" {
		t.Errorf("error = %#v, want invalid_auth from users.lookupByEmail", ae)
	}
	for _, secret := range []string{wrong, testToken, "wRoNgSeCrEt"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q contains the token", err)
		}
	}
	if n := len(b.fake.callsOf("conversations.open")); n != 0 {
		t.Errorf("conversations.open calls = %d, want 0", n)
	}
}

func TestPostGroupClassifiesFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		method        string
		fail          failure
		wantPermanent bool
		wantAfter     time.Duration // 0: no Retry-After
		wantText      []string      // in the error message
	}{
		{
			name: "429 with retry-after", method: "chat.postMessage",
			fail:      failure{status: http.StatusTooManyRequests, code: "ratelimited", header: http.Header{"Retry-After": {"3"}}},
			wantAfter: 3 * time.Second, wantText: []string{"chat.postMessage", "ratelimited", "429"},
		},
		{
			name: "429 without a body", method: "users.lookupByEmail",
			fail:      failure{status: http.StatusTooManyRequests, header: http.Header{"Retry-After": {"30"}}},
			wantAfter: 30 * time.Second, wantText: []string{"users.lookupByEmail", "ratelimited"},
		},
		{
			name: "ratelimited with ok:false", method: "conversations.open",
			fail:      failure{code: "ratelimited", header: http.Header{"Retry-After": {"7"}}},
			wantAfter: 7 * time.Second, wantText: []string{"conversations.open", "ratelimited"},
		},
		{
			name: "500", method: "chat.postMessage",
			fail:     failure{status: http.StatusInternalServerError},
			wantText: []string{"chat.postMessage", "status 500"},
		},
		{
			name: "503 with a code", method: "conversations.open",
			fail:     failure{status: http.StatusServiceUnavailable, code: "service_unavailable"},
			wantText: []string{"conversations.open", "service_unavailable"},
		},
		{
			name: "internal_error", method: "users.lookupByEmail",
			fail:     failure{code: "internal_error"},
			wantText: []string{"users.lookupByEmail", "internal_error"},
		},
		{
			name: "unknown code", method: "chat.postMessage",
			fail:     failure{code: "weird_error"},
			wantText: []string{"chat.postMessage", "weird_error"},
		},
		{
			name: "channel_not_found", method: "chat.postMessage",
			fail: failure{code: "channel_not_found"}, wantPermanent: true,
			wantText: []string{"chat.postMessage", "channel_not_found"},
		},
		{
			name: "missing_scope", method: "conversations.open",
			fail: failure{code: "missing_scope"}, wantPermanent: true,
			wantText: []string{"conversations.open", "missing_scope"},
		},
		{
			name: "users_not_found from open", method: "conversations.open",
			fail: failure{code: "users_not_found"}, wantPermanent: true,
			wantText: []string{"conversations.open", "users_not_found"},
		},
		{
			name: "404 without a Slack answer", method: "chat.postMessage",
			fail: failure{status: http.StatusNotFound}, wantPermanent: true,
			wantText: []string{"chat.postMessage", "status 404"},
		},
		{
			name: "echoed token is redacted", method: "chat.postMessage",
			fail:     failure{code: "bad " + testToken},
			wantText: []string{"[redacted]"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			b.fake.failNext(tc.method, tc.fail)

			_, err := b.client.PostGroup(context.Background(), notify.SlackGroupMessage{Emails: []string{mina, joon}, Text: "hi"})
			if err == nil {
				t.Fatal("PostGroup succeeded, want an error")
			}
			if got := notify.IsPermanent(err); got != tc.wantPermanent {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, got, tc.wantPermanent)
			}
			if !tc.wantPermanent && !isTemporary(err) {
				t.Errorf("error %v is not marked temporary", err)
			}
			after, _ := notify.RetryAfter(err)
			if after != tc.wantAfter {
				t.Errorf("RetryAfter = %v, want %v", after, tc.wantAfter)
			}
			for _, s := range tc.wantText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("error %q contains the token", err)
			}
		})
	}
}

func TestPostGroupForgetsUsersSlackRefuses(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	m := notify.SlackGroupMessage{Emails: []string{mina, joon}, Text: "hi"}

	b.fake.failNext("conversations.open", failure{code: "user_disabled"})
	if _, err := b.client.PostGroup(ctx, m); !notify.IsPermanent(err) {
		t.Fatalf("PostGroup = %v, want a permanent error", err)
	}
	if n, err := b.rdb.Exists(ctx, slack.DefaultCachePrefix+mina, slack.DefaultCachePrefix+joon).Result(); err != nil || n != 0 {
		t.Errorf("cached entries left = %d, %v; want 0", n, err)
	}
	if _, err := b.client.PostGroup(ctx, m); err != nil {
		t.Fatalf("second PostGroup: %v", err)
	}
	if n := len(b.fake.callsOf("users.lookupByEmail")); n != 4 {
		t.Errorf("lookups = %d, want 4 (both looked up again)", n)
	}
}

func TestPostGroupTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		timeout  time.Duration // Config.Timeout
		deadline time.Duration // the caller's; 0 for none
		bound    time.Duration // the wait expected
	}{
		{"config timeout", 300 * time.Millisecond, 0, 300 * time.Millisecond},
		{"caller deadline", 10 * time.Second, 300 * time.Millisecond, 300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(c *slack.Config) { c.Timeout = tc.timeout })
			b.fake.setHang()
			ctx := context.Background()
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}

			start := time.Now()
			_, err := b.client.PostGroup(ctx, notify.SlackGroupMessage{Emails: []string{mina}, Text: "hi"})
			elapsed := time.Since(start)
			if !isTemporary(err) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("PostGroup = %v, want a temporary deadline error", err)
			}
			if elapsed > tc.bound+time.Second {
				t.Errorf("PostGroup took %v, want about %v", elapsed, tc.bound)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	// Validate does not connect, so the client needs no server.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rdb.Close() })
	valid := func() slack.Config { return slack.Config{Token: testToken, Redis: rdb} }

	for _, tc := range []struct {
		name    string
		mod     func(*slack.Config)
		wantErr string // "" for valid
	}{
		{"minimal", func(*slack.Config) {}, ""},
		{"everything", func(c *slack.Config) {
			c.BaseURL, c.Timeout, c.CacheTTL, c.CachePrefix = "http://slack.internal:8080/api/", time.Second, time.Hour, "x:slack:"
		}, ""},
		{"rotated bot token", func(c *slack.Config) { c.Token = "xoxe.xoxb-1-abc" }, ""},
		{"no token", func(c *slack.Config) { c.Token = "" }, "token is required"},
		{"user token", func(c *slack.Config) { c.Token = "xoxp-1-abc" }, "must be a bot token"},
		{"token with a newline", func(c *slack.Config) { c.Token = "xoxb-1\nX-Evil: 1" }, "printable"},
		{"relative base url", func(c *slack.Config) { c.BaseURL = "slack.com/api" }, "absolute http(s) url"},
		{"ftp base url", func(c *slack.Config) { c.BaseURL = "ftp://slack.com/api" }, "absolute http(s) url"},
		{"base url with query", func(c *slack.Config) { c.BaseURL = "https://slack.com/api?x=1" }, "no query"},
		{"negative timeout", func(c *slack.Config) { c.Timeout = -time.Second }, "timeout must not be negative"},
		{"no redis", func(c *slack.Config) { c.Redis = nil }, "redis is required"},
		{"negative cache ttl", func(c *slack.Config) { c.CacheTTL = -time.Hour }, "cache ttl must not be negative"},
		{"sub-second cache ttl", func(c *slack.Config) { c.CacheTTL = time.Millisecond }, "at least 1s"},
		{"prefix with space", func(c *slack.Config) { c.CachePrefix = "moim slack:" }, "cache prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid()
			tc.mod(&cfg)
			err := cfg.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				if _, err := slack.New(cfg); err != nil {
					t.Fatalf("New = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate = %v, want an error with %q", err, tc.wantErr)
			}
			if cfg.Token != "" && strings.Contains(err.Error(), cfg.Token) {
				t.Errorf("Validate error %q quotes the token", err)
			}
			if _, err := slack.New(cfg); err == nil {
				t.Error("New succeeded, want the Validate error")
			}
		})
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	err := slack.Config{Timeout: -1, CacheTTL: -1}.Validate()
	for _, want := range []string{"token is required", "timeout", "redis is required", "cache ttl"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want a line with %q", err, want)
		}
	}
}

func TestPostGroupEscapesMarkup(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	if _, err := b.client.PostGroup(context.Background(), notify.SlackGroupMessage{
		Emails: []string{mina}, Text: "<!channel> & <@U0JOON> 매칭",
	}); err != nil {
		t.Fatalf("PostGroup: %v", err)
	}
	posts := b.fake.callsOf("chat.postMessage")
	if len(posts) != 1 || posts[0].Params["text"] != "&lt;!channel&gt; &amp; &lt;@U0JOON&gt; 매칭" {
		t.Fatalf("posted %+v, want the markup escaped", posts)
	}
}
