package httpapi_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db/dbtest"
)

// TestMissionJoinRaceAPI: 50 members with exactly the stake join an 8-seat
// mission at once through the API. 7 join (the host is the eighth), 43 are
// refused as full with their balance untouched, and every balance is the
// sum of its entries.
func TestMissionJoinRaceAPI(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, _ := newMissionServer(t, bdb)
		host := s.pointMember(t, bdb, "host", 1000)
		m := s.createMission(t, host.token, missionJSON(t, map[string]any{"capacity": 8}))
		const n = 50
		racers := make([]randomMember, n)
		for i := range racers {
			racers[i] = s.pointMember(t, bdb, fmt.Sprintf("racer%02d", i), 1000)
		}
		statuses := make([]int, n)
		bodies := make([][]byte, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				<-start
				resp, b := s.do(t, request{method: http.MethodPost, path: "/v1/missions/" + m.ID + "/members", token: racers[i].token})
				statuses[i], bodies[i] = resp.StatusCode, b
			})
		}
		close(start)
		wg.Wait()
		joined := 0
		for i, st := range statuses {
			want := int64(1000)
			switch st {
			case http.StatusCreated:
				joined++
				want = 0
			case http.StatusConflict:
				if code := errorCodeOf(t, bodies[i]); code != "mission_full" {
					t.Errorf("racer %d refused with %q", i, code)
				}
			default:
				t.Errorf("racer %d: status %d (body %s)", i, st, bodies[i])
			}
			if got := pointBalance(t, bdb, racers[i].ID); got != want {
				t.Errorf("racer %d (status %d): balance %d, want %d", i, st, got, want)
			}
		}
		if joined != 7 {
			t.Errorf("%d joined, want 7", joined)
		}
		if got := s.getMission(t, host.token, m.ID); got.MemberCount != 8 || got.SeatsLeft != 0 || len(got.Members) != 8 {
			t.Errorf("mission after the race: count %d, seats %d, %d members", got.MemberCount, got.SeatsLeft, len(got.Members))
		}
		checkLedgerAPI(t, bdb)
	})
}

// TestMissionJoinTwoAtOnceAPI: a member with points for one stake joins
// two missions at once; exactly one join succeeds, the other is refused
// for want of points.
func TestMissionJoinTwoAtOnceAPI(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		s, _ := newMissionServer(t, bdb)
		host := s.pointMember(t, bdb, "host", 100_000)
		const rounds = 4
		for round := range rounds {
			a := s.createMission(t, host.token, missionJSON(t, nil))
			b := s.createMission(t, host.token, missionJSON(t, nil))
			who := s.pointMember(t, bdb, fmt.Sprintf("twice%d", round), 1000)
			statuses := make([]int, 2)
			bodies := make([][]byte, 2)
			var wg sync.WaitGroup
			for i, id := range []string{a.ID, b.ID} {
				wg.Go(func() {
					resp, body := s.do(t, request{method: http.MethodPost, path: "/v1/missions/" + id + "/members", token: who.token})
					statuses[i], bodies[i] = resp.StatusCode, body
				})
			}
			wg.Wait()
			ok := 0
			for i, st := range statuses {
				switch st {
				case http.StatusCreated:
					ok++
				case http.StatusConflict:
					if code := errorCodeOf(t, bodies[i]); code != "insufficient_points" {
						t.Errorf("round %d: refused with %q", round, code)
					}
				default:
					t.Errorf("round %d: status %d (body %s)", round, st, bodies[i])
				}
			}
			if got := pointBalance(t, bdb, who.ID); ok != 1 || got != 0 {
				t.Errorf("round %d: %d joins, balance %d", round, ok, got)
			}
		}
		checkLedgerAPI(t, bdb)
	})
}
