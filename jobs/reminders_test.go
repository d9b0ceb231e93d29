package jobs_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/internal/clocktest"
	"github.com/moim/moim/jobs"
)

func reminderRules() domain.ReminderRules {
	all := []domain.Category{domain.CategoryMeal, domain.CategoryRun}
	return domain.ReminderRules{Location: time.UTC, DDayAt: 8 * time.Hour, StartsSoonBefore: 30 * time.Minute,
		EndedAfter: time.Hour, Grace: 15 * time.Minute,
		Categories: map[domain.ReminderKind][]domain.Category{
			domain.ReminderDDay: all, domain.ReminderStartsSoon: all, domain.ReminderEnded: all,
		}}
}

// reminderCounts returns how many notifications of type typ each member
// has for each room, keyed "room/member".
func reminderCounts(t *testing.T, bdb *bun.DB, typ domain.NotificationType) map[string]int {
	t.Helper()
	var rows []struct {
		Member string `bun:"member"`
		Args   string `bun:"args"`
	}
	err := bdb.NewSelect().TableExpr("notifications AS n").
		ColumnExpr("m.public_id AS member").ColumnExpr("n.args").
		Join("JOIN members AS m ON m.id = n.member_id").
		Where("n.type = ?", int(typ)).Scan(context.Background(), &rows)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range rows {
		out[r.Args+"/"+r.Member]++
	}
	return out
}

// roomWithGuests opens a room of capacity 5 starting at start (in the
// future) and admits the guests through the worker's handler.
func roomWithGuests(t *testing.T, bdb *bun.DB, host string, start time.Time, guests ...string) *domain.Room {
	t.Helper()
	ctx := context.Background()
	room := openRoom(t, bdb, host, 5)
	cur, err := (db.Rooms{}).FindByID(ctx, bdb, room.ID)
	if err != nil {
		t.Fatal(err)
	}
	cur.StartsAt = start
	if err := (db.Rooms{}).Update(ctx, bdb, cur, clocktest.Now()); err != nil {
		t.Fatal(err)
	}
	h := newAdmitter(bdb)
	for _, g := range guests {
		p, err := request(ctx, bdb, cur, g, domain.ParticipationJoin)
		if err != nil {
			t.Fatal(err)
		}
		if err := process(ctx, h, p.Key); err != nil {
			t.Fatal(err)
		}
	}
	return cur
}

// TestRemindersExactlyOnce: two schedulers' ticks racing, a worker
// interrupted mid-tick again and again and then run to the end, and a
// repeated tick: every member gets each reminder of each room once.
func TestRemindersExactlyOnce(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		start := clocktest.Now().UTC().Add(3 * time.Hour).Truncate(time.Minute)
		host := newMember(t, bdb, "host", nil).ID
		var guests []string
		for i := range 4 {
			guests = append(guests, newMember(t, bdb, fmt.Sprintf("g%d", i), nil).ID)
		}
		const rooms = 6
		for range rooms {
			roomWithGuests(t, bdb, host, start, guests...)
		}
		clock := start.Add(-29 * time.Minute) // a minute into the starts-soon window
		// The start follows the wall clock; D-day reminders, due at a time
		// of day, are left out so they cannot fall into the windows.
		rules := reminderRules()
		delete(rules.Categories, domain.ReminderDDay)
		newHandler := func() *jobs.RoomRemindersHandler {
			return &jobs.RoomRemindersHandler{DB: bdb, Rules: rules, Logger: slog.New(slog.DiscardHandler),
				NowFunc: func() time.Time { return clock }}
		}
		// A worker killed at random points of its tick: each kill rolls
		// back the room it was in.
		for i := range 8 {
			cctx, cancel := context.WithTimeout(ctx, time.Duration(i+1)*3*time.Millisecond)
			_, _ = newHandler().Run(cctx)
			cancel()
		}
		// Two schedulers' ticks of the same slot, and the restarted worker.
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				if _, err := newHandler().Run(ctx); err != nil {
					t.Errorf("tick: %v", err)
				}
			})
		}
		wg.Wait()
		counts := reminderCounts(t, bdb, domain.NotifyRunStartsSoon)
		if len(counts) != rooms*(1+len(guests)) {
			t.Errorf("%d room/member pairs reminded, want %d", len(counts), rooms*(1+len(guests)))
		}
		for k, n := range counts {
			if n != 1 {
				t.Errorf("%s reminded %d times", k, n)
			}
		}
		// A repeated tick later in the window sends nothing.
		clock = clock.Add(5 * time.Minute)
		if n, err := newHandler().Run(ctx); err != nil || n != 0 {
			t.Errorf("repeated tick sent %d, %v", n, err)
		}
		// The host's reminder links to attendance, the guests' to the room.
		var links []string
		err := bdb.NewSelect().TableExpr("notifications AS n").ColumnExpr("n.args").
			Join("JOIN members AS m ON m.id = n.member_id").
			Where("m.public_id = ?", host).Where("n.type = ?", int(domain.NotifyRunStartsSoon)).
			Scan(ctx, &links)
		if err != nil || len(links) != rooms {
			t.Fatalf("host's reminders: %v, %v", links, err)
		}
		for _, l := range links {
			if !strings.Contains(l, "/attendance") {
				t.Errorf("host's reminder %s has no attendance link", l)
			}
		}

		// An hour after the start: the ended reminder goes to guests only.
		clock = start.Add(time.Hour + 10*time.Minute) // late, within the grace
		n, err := newHandler().Run(ctx)
		if err != nil || n != rooms*len(guests) {
			t.Errorf("ended reminders = %d, %v; want %d", n, err, rooms*len(guests))
		}
		for k, c := range reminderCounts(t, bdb, domain.NotifyRunEnded) {
			if c != 1 || strings.Contains(k, host) {
				t.Errorf("ended reminder %s × %d", k, c)
			}
		}
	})
}

// TestReminderGrace: a tick later than the grace window sends nothing; one
// within it does.
func TestReminderGrace(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		start := clocktest.Now().UTC().Add(3 * time.Hour).Truncate(time.Minute)
		host := newMember(t, bdb, "host", nil).ID
		roomWithGuests(t, bdb, host, start)
		// The start follows the clock: a D-day reminder, due at a time of
		// day, would fall into the ticks below at some times of day.
		rules := reminderRules()
		delete(rules.Categories, domain.ReminderDDay)
		h := &jobs.RoomRemindersHandler{DB: bdb, Rules: rules, Logger: slog.New(slog.DiscardHandler)}
		h.NowFunc = func() time.Time { return start.Add(-30*time.Minute + 16*time.Minute) }
		if n, err := h.Run(ctx); err != nil || n != 0 {
			t.Errorf("tick after the grace sent %d, %v", n, err)
		}
		h.NowFunc = func() time.Time { return start.Add(-30*time.Minute + 14*time.Minute) }
		if n, err := h.Run(ctx); err != nil || n != 1 {
			t.Errorf("tick within the grace sent %d, %v; want 1", n, err)
		}
		h.NowFunc = func() time.Time { return start.Add(-31 * time.Minute) }
		if n, err := h.Run(ctx); err != nil || n != 0 {
			t.Errorf("tick before the time sent %d, %v", n, err)
		}
	})
}

// TestDDayReminder: on the day, at the configured time of day, to every
// member of the room, once.
func TestDDayReminder(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		// The day is Seoul's, as in production: tomorrow there, at 19:00.
		kst := time.FixedZone("KST", 9*3600)
		y, m, d := clocktest.Now().In(kst).AddDate(0, 0, 1).Date()
		start := time.Date(y, m, d, 19, 0, 0, 0, kst)
		host := newMember(t, bdb, "host", nil).ID
		guest := newMember(t, bdb, "guest", nil).ID
		roomWithGuests(t, bdb, host, start, guest)
		rules := reminderRules()
		rules.Location = kst
		rules.Categories = map[domain.ReminderKind][]domain.Category{domain.ReminderDDay: {domain.CategoryMeal}}
		clock := start.Add(-11*time.Hour - time.Minute) // 07:59 on the day
		h := &jobs.RoomRemindersHandler{DB: bdb, Rules: rules, Logger: slog.New(slog.DiscardHandler),
			NowFunc: func() time.Time { return clock }}
		if n, err := h.Run(ctx); err != nil || n != 0 {
			t.Errorf("before the time: %d, %v", n, err)
		}
		clock = clock.Add(3 * time.Minute) // 08:02
		if n, err := h.Run(ctx); err != nil || n != 2 {
			t.Errorf("at the time: %d, %v; want 2", n, err)
		}
		clock = clock.Add(time.Minute)
		if n, err := h.Run(ctx); err != nil || n != 0 {
			t.Errorf("the next tick: %d, %v", n, err)
		}
		if got := len(reminderCounts(t, bdb, domain.NotifyRunDDay)); got != 2 {
			t.Errorf("%d members reminded, want 2", got)
		}
	})
}
