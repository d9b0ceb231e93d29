package httpapi_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/db/dbtest"
)

// pointsStart is when the wallet tests begin, a whole second (signature
// timestamps are in seconds).
var pointsStart = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

// testWebhookSecret signs the test servers' payment webhooks.
var testWebhookSecret = []byte("whsec-test-0123456789abcdef")

type pointEntryBody struct {
	ID        string `json:"id"`
	Amount    int64  `json:"amount"`
	Kind      string `json:"kind"`
	MissionID string `json:"mission_id"`
	Reason    string `json:"reason"`
	CreatedAt string `json:"created_at"`
}

type myPointsBody struct {
	Balance    int64            `json:"balance"`
	Entries    []pointEntryBody `json:"entries"`
	NextCursor *string          `json:"next_cursor"`
}

type adjustmentBody struct {
	MemberID string         `json:"member_id"`
	Entry    pointEntryBody `json:"entry"`
	Balance  int64          `json:"balance"`
}

type webhookBody struct {
	Credited bool            `json:"credited"`
	MemberID string          `json:"member_id"`
	Entry    *pointEntryBody `json:"entry"`
	Balance  *int64          `json:"balance"`
}

// newPointServer starts the API on a clock at pointsStart with the test
// webhook secret and a 5-minute tolerance.
func newPointServer(t testing.TB, e *env, mutate func(*httpapi.Deps)) (*testServer, *roomClock) {
	t.Helper()
	clock := &roomClock{now: pointsStart}
	s := newServer(t, e, func(d *httpapi.Deps) {
		d.NowFunc = clock.Now
		d.Payments = httpapi.PaymentParams{WebhookSecret: testWebhookSecret, WebhookTolerance: 5 * time.Minute}
		if mutate != nil {
			mutate(d)
		}
	}, nil)
	return s, clock
}

// wallet counts the ledger's entries and reads one member's balance row
// straight from the database (0 without one).
func wallet(t testing.TB, bdb *bun.DB, member string) (entries int, balance int64) {
	t.Helper()
	n, err := bdb.NewSelect().Table("point_entries").Count(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var b []int64
	err = bdb.NewSelect().Table("point_balances").Column("balance").
		Where("member_id = (SELECT id FROM members WHERE public_id = ?)", member).Scan(t.Context(), &b)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 {
		balance = b[0]
	}
	return int(n), balance
}

// adjust posts an adjustment as the operator and decodes the answer.
func (s *testServer) adjust(t testing.TB, wantStatus int, body string) adjustmentBody {
	t.Helper()
	resp, raw := s.do(t, request{method: http.MethodPost, path: "/v1/admin/points/adjustments", auth: authAdmin, body: body})
	if resp.StatusCode != wantStatus {
		t.Fatalf("adjust %s: status = %d, want %d (body %s)", body, resp.StatusCode, wantStatus, raw)
	}
	var a adjustmentBody
	decodeStrict(t, raw, &a)
	return a
}

func adjustmentJSON(member string, amount int64, reason, key string) string {
	s := fmt.Sprintf(`{"member_id":%q,"amount":%d,"reason":%q`, member, amount, reason)
	if key != "" {
		s += fmt.Sprintf(`,"idempotency_key":%q`, key)
	}
	return s + "}"
}

func TestMyPoints(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, clock := newPointServer(t, newEnv(t, bdb), nil)
		mina, joon := s.randomMember(t, "mina"), s.randomMember(t, "joon")

		var page myPointsBody
		raw := s.getOK(t, "/v1/me/points", mina.token, &page)
		if string(raw) != `{"balance":0,"entries":[],"next_cursor":null}`+"\n" {
			t.Errorf("empty wallet = %s", raw)
		}
		// Five adjustments of Mina's a second apart, one of Joon's between.
		var want []pointEntryBody // newest first
		for i := range 5 {
			a := s.adjust(t, http.StatusCreated, adjustmentJSON(mina.ID, int64(10*(i+1)), fmt.Sprintf("gift %d", i), ""))
			want = append([]pointEntryBody{a.Entry}, want...)
			if i == 2 {
				s.adjust(t, http.StatusCreated, adjustmentJSON(joon.ID, 1, "joon's", ""))
			}
			clock.Advance(time.Second)
		}
		if want[0].CreatedAt != "2026-12-07T10:00:04Z" || want[4].Kind != "ADJUSTMENT" || want[4].Reason != "gift 0" {
			t.Errorf("entries %+v", want)
		}

		var got []pointEntryBody
		var sizes []int
		path := "/v1/me/points?limit=2"
		for range 5 {
			var p myPointsBody
			resp, raw := s.do(t, request{method: http.MethodGet, path: path, token: mina.token})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %d %s", path, resp.StatusCode, raw)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
			decodeStrict(t, raw, &p)
			if p.Balance != 150 {
				t.Errorf("balance = %d, want 150", p.Balance)
			}
			for _, e := range p.Entries {
				// reason is left out when empty; mission_id when none.
				if strings.Contains(string(raw), "mission_id") {
					t.Errorf("an adjustment has a mission_id: %s", raw)
				}
				parseWireTime(t, "created_at", e.CreatedAt)
			}
			got = append(got, p.Entries...)
			sizes = append(sizes, len(p.Entries))
			if p.NextCursor == nil {
				break
			}
			path = "/v1/me/points?limit=2&cursor=" + *p.NextCursor
		}
		if diff := cmp.Diff([]int{2, 2, 1}, sizes); diff != "" {
			t.Errorf("page sizes (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("entries (-want +got):\n%s", diff)
		}

		for _, tt := range []struct {
			name, path, token string
			wantStatus        int
			wantCode, field   string
		}{
			{"no token", "/v1/me/points", "", 401, "unauthorized", ""},
			{"limit 0", "/v1/me/points?limit=0", mina.token, 400, "invalid", "limit"},
			{"limit 101", "/v1/me/points?limit=101", mina.token, 400, "invalid", "limit"},
			{"unknown cursor", "/v1/me/points?cursor=nope", mina.token, 400, "invalid", "cursor"},
			{"another member's cursor", "/v1/me/points?cursor=" + want[0].ID, joon.token, 400, "invalid", "cursor"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				resp, body := s.do(t, request{method: http.MethodGet, path: tt.path, token: tt.token})
				checkError(t, resp, body, tt.wantStatus, tt.wantCode, tt.field)
			})
		}
	})
}

func TestPointAdjustment(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, _ := newPointServer(t, newEnv(t, bdb), nil)
		mina := s.randomMember(t, "mina")
		const path = "/v1/admin/points/adjustments"

		a := s.adjust(t, http.StatusCreated, adjustmentJSON(mina.ID, 100, "  welcome gift ", "grant-1"))
		if a.MemberID != mina.ID || a.Balance != 100 || a.Entry.Amount != 100 || a.Entry.Kind != "ADJUSTMENT" ||
			a.Entry.Reason != "welcome gift" || a.Entry.CreatedAt != "2026-12-07T10:00:00Z" || a.Entry.ID == "" {
			t.Errorf("adjustment answered %+v", a)
		}
		// The same key again: the same entry, 200, nothing changed.
		again := s.adjust(t, http.StatusOK, adjustmentJSON(mina.ID, 100, "welcome gift", "grant-1"))
		if diff := cmp.Diff(a, again); diff != "" {
			t.Errorf("repeat (-first +repeat):\n%s", diff)
		}
		// Without a key, each call is its own entry.
		s.adjust(t, http.StatusCreated, adjustmentJSON(mina.ID, -30, "correction", ""))
		if b := s.adjust(t, http.StatusCreated, adjustmentJSON(mina.ID, -30, "correction", "")); b.Balance != 40 {
			t.Errorf("balance after two corrections = %d, want 40", b.Balance)
		}
		entries, balance := wallet(t, bdb, mina.ID)
		if entries != 3 || balance != 40 {
			t.Fatalf("%d entries, balance %d; want 3, 40", entries, balance)
		}

		member := mina.token
		maxAmount := strconv.FormatInt(1_000_000_000, 10)
		for _, tt := range []struct {
			name       string
			auth       basicAuth
			token      string
			body       string
			wantStatus int
			wantCode   string
			wantField  string
		}{
			{"no credentials", authNone, "", adjustmentJSON(mina.ID, 5, "x", ""), 401, "unauthorized", ""},
			{"member token", authNone, member, adjustmentJSON(mina.ID, 5, "x", ""), 403, "forbidden", ""},
			{"zero", authAdmin, "", adjustmentJSON(mina.ID, 0, "x", ""), 400, "invalid", "amount"},
			{"too big", authAdmin, "", `{"member_id":"` + mina.ID + `","amount":` + maxAmount + `1,"reason":"x"}`, 400, "invalid", "amount"},
			{"too small", authAdmin, "", `{"member_id":"` + mina.ID + `","amount":-` + maxAmount + `1,"reason":"x"}`, 400, "invalid", "amount"},
			{"fraction", authAdmin, "", `{"member_id":"` + mina.ID + `","amount":1.5,"reason":"x"}`, 400, "invalid", "amount"},
			{"no reason", authAdmin, "", `{"member_id":"` + mina.ID + `","amount":5}`, 400, "invalid", "reason"},
			{"blank reason", authAdmin, "", adjustmentJSON(mina.ID, 5, "   ", ""), 400, "invalid", "reason"},
			{"reason too long", authAdmin, "", adjustmentJSON(mina.ID, 5, strings.Repeat("가", 256), ""), 400, "invalid", "reason"},
			{"hidden reason", authAdmin, "", adjustmentJSON(mina.ID, 5, "gift\u202e", ""), 400, "invalid", "reason"},
			{"no member", authAdmin, "", `{"amount":5,"reason":"x"}`, 400, "invalid", "member_id"},
			{"unknown member", authAdmin, "", adjustmentJSON("aaaaaaaaaaaaaaaaaaaaaaaaaa", 5, "x", ""), 404, "not_found", "member_id"},
			{"bad key", authAdmin, "", adjustmentJSON(mina.ID, 5, "x", "with space"), 400, "invalid", "idempotency_key"},
			{"long key", authAdmin, "", adjustmentJSON(mina.ID, 5, "x", strings.Repeat("k", 123)), 400, "invalid", "idempotency_key"},
			{"key reused for another amount", authAdmin, "", adjustmentJSON(mina.ID, 101, "welcome gift", "grant-1"), 409, "conflict", "idempotency_key"},
			{"below zero", authAdmin, "", adjustmentJSON(mina.ID, -41, "too much", ""), 409, "insufficient_points", ""},
			{"below zero with a key", authAdmin, "", adjustmentJSON(mina.ID, -41, "too much", "k2"), 409, "insufficient_points", ""},
			{"unknown field", authAdmin, "", `{"member_id":"` + mina.ID + `","amount":5,"reason":"x","kind":"CHARGE"}`, 400, "invalid", "kind"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				resp, body := s.do(t, request{method: http.MethodPost, path: path, auth: tt.auth, token: tt.token, body: tt.body})
				checkError(t, resp, body, tt.wantStatus, tt.wantCode, tt.wantField)
				if n, b := wallet(t, bdb, mina.ID); n != 3 || b != 40 {
					t.Errorf("after a refusal: %d entries, balance %d; want 3, 40", n, b)
				}
			})
		}
		// Spending exactly the balance is allowed.
		if z := s.adjust(t, http.StatusCreated, adjustmentJSON(mina.ID, -40, "closing", "k2")); z.Balance != 0 {
			t.Errorf("balance = %d, want 0", z.Balance)
		}
	})
}

// signWebhook is the X-Moim-Signature of body at t under secret.
func signWebhook(secret []byte, t time.Time, body string) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts + "." + body))
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

func (s *testServer) webhook(t testing.TB, body, signature string) (*http.Response, []byte) {
	t.Helper()
	req := request{method: http.MethodPost, path: "/v1/payments/webhook", body: body}
	if signature != "" {
		req.header = map[string]string{"X-Moim-Signature": signature}
	}
	return s.do(t, req)
}

func paymentJSON(paymentID, member string, amount int64, status string) string {
	return fmt.Sprintf(`{"payment_id":%q,"member_id":%q,"amount":%d,"status":%q}`, paymentID, member, amount, status)
}

func TestPaymentWebhook(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		e := newEnv(t, bdb)
		s, clock := newPointServer(t, e, nil)
		mina := s.randomMember(t, "mina")
		check := func(t *testing.T, wantEntries int, wantBalance int64) {
			t.Helper()
			if n, b := wallet(t, bdb, mina.ID); n != wantEntries || b != wantBalance {
				t.Errorf("%d entries, balance %d; want %d, %d", n, b, wantEntries, wantBalance)
			}
		}

		// Refusals first: nothing may be credited by any of them.
		paid := paymentJSON("pay_1", mina.ID, 5000, "PAID")
		now := pointsStart
		other := paymentJSON("pay_1", mina.ID, 9999, "PAID")
		for _, tt := range []struct {
			name, body, signature string
			wantStatus            int
			wantCode, wantField   string
		}{
			{"no signature", paid, "", 401, "invalid_signature", ""},
			{"wrong secret", paid, signWebhook([]byte("another-secret-0123456789"), now, paid), 401, "invalid_signature", ""},
			{"signature of another body", paid, signWebhook(testWebhookSecret, now, other), 401, "invalid_signature", ""},
			{"timestamp not the signed one", paid, strings.Replace(signWebhook(testWebhookSecret, now, paid), "t=", "t=1", 1), 401, "invalid_signature", ""},
			{"old capture", paid, signWebhook(testWebhookSecret, now.Add(-5*time.Minute-time.Second), paid), 401, "invalid_signature", ""},
			{"from the future", paid, signWebhook(testWebhookSecret, now.Add(5*time.Minute+time.Second), paid), 401, "invalid_signature", ""},
			{"no timestamp", paid, "v1=" + strings.SplitN(signWebhook(testWebhookSecret, now, paid), "v1=", 2)[1], 401, "invalid_signature", ""},
			{"garbage header", paid, "sha256=abc", 401, "invalid_signature", ""},
			{"unknown member", paymentJSON("pay_2", "aaaaaaaaaaaaaaaaaaaaaaaaaa", 5000, "PAID"), "", 404, "not_found", "member_id"},
			{"zero amount", paymentJSON("pay_3", mina.ID, 0, "PAID"), "", 400, "invalid", "amount"},
			{"negative amount", paymentJSON("pay_3", mina.ID, -5, "PAID"), "", 400, "invalid", "amount"},
			{"amount too big", paymentJSON("pay_3", mina.ID, 1_000_000_001, "PAID"), "", 400, "invalid", "amount"},
			{"no payment id", paymentJSON("", mina.ID, 5, "PAID"), "", 400, "invalid", "payment_id"},
			{"payment id with a space", paymentJSON("pay 3", mina.ID, 5, "PAID"), "", 400, "invalid", "payment_id"},
			{"not JSON", `{"payment_id":`, "", 400, "invalid_json", ""},
			{"NUL in the member id", `{"payment_id":"pay_4","member_id":"a\u0000","amount":5,"status":"PAID"}`, "", 400, "invalid", "member_id"},
			{"NUL in the payment id", `{"payment_id":"pay\u0000","member_id":"` + mina.ID + `","amount":5,"status":"PAID"}`, "", 400, "invalid", "payment_id"},
			{"amount a string", `{"payment_id":"pay_5","member_id":"` + mina.ID + `","amount":"5","status":"PAID"}`, "", 400, "invalid", "amount"},
			{"too large", `{"payment_id":"` + strings.Repeat("x", 20<<10) + `"}`, "", 413, "too_large", ""},
		} {
			t.Run(tt.name, func(t *testing.T) {
				sig := tt.signature
				if sig == "" && !strings.HasPrefix(tt.name, "no signature") {
					sig = signWebhook(testWebhookSecret, now, tt.body)
				}
				resp, body := s.webhook(t, tt.body, sig)
				checkError(t, resp, body, tt.wantStatus, tt.wantCode, tt.wantField)
				check(t, 0, 0)
			})
		}
		// Another status is acknowledged and ignored.
		failed := paymentJSON("pay_1", mina.ID, 5000, "FAILED")
		resp, raw := s.webhook(t, failed, signWebhook(testWebhookSecret, now, failed))
		if resp.StatusCode != http.StatusOK || string(raw) != `{"credited":false}`+"\n" {
			t.Errorf("FAILED: %d %s", resp.StatusCode, raw)
		}
		check(t, 0, 0)

		// At the edge of the tolerance, with unknown fields and a second
		// (stale) v1 signature beside the good one: credited once.
		clock.Advance(5 * time.Minute)
		withExtra := `{"payment_id":"pay_1","member_id":"` + mina.ID + `","amount":5000,"status":"PAID","currency":"KRW"}`
		sig := signWebhook(testWebhookSecret, now, withExtra)
		sig += ",v1=" + strings.Repeat("0", 64)
		resp, raw = s.webhook(t, withExtra, sig)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("valid webhook: %d %s", resp.StatusCode, raw)
		}
		var w webhookBody
		decodeStrict(t, raw, &w)
		if !w.Credited || w.MemberID != mina.ID || w.Entry == nil || w.Entry.Amount != 5000 || w.Entry.Kind != "CHARGE" ||
			w.Balance == nil || *w.Balance != 5000 || w.Entry.CreatedAt != "2026-12-07T10:05:00Z" {
			t.Errorf("credited answer %s", raw)
		}
		check(t, 1, 5000)

		// The same call replayed, and the same payment signed anew: 200,
		// not credited again.
		for _, sig := range []string{sig, signWebhook(testWebhookSecret, clock.Now(), withExtra)} {
			resp, raw = s.webhook(t, withExtra, sig)
			if resp.StatusCode != http.StatusOK || string(raw) != `{"credited":false}`+"\n" {
				t.Errorf("replay: %d %s", resp.StatusCode, raw)
			}
		}
		check(t, 1, 5000)

		// The member sees the charge.
		var page myPointsBody
		s.getOK(t, "/v1/me/points", mina.token, &page)
		if page.Balance != 5000 || len(page.Entries) != 1 || page.Entries[0].ID != w.Entry.ID {
			t.Errorf("GET /v1/me/points = %+v", page)
		}

		// Without a secret the webhook is off: a call, signed or not, is
		// refused and credits nothing.
		off, _ := newPointServer(t, e, func(d *httpapi.Deps) { d.Payments = httpapi.PaymentParams{} })
		next := paymentJSON("pay_9", mina.ID, 10, "PAID")
		for _, sig := range []string{"", signWebhook(nil, pointsStart, next), signWebhook(testWebhookSecret, pointsStart, next)} {
			resp, raw := off.webhook(t, next, sig)
			checkError(t, resp, raw, http.StatusServiceUnavailable, "unavailable", "")
		}
		check(t, 1, 5000)
	})
}
