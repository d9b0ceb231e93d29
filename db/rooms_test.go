package db_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
)

var roomTime = time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)

func mustOpenRoom(t *testing.T, idb bun.IDB, host string, c domain.Category, created time.Time, places domain.Mask) *domain.Room {
	t.Helper()
	r := &domain.Room{HostID: host, Category: c, Title: "모임 " + c.String(), Body: "본문", Place: "개포",
		StartsAt: created.Add(48 * time.Hour), Capacity: 4, CreatedAt: created,
		Conditions: domain.RoomConditions{Places: places}}
	if err := (db.Rooms{}).Create(context.Background(), idb, r); err != nil {
		t.Fatalf("create room: %v", err)
	}
	return r
}

func roomIDs(rs []domain.Room) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func TestRoomsCreateFindUpdate(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		host := mustCreate(t, bdb, newMember("host@example.com", "호스트"))
		body := strings.Repeat("긴 본문 ", 12_000) // > 64 KiB of UTF-8
		r := &domain.Room{HostID: host.ID, Category: domain.CategoryMeal, Title: "점심 🍚", Body: body, Place: "서초",
			StartsAt: roomTime.Add(time.Hour), Capacity: 20, Anonymous: true, CreatedAt: roomTime,
			Conditions: domain.RoomConditions{Places: 3, TimesOfEating: 2, WaysOfEating: 4}}
		if err := (db.Rooms{}).Create(ctx, bdb, r); err != nil {
			t.Fatal(err)
		}
		got, err := (db.Rooms{}).FindByID(ctx, bdb, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Body != body || got.Title != r.Title || got.Conditions != r.Conditions || !got.Anonymous ||
			got.ParticipantCount != 1 || got.Version != 1 || got.Host != "호스트" || len(got.Participants) != 1 ||
			!got.Participants[0].Host || got.Participants[0].MemberID != host.ID || !got.StartsAt.Equal(r.StartsAt) {
			t.Errorf("found %+v", got)
		}
		if _, err := (db.Rooms{}).FindByID(ctx, bdb, "nope"); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("unknown room: %v", err)
		}

		got.Title, got.Capacity = "저녁", 5
		if err := (db.Rooms{}).Update(ctx, bdb, got, roomTime); err != nil {
			t.Fatal(err)
		}
		stale := *got
		stale.Version--
		if err := (db.Rooms{}).Update(ctx, bdb, &stale, roomTime); !errors.Is(err, db.ErrStale) {
			t.Errorf("update at an old version: %v", err)
		}
		again, _ := (db.Rooms{}).FindByID(ctx, bdb, r.ID)
		if again.Title != "저녁" || again.Capacity != 5 || again.Version != 2 {
			t.Errorf("after update: %+v", again)
		}

		m, err := (db.Rooms{}).Complete(ctx, bdb, again, roomTime)
		if err != nil {
			t.Fatal(err)
		}
		done, _ := (db.Rooms{}).FindByID(ctx, bdb, r.ID)
		if !done.Completed() || done.MatchID != m.ID || m.Method != domain.MatchRoom {
			t.Errorf("completed room %+v, match %+v", done, m)
		}
		stored, err := (db.Matches{}).FindByID(ctx, bdb, m.ID)
		if err != nil || len(stored.Members) != 1 || stored.Members[0].MemberID != host.ID {
			t.Errorf("match of the room: %+v, %v", stored, err)
		}
		if _, err := (db.Rooms{}).Complete(ctx, bdb, done, roomTime); !errors.Is(err, db.ErrStale) {
			t.Errorf("completing twice: %v", err)
		}
	})
}

func TestRoomsList(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		host := mustCreate(t, bdb, newMember("host@example.com", "호스트"))
		meal := mustOpenRoom(t, bdb, host.ID, domain.CategoryMeal, roomTime, 1)                    // SEOCHO
		study := mustOpenRoom(t, bdb, host.ID, domain.CategoryStudy, roomTime.Add(time.Second), 2) // GAEPO
		run := mustOpenRoom(t, bdb, host.ID, domain.CategoryRun, roomTime.Add(2*time.Second), 3)   // both
		gone := mustOpenRoom(t, bdb, host.ID, domain.CategoryRun, roomTime.Add(3*time.Second), 0)
		if err := (db.Rooms{}).Delete(ctx, bdb, gone, roomTime); err != nil {
			t.Fatal(err)
		}
		yes := true
		for _, tc := range []struct {
			name string
			f    db.RoomFilter
			want []string
		}{
			{"all, newest first", db.RoomFilter{Limit: 10}, []string{run.ID, study.ID, meal.ID}},
			{"category", db.RoomFilter{Category: domain.CategoryStudy, Limit: 10}, []string{study.ID}},
			{"place GAEPO", db.RoomFilter{Place: 2, Limit: 10}, []string{run.ID, study.ID}},
			{"completed", db.RoomFilter{Completed: &yes, Limit: 10}, []string{}},
			{"starts from", db.RoomFilter{From: study.StartsAt, Limit: 10}, []string{run.ID, study.ID}},
			{"starts before", db.RoomFilter{To: study.StartsAt, Limit: 10}, []string{meal.ID}},
		} {
			page, err := (db.Rooms{}).List(ctx, bdb, tc.f)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if got := roomIDs(page.Rooms); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
			}
		}
		first, err := (db.Rooms{}).List(ctx, bdb, db.RoomFilter{Limit: 2})
		if err != nil || first.Next != study.ID {
			t.Fatalf("first page: %v next %q, %v", roomIDs(first.Rooms), first.Next, err)
		}
		second, err := (db.Rooms{}).List(ctx, bdb, db.RoomFilter{Limit: 2, Cursor: first.Next})
		if err != nil || len(second.Rooms) != 1 || second.Rooms[0].ID != meal.ID || second.Next != "" {
			t.Errorf("second page: %v next %q, %v", roomIDs(second.Rooms), second.Next, err)
		}
		if _, err := (db.Rooms{}).List(ctx, bdb, db.RoomFilter{Limit: 2, Cursor: gone.ID}); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("cursor of a cancelled room: %v", err)
		}
	})
}

func TestComments(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		host := mustCreate(t, bdb, newMember("host@example.com", "호스트"))
		alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		room := mustOpenRoom(t, bdb, host.ID, domain.CategoryMeal, roomTime, 0)
		other := mustOpenRoom(t, bdb, host.ID, domain.CategoryMeal, roomTime, 0)
		add := func(author, parent, body string) (*domain.Comment, *domain.Comment, error) {
			c := &domain.Comment{AuthorID: author, ParentID: parent, Body: body, CreatedAt: roomTime}
			p, err := (db.Comments{}).Create(ctx, bdb, room, c)
			return c, p, err
		}
		top, parent, err := add(alice.ID, "", "몇 시에 만나요?")
		if err != nil || parent != nil {
			t.Fatalf("comment: %v %v", parent, err)
		}
		reply, parent, err := add(host.ID, top.ID, "12시요")
		if err != nil || parent == nil || parent.AuthorID != alice.ID {
			t.Fatalf("reply: parent %+v, %v", parent, err)
		}
		if _, _, err := add(alice.ID, reply.ID, "reply to a reply"); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("reply to a reply: %v", err)
		}
		elsewhere := &domain.Comment{AuthorID: alice.ID, ParentID: top.ID, Body: "x", CreatedAt: roomTime}
		if _, err := (db.Comments{}).Create(ctx, bdb, other, elsewhere); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("reply across rooms: %v", err)
		}
		if _, err := (db.Comments{}).Update(ctx, bdb, top.ID, host.ID, "hijack", roomTime); domain.ErrorCode(err) != domain.EFORBIDDEN {
			t.Errorf("editing another's comment: %v", err)
		}
		if _, err := (db.Comments{}).Update(ctx, bdb, top.ID, alice.ID, "몇 시?", roomTime); err != nil {
			t.Error(err)
		}
		// A deleted comment stays listed, without its body, while it has replies.
		if err := (db.Comments{}).Delete(ctx, bdb, top.ID, alice.ID, roomTime); err != nil {
			t.Fatal(err)
		}
		if err := (db.Comments{}).Delete(ctx, bdb, top.ID, alice.ID, roomTime); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("deleting twice: %v", err)
		}
		if _, _, err := add(host.ID, top.ID, "reply to a deleted comment"); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("reply to a deleted comment: %v", err)
		}
		page, err := (db.Comments{}).ListForRoom(ctx, bdb, room, "", 10)
		if err != nil || len(page.Comments) != 1 {
			t.Fatalf("list: %+v, %v", page, err)
		}
		c := page.Comments[0]
		if !c.Deleted() || c.Body != "" || len(c.Replies) != 1 || c.Replies[0].ID != reply.ID || c.Replies[0].ParentID != top.ID {
			t.Errorf("listed %+v", c)
		}
		if err := (db.Comments{}).Delete(ctx, bdb, reply.ID, host.ID, roomTime); err != nil {
			t.Fatal(err)
		}
		if page, err := (db.Comments{}).ListForRoom(ctx, bdb, room, "", 10); err != nil || len(page.Comments) != 0 {
			t.Errorf("after deleting the reply too: %+v, %v", page, err)
		}
		// Paging.
		var ids []string
		for i := range 3 {
			c, _, err := add(alice.ID, "", strings.Repeat("a", i+1))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, c.ID)
		}
		p1, err := (db.Comments{}).ListForRoom(ctx, bdb, room, "", 2)
		if err != nil || len(p1.Comments) != 2 || p1.Comments[0].ID != ids[0] || p1.Next != ids[1] {
			t.Fatalf("page 1: %+v, %v", p1, err)
		}
		p2, err := (db.Comments{}).ListForRoom(ctx, bdb, room, p1.Next, 2)
		if err != nil || len(p2.Comments) != 1 || p2.Comments[0].ID != ids[2] || p2.Next != "" {
			t.Errorf("page 2: %+v, %v", p2, err)
		}
	})
}

// joinDirect admits member to r the way the worker does, for store tests.
func joinDirect(t *testing.T, bdb *bun.DB, r *domain.Room, member string) {
	t.Helper()
	ctx := context.Background()
	p := &domain.Participation{MemberID: member, Kind: domain.ParticipationJoin, CreatedAt: roomTime}
	if err := (db.Participations{}).Create(ctx, bdb, r, p); err != nil {
		t.Fatal(err)
	}
	err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
		adm, err := (db.Participations{}).Admit(ctx, tx, p.Key, roomTime)
		if err == nil && adm.Request.Status != domain.ParticipationJoined {
			t.Errorf("join of %s: %v", member, adm.Request.Status)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAttendanceAndEvaluation(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		host := mustCreate(t, bdb, newMember("host@example.com", "호스트"))
		alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		bob := mustCreate(t, bdb, newMember("bob@example.com", "Bob"))
		carol := mustCreate(t, bdb, newMember("carol@example.com", "Carol"))
		r := mustOpenRoom(t, bdb, host.ID, domain.CategoryRun, roomTime, 0)
		joinDirect(t, bdb, r, alice.ID)
		joinDirect(t, bdb, r, bob.ID)
		points := func(id string) int {
			t.Helper()
			n, err := (db.Members{}).MannerPoints(ctx, bdb, id)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		room := func() *domain.Room {
			t.Helper()
			cur, err := (db.Rooms{}).FindByID(ctx, bdb, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			return cur
		}
		if points(alice.ID) != 50 {
			t.Fatalf("a new member has %d manner points, want 50", points(alice.ID))
		}
		marked, err := (db.Rooms{}).MarkAttendance(ctx, bdb, room(), []string{alice.ID, alice.ID})
		if err != nil || len(marked) != 1 {
			t.Fatalf("mark = %v, %v", marked, err)
		}
		// Marking again gives no second point; a stranger or the host is refused.
		if marked, err := (db.Rooms{}).MarkAttendance(ctx, bdb, room(), []string{alice.ID, bob.ID}); err != nil || len(marked) != 1 || marked[0] != bob.ID {
			t.Errorf("second marking = %v, %v", marked, err)
		}
		for _, id := range []string{carol.ID, host.ID} {
			if _, err := (db.Rooms{}).MarkAttendance(ctx, bdb, room(), []string{id}); domain.ErrorCode(err) != domain.ENOTPARTICIPATING {
				t.Errorf("marking %s: %v", id, err)
			}
		}
		if points(alice.ID) != 51 || points(bob.ID) != 51 || points(host.ID) != 50 {
			t.Errorf("points alice %d bob %d host %d", points(alice.ID), points(bob.ID), points(host.ID))
		}
		cur := room()
		if !cur.Participants[1].Attended || !cur.Participants[2].Attended {
			t.Errorf("participants %+v", cur.Participants)
		}

		if err := (db.Rooms{}).Evaluate(ctx, bdb, cur, alice.ID, 3); err != nil {
			t.Fatal(err)
		}
		if err := (db.Rooms{}).Evaluate(ctx, bdb, room(), alice.ID, 3); domain.ErrorCode(err) != domain.EALREADYEVALUATED {
			t.Errorf("evaluating twice: %v", err)
		}
		if err := (db.Rooms{}).Evaluate(ctx, bdb, room(), bob.ID, -2); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{carol.ID, host.ID} {
			if err := (db.Rooms{}).Evaluate(ctx, bdb, room(), id, 1); domain.ErrorCode(err) != domain.ENOTPARTICIPATING {
				t.Errorf("evaluation by %s: %v", id, err)
			}
		}
		if got := points(host.ID); got != 51 {
			t.Errorf("host has %d points, want 50 + 3 - 2", got)
		}
		// Manner points are part of the activity score, in the same statement.
		checkActivity(t, bdb, host.ID, domain.Activity{MannerPoints: 51})
		checkActivity(t, bdb, alice.ID, domain.Activity{MannerPoints: 51})
	})
}

func TestLeaveAllForMember(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		host := mustCreate(t, bdb, newMember("host@example.com", "호스트"))
		alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		bob := mustCreate(t, bdb, newMember("bob@example.com", "Bob"))
		theirs := mustOpenRoom(t, bdb, alice.ID, domain.CategoryMeal, roomTime, 0)
		joinDirect(t, bdb, theirs, bob.ID)
		guestIn := mustOpenRoom(t, bdb, host.ID, domain.CategoryMeal, roomTime, 0)
		joinDirect(t, bdb, guestIn, alice.ID)
		joinDirect(t, bdb, guestIn, bob.ID)
		done := mustOpenRoom(t, bdb, host.ID, domain.CategoryMeal, roomTime, 0)
		joinDirect(t, bdb, done, alice.ID)
		cur, _ := (db.Rooms{}).FindByID(ctx, bdb, done.ID)
		if _, err := (db.Rooms{}).Complete(ctx, bdb, cur, roomTime); err != nil {
			t.Fatal(err)
		}
		pendingIn := mustOpenRoom(t, bdb, host.ID, domain.CategoryMeal, roomTime, 0)
		p := &domain.Participation{MemberID: alice.ID, Kind: domain.ParticipationJoin, CreatedAt: roomTime}
		if err := (db.Participations{}).Create(ctx, bdb, pendingIn, p); err != nil {
			t.Fatal(err)
		}

		var cancelled []domain.Room
		err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
			var err error
			cancelled, err = (db.Rooms{}).LeaveAllForMember(ctx, tx, alice.ID, roomTime)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(cancelled) != 1 || cancelled[0].ID != theirs.ID || len(cancelled[0].Participants) != 2 {
			t.Errorf("cancelled %+v", cancelled)
		}
		if r, _ := (db.Rooms{}).FindByID(ctx, bdb, theirs.ID); !r.Deleted() {
			t.Error("the room alice hosted is not cancelled")
		}
		r, _ := (db.Rooms{}).FindByID(ctx, bdb, guestIn.ID)
		if r.ParticipantCount != 2 || len(r.Participants) != 2 || r.Has(alice.ID) || r.Version != guestIn.Version+3 {
			t.Errorf("room alice was a guest of: count %d, participants %+v, version %d", r.ParticipantCount, r.Participants, r.Version)
		}
		if r, _ := (db.Rooms{}).FindByID(ctx, bdb, done.ID); !r.Has(alice.ID) || r.ParticipantCount != 2 {
			t.Error("a completed room lost its member")
		}
		if got, _ := (db.Participations{}).FindByID(ctx, bdb, p.ID); got.Status != domain.ParticipationRejectedInvalid {
			t.Errorf("pending request is %v", got.Status)
		}
	})
}

// roomWithLeave opens a room whose guests are alice and bob, with a leave
// request pending, of alice (aliceLeaves) or of bob.
func roomWithLeave(t *testing.T, bdb *bun.DB, aliceLeaves bool) (r *domain.Room, alice, bob *domain.Member, leave *domain.Participation) {
	t.Helper()
	host := mustCreate(t, bdb, newMember("host@example.com", "호스트"))
	alice = mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
	bob = mustCreate(t, bdb, newMember("bob@example.com", "Bob"))
	r = mustOpenRoom(t, bdb, host.ID, domain.CategoryMeal, roomTime, 0)
	joinDirect(t, bdb, r, alice.ID)
	joinDirect(t, bdb, r, bob.ID)
	leaver := bob.ID
	if aliceLeaves {
		leaver = alice.ID
	}
	leave = &domain.Participation{MemberID: leaver, Kind: domain.ParticipationLeave, CreatedAt: roomTime}
	if err := (db.Participations{}).Create(context.Background(), bdb, r, leave); err != nil {
		t.Fatal(err)
	}
	return r, alice, bob, leave
}

// TestLeaveAllForMemberAfterALeave: the deleting transaction read the rooms
// before a leave of the same member was committed by a worker; the count
// still equals the rows afterwards.
func TestLeaveAllForMemberAfterALeave(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		if bdb.Dialect().Name() == dialect.SQLite {
			t.Skip("SQLite's single writer refuses the stale transaction's write outright")
		}
		ctx := context.Background()
		r, alice, _, leave := roomWithLeave(t, bdb, true)

		tx, err := bdb.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		// The deleting transaction's first read fixes its snapshot.
		if _, err := tx.NewSelect().Table("room_participants").Count(ctx); err != nil {
			t.Fatal(err)
		}
		err = db.RunInTx(ctx, bdb, func(ctx context.Context, wtx bun.Tx) error {
			adm, err := (db.Participations{}).Admit(ctx, wtx, leave.Key, roomTime)
			if err == nil && adm.Request.Status != domain.ParticipationLeft {
				t.Errorf("leave decided %v", adm.Request.Status)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := (db.Rooms{}).LeaveAllForMember(ctx, tx, alice.ID, roomTime); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		got, err := (db.Rooms{}).FindByID(ctx, bdb, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.ParticipantCount != len(got.Participants) || got.ParticipantCount != 2 {
			t.Errorf("count %d, rows %d; want 2 and 2", got.ParticipantCount, len(got.Participants))
		}
	})
}

// TestLeaveAllForMemberWhileALeaveIsInFlight: a worker has decided bob's
// leave (the room's row locked) but not committed when alice's account
// deletion recounts the room; the count still equals the rows afterwards.
func TestLeaveAllForMemberWhileALeaveIsInFlight(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		if bdb.Dialect().Name() == dialect.SQLite {
			t.Skip("SQLite's single writer cannot have the two transactions open at once")
		}
		ctx := context.Background()
		r, alice, _, leave := roomWithLeave(t, bdb, false)
		worker, err := bdb.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer worker.Rollback()
		if adm, err := (db.Participations{}).Admit(ctx, worker, leave.Key, roomTime); err != nil || adm.Request.Status != domain.ParticipationLeft {
			t.Fatalf("admit: %+v, %v", adm, err)
		}
		done := make(chan error, 1)
		go func() {
			done <- db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
				_, err := (db.Rooms{}).LeaveAllForMember(ctx, tx, alice.ID, roomTime)
				return err
			})
		}()
		time.Sleep(300 * time.Millisecond) // the deletion waits for the room's row
		if err := worker.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		got, err := (db.Rooms{}).FindByID(ctx, bdb, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.ParticipantCount != 1 || len(got.Participants) != 1 {
			t.Errorf("count %d, rows %d; want only the host", got.ParticipantCount, len(got.Participants))
		}
	})
}
