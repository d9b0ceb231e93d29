package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db/dbtest"
)

type commentBody struct {
	ID       string  `json:"id"`
	RoomID   string  `json:"room_id"`
	ParentID *string `json:"parent_id"`
	Author   *struct {
		ID       string `json:"id"`
		Nickname string `json:"nickname"`
	} `json:"author"`
	Body      *string       `json:"body"`
	Deleted   bool          `json:"deleted"`
	Mine      bool          `json:"mine"`
	CreatedAt string        `json:"created_at"`
	UpdatedAt string        `json:"updated_at"`
	Replies   []commentBody `json:"replies"`
}

type commentListBody struct {
	Comments   []commentBody `json:"comments"`
	NextCursor *string       `json:"next_cursor"`
}

func countComments(t testing.TB, bdb *bun.DB) int {
	t.Helper()
	n, err := bdb.NewSelect().Table("comments").Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

func (s *testServer) comment(t testing.TB, token, roomID, body string) commentBody {
	t.Helper()
	resp, b := s.do(t, request{method: http.MethodPost, path: "/v1/rooms/" + roomID + "/comments", token: token, body: body})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST comment %s: status %d (body %s)", body, resp.StatusCode, b)
	}
	var c commentBody
	decodeStrict(t, b, &c)
	if loc := resp.Header.Get("Location"); loc != "/v1/comments/"+c.ID {
		t.Errorf("Location = %q", loc)
	}
	return c
}

func TestComments(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, _ := newRoomServer(t, newEnv(t, bdb), 0, nil)
		host, mina, jun := s.randomMember(t, "host"), s.randomMember(t, "mina"), s.randomMember(t, "jun")
		r := s.createRoom(t, host.token, roomJSON(t, nil))
		path := "/v1/rooms/" + r.ID + "/comments"

		top := s.comment(t, mina.token, r.ID, `{"body":"  몇 시에 만나요?  "}`)
		if top.Body == nil || *top.Body != "몇 시에 만나요?" || top.ParentID != nil || top.Author == nil || top.Author.ID != mina.ID ||
			top.Author.Nickname != "mina" || !top.Mine || top.RoomID != r.ID || top.Deleted {
			t.Errorf("comment %+v", top)
		}
		// The host hears of a comment; nobody of their own.
		if n := s.notificationsOf(t, host.token, "COMMENT_ON_MY_ROOM"); len(n) != 1 || n[0].Args["comment_id"] != top.ID ||
			n[0].Args["actor"] != "mina" || n[0].Args["excerpt"] != "몇 시에 만나요?" {
			t.Errorf("host's notifications %+v", n)
		}
		s.comment(t, host.token, r.ID, `{"body":"공지: 늦지 마세요"}`)
		if n := s.notificationsOf(t, host.token, "COMMENT_ON_MY_ROOM"); len(n) != 1 {
			t.Errorf("host notified of their own comment: %d", len(n))
		}
		// A reply by the host tells the parent's author only; a reply by a
		// third member tells the author and the host.
		reply := s.comment(t, host.token, r.ID, `{"body":"12시 반이요","parent_id":"`+top.ID+`"}`)
		if reply.ParentID == nil || *reply.ParentID != top.ID {
			t.Errorf("reply %+v", reply)
		}
		s.comment(t, jun.token, r.ID, `{"body":"저도 갈게요","parent_id":"`+top.ID+`"}`)
		if n := s.notificationsOf(t, mina.token, "REPLY_ON_MY_COMMENT"); len(n) != 2 {
			t.Errorf("mina got %d replies, want 2", len(n))
		}
		if n := s.notificationsOf(t, host.token, "COMMENT_ON_MY_ROOM"); len(n) != 2 {
			t.Errorf("host got %d comment notices, want 2", len(n))
		}

		before := countComments(t, bdb)
		for _, tc := range []struct {
			body, code, field string
			status            int
		}{
			{`{"body":""}`, "invalid", "body", 400},
			{`{"body":"` + strings.Repeat("a", 1001) + `"}`, "invalid", "body", 400},
			{`{"body":"a\u202Eb"}`, "invalid", "body", 400},
			{`{"body":"a\u200Bb"}`, "invalid", "body", 400},
			{`{"body":"x","parent_id":"` + reply.ID + `"}`, "invalid", "parent_id", 400},
			{`{"body":"x","parent_id":"nope"}`, "not_found", "parent_id", 404},
			{`{"body":"x","parent_id":""}`, "invalid", "parent_id", 400},
			{`{"body":"x","level":2}`, "invalid", "level", 400},
			{`{"text":"x"}`, "invalid", "text", 400},
		} {
			resp, b := s.do(t, request{method: http.MethodPost, path: path, token: jun.token, body: tc.body})
			checkError(t, resp, b, tc.status, tc.code, tc.field)
		}
		resp, b := s.do(t, request{method: http.MethodPost, path: "/v1/rooms/nope/comments", token: jun.token, body: `{"body":"x"}`})
		checkError(t, resp, b, 404, "not_found", "")
		if after := countComments(t, bdb); after != before {
			t.Errorf("comments %d → %d after refusals", before, after)
		}

		// Only the author edits or deletes.
		resp, b = s.do(t, request{method: http.MethodPatch, path: "/v1/comments/" + top.ID, token: host.token, body: `{"body":"hijack"}`})
		checkError(t, resp, b, 403, "forbidden", "")
		resp, b = s.do(t, request{method: http.MethodDelete, path: "/v1/comments/" + top.ID, token: jun.token})
		checkError(t, resp, b, 403, "forbidden", "")
		resp, b = s.do(t, request{method: http.MethodPatch, path: "/v1/comments/" + top.ID, token: mina.token, body: `{"body":"몇 시?"}`})
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"몇 시?"`) {
			t.Errorf("edit: %d %s", resp.StatusCode, b)
		}
		resp, _ = s.do(t, request{method: http.MethodDelete, path: "/v1/comments/" + top.ID, token: mina.token})
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("delete: %d", resp.StatusCode)
		}
		resp, b = s.do(t, request{method: http.MethodPatch, path: "/v1/comments/" + top.ID, token: mina.token, body: `{"body":"again"}`})
		checkError(t, resp, b, 404, "not_found", "")

		var list commentListBody
		s.getOK(t, path, jun.token, &list)
		if len(list.Comments) != 2 || list.Comments[0].ID != top.ID || !list.Comments[0].Deleted || list.Comments[0].Body != nil ||
			list.Comments[0].Author != nil ||
			len(list.Comments[0].Replies) != 2 || list.Comments[0].Replies[0].ID != reply.ID || list.Comments[0].Replies[1].Mine != true {
			t.Errorf("list %+v", list)
		}

		// A cancelled room takes no comments.
		resp, _ = s.do(t, request{method: http.MethodDelete, path: "/v1/rooms/" + r.ID, token: host.token})
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("delete room: %d", resp.StatusCode)
		}
		before = countComments(t, bdb)
		resp, b = s.do(t, request{method: http.MethodPost, path: path, token: jun.token, body: `{"body":"x"}`})
		checkError(t, resp, b, 404, "not_found", "")
		if countComments(t, bdb) != before {
			t.Error("a comment on a cancelled room was stored")
		}
	})
}

func TestAttendanceAndEvaluation(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, clock := newRoomServer(t, newEnv(t, bdb), 0, nil)
		host, mina, jun, stranger := s.randomMember(t, "host"), s.randomMember(t, "mina"), s.randomMember(t, "jun"), s.randomMember(t, "stranger")
		r := s.createRoom(t, host.token, roomJSON(t, nil)) // 2026-05-02 12:30 in Seoul, 03:30 UTC
		for _, m := range []randomMember{mina, jun} {
			if got := s.join(t, bdb, clock, m.token, r.ID); got != "JOINED" {
				t.Fatalf("join: %s", got)
			}
		}
		attendance := "/v1/rooms/" + r.ID + "/attendance"
		evaluation := "/v1/rooms/" + r.ID + "/evaluation"
		points := func(id string) int {
			t.Helper()
			var p struct {
				ID            string             `json:"id"`
				Nickname      string             `json:"nickname"`
				MannerPoints  int                `json:"manner_points"`
				Avatar        *attachedImageBody `json:"avatar"`
				Skills        json.RawMessage    `json:"skills"`
				Activity      json.RawMessage    `json:"activity"`
				EmailVerified bool               `json:"email_verified"`
				PhoneVerified bool               `json:"phone_verified"`
				HelperReviews json.RawMessage    `json:"helper_reviews"`
			}
			s.getOK(t, "/v1/members/"+id, stranger.token, &p)
			return p.MannerPoints
		}
		mark := `{"member_ids":["` + mina.ID + `"]}`

		clock.Set(time.Date(2026, 5, 2, 2, 59, 0, 0, time.UTC))
		resp, b := s.do(t, request{method: http.MethodPut, path: attendance, token: host.token, body: mark})
		checkError(t, resp, b, 409, "not_open_yet", "")
		clock.Set(time.Date(2026, 5, 2, 3, 0, 0, 0, time.UTC))
		resp, b = s.do(t, request{method: http.MethodPut, path: attendance, token: mina.token, body: mark})
		checkError(t, resp, b, 403, "forbidden", "")
		resp, b = s.do(t, request{method: http.MethodPut, path: attendance, token: host.token, body: `{"member_ids":["` + stranger.ID + `"]}`})
		checkError(t, resp, b, 409, "not_participating", "member_ids")
		resp, b = s.do(t, request{method: http.MethodPut, path: attendance, token: host.token, body: `{"member_ids":[]}`})
		checkError(t, resp, b, 400, "invalid", "member_ids")
		if points(mina.ID) != 50 {
			t.Fatalf("points changed by refused markings: %d", points(mina.ID))
		}
		for range 2 {
			resp, b = s.do(t, request{method: http.MethodPut, path: attendance, token: host.token, body: mark})
			if resp.StatusCode != 200 {
				t.Fatalf("attendance: %d %s", resp.StatusCode, b)
			}
		}
		if !strings.Contains(string(b), `"marked":[]`) || !strings.Contains(string(b), `"attended":true`) {
			t.Errorf("second marking answered %s", b)
		}
		if points(mina.ID) != 51 || points(jun.ID) != 50 {
			t.Errorf("points mina %d jun %d, want 51 and 50", points(mina.ID), points(jun.ID))
		}
		// A guest who was marked stays: leaving and rejoining would earn
		// another point.
		resp, b = s.do(t, request{method: http.MethodDelete, path: "/v1/rooms/" + r.ID + "/participations/mine", token: mina.token})
		checkError(t, resp, b, 409, "room_closed", "")

		// Evaluation opens an hour after the start (04:30 UTC).
		resp, b = s.do(t, request{method: http.MethodPost, path: evaluation, token: mina.token, body: `{"points":3}`})
		checkError(t, resp, b, 409, "not_open_yet", "")
		clock.Set(time.Date(2026, 5, 2, 4, 30, 0, 0, time.UTC))
		// The host cannot cancel a room that has run, and so dodge it.
		resp, b = s.do(t, request{method: http.MethodDelete, path: "/v1/rooms/" + r.ID, token: host.token})
		checkError(t, resp, b, 409, "room_closed", "")
		for _, body := range []string{`{"points":0}`, `{"points":6}`, `{"points":-6}`, `{}`, `{"points":"3"}`} {
			resp, b = s.do(t, request{method: http.MethodPost, path: evaluation, token: mina.token, body: body})
			checkError(t, resp, b, 400, "invalid", "points")
		}
		resp, b = s.do(t, request{method: http.MethodPost, path: evaluation, token: host.token, body: `{"points":3}`})
		checkError(t, resp, b, 403, "forbidden", "")
		resp, b = s.do(t, request{method: http.MethodPost, path: evaluation, token: stranger.token, body: `{"points":3}`})
		checkError(t, resp, b, 409, "not_participating", "")
		resp, b = s.do(t, request{method: http.MethodPost, path: evaluation, token: mina.token, body: `{"points":3}`})
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("evaluation: %d %s", resp.StatusCode, b)
		}
		resp, b = s.do(t, request{method: http.MethodPost, path: evaluation, token: mina.token, body: `{"points":3}`})
		checkError(t, resp, b, 409, "already_evaluated", "")
		resp, _ = s.do(t, request{method: http.MethodPost, path: evaluation, token: jun.token, body: `{"points":-1}`})
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("jun's evaluation: %d", resp.StatusCode)
		}
		if got := points(host.ID); got != 52 {
			t.Errorf("host has %d points, want 50 + 3 - 1", got)
		}
	})
}

// TestAccountDeletionLeavesRooms: deleting an account cancels the rooms the
// member hosts (their guests hear of it) and takes them out of the rooms
// they joined, which can still be completed.
func TestAccountDeletionLeavesRooms(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, clock := newRoomServer(t, newEnv(t, bdb), 0, nil)
		host, mina, jun := s.randomMember(t, "host"), s.randomMember(t, "mina"), s.randomMember(t, "jun")
		hosted := s.createRoom(t, jun.token, roomJSON(t, nil))
		joined := s.createRoom(t, host.token, roomJSON(t, nil))
		for _, j := range []struct {
			who  randomMember
			room string
		}{{mina, hosted.ID}, {jun, joined.ID}, {mina, joined.ID}} {
			if got := s.join(t, bdb, clock, j.who.token, j.room); got != "JOINED" {
				t.Fatalf("join: %s", got)
			}
		}
		resp, b := s.do(t, request{method: http.MethodDelete, path: "/v1/me", token: jun.token})
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("delete account: %d %s", resp.StatusCode, b)
		}
		resp, b = s.do(t, request{method: http.MethodGet, path: "/v1/rooms/" + hosted.ID, token: mina.token})
		checkError(t, resp, b, 404, "not_found", "")
		if n := s.notificationsOf(t, mina.token, "ROOM_CANCELLED"); len(n) != 1 || n[0].Args["room_id"] != hosted.ID {
			t.Errorf("mina's ROOM_CANCELLED: %+v", n)
		}
		if r := s.getRoom(t, host.token, joined.ID); r.ParticipantCount != 2 || len(r.Participants) != 2 {
			t.Errorf("room jun had joined: %+v", r)
		}
		resp, b = s.do(t, request{method: http.MethodPost, path: "/v1/rooms/" + joined.ID + "/complete", token: host.token})
		if resp.StatusCode != http.StatusOK {
			t.Errorf("complete after a guest deleted their account: %d %s", resp.StatusCode, b)
		}
	})
}

// TestCommentsInAnonymousRoom: outside an anonymous room nobody learns who
// wrote what, from the list or from a reply's notification.
func TestCommentsInAnonymousRoom(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, clock := newRoomServer(t, newEnv(t, bdb), 0, nil)
		host, mina, outsider := s.randomMember(t, "host"), s.randomMember(t, "mina"), s.randomMember(t, "outsider")
		r := s.createRoom(t, host.token, roomJSON(t, map[string]any{"anonymous": true}))
		if got := s.join(t, bdb, clock, mina.token, r.ID); got != "JOINED" {
			t.Fatalf("join: %s", got)
		}
		question := s.comment(t, outsider.token, r.ID, `{"body":"어디서 만나요?"}`)
		s.comment(t, host.token, r.ID, `{"body":"로비요","parent_id":"`+question.ID+`"}`)
		s.comment(t, mina.token, r.ID, `{"body":"저도 궁금"}`)

		var list commentListBody
		s.getOK(t, "/v1/rooms/"+r.ID+"/comments", outsider.token, &list)
		if len(list.Comments) != 2 || len(list.Comments[0].Replies) != 1 {
			t.Fatalf("list %+v", list)
		}
		if a := list.Comments[0].Author; a == nil || a.ID != outsider.ID {
			t.Errorf("the outsider does not see their own comment's author: %+v", a)
		}
		if a := list.Comments[0].Replies[0].Author; a != nil {
			t.Errorf("the outsider sees the host's reply author %+v", a)
		}
		if a := list.Comments[1].Author; a != nil {
			t.Errorf("the outsider sees a participant's comment author %+v", a)
		}
		s.getOK(t, "/v1/rooms/"+r.ID+"/comments", mina.token, &list)
		if a := list.Comments[0].Replies[0].Author; a == nil || a.ID != host.ID {
			t.Errorf("a participant does not see the authors: %+v", a)
		}
		n := s.notificationsOf(t, outsider.token, "REPLY_ON_MY_COMMENT")
		if len(n) != 1 {
			t.Fatalf("outsider's replies: %+v", n)
		}
		if _, ok := n[0].Args["actor"]; ok {
			t.Errorf("the reply notification names the host to an outsider: %+v", n[0].Args)
		}
	})
}
