package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/db/missiondb"
	"github.com/moim/moim/domain"
)

// missionsStart is when the mission tests begin: 12:00 in Seoul.
var missionsStart = time.Date(2026, 6, 1, 3, 0, 0, 0, time.UTC)

// missionStartsAt is the tests' mission start: two days on, 09:00 in Seoul.
const missionStartsAt = "2026-06-03T00:00:00Z"

type missionWindowWire struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

type missionMemberWire struct {
	ID       string  `json:"id"`
	Nickname string  `json:"nickname"`
	Host     bool    `json:"host"`
	Status   string  `json:"status"`
	Stake    int64   `json:"stake"`
	JoinedAt string  `json:"joined_at"`
	LeftAt   *string `json:"left_at"`
}

// missionWire is a mission on the wire; Members and Me only in the detail.
type missionWire struct {
	ID          string              `json:"id"`
	Code        *string             `json:"code"`
	Title       string              `json:"title"`
	Type        string              `json:"type"`
	Description string              `json:"description"`
	Stake       int64               `json:"stake"`
	Capacity    int                 `json:"capacity"`
	MemberCount int                 `json:"member_count"`
	SeatsLeft   int                 `json:"seats_left"`
	Private     bool                `json:"private"`
	Status      string              `json:"status"`
	StartsAt    *string             `json:"starts_at"`
	EndsAt      *string             `json:"ends_at"`
	Weeks       *int                `json:"weeks"`
	DaysPerWeek *int                `json:"days_per_week"`
	PerDay      *int                `json:"per_day"`
	Required    *int                `json:"required"`
	Windows     []missionWindowWire `json:"windows"`
	Host        struct {
		ID       string `json:"id"`
		Nickname string `json:"nickname"`
	} `json:"host"`
	ClosedAt  *string             `json:"closed_at"`
	CreatedAt string              `json:"created_at"`
	UpdatedAt string              `json:"updated_at"`
	Members   []missionMemberWire `json:"members"`
	Me        *missionMemberWire  `json:"me"`
}

type missionListWire struct {
	Missions   []missionWire `json:"missions"`
	NextCursor *string       `json:"next_cursor"`
}

type missionJoinWire struct {
	Mission    missionWire       `json:"mission"`
	Membership missionMemberWire `json:"membership"`
	Balance    int64             `json:"balance"`
}

// newMissionServer starts the API on a clock at missionsStart.
func newMissionServer(t testing.TB, bdb *bun.DB) (*testServer, *roomClock) {
	t.Helper()
	clock := &roomClock{now: missionsStart}
	s := newServer(t, newEnv(t, bdb), func(d *httpapi.Deps) {
		d.NowFunc = clock.Now
		d.MissionMaxAhead = 30 * 24 * time.Hour
	}, nil)
	return s, clock
}

// pointMember signs up a member and gives them points (an ADJUSTMENT).
func (s *testServer) pointMember(t testing.TB, bdb *bun.DB, nickname string, points int64) randomMember {
	t.Helper()
	m := s.randomMember(t, nickname)
	if points > 0 {
		_, err := (missiondb.Points{}).Post(context.Background(), bdb, missiondb.PointPost{MemberKey: memberRowKey(t, bdb, m.ID),
			Amount: points, Kind: domain.PointAdjustment, Key: "test-grant:" + m.ID, Reason: "test", Now: missionsStart})
		if err != nil {
			t.Fatalf("grant %s: %v", nickname, err)
		}
	}
	return m
}

func memberRowKey(t testing.TB, bdb bun.IDB, id string) int64 {
	t.Helper()
	var key int64
	if err := bdb.NewSelect().Table("members").Column("id").Where("public_id = ?", id).Scan(context.Background(), &key); err != nil {
		t.Fatalf("member key %s: %v", id, err)
	}
	return key
}

func pointBalance(t testing.TB, bdb *bun.DB, id string) int64 {
	t.Helper()
	b, err := (missiondb.Points{}).Balance(context.Background(), bdb, memberRowKey(t, bdb, id))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// missionCounts is what a refused request must leave as it was.
type missionCounts struct{ missions, members, windows, entries int }

func countMissionRows(t testing.TB, bdb *bun.DB) missionCounts {
	t.Helper()
	var c missionCounts
	for _, x := range []struct {
		table string
		dst   *int
	}{{"missions", &c.missions}, {"mission_members", &c.members}, {"mission_windows", &c.windows}, {"point_entries", &c.entries}} {
		n, err := bdb.NewSelect().Table(x.table).Count(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		*x.dst = int(n)
	}
	return c
}

// checkLedgerAPI fails unless every balance equals the sum of its entries.
func checkLedgerAPI(t testing.TB, bdb *bun.DB) {
	t.Helper()
	var rows []struct {
		MemberID int64 `bun:"member_id"`
		Balance  int64 `bun:"balance"`
		Total    int64 `bun:"total"`
	}
	err := bdb.NewSelect().TableExpr("point_balances AS pb").ColumnExpr("pb.member_id, pb.balance").
		ColumnExpr("(SELECT COALESCE(SUM(pe.amount), 0) FROM point_entries AS pe WHERE pe.member_id = pb.member_id) AS total").
		Scan(context.Background(), &rows)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Balance != r.Total || r.Balance < 0 {
			t.Errorf("member %d: balance %d, entries %d", r.MemberID, r.Balance, r.Total)
		}
	}
}

// missionJSON is a valid, complete mission body with overrides; a nil
// value drops the field.
func missionJSON(t testing.TB, overrides map[string]any) string {
	t.Helper()
	m := map[string]any{
		"title": "매일 만보 걷기", "type": "EXERCISE", "description": "하루 만 보씩 걸어요",
		"stake": 1000, "capacity": 4, "private": false, "starts_at": missionStartsAt,
		"weeks": 2, "days_per_week": 5, "per_day": 1,
		"windows": []map[string]string{{"start": "06:00", "end": "09:00"}, {"start": "21:00", "end": "24:00"}},
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

func (s *testServer) createMission(t testing.TB, token, body string) missionWire {
	t.Helper()
	resp, b := s.do(t, request{method: http.MethodPost, path: "/v1/missions", token: token, body: body})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/missions: status = %d, want 201 (body %s)", resp.StatusCode, b)
	}
	var m missionWire
	decodeStrict(t, b, &m)
	if loc := resp.Header.Get("Location"); loc != "/v1/missions/"+m.ID {
		t.Errorf("Location = %q", loc)
	}
	parseWireTime(t, "created_at", m.CreatedAt)
	return m
}

func (s *testServer) getMission(t testing.TB, token, id string) missionWire {
	t.Helper()
	var m missionWire
	s.getOK(t, "/v1/missions/"+id, token, &m)
	return m
}

func (s *testServer) listMissions(t testing.TB, token, path string) missionListWire {
	t.Helper()
	var l missionListWire
	s.getOK(t, path, token, &l)
	return l
}

func (s *testServer) joinMission(t testing.TB, token, id, body string) missionJoinWire {
	t.Helper()
	resp, b := s.do(t, request{method: http.MethodPost, path: "/v1/missions/" + id + "/members", token: token, body: body})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("join %s: status = %d, want 201 (body %s)", id, resp.StatusCode, b)
	}
	var j missionJoinWire
	decodeStrict(t, b, &j)
	return j
}

// errorCodeOf is the code of an error answer.
func errorCodeOf(t testing.TB, body []byte) string {
	t.Helper()
	var e apiError
	decodeStrict(t, body, &e)
	return e.Error.Code
}

func missionWireIDs(ms []missionWire) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func TestMissionCreateAndGet(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, _ := newMissionServer(t, bdb)
		host := s.pointMember(t, bdb, "host", 5000)
		other := s.pointMember(t, bdb, "other", 0)
		m := s.createMission(t, host.token, missionJSON(t, nil))
		if m.Status != "OPEN" || m.MemberCount != 1 || m.SeatsLeft != 3 || m.Code == nil || len(*m.Code) != 8 ||
			m.StartsAt == nil || *m.StartsAt != missionStartsAt || m.EndsAt == nil || *m.EndsAt != "2026-06-17T00:00:00Z" ||
			m.Required == nil || *m.Required != 10 || m.Host.ID != host.ID || m.Type != "EXERCISE" ||
			!slices.Equal(m.Windows, []missionWindowWire{{"06:00", "09:00"}, {"21:00", "24:00"}}) {
			t.Errorf("created %+v", m)
		}
		if got := pointBalance(t, bdb, host.ID); got != 4000 {
			t.Errorf("host balance %d, want 4000", got)
		}
		got := s.getMission(t, other.token, m.ID)
		if got.Code == nil || got.Me != nil || len(got.Members) != 1 || !got.Members[0].Host || got.Members[0].Stake != 1000 {
			t.Errorf("public mission to a stranger: %+v", got)
		}

		// Private: the code only to members.
		p := s.createMission(t, host.token, missionJSON(t, map[string]any{"private": true}))
		if p.Code == nil {
			t.Fatal("host does not see the code")
		}
		if got := s.getMission(t, other.token, p.ID); got.Code != nil {
			t.Errorf("stranger sees the private code %q", *got.Code)
		}
		if got := s.getMission(t, host.token, p.ID); got.Code == nil || got.Me == nil || !got.Me.Host {
			t.Errorf("host's view %+v", got)
		}

		// A draft without schedule or windows is UNACTIVATED.
		d := s.createMission(t, host.token, missionJSON(t, map[string]any{"starts_at": nil, "weeks": nil,
			"days_per_week": nil, "per_day": nil, "windows": nil}))
		if d.Status != "UNACTIVATED" || d.StartsAt != nil || d.Weeks != nil || len(d.Windows) != 0 {
			t.Errorf("draft %+v", d)
		}
		resp, b := s.do(t, request{method: http.MethodGet, path: "/v1/missions/nope", token: other.token})
		checkError(t, resp, b, http.StatusNotFound, "not_found", "")
		resp, b = s.do(t, request{method: http.MethodGet, path: "/v1/missions"})
		checkError(t, resp, b, http.StatusUnauthorized, "unauthorized", "")
	})
}

func TestMissionCreateRejects(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, _ := newMissionServer(t, bdb)
		host := s.pointMember(t, bdb, "host", 2000)
		win := func(ws ...[2]string) []map[string]string {
			out := []map[string]string{}
			for _, w := range ws {
				out = append(out, map[string]string{"start": w[0], "end": w[1]})
			}
			return out
		}
		tests := []struct {
			name      string
			overrides map[string]any
			status    int
			code      string
			field     string
		}{
			{"stake 99", map[string]any{"stake": 99}, 400, "invalid", "stake"},
			{"stake 100,001", map[string]any{"stake": 100_001}, 400, "invalid", "stake"},
			{"capacity 1", map[string]any{"capacity": 1}, 400, "invalid", "capacity"},
			{"capacity 9", map[string]any{"capacity": 9}, 400, "invalid", "capacity"},
			{"title short", map[string]any{"title": "abc"}, 400, "invalid", "title"},
			{"title long", map[string]any{"title": "0123456789012345678901234567890"}, 400, "invalid", "title"},
			{"description short", map[string]any{"description": "short"}, 400, "invalid", "description"},
			{"unknown type", map[string]any{"type": "SLEEP"}, 400, "invalid", ""},
			{"overlapping windows", map[string]any{"windows": win([2]string{"06:00", "09:00"}, [2]string{"08:00", "10:00"})}, 400, "invalid", "windows"},
			{"inverted window", map[string]any{"windows": win([2]string{"09:00", "06:00"})}, 400, "invalid", "windows"},
			{"empty window", map[string]any{"windows": win([2]string{"09:00", "09:00"})}, 400, "invalid", "windows"},
			{"no windows", map[string]any{"windows": win()}, 400, "invalid", "windows"},
			{"24:00 as a start", map[string]any{"windows": win([2]string{"24:00", "24:00"})}, 400, "invalid", "windows"},
			{"bad clock", map[string]any{"windows": win([2]string{"6:00", "09:00"})}, 400, "invalid", "windows"},
			{"start in the past", map[string]any{"starts_at": "2026-06-01T02:59:00Z"}, 400, "invalid", "starts_at"},
			{"start now", map[string]any{"starts_at": "2026-06-01T03:00:00Z"}, 400, "invalid", "starts_at"},
			{"start too far", map[string]any{"starts_at": "2026-08-01T00:00:00Z"}, 400, "invalid", "starts_at"},
			{"start not RFC 3339", map[string]any{"starts_at": "2026-06-03 00:00"}, 400, "invalid", "starts_at"},
			{"0 weeks", map[string]any{"weeks": 0}, 400, "invalid", "weeks"},
			{"13 weeks", map[string]any{"weeks": 13}, 400, "invalid", "weeks"},
			{"8 days a week", map[string]any{"days_per_week": 8}, 400, "invalid", "days_per_week"},
			{"0 a day", map[string]any{"per_day": 0}, 400, "invalid", "per_day"},
			{"schedule in part", map[string]any{"weeks": nil}, 400, "invalid", "weeks"},
			{"unknown field", map[string]any{"budget": 1}, 400, "invalid", "budget"},
			{"more than the balance", map[string]any{"stake": 2001}, 409, "insufficient_points", ""},
		}
		before := countMissionRows(t, bdb)
		for _, tc := range tests {
			resp, b := s.do(t, request{method: http.MethodPost, path: "/v1/missions", token: host.token, body: missionJSON(t, tc.overrides)})
			if resp.StatusCode != tc.status {
				t.Errorf("%s: status = %d, want %d (body %s)", tc.name, resp.StatusCode, tc.status, b)
				continue
			}
			var e apiError
			decodeStrict(t, b, &e)
			if e.Error.Code != tc.code || (tc.field != "" && (e.Error.Field == nil || *e.Error.Field != tc.field)) {
				t.Errorf("%s: error %+v, want %s on %q", tc.name, e.Error, tc.code, tc.field)
			}
		}
		if got := countMissionRows(t, bdb); got != before {
			t.Errorf("rows %+v → %+v after refused creations", before, got)
		}
		if got := pointBalance(t, bdb, host.ID); got != 2000 {
			t.Errorf("host balance %d, want 2000", got)
		}
	})
}

func TestMissionJoinRejects(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, _ := newMissionServer(t, bdb)
		host := s.pointMember(t, bdb, "host", 100_000)
		alice := s.pointMember(t, bdb, "alice", 5000)
		bob := s.pointMember(t, bdb, "bob", 5000)
		poor := s.pointMember(t, bdb, "poor", 999)
		open := s.createMission(t, host.token, missionJSON(t, nil))
		small := s.createMission(t, host.token, missionJSON(t, map[string]any{"capacity": 2}))
		private := s.createMission(t, host.token, missionJSON(t, map[string]any{"private": true}))
		draft := s.createMission(t, host.token, missionJSON(t, map[string]any{"windows": nil}))
		ongoing := s.createMission(t, host.token, missionJSON(t, nil))
		closed := s.createMission(t, host.token, missionJSON(t, nil))
		for id, st := range map[string]domain.MissionStatus{ongoing.ID: domain.MissionOngoing, closed.ID: domain.MissionClose} {
			if _, err := bdb.NewUpdate().Table("missions").Set("status = ?", int16(st)).Set("version = version + 1").
				Where("public_id = ?", id).Exec(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		s.joinMission(t, alice.token, open.ID, "")
		s.joinMission(t, alice.token, small.ID, "")

		join := func(id string) string { return "/v1/missions/" + id + "/members" }
		tests := []struct {
			name   string
			token  string
			path   string
			body   string
			status int
			code   string
		}{
			{"twice", alice.token, join(open.ID), "", 409, "already_joined"},
			{"full", bob.token, join(small.ID), "", 409, "mission_full"},
			{"ongoing", bob.token, join(ongoing.ID), "", 409, "mission_not_open"},
			{"closed", bob.token, join(closed.ID), "", 409, "mission_not_open"},
			{"unactivated", bob.token, join(draft.ID), "", 409, "mission_not_open"},
			{"too few points", poor.token, join(open.ID), "", 409, "insufficient_points"},
			{"private without code", bob.token, join(private.ID), "", 403, "wrong_code"},
			{"private wrong code", bob.token, join(private.ID), `{"code":"ZZZZZZZZ"}`, 403, "wrong_code"},
			{"by wrong code", bob.token, "/v1/missions/join", `{"code":"ZZZZZZZZ"}`, 403, "wrong_code"},
			{"by short code", bob.token, "/v1/missions/join", `{"code":"ABC"}`, 403, "wrong_code"},
			{"by no code", bob.token, "/v1/missions/join", `{}`, 403, "wrong_code"},
			{"unknown mission", bob.token, join("nope"), "", 404, "not_found"},
		}
		before := countMissionRows(t, bdb)
		balances := map[string]int64{}
		for _, m := range []randomMember{alice, bob, poor} {
			balances[m.ID] = pointBalance(t, bdb, m.ID)
		}
		for _, tc := range tests {
			resp, b := s.do(t, request{method: http.MethodPost, path: tc.path, token: tc.token, body: tc.body})
			if resp.StatusCode != tc.status {
				t.Errorf("%s: status = %d, want %d (body %s)", tc.name, resp.StatusCode, tc.status, b)
				continue
			}
			if code := errorCodeOf(t, b); code != tc.code {
				t.Errorf("%s: code %q, want %q", tc.name, code, tc.code)
			}
		}
		if got := countMissionRows(t, bdb); got != before {
			t.Errorf("rows %+v → %+v after refused joins", before, got)
		}
		for _, m := range []randomMember{alice, bob, poor} {
			if got := pointBalance(t, bdb, m.ID); got != balances[m.ID] {
				t.Errorf("%s: balance %d → %d", m.Nickname, balances[m.ID], got)
			}
		}
		checkLedgerAPI(t, bdb)
	})
}

func TestMissionMembership(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, clock := newMissionServer(t, bdb)
		host := s.pointMember(t, bdb, "host", 100_000)
		alice := s.pointMember(t, bdb, "alice", 5000)
		bob := s.pointMember(t, bdb, "bob", 5000)
		carol := s.pointMember(t, bdb, "carol", 5000)
		m := s.createMission(t, host.token, missionJSON(t, nil))
		p := s.createMission(t, host.token, missionJSON(t, map[string]any{"private": true}))

		j := s.joinMission(t, alice.token, m.ID, "")
		if j.Balance != 4000 || j.Membership.ID != alice.ID || j.Membership.Nickname != "alice" || j.Membership.Host ||
			j.Membership.Status != "ACTIVE" || j.Mission.MemberCount != 2 || j.Mission.SeatsLeft != 2 {
			t.Errorf("join answer %+v", j)
		}
		// Private: by its code, in any case.
		resp, b := s.do(t, request{method: http.MethodPost, path: "/v1/missions/join", token: bob.token,
			body: `{"code":"` + lower(*p.Code) + `"}`})
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("join by code: %d %s", resp.StatusCode, b)
		}
		s.joinMission(t, carol.token, p.ID, `{"code":"`+*p.Code+`"}`)
		if got := s.getMission(t, bob.token, p.ID); got.Code == nil || got.Me == nil || len(got.Members) != 3 {
			t.Errorf("member's view of the private mission %+v", got)
		}

		// The host may not edit once others joined.
		resp, b = s.do(t, request{method: http.MethodPut, path: "/v1/missions/" + m.ID + "/windows", token: host.token,
			body: `{"windows":[{"start":"07:00","end":"08:00"}]}`})
		checkError(t, resp, b, http.StatusConflict, "conflict", "")

		// Leave before the start: refunded.
		resp, b = s.do(t, request{method: http.MethodDelete, path: "/v1/missions/" + m.ID + "/members/mine", token: alice.token})
		if resp.StatusCode != http.StatusOK || string(b) != "{\"refund\":1000,\"balance\":5000}\n" {
			t.Errorf("leave: %d %s", resp.StatusCode, b)
		}
		resp, b = s.do(t, request{method: http.MethodDelete, path: "/v1/missions/" + m.ID + "/members/mine", token: alice.token})
		checkError(t, resp, b, http.StatusConflict, "not_participating", "")
		resp, b = s.do(t, request{method: http.MethodDelete, path: "/v1/missions/" + m.ID + "/members/mine", token: host.token})
		checkError(t, resp, b, http.StatusConflict, "host_cannot_leave", "")

		// The host removes a member: refunded; others may not.
		resp, b = s.do(t, request{method: http.MethodDelete, path: "/v1/missions/" + p.ID + "/members/" + carol.ID, token: bob.token})
		checkError(t, resp, b, http.StatusForbidden, "forbidden", "")
		resp, b = s.do(t, request{method: http.MethodDelete, path: "/v1/missions/" + p.ID + "/members/" + carol.ID, token: host.token})
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("remove: %d %s", resp.StatusCode, b)
		}
		if got := pointBalance(t, bdb, carol.ID); got != 5000 {
			t.Errorf("carol's balance %d after removal", got)
		}
		resp, b = s.do(t, request{method: http.MethodDelete, path: "/v1/missions/" + p.ID + "/members/" + host.ID, token: host.token})
		checkError(t, resp, b, http.StatusConflict, "host_cannot_leave", "")

		// Lists.
		if l := s.listMissions(t, alice.token, "/v1/missions"); !slices.Equal(missionWireIDs(l.Missions), []string{m.ID}) {
			t.Errorf("open list %v", missionWireIDs(l.Missions))
		}
		if l := s.listMissions(t, alice.token, "/v1/missions?code="+*p.Code); !slices.Equal(missionWireIDs(l.Missions), []string{p.ID}) ||
			l.Missions[0].Code == nil {
			t.Errorf("by code %+v", l)
		}
		if l := s.listMissions(t, bob.token, "/v1/missions/mine?role=joined"); !slices.Equal(missionWireIDs(l.Missions), []string{p.ID}) {
			t.Errorf("bob joined %v", missionWireIDs(l.Missions))
		}
		if l := s.listMissions(t, host.token, "/v1/missions/mine?limit=1"); len(l.Missions) != 1 || l.NextCursor == nil {
			t.Errorf("hosting page %+v", l)
		} else if l2 := s.listMissions(t, host.token, "/v1/missions/mine?limit=1&cursor="+*l.NextCursor); len(l2.Missions) != 1 ||
			l2.Missions[0].ID == l.Missions[0].ID || l2.NextCursor != nil {
			t.Errorf("second hosting page %+v", l2)
		}
		for q, field := range map[string]string{"/v1/missions?sort=old": "sort", "/v1/missions?type=SLEEP": "type",
			"/v1/missions?limit=0": "limit", "/v1/missions?cursor=nope": "cursor", "/v1/missions?sort=hot&cursor=" + m.ID: "cursor",
			"/v1/missions/mine?role=owner": "role", "/v1/missions/mine?cursor=nope": "cursor"} {
			resp, b := s.do(t, request{method: http.MethodGet, path: q, token: alice.token})
			checkError(t, resp, b, http.StatusBadRequest, "invalid", field)
		}

		// Cancel: everyone refunded, the others told.
		resp, b = s.do(t, request{method: http.MethodPost, path: "/v1/missions/" + p.ID + "/cancel", token: bob.token})
		checkError(t, resp, b, http.StatusForbidden, "forbidden", "")
		resp, b = s.do(t, request{method: http.MethodPost, path: "/v1/missions/" + p.ID + "/cancel", token: host.token})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("cancel: %d %s", resp.StatusCode, b)
		}
		if got := pointBalance(t, bdb, bob.ID); got != 5000 {
			t.Errorf("bob's balance %d after cancel", got)
		}
		ns := s.notificationsOf(t, bob.token, "MISSION_CANCELLED")
		if len(ns) != 1 || ns[0].Args["amount"] != float64(1000) || ns[0].Args["mission_id"] != p.ID {
			t.Errorf("bob's notifications %+v", ns)
		}
		if ns := s.notificationsOf(t, host.token, "MISSION_CANCELLED"); len(ns) != 0 {
			t.Errorf("host told of their own cancel: %+v", ns)
		}
		if l := s.listMissions(t, bob.token, "/v1/missions/mine?role=finished"); !slices.Equal(missionWireIDs(l.Missions), []string{p.ID}) ||
			l.Missions[0].Status != "CANCELLED" {
			t.Errorf("bob finished %+v", l)
		}
		resp, b = s.do(t, request{method: http.MethodPost, path: "/v1/missions/" + p.ID + "/cancel", token: host.token})
		checkError(t, resp, b, http.StatusConflict, "mission_not_open", "")

		// After the start: no joining, no cancelling, and leaving only once
		// the mission is ONGOING, forfeiting the stake.
		s.joinMission(t, bob.token, m.ID, "")
		clock.Set(time.Date(2026, 6, 3, 0, 0, 0, 0, time.UTC))
		resp, b = s.do(t, request{method: http.MethodPost, path: "/v1/missions/" + m.ID + "/members", token: carol.token})
		checkError(t, resp, b, http.StatusConflict, "mission_not_open", "")
		resp, b = s.do(t, request{method: http.MethodPost, path: "/v1/missions/" + m.ID + "/cancel", token: host.token})
		checkError(t, resp, b, http.StatusConflict, "mission_not_open", "")
		resp, b = s.do(t, request{method: http.MethodDelete, path: "/v1/missions/" + m.ID + "/members/mine", token: bob.token})
		checkError(t, resp, b, http.StatusConflict, "mission_not_open", "")
		if _, err := bdb.NewUpdate().Table("missions").Set("status = ?", int16(domain.MissionOngoing)).
			Set("version = version + 1").Where("public_id = ?", m.ID).Exec(context.Background()); err != nil {
			t.Fatal(err)
		}
		resp, b = s.do(t, request{method: http.MethodDelete, path: "/v1/missions/" + m.ID + "/members/mine", token: bob.token})
		if resp.StatusCode != http.StatusOK || string(b) != "{\"refund\":0,\"balance\":4000}\n" {
			t.Errorf("leave after the start: %d %s", resp.StatusCode, b)
		}
		if got := s.getMission(t, bob.token, m.ID); got.Me == nil || got.Me.Status != "LEFT" || got.Me.LeftAt == nil || got.MemberCount != 1 {
			t.Errorf("after a forfeit %+v", got)
		}
		checkLedgerAPI(t, bdb)
	})
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func TestMissionScheduleAndWindowsAPI(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, _ := newMissionServer(t, bdb)
		host := s.pointMember(t, bdb, "host", 5000)
		other := s.pointMember(t, bdb, "other", 5000)
		d := s.createMission(t, host.token, missionJSON(t, map[string]any{"starts_at": nil, "weeks": nil,
			"days_per_week": nil, "per_day": nil, "windows": nil}))
		put := func(token, what, body string) (*http.Response, []byte) {
			return s.do(t, request{method: http.MethodPut, path: "/v1/missions/" + d.ID + "/" + what, token: token, body: body})
		}
		resp, b := put(other.token, "schedule", `{"starts_at":"`+missionStartsAt+`","weeks":1,"days_per_week":7,"per_day":2}`)
		checkError(t, resp, b, http.StatusForbidden, "forbidden", "")
		resp, b = put(host.token, "schedule", `{"starts_at":"2026-05-01T00:00:00Z","weeks":1,"days_per_week":7,"per_day":2}`)
		checkError(t, resp, b, http.StatusBadRequest, "invalid", "starts_at")
		resp, b = put(host.token, "schedule", `{"starts_at":"`+missionStartsAt+`","weeks":0,"days_per_week":7,"per_day":2}`)
		checkError(t, resp, b, http.StatusBadRequest, "invalid", "weeks")
		resp, b = put(host.token, "windows", `{"windows":[{"start":"10:00","end":"12:00"},{"start":"11:59","end":"13:00"}]}`)
		checkError(t, resp, b, http.StatusBadRequest, "invalid", "windows")
		if got := s.getMission(t, host.token, d.ID); got.Status != "UNACTIVATED" || got.StartsAt != nil || len(got.Windows) != 0 {
			t.Errorf("after refused edits %+v", got)
		}

		resp, b = put(host.token, "schedule", `{"starts_at":"`+missionStartsAt+`","weeks":1,"days_per_week":7,"per_day":2}`)
		var m missionWire
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("schedule: %d %s", resp.StatusCode, b)
		}
		decodeStrict(t, b, &m)
		if m.Status != "UNACTIVATED" || m.Required == nil || *m.Required != 14 {
			t.Errorf("after schedule %+v", m)
		}
		resp, b = put(host.token, "windows", `{"windows":[{"start":"20:00","end":"24:00"},{"start":"06:00","end":"07:30"}]}`)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("windows: %d %s", resp.StatusCode, b)
		}
		decodeStrict(t, b, &m)
		if m.Status != "OPEN" || !slices.Equal(m.Windows, []missionWindowWire{{"06:00", "07:30"}, {"20:00", "24:00"}}) {
			t.Errorf("after windows %+v", m)
		}
		// Now open, it can be joined.
		s.joinMission(t, other.token, d.ID, "")
	})
}
