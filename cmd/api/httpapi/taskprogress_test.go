package httpapi_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db/dbtest"
)

// helpersWith adds n members named prefix0.. offering translation with
// 영어.
func (s *testServer) helpersWith(t *testing.T, ids skillIDs, prefix string, n int) []testMember {
	t.Helper()
	out := make([]testMember, n)
	for i := range out {
		out[i] = s.member(t, fmt.Sprint(prefix, i))
		s.setSkills(t, out[i].token, []int64{ids.small["초벌 번역"]}, []int64{ids.ability["영어"]})
	}
	return out
}

// accept accepts the member's invitation to task id.
func (s *testServer) accept(t *testing.T, id string, m testMember) {
	t.Helper()
	resp, b := s.do(t, request{method: http.MethodPost, path: "/v1/tasks/" + id + "/invitations/mine/accept", token: m.token})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("accept by %s: %d %s", m.ID, resp.StatusCode, b)
	}
}

// helperStatuses is the task's helpers' statuses by nickname, as its
// customer reads them.
func (s *testServer) helperStatuses(t *testing.T, id, token string) (string, map[string]string) {
	t.Helper()
	got := s.taskDo(t, http.MethodGet, "/v1/tasks/"+id, token, "", http.StatusOK)
	by := map[string]string{}
	for _, h := range *got.Helpers {
		by[h.Nickname] = h.Status
		if (h.Status != "MATCHED") != (h.StartedAt != nil) || (h.Status == "DONE") != (h.DoneAt != nil) {
			t.Errorf("helper %+v: times do not fit the status", h)
		}
	}
	return got.Status, by
}

// TestHelperProgress: matched helpers go DOING then DONE; the task goes
// DOING when all have started and DONE when all have finished, and only
// then its customer gets TASK_DONE, once. Every step out of order, by
// someone not a helper, or by the customer is refused and changes
// nothing.
func TestHelperProgress(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)
		customer := s.member(t, "customer")
		ids := s.skillIDs(t, customer.token)
		h := s.helpersWith(t, ids, "helper", 3)
		task := s.matchingTask(t, bdb, customer, ids, 2, 10)
		base := "/v1/tasks/" + task.ID + "/helpers/mine/"
		refuse := func(who testMember, step string, status int, code string) {
			t.Helper()
			resp, b := s.do(t, request{method: http.MethodPost, path: base + step, token: who.token})
			checkError(t, resp, b, status, code, "")
		}
		step := func(who testMember, step, wantTask string) {
			t.Helper()
			got := s.taskDo(t, http.MethodPost, base+step, who.token, "", http.StatusOK)
			if got.Status != wantTask || got.Helpers == nil {
				t.Fatalf("%s %s: task %s, want %s (%+v)", who.ID, step, got.Status, wantTask, got.Helpers)
			}
		}

		s.accept(t, task.ID, h[0])
		// The task still looks for a helper: no work yet.
		refuse(h[0], "doing", http.StatusConflict, "task_not_matched")
		refuse(h[0], "done", http.StatusConflict, "helper_not_doing")
		s.accept(t, task.ID, h[1])

		refuse(h[2], "doing", http.StatusForbidden, "not_task_helper") // invited, not matched
		refuse(customer, "doing", http.StatusForbidden, "forbidden")
		resp, b := s.do(t, request{method: http.MethodPost, path: "/v1/tasks/nope/helpers/mine/doing", token: h[0].token})
		checkError(t, resp, b, http.StatusNotFound, "not_found", "")
		refuse(h[0], "done", http.StatusConflict, "helper_not_doing")
		if st, by := s.helperStatuses(t, task.ID, customer.token); st != "MATCHED" || by["helper0"] != "MATCHED" || by["helper1"] != "MATCHED" || len(by) != 2 {
			t.Fatalf("after refusals: %s %v", st, by)
		}

		step(h[0], "doing", "MATCHED")
		refuse(h[0], "doing", http.StatusConflict, "already_started")
		step(h[1], "doing", "DOING")
		step(h[0], "done", "DOING")
		refuse(h[0], "done", http.StatusConflict, "already_done")
		refuse(h[0], "doing", http.StatusConflict, "already_started")
		if n := s.notificationsOf(t, customer.token, "TASK_DONE"); len(n) != 0 {
			t.Fatalf("TASK_DONE before every helper finished: %d", len(n))
		}
		step(h[1], "done", "DONE")
		refuse(h[1], "done", http.StatusConflict, "already_done")
		st, by := s.helperStatuses(t, task.ID, h[0].token)
		if st != "DONE" || by["helper0"] != "DONE" || by["helper1"] != "DONE" {
			t.Errorf("finished: %s %v", st, by)
		}
		if n := s.notificationsOf(t, customer.token, "TASK_DONE"); len(n) != 1 {
			t.Errorf("%d TASK_DONE, want 1", len(n))
		}
	})
}

// TestHelperProgressRace: ten helpers of a task start at once, then
// finish at once: the task goes DOING and then DONE, each exactly once,
// and its customer gets exactly one TASK_DONE.
func TestHelperProgressRace(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)
		customer := s.member(t, "customer")
		ids := s.skillIDs(t, customer.token)
		h := s.helpersWith(t, ids, "helper", 10)
		task := s.matchingTask(t, bdb, customer, ids, 10, 10)
		for _, m := range h {
			s.accept(t, task.ID, m)
		}
		for _, st := range []string{"doing", "done"} {
			var wg sync.WaitGroup
			statuses := make(chan string, len(h))
			for _, m := range h {
				wg.Go(func() {
					resp, b := s.do(t, request{method: http.MethodPost, path: "/v1/tasks/" + task.ID + "/helpers/mine/" + st, token: m.token})
					if resp.StatusCode != http.StatusOK {
						t.Errorf("%s by %s: %d %s", st, m.ID, resp.StatusCode, b)
						return
					}
					var got taskBody
					decodeStrict(t, b, &got)
					statuses <- got.Status
				})
			}
			wg.Wait()
			close(statuses)
			count := map[string]int{}
			for x := range statuses {
				count[x]++
			}
			// Exactly one step saw every helper there: the last one.
			if st == "doing" && (count["DOING"] != 1 || count["MATCHED"] != 9) {
				t.Errorf("doing answers %v, want 1 DOING and 9 MATCHED", count)
			}
			if st == "done" && (count["DONE"] != 1 || count["DOING"] != 9) {
				t.Errorf("done answers %v, want 1 DONE and 9 DOING", count)
			}
		}
		st, by := s.helperStatuses(t, task.ID, customer.token)
		for name, x := range by {
			if x != "DONE" {
				t.Errorf("%s is %s", name, x)
			}
		}
		if st != "DONE" || len(by) != 10 {
			t.Errorf("task %s with %d helpers", st, len(by))
		}
		if n := s.notificationsOf(t, customer.token, "TASK_DONE"); len(n) != 1 {
			t.Errorf("%d TASK_DONE, want 1", len(n))
		}
	})
}
