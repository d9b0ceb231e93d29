package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/internal/clocktest"
	"github.com/moim/moim/jobs"
	"github.com/moim/moim/jobs/jobstest"
)

// openRoom stores a MEAL room of host starting tomorrow.
func openRoom(t *testing.T, bdb *bun.DB, host string, capacity int) *domain.Room {
	t.Helper()
	now := clocktest.Now().UTC()
	r := &domain.Room{HostID: host, Category: domain.CategoryMeal, Title: "점심 같이 먹어요", Place: "개포 클러스터 앞",
		StartsAt: now.Add(24 * time.Hour), Capacity: capacity, CreatedAt: now}
	if err := r.Validate(now, domain.RoomRules{}); err != nil {
		t.Fatalf("validate room: %v", err)
	}
	if err := (db.Rooms{}).Create(context.Background(), bdb, r); err != nil {
		t.Fatalf("create room: %v", err)
	}
	return r
}

// request records a join or leave request of member for room, with its task
// in the outbox, as the API does.
func request(ctx context.Context, bdb *bun.DB, room *domain.Room, member string, kind domain.ParticipationKind) (*domain.Participation, error) {
	p := &domain.Participation{MemberID: member, Kind: kind, CreatedAt: clocktest.Now().UTC()}
	err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
		if err := (db.Participations{}).Create(ctx, tx, room, p); err != nil {
			return err
		}
		task, err := jobs.NewParticipationTask(p.Key)
		if err != nil {
			return err
		}
		return jobs.Enqueue(ctx, tx, task)
	})
	return p, err
}

func newAdmitter(bdb *bun.DB) *jobs.RoomParticipationHandler {
	return &jobs.RoomParticipationHandler{DB: bdb, Params: jobs.AdmissionParams{Retries: 3, RetryWait: 5 * time.Millisecond},
		Metrics: jobs.NewRoomMetrics(nil), Logger: slog.New(slog.DiscardHandler), NowFunc: clocktest.Now}
}

// process runs the handler on the request's task the way a worker does:
// a failed attempt goes back on the queue until it succeeds.
func process(ctx context.Context, h *jobs.RoomParticipationHandler, key int64) error {
	payload, err := json.Marshal(jobs.ParticipationPayload{Request: key})
	if err != nil {
		return err
	}
	var last error
	for range 50 {
		if last = h.ProcessTask(ctx, asynq.NewTask(jobs.TypeRoomParticipation, payload)); last == nil {
			return nil
		}
	}
	return fmt.Errorf("request %d still failing: %w", key, last)
}

// roomCounts reads the room's counter and its participant rows in one
// statement, so both come from the same snapshot.
func roomCounts(ctx context.Context, bdb *bun.DB, room int64) (count, rows int, err error) {
	err = bdb.NewSelect().TableExpr("rooms AS r").
		ColumnExpr("r.participant_count").
		ColumnExpr("(SELECT COUNT(*) FROM room_participants AS rp WHERE rp.room_id = r.id)").
		Where("r.id = ?", room).
		Scan(ctx, &count, &rows)
	return count, rows, err
}

func countNotifications(t *testing.T, bdb *bun.DB, typ domain.NotificationType) int {
	t.Helper()
	n, err := bdb.NewSelect().Table("notifications").Where("type = ?", int(typ)).Count(context.Background())
	if err != nil {
		t.Fatalf("count notifications: %v", err)
	}
	return int(n)
}

// TestAdmissionUnderConcurrency: 500 join requests at once for a room of
// capacity 10, decided by several concurrent workers: exactly 9 are
// admitted (the host is the tenth), the rest are rejected as full, and the
// counter equals the rows.
func TestAdmissionUnderConcurrency(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		const joiners, workers, capacity = 500, 8, 10
		host := newMember(t, bdb, "host", nil)
		room := openRoom(t, bdb, host.ID, capacity)
		members := make([]string, joiners)
		for i := range members {
			members[i] = newMember(t, bdb, fmt.Sprintf("j%03d", i), nil).ID
		}
		keys := make(chan int64, joiners)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for _, m := range members {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				p, err := request(ctx, bdb, room, m, domain.ParticipationJoin)
				if err != nil {
					t.Errorf("request: %v", err)
					return
				}
				keys <- p.Key
			})
		}
		wg.Wait()
		close(keys)

		h := newAdmitter(bdb)
		for range workers {
			wg.Go(func() {
				for k := range keys {
					if err := process(ctx, h, k); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()

		var statuses []int16
		if err := bdb.NewSelect().Table("room_participations").Column("status").Scan(ctx, &statuses); err != nil {
			t.Fatal(err)
		}
		got := map[domain.ParticipationStatus]int{}
		for _, s := range statuses {
			got[domain.ParticipationStatus(s)]++
		}
		want := map[domain.ParticipationStatus]int{domain.ParticipationJoined: capacity - 1, domain.ParticipationRejectedFull: joiners - capacity + 1}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("statuses = %v, want %v", got, want)
		}
		count, rows, err := roomCounts(ctx, bdb, room.Key)
		if err != nil {
			t.Fatal(err)
		}
		if count != capacity || rows != capacity {
			t.Errorf("participant_count = %d, rows = %d; want %d", count, rows, capacity)
		}
		if n := countNotifications(t, bdb, domain.NotifyParticipationOnMyRoom); n != capacity-1 {
			t.Errorf("PARTICIPATION_ON_MY_ROOM = %d, want %d", n, capacity-1)
		}
		if n := countNotifications(t, bdb, domain.NotifyJoinAccepted); n != capacity-1 {
			t.Errorf("JOIN_ACCEPTED = %d, want %d", n, capacity-1)
		}
		if n := countNotifications(t, bdb, domain.NotifyJoinRejectedFull); n != joiners-capacity+1 {
			t.Errorf("JOIN_REJECTED_FULL = %d, want %d", n, joiners-capacity+1)
		}
		t.Logf("optimistic retries: %v", testutil.ToFloat64(h.Metrics.Retries))

		// Deciding again changes nothing.
		var one int64
		if err := bdb.NewSelect().Table("room_participations").Column("id").Limit(1).Scan(ctx, &one); err != nil {
			t.Fatal(err)
		}
		adm, err := h.Decide(ctx, one)
		if err != nil || adm.Decided {
			t.Errorf("second Decide = %+v, %v; want undecided, nil", adm, err)
		}
		if c2, r2, _ := roomCounts(ctx, bdb, room.Key); c2 != capacity || r2 != capacity {
			t.Errorf("after a repeat: count %d rows %d", c2, r2)
		}
	})
}

// TestJoinsAndLeavesInterleaved: members join and leave a small room over
// and over while a watcher reads it: the count never exceeds the capacity
// and always equals the participant rows.
func TestJoinsAndLeavesInterleaved(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		const members, rounds, capacity = 24, 4, 5
		host := newMember(t, bdb, "host", nil)
		room := openRoom(t, bdb, host.ID, capacity)
		h := newAdmitter(bdb)

		stop := make(chan struct{})
		var checks atomic.Int64
		var watcher sync.WaitGroup
		watcher.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				count, rows, err := roomCounts(ctx, bdb, room.Key)
				if err != nil {
					if !db.IsRetryable(err) {
						t.Errorf("read room: %v", err)
						return
					}
					continue
				}
				checks.Add(1)
				if count > capacity || count != rows {
					t.Errorf("participant_count = %d, rows = %d, capacity %d", count, rows, capacity)
					return
				}
			}
		})

		var wg sync.WaitGroup
		var joined, left atomic.Int64
		for i := range members {
			m := newMember(t, bdb, fmt.Sprintf("m%02d", i), nil).ID
			wg.Go(func() {
				for range rounds {
					p, err := request(ctx, bdb, room, m, domain.ParticipationJoin)
					if err != nil {
						t.Errorf("join request: %v", err)
						return
					}
					if err := process(ctx, h, p.Key); err != nil {
						t.Error(err)
						return
					}
					p, err = (db.Participations{}).FindByID(ctx, bdb, p.ID)
					if err != nil {
						t.Error(err)
						return
					}
					if p.Status != domain.ParticipationJoined {
						continue
					}
					joined.Add(1)
					q, err := request(ctx, bdb, room, m, domain.ParticipationLeave)
					if err != nil {
						t.Errorf("leave request: %v", err)
						return
					}
					if err := process(ctx, h, q.Key); err != nil {
						t.Error(err)
						return
					}
					if q, err = (db.Participations{}).FindByID(ctx, bdb, q.ID); err != nil || q.Status != domain.ParticipationLeft {
						t.Errorf("leave = %+v, %v; want LEFT", q, err)
						return
					}
					left.Add(1)
				}
			})
		}
		wg.Wait()
		close(stop)
		watcher.Wait()
		count, rows, err := roomCounts(ctx, bdb, room.Key)
		if err != nil || count != 1 || rows != 1 {
			t.Errorf("at the end: count %d rows %d (%v); want only the host", count, rows, err)
		}
		if joined.Load() == 0 || joined.Load() != left.Load() {
			t.Errorf("joined %d, left %d", joined.Load(), left.Load())
		}
		t.Logf("%d joins, %d watcher checks", joined.Load(), checks.Load())
	})
}

// TestAdmissionRules: the worker's decision for requests the room no longer
// allows.
func TestAdmissionRules(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		host := newMember(t, bdb, "host", nil)
		a := newMember(t, bdb, "alice", nil)
		b := newMember(t, bdb, "bob", nil)
		h := newAdmitter(bdb)
		decide := func(room *domain.Room, member string, kind domain.ParticipationKind) domain.ParticipationStatus {
			t.Helper()
			p, err := request(ctx, bdb, room, member, kind)
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			adm, err := h.Decide(ctx, p.Key)
			if err != nil {
				t.Fatalf("decide: %v", err)
			}
			return adm.Request.Status
		}

		room := openRoom(t, bdb, host.ID, 3)
		if got := decide(room, a.ID, domain.ParticipationJoin); got != domain.ParticipationJoined {
			t.Errorf("join = %v", got)
		}
		// The API refuses these; the worker still decides them safely.
		if got := decide(room, a.ID, domain.ParticipationJoin); got != domain.ParticipationRejectedInvalid {
			t.Errorf("join twice = %v", got)
		}
		if got := decide(room, b.ID, domain.ParticipationLeave); got != domain.ParticipationRejectedInvalid {
			t.Errorf("leave when not in = %v", got)
		}
		if got := decide(room, host.ID, domain.ParticipationLeave); got != domain.ParticipationRejectedInvalid {
			t.Errorf("host leaves = %v", got)
		}

		// A request made before the host cancelled the room is closed.
		p, err := request(ctx, bdb, room, b.ID, domain.ParticipationJoin)
		if err != nil {
			t.Fatal(err)
		}
		cur, err := (db.Rooms{}).FindByID(ctx, bdb, room.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := (db.Rooms{}).Delete(ctx, bdb, cur, clocktest.Now()); err != nil {
			t.Fatal(err)
		}
		adm, err := h.Decide(ctx, p.Key)
		if err != nil || adm.Request.Status != domain.ParticipationRejectedClosed {
			t.Errorf("join of a cancelled room = %+v, %v; want REJECTED_CLOSED", adm, err)
		}
		if count, rows, _ := roomCounts(ctx, bdb, room.Key); count != 2 || rows != 2 {
			t.Errorf("count %d rows %d, want 2", count, rows)
		}
		// A stale room version is refused.
		if err := (db.Rooms{}).Delete(ctx, bdb, room, clocktest.Now()); err == nil {
			t.Error("Delete at an old version succeeded")
		}
	})
}

// TestParticipationSweep: a request left undecided a minute (or After)
// after it was made gets its task again, also when an earlier sweep's task
// for it was archived after its retries; one still queued is not doubled.
func TestParticipationSweep(t *testing.T) {
	t.Parallel()
	bdb := dbtest.Open(t, "sqlite")
	ctx := context.Background()
	opt := jobstest.RedisOpt(t)
	client := asynq.NewClient(opt)
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = client.Close(); _ = insp.Close() })
	host := newMember(t, bdb, "host", nil)
	mina := newMember(t, bdb, "mina", nil)
	room := openRoom(t, bdb, host.ID, 4)
	p, err := request(ctx, bdb, room, mina.ID, domain.ParticipationJoin)
	if err != nil {
		t.Fatal(err)
	}
	now := clocktest.Now()
	h := &jobs.ParticipationSweepHandler{DB: bdb, Client: client, Inspector: insp,
		Logger: slog.New(slog.DiscardHandler), NowFunc: func() time.Time { return now }}
	tick, err := json.Marshal(jobs.TickPayload{Slot: now.UTC().Format(time.RFC3339)})
	if err != nil {
		t.Fatal(err)
	}
	sweep := func() {
		t.Helper()
		if err := h.ProcessTask(ctx, asynq.NewTask(jobs.TypeParticipationSweep, tick)); err != nil {
			t.Fatal(err)
		}
	}
	id := "room:participation:" + strconv.FormatInt(p.Key, 10)
	now = now.Add(59 * time.Second)
	sweep() // younger than the default minute: its own task is on the way
	if _, err := insp.GetTaskInfo(jobs.QueueCritical, id); !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
		t.Fatalf("a fresh request was swept: %v", err)
	}
	h.After = 30 * time.Second
	sweep()
	sweep()
	if q, err := insp.GetQueueInfo(jobs.QueueCritical); err != nil || q.Pending != 1 {
		t.Fatalf("queue after two sweeps: %+v, %v; want one pending task", q, err)
	}
	if err := insp.ArchiveTask(jobs.QueueCritical, id); err != nil {
		t.Fatal(err)
	}
	sweep()
	info, err := insp.GetTaskInfo(jobs.QueueCritical, id)
	if err != nil || info.State != asynq.TaskStatePending {
		t.Fatalf("task after the archived one was swept: %+v, %v; want pending", info, err)
	}
	var payload jobs.ParticipationPayload
	if err := json.Unmarshal(info.Payload, &payload); err != nil || payload.Request != p.Key {
		t.Errorf("payload %s", info.Payload)
	}
}
