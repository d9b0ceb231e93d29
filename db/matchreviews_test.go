package db_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/db/taskdb"
	"github.com/moim/moim/domain"
)

// checkActivity fails the test unless the member's stored activity is want
// and the stored score is what domain computes from it.
func checkActivity(t *testing.T, idb bun.IDB, id string, want domain.Activity) {
	t.Helper()
	got, score, err := (db.Members{}).Activity(context.Background(), idb, id)
	if err != nil {
		t.Fatalf("Activity(%s): %v", id, err)
	}
	if got != want {
		t.Errorf("Activity(%s) = %+v; want %+v", id, got, want)
	}
	if score != want.Score() {
		t.Errorf("stored activity_score of %s = %d; want %d", id, score, want.Score())
	}
}

// TestMatchReviews: a member of a match reviews each other member once,
// inside the window; every refusal stores nothing; each review moves the
// reviewee's activity score as domain.Activity.Score says.
func TestMatchReviews(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		reviews := db.MatchReviews{}
		alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		bob := mustCreate(t, bdb, newMember("bob@example.com", "Bob"))
		carol := mustCreate(t, bdb, newMember("carol@example.com", "Carol"))
		dave := mustCreate(t, bdb, newMember("dave@example.com", "Dave"))
		m := mustStoreMatch(t, bdb, &domain.Match{Category: domain.CategoryMeal, Method: domain.MatchRandom, CreatedAt: matchEpoch},
			alice.ID, bob.ID, carol.ID)
		checkActivity(t, bdb, alice.ID, domain.Activity{Matches: 1, MannerPoints: 50})
		checkActivity(t, bdb, dave.ID, domain.Activity{MannerPoints: 50})

		open := matchEpoch.Add(domain.ReviewOpensAfter)
		review := func(from, to string, score int, text string, at time.Time) (*domain.MatchReview, error) {
			rv := &domain.MatchReview{MatchID: m.ID, ReviewerID: from, RevieweeID: to, Score: score, Text: text}
			return rv, db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
				return reviews.Create(ctx, tx, rv, at)
			})
		}
		for _, c := range []struct {
			name      string
			from, to  string
			score     int
			text      string
			at        time.Time
			code, fld string
		}{
			{"too early", alice.ID, bob.ID, 5, "", open.Add(-time.Microsecond), domain.ENOTOPENYET, ""},
			{"too late", alice.ID, bob.ID, 5, "", matchEpoch.Add(domain.ReviewClosesAfter), domain.EREVIEWCLOSED, ""},
			{"self", alice.ID, alice.ID, 5, "", open, domain.EINVALID, "member_id"},
			{"reviewee outside", alice.ID, dave.ID, 5, "", open, domain.EINVALID, "member_id"},
			{"reviewer outside", dave.ID, alice.ID, 5, "", open, domain.ENOTFOUND, ""},
			{"score 0", alice.ID, bob.ID, 0, "", open, domain.EINVALID, "score"},
			{"score 6", alice.ID, bob.ID, 6, "", open, domain.EINVALID, "score"},
			{"text too long", alice.ID, bob.ID, 3, strings.Repeat("가", domain.ReviewTextMax+1), open, domain.EINVALID, "text"},
			{"text not UTF-8", alice.ID, bob.ID, 3, "\xff", open, domain.EINVALID, "text"},
		} {
			_, err := review(c.from, c.to, c.score, c.text, c.at)
			if domain.ErrorCode(err) != c.code {
				t.Errorf("%s: err = %v; want code %s", c.name, err, c.code)
			}
			var de *domain.Error
			if c.fld != "" && (!errors.As(err, &de) || de.Field != c.fld) {
				t.Errorf("%s: err = %v; want field %s", c.name, err, c.fld)
			}
		}
		if n, err := bdb.NewSelect().Table("match_reviews").Count(ctx); err != nil || n != 0 {
			t.Fatalf("match_reviews after refusals = %d, %v; want 0", n, err)
		}
		checkActivity(t, bdb, bob.ID, domain.Activity{Matches: 1, MannerPoints: 50})

		// The last instant of the window is still open.
		last := matchEpoch.Add(domain.ReviewClosesAfter - time.Microsecond)
		text := strings.Repeat("가", domain.ReviewTextMax)
		rv, err := review(alice.ID, bob.ID, 5, text, last)
		if err != nil {
			t.Fatalf("review: %v", err)
		}
		if len(rv.ID) != 26 || !rv.CreatedAt.Equal(last) || rv.RevieweeNickname != "Bob" || rv.ReviewerNickname != "Alice" {
			t.Errorf("review = %+v", rv)
		}
		if _, err := review(alice.ID, bob.ID, 1, "", open); domain.ErrorCode(err) != domain.EALREADYREVIEWED {
			t.Errorf("second review: err = %v; want %s", err, domain.EALREADYREVIEWED)
		}
		if _, err := review(carol.ID, bob.ID, 1, "", open); err != nil {
			t.Fatalf("carol's review: %v", err)
		}
		if _, err := review(bob.ID, alice.ID, 3, "", open); err != nil {
			t.Fatalf("bob's review: %v", err)
		}
		checkActivity(t, bdb, bob.ID, domain.Activity{Matches: 1, ReviewsReceived: 2, ReviewSum: 6, ReviewPoints: 42 - 10, MannerPoints: 50})
		checkActivity(t, bdb, alice.ID, domain.Activity{Matches: 1, ReviewsReceived: 1, ReviewSum: 3, ReviewPoints: 10, MannerPoints: 50})

		got, err := reviews.ListForMatch(ctx, bdb, m)
		if err != nil {
			t.Fatalf("ListForMatch: %v", err)
		}
		if len(got) != 3 || got[0].ID != rv.ID || got[0].Text != text || got[0].Score != 5 ||
			got[1].ReviewerID != carol.ID || got[2].RevieweeID != alice.ID || got[2].MatchID != m.ID {
			t.Errorf("ListForMatch = %+v", got)
		}
	})
}

// TestMatchReviewConcurrent: two identical reviews at once store one and
// count once; the other is EALREADYREVIEWED.
func TestMatchReviewConcurrent(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		bob := mustCreate(t, bdb, newMember("bob@example.com", "Bob"))
		m := mustStoreMatch(t, bdb, &domain.Match{Category: domain.CategoryMeal, Method: domain.MatchRandom, CreatedAt: matchEpoch},
			alice.ID, bob.ID)
		at := matchEpoch.Add(time.Hour)
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rv := &domain.MatchReview{MatchID: m.ID, ReviewerID: alice.ID, RevieweeID: bob.ID, Score: 4}
				errs[i] = db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
					return (db.MatchReviews{}).Create(ctx, tx, rv, at)
				})
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch domain.ErrorCode(err) {
			case "":
				ok++
			case domain.EALREADYREVIEWED:
			default:
				t.Errorf("concurrent review: %v", err)
			}
		}
		if ok != 1 {
			t.Errorf("%d reviews stored; want 1", ok)
		}
		checkActivity(t, bdb, bob.ID, domain.Activity{Matches: 1, ReviewsReceived: 1, ReviewSum: 4, ReviewPoints: 20, MannerPoints: 50})
	})
}

// TestMatchReviewsMigrationBackfills: the migration computes the activity
// of the members there are from their matches and manner points.
func TestMatchReviewsMigrationBackfills(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		bob := mustCreate(t, bdb, newMember("bob@example.com", "Bob"))
		carol := mustCreate(t, bdb, newMember("carol@example.com", "Carol"))
		for range 2 {
			mustStoreMatch(t, bdb, &domain.Match{Category: domain.CategoryMeal, Method: domain.MatchRandom, CreatedAt: matchEpoch},
				alice.ID, bob.ID)
		}
		var mig *migrate.Migration
		for _, m := range db.Migrations().Sorted() {
			if m.Name == "20261207000016" {
				mig = &m
			}
		}
		if mig == nil {
			t.Fatal("migration 20261207000016 not found")
		}
		migrator := migrate.NewMigrator(bdb, db.Migrations())
		if err := mig.Down(ctx, migrator, mig); err != nil {
			t.Fatalf("down: %v", err)
		}
		if _, err := bdb.NewUpdate().Table("members").Set("manner_points = 47").Where("public_id = ?", bob.ID).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		if err := mig.Up(ctx, migrator, mig); err != nil {
			t.Fatalf("up: %v", err)
		}
		checkActivity(t, bdb, alice.ID, domain.Activity{Matches: 2, MannerPoints: 50})
		checkActivity(t, bdb, bob.ID, domain.Activity{Matches: 2, MannerPoints: 47})
		checkActivity(t, bdb, carol.ID, domain.Activity{MannerPoints: 50})
	})
}

// TestCandidatesRankByActivity: a helper request invites the helper with
// the higher activity score first, whatever the account's age.
func TestCandidatesRankByActivity(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		cats, abs := dbtest.CatalogueIDs(t, bdb)
		var helpers []*domain.Member
		for _, name := range []string{"a", "b", "c"} {
			h := mustCreate(t, bdb, newMember(name+"@example.com", name))
			if err := (taskdb.Skills{}).SetMemberSkills(ctx, bdb, h.ID, []int64{cats["초벌 번역"]}, []int64{abs["영어"]}); err != nil {
				t.Fatal(err)
			}
			helpers = append(helpers, h)
		}
		b, c := helpers[1], helpers[2]
		customer := mustCreate(t, bdb, newMember("customer@example.com", "customer"))
		task := &domain.Task{CustomerID: customer.ID, Title: "번역", Details: "10쪽", BigCategoryID: cats["통번역"],
			SmallCategoryID: cats["초벌 번역"], AbilityIDs: []int64{abs["영어"]}, HelpersWanted: 1, CreatedAt: memberEpoch}
		if err := (taskdb.Tasks{}).Create(ctx, bdb, task); err != nil {
			t.Fatal(err)
		}
		order := func() string {
			t.Helper()
			cands, err := (taskdb.Tasks{}).Candidates(ctx, bdb, task, 10)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, c := range cands {
				out = append(out, c.Nickname)
			}
			return strings.Join(out, ",")
		}
		if got := order(); got != "a,b,c" {
			t.Fatalf("candidates with equal scores = %s; want a,b,c (oldest first)", got)
		}
		// b and c meet (10 each); c gives b a 5 (42), b gives c a 1 (-10).
		m := mustStoreMatch(t, bdb, &domain.Match{Category: domain.CategoryMeal, Method: domain.MatchRandom, CreatedAt: matchEpoch},
			b.ID, c.ID)
		for _, r := range []struct {
			from, to string
			score    int
		}{{c.ID, b.ID, 5}, {b.ID, c.ID, 1}} {
			rv := &domain.MatchReview{MatchID: m.ID, ReviewerID: r.from, RevieweeID: r.to, Score: r.score}
			if err := (db.MatchReviews{}).Create(ctx, bdb, rv, matchEpoch.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		if got := order(); got != "b,a,c" {
			t.Errorf("candidates = %s; want b (52), then a and c (0) oldest first", got)
		}
	})
}
