package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
)

// roomsStart is when the room tests begin: 12:00 in Seoul.
var roomsStart = time.Date(2026, 5, 1, 3, 0, 0, 0, time.UTC)

// roomClock is the API's and the worker's clock in the room tests.
type roomClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *roomClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *roomClock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

// Advance moves the clock on by d.
func (c *roomClock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// roomConditionsBody is a room's conditions on the wire.
type roomConditionsBody struct {
	Places        []string `json:"places"`
	TimesOfEating []string `json:"times_of_eating"`
	WaysOfEating  []string `json:"ways_of_eating"`
	StudyTypes    []string `json:"study_types"`
}

type roomHostBody struct {
	ID       string `json:"id"`
	Nickname string `json:"nickname"`
}

type roomParticipantBody struct {
	ID       *string `json:"id"`
	Nickname *string `json:"nickname"`
	Host     bool    `json:"host"`
	Me       bool    `json:"me"`
}

// attachedImageBody is an image as rooms and members carry it.
type attachedImageBody struct {
	ID     string            `json:"id"`
	Status string            `json:"status"`
	URLs   map[string]string `json:"urls"`
}

// roomBody is a room on the wire; Participants only on GET /v1/rooms/{id}.
type roomBody struct {
	ID               string                `json:"id"`
	Category         string                `json:"category"`
	Title            string                `json:"title"`
	Body             string                `json:"body"`
	Date             string                `json:"date"`
	StartTime        string                `json:"start_time"`
	StartsAt         string                `json:"starts_at"`
	Place            string                `json:"place"`
	Capacity         int                   `json:"capacity"`
	ParticipantCount int                   `json:"participant_count"`
	Conditions       roomConditionsBody    `json:"conditions"`
	Anonymous        bool                  `json:"anonymous"`
	Host             *roomHostBody         `json:"host"`
	Images           []attachedImageBody   `json:"images"`
	Completed        bool                  `json:"completed"`
	MatchID          *string               `json:"match_id"`
	CreatedAt        string                `json:"created_at"`
	UpdatedAt        string                `json:"updated_at"`
	Participants     []roomParticipantBody `json:"participants,omitempty"`
}

type roomListBody struct {
	Rooms      []roomBody `json:"rooms"`
	NextCursor *string    `json:"next_cursor"`
}

type participationBody struct {
	ID        string  `json:"id"`
	RoomID    string  `json:"room_id"`
	Kind      string  `json:"kind"`
	Status    string  `json:"status"`
	CreatedAt string  `json:"created_at"`
	DecidedAt *string `json:"decided_at"`
}

var roomKeys = []string{"anonymous", "body", "capacity", "category", "completed", "conditions", "created_at",
	"date", "host", "id", "images", "match_id", "participant_count", "place", "start_time", "starts_at", "title", "updated_at"}

// decodeRoom decodes a room strictly and checks its keys: participants
// only when detail is set.
func decodeRoom(t testing.TB, raw []byte, detail bool) roomBody {
	t.Helper()
	want := slices.Clone(roomKeys)
	if detail {
		want = append(want, "participants")
		slices.Sort(want)
	}
	if got := jsonKeys(t, raw); !slices.Equal(got, want) {
		t.Errorf("room keys = %v, want %v", got, want)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	if got, want := jsonKeys(t, fields["conditions"]), []string{"places", "study_types", "times_of_eating", "ways_of_eating"}; !slices.Equal(got, want) {
		t.Errorf("conditions keys = %v, want %v", got, want)
	}
	if !bytes.HasPrefix(fields["images"], []byte("[")) {
		t.Errorf("images = %s, want a list", fields["images"])
	}
	var r roomBody
	decodeStrict(t, raw, &r)
	if len(r.Images) == 0 {
		r.Images = nil // so a room without photos compares equal to a want that leaves them out
	}
	parseWireTime(t, "starts_at", r.StartsAt)
	parseWireTime(t, "created_at", r.CreatedAt)
	parseWireTime(t, "updated_at", r.UpdatedAt)
	return r
}

// newRoomServer starts the API on a room clock at roomsStart, a RUN lead
// of 6 hours and the given list cache TTL; the room location is left to
// its default, Asia/Seoul.
func newRoomServer(t testing.TB, e *env, ttl time.Duration, mutate func(*httpapi.Deps)) (*testServer, *roomClock) {
	t.Helper()
	clock := &roomClock{now: roomsStart}
	s := newServer(t, e, func(d *httpapi.Deps) {
		d.NowFunc = clock.Now
		d.RoomRules = domain.RoomRules{RunLead: 6 * time.Hour, MaxAhead: 365 * 24 * time.Hour}
		d.RoomListCacheTTL = ttl
		if mutate != nil {
			mutate(d)
		}
	}, nil)
	return s, clock
}

// roomJSON is a valid MEAL room body with overrides; a nil value drops the
// field.
func roomJSON(t testing.TB, overrides map[string]any) string {
	t.Helper()
	m := map[string]any{
		"category": "MEAL", "title": "Lunch", "body": "Bibimbap, then coffee.", "date": "2026-05-02",
		"start_time": "12:30", "place": "Gaepo lobby", "capacity": 4, "places": []string{"GAEPO"},
		"times_of_eating": []string{"LUNCH"}, "ways_of_eating": []string{"EATOUT", "DELIVERY"}, "anonymous": false,
	}
	for k, v := range overrides {
		if v == nil {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// plainRoom is a room body of category with no condition lists.
func plainRoom(t testing.TB, category, date, start string, extra map[string]any) string {
	t.Helper()
	o := map[string]any{"category": category, "date": date, "start_time": start,
		"places": nil, "times_of_eating": nil, "ways_of_eating": nil}
	for k, v := range extra {
		o[k] = v
	}
	return roomJSON(t, o)
}

func (s *testServer) createRoom(t testing.TB, token, body string) roomBody {
	t.Helper()
	resp, b := s.do(t, request{method: http.MethodPost, path: "/v1/rooms", token: token, body: body})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/rooms %s: status = %d, want 201 (body %s)", body, resp.StatusCode, b)
	}
	r := decodeRoom(t, b, false)
	if loc, want := resp.Header.Get("Location"), "/v1/rooms/"+r.ID; loc != want {
		t.Errorf("Location = %q, want %q", loc, want)
	}
	return r
}

func (s *testServer) getRoom(t testing.TB, token, id string) roomBody {
	t.Helper()
	resp, b := s.do(t, request{method: http.MethodGet, path: "/v1/rooms/" + id, token: token})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET room %s: status = %d, want 200 (body %s)", id, resp.StatusCode, b)
	}
	return decodeRoom(t, b, true)
}

// listRooms GETs the room list and returns it with its X-Cache header.
func (s *testServer) listRooms(t testing.TB, token, query string) (roomListBody, string) {
	t.Helper()
	resp, b := s.do(t, request{method: http.MethodGet, path: "/v1/rooms" + query, token: token})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/rooms%s: status = %d, want 200 (body %s)", query, resp.StatusCode, b)
	}
	var raw struct {
		Rooms      []json.RawMessage `json:"rooms"`
		NextCursor *string           `json:"next_cursor"`
	}
	decodeStrict(t, b, &raw)
	if raw.Rooms == nil {
		t.Errorf("rooms is null, want a list (body %s)", b)
	}
	l := roomListBody{NextCursor: raw.NextCursor, Rooms: []roomBody{}}
	for _, r := range raw.Rooms {
		l.Rooms = append(l.Rooms, decodeRoom(t, r, false))
	}
	return l, resp.Header.Get("X-Cache")
}

func roomIDs(rs []roomBody) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

// participate posts a join (or, with leave, a leave) and fails unless it is
// accepted.
func (s *testServer) participate(t testing.TB, token, roomID string, leave bool) participationBody {
	t.Helper()
	req := request{method: http.MethodPost, path: "/v1/rooms/" + roomID + "/participations", token: token}
	if leave {
		req = request{method: http.MethodDelete, path: "/v1/rooms/" + roomID + "/participations/mine", token: token}
	}
	resp, b := s.do(t, req)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("%s %s: status = %d, want 202 (body %s)", req.method, req.path, resp.StatusCode, b)
	}
	want := []string{"created_at", "decided_at", "id", "kind", "room_id", "status"}
	if got := jsonKeys(t, b); !slices.Equal(got, want) {
		t.Errorf("participation keys = %v, want %v", got, want)
	}
	var p participationBody
	decodeStrict(t, b, &p)
	if loc, want := resp.Header.Get("Location"), "/v1/participations/"+p.ID; loc != want {
		t.Errorf("Location = %q, want %q", loc, want)
	}
	kind := "JOIN"
	if leave {
		kind = "LEAVE"
	}
	if p.RoomID != roomID || p.Kind != kind || p.Status != "REQUESTED" || p.DecidedAt != nil {
		t.Errorf("request %+v, want a REQUESTED %s of room %s", p, kind, roomID)
	}
	parseWireTime(t, "created_at", p.CreatedAt)
	return p
}

func (s *testServer) participation(t testing.TB, token, id string) participationBody {
	t.Helper()
	var p participationBody
	s.getOK(t, "/v1/participations/"+id, token, &p)
	return p
}

// participationTasks returns the request keys of the participation tasks
// in the outbox, in order.
func participationTasks(t testing.TB, bdb *bun.DB) []int64 {
	t.Helper()
	var rows []db.OutboxRow
	if err := bdb.NewSelect().Model(&rows).Where("type = ?", jobs.TypeRoomParticipation).Order("id").Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := make([]int64, 0, len(rows))
	for _, r := range rows {
		if r.Queue != jobs.QueueCritical {
			t.Errorf("participation task queue = %q, want %q", r.Queue, jobs.QueueCritical)
		}
		var p jobs.ParticipationPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Request)
	}
	return out
}

// decide runs the worker's decision of request id, found through its task
// in the outbox, and returns the status it came to.
func decide(t testing.TB, bdb *bun.DB, clock *roomClock, id string) string {
	t.Helper()
	ctx := context.Background()
	p, err := (db.Participations{}).FindByID(ctx, bdb, id)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(participationTasks(t, bdb), p.Key) {
		t.Fatalf("no outbox task for request %s (key %d)", id, p.Key)
	}
	h := jobs.RoomParticipationHandler{DB: bdb, Params: jobs.AdmissionParams{Retries: 3},
		Logger: slog.New(slog.DiscardHandler), NowFunc: clock.Now}
	adm, err := h.Decide(ctx, p.Key)
	if err != nil {
		t.Fatalf("decide %s: %v", id, err)
	}
	return adm.Request.Status.String()
}

// join requests a join for token and lets the worker decide it.
func (s *testServer) join(t testing.TB, bdb *bun.DB, clock *roomClock, token, roomID string) string {
	t.Helper()
	return decide(t, bdb, clock, s.participate(t, token, roomID, false).ID)
}

// roomCounts are the rows of the room tables and the outbox.
type roomCounts struct{ rooms, participants, requests, matches, notifications, outbox int }

func countRoomRows(t testing.TB, bdb *bun.DB) roomCounts {
	t.Helper()
	n := func(table string) int {
		c, err := bdb.NewSelect().Table(table).Count(context.Background())
		if err != nil {
			t.Fatalf("count %s: %v", table, err)
		}
		return int(c)
	}
	return roomCounts{n("rooms"), n("room_participants"), n("room_participations"), n("matches"), n("notifications"), outboxBesidesCodes(t, bdb)}
}

// storedRoom reads room id from the database.
func storedRoom(t testing.TB, bdb *bun.DB, id string) *domain.Room {
	t.Helper()
	r, err := (db.Rooms{}).FindByID(context.Background(), bdb, id)
	if err != nil {
		t.Fatalf("find room %s: %v", id, err)
	}
	return r
}

// notificationsOf returns token's notifications of type typ.
func (s *testServer) notificationsOf(t testing.TB, token, typ string) []notificationBody {
	t.Helper()
	var out []notificationBody
	for _, n := range s.notificationsPage(t, token, "?limit=100").Notifications {
		if n.Type == typ {
			out = append(out, n)
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func TestRoomCreate(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		e := newEnv(t, bdb)
		s, _ := newRoomServer(t, e, 0, nil)
		host, other := s.randomMember(t, "host"), s.randomMember(t, "other")

		r := s.createRoom(t, host.token, roomJSON(t, map[string]any{"title": "  Lunch  ", "body": " Bibimbap, then coffee.\n"}))
		want := roomBody{
			ID: r.ID, Category: "MEAL", Title: "Lunch", Body: "Bibimbap, then coffee.",
			Date: "2026-05-02", StartTime: "12:30", StartsAt: "2026-05-02T03:30:00Z",
			Place: "Gaepo lobby", Capacity: 4, ParticipantCount: 1,
			Conditions: roomConditionsBody{Places: []string{"GAEPO"}, TimesOfEating: []string{"LUNCH"},
				WaysOfEating: []string{"DELIVERY", "EATOUT"}, StudyTypes: []string{}},
			Host:      &roomHostBody{ID: host.ID, Nickname: "host"},
			CreatedAt: "2026-05-01T03:00:00Z", UpdatedAt: "2026-05-01T03:00:00Z",
		}
		if diff := cmp.Diff(want, r); diff != "" {
			t.Errorf("created room (-want +got):\n%s", diff)
		}

		// GET shows the same room and who is in it.
		want.Participants = []roomParticipantBody{{ID: &host.ID, Nickname: ptr("host"), Host: true, Me: true}}
		if diff := cmp.Diff(want, s.getRoom(t, host.token, r.ID)); diff != "" {
			t.Errorf("GET as host (-want +got):\n%s", diff)
		}
		want.Participants[0].Me = false
		if diff := cmp.Diff(want, s.getRoom(t, other.token, r.ID)); diff != "" {
			t.Errorf("GET as another member (-want +got):\n%s", diff)
		}

		stored := storedRoom(t, bdb, r.ID)
		if stored.HostID != host.ID || stored.Version != 1 || !stored.StartsAt.Equal(time.Date(2026, 5, 2, 3, 30, 0, 0, time.UTC)) {
			t.Errorf("stored room %+v", stored)
		}

		t.Run("study and run", func(t *testing.T) {
			st := s.createRoom(t, host.token, plainRoom(t, "STUDY", "2026-05-03", "09:00", map[string]any{"study_types": []string{"INNER_CIRCLE"}, "capacity": 20, "body": nil}))
			if diff := cmp.Diff(roomConditionsBody{Places: []string{}, TimesOfEating: []string{}, WaysOfEating: []string{}, StudyTypes: []string{"INNER_CIRCLE"}}, st.Conditions); diff != "" {
				t.Errorf("study conditions (-want +got):\n%s", diff)
			}
			if st.Body != "" || st.Capacity != 20 || st.StartsAt != "2026-05-03T00:00:00Z" {
				t.Errorf("study room %+v", st)
			}
			// Exactly the lead time ahead (12:00 + 6 h in Seoul) is allowed.
			run := s.createRoom(t, host.token, plainRoom(t, "RUN", "2026-05-01", "18:00", map[string]any{"places": []string{"OUT_OF_CLUSTER"}, "capacity": 1}))
			if run.Category != "RUN" || run.StartsAt != "2026-05-01T09:00:00Z" || run.Capacity != 1 {
				t.Errorf("run room %+v", run)
			}
			// A title of exactly 255 characters (multi-byte) is allowed.
			long := strings.Repeat("가", 255)
			if got := s.createRoom(t, host.token, roomJSON(t, map[string]any{"title": long})); got.Title != long {
				t.Errorf("title of 255 characters came back as %d", len([]rune(got.Title)))
			}
		})

		t.Run("room location from deps", func(t *testing.T) {
			s, _ := newRoomServer(t, e, 0, func(d *httpapi.Deps) { d.RoomLocation = time.UTC })
			r := s.createRoom(t, host.token, roomJSON(t, nil))
			if r.StartsAt != "2026-05-02T12:30:00Z" || r.Date != "2026-05-02" || r.StartTime != "12:30" {
				t.Errorf("UTC room: %s %s starts at %s", r.Date, r.StartTime, r.StartsAt)
			}
		})
		if c := countRoomRows(t, bdb); c.rooms != 5 || c.participants != 5 || c.requests != 0 || c.outbox != 0 {
			t.Errorf("stored %+v; want 5 rooms with their hosts and nothing in the outbox", c)
		}
	})
}

func TestRoomCreateRejects(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		e := newEnv(t, bdb)
		s, _ := newRoomServer(t, e, 0, nil)
		tok := s.randomMember(t, "host").token
		before := countRoomRows(t, bdb)
		tests := []struct {
			name       string
			token      string
			body       string
			wantStatus int
			wantCode   string
			wantField  string
		}{
			{"capacity 0", tok, roomJSON(t, map[string]any{"capacity": 0}), 400, "invalid", "capacity"},
			{"capacity 21", tok, roomJSON(t, map[string]any{"capacity": 21}), 400, "invalid", "capacity"},
			{"capacity missing", tok, roomJSON(t, map[string]any{"capacity": nil}), 400, "invalid", "capacity"},
			{"capacity as string", tok, roomJSON(t, map[string]any{"capacity": "4"}), 400, "invalid", "capacity"},
			{"date in the past", tok, roomJSON(t, map[string]any{"date": "2026-04-30"}), 400, "invalid", "date"},
			{"earlier today", tok, roomJSON(t, map[string]any{"date": "2026-05-01", "start_time": "11:59"}), 400, "invalid", "date"},
			{"now", tok, roomJSON(t, map[string]any{"date": "2026-05-01", "start_time": "12:00"}), 400, "invalid", "date"},
			{"run inside the lead time", tok, plainRoom(t, "RUN", "2026-05-01", "17:59", nil), 400, "invalid", "date"},
			{"ways of eating on study", tok, plainRoom(t, "STUDY", "2026-05-02", "12:00", map[string]any{"ways_of_eating": []string{"EATOUT"}}), 400, "invalid", "ways_of_eating"},
			{"times of eating on run", tok, plainRoom(t, "RUN", "2026-05-02", "12:00", map[string]any{"times_of_eating": []string{"LUNCH"}}), 400, "invalid", "times_of_eating"},
			{"study types on meal", tok, roomJSON(t, map[string]any{"study_types": []string{"INNER_CIRCLE"}}), 400, "invalid", "study_types"},
			{"unknown place", tok, roomJSON(t, map[string]any{"places": []string{"BUNDANG"}}), 400, "invalid", "places"},
			{"unknown time of eating", tok, roomJSON(t, map[string]any{"times_of_eating": []string{"BRUNCH"}}), 400, "invalid", "times_of_eating"},
			{"lower-case way", tok, roomJSON(t, map[string]any{"ways_of_eating": []string{"eatout"}}), 400, "invalid", "ways_of_eating"},
			{"duplicated way", tok, roomJSON(t, map[string]any{"ways_of_eating": []string{"EATOUT", "EATOUT"}}), 400, "invalid", "ways_of_eating"},
			{"unknown category", tok, roomJSON(t, map[string]any{"category": "PARTY"}), 400, "invalid", "category"},
			{"missing category", tok, roomJSON(t, map[string]any{"category": nil}), 400, "invalid", "category"},
			{"unknown field", tok, roomJSON(t, map[string]any{"color": "red"}), 400, "invalid", "color"},
			{"empty title", tok, roomJSON(t, map[string]any{"title": ""}), 400, "invalid", "title"},
			{"blank title", tok, roomJSON(t, map[string]any{"title": "   "}), 400, "invalid", "title"},
			{"title of 256", tok, roomJSON(t, map[string]any{"title": strings.Repeat("a", 256)}), 400, "invalid", "title"},
			{"title with a newline", tok, roomJSON(t, map[string]any{"title": "a\nb"}), 400, "invalid", "title"},
			{"title with a bidi override", tok, roomJSON(t, map[string]any{"title": "gpj.\u202Eexe"}), 400, "invalid", "title"},
			{"body with a zero-width space", tok, roomJSON(t, map[string]any{"body": "a\u200Bb"}), 400, "invalid", "body"},
			{"place with a C1 control", tok, roomJSON(t, map[string]any{"place": "a\u009Bb"}), 400, "invalid", "place"},
			{"year 9999", tok, roomJSON(t, map[string]any{"date": "9999-12-31"}), 400, "invalid", "date"},
			{"beyond rooms.max_days_ahead", tok, roomJSON(t, map[string]any{"date": "2027-05-02"}), 400, "invalid", "date"},
			{"missing place", tok, roomJSON(t, map[string]any{"place": nil}), 400, "invalid", "place"},
			{"date without zeros", tok, roomJSON(t, map[string]any{"date": "2026-5-2"}), 400, "invalid", "date"},
			{"no such day", tok, roomJSON(t, map[string]any{"date": "2026-02-30"}), 400, "invalid", "date"},
			{"missing date", tok, roomJSON(t, map[string]any{"date": nil}), 400, "invalid", "date"},
			{"date with time", tok, roomJSON(t, map[string]any{"date": "2026-05-02T12:00"}), 400, "invalid", "date"},
			{"hour without zero", tok, roomJSON(t, map[string]any{"start_time": "9:30"}), 400, "invalid", "start_time"},
			{"hour 24", tok, roomJSON(t, map[string]any{"start_time": "24:00"}), 400, "invalid", "start_time"},
			{"seconds", tok, roomJSON(t, map[string]any{"start_time": "12:30:00"}), 400, "invalid", "start_time"},
			{"missing start time", tok, roomJSON(t, map[string]any{"start_time": nil}), 400, "invalid", "start_time"},
			{"anonymous as string", tok, roomJSON(t, map[string]any{"anonymous": "yes"}), 400, "invalid", "anonymous"},
			{"malformed json", tok, `{"category":`, 400, "invalid_json", ""},
			{"empty body", tok, ``, 400, "invalid", ""},
			{"no token", "", roomJSON(t, nil), 401, "unauthorized", ""},
		}
		t.Run("cases", func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/rooms", token: tt.token, body: tt.body})
					checkError(t, resp, body, tt.wantStatus, tt.wantCode, tt.wantField)
					if c := countRoomRows(t, bdb); c != before {
						t.Errorf("stored %+v, want %+v", c, before)
					}
				})
			}
		})
		t.Run("body of 100001 characters", func(t *testing.T) {
			big, _ := newRoomServer(t, e, 0, func(d *httpapi.Deps) { d.BodyLimit = 1 << 20 })
			resp, body := big.do(t, request{method: http.MethodPost, path: "/v1/rooms", token: tok,
				body: roomJSON(t, map[string]any{"body": strings.Repeat("b", 100_001)})})
			checkError(t, resp, body, 400, "invalid", "body")
			if c := countRoomRows(t, bdb); c != before {
				t.Errorf("stored %+v, want %+v", c, before)
			}
			if r := big.createRoom(t, tok, roomJSON(t, map[string]any{"body": strings.Repeat("b", 100_000)})); len(r.Body) != 100_000 {
				t.Errorf("body of 100000 came back as %d", len(r.Body))
			}
		})
	})
}

func TestRoomAnonymity(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, clock := newRoomServer(t, newEnv(t, bdb), 0, nil)
		host, mina, jun := s.randomMember(t, "host"), s.randomMember(t, "mina"), s.randomMember(t, "jun")
		r := s.createRoom(t, host.token, roomJSON(t, map[string]any{"anonymous": true}))
		if !r.Anonymous || r.Host == nil || r.Host.ID != host.ID {
			t.Errorf("the host's own answer: anonymous %v, host %+v", r.Anonymous, r.Host)
		}
		if got := s.join(t, bdb, clock, mina.token, r.ID); got != "JOINED" {
			t.Fatalf("mina's join: %s", got)
		}

		// An outsider sees how many and who hosts, but no one's name.
		out := s.getRoom(t, jun.token, r.ID)
		wantOut := []roomParticipantBody{{Host: true}, {}}
		if out.Host != nil || out.ParticipantCount != 2 {
			t.Errorf("outsider sees host %+v, count %d", out.Host, out.ParticipantCount)
		}
		if diff := cmp.Diff(wantOut, out.Participants); diff != "" {
			t.Errorf("outsider's participants (-want +got):\n%s", diff)
		}
		// Members see everyone.
		for _, m := range []randomMember{host, mina} {
			got := s.getRoom(t, m.token, r.ID)
			want := []roomParticipantBody{
				{ID: &host.ID, Nickname: ptr("host"), Host: true, Me: m.ID == host.ID},
				{ID: &mina.ID, Nickname: ptr("mina"), Me: m.ID == mina.ID},
			}
			if diff := cmp.Diff(want, got.Participants); diff != "" {
				t.Errorf("%s sees participants (-want +got):\n%s", m.Nickname, diff)
			}
			if got.Host == nil || *got.Host != (roomHostBody{ID: host.ID, Nickname: "host"}) {
				t.Errorf("%s sees host %+v", m.Nickname, got.Host)
			}
		}
		// The list is the same for everyone, so it names no one.
		for _, m := range []randomMember{host, mina, jun} {
			l, _ := s.listRooms(t, m.token, "")
			if len(l.Rooms) != 1 || l.Rooms[0].Host != nil {
				t.Errorf("%s's list: %+v, want the room without its host", m.Nickname, l.Rooms)
			}
		}
		// Turning anonymity off shows the names to everyone.
		resp, b := s.do(t, request{method: http.MethodPatch, path: "/v1/rooms/" + r.ID, token: host.token, body: `{"anonymous":false}`})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PATCH: status = %d (body %s)", resp.StatusCode, b)
		}
		if got := s.getRoom(t, jun.token, r.ID); got.Host == nil || got.Participants[1].Nickname == nil || *got.Participants[1].Nickname != "mina" {
			t.Errorf("after anonymity off, outsider sees %+v", got)
		}
		if l, _ := s.listRooms(t, jun.token, ""); l.Rooms[0].Host == nil {
			t.Error("after anonymity off, the list shows no host")
		}
	})
}

func TestRoomList(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, clock := newRoomServer(t, newEnv(t, bdb), 0, nil)
		host := s.randomMember(t, "host")
		create := func(body string) roomBody {
			t.Helper()
			clock.Advance(time.Minute) // newest first is by creation
			return s.createRoom(t, host.token, body)
		}
		r1 := create(roomJSON(t, nil)) // MEAL, GAEPO, 05-02 12:30
		r2 := create(plainRoom(t, "STUDY", "2026-05-03", "19:00", map[string]any{"places": []string{"SEOCHO", "GAEPO"}}))
		r3 := create(plainRoom(t, "RUN", "2026-05-04", "07:00", nil))
		r4 := create(roomJSON(t, map[string]any{"date": "2026-05-02", "start_time": "23:59", "places": []string{"OUT_OF_CLUSTER"}, "anonymous": true}))
		r5 := create(plainRoom(t, "STUDY", "2026-05-03", "00:00", nil))
		gone := create(roomJSON(t, nil))
		if resp, b := s.do(t, request{method: http.MethodDelete, path: "/v1/rooms/" + gone.ID, token: host.token}); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE: status = %d (body %s)", resp.StatusCode, b)
		}
		resp, b := s.do(t, request{method: http.MethodPost, path: "/v1/rooms/" + r2.ID + "/complete", token: host.token})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("complete: status = %d (body %s)", resp.StatusCode, b)
		}

		l, cache := s.listRooms(t, host.token, "")
		if diff := cmp.Diff([]string{r5.ID, r4.ID, r3.ID, r2.ID, r1.ID}, roomIDs(l.Rooms)); diff != "" {
			t.Errorf("list (-want +got):\n%s", diff)
		}
		if cache != "miss" || l.NextCursor != nil {
			t.Errorf("X-Cache %q, next %v; want miss (no cache) and no next page", cache, l.NextCursor)
		}
		// Items are the rooms as GET shows them, without participants, and
		// the anonymous one without its host.
		get := s.getRoom(t, host.token, r1.ID)
		get.Participants = nil
		if diff := cmp.Diff(get, l.Rooms[4]); diff != "" {
			t.Errorf("list item differs from GET (-get +list):\n%s", diff)
		}
		if l.Rooms[1].Host != nil {
			t.Errorf("anonymous room listed with host %+v", l.Rooms[1].Host)
		}
		if !l.Rooms[3].Completed || l.Rooms[3].MatchID == nil {
			t.Errorf("completed room listed as %+v", l.Rooms[3])
		}

		for _, tt := range []struct {
			query string
			want  []roomBody
		}{
			{"?category=MEAL", []roomBody{r4, r1}},
			{"?category=STUDY", []roomBody{r5, r2}},
			{"?category=RUN", []roomBody{r3}},
			{"?completed=true", []roomBody{r2}},
			{"?completed=false", []roomBody{r5, r4, r3, r1}},
			// Dates are Seoul days: 23:59 is still the 2nd, 00:00 the 3rd.
			{"?from=2026-05-02&to=2026-05-02", []roomBody{r4, r1}},
			{"?to=2026-05-02", []roomBody{r4, r1}},
			{"?from=2026-05-03", []roomBody{r5, r3, r2}},
			{"?from=2026-05-03&to=2026-05-03", []roomBody{r5, r2}},
			{"?from=2026-05-05", nil},
			{"?place=GAEPO", []roomBody{r2, r1}},
			{"?place=SEOCHO", []roomBody{r2}},
			{"?place=OUT_OF_CLUSTER", []roomBody{r4}},
			{"?category=MEAL&place=GAEPO&completed=false&from=2026-05-01&to=2026-05-09", []roomBody{r1}},
			{"?limit=100", []roomBody{r5, r4, r3, r2, r1}},
		} {
			l, _ := s.listRooms(t, host.token, tt.query)
			if diff := cmp.Diff(roomIDs(tt.want), roomIDs(l.Rooms)); diff != "" || l.NextCursor != nil {
				t.Errorf("%s (-want +got):\n%s next %v", tt.query, diff, l.NextCursor)
			}
		}

		t.Run("paging", func(t *testing.T) {
			var got []string
			query := "?limit=2"
			for page := 0; ; page++ {
				l, _ := s.listRooms(t, host.token, query)
				got = append(got, roomIDs(l.Rooms)...)
				if l.NextCursor == nil {
					break
				}
				if page > 3 {
					t.Fatal("paging does not end")
				}
				query = "?limit=2&cursor=" + *l.NextCursor
			}
			if diff := cmp.Diff([]string{r5.ID, r4.ID, r3.ID, r2.ID, r1.ID}, got); diff != "" {
				t.Errorf("pages (-want +got):\n%s", diff)
			}
			// Filters hold across pages.
			l, _ := s.listRooms(t, host.token, "?limit=1&category=STUDY")
			if len(l.Rooms) != 1 || l.Rooms[0].ID != r5.ID || l.NextCursor == nil {
				t.Fatalf("STUDY page 1 = %v", roomIDs(l.Rooms))
			}
			l, _ = s.listRooms(t, host.token, "?limit=1&category=STUDY&cursor="+*l.NextCursor)
			if len(l.Rooms) != 1 || l.Rooms[0].ID != r2.ID || l.NextCursor != nil {
				t.Errorf("STUDY page 2 = %v, next %v", roomIDs(l.Rooms), l.NextCursor)
			}
		})

		for _, tt := range []struct {
			query, token string
			wantStatus   int
			wantCode     string
			wantField    string
		}{
			{"?category=PARTY", host.token, 400, "invalid", "category"},
			{"?category=meal", host.token, 400, "invalid", "category"},
			{"?completed=yes", host.token, 400, "invalid", "completed"},
			{"?completed=1", host.token, 400, "invalid", "completed"},
			{"?from=2026-5-2", host.token, 400, "invalid", "from"},
			{"?to=tomorrow", host.token, 400, "invalid", "to"},
			{"?from=2026-05-03&to=2026-05-02", host.token, 400, "invalid", "to"},
			{"?place=BUNDANG", host.token, 400, "invalid", "place"},
			{"?place=GAEPO,SEOCHO", host.token, 400, "invalid", "place"},
			{"?limit=0", host.token, 400, "invalid", "limit"},
			{"?limit=101", host.token, 400, "invalid", "limit"},
			{"?limit=x", host.token, 400, "invalid", "limit"},
			{"?cursor=nosuchroom", host.token, 400, "invalid", "cursor"},
			// A cancelled room is no place to continue from.
			{"?cursor=" + gone.ID, host.token, 400, "invalid", "cursor"},
			{"", "", 401, "unauthorized", ""},
		} {
			resp, body := s.do(t, request{method: http.MethodGet, path: "/v1/rooms" + tt.query, token: tt.token})
			checkError(t, resp, body, tt.wantStatus, tt.wantCode, tt.wantField)
		}
	})
}

func TestRoomListCache(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		e := newEnv(t, bdb)
		const ttl = 700 * time.Millisecond
		s, _ := newRoomServer(t, e, ttl, nil)
		host := s.randomMember(t, "host")
		first := s.createRoom(t, host.token, roomJSON(t, nil))

		l1, c1 := s.listRooms(t, host.token, "")
		// The default limit spelled out is the same query.
		l2, c2 := s.listRooms(t, host.token, "?limit=20")
		if c1 != "miss" || c2 != "hit" {
			t.Fatalf("X-Cache %q then %q, want miss then hit", c1, c2)
		}
		if diff := cmp.Diff(l1, l2); diff != "" {
			t.Errorf("cached answer differs (-first +second):\n%s", diff)
		}
		if _, c := s.listRooms(t, host.token, "?limit=1"); c != "miss" {
			t.Errorf("another query: X-Cache %q, want miss", c)
		}

		// Writes go around the cache: the new room shows once the entry
		// expires.
		second := s.createRoom(t, host.token, roomJSON(t, map[string]any{"title": "Dinner"}))
		deadline := time.Now().Add(5 * time.Second)
		sawHit := false
		for {
			l, c := s.listRooms(t, host.token, "")
			ids := roomIDs(l.Rooms)
			if c == "hit" {
				sawHit = true
				if !slices.Equal(ids, []string{first.ID}) {
					t.Fatalf("a hit answered %v, want the cached page", ids)
				}
			} else {
				if !slices.Equal(ids, []string{second.ID, first.ID}) {
					t.Fatalf("a miss answered %v, want both rooms", ids)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the cached page outlived its TTL")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !sawHit {
			t.Log("the entry expired before the first read after the write (slow machine)")
		}

		t.Run("ttl 0", func(t *testing.T) {
			s, _ := newRoomServer(t, e, 0, nil)
			for range 2 {
				if _, c := s.listRooms(t, host.token, ""); c != "miss" {
					t.Errorf("X-Cache %q, want miss", c)
				}
			}
			third := s.createRoom(t, host.token, roomJSON(t, nil))
			if l, _ := s.listRooms(t, host.token, ""); len(l.Rooms) != 3 || l.Rooms[0].ID != third.ID {
				t.Errorf("without a cache the new room is not listed at once: %v", roomIDs(l.Rooms))
			}
		})

		t.Run("redis down", func(t *testing.T) {
			broken := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
			t.Cleanup(func() { _ = broken.Close() })
			s, _ := newRoomServer(t, e, time.Minute, func(d *httpapi.Deps) { d.Redis = broken })
			for range 2 {
				l, c := s.listRooms(t, host.token, "")
				if c != "miss" || len(l.Rooms) != 3 {
					t.Errorf("X-Cache %q, %d rooms; want a miss answered from the database", c, len(l.Rooms))
				}
			}
			if !strings.Contains(s.logs.String(), "room list cache unavailable") {
				t.Errorf("no warning logged:\n%s", s.logs.String())
			}
		})
	})
}

func TestRoomUpdate(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, clock := newRoomServer(t, newEnv(t, bdb), 0, nil)
		host, guest, other := s.randomMember(t, "host"), s.randomMember(t, "guest"), s.randomMember(t, "other")
		r := s.createRoom(t, host.token, roomJSON(t, map[string]any{"capacity": 3}))
		if got := s.join(t, bdb, clock, guest.token, r.ID); got != "JOINED" {
			t.Fatalf("guest's join: %s", got)
		}
		path := "/v1/rooms/" + r.ID

		t.Run("rejects", func(t *testing.T) {
			before, beforeRows := storedRoom(t, bdb, r.ID), countRoomRows(t, bdb)
			for _, tt := range []struct {
				name, token, path, body string
				wantStatus              int
				wantCode, wantField     string
			}{
				{"another member", other.token, path, `{"title":"Mine now"}`, 403, "forbidden", ""},
				{"a participant", guest.token, path, `{"title":"Mine now"}`, 403, "forbidden", ""},
				{"empty object", host.token, path, `{}`, 400, "invalid", ""},
				{"only nulls", host.token, path, `{"title":null}`, 400, "invalid", ""},
				{"empty body", host.token, path, ``, 400, "invalid", ""},
				{"capacity below count", host.token, path, `{"capacity":1}`, 409, "capacity_below_count", "capacity"},
				{"capacity 21", host.token, path, `{"capacity":21}`, 400, "invalid", "capacity"},
				{"date alone", host.token, path, `{"date":"2026-05-03"}`, 400, "invalid", "start_time"},
				{"start time alone", host.token, path, `{"start_time":"13:00"}`, 400, "invalid", "date"},
				{"date in the past", host.token, path, `{"date":"2026-04-30","start_time":"13:00"}`, 400, "invalid", "date"},
				{"malformed time", host.token, path, `{"date":"2026-05-03","start_time":"1pm"}`, 400, "invalid", "start_time"},
				{"list for another category", host.token, path, `{"study_types":["INNER_CIRCLE"]}`, 400, "invalid", "study_types"},
				{"unknown way", host.token, path, `{"ways_of_eating":["PICNIC"]}`, 400, "invalid", "ways_of_eating"},
				{"category is fixed", host.token, path, `{"category":"STUDY"}`, 400, "invalid", "category"},
				{"empty title", host.token, path, `{"title":""}`, 400, "invalid", "title"},
				{"title of 256", host.token, path, `{"title":"` + strings.Repeat("a", 256) + `"}`, 400, "invalid", "title"},
				{"unknown room", host.token, "/v1/rooms/nosuchroom", `{"title":"x"}`, 404, "not_found", ""},
				{"no token", "", path, `{"title":"x"}`, 401, "unauthorized", ""},
			} {
				t.Run(tt.name, func(t *testing.T) {
					resp, body := s.do(t, request{method: http.MethodPatch, path: tt.path, token: tt.token, body: tt.body})
					checkError(t, resp, body, tt.wantStatus, tt.wantCode, tt.wantField)
					if after := storedRoom(t, bdb, r.ID); after.Version != before.Version || after.Title != before.Title || after.Capacity != before.Capacity {
						t.Errorf("room changed: version %d → %d", before.Version, after.Version)
					}
					if c := countRoomRows(t, bdb); c != beforeRows {
						t.Errorf("rows %+v, want %+v", c, beforeRows)
					}
				})
			}
		})

		before := storedRoom(t, bdb, r.ID)
		clock.Advance(time.Minute)
		resp, b := s.do(t, request{method: http.MethodPatch, path: path, token: host.token,
			body: `{"title":" Late lunch ","date":"2026-05-03","start_time":"13:15","capacity":5,"places":["SEOCHO"],"ways_of_eating":[],"place":"Seocho 3F","body":""}`})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PATCH: status = %d (body %s)", resp.StatusCode, b)
		}
		got := decodeRoom(t, b, false)
		want := r
		want.Title, want.Date, want.StartTime, want.StartsAt = "Late lunch", "2026-05-03", "13:15", "2026-05-03T04:15:00Z"
		want.Capacity, want.Place, want.Body, want.ParticipantCount = 5, "Seocho 3F", "", 2
		// Each list given replaces its dimension; times of eating stay.
		want.Conditions = roomConditionsBody{Places: []string{"SEOCHO"}, TimesOfEating: []string{"LUNCH"}, WaysOfEating: []string{}, StudyTypes: []string{}}
		want.UpdatedAt = "2026-05-01T03:01:00Z"
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("patched room (-want +got):\n%s", diff)
		}
		after := storedRoom(t, bdb, r.ID)
		if after.Version != before.Version+1 {
			t.Errorf("version %d → %d, want one bump", before.Version, after.Version)
		}
		get := s.getRoom(t, host.token, r.ID)
		get.Participants = nil
		if diff := cmp.Diff(got, get); diff != "" {
			t.Errorf("GET after PATCH (-patch +get):\n%s", diff)
		}

		// The guest hears of it; the host, who made the change, does not.
		ns := s.notificationsOf(t, guest.token, "ROOM_UPDATED")
		if len(ns) != 1 {
			t.Fatalf("guest has %d ROOM_UPDATED notifications, want 1", len(ns))
		}
		wantArgs := map[string]any{"room_id": r.ID, "title": "Late lunch", "category": "MEAL", "place": "Seocho 3F",
			"starts_at": "2026-05-03T04:15:00Z", "link": "/rooms/" + r.ID}
		if diff := cmp.Diff(wantArgs, ns[0].Args); diff != "" {
			t.Errorf("ROOM_UPDATED args (-want +got):\n%s", diff)
		}
		if ns := s.notificationsOf(t, host.token, "ROOM_UPDATED"); len(ns) != 0 {
			t.Errorf("host has %d ROOM_UPDATED notifications", len(ns))
		}

		t.Run("started room", func(t *testing.T) {
			clock.Set(time.Date(2026, 5, 3, 4, 15, 0, 0, time.UTC))
			t.Cleanup(func() { clock.Set(roomsStart) })
			resp, body := s.do(t, request{method: http.MethodPatch, path: path, token: host.token, body: `{"title":"Too late"}`})
			checkError(t, resp, body, http.StatusConflict, "room_closed", "")
		})
		t.Run("cancelled room", func(t *testing.T) {
			gone := s.createRoom(t, host.token, roomJSON(t, nil))
			if resp, b := s.do(t, request{method: http.MethodDelete, path: "/v1/rooms/" + gone.ID, token: host.token}); resp.StatusCode != http.StatusNoContent {
				t.Fatalf("DELETE: status = %d (body %s)", resp.StatusCode, b)
			}
			resp, body := s.do(t, request{method: http.MethodPatch, path: "/v1/rooms/" + gone.ID, token: host.token, body: `{"title":"Back"}`})
			checkError(t, resp, body, http.StatusNotFound, "not_found", "")
		})
	})
}

func TestRoomDelete(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, clock := newRoomServer(t, newEnv(t, bdb), 0, nil)
		host, guest, other := s.randomMember(t, "host"), s.randomMember(t, "guest"), s.randomMember(t, "other")
		r := s.createRoom(t, host.token, roomJSON(t, nil))
		if got := s.join(t, bdb, clock, guest.token, r.ID); got != "JOINED" {
			t.Fatalf("guest's join: %s", got)
		}
		path := "/v1/rooms/" + r.ID
		before, beforeRows := storedRoom(t, bdb, r.ID), countRoomRows(t, bdb)
		for _, m := range []randomMember{other, guest} {
			resp, body := s.do(t, request{method: http.MethodDelete, path: path, token: m.token})
			checkError(t, resp, body, http.StatusForbidden, "forbidden", "")
		}
		resp, body := s.do(t, request{method: http.MethodDelete, path: path})
		checkError(t, resp, body, http.StatusUnauthorized, "unauthorized", "")
		if after := storedRoom(t, bdb, r.ID); after.Deleted() || after.Version != before.Version {
			t.Errorf("refused deletes changed the room: %+v", after)
		}
		if c := countRoomRows(t, bdb); c != beforeRows {
			t.Errorf("rows %+v, want %+v", c, beforeRows)
		}

		resp, body = s.do(t, request{method: http.MethodDelete, path: path, token: host.token})
		if resp.StatusCode != http.StatusNoContent || len(body) != 0 {
			t.Fatalf("DELETE: status = %d, body %q; want 204 and no body", resp.StatusCode, body)
		}
		if !storedRoom(t, bdb, r.ID).Deleted() {
			t.Error("room not marked cancelled")
		}
		for _, req := range []request{
			{method: http.MethodGet, path: path, token: guest.token},
			{method: http.MethodDelete, path: path, token: host.token},
			{method: http.MethodPost, path: path + "/participations", token: other.token},
			{method: http.MethodPost, path: path + "/complete", token: host.token},
		} {
			resp, body := s.do(t, req)
			checkError(t, resp, body, http.StatusNotFound, "not_found", "")
		}
		if l, _ := s.listRooms(t, host.token, ""); len(l.Rooms) != 0 {
			t.Errorf("cancelled room listed: %v", roomIDs(l.Rooms))
		}
		ns := s.notificationsOf(t, guest.token, "ROOM_CANCELLED")
		if len(ns) != 1 || ns[0].Args["room_id"] != r.ID || ns[0].Args["title"] != "Lunch" {
			t.Errorf("guest's ROOM_CANCELLED notifications: %+v", ns)
		}
		if ns := s.notificationsOf(t, host.token, "ROOM_CANCELLED"); len(ns) != 0 {
			t.Errorf("host notified of their own cancel: %+v", ns)
		}

		t.Run("completed room", func(t *testing.T) {
			done := s.createRoom(t, host.token, roomJSON(t, nil))
			if resp, b := s.do(t, request{method: http.MethodPost, path: "/v1/rooms/" + done.ID + "/complete", token: host.token}); resp.StatusCode != http.StatusOK {
				t.Fatalf("complete: status = %d (body %s)", resp.StatusCode, b)
			}
			resp, body := s.do(t, request{method: http.MethodDelete, path: "/v1/rooms/" + done.ID, token: host.token})
			checkError(t, resp, body, http.StatusConflict, "room_closed", "")
			if storedRoom(t, bdb, done.ID).Deleted() {
				t.Error("completed room cancelled")
			}
		})
	})
}

func TestRoomParticipations(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, clock := newRoomServer(t, newEnv(t, bdb), 0, nil)
		host, mina, jun, hana := s.randomMember(t, "host"), s.randomMember(t, "mina"), s.randomMember(t, "jun"), s.randomMember(t, "hana")
		r := s.createRoom(t, host.token, roomJSON(t, map[string]any{"capacity": 2}))
		path := "/v1/rooms/" + r.ID + "/participations"
		mine := path + "/mine"

		refuse := func(t *testing.T, req request, wantStatus int, wantCode string) {
			t.Helper()
			before := countRoomRows(t, bdb)
			resp, body := s.do(t, req)
			checkError(t, resp, body, wantStatus, wantCode, "")
			if after := countRoomRows(t, bdb); after != before {
				t.Errorf("rows %+v → %+v, want nothing stored", before, after)
			}
		}

		join := s.participate(t, mina.token, r.ID, false)
		if join.CreatedAt != "2026-05-01T03:00:00Z" {
			t.Errorf("created_at %s", join.CreatedAt)
		}
		if keys := participationTasks(t, bdb); len(keys) != 1 {
			t.Fatalf("outbox holds %d participation tasks, want 1", len(keys))
		}
		if got := s.participation(t, mina.token, join.ID); got != join {
			t.Errorf("GET participation %+v, want %+v", got, join)
		}
		// One pending request per member and room, whichever its kind.
		refuse(t, request{method: http.MethodPost, path: path, token: mina.token}, 409, "request_pending")
		refuse(t, request{method: http.MethodDelete, path: mine, token: mina.token}, 409, "not_participating")

		if got := decide(t, bdb, clock, join.ID); got != "JOINED" {
			t.Fatalf("decided %s, want JOINED", got)
		}
		p := s.participation(t, mina.token, join.ID)
		if p.Status != "JOINED" || p.DecidedAt == nil || *p.DecidedAt != "2026-05-01T03:00:00Z" {
			t.Errorf("after the decision: %+v", p)
		}
		room := s.getRoom(t, mina.token, r.ID)
		wantIn := []roomParticipantBody{
			{ID: &host.ID, Nickname: ptr("host"), Host: true},
			{ID: &mina.ID, Nickname: ptr("mina"), Me: true},
		}
		if diff := cmp.Diff(wantIn, room.Participants); diff != "" || room.ParticipantCount != 2 {
			t.Errorf("participants (-want +got):\n%s count %d", diff, room.ParticipantCount)
		}
		refuse(t, request{method: http.MethodPost, path: path, token: mina.token}, 409, "already_joined")
		refuse(t, request{method: http.MethodPost, path: path, token: host.token}, 409, "already_joined")

		// Someone else's request does not exist for jun.
		refuse(t, request{method: http.MethodGet, path: "/v1/participations/" + join.ID, token: jun.token}, 404, "not_found")
		refuse(t, request{method: http.MethodGet, path: "/v1/participations/nosuchrequest", token: jun.token}, 404, "not_found")

		// A full room still takes the request; the worker turns it down.
		full := s.participate(t, jun.token, r.ID, false)
		if got := decide(t, bdb, clock, full.ID); got != "REJECTED_FULL" {
			t.Errorf("join of a full room decided %s, want REJECTED_FULL", got)
		}
		if p := s.participation(t, jun.token, full.ID); p.Status != "REJECTED_FULL" {
			t.Errorf("jun's request %+v", p)
		}

		refuse(t, request{method: http.MethodDelete, path: mine, token: jun.token}, 409, "not_participating")
		refuse(t, request{method: http.MethodDelete, path: mine, token: host.token}, 409, "host_cannot_leave")
		refuse(t, request{method: http.MethodPost, path: "/v1/rooms/nosuchroom/participations", token: jun.token}, 404, "not_found")
		refuse(t, request{method: http.MethodDelete, path: "/v1/rooms/nosuchroom/participations/mine", token: jun.token}, 404, "not_found")
		refuse(t, request{method: http.MethodPost, path: path}, 401, "unauthorized")

		leave := s.participate(t, mina.token, r.ID, true)
		if got := decide(t, bdb, clock, leave.ID); got != "LEFT" {
			t.Errorf("leave decided %s, want LEFT", got)
		}
		if room := s.getRoom(t, host.token, r.ID); room.ParticipantCount != 1 || len(room.Participants) != 1 {
			t.Errorf("after the leave: %d participants, %+v", room.ParticipantCount, room.Participants)
		}
		// The seat is free again.
		if got := s.join(t, bdb, clock, jun.token, r.ID); got != "JOINED" {
			t.Errorf("jun's second join: %s", got)
		}
		if keys := participationTasks(t, bdb); len(keys) != 4 {
			t.Errorf("outbox holds %d participation tasks, want 4", len(keys))
		}

		// Once the room has started nobody joins or leaves.
		clock.Set(time.Date(2026, 5, 2, 3, 30, 0, 0, time.UTC))
		refuse(t, request{method: http.MethodPost, path: path, token: hana.token}, 409, "room_closed")
		refuse(t, request{method: http.MethodDelete, path: mine, token: jun.token}, 409, "room_closed")
	})
}

func TestRoomComplete(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, clock := newRoomServer(t, newEnv(t, bdb), 0, nil)
		host, mina, other := s.randomMember(t, "host"), s.randomMember(t, "mina"), s.randomMember(t, "other")
		r := s.createRoom(t, host.token, roomJSON(t, nil))
		if got := s.join(t, bdb, clock, mina.token, r.ID); got != "JOINED" {
			t.Fatalf("mina's join: %s", got)
		}
		path := "/v1/rooms/" + r.ID + "/complete"

		before, beforeRows := storedRoom(t, bdb, r.ID), countRoomRows(t, bdb)
		for _, m := range []randomMember{other, mina} {
			resp, body := s.do(t, request{method: http.MethodPost, path: path, token: m.token})
			checkError(t, resp, body, http.StatusForbidden, "forbidden", "")
		}
		resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/rooms/nosuchroom/complete", token: host.token})
		checkError(t, resp, body, http.StatusNotFound, "not_found", "")
		if after := storedRoom(t, bdb, r.ID); after.Completed() || after.Version != before.Version {
			t.Errorf("refused completes changed the room: %+v", after)
		}
		if c := countRoomRows(t, bdb); c != beforeRows {
			t.Errorf("rows %+v, want %+v", c, beforeRows)
		}

		clock.Advance(time.Minute)
		resp, body = s.do(t, request{method: http.MethodPost, path: path, token: host.token})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("complete: status = %d (body %s)", resp.StatusCode, body)
		}
		var m matchBody
		decodeStrict(t, body, &m)
		want := matchBody{ID: m.ID, Category: "MEAL", Method: "ROOM", RoomID: &r.ID, CreatedAt: "2026-05-01T03:01:00Z",
			Members: []matchMemberBody{{ID: host.ID, Nickname: "host", Me: true}, {ID: mina.ID, Nickname: "mina"}}}
		if diff := cmp.Diff(want, m); diff != "" {
			t.Errorf("match (-want +got):\n%s", diff)
		}
		if got := jsonKeys(t, body); !slices.Equal(got, []string{"category", "conditions", "created_at", "id", "members", "method", "room_id"}) {
			t.Errorf("match keys = %v", got)
		}
		room := s.getRoom(t, mina.token, r.ID)
		if !room.Completed || room.MatchID == nil || *room.MatchID != m.ID {
			t.Errorf("completed room: completed %v, match %v", room.Completed, room.MatchID)
		}
		// Both members have it in their history.
		for _, who := range []randomMember{host, mina} {
			l := s.matchList(t, who.token, "?method=ROOM")
			if len(l.Matches) != 1 || l.Matches[0].ID != m.ID || l.Matches[0].RoomID == nil || *l.Matches[0].RoomID != r.ID {
				t.Errorf("%s's room matches: %+v", who.Nickname, l.Matches)
			}
		}
		var got matchBody
		s.getOK(t, "/v1/matches/"+m.ID, mina.token, &got)
		if got.RoomID == nil || *got.RoomID != r.ID {
			t.Errorf("GET /v1/matches/%s room_id = %v, want %s", m.ID, got.RoomID, r.ID)
		}

		// Everyone in the room hears of it, as one group.
		for _, who := range []randomMember{host, mina} {
			ns := s.notificationsOf(t, who.token, "MATCH_CONFIRMED")
			if len(ns) != 1 {
				t.Fatalf("%s has %d MATCH_CONFIRMED notifications, want 1", who.Nickname, len(ns))
			}
			wantArgs := map[string]any{"match_id": m.ID, "room_id": r.ID, "category": "MEAL", "title": "Lunch",
				"place": "Gaepo lobby", "starts_at": "2026-05-02T03:30:00Z", "members": []any{"host", "mina"}, "link": "/matches/" + m.ID}
			if diff := cmp.Diff(wantArgs, ns[0].Args); diff != "" {
				t.Errorf("%s's args (-want +got):\n%s", who.Nickname, diff)
			}
		}
		var fanouts []db.OutboxRow
		if err := bdb.NewSelect().Model(&fanouts).Where("type = ?", jobs.TypeNotifyFanout).Scan(context.Background()); err != nil {
			t.Fatal(err)
		}
		groups := 0
		for _, f := range fanouts {
			var p jobs.NotifyFanoutPayload
			if err := json.Unmarshal(f.Payload, &p); err != nil {
				t.Fatal(err)
			}
			if p.Group {
				groups++
				if len(p.NotificationIDs) != 2 {
					t.Errorf("group fan-out of %d notifications, want 2", len(p.NotificationIDs))
				}
			}
		}
		if groups != 1 {
			t.Errorf("%d group fan-out tasks, want 1", groups)
		}

		// A completed room is closed to everything.
		after := countRoomRows(t, bdb)
		for _, tt := range []struct {
			req  request
			code string
		}{
			{request{method: http.MethodPost, path: path, token: host.token}, "room_closed"},
			{request{method: http.MethodPost, path: "/v1/rooms/" + r.ID + "/participations", token: other.token}, "room_closed"},
			{request{method: http.MethodDelete, path: "/v1/rooms/" + r.ID + "/participations/mine", token: mina.token}, "room_closed"},
			{request{method: http.MethodPatch, path: "/v1/rooms/" + r.ID, token: host.token, body: `{"title":"Again"}`}, "room_closed"},
			{request{method: http.MethodDelete, path: "/v1/rooms/" + r.ID, token: host.token}, "room_closed"},
		} {
			resp, body := s.do(t, tt.req)
			checkError(t, resp, body, http.StatusConflict, tt.code, "")
		}
		if c := countRoomRows(t, bdb); c != after {
			t.Errorf("rows %+v, want %+v", c, after)
		}

		t.Run("admin", func(t *testing.T) {
			r2 := s.createRoom(t, host.token, plainRoom(t, "STUDY", "2026-05-02", "10:00", nil))
			boss := s.signup(t, "boss@example.com", "boss")
			if _, err := bdb.NewUpdate().Table("members").Set("role = 2").Where("public_id = ?", boss.ID).Exec(t.Context()); err != nil {
				t.Fatal(err)
			}
			tok := s.login(t, "boss@example.com").AccessToken
			resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/rooms/" + r2.ID + "/complete", token: tok})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("admin complete: status = %d (body %s)", resp.StatusCode, body)
			}
			var m matchBody
			decodeStrict(t, body, &m)
			if m.Method != "ROOM" || m.RoomID == nil || *m.RoomID != r2.ID || len(m.Members) != 1 || m.Members[0].ID != host.ID || m.Members[0].Me {
				t.Errorf("admin's answer %+v", m)
			}
		})
	})
}

// TestRoomUpdateConcurrent sends the host's changes at once: each is
// version-checked and retried, so none is lost and every one that is
// answered 200 bumped the version and notified the guest once.
func TestRoomUpdateConcurrent(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, clock := newRoomServer(t, newEnv(t, bdb), 0, nil)
		host, guest := s.randomMember(t, "host"), s.randomMember(t, "guest")
		r := s.createRoom(t, host.token, roomJSON(t, nil))
		if got := s.join(t, bdb, clock, guest.token, r.ID); got != "JOINED" {
			t.Fatalf("guest's join: %s", got)
		}
		before := storedRoom(t, bdb, r.ID).Version
		const n = 6
		statuses := make([]int, n)
		bodies := make([][]byte, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				resp, b := s.do(t, request{method: http.MethodPatch, path: "/v1/rooms/" + r.ID, token: host.token,
					body: `{"capacity":` + strconv.Itoa(5+i) + `}`})
				statuses[i], bodies[i] = resp.StatusCode, b
			})
		}
		wg.Wait()
		ok := 0
		for i, st := range statuses {
			switch st {
			case http.StatusOK:
				ok++
			case http.StatusConflict:
				var e apiError
				decodeStrict(t, bodies[i], &e)
				if e.Error.Code != "conflict" {
					t.Errorf("409 with code %q", e.Error.Code)
				}
			default:
				t.Errorf("status = %d, want 200 or 409 (body %s)", st, bodies[i])
			}
		}
		if ok == 0 {
			t.Fatal("no change went through")
		}
		if v := storedRoom(t, bdb, r.ID).Version; v != before+int64(ok) {
			t.Errorf("version %d → %d after %d changes", before, v, ok)
		}
		if ns := s.notificationsOf(t, guest.token, "ROOM_UPDATED"); len(ns) != ok {
			t.Errorf("guest has %d ROOM_UPDATED notifications, want %d", len(ns), ok)
		}
	})
}
