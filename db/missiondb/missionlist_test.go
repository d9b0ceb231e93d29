package missiondb_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/db/missiondb"
	"github.com/moim/moim/domain"
)

func missionIDs(ms []domain.Mission) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// allPages follows the cursor from the first page to the last.
func allPages(t *testing.T, list func(cursor string) (missiondb.MissionPage, error)) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for range 20 {
		p, err := list(cursor)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, missionIDs(p.Missions)...)
		if p.Next == "" {
			return ids
		}
		cursor = p.Next
	}
	t.Fatal("pages never end")
	return nil
}

func TestMissionList(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		host, _ := missionMember(t, bdb, "host", 100_000)
		// a: 4 seats, 3 left; b: 3 seats, 1 left after 1 join; c: 2 seats, full;
		// d: private; e: UNACTIVATED; f: 100%_title, 5 seats.
		mk := func(title string, capacity int, private, ready bool, minute int, typ domain.MissionType) *domain.Mission {
			m := readyMission(host, 100, capacity)
			m.Title, m.Private, m.Type = title, private, typ
			m.CreatedAt = missionTime.Add(time.Duration(minute) * time.Minute)
			if !ready {
				m.Windows = nil
			}
			return mustCreateMission(t, bdb, m)
		}
		a := mk("Morning run", 4, false, true, 1, domain.MissionExercise)
		b := mk("Read a book", 3, false, true, 2, domain.MissionStudy)
		c := mk("Pair walk", 2, false, true, 3, domain.MissionExercise)
		d := mk("Secret club", 4, true, true, 4, domain.MissionLife)
		e := mk("Draft plan", 4, false, false, 5, domain.MissionEtc)
		f := mk("100%_title", 5, false, true, 6, domain.MissionEtc)
		for i, m := range []*domain.Mission{b, c} {
			id, _ := missionMember(t, bdb, fmt.Sprintf("j%d", i), 1000)
			if err := joinMission(ctx, bdb, m.ID, id, "", missionTime); err != nil {
				t.Fatal(err)
			}
		}
		list := func(f missiondb.MissionFilter) []string {
			return allPages(t, func(cursor string) (missiondb.MissionPage, error) {
				f.Cursor, f.Limit, f.Now = cursor, 2, missionTime
				return (missiondb.Missions{}).List(ctx, bdb, f)
			})
		}
		tests := []struct {
			name string
			f    missiondb.MissionFilter
			want []string
		}{
			{"new", missiondb.MissionFilter{}, []string{f.ID, b.ID, a.ID}},
			{"hot", missiondb.MissionFilter{Sort: missiondb.MissionSortHot}, []string{b.ID, a.ID, f.ID}},
			{"type", missiondb.MissionFilter{Type: domain.MissionExercise}, []string{a.ID}},
			{"q", missiondb.MissionFilter{Q: "RUN"}, []string{a.ID}},
			{"q wildcards are literal", missiondb.MissionFilter{Q: "0%_"}, []string{f.ID}},
			{"q underscore", missiondb.MissionFilter{Q: "d_a"}, nil},
			{"code finds private", missiondb.MissionFilter{Code: d.Code}, []string{d.ID}},
			{"code finds unactivated", missiondb.MissionFilter{Code: e.Code}, []string{e.ID}},
			{"code and type", missiondb.MissionFilter{Code: d.Code, Type: domain.MissionEtc}, nil},
		}
		for _, tc := range tests {
			if got := list(tc.f); !slices.Equal(got, tc.want) {
				t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
			}
		}
		// Started missions are not listed.
		if got, err := (missiondb.Missions{}).List(ctx, bdb, missiondb.MissionFilter{Limit: 10, Now: a.Schedule.StartsAt}); err != nil || len(got.Missions) != 0 {
			t.Errorf("after the start: %v, %v", missionIDs(got.Missions), err)
		}
		_, err := (missiondb.Missions{}).List(ctx, bdb, missiondb.MissionFilter{Limit: 2, Cursor: "nope", Now: missionTime})
		dbtest.CheckCode(t, err, domain.EINVALID, "cursor")
		_, err = (missiondb.Missions{}).List(ctx, bdb, missiondb.MissionFilter{Sort: missiondb.MissionSortHot, Limit: 2, Cursor: "x." + a.ID, Now: missionTime})
		dbtest.CheckCode(t, err, domain.EINVALID, "cursor")
	})
}

func TestMissionMine(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		host, _ := missionMember(t, bdb, "host", 100_000)
		other, _ := missionMember(t, bdb, "other", 100_000)
		mk := func(h string, minute int) *domain.Mission {
			m := readyMission(h, 100, 4)
			m.CreatedAt = missionTime.Add(time.Duration(minute) * time.Minute)
			return mustCreateMission(t, bdb, m)
		}
		h1, h2, h3 := mk(host, 1), mk(host, 2), mk(host, 3)
		o1, o2 := mk(other, 4), mk(other, 5)
		for _, m := range []*domain.Mission{o1, o2} {
			if err := joinMission(ctx, bdb, m.ID, host, "", missionTime); err != nil {
				t.Fatal(err)
			}
		}
		for _, m := range []*domain.Mission{h3, o2} {
			if _, err := (missiondb.Missions{}).Cancel(ctx, bdb, mustFindMission(t, bdb, m.ID), missionTime); err != nil {
				t.Fatal(err)
			}
		}
		mine := func(who string, role missiondb.MissionRole) []string {
			return allPages(t, func(cursor string) (missiondb.MissionPage, error) {
				return (missiondb.Missions{}).Mine(ctx, bdb, who, role, cursor, 1)
			})
		}
		for _, tc := range []struct {
			name string
			who  string
			role missiondb.MissionRole
			want []string
		}{
			{"hosting", host, missiondb.MissionRoleHosting, []string{h2.ID, h1.ID}},
			{"joined", host, missiondb.MissionRoleJoined, []string{o1.ID}},
			{"finished", host, missiondb.MissionRoleFinished, []string{o2.ID, h3.ID}},
			{"other hosting", other, missiondb.MissionRoleHosting, []string{o1.ID}},
			{"other joined", other, missiondb.MissionRoleJoined, nil},
		} {
			if got := mine(tc.who, tc.role); !slices.Equal(got, tc.want) {
				t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
			}
		}
	})
}
