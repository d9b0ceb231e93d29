package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
)

// notificationBody is a notification as the API shows it. Args is a map so
// the test sees the exact keys on the wire.
type notificationBody struct {
	ID        string         `json:"id"`
	Type      string         `json:"type"`
	Args      map[string]any `json:"args"`
	Read      bool           `json:"read"`
	ReadAt    *string        `json:"read_at"`
	CreatedAt string         `json:"created_at"`
}

// notificationListBody is the answer of GET /v1/notifications.
type notificationListBody struct {
	Notifications []notificationBody `json:"notifications"`
	NextCursor    *string            `json:"next_cursor"`
	UnreadCount   int                `json:"unread_count"`
}

// readBody is the answer of POST /v1/notifications/read.
type readBody struct {
	Updated     int `json:"updated"`
	UnreadCount int `json:"unread_count"`
}

// notificationsClock is when the test notifications are created: whole
// seconds, so every dialect stores them exactly.
var notificationsClock = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// notifyMember records one notification for member through the producer
// the features use, in a transaction of its own.
func notifyMember(t testing.TB, bdb *bun.DB, member string, typ domain.NotificationType, args domain.NotificationArgs, at time.Time) domain.Notification {
	t.Helper()
	var out []domain.Notification
	err := db.RunInTx(context.Background(), bdb, func(ctx context.Context, tx bun.Tx) error {
		var err error
		out, err = jobs.Notify(ctx, tx, typ, args, at, member)
		return err
	})
	if err != nil {
		t.Fatalf("notify %s: %v", member, err)
	}
	if len(out) != 1 {
		t.Fatalf("notify %s recorded %d notifications, want 1", member, len(out))
	}
	return out[0]
}

// notifyMany records n notifications for member, one second apart, oldest
// first, titled "run 00", "run 01", …
func notifyMany(t testing.TB, bdb *bun.DB, member string, n int) []domain.Notification {
	t.Helper()
	out := make([]domain.Notification, 0, n)
	for i := range n {
		out = append(out, notifyMember(t, bdb, member, domain.NotifyMatchConfirmed,
			domain.NotificationArgs{Title: fmt.Sprintf("run %02d", i)}, notificationsClock.Add(time.Duration(i)*time.Second)))
	}
	return out
}

// notificationsPage asks for one page and fails unless it is a 200 with
// exactly the list's fields.
func (s *testServer) notificationsPage(t testing.TB, token, query string) notificationListBody {
	t.Helper()
	var list notificationListBody
	s.getOK(t, "/v1/notifications"+query, token, &list)
	return list
}

// unreadCount is the unread_count the member's list shows.
func (s *testServer) unreadCount(t testing.TB, token string) int {
	t.Helper()
	return s.notificationsPage(t, token, "?limit=1").UnreadCount
}

// markRead posts body to /v1/notifications/read and fails unless it is a 200.
func (s *testServer) markRead(t testing.TB, token, body string) readBody {
	t.Helper()
	resp, b := s.do(t, request{method: http.MethodPost, path: "/v1/notifications/read", token: token, body: body})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/notifications/read %s: status = %d, want 200 (body %s)", body, resp.StatusCode, b)
	}
	var r readBody
	decodeStrict(t, b, &r)
	return r
}

// idsOf returns the ids of a page, in order.
func idsOf(list []notificationBody) []string {
	out := make([]string, 0, len(list))
	for _, n := range list {
		out = append(out, n.ID)
	}
	return out
}

// newestFirst returns the ids of ns, last created first.
func newestFirst(ns []domain.Notification) []string {
	out := make([]string, 0, len(ns))
	for i := len(ns) - 1; i >= 0; i-- {
		out = append(out, ns[i].ID)
	}
	return out
}

// jsonKeys returns the sorted keys of a JSON object.
func jsonKeys(t testing.TB, raw []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestNotificationList(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)
		mina := s.signup(t, "mina@example.com", "mina")
		joon := s.signup(t, "joon@example.com", "joon")
		minaTok := s.login(t, "mina@example.com").AccessToken
		joonTok := s.login(t, "joon@example.com").AccessToken

		// 24 through the producer and one, the newest, through the store.
		mine := notifyMany(t, bdb, mina.ID, 24)
		// Joon's rows sit between Mina's in id order, so a list that forgot
		// the member filter would show them on her pages.
		var theirs []domain.Notification
		for i := range 3 {
			theirs = append(theirs, notifyMember(t, bdb, joon.ID, domain.NotifyRoomCancelled,
				domain.NotificationArgs{Title: "joon's"}, notificationsClock.Add(time.Hour+time.Duration(i)*time.Second)))
		}
		// The newest of Mina's carries every kind of argument, to check the
		// wire shape on.
		startsAt := time.Date(2026, 6, 1, 19, 30, 0, 0, time.UTC)
		shaped := domain.Notification{MemberID: mina.ID, Type: domain.NotifyMatchConfirmed, CreatedAt: notificationsClock.Add(2 * time.Hour),
			Args: domain.NotificationArgs{RoomID: "room-1", MatchID: "match-1", Title: "한강 러닝", StartsAt: startsAt,
				Members: []string{"mina", "joon"}, Link: "/matches/match-1"}}
		if err := (db.Notifications{}).Create(t.Context(), bdb, &shaped); err != nil {
			t.Fatalf("create notification: %v", err)
		}
		mine = append(mine, shaped)
		// The oldest is read, so unread_count is not just the total.
		if _, err := (db.Notifications{}).MarkRead(t.Context(), bdb, mina.ID, []string{mine[0].ID}, notificationsClock); err != nil {
			t.Fatalf("mark read: %v", err)
		}
		want := newestFirst(mine)

		// The wire shape, on the raw bytes: every field present, read_at an
		// explicit null, args with snake_case keys and nothing empty.
		resp, raw := s.do(t, request{method: http.MethodGet, path: "/v1/notifications?limit=1", token: minaTok})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status = %d (body %s)", resp.StatusCode, raw)
		}
		if got, wantKeys := jsonKeys(t, raw), []string{"next_cursor", "notifications", "unread_count"}; !slices.Equal(got, wantKeys) {
			t.Errorf("list keys = %v, want %v", got, wantKeys)
		}
		var rawList struct {
			Notifications []json.RawMessage `json:"notifications"`
			NextCursor    *string           `json:"next_cursor"`
			UnreadCount   int               `json:"unread_count"`
		}
		decodeStrict(t, raw, &rawList)
		if len(rawList.Notifications) != 1 {
			t.Fatalf("limit=1 gave %d notifications", len(rawList.Notifications))
		}
		if got, wantKeys := jsonKeys(t, rawList.Notifications[0]), []string{"args", "created_at", "id", "read", "read_at", "type"}; !slices.Equal(got, wantKeys) {
			t.Errorf("notification keys = %v, want %v", got, wantKeys)
		}
		var first notificationBody
		decodeStrict(t, rawList.Notifications[0], &first)
		wantFirst := notificationBody{ID: shaped.ID, Type: "MATCH_CONFIRMED", CreatedAt: "2026-05-01T14:00:00Z",
			Args: map[string]any{"room_id": "room-1", "match_id": "match-1", "title": "한강 러닝",
				"starts_at": "2026-06-01T19:30:00Z", "members": []any{"mina", "joon"}, "link": "/matches/match-1"}}
		if diff := cmp.Diff(wantFirst, first); diff != "" {
			t.Errorf("newest notification (-want +got):\n%s", diff)
		}

		// Default pages: 20 then 5, newest first, each cursor leading on.
		p1 := s.notificationsPage(t, minaTok, "")
		if p1.NextCursor == nil {
			t.Fatal("first page has no next_cursor")
		}
		p2 := s.notificationsPage(t, minaTok, "?cursor="+url.QueryEscape(*p1.NextCursor))
		if p2.NextCursor != nil {
			t.Errorf("last page next_cursor = %q, want null", *p2.NextCursor)
		}
		if len(p1.Notifications) != 20 || len(p2.Notifications) != 5 {
			t.Fatalf("pages of %d and %d, want 20 and 5", len(p1.Notifications), len(p2.Notifications))
		}
		if diff := cmp.Diff(want, append(idsOf(p1.Notifications), idsOf(p2.Notifications)...)); diff != "" {
			t.Errorf("default pages (-want +got):\n%s", diff)
		}
		if p1.UnreadCount != 24 || p2.UnreadCount != 24 {
			t.Errorf("unread_count = %d, %d, want 24 (one of 25 is read)", p1.UnreadCount, p2.UnreadCount)
		}
		if last := p2.Notifications[4]; !last.Read || last.ReadAt == nil || *last.ReadAt != "2026-05-01T12:00:00Z" {
			t.Errorf("the read notification shows read=%v read_at=%v", last.Read, last.ReadAt)
		}

		// limit=10: 10, 10, 5.
		var got []string
		var sizes []int
		query := "?limit=10"
		for page := 0; ; page++ {
			if page > 3 {
				t.Fatal("paging does not end")
			}
			p := s.notificationsPage(t, minaTok, query)
			sizes = append(sizes, len(p.Notifications))
			got = append(got, idsOf(p.Notifications)...)
			if p.NextCursor == nil {
				break
			}
			query = "?limit=10&cursor=" + url.QueryEscape(*p.NextCursor)
		}
		if !slices.Equal(sizes, []int{10, 10, 5}) {
			t.Errorf("limit=10 page sizes = %v, want [10 10 5]", sizes)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("limit=10 pages (-want +got):\n%s", diff)
		}

		// Joon sees his three and nothing of Mina's.
		j := s.notificationsPage(t, joonTok, "?limit=100")
		if diff := cmp.Diff(newestFirst(theirs), idsOf(j.Notifications)); diff != "" {
			t.Errorf("joon's list (-want +got):\n%s", diff)
		}
		if j.UnreadCount != 3 || j.NextCursor != nil {
			t.Errorf("joon's unread_count = %d, next_cursor = %v", j.UnreadCount, j.NextCursor)
		}
		// A member with nothing gets an empty array, not null.
		s.signup(t, "empty@example.com", "empty")
		resp, raw = s.do(t, request{method: http.MethodGet, path: "/v1/notifications", token: s.login(t, "empty@example.com").AccessToken})
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), `"notifications":[]`) ||
			!strings.Contains(string(raw), `"next_cursor":null`) || !strings.Contains(string(raw), `"unread_count":0`) {
			t.Errorf("empty list: status = %d, body %s", resp.StatusCode, raw)
		}
	})
}

func TestNotificationListRejects(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)
		mina := s.signup(t, "mina@example.com", "mina")
		tok := s.login(t, "mina@example.com").AccessToken
		notifyMany(t, bdb, mina.ID, 2)

		tests := []struct {
			name      string
			query     string
			token     string
			wantCode  string
			wantField string
			want      int
		}{
			{"limit zero", "?limit=0", tok, "invalid", "limit", 400},
			{"limit negative", "?limit=-1", tok, "invalid", "limit", 400},
			{"limit over 100", "?limit=101", tok, "invalid", "limit", 400},
			{"limit not a number", "?limit=x", tok, "invalid", "limit", 400},
			{"limit fractional", "?limit=1.5", tok, "invalid", "limit", 400},
			{"cursor garbage", "?cursor=!!", tok, "invalid", "cursor", 400},
			{"cursor zero", "?cursor=0", tok, "invalid", "cursor", 400},
			{"cursor negative", "?cursor=-5", tok, "invalid", "cursor", 400},
			{"cursor overflowing", "?cursor=zzzzzzzzzzzzzzzzzzzz", tok, "invalid", "cursor", 400},
			{"no token", "", "", "unauthorized", "", 401},
			{"garbage token", "", "garbage", "invalid_token", "", 401},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				resp, body := s.do(t, request{method: http.MethodGet, path: "/v1/notifications" + tc.query, token: tc.token})
				checkError(t, resp, body, tc.want, tc.wantCode, tc.wantField)
			})
		}
		// The boundaries are allowed.
		if p := s.notificationsPage(t, tok, "?limit=100"); len(p.Notifications) != 2 {
			t.Errorf("limit=100 gave %d notifications", len(p.Notifications))
		}
		if p := s.notificationsPage(t, tok, "?limit=1"); len(p.Notifications) != 1 || p.NextCursor == nil {
			t.Errorf("limit=1 gave %d notifications, next_cursor %v", len(p.Notifications), p.NextCursor)
		}
	})
}

// readClock is the API's clock in the mark-read tests.
func readClock(d *httpapi.Deps) {
	d.NowFunc = func() time.Time { return time.Date(2026, 5, 2, 8, 30, 0, 0, time.UTC) }
}

func TestNotificationRead(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), readClock, nil)
		mina := s.signup(t, "mina@example.com", "mina")
		joon := s.signup(t, "joon@example.com", "joon")
		minaTok := s.login(t, "mina@example.com").AccessToken
		joonTok := s.login(t, "joon@example.com").AccessToken
		mine := notifyMany(t, bdb, mina.ID, 6)
		theirs := notifyMany(t, bdb, joon.ID, 2)

		if r := s.markRead(t, minaTok, fmt.Sprintf(`{"ids":[%q]}`, mine[0].ID)); r != (readBody{Updated: 1, UnreadCount: 5}) {
			t.Errorf("read one: %+v, want updated 1, unread 5", r)
		}
		// Already read, unread, someone else's and unknown ids together:
		// only the two of Mina's unread ones count, and nothing says the
		// others exist.
		body := fmt.Sprintf(`{"ids":[%q,%q,%q,%q,"unknown-id"]}`, mine[0].ID, mine[1].ID, mine[2].ID, theirs[0].ID)
		if r := s.markRead(t, minaTok, body); r != (readBody{Updated: 2, UnreadCount: 3}) {
			t.Errorf("read mixed ids: %+v, want updated 2, unread 3", r)
		}
		// Again: nothing left to change.
		if r := s.markRead(t, minaTok, body); r != (readBody{Updated: 0, UnreadCount: 3}) {
			t.Errorf("read the same ids again: %+v, want updated 0, unread 3", r)
		}

		list := s.notificationsPage(t, minaTok, "")
		wantRead := map[string]bool{mine[0].ID: true, mine[1].ID: true, mine[2].ID: true}
		for _, n := range list.Notifications {
			switch {
			case wantRead[n.ID] && (!n.Read || n.ReadAt == nil || *n.ReadAt != "2026-05-02T08:30:00Z"):
				t.Errorf("%s: read=%v read_at=%v, want read at the API's clock", n.ID, n.Read, n.ReadAt)
			case !wantRead[n.ID] && (n.Read || n.ReadAt != nil):
				t.Errorf("%s: read=%v read_at=%v, want unread", n.ID, n.Read, n.ReadAt)
			}
		}

		// Joon's notification stayed unread.
		j := s.notificationsPage(t, joonTok, "")
		if j.UnreadCount != 2 {
			t.Errorf("joon's unread_count = %d, want 2", j.UnreadCount)
		}
		for _, n := range j.Notifications {
			if n.Read || n.ReadAt != nil {
				t.Errorf("joon's %s was marked read by mina", n.ID)
			}
		}

		// 100 ids is the most allowed.
		ids := []string{mine[3].ID}
		for i := range 99 {
			ids = append(ids, fmt.Sprintf("x%d", i))
		}
		b, _ := json.Marshal(map[string]any{"ids": ids})
		if r := s.markRead(t, minaTok, string(b)); r != (readBody{Updated: 1, UnreadCount: 2}) {
			t.Errorf("read 100 ids: %+v, want updated 1, unread 2", r)
		}

		// All: the rest of Mina's, none of Joon's.
		if r := s.markRead(t, minaTok, `{"all":true}`); r != (readBody{Updated: 2, UnreadCount: 0}) {
			t.Errorf("read all: %+v, want updated 2, unread 0", r)
		}
		if r := s.markRead(t, minaTok, `{"all":true}`); r != (readBody{Updated: 0, UnreadCount: 0}) {
			t.Errorf("read all again: %+v, want updated 0, unread 0", r)
		}
		if n := s.unreadCount(t, joonTok); n != 2 {
			t.Errorf("joon's unread_count after mina read all = %d, want 2", n)
		}
	})
}

func TestNotificationReadRejects(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)
		mina := s.signup(t, "mina@example.com", "mina")
		joon := s.signup(t, "joon@example.com", "joon")
		minaTok := s.login(t, "mina@example.com").AccessToken
		joonTok := s.login(t, "joon@example.com").AccessToken
		mine := notifyMany(t, bdb, mina.ID, 3)
		notifyMany(t, bdb, joon.ID, 1)

		// The ids past the first are short so 101 of them stay under the
		// test server's 1 KiB body limit and reach validation.
		tooMany := []string{mine[0].ID}
		for i := range 100 {
			tooMany = append(tooMany, fmt.Sprintf("x%d", i))
		}
		tooManyBody, _ := json.Marshal(map[string]any{"ids": tooMany})
		if len(tooManyBody) >= testBodyLimit {
			t.Fatalf("101-id body is %d bytes, over the test body limit", len(tooManyBody))
		}
		m0 := mine[0].ID

		tests := []struct {
			name        string
			token       string
			contentType string
			body        string
			wantStatus  int
			wantCode    string
			wantField   string
		}{
			{"empty object", minaTok, "", `{}`, 400, "invalid", "ids"},
			{"empty ids", minaTok, "", `{"ids":[]}`, 400, "invalid", "ids"},
			{"null ids", minaTok, "", `{"ids":null}`, 400, "invalid", "ids"},
			{"all false", minaTok, "", `{"all":false}`, 400, "invalid", "ids"},
			{"ids and all", minaTok, "", fmt.Sprintf(`{"ids":[%q],"all":true}`, m0), 400, "invalid", "ids"},
			{"empty ids and all", minaTok, "", `{"ids":[],"all":true}`, 400, "invalid", "ids"},
			{"101 ids", minaTok, "", string(tooManyBody), 400, "invalid", "ids"},
			{"unknown field", minaTok, "", fmt.Sprintf(`{"ids":[%q],"seen":true}`, m0), 400, "invalid", "seen"},
			{"ids not an array", minaTok, "", fmt.Sprintf(`{"ids":%q}`, m0), 400, "invalid", "ids"},
			{"all not a boolean", minaTok, "", `{"all":"yes"}`, 400, "invalid", "all"},
			{"no body", minaTok, "", "", 400, "invalid", ""},
			{"malformed", minaTok, "", `{"ids":[`, 400, "invalid_json", ""},
			{"two values", minaTok, "", fmt.Sprintf(`{"ids":[%q]}{"all":true}`, m0), 400, "invalid_json", ""},
			{"not json", minaTok, "text/plain", fmt.Sprintf(`{"ids":[%q]}`, m0), 415, "unsupported_media_type", ""},
			{"no token", "", "", `{"all":true}`, 401, "unauthorized", ""},
			{"garbage token", "garbage", "", `{"all":true}`, 401, "invalid_token", ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/notifications/read",
					token: tc.token, contentType: tc.contentType, body: tc.body})
				checkError(t, resp, body, tc.wantStatus, tc.wantCode, tc.wantField)
				if n := s.unreadCount(t, minaTok); n != 3 {
					t.Errorf("mina's unread_count = %d after a rejected request, want 3", n)
				}
				if n := s.unreadCount(t, joonTok); n != 1 {
					t.Errorf("joon's unread_count = %d after a rejected request, want 1", n)
				}
			})
		}
	})
}
