package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/jobs"
)

func TestAdminNotify(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)
		mina := s.signup(t, "mina@example.com", "mina")
		joon := s.signup(t, "joon@example.com", "joon")
		member := s.login(t, "joon@example.com")
		count := func() (notifications, fanouts int) {
			n, err := bdb.NewSelect().Table("notifications").Count(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			f, err := bdb.NewSelect().Model((*db.OutboxRow)(nil)).Where("type = ?", jobs.TypeNotifyFanout).Count(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			return int(n), int(f)
		}
		const path = "/v1/admin/notifications"
		for _, tt := range []struct {
			name       string
			auth       basicAuth
			token      string
			body       string
			wantStatus int
			wantCode   string
			wantField  string
		}{
			{"no credentials", authNone, "", `{"member_ids":["x"],"type":"TASK_DONE"}`, 401, "unauthorized", ""},
			{"member token", authNone, member.AccessToken, `{"member_ids":["x"],"type":"TASK_DONE"}`, 403, "forbidden", ""},
			{"unknown type", authAdmin, "", `{"member_ids":["` + mina.ID + `"],"type":"PARTY"}`, 400, "invalid", "type"},
			{"no type", authAdmin, "", `{"member_ids":["` + mina.ID + `"]}`, 400, "invalid", "type"},
			{"no members", authAdmin, "", `{"member_ids":[],"type":"TASK_DONE"}`, 400, "invalid", "member_ids"},
			{"unknown arg", authAdmin, "", `{"member_ids":["` + mina.ID + `"],"type":"TASK_DONE","args":{"color":"red"}}`, 400, "invalid", "color"},
			{"malformed", authAdmin, "", `{"member_ids":`, 400, "invalid_json", ""},
			{"starts_at not a date", authAdmin, "", `{"member_ids":["` + mina.ID + `"],"type":"RUN_DDAY","args":{"title":"Han river","starts_at":"notadate"}}`, 400, "invalid", ""},
			{"starts_at a number", authAdmin, "", `{"member_ids":["` + mina.ID + `"],"type":"RUN_DDAY","args":{"title":"Han river","starts_at":5}}`, 400, "invalid", ""},
			{"run reminder without its time", authAdmin, "", `{"member_ids":["` + mina.ID + `"],"type":"RUN_DDAY","args":{"title":"Han river"}}`, 400, "invalid", "args.starts_at"},
			{"task text without its title", authAdmin, "", `{"member_ids":["` + mina.ID + `"],"type":"TASK_DONE","args":{"title":"  "}}`, 400, "invalid", "args.title"},
			{"match without its members", authAdmin, "", `{"member_ids":["` + mina.ID + `"],"type":"MATCH_CONFIRMED"}`, 400, "invalid", "args.members"},
			{"unknown member", authAdmin, "", `{"member_ids":["` + mina.ID + `","nobody","nobody"],"type":"MATCH_CONFIRMED","args":{"members":["mina"]}}`, 404, "not_found", "member_ids"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				resp, body := s.do(t, request{method: http.MethodPost, path: path, auth: tt.auth, token: tt.token, body: tt.body})
				checkError(t, resp, body, tt.wantStatus, tt.wantCode, tt.wantField)
				if tt.wantStatus == http.StatusNotFound && !strings.Contains(string(body), `No such members: nobody.`) {
					t.Errorf("answer does not name the unknown id once: %s", body)
				}
				if n, f := count(); n != 0 || f != 0 {
					t.Errorf("stored %d notifications, %d fan-out tasks", n, f)
				}
			})
		}
		resp, body := s.do(t, request{method: http.MethodPost, path: path, auth: authAdmin,
			body: `{"member_ids":["` + mina.ID + `","` + joon.ID + `"],"type":"MATCH_CONFIRMED","args":{"members":["mina","joon"]}}`})
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("status = %d (body %s)", resp.StatusCode, body)
		}
		var got struct {
			Notifications []struct {
				ID   string `json:"id"`
				Type string `json:"type"`
			} `json:"notifications"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Notifications) != 2 || got.Notifications[0].Type != "MATCH_CONFIRMED" {
			t.Errorf("answer %s", body)
		}
		if n, f := count(); n != 2 || f != 1 {
			t.Errorf("stored %d notifications, %d fan-out tasks; want 2 and one task for the group", n, f)
		}
	})
}
