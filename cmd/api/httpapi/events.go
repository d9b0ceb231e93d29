package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
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
// and the access token's jti when one was used) that must stay valid.
type streamAuth struct {
	member, session, jti string
}

// streamMember authenticates a stream: a one-time ?ticket= or a bearer token.
func (s *server) streamMember(r *http.Request) (streamAuth, error) {
	if ticket := r.URL.Query().Get("ticket"); ticket != "" {
		v, err := s.redis.GetDel(r.Context(), ticketPrefix+ticket).Result()
		if errors.Is(err, redis.Nil) {
			return streamAuth{}, domain.Errorf(domain.EINVALIDTOKEN, "The event ticket is unknown, used or expired.")
		}
		if err != nil {
			return streamAuth{}, fmt.Errorf("redeem event ticket: %w", err)
		}
		member, session, _ := strings.Cut(v, " ")
		a := streamAuth{member: member, session: session}
		if err := s.stillValid(r.Context(), a); err != nil {
			return streamAuth{}, err
		}
		return a, nil
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
// (replayed from the table), then each new notification as it is
// published, with a heartbeat comment to keep the connection open.
func (s *server) handleEvents(w http.ResponseWriter, r *http.Request) {
	who, err := s.streamMember(r)
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
	rc := http.NewResponseController(w)
	// Subscribe before replaying, so nothing published in between is lost;
	// what both deliver is sent once.
	st := s.hub.add(member)
	defer s.hub.remove(st)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	send := func(write func(io.Writer) error) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if err := write(w); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "retry: 3000\nevent: connected\ndata: {\"member_id\":%q}\n\n", member)
		return err
	}) {
		return
	}

	replayed := make(map[string]bool)
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("last_event_id")
	}
	for last != "" {
		missed, err := (db.Notifications{}).After(ctx, s.db, member, last, replayPage)
		if err != nil {
			s.logger.WarnContext(ctx, "event replay failed", slog.Any("err", err))
			return
		}
		for i := range missed {
			n := newNotificationResponse(&missed[i])
			if !send(func(w io.Writer) error { return writeEvent(w, n) }) {
				return
			}
			replayed[n.ID] = true
		}
		last = ""
		if len(missed) == replayPage {
			last = missed[len(missed)-1].ID
		}
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
			if !send(func(w io.Writer) error { return writeEvent(w, n) }) {
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
			if !send(func(w io.Writer) error { _, err := io.WriteString(w, ": heartbeat\n\n"); return err }) {
				return
			}
		}
	}
}

// writeEvent writes one notification event; its id lets the client resume
// with Last-Event-ID.
func writeEvent(w io.Writer, n notificationResponse) error {
	b, err := json.Marshal(n)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "id: %s\nevent: notification\ndata: %s\n\n", n.ID, b)
	return err
}
