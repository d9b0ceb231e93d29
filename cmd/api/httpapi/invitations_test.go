package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/internal/clocktest"
	"github.com/moim/moim/jobs"
)

type invitationBody struct {
	ID         string  `json:"id"`
	TaskID     string  `json:"task_id"`
	Status     string  `json:"status"`
	Reason     string  `json:"reason"`
	InvitedAt  string  `json:"invited_at"`
	ExpiresAt  string  `json:"expires_at"`
	AnsweredAt *string `json:"answered_at"`
}

// matchingTask posts a task wanting n helpers with 영어, starts its
// matching and runs one invitation round of size round.
func (s *testServer) matchingTask(t *testing.T, bdb *bun.DB, customer testMember, ids skillIDs, n, round int) taskBody {
	t.Helper()
	task := s.taskDo(t, http.MethodPost, "/v1/tasks", customer.token, taskJSON(t, ids, n, nil), http.StatusCreated)
	s.taskDo(t, http.MethodPost, "/v1/tasks/"+task.ID+"/matching", customer.token, "", http.StatusOK)
	rounds := &jobs.TaskRoundHandler{DB: bdb, Params: jobs.TaskRoundParams{Size: round, TTL: time.Hour}, NowFunc: clocktest.Now}
	if _, err := rounds.Round(context.Background(), task.ID); err != nil {
		t.Fatal(err)
	}
	return task
}

// TestAcceptRace: 30 invited helpers accept a task wanting 3 at once:
// exactly 3 are matched, 27 are refused as task_full, the task is MATCHED
// once with 3 helpers, the customer gets one TASK_MATCHED, and the other
// invitations are expired.
func TestAcceptRace(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)
		customer := s.member(t, "customer")
		ids := s.skillIDs(t, customer.token)
		helpers := make([]testMember, 30)
		for i := range helpers {
			helpers[i] = s.member(t, fmt.Sprintf("helper%02d", i))
			s.setSkills(t, helpers[i].token, []int64{ids.small["초벌 번역"]}, []int64{ids.ability["영어"]})
		}
		task := s.matchingTask(t, bdb, customer, ids, 3, 30)
		path := "/v1/tasks/" + task.ID + "/invitations/mine/accept"

		var wg sync.WaitGroup
		codes := make(chan string, len(helpers))
		for _, h := range helpers {
			wg.Go(func() {
				resp, b := s.do(t, request{method: http.MethodPost, path: path, token: h.token})
				if resp.StatusCode == http.StatusOK {
					codes <- "ok"
					return
				}
				var e apiError
				decodeStrict(t, b, &e)
				codes <- fmt.Sprint(resp.StatusCode, " ", e.Error.Code)
			})
		}
		wg.Wait()
		close(codes)
		count := map[string]int{}
		for c := range codes {
			count[c]++
		}
		if count["ok"] != 3 || count["409 task_full"] != 27 {
			t.Errorf("answers = %v, want 3 ok and 27 409 task_full", count)
		}
		got := s.taskDo(t, http.MethodGet, "/v1/tasks/"+task.ID, customer.token, "", http.StatusOK)
		if got.Status != "MATCHED" || got.HelperCount != 3 {
			t.Errorf("task = %s with %d helpers, want MATCHED with 3", got.Status, got.HelperCount)
		}
		if n := countRows(t, bdb, "task_helpers"); n != 3 {
			t.Errorf("%d task_helpers rows, want 3", n)
		}
		if n := s.notificationsOf(t, customer.token, "TASK_MATCHED"); len(n) != 1 {
			t.Errorf("%d TASK_MATCHED, want 1", len(n))
		}
		var statuses []int
		if err := bdb.NewSelect().Table("task_invitations").Column("status").Scan(t.Context(), &statuses); err != nil {
			t.Fatal(err)
		}
		by := map[int]int{}
		for _, st := range statuses {
			by[st]++
		}
		if by[2] != 3 || by[4] != 27 {
			t.Errorf("invitation statuses = %v, want 3 ACCEPTED and 27 EXPIRED", by)
		}
	})
}

// TestInvitationAnswerRejects: accepting without an invitation, one's own
// task, twice, after a decline or after expiry is refused with a clear
// code and changes nothing; a decline keeps its reason.
func TestInvitationAnswerRejects(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		clock := &roomClock{now: clocktest.Now().UTC()}
		s := newServer(t, newEnv(t, bdb), func(d *httpapi.Deps) { d.NowFunc = clock.Now }, nil)
		customer := s.member(t, "customer")
		ids := s.skillIDs(t, customer.token)
		var h []testMember
		for i := range 4 {
			m := s.member(t, fmt.Sprint("helper", i))
			s.setSkills(t, m.token, []int64{ids.small["초벌 번역"]}, []int64{ids.ability["영어"]})
			h = append(h, m)
		}
		stranger := s.member(t, "stranger")
		task := s.taskDo(t, http.MethodPost, "/v1/tasks", customer.token, taskJSON(t, ids, 2, nil), http.StatusCreated)
		base := "/v1/tasks/" + task.ID + "/invitations/mine/"

		// Before matching nobody is invited.
		resp, b := s.do(t, request{method: http.MethodPost, path: base + "accept", token: h[0].token})
		checkError(t, resp, b, http.StatusForbidden, "not_invited", "")
		s.taskDo(t, http.MethodPost, "/v1/tasks/"+task.ID+"/matching", customer.token, "", http.StatusOK)
		rounds := &jobs.TaskRoundHandler{DB: bdb, Params: jobs.TaskRoundParams{Size: 10, TTL: time.Hour}, NowFunc: clock.Now}
		if n, err := rounds.Round(t.Context(), task.ID); err != nil || n != 4 {
			t.Fatalf("round = %d, %v", n, err)
		}

		for _, c := range []struct {
			name, verb, token, body string
			status                  int
			code, field             string
		}{
			{"stranger", "accept", stranger.token, "", 403, "not_invited", ""},
			{"own task", "accept", customer.token, "", 403, "forbidden", ""},
			{"long reason", "decline", h[1].token, fmt.Sprintf(`{"reason":%q}`, strings.Repeat("x", 1001)), 400, "invalid", "reason"},
		} {
			resp, b := s.do(t, request{method: http.MethodPost, path: base + c.verb, token: c.token, body: c.body})
			t.Run(c.name, func(t *testing.T) { checkError(t, resp, b, c.status, c.code, c.field) })
		}

		var inv invitationBody
		resp, b = s.do(t, request{method: http.MethodPost, path: base + "accept", token: h[0].token})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("accept: %d %s", resp.StatusCode, b)
		}
		decodeStrict(t, b, &inv)
		if inv.Status != "ACCEPTED" || inv.TaskID != task.ID || inv.AnsweredAt == nil {
			t.Errorf("accepted %+v", inv)
		}
		resp, b = s.do(t, request{method: http.MethodPost, path: base + "accept", token: h[0].token})
		checkError(t, resp, b, http.StatusConflict, "already_answered", "")

		resp, b = s.do(t, request{method: http.MethodPost, path: base + "decline", token: h[1].token, body: `{"reason":"이번 주는 바빠요"}`})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("decline: %d %s", resp.StatusCode, b)
		}
		decodeStrict(t, b, &inv)
		if inv.Status != "DECLINED" || inv.Reason != "이번 주는 바빠요" {
			t.Errorf("declined %+v", inv)
		}
		resp, b = s.do(t, request{method: http.MethodPost, path: base + "accept", token: h[1].token})
		checkError(t, resp, b, http.StatusConflict, "already_answered", "")

		clock.Advance(time.Hour)
		resp, b = s.do(t, request{method: http.MethodPost, path: base + "accept", token: h[2].token})
		checkError(t, resp, b, http.StatusConflict, "invitation_expired", "")
		got := s.taskDo(t, http.MethodGet, "/v1/tasks/"+task.ID, h[0].token, "", http.StatusOK)
		if got.Status != "MATCHING" || got.HelperCount != 1 {
			t.Errorf("task = %s with %d helpers, want MATCHING with 1", got.Status, got.HelperCount)
		}
		if n := countRows(t, bdb, "task_helpers"); n != 1 {
			t.Errorf("%d task_helpers rows, want 1", n)
		}
		// A stranger still cannot read the task; an invited helper can.
		resp, b = s.do(t, request{method: http.MethodGet, path: "/v1/tasks/" + task.ID, token: stranger.token})
		checkError(t, resp, b, http.StatusNotFound, "not_found", "")
	})
}
