package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db/dbtest"
)

type skillCategoryBody struct {
	ID            int64  `json:"id"`
	Name          string `json:"name"`
	BigCategoryID *int64 `json:"big_category_id"`
}

type abilityBody struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

type catalogueBody struct {
	Categories []struct {
		ID    int64               `json:"id"`
		Name  string              `json:"name"`
		Small []skillCategoryBody `json:"small"`
	} `json:"categories"`
	Abilities []abilityBody `json:"abilities"`
}

type memberSkillsBody struct {
	PossibleWork []skillCategoryBody `json:"possible_work"`
	Abilities    []abilityBody       `json:"abilities"`
}

// skillIDs are the seeded catalogue's ids by name, read through the API.
type skillIDs struct {
	big, small, ability map[string]int64
}

func (s *testServer) skillIDs(t testing.TB, token string) skillIDs {
	t.Helper()
	var c catalogueBody
	s.getOK(t, "/v1/skills", token, &c)
	ids := skillIDs{big: map[string]int64{}, small: map[string]int64{}, ability: map[string]int64{}}
	for _, b := range c.Categories {
		ids.big[b.Name] = b.ID
		for _, sm := range b.Small {
			ids.small[sm.Name] = sm.ID
		}
	}
	for _, a := range c.Abilities {
		ids.ability[a.Name] = a.ID
	}
	return ids
}

// member signs up and logs in a member, answering its id and token.
type testMember struct{ ID, token string }

func (s *testServer) member(t testing.TB, nickname string) testMember {
	t.Helper()
	m := s.signup(t, nickname+"@example.com", nickname)
	return testMember{ID: m.ID, token: s.login(t, nickname+"@example.com").AccessToken}
}

// admin signs up a member, makes them an admin and logs them in.
func (s *testServer) admin(t testing.TB, bdb *bun.DB, nickname string) testMember {
	t.Helper()
	m := s.signup(t, nickname+"@example.com", nickname)
	if _, err := bdb.NewUpdate().Table("members").Set("role = 2").Where("public_id = ?", m.ID).Exec(t.Context()); err != nil {
		t.Fatal(err)
	}
	return testMember{ID: m.ID, token: s.login(t, nickname+"@example.com").AccessToken}
}

// setSkills PUTs a member's skills and fails unless that works.
func (s *testServer) setSkills(t testing.TB, token string, work, abilities []int64) memberSkillsBody {
	t.Helper()
	body := fmt.Sprintf(`{"possible_work":%s,"abilities":%s}`, jsonInts(work), jsonInts(abilities))
	resp, b := s.do(t, request{method: http.MethodPut, path: "/v1/me/skills", token: token, body: body})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /v1/me/skills: status = %d (body %s)", resp.StatusCode, b)
	}
	var out memberSkillsBody
	decodeStrict(t, b, &out)
	return out
}

func jsonInts(ids []int64) string {
	out := "["
	for i, id := range ids {
		if i > 0 {
			out += ","
		}
		out += fmt.Sprint(id)
	}
	return out + "]"
}

func countRows(t testing.TB, bdb *bun.DB, table string) int {
	t.Helper()
	n, err := bdb.NewSelect().Table(table).Count(t.Context())
	if err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return int(n)
}

func TestSkills(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)
		helper := s.member(t, "helper")
		other := s.member(t, "other")
		ids := s.skillIDs(t, helper.token)
		if len(ids.big) != 5 || len(ids.small) != 7 || len(ids.ability) != 4 || ids.small["논문검색"] == 0 {
			t.Fatalf("catalogue = %+v", ids)
		}

		got := s.setSkills(t, helper.token, []int64{ids.small["초벌 번역"]}, []int64{ids.ability["영어"], ids.ability["기획력"]})
		if len(got.PossibleWork) != 1 || got.PossibleWork[0].Name != "초벌 번역" ||
			got.PossibleWork[0].BigCategoryID == nil || *got.PossibleWork[0].BigCategoryID != ids.big["통번역"] ||
			len(got.Abilities) != 2 {
			t.Fatalf("skills = %+v", got)
		}
		var mine memberSkillsBody
		s.getOK(t, "/v1/me/skills", helper.token, &mine)
		if len(mine.PossibleWork) != 1 || len(mine.Abilities) != 2 {
			t.Errorf("GET /v1/me/skills = %+v", mine)
		}
		// The public profile shows them.
		var pub struct {
			ID            string           `json:"id"`
			Nickname      string           `json:"nickname"`
			MannerPoints  int              `json:"manner_points"`
			Avatar        any              `json:"avatar"`
			Skills        memberSkillsBody `json:"skills"`
			Activity      json.RawMessage  `json:"activity"`
			HelperReviews any              `json:"helper_reviews"`
			EmailVerified bool             `json:"email_verified"`
			PhoneVerified bool             `json:"phone_verified"`
		}
		s.getOK(t, "/v1/members/"+helper.ID, other.token, &pub)
		if len(pub.Skills.PossibleWork) != 1 || pub.Skills.PossibleWork[0].Name != "초벌 번역" || len(pub.Skills.Abilities) != 2 {
			t.Errorf("profile skills = %+v", pub.Skills)
		}

		work, abilities := countRows(t, bdb, "member_possible_work"), countRows(t, bdb, "member_abilities")
		for _, c := range []struct {
			name, body, code, field string
			status                  int
		}{
			{"unknown category", `{"possible_work":[9999]}`, "invalid", "possible_work", 400},
			{"big category", fmt.Sprintf(`{"possible_work":[%d]}`, ids.big["디자인"]), "invalid", "possible_work", 400},
			{"unknown ability", fmt.Sprintf(`{"possible_work":[%d],"abilities":[%d,9999]}`, ids.small["논문검색"], ids.ability["영어"]), "invalid", "abilities", 400},
			{"twice", `{"abilities":[1,1]}`, "invalid", "abilities", 400},
			{"zero id", `{"possible_work":[0]}`, "invalid", "possible_work", 400},
			{"nothing", `{}`, "invalid", "", 400},
			{"not a list", `{"abilities":"영어"}`, "invalid", "abilities", 400},
		} {
			resp, b := s.do(t, request{method: http.MethodPut, path: "/v1/me/skills", token: helper.token, body: c.body})
			checkError(t, resp, b, c.status, c.code, c.field)
		}
		if countRows(t, bdb, "member_possible_work") != work || countRows(t, bdb, "member_abilities") != abilities {
			t.Errorf("a refused PUT changed the skills")
		}
		resp, b := s.do(t, request{method: http.MethodGet, path: "/v1/skills"})
		checkError(t, resp, b, http.StatusUnauthorized, "unauthorized", "")
	})
}

func TestAdminSkillAdd(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s := newServer(t, newEnv(t, bdb), nil, nil)
		member := s.member(t, "member")
		boss := s.admin(t, bdb, "boss")
		ids := s.skillIDs(t, member.token)
		before := countRows(t, bdb, "skill_categories") + countRows(t, bdb, "skill_abilities")

		resp, b := s.do(t, request{method: http.MethodPost, path: "/v1/admin/skills", token: member.token, body: `{"kind":"ability","name":"Go"}`})
		checkError(t, resp, b, http.StatusForbidden, "forbidden", "")
		for _, c := range []struct{ body, code, field string }{
			{`{"kind":"skill","name":"x"}`, "invalid", "kind"},
			{`{"kind":"ability","name":""}`, "invalid", "name"},
			{`{"kind":"ability","name":"x","big_category_id":1}`, "invalid", "big_category_id"},
			{`{"kind":"category","name":"x","big_category_id":9999}`, "invalid", "big_category_id"},
			{fmt.Sprintf(`{"kind":"category","name":"x","big_category_id":%d}`, ids.small["논문검색"]), "invalid", "big_category_id"},
		} {
			resp, b := s.do(t, request{method: http.MethodPost, path: "/v1/admin/skills", token: boss.token, body: c.body})
			checkError(t, resp, b, http.StatusBadRequest, c.code, c.field)
		}
		resp, b = s.do(t, request{method: http.MethodPost, path: "/v1/admin/skills", token: boss.token, body: `{"kind":"ability","name":"영어"}`})
		checkError(t, resp, b, http.StatusConflict, "conflict", "")
		if n := countRows(t, bdb, "skill_categories") + countRows(t, bdb, "skill_abilities"); n != before {
			t.Fatalf("refused adds stored %d entries", n-before)
		}

		add := func(body string) skillCategoryBody {
			t.Helper()
			resp, b := s.do(t, request{method: http.MethodPost, path: "/v1/admin/skills", auth: authAdmin, body: body})
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("add %s: status = %d (body %s)", body, resp.StatusCode, b)
			}
			var c skillCategoryBody
			decodeStrict(t, b, &c)
			return c
		}
		big := add(`{"kind":"category","name":"개발"}`)
		small := add(fmt.Sprintf(`{"kind":"category","name":"백엔드","big_category_id":%d}`, big.ID))
		if big.BigCategoryID != nil || small.BigCategoryID == nil || *small.BigCategoryID != big.ID {
			t.Errorf("added %+v and %+v", big, small)
		}
		var a abilityBody
		resp, b = s.do(t, request{method: http.MethodPost, path: "/v1/admin/skills", token: boss.token, body: `{"kind":"ability","name":"Go"}`})
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("add ability: %d %s", resp.StatusCode, b)
		}
		decodeStrict(t, b, &a)
		after := s.skillIDs(t, member.token)
		if after.small["백엔드"] != small.ID || after.ability["Go"] != a.ID {
			t.Errorf("catalogue after adds = %+v", after)
		}
	})
}
