package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
	"github.com/moim/moim/jobs/notify"
)

// Stream test timings. streamWait is generous because -race and a shared
// Redis can slow delivery; streamQuiet is how long "nothing arrives" is
// watched, which only has to outlast the hop through Redis.
const (
	streamWait  = 5 * time.Second
	streamQuiet = 300 * time.Millisecond
)

// sseEvent is one dispatched Server-Sent Event.
type sseEvent struct {
	id, event, data string
}

// sseStream is a client of /v1/events that reads the stream line by line
// into events (and comment lines into comments).
type sseStream struct {
	resp     *http.Response
	events   chan sseEvent
	comments chan string
	done     chan struct{} // closed when the stream has ended
	err      error         // why it ended; read after done
	stop     chan struct{}
	started  bool
	cancel   context.CancelFunc
}

// openStream connects to path on s and starts reading. It fails the test
// unless the answer is a 200; ask for refusals with s.do, which reads the
// (short) error body.
func openStream(t *testing.T, s *testServer, path, token string, header map[string]string) *sseStream {
	t.Helper()
	st := dialStream(t, http.DefaultClient, s, path, token, header)
	st.start()
	return st
}

// dialStream is openStream with a client of the caller's and without
// reading: call start to read.
func dialStream(t *testing.T, client *http.Client, s *testServer, path, token string, header map[string]string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+path, nil)
	if err != nil {
		cancel()
		t.Fatalf("new request: %v", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		cancel()
		t.Fatalf("GET %s: status = %d, want 200 (body %s)", path, resp.StatusCode, b)
	}
	st := &sseStream{
		resp:     resp,
		events:   make(chan sseEvent, 1024),
		comments: make(chan string, 1024),
		done:     make(chan struct{}),
		stop:     make(chan struct{}),
		cancel:   cancel,
	}
	// Registered after the server's cleanup, so it runs first: the server
	// waits for open streams, which end only when the client hangs up.
	t.Cleanup(func() {
		close(st.stop)
		cancel()
		_ = resp.Body.Close()
		if st.started {
			<-st.done
		}
	})
	return st
}

// hangUp closes the stream from the client's side, as a dropped
// connection does, and waits until the reader has stopped.
func (st *sseStream) hangUp() {
	st.cancel()
	if st.started {
		<-st.done
	}
}

// start reads the stream in the background until it ends.
func (st *sseStream) start() {
	st.started = true
	go st.read()
}

func (st *sseStream) read() {
	defer close(st.done)
	sc := bufio.NewScanner(st.resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var ev sseEvent
	var data []string
	pending := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if pending {
				ev.data = strings.Join(data, "\n")
				select {
				case st.events <- ev:
				case <-st.stop:
					return
				}
			}
			ev, data, pending = sseEvent{}, nil, false
		case strings.HasPrefix(line, ":"):
			select {
			case st.comments <- strings.TrimSpace(line[1:]):
			default: // nobody is counting comments this far back
			}
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				ev.id, pending = value, true
			case "event":
				ev.event, pending = value, true
			case "data":
				data, pending = append(data, value), true
			}
		}
	}
	st.err = sc.Err()
	if st.err == nil {
		st.err = io.EOF
	}
}

// next returns the next event, failing the test if none comes in time or
// the stream ends first.
func (st *sseStream) next(t *testing.T) sseEvent {
	t.Helper()
	timer := time.NewTimer(streamWait)
	defer timer.Stop()
	select {
	case e := <-st.events:
		return e
	case <-st.done:
		select {
		case e := <-st.events:
			return e
		default:
		}
		t.Fatalf("stream ended (%v) while an event was expected", st.err)
	case <-timer.C:
		t.Fatalf("no event within %s", streamWait)
	}
	return sseEvent{}
}

// quiet fails the test if an event arrives, or the stream ends, within
// streamQuiet.
func (st *sseStream) quiet(t *testing.T) {
	t.Helper()
	timer := time.NewTimer(streamQuiet)
	defer timer.Stop()
	select {
	case e := <-st.events:
		t.Fatalf("unexpected event %+v", e)
	case <-st.done:
		t.Fatalf("stream ended (%v), want it open and quiet", st.err)
	case <-timer.C:
	}
}

// ended waits up to d for the stream to end and returns the events that
// came before the end.
func (st *sseStream) ended(t *testing.T, d time.Duration) []sseEvent {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	var got []sseEvent
	for {
		select {
		case e := <-st.events:
			got = append(got, e)
		case <-st.done:
			for {
				select {
				case e := <-st.events:
					got = append(got, e)
				default:
					return got
				}
			}
		case <-timer.C:
			t.Fatalf("stream still open after %s (%d events read)", d, len(got))
		}
	}
}

// connected checks that the next event is "connected" for member.
func (st *sseStream) connected(t *testing.T, member string) {
	t.Helper()
	st.connectedAt(t, member)
}

// connectedAt checks that the next event is "connected" for member and
// returns its id: where a reconnect resumes.
func (st *sseStream) connectedAt(t *testing.T, member string) string {
	t.Helper()
	e := st.next(t)
	if e.event != "connected" {
		t.Fatalf("first event = %+v, want connected", e)
	}
	var data struct {
		MemberID string `json:"member_id"`
	}
	decodeStrict(t, []byte(e.data), &data)
	if data.MemberID != member {
		t.Errorf("connected member_id = %q, want %q", data.MemberID, member)
	}
	return e.id
}

// reset checks that the next event is a reset with id and reason.
func (st *sseStream) reset(t *testing.T, id, reason string) {
	t.Helper()
	e := st.next(t)
	var data struct {
		Reason string `json:"reason"`
	}
	if e.event == "reset" {
		decodeStrict(t, []byte(e.data), &data)
	}
	if e.event != "reset" || e.id != id || data.Reason != reason {
		t.Fatalf("event = %+v, want reset id %q reason %q", e, id, reason)
	}
}

// notification checks that the next event announces notification id.
func (st *sseStream) notification(t *testing.T, id string) sseEvent {
	t.Helper()
	e := st.next(t)
	if e.event != "notification" || e.id != id {
		t.Fatalf("event = {id %q event %q}, want notification %s", e.id, e.event, id)
	}
	return e
}

// refusedStream asks for a stream that must be refused and checks the
// error. A stream that opens instead would never end, so the request has a
// deadline and is read only as far as the status.
func refusedStream(t *testing.T, s *testServer, path, token string, wantCode string) *http.Response {
	t.Helper()
	header := map[string]string{}
	if token != "" {
		header["Authorization"] = "Bearer " + token
	}
	return refusedStreamWith(t, s, path, header, wantCode)
}

// refusedStreamWith is refusedStream with headers of the caller's.
func refusedStreamWith(t *testing.T, s *testServer, path string, header map[string]string, wantCode string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), streamWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+path, nil)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatalf("GET %s opened a stream, want 401 %s", path, wantCode)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	checkError(t, resp, body, http.StatusUnauthorized, wantCode, "")
	return resp
}

// streamMember is a member signed up and logged in for stream tests.
type streamMember struct {
	id, token string
}

func newStreamMember(t *testing.T, s *testServer, nickname string) streamMember {
	t.Helper()
	email := nickname + "@example.com"
	m := s.signup(t, email, nickname)
	return streamMember{id: m.ID, token: s.login(t, email).AccessToken}
}

// newStreamFixture is a server on SQLite (with mutate applied to its
// dependencies) and Mina, signed up and logged in.
func newStreamFixture(t *testing.T, mutate func(*httpapi.Deps)) (*bun.DB, *env, *testServer, streamMember) {
	t.Helper()
	bdb := dbtest.Open(t, "sqlite")
	e := newEnv(t, bdb)
	s := newServer(t, e, mutate, nil)
	return bdb, e, s, newStreamMember(t, s, "mina")
}

// publish announces n as the notification worker does.
func publish(t *testing.T, e *env, n domain.Notification) {
	t.Helper()
	if err := jobs.NewPublisher(e.redis).Publish(context.Background(), n); err != nil {
		t.Fatalf("publish %s: %v", n.ID, err)
	}
}

// listedNotifications returns the member's notifications as the list shows
// them, raw, by id.
func listedNotifications(t *testing.T, s *testServer, token string) map[string]json.RawMessage {
	t.Helper()
	resp, body := s.do(t, request{method: http.MethodGet, path: "/v1/notifications?limit=100", token: token})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/notifications: status = %d (body %s)", resp.StatusCode, body)
	}
	var list struct {
		Notifications []json.RawMessage `json:"notifications"`
		NextCursor    *string           `json:"next_cursor"`
		UnreadCount   int               `json:"unread_count"`
	}
	decodeStrict(t, body, &list)
	out := make(map[string]json.RawMessage, len(list.Notifications))
	for _, raw := range list.Notifications {
		var n notificationBody
		decodeStrict(t, raw, &n)
		out[n.ID] = raw
	}
	return out
}

// sameJSON fails the test unless got and want hold the same JSON value.
func sameJSON(t *testing.T, what string, got string, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("%s: decode %s: %v", what, got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: decode %s: %v", what, want, err)
	}
	if diff := cmp.Diff(w, g); diff != "" {
		t.Errorf("%s differs from the list item (-list +event):\n%s", what, diff)
	}
}

func TestEventStream(t *testing.T) {
	t.Parallel()
	bdb, e, s, mina := newStreamFixture(t, nil)

	st := openStream(t, s, "/v1/events", mina.token, nil)
	for k, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
	} {
		if got := st.resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	st.connected(t, mina.id)
	st.quiet(t)

	n := notifyMember(t, bdb, mina.id, domain.NotifyMatchConfirmed, domain.NotificationArgs{
		MatchID: "match-1", Title: "한강 러닝", StartsAt: time.Date(2026, 6, 1, 19, 30, 0, 0, time.UTC),
		Members: []string{"mina", "joon"}, Link: "/matches/match-1",
	}, notificationsClock)
	publish(t, e, n)
	ev := st.notification(t, n.ID)
	sameJSON(t, "event data", ev.data, listedNotifications(t, s, mina.token)[n.ID])
	var body notificationBody
	decodeStrict(t, []byte(ev.data), &body)
	if body.Type != "MATCH_CONFIRMED" || body.Read || body.ReadAt != nil {
		t.Errorf("event data = %+v", body)
	}
	st.quiet(t)
}

func TestEventStreamAcrossInstances(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, "sqlite")
	e := newEnv(t, bdb)
	a := newServer(t, e, nil, nil)
	b := newServer(t, e, nil, nil)
	mina := newStreamMember(t, a, "mina")
	joon := newStreamMember(t, a, "joon")

	minaA := openStream(t, a, "/v1/events", mina.token, nil)
	minaB := openStream(t, b, "/v1/events", mina.token, nil)
	joonB := openStream(t, b, "/v1/events", joon.token, nil)
	minaA.connected(t, mina.id)
	minaB.connected(t, mina.id)
	joonB.connected(t, joon.id)

	// The worker side: the fan-out task announces the notification once,
	// on Redis; every instance forwards it to its own streams of Mina.
	n := notifyMember(t, bdb, mina.id, domain.NotifyJoinAccepted, domain.NotificationArgs{Title: "hello"}, notificationsClock)
	fanout := &jobs.NotifyFanoutHandler{DB: bdb, Publisher: jobs.NewPublisher(e.redis),
		Logger: slog.New(slog.DiscardHandler), NowFunc: func() time.Time { return notificationsClock }}
	payload, err := json.Marshal(jobs.NotifyFanoutPayload{NotificationIDs: []string{n.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if err := fanout.ProcessTask(context.Background(), asynq.NewTask(jobs.TypeNotifyFanout, payload)); err != nil {
		t.Fatalf("fan out: %v", err)
	}
	minaA.notification(t, n.ID)
	minaB.notification(t, n.ID)
	joonB.quiet(t)
	minaA.quiet(t)
	minaB.quiet(t)

	// And the other way round.
	jn := notifyMember(t, bdb, joon.id, domain.NotifyJoinAccepted, domain.NotificationArgs{Title: "hi"}, notificationsClock)
	publish(t, e, jn)
	joonB.notification(t, jn.ID)
	minaA.quiet(t)
	minaB.quiet(t)
}

func TestEventStreamReplay(t *testing.T) {
	t.Parallel()
	bdb, e, s, mina := newStreamFixture(t, nil)
	joon := newStreamMember(t, s, "joon")
	ns := notifyMany(t, bdb, mina.id, 3)
	joons := notifyMember(t, bdb, joon.id, domain.NotifyJoinAccepted, domain.NotificationArgs{}, notificationsClock)
	listed := listedNotifications(t, s, mina.token)

	t.Run("missed ones first", func(t *testing.T) {
		st := openStream(t, s, "/v1/events", mina.token, map[string]string{"Last-Event-ID": ns[0].ID})
		st.connected(t, mina.id)
		// Published while the replay may still be running: the live event
		// waits behind it (or is replayed itself if stored before the replay
		// read), and the repeated announcement of a replayed notification
		// (a retried fan-out) is not sent twice.
		live := notifyMember(t, bdb, mina.id, domain.NotifyJoinAccepted, domain.NotificationArgs{Title: "live"}, notificationsClock.Add(time.Minute))
		publish(t, e, ns[2])
		publish(t, e, live)
		for _, n := range ns[1:] {
			ev := st.notification(t, n.ID)
			sameJSON(t, "replayed "+n.ID, ev.data, listed[n.ID])
		}
		st.notification(t, live.ID)
		st.quiet(t)
	})

	t.Run("query parameter", func(t *testing.T) {
		// EventSource cannot set headers on the first connection, so the
		// position may also come as ?last_event_id=.
		st := openStream(t, s, "/v1/events?last_event_id="+url.QueryEscape(ns[1].ID), mina.token, nil)
		st.connected(t, mina.id)
		st.notification(t, ns[2].ID)
	})

	// An id the stream cannot resume from is answered with a reset, whose
	// id is the newest notification: the client reloads its list and
	// resumes from there. The stream then works as usual.
	for _, tc := range []struct {
		name  string
		last  string
		reset bool
	}{
		{"unknown id", "no-such-notification", true},
		{"someone else's", joons.ID, true},
		{"garbage", "'; DROP TABLE notifications; --", true},
		{"not UTF-8", "\xff\xfe", true},
		{"too long", strings.Repeat("a", 65), true},
		{"the newest", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			newest := newestID(t, s, mina.token)
			last := tc.last
			if last == "" {
				last = newest
			}
			st := openStream(t, s, "/v1/events", mina.token, map[string]string{"Last-Event-ID": last})
			if c := st.connectedAt(t, mina.id); c != newest {
				t.Errorf("connected id = %q, want %q", c, newest)
			}
			if tc.reset {
				st.reset(t, newest, "unknown_last_event_id")
			}
			st.quiet(t)
			n := notifyMember(t, bdb, mina.id, domain.NotifyJoinAccepted, domain.NotificationArgs{}, notificationsClock.Add(time.Hour))
			publish(t, e, n)
			st.notification(t, n.ID)
		})
	}
}

// TestEventStreamPosition: "connected" carries the id a reconnect resumes
// from, so a stream that drops before its first notification misses
// nothing; a member without notifications starts at "0".
func TestEventStreamPosition(t *testing.T) {
	t.Parallel()
	bdb, _, s, mina := newStreamFixture(t, nil)

	first := openStream(t, s, "/v1/events", mina.token, nil)
	if id := first.connectedAt(t, mina.id); id != "0" {
		t.Fatalf("connected id without notifications = %q, want 0", id)
	}
	first.hangUp()
	// Recorded while no stream listens.
	ns := notifyMany(t, bdb, mina.id, 2)
	again := openStream(t, s, "/v1/events", mina.token, map[string]string{"Last-Event-ID": "0"})
	if id := again.connectedAt(t, mina.id); id != "0" {
		t.Errorf("connected id resuming from 0 = %q, want 0", id)
	}
	again.notification(t, ns[0].ID)
	again.notification(t, ns[1].ID)
	again.quiet(t)

	fresh := openStream(t, s, "/v1/events", mina.token, nil)
	if id := fresh.connectedAt(t, mina.id); id != ns[1].ID {
		t.Errorf("connected id = %q, want the newest %q", id, ns[1].ID)
	}
	fresh.quiet(t)
}

// TestEventStreamTooManyMissed: past maxReplay (500) missed notifications
// the stream resets instead of replaying them.
func TestEventStreamTooManyMissed(t *testing.T) {
	t.Parallel()
	bdb, _, s, mina := newStreamFixture(t, nil)
	start := notifyMember(t, bdb, mina.id, domain.NotifyJoinAccepted, domain.NotificationArgs{}, notificationsClock)
	many := make([]domain.Notification, 501)
	for i := range many {
		many[i] = domain.Notification{MemberID: mina.id, Type: domain.NotifyJoinAccepted, CreatedAt: notificationsClock.Add(time.Duration(i+1) * time.Second)}
	}
	created, err := (db.Notifications{}).CreateMany(context.Background(), bdb, many)
	if err != nil {
		t.Fatal(err)
	}
	newest := created[len(created)-1].ID

	// 500 are replayed; 501 are too many.
	st := openStream(t, s, "/v1/events", mina.token, map[string]string{"Last-Event-ID": created[0].ID})
	st.connectedAt(t, mina.id)
	for _, n := range created[1:] {
		st.notification(t, n.ID)
	}
	st.quiet(t)

	st = openStream(t, s, "/v1/events", mina.token, map[string]string{"Last-Event-ID": start.ID})
	if id := st.connectedAt(t, mina.id); id != newest {
		t.Errorf("connected id = %q, want the newest %q", id, newest)
	}
	st.reset(t, newest, "too_many_missed")
	st.quiet(t)
}

// newestID is the id of the member's newest notification.
func newestID(t *testing.T, s *testServer, token string) string {
	t.Helper()
	p := s.notificationsPage(t, token, "?limit=1")
	if len(p.Notifications) != 1 {
		t.Fatal("no notifications")
	}
	return p.Notifications[0].ID
}

// ticketBody is the answer of POST /v1/events/ticket.
type ticketBody struct {
	Ticket    string `json:"ticket"`
	ExpiresIn int    `json:"expires_in"`
}

// ticketKey is where the API keeps a stream ticket in Redis.
const ticketKey = "moim:events:ticket:"

func TestEventTickets(t *testing.T) {
	t.Parallel()
	bdb, e, s, mina := newStreamFixture(t, nil)
	ctx := context.Background()

	resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/events/ticket", token: mina.token})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("ticket: status = %d, want 201 (body %s)", resp.StatusCode, body)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	var tk ticketBody
	decodeStrict(t, body, &tk)
	if tk.Ticket == "" || tk.ExpiresIn != 60 {
		t.Fatalf("ticket answer = %+v", tk)
	}
	if ttl := e.redis.TTL(ctx, ticketKey+tk.Ticket).Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("ticket TTL in Redis = %s, want up to a minute", ttl)
	}

	// The ticket alone opens Mina's stream, once.
	st := openStream(t, s, "/v1/events?ticket="+url.QueryEscape(tk.Ticket), "", nil)
	st.connected(t, mina.id)
	n := notifyMember(t, bdb, mina.id, domain.NotifyJoinAccepted, domain.NotificationArgs{}, notificationsClock)
	publish(t, e, n)
	st.notification(t, n.ID)
	if left := e.redis.Exists(ctx, ticketKey+tk.Ticket).Val(); left != 0 {
		t.Error("a used ticket is still in Redis")
	}

	// A key set straight in Redis with a short life: the first proves the
	// format, the second expires before it is used.
	// A ticket holds the member and the login it was issued to.
	claims, err := e.tokens.Parse(mina.token)
	if err != nil {
		t.Fatal(err)
	}
	value := mina.id + " " + claims.SessionID
	live, expired := "live-ticket", "expired-ticket"
	if err := e.redis.Set(ctx, ticketKey+live, value, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.redis.Set(ctx, ticketKey+expired, value, time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	openStream(t, s, "/v1/events?ticket="+live, "", nil).connected(t, mina.id)
	waitUntil(t, "the 1 s ticket expires", func() bool {
		return e.redis.Exists(ctx, ticketKey+expired).Val() == 0
	})

	tests := []struct {
		name     string
		path     string
		token    string
		wantCode string
	}{
		{"reused ticket", "/v1/events?ticket=" + url.QueryEscape(tk.Ticket), "", "invalid_token"},
		{"made-up ticket", "/v1/events?ticket=made-up", "", "invalid_token"},
		{"expired ticket", "/v1/events?ticket=" + expired, "", "invalid_token"},
		// A ticket is checked on its own: a good token does not rescue a
		// bad ticket.
		{"bad ticket with a good token", "/v1/events?ticket=made-up", mina.token, "invalid_token"},
		{"no token and no ticket", "/v1/events", "", "unauthorized"},
		{"empty ticket", "/v1/events?ticket=", "", "unauthorized"},
		{"garbage token", "/v1/events", "garbage", "invalid_token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			refusedStream(t, s, tc.path, tc.token, tc.wantCode)
		})
	}

	resp, body = s.do(t, request{method: http.MethodPost, path: "/v1/events/ticket"})
	checkError(t, resp, body, http.StatusUnauthorized, "unauthorized", "")
}

func TestEventStreamRevokedToken(t *testing.T) {
	t.Parallel()
	_, _, s, mina := newStreamFixture(t, nil)
	if resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/auth/logout", token: mina.token}); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: status = %d (body %s)", resp.StatusCode, body)
	}
	resp := refusedStream(t, s, "/v1/events", mina.token, "token_revoked")
	if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
		t.Errorf("WWW-Authenticate = %q", got)
	}
	resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/events/ticket", token: mina.token})
	checkError(t, resp, body, http.StatusUnauthorized, "token_revoked", "")
}

func TestEventStreamHeartbeat(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dbtest.Open(t, "sqlite"))
	s := newServer(t, e, func(d *httpapi.Deps) { d.Heartbeat = 100 * time.Millisecond }, nil)
	mina := newStreamMember(t, s, "mina")
	st := openStream(t, s, "/v1/events", mina.token, nil)
	st.connected(t, mina.id)
	for i := range 3 {
		select {
		case c := <-st.comments:
			if c != "heartbeat" {
				t.Errorf("comment %d = %q, want heartbeat", i, c)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("heartbeat %d did not come within 2 s", i)
		}
	}
	// Comments are not events.
	select {
	case ev := <-st.events:
		t.Errorf("unexpected event %+v", ev)
	default:
	}
}

func TestEventStreamsDone(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, "sqlite")
	e := newEnv(t, bdb)
	done := make(chan struct{})
	s := newServer(t, e, func(d *httpapi.Deps) { d.StreamsDone = done }, nil)
	mina := newStreamMember(t, s, "mina")
	joon := newStreamMember(t, s, "joon")
	a := openStream(t, s, "/v1/events", mina.token, nil)
	b := openStream(t, s, "/v1/events", joon.token, nil)
	a.connected(t, mina.id)
	b.connected(t, joon.id)

	close(done)
	for _, st := range []*sseStream{a, b} {
		if got := st.ended(t, time.Second); len(got) != 0 {
			t.Errorf("events before the end: %+v", got)
		}
		if !errors.Is(st.err, io.EOF) {
			t.Errorf("stream ended with %v, want a clean end", st.err)
		}
	}
	// Other requests still work: only streams end.
	if resp, body := s.do(t, request{method: http.MethodGet, path: "/v1/notifications", token: mina.token}); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/notifications after StreamsDone: status = %d (body %s)", resp.StatusCode, body)
	}
}

// ownClient is an HTTP client with a connection pool of its own.
func ownClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func TestEventStreamSlowClient(t *testing.T) {
	t.Parallel()
	_, e, s, mina := newStreamFixture(t, nil)

	slow := dialStream(t, ownClient(t), s, "/v1/events", mina.token, nil) // never read below
	fast := openStream(t, s, "/v1/events", mina.token, nil)
	fast.connected(t, mina.id)

	// 200 events of 64 KiB, 12.5 MiB in all: far more than the socket
	// buffers of a client that does not read take in (the kernel grows them
	// only as the reader reads), so the slow stream's writes block and its
	// queue fills. Each event is awaited on
	// the fast stream before the next is published: if the slow stream held
	// up the fan-out, the fast one would stall and time out here.
	excerpt := strings.Repeat("x", 64<<10)
	const total = 200
	ids := make([]string, total)
	start := time.Now()
	for i := range total {
		ids[i] = fmt.Sprintf("slow-%03d", i)
		publish(t, e, domain.Notification{ID: ids[i], MemberID: mina.id, Type: domain.NotifyCommentOnMyRoom,
			Args: domain.NotificationArgs{Excerpt: excerpt}, CreatedAt: notificationsClock})
		fast.notification(t, ids[i])
	}
	t.Logf("%d events through the fast stream in %s", total, time.Since(start))

	// The slow stream was dropped: read now, it holds what the server had
	// sent and queued, in order, and then ends (the client would reconnect
	// with Last-Event-ID).
	slow.start()
	slow.connected(t, mina.id)
	got := slow.ended(t, 15*time.Second)
	if len(got) >= total {
		t.Errorf("the slow stream got all %d events; it should have been dropped", len(got))
	}
	for i, ev := range got {
		if ev.event != "notification" || ev.id != ids[i] {
			t.Fatalf("slow stream event %d = {id %q event %q}, want notification %s", i, ev.id, ev.event, ids[i])
		}
	}
	t.Logf("the slow stream got %d of %d events before it was dropped", len(got), total)
}

// mailboxEntryBody is a kept message as /admin/mailbox shows it.
type mailboxEntryBody struct {
	Channel string `json:"channel"`
	To      string `json:"to"`
	Subject string `json:"subject"`
	Text    string `json:"text"`
	HTML    string `json:"html"`
	SMSType int    `json:"sms_type"`
	ID      string `json:"id"`
	At      string `json:"at"`
}

func TestMailbox(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, "sqlite")
	e := newEnv(t, bdb)
	mb := notify.NewMailbox(e.redis, 10)
	tick := 0
	sender := &notify.LogMail{Logger: slog.New(slog.DiscardHandler), Mailbox: mb, NowFunc: func() time.Time {
		tick++
		return notificationsClock.Add(time.Duration(tick) * time.Minute)
	}}
	for _, m := range []notify.Mail{
		{To: "mina@example.com", Subject: "first", Text: "one", HTML: "<p>one</p>", MessageID: "<1@moim>"},
		{To: "joon@example.com", Subject: "second", Text: "two", MessageID: "<2@moim>"},
	} {
		if _, err := sender.SendMail(context.Background(), m); err != nil {
			t.Fatalf("send mail: %v", err)
		}
	}
	s := newServer(t, e, func(d *httpapi.Deps) { d.Mailbox = mb }, nil)
	without := newServer(t, e, nil, nil)

	resp, body := s.do(t, request{method: http.MethodGet, path: "/admin/mailbox", auth: authAdmin})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200 (body %s)", resp.StatusCode, body)
	}
	var got struct {
		Messages []mailboxEntryBody `json:"messages"`
	}
	decodeStrict(t, body, &got)
	want := []mailboxEntryBody{
		{Channel: "mail", To: "joon@example.com", Subject: "second", Text: "two", ID: "log-2", At: "2026-05-01T12:02:00Z"},
		{Channel: "mail", To: "mina@example.com", Subject: "first", Text: "one", HTML: "<p>one</p>", ID: "log-1", At: "2026-05-01T12:01:00Z"},
	}
	if diff := cmp.Diff(want, got.Messages); diff != "" {
		t.Errorf("mailbox (-want +got):\n%s", diff)
	}

	s.signup(t, "member@example.com", "member")
	boss := s.signup(t, "boss@example.com", "boss")
	if _, err := bdb.NewUpdate().Table("members").Set("role = 2").Where("public_id = ?", boss.ID).Exec(t.Context()); err != nil {
		t.Fatal(err)
	}
	if resp, body := s.do(t, request{method: http.MethodGet, path: "/admin/mailbox", token: s.login(t, "boss@example.com").AccessToken}); resp.StatusCode != http.StatusOK {
		t.Errorf("admin token: status = %d (body %s)", resp.StatusCode, body)
	}

	tests := []struct {
		name       string
		srv        *testServer
		req        request
		wantStatus int
		wantCode   string
	}{
		{"member token", s, request{token: s.login(t, "member@example.com").AccessToken}, 403, "forbidden"},
		{"no credentials", s, request{}, 401, "unauthorized"},
		{"wrong password", s, request{auth: authWrongPassword}, 401, "unauthorized"},
		{"no mailbox", without, request{auth: authAdmin}, 404, "not_found"},
		{"no mailbox, no credentials", without, request{}, 401, "unauthorized"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.method, tc.req.path = http.MethodGet, "/admin/mailbox"
			resp, body := tc.srv.do(t, tc.req)
			checkError(t, resp, body, tc.wantStatus, tc.wantCode, "")
		})
	}
}

// TestEventStreamEndsWithItsLogin: logging out stops a stream that is open
// (at its next heartbeat) and a ticket issued before.
func TestEventStreamEndsWithItsLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dbtest.Open(t, "sqlite"))
	s := newServer(t, e, func(d *httpapi.Deps) { d.Heartbeat = 100 * time.Millisecond }, nil)
	mina := newStreamMember(t, s, "mina")
	byToken := openStream(t, s, "/v1/events", mina.token, nil)
	byToken.connected(t, mina.id)
	resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/events/ticket", token: mina.token})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("ticket: %d %s", resp.StatusCode, body)
	}
	var used, unused ticketBody
	decodeStrict(t, body, &used)
	_, body = s.do(t, request{method: http.MethodPost, path: "/v1/events/ticket", token: mina.token})
	decodeStrict(t, body, &unused)
	byTicket := openStream(t, s, "/v1/events?ticket="+url.QueryEscape(used.Ticket), "", nil)
	byTicket.connected(t, mina.id)

	if resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/auth/logout", token: mina.token}); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %d %s", resp.StatusCode, body)
	}
	for name, st := range map[string]*sseStream{"token stream": byToken, "ticket stream": byTicket} {
		if got := st.ended(t, 2*time.Second); len(got) != 0 {
			t.Errorf("%s: events before the end: %+v", name, got)
		}
	}
	refusedStream(t, s, "/v1/events?ticket="+url.QueryEscape(unused.Ticket), "", "token_revoked")
}

// waitUntil polls cond for up to streamWait and fails the test, naming
// what was awaited, if it never holds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(streamWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// streamKey is where the API keeps a used ticket, bound to the browser.
const streamKey = "moim:events:stream:"

// newTicket asks for a stream ticket with the member's token.
func newTicket(t *testing.T, s *testServer, token string) string {
	t.Helper()
	resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/events/ticket", token: token})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("ticket: status = %d, want 201 (body %s)", resp.StatusCode, body)
	}
	var tk ticketBody
	decodeStrict(t, body, &tk)
	return tk.Ticket
}

// streamCookieOf returns the stream cookie a response sets, failing the
// test unless it is HttpOnly, Secure, SameSite=Strict and sent to
// /v1/events only.
func streamCookieOf(t *testing.T, resp *http.Response) string {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name != "moim_stream" {
			continue
		}
		if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/v1/events" || c.MaxAge <= 0 || c.Value == "" {
			t.Errorf("stream cookie = %+v, want HttpOnly, Secure, SameSite=Strict, Path=/v1/events, Max-Age > 0", c)
		}
		return c.Value
	}
	t.Fatalf("no moim_stream cookie in %q", resp.Header.Values("Set-Cookie"))
	return ""
}

// TestEventTicketReconnect: EventSource reconnects to the URL of its first
// connection, whose ticket is spent; with the stream cookie the first
// connection set, within the reconnect window and while the login stands,
// that URL opens the stream again and Last-Event-ID replays what was
// missed.
func TestEventTicketReconnect(t *testing.T) {
	t.Parallel()
	bdb, e, s, mina := newStreamFixture(t, nil)
	joon := newStreamMember(t, s, "joon")
	ctx := context.Background()

	ticket := newTicket(t, s, mina.token)
	path := "/v1/events?ticket=" + url.QueryEscape(ticket)
	first := openStream(t, s, path, "", nil)
	key := streamCookieOf(t, first.resp)
	cookie := "moim_stream=" + key
	first.connected(t, mina.id)
	if ttl := e.redis.TTL(ctx, streamKey+ticket).Val(); ttl <= time.Minute || ttl > 5*time.Minute {
		t.Errorf("used ticket's TTL = %s, want the 5 min reconnect window", ttl)
	}
	seen := notifyMember(t, bdb, mina.id, domain.NotifyJoinAccepted, domain.NotificationArgs{Title: "seen"}, notificationsClock)
	publish(t, e, seen)
	first.notification(t, seen.ID)

	// The window counts from the end of the last stream: a stream that ends
	// renews it.
	if err := e.redis.Expire(ctx, streamKey+ticket, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	first.hangUp()
	waitUntil(t, "the ended stream renews its ticket's window", func() bool {
		return e.redis.TTL(ctx, streamKey+ticket).Val() > time.Minute
	})
	missed := notifyMember(t, bdb, mina.id, domain.NotifyJoinAccepted, domain.NotificationArgs{Title: "missed"}, notificationsClock.Add(time.Minute))

	again := openStream(t, s, path, "", map[string]string{"Cookie": cookie, "Last-Event-ID": seen.ID})
	again.connected(t, mina.id)
	again.notification(t, missed.ID)
	again.quiet(t)

	// A second tab of the same browser, logged in as someone else, shares
	// the cookie; each used ticket keeps its own member.
	joonTicket := newTicket(t, s, joon.token)
	joonPath := "/v1/events?ticket=" + url.QueryEscape(joonTicket)
	joonStream := openStream(t, s, joonPath, "", map[string]string{"Cookie": cookie})
	if got := streamCookieOf(t, joonStream.resp); got != key {
		t.Errorf("the browser's cookie was replaced: %q, want %q kept", got, key)
	}
	joonStream.connected(t, joon.id)
	openStream(t, s, path, "", map[string]string{"Cookie": cookie}).connected(t, mina.id)

	other := newTicket(t, s, joon.token)
	otherStream := openStream(t, s, "/v1/events?ticket="+url.QueryEscape(other), "", nil)
	otherKey := streamCookieOf(t, otherStream.resp)
	if otherKey == key {
		t.Fatal("a browser without a cookie got another browser's")
	}
	for _, tc := range []struct {
		name   string
		header map[string]string
	}{
		{"the used ticket alone", nil},
		{"another browser's cookie", map[string]string{"Cookie": "moim_stream=" + otherKey}},
		{"a made-up cookie", map[string]string{"Cookie": "moim_stream=made-up"}},
		{"the used ticket and a good token", map[string]string{"Authorization": "Bearer " + mina.token}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refusedStreamWith(t, s, path, tc.header, "invalid_token")
		})
	}
	// The cookie alone opens nothing.
	refusedStreamWith(t, s, "/v1/events", map[string]string{"Cookie": cookie}, "unauthorized")

	// Past the window the used ticket is refused; the client asks for a
	// new one.
	if err := e.redis.Expire(ctx, streamKey+joonTicket, time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the used ticket expires", func() bool {
		return e.redis.Exists(ctx, streamKey+joonTicket).Val() == 0
	})
	refusedStreamWith(t, s, joonPath, map[string]string{"Cookie": cookie}, "invalid_token")

	// A logout ends the reconnects of its tickets.
	if resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/auth/logout", token: mina.token}); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: status = %d (body %s)", resp.StatusCode, body)
	}
	refusedStreamWith(t, s, path, map[string]string{"Cookie": cookie}, "token_revoked")
}

// TestEventStreamMetrics: streams have their own series, there from the
// start, and stay out of the request-duration histogram.
func TestEventStreamMetrics(t *testing.T) {
	t.Parallel()
	bdb, e, s, mina := newStreamFixture(t, nil)

	waitMetrics(t, s, []string{
		`moim_sse_streams_open 0`,
		`moim_sse_events_sent_total{event="connected"} 0`,
		`moim_sse_events_sent_total{event="notification"} 0`,
		`moim_sse_events_sent_total{event="reset"} 0`,
		`moim_sse_reconnects_total 0`,
		`moim_sse_resets_total{reason="too_many_missed"} 0`,
		`moim_sse_resets_total{reason="unknown_last_event_id"} 0`,
	})

	a := openStream(t, s, "/v1/events", mina.token, nil)
	a.connected(t, mina.id)
	n := notifyMember(t, bdb, mina.id, domain.NotifyJoinAccepted, domain.NotificationArgs{}, notificationsClock)
	publish(t, e, n)
	a.notification(t, n.ID)
	b := openStream(t, s, "/v1/events", mina.token, map[string]string{"Last-Event-ID": "no-such-notification"})
	b.connected(t, mina.id)
	b.reset(t, n.ID, "unknown_last_event_id")
	waitMetrics(t, s, []string{
		`moim_sse_streams_open 2`,
		`moim_sse_events_sent_total{event="connected"} 2`,
		`moim_sse_events_sent_total{event="notification"} 1`,
		`moim_sse_events_sent_total{event="reset"} 1`,
		`moim_sse_reconnects_total 1`,
		`moim_sse_resets_total{reason="unknown_last_event_id"} 1`,
	})

	a.hangUp()
	b.hangUp()
	body := waitMetrics(t, s, []string{
		`moim_sse_streams_open 0`,
		`moim_http_requests_total{code="200",method="GET",route="/v1/events"} 2`,
	})
	if strings.Contains(body, `moim_http_request_duration_seconds_count{method="GET",route="/v1/events"}`) {
		t.Error("streams are in the request-duration histogram")
	}
}
