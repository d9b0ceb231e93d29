package db_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
)

// matchEpoch is a whole-microsecond time, which every dialect keeps exactly.
var matchEpoch = time.Date(2026, 11, 28, 18, 30, 0, 250000000, time.UTC)

// mustStoreMatch stores m with the members and fails the test if that does
// not work.
func mustStoreMatch(t *testing.T, idb bun.IDB, m *domain.Match, memberIDs ...string) *domain.Match {
	t.Helper()
	if _, err := (db.Matches{}).Create(context.Background(), idb, m, memberIDs); err != nil {
		t.Fatalf("Create match of %v: %v", memberIDs, err)
	}
	return m
}

func matchIDs(ms []domain.Match) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func TestMatchesCreateAndFind(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		matches := db.Matches{}
		alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		bob := mustCreate(t, bdb, newMember("bob@example.com", "밥"))
		carol := mustCreate(t, bdb, newMember("carol@example.com", "Carol"))
		kst := time.FixedZone("KST", 9*60*60)

		m := &domain.Match{
			Category:   domain.CategoryMeal,
			Method:     domain.MatchRandom,
			Conditions: domain.Conditions{Places: 0b010, Second: 0b101},
			CreatedAt:  matchEpoch.Add(999 * time.Nanosecond).In(kst),
		}
		// Not in the order they were created: the given order is kept.
		key, err := matches.Create(ctx, bdb, m, []string{carol.ID, alice.ID, bob.ID})
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if key <= 0 || len(m.ID) != 26 {
			t.Errorf("key, ID = %d, %q; want a row id and a 26-character public id", key, m.ID)
		}
		want := &domain.Match{
			ID:         m.ID,
			Category:   domain.CategoryMeal,
			Method:     domain.MatchRandom,
			Conditions: domain.Conditions{Places: 0b010, Second: 0b101},
			Members: []domain.MatchMember{
				{MemberID: carol.ID, Nickname: "Carol"},
				{MemberID: alice.ID, Nickname: "Alice"},
				{MemberID: bob.ID, Nickname: "밥"},
			},
			CreatedAt: matchEpoch,
		}
		if diff := cmp.Diff(want, m); diff != "" {
			t.Errorf("after Create (-want +got):\n%s", diff)
		}
		got, err := matches.FindByID(ctx, bdb, m.ID)
		if err != nil {
			t.Fatalf("FindByID: %v", err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("FindByID (-want +got):\n%s", diff)
		}
		if got.CreatedAt.Location() != time.UTC {
			t.Errorf("CreatedAt in %v, want UTC", got.CreatedAt.Location())
		}

		// The row id is the one MarkMatched refers to.
		a := mustApply(t, bdb, newApplication(alice.ID, domain.CategoryMeal, matchEpoch))
		if ok, err := markMatched(ctx, bdb, *a, key, matchEpoch); err != nil || !ok {
			t.Fatalf("MarkMatched = %v, %v", ok, err)
		}
		if got := mustFindApplication(t, bdb, a.ID); got.MatchID != m.ID {
			t.Errorf("application's MatchID = %q, want %q", got.MatchID, m.ID)
		}

		// A room match without conditions.
		room := mustStoreMatch(t, bdb, &domain.Match{Category: domain.CategoryRun, Method: domain.MatchRoom, CreatedAt: matchEpoch}, bob.ID)
		got, err = matches.FindByID(ctx, bdb, room.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(room, got); diff != "" {
			t.Errorf("room match (-want +got):\n%s", diff)
		}

		// A member who leaves keeps their place and nickname in the history.
		if err := (db.Members{}).Delete(ctx, bdb, carol.ID, matchEpoch.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		got, err = matches.FindByID(ctx, bdb, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want.Members, got.Members); diff != "" {
			t.Errorf("members after a deletion (-want +got):\n%s", diff)
		}

		for _, id := range []string{"nosuchmatch", "", alice.ID} {
			_, err := matches.FindByID(ctx, bdb, id)
			checkCode(t, err, domain.ENOTFOUND, "")
		}
	})
}

func TestMatchesCreateRejects(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		bob := mustCreate(t, bdb, newMember("bob@example.com", "Bob"))
		gone := mustCreate(t, bdb, newMember("gone@example.com", "Gone"))
		if err := (db.Members{}).Delete(ctx, bdb, gone.ID, memberEpoch.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		random := func() *domain.Match {
			return &domain.Match{Category: domain.CategoryMeal, Method: domain.MatchRandom, CreatedAt: matchEpoch}
		}
		with := func(change func(m *domain.Match)) *domain.Match {
			m := random()
			change(m)
			return m
		}

		tests := []struct {
			name     string
			m        *domain.Match
			members  []string
			wantCode string // "" for any error
		}{
			{"unknown member", random(), []string{alice.ID, "nosuchmember"}, domain.ENOTFOUND},
			{"deleted member", random(), []string{gone.ID, alice.ID}, domain.ENOTFOUND},
			{"empty member id", random(), []string{alice.ID, ""}, domain.ENOTFOUND},
			{"no members", random(), nil, ""},
			{"a member twice", random(), []string{alice.ID, bob.ID, alice.ID}, ""},
			{"no category", with(func(m *domain.Match) { m.Category = 0 }), []string{alice.ID, bob.ID}, ""},
			{"no method", with(func(m *domain.Match) { m.Method = 0 }), []string{alice.ID, bob.ID}, ""},
			{"unknown method", with(func(m *domain.Match) { m.Method = domain.MatchRoom + 1 }), []string{alice.ID, bob.ID}, ""},
			{"a room", with(func(m *domain.Match) { m.Method, m.RoomID = domain.MatchRoom, "room1" }), []string{alice.ID, bob.ID}, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := db.Matches{}.Create(ctx, bdb, tt.m, tt.members)
				if err == nil {
					t.Fatal("Create succeeded, want an error")
				}
				if tt.wantCode != "" {
					checkCode(t, err, tt.wantCode, "")
				}
				// In a transaction, as the matcher writes it.
				err = db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
					_, err := db.Matches{}.Create(ctx, tx, tt.m, tt.members)
					return err
				})
				if err == nil {
					t.Fatal("Create in a transaction succeeded, want an error")
				}
				for _, table := range []string{"matches", "match_members"} {
					if n := countRowsIn(t, bdb, table); n != 0 {
						t.Errorf("%d rows in %s after rejected Creates, want 0", n, table)
					}
				}
			})
		}
	})
}

func TestMatchesListForMember(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		matches := db.Matches{}
		alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		bob := mustCreate(t, bdb, newMember("bob@example.com", "Bob"))
		carol := mustCreate(t, bdb, newMember("carol@example.com", "Carol"))
		dave := mustCreate(t, bdb, newMember("dave@example.com", "Dave"))

		// 25 of Alice's: categories and methods in turn, with Bob in every
		// third; each pair created at the same instant, so the id breaks
		// the tie. Carol has some of her own in between.
		var mine, withBob []*domain.Match
		for i := range 25 {
			m := &domain.Match{
				Category:  []domain.Category{domain.CategoryMeal, domain.CategoryStudy, domain.CategoryRun}[i%3],
				Method:    []domain.MatchMethod{domain.MatchRandom, domain.MatchRoom}[i%2],
				CreatedAt: matchEpoch.Add(time.Duration(i/2) * time.Minute),
			}
			others := []string{carol.ID}
			if i%3 == 0 {
				others = []string{bob.ID}
			}
			mine = append(mine, mustStoreMatch(t, bdb, m, append([]string{alice.ID}, others...)...))
			if i%3 == 0 {
				withBob = append(withBob, m)
			}
			if i%4 == 0 {
				mustStoreMatch(t, bdb, &domain.Match{Category: domain.CategoryMeal, Method: domain.MatchRandom,
					CreatedAt: m.CreatedAt}, carol.ID, dave.ID)
			}
		}
		newestFirst := func(ms []*domain.Match, keep func(*domain.Match) bool) []domain.Match {
			out := []domain.Match{}
			for i := len(ms) - 1; i >= 0; i-- {
				if keep == nil || keep(ms[i]) {
					out = append(out, *ms[i])
				}
			}
			return out
		}
		all := func(f db.MatchFilter, member string) ([]domain.Match, []int) {
			t.Helper()
			var (
				got   []domain.Match
				sizes []int
			)
			for page := 0; ; page++ {
				if page > 30 {
					t.Fatalf("still paging after %d pages", page)
				}
				p, err := matches.ListForMember(ctx, bdb, member, f)
				if err != nil {
					t.Fatalf("ListForMember page %d: %v", page+1, err)
				}
				got = append(got, p.Matches...)
				sizes = append(sizes, len(p.Matches))
				if p.Next == "" {
					return got, sizes
				}
				if p.Next == f.Cursor {
					t.Fatalf("page %d: Next = %q, the cursor it was given", page+1, p.Next)
				}
				f.Cursor = p.Next
			}
		}

		got, sizes := all(db.MatchFilter{Limit: 10}, alice.ID)
		if diff := cmp.Diff([]int{10, 10, 5}, sizes); diff != "" {
			t.Errorf("page sizes (-want +got):\n%s", diff)
		}
		// Members come along, in their order, with their nicknames.
		if diff := cmp.Diff(newestFirst(mine, nil), got); diff != "" {
			t.Errorf("paged list (-want +got):\n%s", diff)
		}

		filters := []struct {
			name   string
			member string
			f      db.MatchFilter
			keep   func(*domain.Match) bool
			from   []*domain.Match
		}{
			{"meal", alice.ID, db.MatchFilter{Category: domain.CategoryMeal, Limit: 3}, func(m *domain.Match) bool {
				return m.Category == domain.CategoryMeal
			}, mine},
			{"rooms", alice.ID, db.MatchFilter{Method: domain.MatchRoom, Limit: 4}, func(m *domain.Match) bool {
				return m.Method == domain.MatchRoom
			}, mine},
			{"random study", alice.ID, db.MatchFilter{Category: domain.CategoryStudy, Method: domain.MatchRandom, Limit: 1}, func(m *domain.Match) bool {
				return m.Category == domain.CategoryStudy && m.Method == domain.MatchRandom
			}, mine},
			{"bob's", bob.ID, db.MatchFilter{Limit: 2}, nil, withBob},
			{"bob's page exactly his list", bob.ID, db.MatchFilter{Limit: len(withBob)}, nil, withBob},
			{"no study for bob", bob.ID, db.MatchFilter{Category: domain.CategoryStudy, Limit: 5}, func(*domain.Match) bool {
				return false
			}, withBob},
			{"unknown member", "nosuchmember", db.MatchFilter{Limit: 5}, nil, nil},
		}
		for _, tt := range filters {
			t.Run(tt.name, func(t *testing.T) {
				got, sizes := all(tt.f, tt.member)
				want := newestFirst(tt.from, tt.keep)
				if diff := cmp.Diff(matchIDs(want), matchIDs(got)); diff != "" {
					t.Errorf("ids (-want +got):\n%s", diff)
				}
				for i, n := range sizes[:len(sizes)-1] {
					if n != tt.f.Limit {
						t.Errorf("page %d has %d matches, want %d", i+1, n, tt.f.Limit)
					}
				}
				if last := sizes[len(sizes)-1]; last == 0 && len(sizes) > 1 {
					t.Error("an empty last page after a full one")
				}
			})
		}

		// A cursor is bound to the member: a match of Alice's that Bob was
		// not in is no cursor for him, and Carol's is none for Alice; one
		// they shared is valid for both.
		p, err := matches.ListForMember(ctx, bdb, alice.ID, db.MatchFilter{Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if p.Next != mine[23].ID { // with Carol
			t.Fatalf("Next = %q, want the second newest match %q", p.Next, mine[23].ID)
		}
		_, err = matches.ListForMember(ctx, bdb, bob.ID, db.MatchFilter{Cursor: p.Next, Limit: 10})
		checkCode(t, err, domain.EINVALID, "cursor")
		carols, err := matches.ListForMember(ctx, bdb, dave.ID, db.MatchFilter{Limit: 1})
		if err != nil || len(carols.Matches) != 1 {
			t.Fatalf("Dave's list = %v, %v", carols, err)
		}
		_, err = matches.ListForMember(ctx, bdb, alice.ID, db.MatchFilter{Cursor: carols.Matches[0].ID, Limit: 10})
		checkCode(t, err, domain.EINVALID, "cursor")
		shared := withBob[len(withBob)-1].ID
		for _, member := range []string{alice.ID, bob.ID} {
			if _, err := matches.ListForMember(ctx, bdb, member, db.MatchFilter{Cursor: shared, Limit: 10}); err != nil {
				t.Errorf("ListForMember(%s) after a shared match: %v", member, err)
			}
		}

		for _, cursor := range []string{"!!", "-1", "0", "zzzzzzzzzzzzzzzzzzzzzzzzzz", "'; DROP TABLE matches;--", alice.ID} {
			t.Run("cursor "+cursor, func(t *testing.T) {
				_, err := matches.ListForMember(ctx, bdb, alice.ID, db.MatchFilter{Cursor: cursor, Limit: 10})
				checkCode(t, err, domain.EINVALID, "cursor")
			})
		}
		invalid := []struct {
			f         db.MatchFilter
			wantField string
		}{
			{db.MatchFilter{Limit: 0}, "limit"},
			{db.MatchFilter{Limit: -1}, "limit"},
			{db.MatchFilter{Category: domain.CategoryRun + 1, Limit: 10}, "category"},
			{db.MatchFilter{Category: -1, Limit: 10}, "category"},
			{db.MatchFilter{Method: domain.MatchRoom + 1, Limit: 10}, "method"},
		}
		for _, tt := range invalid {
			t.Run(fmt.Sprintf("%+v", tt.f), func(t *testing.T) {
				_, err := matches.ListForMember(ctx, bdb, alice.ID, tt.f)
				checkCode(t, err, domain.EINVALID, tt.wantField)
			})
		}

		// A deleted member's nickname stays in the others' history.
		if err := (db.Members{}).Delete(ctx, bdb, bob.ID, matchEpoch.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		p, err = matches.ListForMember(ctx, bdb, alice.ID, db.MatchFilter{Category: domain.CategoryMeal, Method: domain.MatchRoom, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		wantMembers := []domain.MatchMember{{MemberID: alice.ID, Nickname: "Alice"}, {MemberID: bob.ID, Nickname: "Bob"}}
		if len(p.Matches) != 1 {
			t.Fatalf("listed %d matches, want 1", len(p.Matches))
		}
		if diff := cmp.Diff(wantMembers, p.Matches[0].Members); diff != "" {
			t.Errorf("members after Bob left (-want +got):\n%s", diff)
		}
	})
}

// queryCounter counts the statements a bun.DB runs.
type queryCounter struct{ n atomic.Int64 }

func (c *queryCounter) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	c.n.Add(1)
	return ctx
}

func (*queryCounter) AfterQuery(context.Context, *bun.QueryEvent) {}

// TestMatchesListForMemberQueries checks that a page costs the same few
// queries however many matches it lists: members are loaded for all of
// them at once.
func TestMatchesListForMemberQueries(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		bob := mustCreate(t, bdb, newMember("bob@example.com", "Bob"))
		for i := range 12 {
			mustStoreMatch(t, bdb, &domain.Match{Category: domain.CategoryMeal, Method: domain.MatchRandom,
				CreatedAt: matchEpoch.Add(time.Duration(i) * time.Minute)}, alice.ID, bob.ID)
		}
		counter := &queryCounter{}
		bdb.AddQueryHook(counter)
		for _, tt := range []struct {
			limit, want int
		}{{1, 2}, {5, 2}, {20, 2}} {
			counter.n.Store(0)
			p, err := db.Matches{}.ListForMember(ctx, bdb, alice.ID, db.MatchFilter{Limit: tt.limit})
			if err != nil {
				t.Fatal(err)
			}
			if got := int(counter.n.Load()); got != tt.want {
				t.Errorf("a page of %d took %d queries, want %d", len(p.Matches), got, tt.want)
			}
			// With a cursor: one more, to find it.
			if p.Next != "" {
				counter.n.Store(0)
				if _, err := (db.Matches{}).ListForMember(ctx, bdb, alice.ID, db.MatchFilter{Cursor: p.Next, Limit: tt.limit}); err != nil {
					t.Fatal(err)
				}
				if got := int(counter.n.Load()); got != tt.want+1 {
					t.Errorf("a page after a cursor took %d queries, want %d", got, tt.want+1)
				}
			}
		}
	})
}
