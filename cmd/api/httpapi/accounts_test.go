package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs/jobstest"
)

// accountsStart is when the account code tests begin.
var accountsStart = time.Date(2026, 5, 1, 3, 0, 0, 0, time.UTC)

// newAccountsServer starts the API on a settable clock with a one-minute
// resend interval and small daily limits.
func newAccountsServer(t *testing.T, bdb *bun.DB, adjust func(*httpapi.AccountParams)) (*testServer, *env, *jobstest.Clock) {
	t.Helper()
	clock := jobstest.NewClock(accountsStart)
	e := newEnv(t, bdb)
	s := newServer(t, e, func(d *httpapi.Deps) {
		d.NowFunc = clock.Now
		d.Accounts.ResendInterval = time.Minute
		if adjust != nil {
			adjust(&d.Accounts)
		}
	}, nil)
	return s, e, clock
}

// withMember starts the API as newAccountsServer does with one member
// signed up (which mails an e-mail code) and returns their access token.
func withMember(t *testing.T, bdb *bun.DB, email string, adjust func(*httpapi.AccountParams)) (*testServer, string, *jobstest.Clock) {
	t.Helper()
	s, _, clock := newAccountsServer(t, bdb, adjust)
	s.signup(t, email, strings.Split(email, "@")[0])
	return s, s.login(t, email).AccessToken, clock
}

// codeRow is an account_codes row as the tests read it.
type codeRow struct {
	ID       string    `bun:"id"`
	MemberID string    `bun:"member_id"`
	Target   string    `bun:"target"`
	Attempts int       `bun:"attempts"`
	UsedAt   time.Time `bun:"used_at,nullzero"`
}

// codes returns the codes of purpose p, oldest first.
func codes(t *testing.T, bdb *bun.DB, p domain.CodePurpose) []codeRow {
	t.Helper()
	var rows []codeRow
	if err := bdb.NewSelect().Table("account_codes").Column("id", "member_id", "target", "attempts", "used_at").
		Where("purpose = ?", int16(p)).Order("created_at", "id").Scan(context.Background(), &rows); err != nil {
		t.Fatalf("read account codes: %v", err)
	}
	return rows
}

// latestCode returns the plaintext of the newest code of purpose p, as
// the worker derives it to send it.
func latestCode(t *testing.T, bdb *bun.DB, p domain.CodePurpose) string {
	t.Helper()
	rows := codes(t, bdb, p)
	if len(rows) == 0 {
		t.Fatalf("no %s code recorded", p)
	}
	return domain.AccountCodeSecret(testCodeKey, rows[len(rows)-1].ID, p)
}

// wrongCode returns a well-formed code that is not code.
func wrongCode(code string) string {
	if code == "222222" {
		return "333333"
	}
	return "222222"
}

// me returns the member behind tok.
func (s *testServer) me(t *testing.T, tok string) memberBody {
	t.Helper()
	var m memberBody
	s.getOK(t, "/v1/me", tok, &m)
	return m
}

// post sends a JSON body to path with tok.
func (s *testServer) post(t *testing.T, path, tok, body string) (*http.Response, []byte) {
	t.Helper()
	return s.do(t, request{method: http.MethodPost, path: path, token: tok, body: body})
}

func codeBody(code string) string { return fmt.Sprintf(`{"code":%q}`, code) }

// TestEmailVerification: sign-up mails a code; wrong, malformed, expired
// and reused codes are refused and change nothing; resending is limited;
// the right code verifies the address once.
func TestEmailVerification(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, tok, clock := withMember(t, bdb, "mina@example.com", func(p *httpapi.AccountParams) { p.PerDay = 3 })
		if n := len(codes(t, bdb, domain.CodeEmail)); n != 1 {
			t.Fatalf("sign-up recorded %d e-mail codes, want 1", n)
		}
		first := latestCode(t, bdb, domain.CodeEmail)

		for _, tc := range []struct {
			body, code, field string
			status            int
		}{
			{codeBody(wrongCode(first)), domain.ECODEWRONG, "code", http.StatusBadRequest},
			{codeBody(""), domain.EINVALID, "code", http.StatusBadRequest},
			{codeBody("ABC"), domain.EINVALID, "code", http.StatusBadRequest},
			{`{"code":1}`, domain.EINVALID, "code", http.StatusBadRequest},
		} {
			resp, body := s.post(t, "/v1/me/email/verify", tok, tc.body)
			checkError(t, resp, body, tc.status, tc.code, tc.field)
		}
		if m := s.me(t, tok); m.EmailVerified {
			t.Fatal("a refused code verified the address")
		}

		// A resend within the interval is refused; after it the new code
		// supersedes the first.
		resp, body := s.post(t, "/v1/me/email/verification", tok, "")
		checkError(t, resp, body, http.StatusTooManyRequests, domain.ESENDLIMIT, "")
		clock.Advance(time.Minute)
		if resp, body := s.post(t, "/v1/me/email/verification", tok, ""); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("resend: status = %d (body %s)", resp.StatusCode, body)
		}
		second := latestCode(t, bdb, domain.CodeEmail)

		// Expired: past the default ten minutes.
		clock.Advance(httpapi.DefaultEmailCodeTTL)
		resp, body = s.post(t, "/v1/me/email/verify", tok, codeBody(second))
		checkError(t, resp, body, http.StatusBadRequest, domain.ECODEEXPIRED, "code")

		// The third send of the day is the last one allowed.
		if resp, body := s.post(t, "/v1/me/email/verification", tok, ""); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("resend: status = %d (body %s)", resp.StatusCode, body)
		}
		third := latestCode(t, bdb, domain.CodeEmail)
		clock.Advance(time.Minute)
		resp, body = s.post(t, "/v1/me/email/verification", tok, "")
		checkError(t, resp, body, http.StatusTooManyRequests, domain.ESENDLIMIT, "")
		if n := len(codes(t, bdb, domain.CodeEmail)); n != 3 {
			t.Fatalf("%d e-mail codes recorded, want 3", n)
		}

		// An older code does not count once a newer one exists. Typed in
		// lower case with a space, the right code verifies.
		resp, body = s.post(t, "/v1/me/email/verify", tok, codeBody(first))
		checkError(t, resp, body, http.StatusBadRequest, domain.ECODEWRONG, "code")
		resp, body = s.post(t, "/v1/me/email/verify", tok, codeBody(strings.ToLower(third[:3]+" "+third[3:])))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("verify: status = %d (body %s)", resp.StatusCode, body)
		}
		var m memberBody
		decodeStrict(t, body, &m)
		if !m.EmailVerified || m.Email != "mina@example.com" || m.PendingEmail != nil {
			t.Errorf("verify answered %+v", m)
		}
		resp, body = s.post(t, "/v1/me/email/verify", tok, codeBody(third))
		checkError(t, resp, body, http.StatusConflict, domain.ECODEUSED, "code")
		resp, body = s.post(t, "/v1/me/email/verification", tok, "")
		checkError(t, resp, body, http.StatusConflict, domain.EALREADYVERIFIED, "")
	})
}

// TestEmailCodeAttempts: every try counts; after the allowed number even
// the right code is refused, and nothing is verified.
func TestEmailCodeAttempts(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, tok, _ := withMember(t, bdb, "joon@example.com", func(p *httpapi.AccountParams) { p.Attempts = 3 })
		code := latestCode(t, bdb, domain.CodeEmail)
		for range 3 {
			resp, body := s.post(t, "/v1/me/email/verify", tok, codeBody(wrongCode(code)))
			checkError(t, resp, body, http.StatusBadRequest, domain.ECODEWRONG, "code")
		}
		resp, body := s.post(t, "/v1/me/email/verify", tok, codeBody(code))
		checkError(t, resp, body, http.StatusTooManyRequests, domain.ETOOMANYATTEMPTS, "code")
		if rows := codes(t, bdb, domain.CodeEmail); rows[0].Attempts != 3 || !rows[0].UsedAt.IsZero() {
			t.Errorf("code after the attempts: %+v", rows[0])
		}
		if s.me(t, tok).EmailVerified {
			t.Error("the address was verified after too many attempts")
		}
	})
}

// TestEmailChangeNeedsVerification: PATCH /v1/me with a new address leaves
// the old one in place (login and all) until the code mailed to the new
// one comes back.
func TestEmailChangeNeedsVerification(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, _, clock := newAccountsServer(t, bdb, nil)
		s.signup(t, "hana@example.com", "hana")
		s.signup(t, "taken@example.com", "taken")
		tok := s.login(t, "hana@example.com").AccessToken
		clock.Advance(time.Minute) // past the resend interval of the sign-up mail

		resp, body := s.do(t, request{method: http.MethodPatch, path: "/v1/me", token: tok, body: `{"email":"taken@example.com"}`})
		checkError(t, resp, body, http.StatusConflict, domain.EEMAILTAKEN, "email")
		resp, body = s.do(t, request{method: http.MethodPatch, path: "/v1/me", token: tok, body: `{"email":"not an address"}`})
		checkError(t, resp, body, http.StatusBadRequest, domain.EINVALID, "email")

		resp, body = s.do(t, request{method: http.MethodPatch, path: "/v1/me", token: tok, body: `{"email":"Hana.New@Example.com"}`})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PATCH email: status = %d (body %s)", resp.StatusCode, body)
		}
		var m memberBody
		decodeStrict(t, body, &m)
		if m.Email != "hana@example.com" || m.PendingEmail == nil || *m.PendingEmail != "hana.new@example.com" {
			t.Fatalf("PATCH email answered %+v", m)
		}
		if got := s.me(t, tok); got.Email != "hana@example.com" || got.PendingEmail == nil {
			t.Fatalf("GET /v1/me after the change request: %+v", got)
		}
		resp, body = s.do(t, request{method: http.MethodPost, path: "/v1/auth/login",
			body: `{"email":"hana.new@example.com","password":"correct horse battery"}`})
		checkError(t, resp, body, http.StatusUnauthorized, domain.EUNAUTHORIZED, "")
		s.login(t, "hana@example.com")

		resp, body = s.post(t, "/v1/me/email/verify", tok, codeBody(latestCode(t, bdb, domain.CodeEmail)))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("verify: status = %d (body %s)", resp.StatusCode, body)
		}
		decodeStrict(t, body, &m)
		if m.Email != "hana.new@example.com" || !m.EmailVerified || m.PendingEmail != nil {
			t.Errorf("verify answered %+v", m)
		}
		s.login(t, "hana.new@example.com")
	})
}

// statementCounter counts the statements run on a database, by operation.
type statementCounter struct {
	mu  sync.Mutex
	ops []string
}

func (c *statementCounter) BeforeQuery(ctx context.Context, e *bun.QueryEvent) context.Context {
	return ctx
}

func (c *statementCounter) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ops = append(c.ops, e.Operation())
}

// take returns the operations counted so far and starts again.
func (c *statementCounter) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ops := c.ops
	c.ops = nil
	return ops
}

// TestPasswordResetCostsTheSame: a reset for an unknown address answers
// 202 like one for a member's, runs the same statements, and records a
// code with no member, which the worker sends nowhere.
func TestPasswordResetCostsTheSame(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, _, clock := newAccountsServer(t, bdb, nil)
		s.signup(t, "mina@example.com", "mina")
		counter := &statementCounter{}
		bdb.AddQueryHook(counter)
		reset := func(email string) []string {
			t.Helper()
			clock.Advance(time.Minute)
			counter.take()
			resp, body := s.post(t, "/v1/auth/password-reset", "", fmt.Sprintf(`{"email":%q}`, email))
			if resp.StatusCode != http.StatusAccepted || len(body) != 0 {
				t.Fatalf("reset %s: status = %d (body %s)", email, resp.StatusCode, body)
			}
			return counter.take()
		}
		known, unknown := reset("mina@example.com"), reset("nobody@example.com")
		if strings.Join(known, " ") != strings.Join(unknown, " ") {
			t.Errorf("statements differ:\nknown   %v\nunknown %v", known, unknown)
		}
		t.Logf("%s: reset request runs %d statements for a known and %d for an unknown address: %v",
			bdb.Dialect().Name(), len(known), len(unknown), known)
		rows := codes(t, bdb, domain.CodeReset)
		if len(rows) != 2 || rows[0].MemberID == "" || rows[1].MemberID != "" || rows[1].Target != "nobody@example.com" {
			t.Errorf("reset codes: %+v", rows)
		}

		// Bad input: a clear 400, and nothing recorded.
		for _, body := range []string{`{"email":""}`, `{"email":"nope"}`, `{}`} {
			resp, b := s.post(t, "/v1/auth/password-reset", "", body)
			checkError(t, resp, b, http.StatusBadRequest, domain.EINVALID, "email")
		}
		if n := len(codes(t, bdb, domain.CodeReset)); n != 2 {
			t.Errorf("%d reset codes after bad requests, want 2", n)
		}
	})
}

// TestPasswordResetConfirm: the token sets the password and ends every
// session, so a live access token is refused; a reused, expired, unknown
// or malformed token is refused and changes nothing.
func TestPasswordResetConfirm(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, _, clock := newAccountsServer(t, bdb, nil)
		s.signup(t, "mina@example.com", "mina")
		live := s.login(t, "mina@example.com")
		confirm := func(token, password string) (*http.Response, []byte) {
			return s.post(t, "/v1/auth/password-reset/confirm", "",
				fmt.Sprintf(`{"token":%q,"password":%q}`, token, password))
		}
		requestReset := func(email string) string {
			t.Helper()
			clock.Advance(time.Minute)
			if resp, body := s.post(t, "/v1/auth/password-reset", "", fmt.Sprintf(`{"email":%q}`, email)); resp.StatusCode != http.StatusAccepted {
				t.Fatalf("reset: status = %d (body %s)", resp.StatusCode, body)
			}
			return latestCode(t, bdb, domain.CodeReset)
		}

		// Expired.
		stale := requestReset("mina@example.com")
		clock.Advance(httpapi.DefaultResetTokenTTL)
		resp, body := confirm(stale, "a new long password")
		checkError(t, resp, body, http.StatusBadRequest, domain.ECODEEXPIRED, "token")

		// A token for an unknown address was never sent: a stale link.
		ghost := requestReset("nobody@example.com")
		resp, body = confirm(ghost, "a new long password")
		checkError(t, resp, body, http.StatusBadRequest, domain.ECODEEXPIRED, "token")

		token := requestReset("mina@example.com")
		id, _, _ := strings.Cut(token, ".")
		for _, tc := range []struct {
			token, password, code, field string
		}{
			{"", "a new long password", domain.EINVALID, "token"},
			{"no-dot", "a new long password", domain.EINVALID, "token"},
			{id + ".forged", "a new long password", domain.ECODEWRONG, "token"},
			{"unknown.token", "a new long password", domain.ECODEEXPIRED, "token"},
			{token, "short", domain.EINVALID, "password"},
		} {
			resp, body := confirm(tc.token, tc.password)
			checkError(t, resp, body, http.StatusBadRequest, tc.code, tc.field)
		}
		s.me(t, live.AccessToken) // nothing changed yet

		resp, body = confirm(token, "a new long password")
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("confirm: status = %d (body %s)", resp.StatusCode, body)
		}
		resp, body = s.do(t, request{method: http.MethodGet, path: "/v1/me", token: live.AccessToken})
		checkError(t, resp, body, http.StatusUnauthorized, "token_revoked", "")
		resp, body = s.refresh(t, live.RefreshToken)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("refresh after reset: status = %d (body %s)", resp.StatusCode, body)
		}
		resp, body = s.do(t, request{method: http.MethodPost, path: "/v1/auth/login",
			body: `{"email":"mina@example.com","password":"correct horse battery"}`})
		checkError(t, resp, body, http.StatusUnauthorized, domain.EUNAUTHORIZED, "")
		s.loginAs(t, "mina@example.com", "a new long password", nil)

		resp, body = confirm(token, "another long password")
		checkError(t, resp, body, http.StatusConflict, domain.ECODEUSED, "token")
		s.loginAs(t, "mina@example.com", "a new long password", nil)
	})
}

// TestPhoneVerification: a code goes to the number, which becomes the
// member's verified one when it comes back; sends are limited per member
// and per number.
func TestPhoneVerification(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, _, clock := newAccountsServer(t, bdb, func(p *httpapi.AccountParams) {
			p.PerDay, p.SMSPerNumberPerDay = 3, 2
		})
		s.signup(t, "mina@example.com", "mina")
		s.signup(t, "joon@example.com", "joon")
		mina := s.login(t, "mina@example.com").AccessToken
		joon := s.login(t, "joon@example.com").AccessToken
		phone := func(tok, number string) (*http.Response, []byte) {
			return s.post(t, "/v1/me/phone", tok, fmt.Sprintf(`{"phone":%q}`, number))
		}

		for _, body := range []string{`{"phone":""}`, `{"phone":"call me"}`, `{}`} {
			resp, b := s.post(t, "/v1/me/phone", mina, body)
			checkError(t, resp, b, http.StatusBadRequest, domain.EINVALID, "phone")
		}
		if n := len(codes(t, bdb, domain.CodePhone)); n != 0 {
			t.Fatalf("%d phone codes after bad requests", n)
		}

		resp, body := phone(mina, "010-1234-5678")
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("phone: status = %d (body %s)", resp.StatusCode, body)
		}
		code := latestCode(t, bdb, domain.CodePhone)
		if m := s.me(t, mina); m.Phone != nil || m.PhoneVerified {
			t.Errorf("the number is the member's before its code came back: %+v", m)
		}
		resp, body = s.post(t, "/v1/me/phone/verify", mina, codeBody(wrongCode(code)))
		checkError(t, resp, body, http.StatusBadRequest, domain.ECODEWRONG, "code")
		resp, body = s.post(t, "/v1/me/phone/verify", mina, codeBody(code))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("phone verify: status = %d (body %s)", resp.StatusCode, body)
		}
		var m memberBody
		decodeStrict(t, body, &m)
		if m.Phone == nil || *m.Phone != "+821012345678" || !m.PhoneVerified {
			t.Errorf("phone verify answered %+v", m)
		}
		resp, body = phone(mina, "+82 10 1234 5678")
		checkError(t, resp, body, http.StatusConflict, domain.EALREADYVERIFIED, "phone")

		// Per number: the second send to it (another member's) is the last.
		clock.Advance(time.Minute)
		if resp, body := phone(joon, "010-1234-5678"); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("phone: status = %d (body %s)", resp.StatusCode, body)
		}
		clock.Advance(time.Minute)
		resp, body = phone(joon, "010-1234-5678")
		checkError(t, resp, body, http.StatusTooManyRequests, domain.ESENDLIMIT, "phone")

		// Per member: mina's third send of the day is the last.
		for _, n := range []string{"010-2222-0001", "010-2222-0002"} {
			clock.Advance(time.Minute)
			if resp, body := phone(mina, n); resp.StatusCode != http.StatusAccepted {
				t.Fatalf("phone %s: status = %d (body %s)", n, resp.StatusCode, body)
			}
		}
		clock.Advance(time.Minute)
		resp, body = phone(mina, "010-2222-0003")
		checkError(t, resp, body, http.StatusTooManyRequests, domain.ESENDLIMIT, "")
		if n := len(codes(t, bdb, domain.CodePhone)); n != 4 {
			t.Errorf("%d phone codes, want 4", n)
		}
		// A day later the window has moved on.
		clock.Advance(24 * time.Hour)
		if resp, body := phone(mina, "010-2222-0003"); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("phone next day: status = %d (body %s)", resp.StatusCode, body)
		}
	})
}

// TestConcurrentVerifyUsesACodeOnce: of N concurrent submissions of the
// right code exactly one verifies; the others are told it is used.
func TestConcurrentVerifyUsesACodeOnce(t *testing.T) {
	t.Parallel()
	const n = 8
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, tok, _ := withMember(t, bdb, "mina@example.com", func(p *httpapi.AccountParams) { p.Attempts = 2 * n })
		code := latestCode(t, bdb, domain.CodeEmail)
		var ok, used atomic.Int32
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				resp, body := s.post(t, "/v1/me/email/verify", tok, codeBody(code))
				switch {
				case resp.StatusCode == http.StatusOK:
					ok.Add(1)
				case resp.StatusCode == http.StatusConflict && strings.Contains(string(body), domain.ECODEUSED):
					used.Add(1)
				default:
					t.Errorf("verify: status = %d (body %s)", resp.StatusCode, body)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 1 || used.Load() != n-1 {
			t.Errorf("%d verified and %d were told used, want 1 and %d", ok.Load(), used.Load(), n-1)
		}
	})
}

// TestRequireVerifiedEmail: with matching gated, an unverified member's
// application is refused with 403 email_unverified and nothing stored,
// while reading and ungated changes stay open; once the address is
// verified the same application is accepted.
func TestRequireVerifiedEmail(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, tok, _ := withMember(t, bdb, "mina@example.com", func(p *httpapi.AccountParams) {
			p.RequireVerifiedEmail = []string{"matching"}
		})
		const apply = `{"category":"MEAL"}`
		resp, body := s.post(t, "/v1/random-matches", tok, apply)
		checkError(t, resp, body, http.StatusForbidden, domain.EEMAILUNVERIFIED, "")
		if apps, _, _ := randomStored(t, bdb); apps != 0 {
			t.Errorf("%d applications stored for an unverified member", apps)
		}
		// Reading a gated feature and changing an ungated one stay open.
		s.randomMine(t, tok, "MEAL")
		if resp, body := s.do(t, request{method: http.MethodPatch, path: "/v1/me", token: tok, body: `{"nickname":"미나2"}`}); resp.StatusCode != http.StatusOK {
			t.Errorf("PATCH /v1/me: status = %d (body %s)", resp.StatusCode, body)
		}

		if resp, body := s.post(t, "/v1/me/email/verify", tok, codeBody(latestCode(t, bdb, domain.CodeEmail))); resp.StatusCode/100 != 2 {
			t.Fatalf("verify: status = %d (body %s)", resp.StatusCode, body)
		}
		s.applyRandom(t, tok, apply)
	})
}
