package db_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
)

// notificationEpoch has a sub-microsecond part that every dialect drops.
var notificationEpoch = time.Date(2026, 11, 26, 8, 15, 30, 123456789, time.UTC)

// newNotification returns a notification for member, created at.
func newNotification(memberID string, typ domain.NotificationType, title string, at time.Time) *domain.Notification {
	return &domain.Notification{
		MemberID:  memberID,
		Type:      typ,
		Args:      domain.NotificationArgs{Title: title},
		CreatedAt: at,
	}
}

// mustNotify creates n and fails the test if that does not work.
func mustNotify(t *testing.T, idb bun.IDB, n *domain.Notification) *domain.Notification {
	t.Helper()
	if err := (db.Notifications{}).Create(context.Background(), idb, n); err != nil {
		t.Fatalf("Create notification %q for %s: %v", n.Args.Title, n.MemberID, err)
	}
	return n
}

// mustNotifyMany creates count notifications for member, a second apart.
func mustNotifyMany(t *testing.T, idb bun.IDB, memberID, prefix string, count int) []*domain.Notification {
	t.Helper()
	out := make([]*domain.Notification, count)
	for i := range out {
		at := notificationEpoch.Add(time.Duration(i) * time.Second)
		out[i] = mustNotify(t, idb, newNotification(memberID, domain.NotifyRoomUpdated, fmt.Sprintf("%s %d", prefix, i), at))
	}
	return out
}

var countRowsIn = dbtest.CountRows

func notificationIDs(ns []domain.Notification) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.ID
	}
	return out
}

func TestNotificationsCreateAndFind(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		notifications := db.Notifications{}
		seoul := time.FixedZone("KST", 9*60*60)
		alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		bob := mustCreate(t, bdb, newMember("bob@example.com", "밥"))

		full := &domain.Notification{
			MemberID: alice.ID,
			Type:     domain.NotifyMatchConfirmed,
			Args: domain.NotificationArgs{
				ActorID:   bob.ID,
				Actor:     "밥",
				RoomID:    "room1",
				MatchID:   "match1",
				Title:     "한강 야간 러닝 🏃 \"10km\" <b>&</b>",
				Category:  "러닝",
				Place:     "여의나루역 2번 출구",
				StartsAt:  time.Date(2026, 12, 1, 19, 30, 0, 0, seoul),
				Members:   []string{"Alice", "밥", "캐롤"},
				Amount:    15000,
				Excerpt:   "'; DROP TABLE notifications;--",
				Reason:    "정원이 찼어요",
				Link:      "/rooms/room1?tab=members",
				CommentID: "c1",
			},
			CreatedAt: notificationEpoch.In(seoul),
		}
		readAt := notificationEpoch.Add(time.Minute + 999*time.Nanosecond)
		tests := []struct {
			name string
			n    *domain.Notification
		}{
			{"every argument", full},
			{"no arguments", &domain.Notification{MemberID: bob.ID, Type: domain.NotifyRunDDay, CreatedAt: notificationEpoch}},
			{"created read", &domain.Notification{MemberID: alice.ID, Type: domain.NotifyTaskDone,
				Args: domain.NotificationArgs{TaskID: "t1"}, ReadAt: &readAt, CreatedAt: notificationEpoch}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				want := *tt.n
				mustNotify(t, bdb, tt.n)
				if len(tt.n.ID) != 26 {
					t.Errorf("ID = %q, want a 26-character public id", tt.n.ID)
				}
				want.ID = tt.n.ID
				want.CreatedAt = want.CreatedAt.UTC().Truncate(time.Microsecond)
				if want.ReadAt != nil {
					at := want.ReadAt.UTC().Truncate(time.Microsecond)
					want.ReadAt = &at
				}
				if diff := cmp.Diff(&want, tt.n); diff != "" {
					t.Errorf("Create changed the notification beyond ID and stored times (-want +got):\n%s", diff)
				}
				if tt.n.CreatedAt.Location() != time.UTC {
					t.Errorf("CreatedAt in %v, want UTC", tt.n.CreatedAt.Location())
				}

				got, err := notifications.FindByID(ctx, bdb, tt.n.ID)
				if err != nil {
					t.Fatalf("FindByID: %v", err)
				}
				if diff := cmp.Diff(&want, got); diff != "" {
					t.Errorf("FindByID (-want +got):\n%s", diff)
				}
				if got.CreatedAt.Location() != time.UTC {
					t.Errorf("found CreatedAt in %v, want UTC", got.CreatedAt.Location())
				}
				if got.ReadAt != nil && got.ReadAt.Location() != time.UTC {
					t.Errorf("found ReadAt in %v, want UTC", got.ReadAt.Location())
				}
			})
		}

		// The arguments are stored as JSON with the wire's snake_case keys
		// and the text as it is, not escaped into \u sequences.
		var raw string
		if err := bdb.NewSelect().Table("notifications").Column("args").
			Where("public_id = ?", full.ID).Scan(ctx, &raw); err != nil {
			t.Fatal(err)
		}
		var keys map[string]any
		if err := json.Unmarshal([]byte(raw), &keys); err != nil {
			t.Fatalf("stored args %q: %v", raw, err)
		}
		for _, k := range []string{"actor_id", "starts_at", "members", "comment_id"} {
			if _, ok := keys[k]; !ok {
				t.Errorf("stored args %s lack %q", raw, k)
			}
		}
		if keys["place"] != "여의나루역 2번 출구" {
			t.Errorf("stored place = %v, want the Korean text", keys["place"])
		}

		for _, id := range []string{"nosuchnotification", "", alice.ID} {
			_, err := notifications.FindByID(ctx, bdb, id)
			checkCode(t, err, domain.ENOTFOUND, "")
		}
	})
}

func TestNotificationsCreateRejects(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		gone := mustCreate(t, bdb, newMember("gone@example.com", "Gone"))
		if err := (db.Members{}).Delete(ctx, bdb, gone.ID, memberEpoch.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}

		tests := []struct {
			name     string
			n        *domain.Notification
			wantCode string // "" for any error
		}{
			{"unknown member", newNotification("nosuchmember", domain.NotifyJoinAccepted, "x", notificationEpoch), domain.ENOTFOUND},
			{"no member", newNotification("", domain.NotifyJoinAccepted, "x", notificationEpoch), domain.ENOTFOUND},
			{"deleted member", newNotification(gone.ID, domain.NotifyJoinAccepted, "x", notificationEpoch), domain.ENOTFOUND},
			{"type zero", newNotification(alice.ID, 0, "x", notificationEpoch), ""},
			{"type past the last", newNotification(alice.ID, lastNotificationType()+1, "x", notificationEpoch), ""},
			{"negative type", newNotification(alice.ID, -1, "x", notificationEpoch), ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := db.Notifications{}.Create(ctx, bdb, tt.n)
				if err == nil {
					t.Fatal("Create succeeded, want an error")
				}
				if tt.wantCode != "" {
					checkCode(t, err, tt.wantCode, "")
				}
				// Inside a transaction too.
				err = bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
					return db.Notifications{}.Create(ctx, tx, newNotification(tt.n.MemberID, tt.n.Type, "tx", notificationEpoch))
				})
				if err == nil {
					t.Fatal("Create in a transaction succeeded, want an error")
				}
				if tt.wantCode != "" {
					checkCode(t, err, tt.wantCode, "")
				}
				if n := countRowsIn(t, bdb, "notifications"); n != 0 {
					t.Errorf("%d notifications stored after rejected Creates, want 0", n)
				}
			})
		}
	})
}

func TestNotificationsList(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		notifications := db.Notifications{}
		alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		bob := mustCreate(t, bdb, newMember("bob@example.com", "Bob"))
		carol := mustCreate(t, bdb, newMember("carol@example.com", "Carol"))

		// Interleaved with Bob's, so Alice's ids have gaps.
		var mine, bobs []*domain.Notification
		for i := range 25 {
			at := notificationEpoch.Add(time.Duration(i) * time.Second)
			mine = append(mine, mustNotify(t, bdb, newNotification(alice.ID, domain.NotifyCommentOnMyRoom, fmt.Sprintf("alice %d", i), at)))
			if i%3 == 0 {
				bobs = append(bobs, mustNotify(t, bdb, newNotification(bob.ID, domain.NotifyRoomUpdated, fmt.Sprintf("bob %d", i), at)))
			}
		}
		newestFirst := func(ns []*domain.Notification) []domain.Notification {
			out := make([]domain.Notification, 0, len(ns))
			for i := len(ns) - 1; i >= 0; i-- {
				out = append(out, *ns[i])
			}
			return out
		}

		// Pages of 10 through 25: 10, 10, 5, every one once, in order.
		var (
			got    []domain.Notification
			sizes  []int
			cursor string
		)
		for page := 0; ; page++ {
			if page > 5 {
				t.Fatalf("still paging after %d pages", page)
			}
			p, err := notifications.List(ctx, bdb, alice.ID, cursor, 10)
			if err != nil {
				t.Fatalf("List page %d: %v", page+1, err)
			}
			got = append(got, p.Notifications...)
			sizes = append(sizes, len(p.Notifications))
			if p.Next == "" {
				break
			}
			if p.Next == cursor {
				t.Fatalf("page %d: Next = %q, the cursor it was given", page+1, p.Next)
			}
			cursor = p.Next
		}
		if diff := cmp.Diff([]int{10, 10, 5}, sizes); diff != "" {
			t.Errorf("page sizes (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(newestFirst(mine), got); diff != "" {
			t.Errorf("paged list (-want +got):\n%s", diff)
		}

		tests := []struct {
			name     string
			member   string
			limit    int
			wantIDs  []string
			wantNext bool
		}{
			{"a page larger than the list", alice.ID, 100, notificationIDs(newestFirst(mine)), false},
			// Exactly the rows left: no empty page after it.
			{"a page exactly the list", bob.ID, len(bobs), notificationIDs(newestFirst(bobs)), false},
			{"one short of the list", bob.ID, len(bobs) - 1, notificationIDs(newestFirst(bobs))[:len(bobs)-1], true},
			{"one", alice.ID, 1, []string{mine[24].ID}, true},
			{"member without notifications", carol.ID, 10, []string{}, false},
			{"unknown member", "nosuchmember", 10, []string{}, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p, err := notifications.List(ctx, bdb, tt.member, "", tt.limit)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.wantIDs, notificationIDs(p.Notifications)); diff != "" {
					t.Errorf("ids (-want +got):\n%s", diff)
				}
				if (p.Next != "") != tt.wantNext {
					t.Errorf("Next = %q, want a cursor: %v", p.Next, tt.wantNext)
				}
			})
		}

		// A cursor is bound to its member: Alice's is not valid in Bob's list.
		p, err := notifications.List(ctx, bdb, alice.ID, "", 12)
		if err != nil {
			t.Fatal(err)
		}
		_, err = notifications.List(ctx, bdb, bob.ID, p.Next, 100)
		checkCode(t, err, domain.EINVALID, "cursor")

		for _, cursor := range []string{"!!", "-1", "0", "-0", "1.5", " 5", "zzzzzzzzzzzzzzzzzzzz", "9223372036854775808", "'; DROP TABLE notifications;--"} {
			t.Run("cursor "+cursor, func(t *testing.T) {
				_, err := notifications.List(ctx, bdb, alice.ID, cursor, 10)
				checkCode(t, err, domain.EINVALID, "cursor")
			})
		}
		for _, limit := range []int{0, -1} {
			t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
				_, err := notifications.List(ctx, bdb, alice.ID, "", limit)
				checkCode(t, err, domain.EINVALID, "limit")
			})
		}
	})
}

func TestNotificationsAfter(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		notifications := db.Notifications{}
		alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		bob := mustCreate(t, bdb, newMember("bob@example.com", "Bob"))
		a := mustNotifyMany(t, bdb, alice.ID, "alice", 3)
		b := mustNotifyMany(t, bdb, bob.ID, "bob", 2)
		a = append(a, mustNotifyMany(t, bdb, alice.ID, "alice later", 2)...)

		tests := []struct {
			name          string
			member, after string
			limit         int
			want          []*domain.Notification
		}{
			{"after the first", alice.ID, a[0].ID, 10, a[1:]},
			{"after the second, oldest first", alice.ID, a[1].ID, 10, a[2:]},
			{"limited", alice.ID, a[0].ID, 2, a[1:3]},
			{"after the newest", alice.ID, a[4].ID, 10, nil},
			{"after someone else's", alice.ID, b[0].ID, 10, nil},
			{"someone else's after mine", bob.ID, a[0].ID, 10, nil},
			{"after an unknown id", alice.ID, "nosuchnotification", 10, nil},
			{"after nothing", alice.ID, "", 10, nil},
			{"unknown member", "nosuchmember", a[0].ID, 10, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := notifications.After(ctx, bdb, tt.member, tt.after, tt.limit)
				if err != nil {
					t.Fatal(err)
				}
				want := make([]domain.Notification, 0, len(tt.want))
				for _, n := range tt.want {
					want = append(want, *n)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("After (-want +got):\n%s", diff)
				}
			})
		}
		for _, limit := range []int{0, -1} {
			_, err := notifications.After(ctx, bdb, alice.ID, a[0].ID, limit)
			checkCode(t, err, domain.EINVALID, "limit")
		}
	})
}

func TestNotificationsMarkRead(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		notifications := db.Notifications{}
		alice := mustCreate(t, bdb, newMember("alice@example.com", "Alice"))
		bob := mustCreate(t, bdb, newMember("bob@example.com", "Bob"))
		carol := mustCreate(t, bdb, newMember("carol@example.com", "Carol"))
		a := mustNotifyMany(t, bdb, alice.ID, "alice", 5)
		b := mustNotifyMany(t, bdb, bob.ID, "bob", 3)

		unread := func(member string, want int) {
			t.Helper()
			n, err := notifications.UnreadCount(ctx, bdb, member)
			if err != nil {
				t.Fatalf("UnreadCount: %v", err)
			}
			if n != want {
				t.Errorf("UnreadCount(%s) = %d, want %d", member, n, want)
			}
		}
		readAt := func(id string) *time.Time {
			t.Helper()
			n, err := notifications.FindByID(ctx, bdb, id)
			if err != nil {
				t.Fatalf("FindByID: %v", err)
			}
			return n.ReadAt
		}
		unread(alice.ID, 5)
		unread(bob.ID, 3)
		unread(carol.ID, 0)
		unread("nosuchmember", 0)

		first := notificationEpoch.Add(time.Hour + 999*time.Nanosecond)
		second := first.Add(time.Hour)
		steps := []struct {
			name       string
			member     string
			ids        []string
			at         time.Time
			want       int
			wantUnread int
		}{
			{"mine, someone else's, unknown, repeated", alice.ID,
				[]string{a[0].ID, a[1].ID, b[0].ID, "nosuchnotification", a[0].ID, ""}, first, 2, 3},
			{"already read and one more", alice.ID, []string{a[1].ID, a[2].ID}, second, 1, 2},
			{"empty list", alice.ID, []string{}, second, 0, 2},
			{"only someone else's", bob.ID, []string{a[3].ID, a[4].ID}, second, 0, 2},
			{"all", alice.ID, nil, second, 2, 0},
			{"all again", alice.ID, nil, second, 0, 0},
			{"all of a member with none", carol.ID, nil, second, 0, 0},
		}
		for _, s := range steps {
			n, err := notifications.MarkRead(ctx, bdb, s.member, s.ids, s.at)
			if err != nil {
				t.Fatalf("%s: MarkRead: %v", s.name, err)
			}
			if n != s.want {
				t.Errorf("%s: MarkRead = %d, want %d", s.name, n, s.want)
			}
			unread(alice.ID, s.wantUnread)
		}

		// Each keeps the time it was first read at, in UTC microseconds.
		wantAt := map[string]time.Time{
			a[0].ID: first.Truncate(time.Microsecond),
			a[1].ID: first.Truncate(time.Microsecond),
			a[2].ID: second.Truncate(time.Microsecond),
			a[3].ID: second.Truncate(time.Microsecond),
			a[4].ID: second.Truncate(time.Microsecond),
		}
		for id, want := range wantAt {
			got := readAt(id)
			if got == nil || !got.Equal(want) || got.Location() != time.UTC {
				t.Errorf("ReadAt of %s = %v, want %v UTC", id, got, want)
			}
		}

		// Bob's stay unread, whatever Alice did.
		unread(bob.ID, 3)
		for _, n := range b {
			if at := readAt(n.ID); at != nil {
				t.Errorf("Bob's %s read at %v, want unread", n.ID, at)
			}
		}

		// The list shows what was read.
		p, err := notifications.List(ctx, bdb, alice.ID, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range p.Notifications {
			if n.ReadAt == nil || !n.ReadAt.Equal(wantAt[n.ID]) {
				t.Errorf("listed %s read at %v, want %v", n.ID, n.ReadAt, wantAt[n.ID])
			}
		}

		for _, member := range []string{"nosuchmember", ""} {
			_, err := notifications.MarkRead(ctx, bdb, member, nil, second)
			checkCode(t, err, domain.ENOTFOUND, "")
		}
		unread(bob.ID, 3)
	})
}

// lastNotificationType is the highest type there is, so "past the last"
// stays past it as types are appended.
func lastNotificationType() domain.NotificationType {
	types := domain.NotificationTypes()
	return types[len(types)-1]
}

// TestNotificationsListPlanWithoutStatistics: on PostgreSQL, before any
// ANALYZE, a member with a few notifications among 15,000 of someone
// else's gets a page by the (member_id, id) index, not by walking the whole
// table backwards on its primary key.
func TestNotificationsListPlanWithoutStatistics(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, dbtest.Postgres)
	ctx := context.Background()
	busy := mustCreate(t, bdb, newMember("busy@example.com", "Busy"))
	quiet := mustCreate(t, bdb, newMember("quiet@example.com", "Quiet"))
	for range 3 {
		mustNotify(t, bdb, newNotification(quiet.ID, domain.NotifyRoomUpdated, "quiet", notificationEpoch))
	}
	if _, err := bdb.ExecContext(ctx, `INSERT INTO notifications (public_id, member_id, type, args, created_at)
		SELECT 'busy' || g, m.id, 1, '{}', ? FROM members AS m, generate_series(1, 15000) AS g WHERE m.public_id = ?`,
		notificationEpoch, busy.ID); err != nil {
		t.Fatal(err)
	}
	capture := &dbtest.PlanCapture{}
	bdb.AddQueryHook(capture)
	page, err := db.Notifications{}.List(ctx, bdb, quiet.ID, "", 20)
	if err != nil || len(page.Notifications) != 3 {
		t.Fatalf("List = %d, %v; want 3", len(page.Notifications), err)
	}
	var lines []string
	if err := bdb.NewRaw("EXPLAIN "+capture.Last()).Scan(ctx, &lines); err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(lines, "\n")
	t.Logf("%s\n%s", capture.Last(), plan)
	if !strings.Contains(plan, "notifications_member_id_id_idx") || strings.Contains(plan, "notifications_pkey") ||
		strings.Contains(plan, "Seq Scan on notifications") {
		t.Errorf("the page does not read notifications_member_id_id_idx alone:\n%s", plan)
	}
}
