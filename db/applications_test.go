package db_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/go-cmp/cmp"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
)

// applicationEpoch is a whole-microsecond time, which every dialect keeps
// exactly.
var applicationEpoch = time.Date(2026, 11, 27, 12, 0, 0, 123456000, time.UTC)

// applicationWait is how long the test applications wait.
const applicationWait = 30 * time.Minute

// newApplication returns an application of member in c accepting anything,
// created at.
func newApplication(memberID string, c domain.Category, at time.Time) *domain.Application {
	return &domain.Application{
		MemberID:   memberID,
		Category:   c,
		Conditions: domain.Conditions{Places: domain.Places.Full(), Second: c.SecondDimension().Full()},
		CreatedAt:  at,
		ExpiresAt:  at.Add(applicationWait),
	}
}

// mustApply creates a and fails the test if that does not work.
func mustApply(t *testing.T, idb bun.IDB, a *domain.Application) *domain.Application {
	t.Helper()
	if err := (db.Applications{}).Create(context.Background(), idb, a); err != nil {
		t.Fatalf("Create application of %s in %v: %v", a.MemberID, a.Category, err)
	}
	return a
}

func mustFindApplication(t *testing.T, idb bun.IDB, id string) *domain.Application {
	t.Helper()
	a, err := db.Applications{}.FindByID(context.Background(), idb, id)
	if err != nil {
		t.Fatalf("FindByID application %s: %v", id, err)
	}
	return a
}

// mustRandomMatch stores a random match of the members in c and returns its
// row id.
func mustRandomMatch(t *testing.T, idb bun.IDB, c domain.Category, at time.Time, memberIDs ...string) (int64, *domain.Match) {
	t.Helper()
	m := &domain.Match{Category: c, Method: domain.MatchRandom,
		Conditions: domain.Conditions{Places: 1, Second: 1}, CreatedAt: at}
	key, err := db.Matches{}.Create(context.Background(), idb, m, memberIDs)
	if err != nil {
		t.Fatalf("Create match of %v: %v", memberIDs, err)
	}
	return key, m
}

func applicationIDs(as []domain.Application) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.ID
	}
	return out
}

func TestApplicationsCreateAndFind(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		apps := db.Applications{}
		alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		kst := time.FixedZone("KST", 9*60*60)

		// Written in another zone with nanoseconds: stored in UTC
		// microseconds.
		a := &domain.Application{
			MemberID:   alice.ID,
			Category:   domain.CategoryStudy,
			Conditions: domain.Conditions{Places: 0b101, Second: 0b10},
			CreatedAt:  applicationEpoch.Add(789 * time.Nanosecond).In(kst),
			ExpiresAt:  applicationEpoch.Add(applicationWait + 1).In(kst),
		}
		mustApply(t, bdb, a)
		if len(a.ID) != 26 || a.Key <= 0 {
			t.Errorf("ID, Key = %q, %d; want a 26-character public id and a row id", a.ID, a.Key)
		}
		want := &domain.Application{
			ID:         a.ID,
			Key:        a.Key,
			MemberID:   alice.ID,
			Category:   domain.CategoryStudy,
			Conditions: domain.Conditions{Places: 0b101, Second: 0b10},
			Status:     domain.ApplicationWaiting,
			Version:    1,
			CreatedAt:  applicationEpoch,
			ExpiresAt:  applicationEpoch.Add(applicationWait),
		}
		if diff := cmp.Diff(want, a); diff != "" {
			t.Errorf("after Create (-want +got):\n%s", diff)
		}
		if a.CreatedAt.Location() != time.UTC || a.ExpiresAt.Location() != time.UTC {
			t.Errorf("times in %v and %v, want UTC", a.CreatedAt.Location(), a.ExpiresAt.Location())
		}
		if diff := cmp.Diff(want, mustFindApplication(t, bdb, a.ID)); diff != "" {
			t.Errorf("FindByID (-want +got):\n%s", diff)
		}
		got, err := apps.FindWaiting(ctx, bdb, alice.ID, domain.CategoryStudy, applicationEpoch.Add(time.Minute))
		if err != nil {
			t.Fatalf("FindWaiting: %v", err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("FindWaiting (-want +got):\n%s", diff)
		}
		if got.CreatedAt.Location() != time.UTC {
			t.Errorf("found CreatedAt in %v, want UTC", got.CreatedAt.Location())
		}

		notWaiting := []struct {
			name   string
			member string
			c      domain.Category
			now    time.Time
		}{
			{"other category", alice.ID, domain.CategoryMeal, applicationEpoch},
			{"at its expiry", alice.ID, domain.CategoryStudy, want.ExpiresAt},
			{"after its expiry", alice.ID, domain.CategoryStudy, want.ExpiresAt.Add(time.Second)},
			{"unknown member", "nosuchmember", domain.CategoryStudy, applicationEpoch},
			{"no member", "", domain.CategoryStudy, applicationEpoch},
		}
		for _, tt := range notWaiting {
			t.Run(tt.name, func(t *testing.T) {
				_, err := apps.FindWaiting(ctx, bdb, tt.member, tt.c, tt.now)
				checkCode(t, err, domain.ENOTFOUND, "")
			})
		}
		for _, id := range []string{"nosuchapplication", "", alice.ID} {
			_, err := apps.FindByID(ctx, bdb, id)
			checkCode(t, err, domain.ENOTFOUND, "")
		}
	})
}

func TestApplicationsCreateRejects(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		gone := mustCreate(t, bdb, newMember("gone@example.com", "Gone"))
		if err := (db.Members{}).Delete(ctx, bdb, gone.ID, memberEpoch.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		with := func(change func(a *domain.Application)) *domain.Application {
			a := newApplication(alice.ID, domain.CategoryMeal, applicationEpoch)
			change(a)
			return a
		}

		tests := []struct {
			name     string
			a        *domain.Application
			wantCode string // "" for any error
		}{
			{"unknown member", newApplication("nosuchmember", domain.CategoryMeal, applicationEpoch), domain.ENOTFOUND},
			{"no member", newApplication("", domain.CategoryMeal, applicationEpoch), domain.ENOTFOUND},
			{"deleted member", newApplication(gone.ID, domain.CategoryMeal, applicationEpoch), domain.ENOTFOUND},
			{"run has no random matching", newApplication(alice.ID, domain.CategoryRun, applicationEpoch), ""},
			{"no category", with(func(a *domain.Application) { a.Category = 0 }), ""},
			{"places 0", with(func(a *domain.Application) { a.Conditions.Places = 0 }), ""},
			{"second 0", with(func(a *domain.Application) { a.Conditions.Second = 0 }), ""},
			{"place past the last", with(func(a *domain.Application) { a.Conditions.Places = 0b1000 }), ""},
			{"way of eating past the last", with(func(a *domain.Application) { a.Conditions.Second = 0b1000 }), ""},
			// Study has two types; a third bit is a way of eating.
			{"study type past the last", with(func(a *domain.Application) {
				a.Category, a.Conditions.Second = domain.CategoryStudy, 0b100
			}), ""},
			{"expires when created", with(func(a *domain.Application) { a.ExpiresAt = a.CreatedAt }), ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := db.Applications{}.Create(ctx, bdb, tt.a)
				if err == nil {
					t.Fatal("Create succeeded, want an error")
				}
				if tt.wantCode != "" {
					checkCode(t, err, tt.wantCode, "")
				}
				if n := countRowsIn(t, bdb, "random_applications"); n != 0 {
					t.Errorf("%d applications stored after rejected Creates, want 0", n)
				}
			})
		}
		// The study mask is two bits wide; a full one is fine.
		mustApply(t, bdb, newApplication(alice.ID, domain.CategoryStudy, applicationEpoch))
	})
}

func TestApplicationsAlreadyWaiting(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		apps := db.Applications{}
		alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		bob := mustCreate(t, bdb, newMember("bob@example.com", "Bob"))
		at := applicationEpoch

		apply := func(member string, c domain.Category) (*domain.Application, error) {
			a := newApplication(member, c, at)
			return a, apps.Create(ctx, bdb, a)
		}
		alreadyWaiting := func(member string, c domain.Category) {
			t.Helper()
			before := countRowsIn(t, bdb, "random_applications")
			_, err := apply(member, c)
			checkCode(t, err, domain.EALREADYWAITING, "category")
			if msg := domain.ErrorMessage(err); msg != "You are already waiting for a match in this category." {
				t.Errorf("message = %q", msg)
			}
			// The same inside a transaction, where the caller's other
			// writes go with it.
			err = db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
				return apps.Create(ctx, tx, newApplication(member, c, at))
			})
			checkCode(t, err, domain.EALREADYWAITING, "category")
			if n := countRowsIn(t, bdb, "random_applications"); n != before {
				t.Errorf("%d applications after a refused one, want %d", n, before)
			}
		}

		first := mustApply(t, bdb, newApplication(alice.ID, domain.CategoryMeal, at))
		alreadyWaiting(alice.ID, domain.CategoryMeal)
		// Another category, another member: separate pools.
		mustApply(t, bdb, newApplication(alice.ID, domain.CategoryStudy, at))
		mustApply(t, bdb, newApplication(bob.ID, domain.CategoryMeal, at))
		alreadyWaiting(alice.ID, domain.CategoryStudy)

		// Cancelled: free again.
		at = at.Add(time.Minute)
		if _, err := apps.Cancel(ctx, bdb, alice.ID, domain.CategoryMeal, at); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		second := mustApply(t, bdb, newApplication(alice.ID, domain.CategoryMeal, at))
		alreadyWaiting(alice.ID, domain.CategoryMeal)

		// Matched: free again.
		at = at.Add(time.Minute)
		mkey, _ := mustRandomMatch(t, bdb, domain.CategoryMeal, at, alice.ID, bob.ID)
		if ok, err := markMatched(ctx, bdb, *second, mkey, at); err != nil || !ok {
			t.Fatalf("markMatched = %v, %v; want true", ok, err)
		}
		third := mustApply(t, bdb, newApplication(alice.ID, domain.CategoryMeal, at))
		alreadyWaiting(alice.ID, domain.CategoryMeal)

		// Expired by the sweep: free again.
		at = third.ExpiresAt
		expired, err := apps.Expire(ctx, bdb, at, 100)
		if err != nil {
			t.Fatal(err)
		}
		if !containsApplication(expired, third.ID) {
			t.Fatalf("Expire = %v, want %s among them", applicationIDs(expired), third.ID)
		}
		fourth := mustApply(t, bdb, newApplication(alice.ID, domain.CategoryMeal, at))

		// Overdue but not swept yet: the member is not waiting any more,
		// so applying again expires the old one and succeeds.
		at = fourth.ExpiresAt.Add(time.Second)
		if _, err := apps.FindWaiting(ctx, bdb, alice.ID, domain.CategoryMeal, at); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Fatalf("FindWaiting of an overdue application = %v, want not_found", err)
		}
		fifth := mustApply(t, bdb, newApplication(alice.ID, domain.CategoryMeal, at))
		old := mustFindApplication(t, bdb, fourth.ID)
		if old.Status != domain.ApplicationExpired || old.Version != 2 {
			t.Errorf("overdue application = %v version %d, want EXPIRED version 2", old.Status, old.Version)
		}
		if got, err := apps.FindWaiting(ctx, bdb, alice.ID, domain.CategoryMeal, at); err != nil || got.ID != fifth.ID {
			t.Errorf("FindWaiting = %v, %v; want %s", got, err, fifth.ID)
		}
		alreadyWaiting(alice.ID, domain.CategoryMeal)

		wantStatus := map[string]domain.ApplicationStatus{
			first.ID:  domain.ApplicationCancelled,
			second.ID: domain.ApplicationMatched,
			third.ID:  domain.ApplicationExpired,
			fourth.ID: domain.ApplicationExpired,
			fifth.ID:  domain.ApplicationWaiting,
		}
		for id, want := range wantStatus {
			if got := mustFindApplication(t, bdb, id).Status; got != want {
				t.Errorf("status of %s = %v, want %v", id, got, want)
			}
		}
	})
}

func containsApplication(as []domain.Application, id string) bool {
	for _, a := range as {
		if a.ID == id {
			return true
		}
	}
	return false
}

func TestApplicationsConcurrentCreate(t *testing.T) {
	t.Parallel()
	const workers = 20
	tests := []struct {
		name string
		tx   bool
	}{
		{"each on its own", false},
		{"each in a transaction", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
				ctx := context.Background()
				alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
				errs := make([]error, workers)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range workers {
					wg.Go(func() {
						<-start
						a := newApplication(alice.ID, domain.CategoryMeal, applicationEpoch.Add(time.Duration(i)*time.Millisecond))
						if !tt.tx {
							errs[i] = db.Applications{}.Create(ctx, bdb, a)
							return
						}
						errs[i] = db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
							return db.Applications{}.Create(ctx, tx, a)
						})
					})
				}
				close(start)
				wg.Wait()

				ok := 0
				for i, err := range errs {
					if err == nil {
						ok++
						continue
					}
					var de *domain.Error
					if !errors.As(err, &de) || de.Code != domain.EALREADYWAITING || de.Field != "category" {
						t.Errorf("worker %d: %v, want already_waiting on category", i, err)
					}
				}
				if ok != 1 {
					t.Errorf("%d applications accepted, want exactly 1", ok)
				}
				if n := countRowsIn(t, bdb, "random_applications"); n != 1 {
					t.Errorf("%d applications stored, want 1", n)
				}
			})
		})
	}
}

func TestApplicationsCancel(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		apps := db.Applications{}
		alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		bob := mustCreate(t, bdb, newMember("bob@example.com", "Bob"))
		meal := mustApply(t, bdb, newApplication(alice.ID, domain.CategoryMeal, applicationEpoch))
		study := mustApply(t, bdb, newApplication(alice.ID, domain.CategoryStudy, applicationEpoch))
		bobs := mustApply(t, bdb, newApplication(bob.ID, domain.CategoryMeal, applicationEpoch))
		now := applicationEpoch.Add(time.Minute)

		got, err := apps.Cancel(ctx, bdb, alice.ID, domain.CategoryMeal, now)
		if err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		want := *meal
		want.Status, want.Version = domain.ApplicationCancelled, 2
		if diff := cmp.Diff(&want, got); diff != "" {
			t.Errorf("Cancel (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(&want, mustFindApplication(t, bdb, meal.ID)); diff != "" {
			t.Errorf("FindByID after Cancel (-want +got):\n%s", diff)
		}

		tests := []struct {
			name   string
			member string
			c      domain.Category
			now    time.Time
		}{
			{"again", alice.ID, domain.CategoryMeal, now},
			{"category without an application", bob.ID, domain.CategoryStudy, now},
			{"overdue", alice.ID, domain.CategoryStudy, study.ExpiresAt},
			{"unknown member", "nosuchmember", domain.CategoryMeal, now},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := apps.Cancel(ctx, bdb, tt.member, tt.c, tt.now)
				checkCode(t, err, domain.ENOTFOUND, "")
			})
		}

		// Neither the other category nor the other member were touched.
		for _, a := range []*domain.Application{study, bobs} {
			if got := mustFindApplication(t, bdb, a.ID); got.Status != domain.ApplicationWaiting || got.Version != 1 {
				t.Errorf("%s = %v version %d, want WAITING version 1", a.ID, got.Status, got.Version)
			}
		}
		// A matched application cannot be cancelled.
		mkey, _ := mustRandomMatch(t, bdb, domain.CategoryMeal, now, alice.ID, bob.ID)
		if ok, err := markMatched(ctx, bdb, *bobs, mkey, now); err != nil || !ok {
			t.Fatalf("markMatched = %v, %v", ok, err)
		}
		_, err = apps.Cancel(ctx, bdb, bob.ID, domain.CategoryMeal, now)
		checkCode(t, err, domain.ENOTFOUND, "")
		if got := mustFindApplication(t, bdb, bobs.ID); got.Status != domain.ApplicationMatched {
			t.Errorf("matched application after Cancel = %v, want MATCHED", got.Status)
		}
	})
}

func TestApplicationsWaitingPool(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		apps := db.Applications{}
		members := make([]*domain.Member, 7)
		for i := range members {
			members[i] = mustCreate(t, bdb, newMember(fmt.Sprintf("m%d@example.com", i), fmt.Sprintf("M%d", i)))
		}
		t0 := applicationEpoch
		apply := func(i int, c domain.Category, at time.Time, wait time.Duration) *domain.Application {
			a := newApplication(members[i].ID, c, at)
			a.ExpiresAt = at.Add(wait)
			return mustApply(t, bdb, a)
		}
		// Created out of order, two at the same instant.
		late := apply(0, domain.CategoryMeal, t0.Add(3*time.Minute), applicationWait)
		early := apply(1, domain.CategoryMeal, t0.Add(time.Minute), applicationWait)
		tieA := apply(2, domain.CategoryMeal, t0.Add(2*time.Minute), applicationWait)
		tieB := apply(3, domain.CategoryMeal, t0.Add(2*time.Minute), applicationWait)
		short := apply(4, domain.CategoryMeal, t0, 5*time.Minute) // gone by now
		apply(5, domain.CategoryMeal, t0, applicationWait)        // cancelled below
		study := apply(6, domain.CategoryStudy, t0, applicationWait)
		if _, err := apps.Cancel(ctx, bdb, members[5].ID, domain.CategoryMeal, t0); err != nil {
			t.Fatal(err)
		}
		now := t0.Add(10 * time.Minute)

		wantMeal := []string{early.ID, tieA.ID, tieB.ID, late.ID}
		list, err := apps.ListWaiting(ctx, bdb, domain.CategoryMeal, now)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(wantMeal, applicationIDs(list)); diff != "" {
			t.Errorf("ListWaiting (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(*early, list[0]); diff != "" {
			t.Errorf("listed application (-want +got):\n%s", diff)
		}
		list, err = apps.ListWaiting(ctx, bdb, domain.CategoryStudy, now)
		if err != nil || len(list) != 1 || list[0].ID != study.ID {
			t.Errorf("ListWaiting(STUDY) = %v, %v; want %s", applicationIDs(list), err, study.ID)
		}

		counts := []struct {
			c    domain.Category
			now  time.Time
			want int
		}{
			{domain.CategoryMeal, now, 4},
			{domain.CategoryMeal, t0, 5}, // the short one still counts
			{domain.CategoryMeal, short.ExpiresAt, 4},
			{domain.CategoryStudy, now, 1},
			{domain.CategoryRun, now, 0},
			{domain.CategoryMeal, late.ExpiresAt, 0},
		}
		for _, tt := range counts {
			n, err := apps.CountWaiting(ctx, bdb, tt.c, tt.now)
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.want {
				t.Errorf("CountWaiting(%v, %v) = %d, want %d", tt.c, tt.now, n, tt.want)
			}
		}

		cats := []struct {
			now  time.Time
			want []domain.Category
		}{
			{now, []domain.Category{domain.CategoryMeal, domain.CategoryStudy}},
			// The study one expires at t0+30m, the late meal one at t0+33m.
			{study.ExpiresAt, []domain.Category{domain.CategoryMeal}},
			{late.ExpiresAt, []domain.Category{}},
		}
		for _, tt := range cats {
			got, err := apps.CategoriesWaiting(ctx, bdb, tt.now)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("CategoriesWaiting(%v) (-want +got):\n%s", tt.now, diff)
			}
		}

	})
}

func TestApplicationsMarkMatchedOne(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		apps := db.Applications{}
		alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		bob := mustCreate(t, bdb, newMember("bob@example.com", "Bob"))
		carol := mustCreate(t, bdb, newMember("carol@example.com", "Carol"))
		a := mustApply(t, bdb, newApplication(alice.ID, domain.CategoryMeal, applicationEpoch))
		b := mustApply(t, bdb, newApplication(bob.ID, domain.CategoryMeal, applicationEpoch))
		c := mustApply(t, bdb, newApplication(carol.ID, domain.CategoryMeal, applicationEpoch))
		now := applicationEpoch.Add(time.Minute + 999*time.Nanosecond)
		mkey, match := mustRandomMatch(t, bdb, domain.CategoryMeal, now, alice.ID, bob.ID)

		mark := func(app *domain.Application, version int64, at time.Time, want bool) {
			t.Helper()
			got, err := markMatched(ctx, bdb, domain.Application{Key: app.Key, Version: version}, mkey, at)
			if err != nil {
				t.Fatalf("markMatched: %v", err)
			}
			if got != want {
				t.Errorf("markMatched(%s, version %d) = %v, want %v", app.ID, version, got, want)
			}
		}
		mark(a, 0, now, false) // a version it never had
		mark(a, 1, now, true)
		mark(a, 1, now, false) // the same again
		mark(a, 2, now, false) // matched is not waiting, whatever the version

		want := *a
		want.Status, want.Version, want.MatchID = domain.ApplicationMatched, 2, match.ID
		if diff := cmp.Diff(&want, mustFindApplication(t, bdb, a.ID)); diff != "" {
			t.Errorf("matched (-want +got):\n%s", diff)
		}
		if _, err := apps.FindWaiting(ctx, bdb, alice.ID, domain.CategoryMeal, now); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("FindWaiting after the match = %v, want not_found", err)
		}

		// Cancelled after the matcher read it: the version moved.
		if _, err := apps.Cancel(ctx, bdb, bob.ID, domain.CategoryMeal, now); err != nil {
			t.Fatal(err)
		}
		mark(b, 1, now, false)
		mark(b, 2, now, false)
		if got := mustFindApplication(t, bdb, b.ID); got.Status != domain.ApplicationCancelled || got.MatchID != "" {
			t.Errorf("cancelled application = %v in %q, want CANCELLED in none", got.Status, got.MatchID)
		}

		// Overdue, even before the sweep.
		mkey, _ = mustRandomMatch(t, bdb, domain.CategoryMeal, now, carol.ID, alice.ID)
		mark(c, 1, c.ExpiresAt, false)
		mark(c, 1, c.ExpiresAt.Add(-time.Microsecond), true)

		// An unknown match is refused by its foreign key.
		d := mustApply(t, bdb, newApplication(alice.ID, domain.CategoryStudy, applicationEpoch))
		_, err := markMatched(ctx, bdb, *d, mkey+1000, now)
		checkCode(t, err, domain.EINVALID, "")
		if got := mustFindApplication(t, bdb, d.ID); got.Status != domain.ApplicationWaiting {
			t.Errorf("after a refused MarkMatched = %v, want WAITING", got.Status)
		}
	})
}

func TestApplicationsMarkMatchedRace(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		const rounds = 10
		alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		bob := mustCreate(t, bdb, newMember("bob@example.com", "Bob"))
		carol := mustCreate(t, bdb, newMember("carol@example.com", "Carol"))
		at := applicationEpoch
		for round := range rounds {
			a := mustApply(t, bdb, newApplication(alice.ID, domain.CategoryMeal, at))
			// Two runs grouped alice differently and race for her.
			k1, _ := mustRandomMatch(t, bdb, domain.CategoryMeal, at, alice.ID, bob.ID)
			k2, _ := mustRandomMatch(t, bdb, domain.CategoryMeal, at, alice.ID, carol.ID)
			var (
				won   [2]bool
				errs  [2]error
				start = make(chan struct{})
				wg    sync.WaitGroup
			)
			for i, mkey := range []int64{k1, k2} {
				wg.Go(func() {
					<-start
					errs[i] = db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
						var err error
						won[i], err = markMatched(ctx, tx, *a, mkey, at)
						return err
					})
				})
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("round %d, run %d: %v", round, i, err)
				}
			}
			if won[0] == won[1] {
				t.Fatalf("round %d: MarkMatched = %v, %v; want exactly one true", round, won[0], won[1])
			}
			winner := []int64{k1, k2}[0]
			if won[1] {
				winner = k2
			}
			got := mustFindApplication(t, bdb, a.ID)
			if got.Status != domain.ApplicationMatched || got.Version != 2 {
				t.Errorf("round %d: %v version %d, want MATCHED version 2", round, got.Status, got.Version)
			}
			var matchKey int64
			if err := bdb.NewSelect().Table("random_applications").Column("match_id").
				Where("id = ?", a.Key).Scan(ctx, &matchKey); err != nil {
				t.Fatal(err)
			}
			if matchKey != winner {
				t.Errorf("round %d: match_id = %d, want the winner's %d", round, matchKey, winner)
			}
			at = at.Add(time.Minute)
		}
	})
}

func TestApplicationsExpire(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		apps := db.Applications{}
		members := make([]*domain.Member, 6)
		for i := range members {
			members[i] = mustCreate(t, bdb, newMember(fmt.Sprintf("m%d@example.com", i), fmt.Sprintf("M%d", i)))
		}
		t0 := applicationEpoch
		apply := func(i int, c domain.Category, wait time.Duration) *domain.Application {
			a := newApplication(members[i].ID, c, t0)
			a.ExpiresAt = t0.Add(wait)
			return mustApply(t, bdb, a)
		}
		// Overdue at t0+10m, longest first: first, second, third (at
		// exactly t0+10m); fresh is not; matched and cancelled are gone.
		second := apply(0, domain.CategoryMeal, 5*time.Minute)
		first := apply(1, domain.CategoryStudy, 2*time.Minute)
		third := apply(2, domain.CategoryMeal, 10*time.Minute)
		fresh := apply(3, domain.CategoryMeal, 10*time.Minute+time.Microsecond)
		matched := apply(4, domain.CategoryMeal, time.Minute)
		cancelled := apply(5, domain.CategoryMeal, time.Minute)
		mkey, _ := mustRandomMatch(t, bdb, domain.CategoryMeal, t0, members[4].ID, members[3].ID)
		if ok, err := markMatched(ctx, bdb, *matched, mkey, t0); err != nil || !ok {
			t.Fatalf("markMatched = %v, %v", ok, err)
		}
		if _, err := apps.Cancel(ctx, bdb, members[5].ID, domain.CategoryMeal, t0); err != nil {
			t.Fatal(err)
		}
		now := t0.Add(10 * time.Minute)
		expired := func(a *domain.Application) domain.Application {
			e := *a
			e.Status, e.Version = domain.ApplicationExpired, 2
			return e
		}

		// The sweep's transaction: expire a batch and tell each member.
		sweep := func(limit int) []domain.Application {
			t.Helper()
			var got []domain.Application
			err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
				var err error
				got, err = apps.Expire(ctx, tx, now, limit)
				if err != nil {
					return err
				}
				for _, a := range got {
					n := &domain.Notification{MemberID: a.MemberID, Type: domain.NotifyNoMatchFound,
						Args: domain.NotificationArgs{Category: a.Category.String()}, CreatedAt: now}
					if err := (db.Notifications{}).Create(ctx, tx, n); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatalf("sweep: %v", err)
			}
			return got
		}

		got := sweep(2)
		if diff := cmp.Diff([]domain.Application{expired(first), expired(second)}, got); diff != "" {
			t.Errorf("first batch (-want +got):\n%s", diff)
		}
		got = sweep(2)
		if diff := cmp.Diff([]domain.Application{expired(third)}, got); diff != "" {
			t.Errorf("second batch (-want +got):\n%s", diff)
		}
		if got := sweep(2); len(got) != 0 {
			t.Errorf("third batch = %v, want none", applicationIDs(got))
		}

		for _, a := range []*domain.Application{first, second, third} {
			e := expired(a)
			if diff := cmp.Diff(&e, mustFindApplication(t, bdb, a.ID)); diff != "" {
				t.Errorf("stored after Expire (-want +got):\n%s", diff)
			}
		}
		untouched := []struct {
			a       *domain.Application
			status  domain.ApplicationStatus
			version int64
		}{
			{fresh, domain.ApplicationWaiting, 1},
			{matched, domain.ApplicationMatched, 2},
			{cancelled, domain.ApplicationCancelled, 2},
		}
		for _, u := range untouched {
			if got := mustFindApplication(t, bdb, u.a.ID); got.Status != u.status || got.Version != u.version {
				t.Errorf("%s = %v version %d, want %v version %d", u.a.ID, got.Status, got.Version, u.status, u.version)
			}
		}

		// One NO_MATCH_FOUND each for the three that expired, none else.
		for i, m := range members {
			page, err := db.Notifications{}.List(ctx, bdb, m.ID, "", 10)
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			if i <= 2 {
				want = 1
			}
			if len(page.Notifications) != want {
				t.Errorf("member %d has %d notifications, want %d", i, len(page.Notifications), want)
			}
			for _, n := range page.Notifications {
				if n.Type != domain.NotifyNoMatchFound {
					t.Errorf("member %d: notification %v, want NO_MATCH_FOUND", i, n.Type)
				}
			}
		}
		if n := countRowsIn(t, bdb, "notifications"); n != 3 {
			t.Errorf("%d notifications, want 3", n)
		}

		for _, limit := range []int{0, -1} {
			_, err := apps.Expire(ctx, bdb, now, limit)
			checkCode(t, err, domain.EINVALID, "limit")
		}
	})
}

// TestApplicationsExpireRace runs the sweep against the matcher for the
// same applications: each ends either EXPIRED and reported, or MATCHED,
// never both.
func TestApplicationsExpireRace(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		const count = 10
		members := make([]*domain.Member, count)
		apps := make([]*domain.Application, count)
		for i := range members {
			members[i] = mustCreate(t, bdb, newMember(fmt.Sprintf("m%d@example.com", i), fmt.Sprintf("M%d", i)))
			apps[i] = mustApply(t, bdb, newApplication(members[i].ID, domain.CategoryMeal, applicationEpoch))
		}
		mkey, _ := mustRandomMatch(t, bdb, domain.CategoryMeal, applicationEpoch, members[0].ID, members[1].ID)
		// The matcher's clock is a little behind the sweep's.
		sweepAt := apps[0].ExpiresAt
		matchAt := sweepAt.Add(-time.Microsecond)

		var (
			expired []domain.Application
			matched = make([]bool, count)
			wg      sync.WaitGroup
			start   = make(chan struct{})
		)
		wg.Go(func() {
			<-start
			err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
				var err error
				expired, err = db.Applications{}.Expire(ctx, tx, sweepAt, count)
				return err
			})
			if err != nil {
				t.Errorf("Expire: %v", err)
			}
		})
		wg.Go(func() {
			<-start
			for i := count - 1; i >= 0; i-- {
				ok, err := markMatched(ctx, bdb, *apps[i], mkey, matchAt)
				if err != nil {
					t.Errorf("markMatched: %v", err)
				}
				matched[i] = ok
			}
		})
		close(start)
		wg.Wait()

		for i, a := range apps {
			got := mustFindApplication(t, bdb, a.ID)
			reported := containsApplication(expired, a.ID)
			switch {
			case matched[i] && got.Status == domain.ApplicationMatched && !reported:
			case !matched[i] && got.Status == domain.ApplicationExpired && reported:
			default:
				t.Errorf("application %d: matched %v, reported expired %v, stored %v", i, matched[i], reported, got.Status)
			}
			if got.Version != 2 {
				t.Errorf("application %d: version %d, want 2", i, got.Version)
			}
		}
	})
}

// TestTranslateWaitingKey covers the key names of both MySQL servers, since
// a test run has only one of them.
func TestTranslateWaitingKey(t *testing.T) {
	t.Parallel()
	for _, msg := range []string{
		"Duplicate entry '7:1' for key 'random_applications_waiting_key'",                     // MariaDB
		"Duplicate entry '7:1' for key 'random_applications.random_applications_waiting_key'", // MySQL 8
	} {
		cause := &mysql.MySQLError{Number: 1062, SQLState: [5]byte{'2', '3', '0', '0', '0'}, Message: msg}
		err := db.Translate(fmt.Errorf("insert: %w", cause))
		checkCode(t, err, domain.EALREADYWAITING, "category")
		if !errors.Is(err, cause) {
			t.Error("translated error lost its driver cause")
		}
	}
}

func TestApplicationsMarkGroupMatched(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		apps := db.Applications{}
		alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		bob := mustCreate(t, bdb, newMember("bob@example.com", "Bob"))
		a := mustApply(t, bdb, newApplication(alice.ID, domain.CategoryMeal, applicationEpoch))
		b := mustApply(t, bdb, newApplication(bob.ID, domain.CategoryMeal, applicationEpoch.Add(time.Second)))
		now := applicationEpoch.Add(time.Minute)
		key, _ := mustRandomMatch(t, bdb, domain.CategoryMeal, now, alice.ID, bob.ID)

		// Bob cancelled after the matcher read: the group's update must not
		// count as done, and rolled back it leaves Alice waiting.
		if _, err := apps.Cancel(ctx, bdb, bob.ID, domain.CategoryMeal, now); err != nil {
			t.Fatal(err)
		}
		err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
			ok, err := apps.MarkGroupMatched(ctx, tx, []domain.Application{*a, *b}, key, now)
			if err != nil {
				return err
			}
			if ok {
				t.Error("a group with a cancelled application was marked matched")
			}
			return errors.New("roll back")
		})
		if err == nil {
			t.Fatal("the transaction did not roll back")
		}
		if got := mustFindApplication(t, bdb, a.ID); got.Status != domain.ApplicationWaiting || got.Version != a.Version {
			t.Errorf("after the rolled-back group: %+v", got)
		}

		// With both waiting at their versions it takes both, once.
		carol := mustCreate(t, bdb, newMember("carol@example.com", "Carol"))
		c := mustApply(t, bdb, newApplication(carol.ID, domain.CategoryMeal, applicationEpoch.Add(2*time.Second)))
		key2, _ := mustRandomMatch(t, bdb, domain.CategoryMeal, now, alice.ID, carol.ID)
		ok, err := apps.MarkGroupMatched(ctx, bdb, []domain.Application{*a, *c}, key2, now)
		if err != nil || !ok {
			t.Fatalf("MarkGroupMatched = %v, %v", ok, err)
		}
		for _, id := range []string{a.ID, c.ID} {
			if got := mustFindApplication(t, bdb, id); got.Status != domain.ApplicationMatched || got.Version != 2 {
				t.Errorf("application %s: %+v", id, got)
			}
		}
		if ok, err := apps.MarkGroupMatched(ctx, bdb, []domain.Application{*a, *c}, key2, now); err != nil || ok {
			t.Errorf("second MarkGroupMatched = %v, %v; want false", ok, err)
		}
	})
}

// markMatched flips one application through the matcher's group update.
func markMatched(ctx context.Context, idb bun.IDB, a domain.Application, matchKey int64, now time.Time) (bool, error) {
	return db.Applications{}.MarkGroupMatched(ctx, idb, []domain.Application{a}, matchKey, now)
}

// TestApplicationsCreateStatements checks that an application costs a
// single statement when nothing stands in its way (the member lookup is a
// join, the stale check runs only on a conflict) on the dialects with a
// conflict clause (MySQL looks first: three), and that the conflict
// path works inside a transaction: there the first, conflicting insert
// must not fail, or PostgreSQL would abort the caller's transaction.
func TestApplicationsCreateStatements(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		apps := db.Applications{}
		alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		counter := &queryCounter{}
		bdb.AddQueryHook(counter)

		first := newApplication(alice.ID, domain.CategoryMeal, applicationEpoch)
		counter.n.Store(0)
		mustApply(t, bdb, first)
		want := int64(1)
		if bdb.Dialect().Name() == dialect.MySQL {
			want = 3
		}
		if got := counter.n.Load(); got != want {
			t.Errorf("a first application took %d statements, want %d", got, want)
		}
		if got := mustFindApplication(t, bdb, first.ID); got.Key != first.Key || got.Status != domain.ApplicationWaiting {
			t.Errorf("stored %+v, want key %d WAITING", got, first.Key)
		}

		// Overdue but not swept: replaced in the caller's transaction,
		// which then commits with its other writes.
		at := first.ExpiresAt.Add(time.Second)
		second := newApplication(alice.ID, domain.CategoryMeal, at)
		err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
			if err := apps.Create(ctx, tx, second); err != nil {
				return err
			}
			return apps.Create(ctx, tx, newApplication(alice.ID, domain.CategoryStudy, at))
		})
		if err != nil {
			t.Fatalf("replacing an overdue application in a transaction: %v", err)
		}
		if got := mustFindApplication(t, bdb, first.ID); got.Status != domain.ApplicationExpired {
			t.Errorf("overdue application = %v, want EXPIRED", got.Status)
		}
		if got, err := apps.FindWaiting(ctx, bdb, alice.ID, domain.CategoryMeal, at); err != nil || got.ID != second.ID || got.Key != second.Key {
			t.Errorf("FindWaiting = %+v, %v; want %s (key %d)", got, err, second.ID, second.Key)
		}
		if n := countRowsIn(t, bdb, "random_applications"); n != 3 {
			t.Errorf("%d applications stored, want 3", n)
		}

		// Unknown and deleted members are still told apart from a taken key.
		err = apps.Create(ctx, bdb, newApplication("nosuchmember", domain.CategoryMeal, at))
		checkCode(t, err, domain.ENOTFOUND, "")
	})
}

// TestNotificationsCreateManyOneStatement checks CreateMany, which the
// matcher calls in every group transaction: notifications that differ only
// in their member take one statement with no member lookup, and the
// result is what the per-row inserts gave before (order, values, members
// who are gone left out, a repeated member stored twice, the caller's
// slice untouched).
func TestNotificationsCreateManyOneStatement(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		notifications := db.Notifications{}
		alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		bob := mustCreate(t, bdb, newMember("bob@example.com", "Bob"))
		carol := mustCreate(t, bdb, newMember("carol@example.com", "Carol"))
		if err := (db.Members{}).Delete(ctx, bdb, carol.ID, applicationEpoch); err != nil {
			t.Fatal(err)
		}
		at := applicationEpoch.Add(500 * time.Nanosecond) // dropped when stored
		args := domain.NotificationArgs{MatchID: "m1", Members: []string{"Alice", "Bob"}, Place: "O'Hare"}
		group := func(ids ...string) []domain.Notification {
			ns := make([]domain.Notification, len(ids))
			for i, id := range ids {
				ns[i] = domain.Notification{MemberID: id, Type: domain.NotifyMatchConfirmed, Args: args, CreatedAt: at}
			}
			return ns
		}

		capture := &dbtest.PlanCapture{}
		bdb.AddQueryHook(capture)
		in := group(bob.ID, alice.ID)
		created, err := notifications.CreateMany(ctx, bdb, in)
		if err != nil {
			t.Fatal(err)
		}
		// On MySQL the members' row ids are read first: an INSERT … SELECT
		// would hold InnoDB's table-wide AUTO-INC lock to its end.
		statements := 1
		if bdb.Dialect().Name() == dialect.MySQL {
			statements = 2
		}
		if got := len(capture.All()); got != statements {
			t.Errorf("a group of 2 took %d statements, want %d: %q", got, statements, capture.All())
		}
		if bdb.Dialect().Name() == dialect.MySQL && strings.Contains(capture.Last(), "SELECT") {
			t.Errorf("MySQL insert is an INSERT … SELECT: %s", capture.Last())
		}
		if in[0].ID != "" {
			t.Errorf("CreateMany set the caller's notification id %q", in[0].ID)
		}
		if len(created) != 2 || created[0].MemberID != bob.ID || created[1].MemberID != alice.ID {
			t.Fatalf("created %+v, want Bob's then Alice's", created)
		}
		for _, n := range created {
			got, err := notifications.FindByID(ctx, bdb, n.ID)
			if err != nil {
				t.Fatal(err)
			}
			want := n
			want.CreatedAt = applicationEpoch
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("stored notification (-want +got):\n%s", diff)
			}
		}
		// Stored in the given order: Bob's first.
		page, err := notifications.List(ctx, bdb, alice.ID, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		bobPage, err := notifications.List(ctx, bdb, bob.ID, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Notifications) != 1 || len(bobPage.Notifications) != 1 {
			t.Fatalf("lists: Alice %d, Bob %d notifications; want 1 each", len(page.Notifications), len(bobPage.Notifications))
		}

		// A deleted member, an unknown one, a repeated one and a second
		// kind of notification in one call.
		mixed := append(group(carol.ID, alice.ID, "nosuchmember", alice.ID),
			domain.Notification{MemberID: bob.ID, Type: domain.NotifyNoMatchFound, Args: domain.NotificationArgs{Category: "MEAL"}, CreatedAt: at})
		created, err = notifications.CreateMany(ctx, bdb, mixed)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, n := range created {
			got = append(got, n.MemberID+"/"+n.Type.String())
		}
		want := []string{alice.ID + "/" + domain.NotifyMatchConfirmed.String(), alice.ID + "/" + domain.NotifyMatchConfirmed.String(),
			bob.ID + "/" + domain.NotifyNoMatchFound.String()}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("created (-want +got):\n%s", diff)
		}
		if n := countRowsIn(t, bdb, "notifications"); n != 5 {
			t.Errorf("%d notifications stored, want 5", n)
		}
		for _, n := range created {
			if _, err := notifications.FindByID(ctx, bdb, n.ID); err != nil {
				t.Errorf("FindByID %s: %v", n.ID, err)
			}
		}
	})
}

// TestApplyAgainConcurrentlyAfterExpiry: several applies of one member at
// once, while their previous application has run out but was not swept:
// one wins, the others are already_waiting, and none deadlocks (MySQL's
// duplicate-key locks).
func TestApplyAgainConcurrentlyAfterExpiry(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		first := newApplication(alice.ID, domain.CategoryMeal, applicationEpoch)
		mustApply(t, bdb, first)
		at := first.ExpiresAt.Add(time.Second)
		for round := range 10 {
			if _, err := bdb.NewUpdate().Table("random_applications").Set("expires_at = ?", applicationEpoch).
				Where("waiting_key IS NOT NULL").Exec(ctx); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			codes := map[string]int{}
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					// bun's own RunInTx: no retries, so a deadlock shows.
					err := bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
						return (db.Applications{}).Create(ctx, tx, newApplication(alice.ID, domain.CategoryMeal, at))
					})
					code := "ok"
					if err != nil {
						code = domain.ErrorCode(err)
						if db.IsRetryable(err) {
							code = "retryable: " + err.Error()
						}
					}
					mu.Lock()
					codes[code]++
					mu.Unlock()
				})
			}
			wg.Wait()
			if codes["ok"] != 1 || codes[domain.EALREADYWAITING] != 3 {
				t.Fatalf("round %d: outcomes %v, want one ok and three already_waiting", round, codes)
			}
		}
	})
}
