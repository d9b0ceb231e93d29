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
	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
)

// newImageRoomServer is newRoomServer with a local store in a temporary
// directory.
func newImageRoomServer(t *testing.T, bdb *bun.DB) (*testServer, *roomClock) {
	t.Helper()
	var clock *roomClock
	s, clock := newRoomServer(t, newEnv(t, bdb), 0, func(d *httpapi.Deps) {
		d.Storage = newStore(t, t.TempDir(), func() time.Time { return clock.Now() })
	})
	return s, clock
}

// uploadImage uploads a 400×400 JPEG for purpose and returns its id.
func (s *testServer) uploadImage(t testing.TB, token, purpose string) string {
	t.Helper()
	resp, raw := s.upload(t, token, filePart(testJPEG(t, 400, 400), "image/jpeg"), purposePart(purpose))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("upload: status = %d, want 202 (body %s)", resp.StatusCode, raw)
	}
	var img imageBody
	decodeStrict(t, raw, &img)
	return img.ID
}

// deleteTasks returns the image ids of the image:delete tasks in the
// outbox, sorted.
func deleteTasks(t testing.TB, bdb *bun.DB) []string {
	t.Helper()
	var ids []string
	for _, p := range imagePayloads(t, bdb, jobs.TypeImageDelete) {
		ids = append(ids, p.ImageID)
	}
	slices.Sort(ids)
	return ids
}

func sorted(ids ...string) []string { slices.Sort(ids); return ids }

// imageIDs lists the ids of attached images.
func imageIDs(imgs []attachedImageBody) []string {
	var ids []string
	for _, img := range imgs {
		ids = append(ids, img.ID)
	}
	return ids
}

func TestRoomImages(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		s, clock := newImageRoomServer(t, bdb)
		host, other := s.randomMember(t, "host"), s.randomMember(t, "other")
		a, b, c, d := s.uploadImage(t, host.token, "room"), s.uploadImage(t, host.token, "room"),
			s.uploadImage(t, host.token, "room"), s.uploadImage(t, host.token, "room")
		theirs := s.uploadImage(t, other.token, "room")
		avatar := s.uploadImage(t, host.token, "avatar")
		failed := s.uploadImage(t, host.token, "room")
		if _, err := (db.Images{}).Finish(ctx, bdb, failed, domain.ImageFailed, nil, "corrupt", clock.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := (db.Images{}).Finish(ctx, bdb, b, domain.ImageReady, domain.ImageVariants(), "", clock.Now()); err != nil {
			t.Fatal(err)
		}

		r := s.createRoom(t, host.token, roomJSON(t, map[string]any{"image_ids": []string{b, a}}))
		if got := imageIDs(r.Images); !slices.Equal(got, []string{b, a}) {
			t.Fatalf("created room's images = %v, want [%s %s]", got, b, a)
		}
		ready, processing := r.Images[0], r.Images[1]
		if ready.Status != "READY" || processing.Status != "PROCESSING" {
			t.Errorf("statuses %s, %s; want READY, PROCESSING", ready.Status, processing.Status)
		}
		if len(ready.URLs) != 4 || ready.URLs["w384"] == ready.URLs["original"] ||
			len(processing.URLs) != 4 || processing.URLs["w384"] != processing.URLs["original"] {
			t.Errorf("urls %v and %v; want a URL per variant, the original's while processing", ready.URLs, processing.URLs)
		}
		if resp, _ := s.fetch(t, http.MethodGet, processing.URLs["original"], nil); resp.StatusCode != http.StatusOK {
			t.Errorf("GET the original: status %d", resp.StatusCode)
		}
		if got := imageIDs(s.getRoom(t, other.token, r.ID).Images); !slices.Equal(got, []string{b, a}) {
			t.Errorf("GET room: images %v", got)
		}
		plain := s.createRoom(t, host.token, roomJSON(t, nil))
		list, _ := s.listRooms(t, other.token, "")
		if len(list.Rooms) != 2 || list.Rooms[0].ID != plain.ID || len(list.Rooms[0].Images) != 0 ||
			!slices.Equal(imageIDs(list.Rooms[1].Images), []string{b, a}) {
			t.Errorf("list: %+v", list.Rooms)
		}

		rowsBefore := countRoomRows(t, bdb)
		for _, tc := range []struct {
			name   string
			ids    []string
			status int
			code   string
		}{
			{"a fourth photo", []string{c, d, failed, theirs}, http.StatusBadRequest, "invalid"},
			{"twice the same", []string{c, c}, http.StatusBadRequest, "invalid"},
			{"someone else's", []string{c, theirs}, http.StatusForbidden, "forbidden"},
			{"a failed image", []string{failed}, http.StatusBadRequest, "invalid"},
			{"an avatar", []string{avatar}, http.StatusBadRequest, "invalid"},
			{"unknown", []string{"nope"}, http.StatusNotFound, "not_found"},
			{"another room's", []string{c, a}, http.StatusConflict, "conflict"},
		} {
			resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/rooms", token: host.token,
				body: roomJSON(t, map[string]any{"image_ids": tc.ids})})
			t.Run(tc.name, func(t *testing.T) { checkError(t, resp, body, tc.status, tc.code, "image_ids") })
		}
		if got := countRoomRows(t, bdb); got != rowsBefore {
			t.Errorf("refused rooms left rows: %+v, want %+v", got, rowsBefore)
		}
		resp, body := s.do(t, request{method: http.MethodPatch, path: "/v1/rooms/" + r.ID, token: host.token,
			body: `{"image_ids":["` + c + `","` + theirs + `"]}`})
		checkError(t, resp, body, http.StatusForbidden, "forbidden", "image_ids")
		if got := deleteTasks(t, bdb); len(got) != 0 {
			t.Errorf("delete tasks after refusals: %v", got)
		}

		// PATCH replaces the list; the photo dropped is deleted by a task.
		resp, body = s.do(t, request{method: http.MethodPatch, path: "/v1/rooms/" + r.ID, token: host.token,
			body: `{"image_ids":["` + a + `","` + c + `","` + d + `"]}`})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PATCH: status %d (body %s)", resp.StatusCode, body)
		}
		if got := imageIDs(decodeRoom(t, body, false).Images); !slices.Equal(got, []string{a, c, d}) {
			t.Errorf("PATCH: images %v", got)
		}
		if got := deleteTasks(t, bdb); !slices.Equal(got, []string{b}) {
			t.Errorf("delete tasks after PATCH = %v, want [%s]", got, b)
		}
		if got := imageIDs(s.getRoom(t, host.token, r.ID).Images); !slices.Equal(got, []string{a, c, d}) {
			t.Errorf("GET after PATCH: images %v", got)
		}
		// A PATCH without image_ids keeps them.
		resp, body = s.do(t, request{method: http.MethodPatch, path: "/v1/rooms/" + r.ID, token: host.token, body: `{"title":"Brunch"}`})
		if resp.StatusCode != http.StatusOK || !slices.Equal(imageIDs(decodeRoom(t, body, false).Images), []string{a, c, d}) {
			t.Errorf("PATCH title: status %d, body %s", resp.StatusCode, body)
		}

		// Cancelling the room deletes its photos.
		resp, body = s.do(t, request{method: http.MethodDelete, path: "/v1/rooms/" + r.ID, token: host.token})
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE: status %d (body %s)", resp.StatusCode, body)
		}
		if got, want := deleteTasks(t, bdb), sorted(a, b, c, d); !slices.Equal(got, want) {
			t.Errorf("delete tasks after DELETE = %v, want %v", got, want)
		}
	})
}

func TestAvatar(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, _ := newImageRoomServer(t, bdb)
		me, other := s.randomMember(t, "mina"), s.randomMember(t, "joon")
		first, second := s.uploadImage(t, me.token, "avatar"), s.uploadImage(t, me.token, "avatar")
		photo := s.uploadImage(t, me.token, "room")
		theirs := s.uploadImage(t, other.token, "avatar")

		patch := func(body string) (*http.Response, []byte) {
			return s.do(t, request{method: http.MethodPatch, path: "/v1/me", token: me.token, body: body})
		}
		avatarOf := func() (mine, public *attachedImageBody) {
			t.Helper()
			var m memberBody
			s.getOK(t, "/v1/me", me.token, &m)
			var pub struct {
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
			s.getOK(t, "/v1/members/"+me.ID, other.token, &pub)
			return m.Avatar, pub.Avatar
		}
		set := func(body, want string) {
			t.Helper()
			resp, raw := patch(body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("PATCH %s: status %d (body %s)", body, resp.StatusCode, raw)
			}
			var m memberBody
			decodeStrict(t, raw, &m)
			mine, public := avatarOf()
			for name, a := range map[string]*attachedImageBody{"PATCH": m.Avatar, "GET /v1/me": mine, "GET /v1/members": public} {
				switch {
				case want == "" && a != nil:
					t.Errorf("%s after %s: avatar %+v, want null", name, body, a)
				case want != "" && (a == nil || a.ID != want || a.URLs["c380"] == ""):
					t.Errorf("%s after %s: avatar %+v, want %s with URLs", name, body, a, want)
				}
			}
		}

		if mine, _ := avatarOf(); mine != nil {
			t.Fatalf("a new member's avatar = %+v, want null", mine)
		}
		set(`{"avatar_image_id":"`+first+`"}`, first)
		for _, tc := range []struct {
			body   string
			status int
			code   string
		}{
			{`{"avatar_image_id":"` + photo + `"}`, http.StatusBadRequest, "invalid"},
			{`{"avatar_image_id":"` + theirs + `"}`, http.StatusForbidden, "forbidden"},
			{`{"avatar_image_id":""}`, http.StatusBadRequest, "invalid"},
			{`{"avatar_image_id":7}`, http.StatusBadRequest, "invalid"},
			{`{"avatar_image_id":"nope"}`, http.StatusNotFound, "not_found"},
		} {
			resp, raw := patch(tc.body)
			checkError(t, resp, raw, tc.status, tc.code, "avatar_image_id")
		}
		if mine, _ := avatarOf(); mine == nil || mine.ID != first {
			t.Errorf("refused changes moved the avatar: %+v", mine)
		}
		if got := deleteTasks(t, bdb); len(got) != 0 {
			t.Errorf("delete tasks = %v, want none yet", got)
		}
		set(`{"avatar_image_id":"`+first+`"}`, first) // the same again: nothing to delete
		set(`{"avatar_image_id":"`+second+`"}`, second)
		if got := deleteTasks(t, bdb); !slices.Equal(got, []string{first}) {
			t.Errorf("delete tasks after a replace = %v, want [%s]", got, first)
		}
		set(`{"avatar_image_id":null}`, "")
		set(`{"avatar_image_id":null}`, "")
		if got, want := deleteTasks(t, bdb), sorted(first, second); !slices.Equal(got, want) {
			t.Errorf("delete tasks after removing = %v, want %v", got, want)
		}

		// Deleting the account deletes the avatar and the photos of the
		// rooms it cancels.
		third := s.uploadImage(t, me.token, "avatar")
		set(`{"avatar_image_id":"`+third+`"}`, third)
		s.createRoom(t, me.token, roomJSON(t, map[string]any{"image_ids": []string{photo}}))
		resp, raw := s.do(t, request{method: http.MethodDelete, path: "/v1/me", token: me.token})
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE /v1/me: status %d (body %s)", resp.StatusCode, raw)
		}
		if got, want := deleteTasks(t, bdb), sorted(first, second, third, photo); !slices.Equal(got, want) {
			t.Errorf("delete tasks after deleting the account = %v, want %v", got, want)
		}
	})
}
