package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
)

// Event stream settings.
const (
	// DefaultHeartbeat keeps proxies from closing an idle stream.
	DefaultHeartbeat = 25 * time.Second
	// ticketTTL is how long a stream ticket may wait to be used.
	ticketTTL    = 60 * time.Second
	ticketPrefix = "moim:events:ticket:"
	// streamPrefix keys a used ticket: with the browser's stream cookie it
	// opens the stream again, so EventSource can reconnect by itself.
	streamPrefix = "moim:events:stream:"
	// reconnectWindow is how long after its last stream ended a used ticket
	// still reconnects. It covers EventSource's retries through a short
	// outage; after it the client asks for a new ticket.
	reconnectWindow = 5 * time.Minute
	// streamCookie binds a used ticket to the browser that used it. It is
	// HttpOnly and sent only to /v1/events, and grants nothing alone.
	streamCookie     = "moim_stream"
	streamCookiePath = "/v1/events"
	// maxReplay bounds what a reconnect replays; beyond it the client is
	// told to reload its list instead.
	maxReplay = 500
	// startPosition is the stream position of a member without
	// notifications: a reconnect from it replays them from the first.
	startPosition = "0"
	// clientBuffer is how many events a slow client may lag; beyond it the
	// stream is closed and the client catches up by replay when it
	// reconnects, rather than holding every event in memory.
	clientBuffer = 32
	// replayPage bounds each replay query.
	replayPage = 100
	// writeTimeout bounds one write to a client, so a dead connection is
	// noticed at the next event or heartbeat.
	writeTimeout = 10 * time.Second
)

// registerEventRoutes mounts the live event stream. It stays outside the
// request timeout: a stream lasts as long as the client listens.
func (s *server) registerEventRoutes(r chi.Router) {
	r.With(s.authenticate).Post("/v1/events/ticket", s.handleEventTicket)
	r.Get("/v1/events", s.handleEvents)
}

// hub is this API instance's side of the fan-out: one Redis subscription,
// and the connected streams of each member.
type hub struct {
	mu      sync.Mutex
	streams map[string]map[*stream]struct{}
	logger  *slog.Logger
}

// stream is one connected client.
type stream struct {
	member string
	events chan jobs.EventNotification
	// closed tells the handler that the hub dropped it (too slow).
	closed chan struct{}
	once   sync.Once
}

func newHub(logger *slog.Logger) *hub {
	return &hub{streams: make(map[string]map[*stream]struct{}), logger: logger}
}

func (h *hub) add(member string) *stream {
	st := &stream{member: member, events: make(chan jobs.EventNotification, clientBuffer), closed: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.streams[member] == nil {
		h.streams[member] = make(map[*stream]struct{})
	}
	h.streams[member][st] = struct{}{}
	return st
}

func (h *hub) remove(st *stream) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.streams[st.member], st)
	if len(h.streams[st.member]) == 0 {
		delete(h.streams, st.member)
	}
}

// deliver hands an event to every stream of its member without blocking:
// a stream whose buffer is full is dropped.
func (h *hub) deliver(e jobs.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for st := range h.streams[e.MemberID] {
		select {
		case st.events <- e.Notification:
		default:
			st.once.Do(func() { close(st.closed) })
			delete(h.streams[e.MemberID], st)
		}
	}
}

// count returns the number of connected streams.
func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.streams {
		n += len(m)
	}
	return n
}

// run forwards events from the Redis subscription until ctx ends. go-redis
// resubscribes by itself after a lost connection; events published while it
// was gone reach clients by replay when they reconnect.
func (h *hub) run(ctx context.Context, ps *redis.PubSub) {
	ch := ps.Channel(redis.WithChannelHealthCheckInterval(30 * time.Second))
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			var e jobs.Event
			if err := json.Unmarshal([]byte(msg.Payload), &e); err != nil {
				h.logger.Warn("undecodable event", slog.Any("err", err))
				continue
			}
			h.deliver(e)
		}
	}
}

// startHub subscribes to the events channel and forwards to streams until
// the returned stop is called. It waits briefly for the subscription to be
// confirmed, so events published right after start reach the streams;
// when Redis does not answer in time it goes on and subscribes when it can.
func startHub(rdb redis.UniversalClient, logger *slog.Logger) (*hub, func()) {
	h := newHub(logger)
	ctx, cancel := context.WithCancel(context.Background())
	ps := rdb.Subscribe(ctx, jobs.EventsChannel)
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
	if _, err := ps.Receive(wctx); err != nil {
		logger.Warn("event subscription not confirmed yet; streams get events once Redis answers", slog.Any("err", err))
	}
	wcancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.run(ctx, ps)
	}()
	return h, func() {
		cancel()
		_ = ps.Close()
		<-done
	}
}

type ticketResponse struct {
	Ticket    string `json:"ticket"`
	ExpiresIn int    `json:"expires_in"`
}

// handleEventTicket hands out a one-time ticket for /v1/events, for
// browsers: EventSource cannot send an Authorization header.
func (s *server) handleEventTicket(w http.ResponseWriter, r *http.Request) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	ticket := base64.RawURLEncoding.EncodeToString(b)
	c := mustClaims(r)
	// The ticket remembers the login, so a logout also stops the ticket and
	// the stream it opens.
	if err := s.redis.Set(r.Context(), ticketPrefix+ticket, c.MemberID+" "+c.SessionID, ticketTTL).Err(); err != nil {
		s.writeError(w, r, fmt.Errorf("store event ticket: %w", err))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, http.StatusCreated, ticketResponse{Ticket: ticket, ExpiresIn: int(ticketTTL.Seconds())})
}

// streamAuth is who a stream is for: the member, and the login (session,
// and the access token's jti when one was used) that must stay valid. A
// stream opened by a ticket keeps the ticket, whose reconnect window it
// renews while it is open.
type streamAuth struct {
	member, session, jti string
	ticket               string
}

// errBadTicket is the one answer to every unusable ticket, so it does not
// tell a used ticket from a made-up one.
func errBadTicket() error {
	return domain.Errorf(domain.EINVALIDTOKEN, "The event ticket is unknown, used or expired.")
}

// streamMember authenticates a stream: a ?ticket= or a bearer token.
func (s *server) streamMember(w http.ResponseWriter, r *http.Request) (streamAuth, error) {
	if ticket := r.URL.Query().Get("ticket"); ticket != "" {
		return s.redeemTicket(w, r, ticket)
	}
	token, ok := bearerToken(r)
	if !ok {
		return streamAuth{}, domain.Errorf(domain.EUNAUTHORIZED, "An access token (Authorization: Bearer) or a ticket (?ticket=) is required.")
	}
	c, err := s.verify(r.Context(), token)
	if err != nil {
		return streamAuth{}, err
	}
	return streamAuth{member: c.MemberID, session: c.SessionID, jti: c.ID}, nil
}

// redeemTicket opens a stream by ticket. A new ticket works once: it
// becomes a used ticket bound to this browser's stream cookie (set here).
// A used ticket works again only with that cookie, within the reconnect
// window and while its login stands: that is EventSource reconnecting to
// the same URL. The ticket alone (say, from a log) or the cookie alone
// opens nothing.
func (s *server) redeemTicket(w http.ResponseWriter, r *http.Request, ticket string) (streamAuth, error) {
	ctx := r.Context()
	v, err := s.redis.GetDel(ctx, ticketPrefix+ticket).Result()
	if errors.Is(err, redis.Nil) {
		return s.reconnectTicket(r, ticket)
	}
	if err != nil {
		return streamAuth{}, fmt.Errorf("redeem event ticket: %w", err)
	}
	member, session, _ := strings.Cut(v, " ")
	a := streamAuth{member: member, session: session, ticket: ticket}
	if err := s.stillValid(ctx, a); err != nil {
		return streamAuth{}, err
	}
	key := browserKey(r)
	if err := s.redis.Set(ctx, streamPrefix+ticket, member+" "+session+" "+keyDigest(key), reconnectWindow).Err(); err != nil {
		return streamAuth{}, fmt.Errorf("bind event ticket: %w", err)
	}
	http.SetCookie(w, &http.Cookie{
		Name:  streamCookie,
		Value: key,
		Path:  streamCookiePath,
		// The cookie outlives streams (it cannot be renewed during one);
		// what it unlocks is bounded by the ticket's window and login.
		MaxAge:   int(s.sessions.TTL().Seconds()),
		HttpOnly: true,
		Secure:   true,
		SameSite: http.SameSiteStrictMode,
	})
	return a, nil
}

// reconnectTicket opens a stream again with a used ticket and the stream
// cookie of the browser that used it first.
func (s *server) reconnectTicket(r *http.Request, ticket string) (streamAuth, error) {
	ctx := r.Context()
	v, err := s.redis.Get(ctx, streamPrefix+ticket).Result()
	if errors.Is(err, redis.Nil) {
		return streamAuth{}, errBadTicket()
	}
	if err != nil {
		return streamAuth{}, fmt.Errorf("read event ticket: %w", err)
	}
	member, rest, _ := strings.Cut(v, " ")
	session, digest, _ := strings.Cut(rest, " ")
	c, err := r.Cookie(streamCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(keyDigest(c.Value)), []byte(digest)) != 1 {
		return streamAuth{}, errBadTicket()
	}
	a := streamAuth{member: member, session: session, ticket: ticket}
	if err := s.stillValid(ctx, a); err != nil {
		return streamAuth{}, err
	}
	return a, nil
}

// browserKey is the stream cookie's value: the browser's own when it sent
// a well-formed one (so the tabs of one browser share it and none
// invalidates another's tickets), a new random one otherwise.
func browserKey(r *http.Request) string {
	if c, err := r.Cookie(streamCookie); err == nil {
		if b, err := base64.RawURLEncoding.DecodeString(c.Value); err == nil && len(b) == 32 {
			return c.Value
		}
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// keyDigest is what Redis keeps of a stream cookie, so a read of Redis
// does not yield cookies.
func keyDigest(key string) string {
	d := sha256.Sum256([]byte(key))
	return hex.EncodeToString(d[:])
}

// renewTicket extends a ticket stream's reconnect window.
func (s *server) renewTicket(ctx context.Context, a streamAuth) {
	if a.ticket == "" {
		return
	}
	if err := s.redis.Expire(ctx, streamPrefix+a.ticket, reconnectWindow).Err(); err != nil {
		s.logger.WarnContext(ctx, "renew event ticket", slog.Any("err", err))
	}
}

// stillValid reports whether the login behind a stream still stands: not
// logged out, not signed out remotely, not deleted.
func (s *server) stillValid(ctx context.Context, a streamAuth) error {
	if a.jti != "" {
		return s.sessions.Check(ctx, a.jti, a.session, a.member)
	}
	if _, err := s.sessions.Get(ctx, a.session); err != nil {
		if domain.ErrorCode(err) == domain.ENOTFOUND {
			return domain.Errorf(domain.ETOKENREVOKED, "The login behind this ticket has ended.")
		}
		return err
	}
	return nil
}

// handleEvents streams the member's new notifications as Server-Sent
// Events: a "connected" event, then what was missed since Last-Event-ID
// (replayed from the table) or a "reset" when that cannot be told, then
// each new notification as it is published, with a heartbeat comment to
// keep the connection open.
func (s *server) handleEvents(w http.ResponseWriter, r *http.Request) {
	who, err := s.streamMember(w, r)
	if err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	member := who.member
	ctx := r.Context()
	// Without Redis no event would arrive: say so, and the client comes
	// back with Last-Event-ID once it answers again.
	if err := s.redisUp(ctx); err != nil {
		s.writeError(w, r, err)
		return
	}
	// Subscribe before replaying, so nothing published in between is lost;
	// what both deliver is sent once.
	st := s.hub.add(member)
	defer s.hub.remove(st)
	last := lastEventID(r)
	plan, err := s.planReplay(ctx, member, last)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// The window counts from the moment the stream ends, which is also
	// when the request's context is cancelled.
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
		defer cancel()
		s.renewTicket(rctx, who)
	}()
	s.streamMetrics.open.Inc()
	defer s.streamMetrics.open.Dec()
	if last != "" {
		s.streamMetrics.reconnects.Inc()
	}

	h := w.Header()
	h.Set("Content-Type", eventStreamType)
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	rc := http.NewResponseController(w)
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	send := func(id, event string, data any) bool {
		b, err := json.Marshal(data)
		if err != nil {
			s.logger.ErrorContext(ctx, "encode event", slog.String("event", event), slog.Any("err", err))
			return false
		}
		if !write(fmt.Appendf(nil, "id: %s\nevent: %s\ndata: %s\n\n", id, event, b)) {
			return false
		}
		s.streamMetrics.sent.WithLabelValues(event).Inc()
		return true
	}
	if !write([]byte("retry: 3000\n")) ||
		!send(plan.position, eventConnected, connectedEvent{MemberID: member}) {
		return
	}
	if plan.reset != "" {
		s.streamMetrics.resets.WithLabelValues(plan.reset).Inc()
		if !send(plan.position, eventReset, resetEvent{Reason: plan.reset}) {
			return
		}
	}
	replayed := make(map[string]bool, len(plan.missed))
	for i := range plan.missed {
		n := newNotificationResponse(&plan.missed[i])
		if !send(n.ID, eventNotification, n) {
			return
		}
		replayed[n.ID] = true
	}

	heartbeat := time.NewTicker(s.heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.streamsDone:
			return
		case <-st.closed:
			return
		case e := <-st.events:
			if replayed[e.ID] {
				continue
			}
			n := eventNotificationResponse(e)
			if !send(n.ID, eventNotification, n) {
				return
			}
		case <-heartbeat.C:
			// A stream outlives its access token; each heartbeat checks
			// that the login behind it has not been ended since.
			if err := s.stillValid(ctx, who); domain.ErrorCode(err) == domain.ETOKENREVOKED {
				return
			}
			// Events published while Redis is out of reach never arrive;
			// ending the stream makes the client reconnect and replay
			// them from the table once Redis is back.
			if err := s.redisUp(ctx); err != nil {
				s.logger.WarnContext(ctx, "event stream ended: redis unreachable", slog.Any("err", err))
				return
			}
			s.renewTicket(ctx, who)
			if !write([]byte(": heartbeat\n\n")) {
				return
			}
		}
	}
}

// The events of a stream, and the content type that tells the metrics a
// response is a stream.
const (
	eventConnected    = "connected"
	eventNotification = "notification"
	eventReset        = "reset"
	eventStreamType   = "text/event-stream"
)

// Why a stream sends "reset": the client's list may lack notifications
// the stream cannot replay, so it reloads the list.
const (
	resetUnknownID     = "unknown_last_event_id"
	resetTooManyMissed = "too_many_missed"
)

type connectedEvent struct {
	MemberID string `json:"member_id"`
}

type resetEvent struct {
	Reason string `json:"reason"`
}

// lastEventID is where the client resumes: the Last-Event-ID header that
// EventSource sends when it reconnects, or ?last_event_id= for a first
// connection that resumes (EventSource cannot set headers). The header
// wins: on a reconnect it is newer than the URL.
func lastEventID(r *http.Request) string {
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		return v
	}
	return r.URL.Query().Get("last_event_id")
}

// replayPlan is how a stream starts: its position (the id the "connected"
// event carries, so EventSource resumes from it even when the stream drops
// before any notification), what it missed, and why it must reset instead.
type replayPlan struct {
	position string
	missed   []domain.Notification
	reset    string
}

// planReplay reads what a stream starting after last missed. An id that
// is not the member's (removed by retention, someone else's, made up) or
// more than maxReplay missed notifications give a reset from the newest.
func (s *server) planReplay(ctx context.Context, member, last string) (replayPlan, error) {
	if last == "" {
		return s.planFromNewest(ctx, member, "")
	}
	if !plausibleID(last) {
		return s.planFromNewest(ctx, member, resetUnknownID)
	}
	after := last
	if last == startPosition {
		after = ""
	}
	var missed []domain.Notification
	for {
		page, err := (db.Notifications{}).After(ctx, s.db, member, after, replayPage)
		if err != nil {
			return replayPlan{}, err
		}
		missed = append(missed, page...)
		if len(missed) > maxReplay {
			return s.planFromNewest(ctx, member, resetTooManyMissed)
		}
		if len(page) < replayPage {
			break
		}
		after = page[len(page)-1].ID
	}
	if len(missed) == 0 && last != startPosition {
		ok, err := (db.Notifications{}).Has(ctx, s.db, member, last)
		if err != nil {
			return replayPlan{}, err
		}
		if !ok {
			return s.planFromNewest(ctx, member, resetUnknownID)
		}
	}
	return replayPlan{position: last, missed: missed}, nil
}

// plausibleID reports whether id could be a notification id: up to 64
// ASCII letters and digits. Anything else (a NUL, bytes that are not
// UTF-8) is unknown without asking the database, which would refuse it.
func plausibleID(id string) bool {
	if len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// planFromNewest starts a stream at the member's newest notification.
func (s *server) planFromNewest(ctx context.Context, member, reset string) (replayPlan, error) {
	newest, err := (db.Notifications{}).Newest(ctx, s.db, member)
	if err != nil {
		return replayPlan{}, err
	}
	if newest == "" {
		newest = startPosition
	}
	return replayPlan{position: newest, reset: reset}, nil
}

// streamMetrics describe the live streams, which stay out of the request
// histogram: they last minutes, not milliseconds.
type streamMetrics struct {
	open       prometheus.Gauge
	sent       *prometheus.CounterVec
	reconnects prometheus.Counter
	resets     *prometheus.CounterVec
}

func newStreamMetrics() *streamMetrics {
	m := &streamMetrics{
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "moim_sse_streams_open",
			Help: "Live event streams (GET /v1/events) open on this instance.",
		}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moim_sse_events_sent_total",
			Help: "Server-Sent Events written to live streams, by event (connected, notification, reset).",
		}, []string{"event"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "moim_sse_reconnects_total",
			Help: "Live streams opened with a Last-Event-ID (or ?last_event_id=) to resume from.",
		}),
		resets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moim_sse_resets_total",
			Help: "Reset events sent because a stream could not replay what it missed, by reason.",
		}, []string{"reason"}),
	}
	// Every series exists from the start, so a rate or an alert on it
	// does not wait for the first event.
	for _, e := range []string{eventConnected, eventNotification, eventReset} {
		m.sent.WithLabelValues(e)
	}
	for _, r := range []string{resetUnknownID, resetTooManyMissed} {
		m.resets.WithLabelValues(r)
	}
	return m
}

func (m *streamMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.open, m.sent, m.reconnects, m.resets}
}
