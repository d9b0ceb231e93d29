package httpapi_test

import (
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // Asia/Seoul even on hosts without a zoneinfo database

	"github.com/google/go-cmp/cmp"
	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
)

// verifyEnv is an API on a settable clock with an ONGOING public mission in
// Seoul that started on Monday 2026-12-07 at local midnight: 2 weeks, 3
// days a week, 2 photos a day, windows 07:00–09:00 and 21:00–24:00; host
// and member are in it, outsider is not.
type verifyEnv struct {
	s                      *testServer
	clock                  *roomClock
	bdb                    *bun.DB
	seoul                  *time.Location
	host, member, outsider randomMember
	mission                string
	key                    int64
}

var verifySchedule = func(loc *time.Location) domain.MissionSchedule {
	return domain.MissionSchedule{StartsAt: time.Date(2026, 12, 7, 0, 0, 0, 0, loc), Weeks: 2, DaysPerWeek: 3, PerDay: 2}
}

var verifyWindows = []domain.MissionWindow{{Start: 7 * 60, End: 9 * 60}, {Start: 21 * 60, End: 24 * 60}}

func newVerifyEnv(t *testing.T, bdb *bun.DB) *verifyEnv {
	t.Helper()
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatal(err)
	}
	clock := &roomClock{now: missionsStart} // sign-up records dated codes
	e := newEnv(t, bdb)
	s := newServer(t, e, func(d *httpapi.Deps) {
		d.NowFunc = clock.Now
		d.MissionLocation = seoul
	}, nil)
	v := &verifyEnv{s: s, clock: clock, bdb: bdb, seoul: seoul,
		host: s.randomMember(t, "vhost"), member: s.randomMember(t, "vmember"), outsider: s.randomMember(t, "voutsider")}
	v.mission, v.key = v.seed(t, domain.MissionOngoing, false, v.member)
	v.set(1, 7, 30, 0)
	return v
}

// seed inserts a mission of the host with members.
func (v *verifyEnv) seed(t *testing.T, st domain.MissionStatus, private bool, members ...randomMember) (string, int64) {
	t.Helper()
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.ID
	}
	return dbtest.InsertMission(t, v.bdb, dbtest.MissionSeed{HostID: v.host.ID, MemberIDs: ids, Status: st,
		Private: private, Schedule: verifySchedule(v.seoul), Windows: verifyWindows, Loc: v.seoul})
}

// set puts the clock at hh:mm:ss on mission day d in Seoul, held in UTC
// (the server must read it in the missions' zone).
func (v *verifyEnv) set(d, hh, mm, ss int) time.Time {
	at := time.Date(2026, 12, 7+d, hh, mm, ss, 0, v.seoul).UTC()
	v.clock.Set(at)
	return at
}

// photo creates a verification photo of owner, stored and checked.
func (v *verifyEnv) photo(t *testing.T, owner randomMember) string {
	t.Helper()
	return v.image(t, owner, domain.ImagePurposeVerification, domain.ImageProcessing)
}

func (v *verifyEnv) image(t *testing.T, owner randomMember, p domain.ImagePurpose, st domain.ImageStatus) string {
	t.Helper()
	return dbtest.InsertImage(t, v.bdb, owner.ID, p, st)
}

func (v *verifyEnv) post(t testing.TB, token, mission, image string) (*http.Response, []byte) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"image_id": image})
	return v.s.do(t, request{method: http.MethodPost, path: "/v1/missions/" + mission + "/verifications", token: token, body: string(body)})
}

type verifyImageBody struct {
	ID     string            `json:"id"`
	Status string            `json:"status"`
	URLs   map[string]string `json:"urls"`
}

type verificationBody struct {
	ID        string          `json:"id"`
	MissionID string          `json:"mission_id"`
	MemberID  string          `json:"member_id"`
	Nickname  string          `json:"nickname"`
	Image     verifyImageBody `json:"image"`
	Day       int             `json:"day"`
	Week      int             `json:"week"`
	Date      string          `json:"date"`
	Window    string          `json:"window"`
	CreatedAt string          `json:"created_at"`
}

type verifyQuotaBody struct {
	RemainingToday    int     `json:"remaining_today"`
	RemainingThisWeek int     `json:"remaining_this_week"`
	Until             *string `json:"until"`
}

type verifyBody struct {
	Verification verificationBody `json:"verification"`
	Me           verifyQuotaBody  `json:"me"`
}

// mustPost posts a new photo of m and decodes the 201 strictly.
func (v *verifyEnv) mustPost(t *testing.T, m randomMember) verifyBody {
	t.Helper()
	resp, raw := v.post(t, m.token, v.mission, v.photo(t, m))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("post: status = %d, want 201 (body %s)", resp.StatusCode, raw)
	}
	var out verifyBody
	decodeStrict(t, raw, &out)
	return out
}

func (v *verifyEnv) stored(t *testing.T) int {
	t.Helper()
	return dbtest.CountVerifications(t, v.bdb)
}

func TestMissionVerifyPost(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		v := newVerifyEnv(t, bdb)
		img := v.photo(t, v.member)
		at := v.set(1, 7, 30, 15)
		resp, raw := v.post(t, v.member.token, v.mission, img)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("status = %d, want 201 (body %s)", resp.StatusCode, raw)
		}
		var got verifyBody
		decodeStrict(t, raw, &got)
		if got.Verification.Image.URLs["original"] == "" || got.Verification.Image.URLs["w384"] == "" {
			t.Errorf("image urls %v", got.Verification.Image.URLs)
		}
		got.Verification.Image.URLs = nil
		until := "2026-12-08T00:00:00Z" // 09:00 in Seoul
		want := verifyBody{
			Verification: verificationBody{ID: got.Verification.ID, MissionID: v.mission, MemberID: v.member.ID,
				Nickname: "vmember", Image: verifyImageBody{ID: img, Status: "PROCESSING"}, Day: 2, Week: 1,
				Date: "2026-12-08", Window: "07:00-09:00", CreatedAt: at.Format(time.RFC3339)},
			Me: verifyQuotaBody{RemainingToday: 1, RemainingThisWeek: 5, Until: &until},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("201 body (-want +got):\n%s", diff)
		}

		// The day's second photo uses up the day: nothing is left, so no
		// "until".
		v.set(1, 21, 0, 0)
		second := v.mustPost(t, v.member)
		if diff := cmp.Diff(verifyQuotaBody{RemainingToday: 0, RemainingThisWeek: 4}, second.Me); diff != "" {
			t.Errorf("after the second photo (-want +got):\n%s", diff)
		}
		if second.Verification.Window != "21:00-24:00" {
			t.Errorf("window %q", second.Verification.Window)
		}

		// The list: members and, for a public mission, anyone.
		for _, who := range []randomMember{v.member, v.outsider} {
			var list struct {
				Verifications []verificationBody `json:"verifications"`
				NextCursor    *string            `json:"next_cursor"`
			}
			v.s.getOK(t, "/v1/missions/"+v.mission+"/verifications?limit=1", who.token, &list)
			if len(list.Verifications) != 1 || list.Verifications[0].ID != second.Verification.ID || list.NextCursor == nil {
				t.Fatalf("first page %+v", list)
			}
			v.s.getOK(t, "/v1/missions/"+v.mission+"/verifications?limit=1&cursor="+*list.NextCursor, who.token, &list)
			if len(list.Verifications) != 1 || list.Verifications[0].ID != got.Verification.ID || list.NextCursor != nil {
				t.Fatalf("second page %+v", list)
			}
			first := list.Verifications[0]
			first.Image.URLs = nil
			if diff := cmp.Diff(want.Verification, first); diff != "" {
				t.Errorf("listed (-want +got):\n%s", diff)
			}
		}
		resp, raw = v.s.do(t, request{method: http.MethodGet, path: "/v1/missions/" + v.mission + "/verifications?cursor=bogus", token: v.member.token})
		checkError(t, resp, raw, http.StatusBadRequest, domain.EINVALID, "cursor")

		// A private mission is shown to its members only.
		private, _ := v.seed(t, domain.MissionOngoing, true, v.member)
		v.s.getOK(t, "/v1/missions/"+private+"/verifications", v.member.token, &struct {
			Verifications []verificationBody `json:"verifications"`
			NextCursor    *string            `json:"next_cursor"`
		}{})
		for _, path := range []string{"/verifications", "/calendar"} {
			resp, raw := v.s.do(t, request{method: http.MethodGet, path: "/v1/missions/" + private + path, token: v.outsider.token})
			checkError(t, resp, raw, http.StatusNotFound, domain.ENOTFOUND, "")
		}
	})
}

func TestMissionVerifyPostRejects(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		v := newVerifyEnv(t, bdb)
		used := v.photo(t, v.member)
		if resp, raw := v.post(t, v.member.token, v.mission, used); resp.StatusCode != http.StatusCreated {
			t.Fatalf("first post: %d %s", resp.StatusCode, raw)
		}
		full := v.s.randomMember(t, "vfull")
		fullMission, _ := v.seed(t, domain.MissionOngoing, false, full)
		for range 2 {
			if resp, raw := v.post(t, full.token, fullMission, v.photo(t, full)); resp.StatusCode != http.StatusCreated {
				t.Fatalf("filling the day: %d %s", resp.StatusCode, raw)
			}
		}
		left := v.s.randomMember(t, "vleft")
		leftMission, leftKey := v.seed(t, domain.MissionOngoing, false, left)
		dbtest.SetMissionMemberStatus(t, bdb, leftKey, left.ID, domain.MissionMemberLeft)
		openMission, _ := v.seed(t, domain.MissionOpen, false, v.member)
		closed, _ := v.seed(t, domain.MissionClose, false, v.member)
		private, _ := v.seed(t, domain.MissionOngoing, true)

		inWindow := [3]int{7, 30, 0}
		tests := []struct {
			name       string
			who        randomMember
			mission    string
			body       string // raw body; else {"image_id": image}
			image      string
			at         [3]int // on day 1
			wantStatus int
			wantCode   string
			wantField  string
		}{
			{"no image id", v.member, v.mission, `{}`, "", inWindow, http.StatusBadRequest, domain.EINVALID, "image_id"},
			{"unknown field", v.member, v.mission, `{"image_id":"x","extra":1}`, "", inWindow, http.StatusBadRequest, domain.EINVALID, "extra"},
			{"unknown mission", v.member, "nosuchmission", "", v.photo(t, v.member), inWindow, http.StatusNotFound, domain.ENOTFOUND, ""},
			{"non-member", v.outsider, v.mission, "", v.photo(t, v.outsider), inWindow, http.StatusConflict, domain.ENOTPARTICIPATING, ""},
			{"non-member, private", v.outsider, private, "", v.photo(t, v.outsider), inWindow, http.StatusNotFound, domain.ENOTFOUND, ""},
			{"left", left, leftMission, "", v.photo(t, left), inWindow, http.StatusConflict, domain.ENOTPARTICIPATING, ""},
			{"open", v.member, openMission, "", v.photo(t, v.member), inWindow, http.StatusConflict, domain.EMISSIONNOTONGOING, ""},
			{"closed", v.member, closed, "", v.photo(t, v.member), inWindow, http.StatusConflict, domain.EMISSIONNOTONGOING, ""},
			{"before a window", v.member, v.mission, "", v.photo(t, v.member), [3]int{6, 59, 59}, http.StatusConflict, domain.EOUTSIDEWINDOW, ""},
			{"at a window's end", v.member, v.mission, "", v.photo(t, v.member), [3]int{9, 0, 0}, http.StatusConflict, domain.EOUTSIDEWINDOW, ""},
			{"day quota", full, fullMission, "", v.photo(t, full), inWindow, http.StatusConflict, domain.EQUOTAREACHED, ""},
			{"unknown image", v.member, v.mission, "", "nosuchimage", inWindow, http.StatusNotFound, domain.ENOTFOUND, "image_id"},
			{"someone else's image", v.member, v.mission, "", v.photo(t, v.host), inWindow, http.StatusForbidden, domain.EFORBIDDEN, "image_id"},
			{"room image", v.member, v.mission, "", v.image(t, v.member, domain.ImagePurposeRoom, domain.ImageReady), inWindow, http.StatusBadRequest, domain.EINVALID, "image_id"},
			{"upload not completed", v.member, v.mission, "", v.image(t, v.member, domain.ImagePurposeVerification, domain.ImageUploading), inWindow, http.StatusBadRequest, domain.EINVALID, "image_id"},
			{"image used", v.member, v.mission, "", used, inWindow, http.StatusConflict, domain.EIMAGEUSED, "image_id"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := v.stored(t)
				v.set(1, tt.at[0], tt.at[1], tt.at[2])
				var resp *http.Response
				var raw []byte
				if tt.body != "" {
					resp, raw = v.s.do(t, request{method: http.MethodPost, path: "/v1/missions/" + tt.mission + "/verifications", token: tt.who.token, body: tt.body})
				} else {
					resp, raw = v.post(t, tt.who.token, tt.mission, tt.image)
				}
				checkError(t, resp, raw, tt.wantStatus, tt.wantCode, tt.wantField)
				if after := v.stored(t); after != before {
					t.Errorf("%d verifications stored, want %d", after, before)
				}
			})
		}
		resp, raw := v.s.do(t, request{method: http.MethodPost, path: "/v1/missions/" + v.mission + "/verifications", body: `{"image_id":"x"}`})
		checkError(t, resp, raw, http.StatusUnauthorized, domain.EUNAUTHORIZED, "")
	})
}

// TestMissionVerifyPostConcurrent posts per_day+3 photos of one member at
// once over HTTP: exactly per_day are stored, the rest are 409
// quota_reached.
func TestMissionVerifyPostConcurrent(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		v := newVerifyEnv(t, bdb)
		n := verifySchedule(v.seoul).PerDay + 3
		images := make([]string, n)
		for i := range images {
			images[i] = v.photo(t, v.member)
		}
		statuses := make([]int, n)
		codes := make([]string, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range images {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				resp, raw := v.post(t, v.member.token, v.mission, images[i])
				statuses[i] = resp.StatusCode
				var e apiError
				_ = json.Unmarshal(raw, &e)
				codes[i] = e.Error.Code
			}()
		}
		close(start)
		wg.Wait()
		created := 0
		for i, st := range statuses {
			switch {
			case st == http.StatusCreated:
				created++
			case st != http.StatusConflict || codes[i] != domain.EQUOTAREACHED:
				t.Errorf("post %d: %d %s, want 201 or 409 quota_reached", i, st, codes[i])
			}
		}
		if per := verifySchedule(v.seoul).PerDay; created != per || v.stored(t) != per {
			t.Errorf("%d created, %d stored; want %d", created, v.stored(t), per)
		}
	})
}

type calendarBody struct {
	MissionID   string  `json:"mission_id"`
	Status      string  `json:"status"`
	Timezone    string  `json:"timezone"`
	StartsAt    *string `json:"starts_at"`
	EndsAt      *string `json:"ends_at"`
	CurrentDay  *int    `json:"current_day"`
	CurrentWeek *int    `json:"current_week"`
	Required    int     `json:"required"`
	Members     []struct {
		MemberID string `json:"member_id"`
		Nickname string `json:"nickname"`
		Host     bool   `json:"host"`
		Status   string `json:"status"`
		Days     []struct {
			Date  string `json:"date"`
			Count int    `json:"count"`
		} `json:"days"`
		Count int     `json:"count"`
		Rate  float64 `json:"rate"`
	} `json:"members"`
	TeamRate float64          `json:"team_rate"`
	Me       *verifyQuotaBody `json:"me"`
}

func (v *verifyEnv) calendar(t *testing.T, token, mission string) calendarBody {
	t.Helper()
	var c calendarBody
	v.s.getOK(t, "/v1/missions/"+mission+"/calendar", token, &c)
	return c
}

// nonZero lists a calendar member's days with photos as "date=count".
func nonZero(c calendarBody, i int) map[string]int {
	out := map[string]int{}
	for _, d := range c.Members[i].Days {
		if d.Count > 0 {
			out[d.Date] = d.Count
		}
	}
	return out
}

func TestMissionCalendar(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		v := newVerifyEnv(t, bdb)
		// Week 1: the member posts 2 on day 1 (the last at 23:59), 2 on
		// day 2 and 1 on day 4; the host 1 on day 2. Week 2: the member 1
		// on day 8.
		posts := []struct {
			who        randomMember
			d, hh, min int
		}{
			{v.member, 0, 7, 0}, {v.member, 0, 23, 59}, {v.member, 1, 8, 0}, {v.host, 1, 8, 30},
			{v.member, 1, 21, 0}, {v.member, 3, 7, 0}, {v.member, 7, 7, 0},
		}
		for _, p := range posts {
			v.set(p.d, p.hh, p.min, 0)
			v.mustPost(t, p.who)
		}

		v.set(7, 12, 0, 0) // day 8, between the windows
		c := v.calendar(t, v.member.token, v.mission)
		if len(c.Members) != 2 || c.Members[0].Nickname != "vhost" || !c.Members[0].Host || c.Members[1].Nickname != "vmember" {
			t.Fatalf("members %+v", c.Members)
		}
		if len(c.Members[0].Days) != 14 || c.Members[0].Days[0].Date != "2026-12-07" || c.Members[0].Days[13].Date != "2026-12-20" {
			t.Errorf("days %+v", c.Members[0].Days)
		}
		if diff := cmp.Diff(map[string]int{"2026-12-07": 2, "2026-12-08": 2, "2026-12-10": 1, "2026-12-14": 1}, nonZero(c, 1)); diff != "" {
			t.Errorf("member's days (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(map[string]int{"2026-12-08": 1}, nonZero(c, 0)); diff != "" {
			t.Errorf("host's days (-want +got):\n%s", diff)
		}
		c.Members = nil
		until := "2026-12-14T15:00:00Z" // 24:00 in Seoul
		start, end := "2026-12-06T15:00:00Z", "2026-12-20T15:00:00Z"
		want := calendarBody{MissionID: v.mission, Status: "ONGOING", Timezone: "Asia/Seoul", StartsAt: &start, EndsAt: &end,
			CurrentDay: ptr(8), CurrentWeek: ptr(2), Required: 12,
			// member 6/12 = 0.5, host 1/12 = 0.0833: the average 0.2916.
			TeamRate: 0.2916,
			Me:       &verifyQuotaBody{RemainingToday: 1, RemainingThisWeek: 5, Until: &until}}
		if diff := cmp.Diff(want, c); diff != "" {
			t.Errorf("calendar (-want +got):\n%s", diff)
		}
		c = v.calendar(t, v.member.token, v.mission)
		if c.Members[1].Count != 6 || c.Members[1].Rate != 0.5 || c.Members[0].Count != 1 || c.Members[0].Rate != 0.0833 {
			t.Errorf("counts and rates %+v", c.Members)
		}

		// Another viewer of a public mission sees the same without "me".
		if other := v.calendar(t, v.outsider.token, v.mission); other.Me != nil || other.TeamRate != 0.2916 {
			t.Errorf("outsider: me %+v, team rate %v", other.Me, other.TeamRate)
		}

		// Week 1 ends on day 7 with the member at 5 of 6: day 6 offers 1.
		v.set(5, 6, 0, 0)
		if me := v.calendar(t, v.member.token, v.mission).Me; me.RemainingToday != 1 || me.RemainingThisWeek != 1 {
			t.Errorf("member on day 6: %+v", me)
		}

		// "me" across midnight in Seoul, on a mission of its own.
		v.set(1, 21, 0, 0)
		m2, m2Key := v.seed(t, domain.MissionOngoing, false, v.member)
		for _, at := range [][3]int{{21, 0, 0}, {23, 59, 0}} {
			v.set(1, at[0], at[1], at[2])
			if resp, raw := v.post(t, v.member.token, m2, v.photo(t, v.member)); resp.StatusCode != http.StatusCreated {
				t.Fatalf("post: %d %s", resp.StatusCode, raw)
			}
		}
		v.set(1, 23, 59, 59)
		if diff := cmp.Diff(&verifyQuotaBody{RemainingToday: 0, RemainingThisWeek: 4}, v.calendar(t, v.member.token, m2).Me); diff != "" {
			t.Errorf("member at 23:59:59, day full (-want +got):\n%s", diff)
		}
		midnight := "2026-12-08T15:00:00Z" // 24:00 in Seoul
		if diff := cmp.Diff(&verifyQuotaBody{RemainingToday: 2, RemainingThisWeek: 6, Until: &midnight}, v.calendar(t, v.host.token, m2).Me); diff != "" {
			t.Errorf("host at 23:59:59 (-want +got):\n%s", diff)
		}
		v.set(2, 0, 0, 0)
		nine := "2026-12-09T00:00:00Z" // 09:00 in Seoul
		if diff := cmp.Diff(&verifyQuotaBody{RemainingToday: 2, RemainingThisWeek: 4, Until: &nine}, v.calendar(t, v.member.token, m2).Me); diff != "" {
			t.Errorf("member at 00:00 (-want +got):\n%s", diff)
		}
		if resp, raw := v.post(t, v.member.token, m2, v.photo(t, v.member)); resp.StatusCode != http.StatusConflict {
			t.Errorf("post at 00:00, outside the windows: %d %s", resp.StatusCode, raw)
		}

		// A member who left keeps their photos but no quota, and the team
		// rate is the ACTIVE members' average.
		if c := v.calendar(t, v.member.token, m2); c.TeamRate != 0.0833 {
			t.Errorf("team rate before the leave %v, want 0.0833", c.TeamRate)
		}
		dbtest.SetMissionMemberStatus(t, bdb, m2Key, v.member.ID, domain.MissionMemberLeft)
		c = v.calendar(t, v.member.token, m2)
		if c.TeamRate != 0 || c.Members[1].Status != "LEFT" || c.Members[1].Count != 2 || c.Members[1].Rate != 0.1666 || *c.Me != (verifyQuotaBody{}) {
			t.Errorf("after the leave: %+v", c)
		}

		// OPEN and CLOSE missions: counts 0, no current day, nothing to
		// post.
		open, _ := v.seed(t, domain.MissionOpen, false, v.member)
		v.set(-3, 12, 0, 0)
		c = v.calendar(t, v.member.token, open)
		if c.Status != "OPEN" || c.CurrentDay != nil || c.CurrentWeek != nil || c.TeamRate != 0 || len(c.Members) != 2 || c.Members[1].Count != 0 ||
			len(c.Members[1].Days) != 14 || *c.Me != (verifyQuotaBody{}) {
			t.Errorf("open calendar %+v", c)
		}
		closed, _ := v.seed(t, domain.MissionClose, false, v.member)
		v.set(15, 8, 0, 0)
		if c := v.calendar(t, v.member.token, closed); c.Status != "CLOSE" || c.CurrentDay != nil || *c.Me != (verifyQuotaBody{}) {
			t.Errorf("closed calendar %+v", c)
		}
	})
}
