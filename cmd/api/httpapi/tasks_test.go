package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/internal/clocktest"
)

type taskBody struct {
	ID              string  `json:"id"`
	Title           string  `json:"title"`
	Details         string  `json:"details"`
	BigCategoryID   int64   `json:"big_category_id"`
	SmallCategoryID int64   `json:"small_category_id"`
	AbilityIDs      []int64 `json:"ability_ids"`
	HelpersWanted   int     `json:"helpers_wanted"`
	HelperCount     int     `json:"helper_count"`
	Status          string  `json:"status"`
	DueAt           *string `json:"due_at"`
	Customer        struct {
		ID       string `json:"id"`
		Nickname string `json:"nickname"`
	} `json:"customer"`
	CreatedAt string            `json:"created_at"`
	UpdatedAt string            `json:"updated_at"`
	Helpers   *[]taskHelperBody `json:"helpers"`
}

type taskHelperBody struct {
	ID        string  `json:"id"`
	Nickname  string  `json:"nickname"`
	Status    string  `json:"status"`
	MatchedAt string  `json:"matched_at"`
	StartedAt *string `json:"started_at"`
	DoneAt    *string `json:"done_at"`
}

// taskJSON is a complete translation task wanting helpers, with
// overrides; a nil value drops the field.
func taskJSON(t testing.TB, ids skillIDs, helpers int, overrides map[string]any) string {
	t.Helper()
	m := map[string]any{
		"title": "계약서 번역", "details": "영문 계약서 10쪽을 한국어로 초벌 번역해 주세요.",
		"big_category_id": ids.big["통번역"], "small_category_id": ids.small["초벌 번역"],
		"ability_ids": []int64{ids.ability["영어"]}, "helpers_wanted": helpers,
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

// taskDo sends a task request and decodes a task answer of status want.
func (s *testServer) taskDo(t testing.TB, method, path, token, body string, want int) taskBody {
	t.Helper()
	resp, b := s.do(t, request{method: method, path: path, token: token, body: body})
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status = %d, want %d (body %s)", method, path, resp.StatusCode, want, b)
	}
	var tb taskBody
	decodeStrict(t, b, &tb)
	return tb
}

func TestTaskLifecycle(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)
		customer := s.member(t, "customer")
		stranger := s.member(t, "stranger")
		ids := s.skillIDs(t, customer.token)

		due := clocktest.Now().Add(72 * time.Hour).UTC().Format(time.RFC3339)
		draft := s.taskDo(t, http.MethodPost, "/v1/tasks", customer.token,
			taskJSON(t, ids, 2, map[string]any{"details": nil, "ability_ids": nil, "due_at": due}), http.StatusCreated)
		if draft.Status != "STANDBY" || draft.Customer.ID != customer.ID || draft.HelpersWanted != 2 ||
			len(draft.AbilityIDs) != 0 || draft.DueAt == nil || *draft.DueAt != due {
			t.Fatalf("created %+v", draft)
		}
		path := "/v1/tasks/" + draft.ID
		if got := s.taskDo(t, http.MethodGet, path, customer.token, "", http.StatusOK); got.ID != draft.ID {
			t.Errorf("GET = %+v", got)
		}
		resp, b := s.do(t, request{method: http.MethodGet, path: path, token: stranger.token})
		checkError(t, resp, b, http.StatusNotFound, "not_found", "")

		// Matching needs details, then a required ability.
		resp, b = s.do(t, request{method: http.MethodPost, path: path + "/matching", token: customer.token})
		checkError(t, resp, b, http.StatusConflict, "task_incomplete", "details")
		s.taskDo(t, http.MethodPatch, path, customer.token, `{"details":"10쪽"}`, http.StatusOK)
		resp, b = s.do(t, request{method: http.MethodPost, path: path + "/matching", token: customer.token})
		checkError(t, resp, b, http.StatusConflict, "task_incomplete", "ability_ids")

		// Only the customer changes it.
		for _, c := range []struct{ method, path, body string }{
			{http.MethodPatch, path, `{"title":"mine now"}`},
			{http.MethodDelete, path, ""},
			{http.MethodPost, path + "/matching", ""},
			{http.MethodPost, path + "/matching/stop", ""},
		} {
			resp, b := s.do(t, request{method: c.method, path: c.path, token: stranger.token, body: c.body})
			checkError(t, resp, b, http.StatusForbidden, "forbidden", "")
		}

		upd := s.taskDo(t, http.MethodPatch, path, customer.token,
			fmt.Sprintf(`{"ability_ids":[%d,%d],"due_at":null,"helpers_wanted":3}`, ids.ability["영어"], ids.ability["언어역량"]), http.StatusOK)
		if len(upd.AbilityIDs) != 2 || upd.DueAt != nil || upd.HelpersWanted != 3 || upd.Details != "10쪽" || upd.Title != draft.Title {
			t.Fatalf("updated %+v", upd)
		}

		started := s.taskDo(t, http.MethodPost, path+"/matching", customer.token, "", http.StatusOK)
		if started.Status != "MATCHING" {
			t.Fatalf("started %+v", started)
		}
		if n := s.notificationsOf(t, customer.token, "TASK_MATCHING_STARTED"); len(n) != 1 {
			t.Errorf("customer has %d TASK_MATCHING_STARTED, want 1", len(n))
		}
		// Not in STANDBY: no edits, no delete, no second start.
		for _, c := range []struct{ method, path, body string }{
			{http.MethodPatch, path, `{"title":"late"}`},
			{http.MethodDelete, path, ""},
			{http.MethodPost, path + "/matching", ""},
		} {
			resp, b := s.do(t, request{method: c.method, path: c.path, token: customer.token, body: c.body})
			checkError(t, resp, b, http.StatusConflict, "task_not_standby", "")
		}
		if n := s.notificationsOf(t, customer.token, "TASK_MATCHING_STARTED"); len(n) != 1 {
			t.Errorf("a refused start notified: %d", len(n))
		}

		stopped := s.taskDo(t, http.MethodPost, path+"/matching/stop", customer.token, "", http.StatusOK)
		if stopped.Status != "STANDBY" {
			t.Fatalf("stopped %+v", stopped)
		}
		resp, b = s.do(t, request{method: http.MethodPost, path: path + "/matching/stop", token: customer.token})
		checkError(t, resp, b, http.StatusConflict, "task_not_matching", "")

		resp, b = s.do(t, request{method: http.MethodDelete, path: path, token: customer.token})
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE: %d %s", resp.StatusCode, b)
		}
		resp, b = s.do(t, request{method: http.MethodGet, path: path, token: customer.token})
		checkError(t, resp, b, http.StatusNotFound, "not_found", "")
	})
}

func TestTaskCreateRejects(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)
		customer := s.member(t, "customer")
		ids := s.skillIDs(t, customer.token)
		eleven := make([]int64, 11)
		for i := range eleven {
			eleven[i] = int64(i + 1)
		}
		past := clocktest.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
		for _, c := range []struct {
			name      string
			overrides map[string]any
			helpers   int
			code      string
			field     string
		}{
			{"no helpers", nil, 0, "invalid", "helpers_wanted"},
			{"eleven helpers", nil, 11, "invalid", "helpers_wanted"},
			{"eleven abilities", map[string]any{"ability_ids": eleven}, 1, "invalid", "ability_ids"},
			{"ability twice", map[string]any{"ability_ids": []int64{ids.ability["영어"], ids.ability["영어"]}}, 1, "invalid", "ability_ids"},
			{"unknown ability", map[string]any{"ability_ids": []int64{ids.ability["영어"], 9999}}, 1, "invalid", "ability_ids"},
			{"unknown big category", map[string]any{"big_category_id": 9999}, 1, "invalid", "big_category_id"},
			{"small category of another", map[string]any{"small_category_id": ids.small["논문검색"]}, 1, "invalid", "small_category_id"},
			{"big as small", map[string]any{"small_category_id": ids.big["통번역"]}, 1, "invalid", "small_category_id"},
			{"no small category", map[string]any{"small_category_id": nil}, 1, "invalid", "small_category_id"},
			{"no title", map[string]any{"title": " "}, 1, "invalid", "title"},
			{"past due", map[string]any{"due_at": past}, 1, "invalid", "due_at"},
			{"due not a time", map[string]any{"due_at": "tomorrow"}, 1, "invalid", ""},
			{"unknown field", map[string]any{"price": 1}, 1, "invalid", "price"},
		} {
			resp, b := s.do(t, request{method: http.MethodPost, path: "/v1/tasks", token: customer.token,
				body: taskJSON(t, ids, c.helpers, c.overrides)})
			t.Run(c.name, func(t *testing.T) { checkError(t, resp, b, http.StatusBadRequest, c.code, c.field) })
		}
		if n := countRows(t, bdb, "tasks") + countRows(t, bdb, "task_abilities"); n != 0 {
			t.Errorf("refused tasks stored %d rows", n)
		}

		// A refused edit changes nothing.
		task := s.taskDo(t, http.MethodPost, "/v1/tasks", customer.token, taskJSON(t, ids, 1, nil), http.StatusCreated)
		for _, body := range []string{`{}`, `{"ability_ids":[9999]}`, `{"helpers_wanted":11}`,
			fmt.Sprintf(`{"small_category_id":%d}`, ids.small["논문검색"])} {
			resp, b := s.do(t, request{method: http.MethodPatch, path: "/v1/tasks/" + task.ID, token: customer.token, body: body})
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("PATCH %s: status = %d (body %s)", body, resp.StatusCode, b)
			}
		}
		got := s.taskDo(t, http.MethodGet, "/v1/tasks/"+task.ID, customer.token, "", http.StatusOK)
		if got.Helpers == nil || len(*got.Helpers) != 0 {
			t.Errorf("helpers of a new task = %v, want []", got.Helpers)
		}
		if got.Helpers = nil; fmt.Sprint(got) != fmt.Sprint(task) {
			t.Errorf("after refused edits %+v, want %+v", got, task)
		}
	})
}

func TestTaskListMine(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)
		customer := s.member(t, "customer")
		other := s.member(t, "other")
		ids := s.skillIDs(t, customer.token)
		var made []string
		for i := 0; i < 5; i++ {
			made = append(made, s.taskDo(t, http.MethodPost, "/v1/tasks", customer.token,
				taskJSON(t, ids, 1, map[string]any{"title": fmt.Sprint("task ", i)}), http.StatusCreated).ID)
		}
		s.taskDo(t, http.MethodPost, "/v1/tasks", other.token, taskJSON(t, ids, 1, nil), http.StatusCreated)
		var got []string
		cursor := ""
		for pages := 0; ; pages++ {
			var page struct {
				Tasks      []taskBody `json:"tasks"`
				NextCursor *string    `json:"next_cursor"`
			}
			s.getOK(t, "/v1/tasks/mine?limit=2&cursor="+cursor, customer.token, &page)
			for _, tk := range page.Tasks {
				got = append(got, tk.ID)
			}
			if page.NextCursor == nil {
				break
			}
			cursor = *page.NextCursor
			if pages > 5 {
				t.Fatal("no end of pages")
			}
		}
		if fmt.Sprint(got) != fmt.Sprint([]string{made[4], made[3], made[2], made[1], made[0]}) {
			t.Errorf("mine = %v, want newest first of %v", got, made)
		}
		resp, b := s.do(t, request{method: http.MethodGet, path: "/v1/tasks/mine?cursor=" + made[0], token: other.token})
		checkError(t, resp, b, http.StatusBadRequest, "invalid", "cursor")
	})
}
