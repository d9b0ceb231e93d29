package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
)

func TestTicksCatalogue(t *testing.T) {
	t.Parallel()
	ticks := jobs.Ticks()
	if err := jobs.ValidateTicks(ticks, nil); err != nil {
		t.Fatalf("ValidateTicks(Ticks()) = %v, want nil", err)
	}
	// A slot given in another zone is written in UTC.
	slot := time.Date(2026, 3, 11, 0, 10, 0, 0, time.FixedZone("KST", 9*3600))
	for _, tk := range ticks {
		task, err := tk.Build(slot)
		if err != nil {
			t.Errorf("%s: Build: %v", tk.Name, err)
			continue
		}
		if !strings.HasPrefix(task.Type, "tick:") {
			t.Errorf("%s: type = %q, want the tick: namespace", tk.Name, task.Type)
		}
		if task.Queue != tk.Queue || tk.Queue != jobs.QueueTicks {
			t.Errorf("%s: queue = %q, task queue = %q; want %q for both", tk.Name, tk.Queue, task.Queue, jobs.QueueTicks)
		}
		var p jobs.TickPayload
		if err := json.Unmarshal(task.Payload, &p); err != nil {
			t.Errorf("%s: payload %s: %v", tk.Name, task.Payload, err)
		} else if p.Slot != "2026-03-10T15:10:00Z" {
			t.Errorf("%s: payload slot = %q, want 2026-03-10T15:10:00Z", tk.Name, p.Slot)
		}
	}
}

// outboxPruneTick returns the outbox prune entry of the catalogue.
func outboxPruneTick(t *testing.T) jobs.Tick {
	t.Helper()
	for _, tk := range jobs.Ticks() {
		if tk.Name == jobs.TickOutboxPrune {
			return tk
		}
	}
	t.Fatalf("no %s tick in the catalogue", jobs.TickOutboxPrune)
	return jobs.Tick{}
}

func TestOutboxPruneTick(t *testing.T) {
	t.Parallel()
	tick := outboxPruneTick(t)
	if tick.Spec != "*/10 * * * *" || tick.Queue != jobs.QueueTicks {
		t.Errorf("spec, queue = %q, %q; want */10 * * * *, ticks", tick.Spec, tick.Queue)
	}
	task, err := tick.Build(time.Date(2026, 3, 10, 9, 40, 0, 0, time.UTC))
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if jobs.TypeOutboxPrune != "tick:outbox-prune" {
		t.Errorf("TypeOutboxPrune = %q; task types are contracts and never renamed", jobs.TypeOutboxPrune)
	}
	if task.Type != jobs.TypeOutboxPrune {
		t.Errorf("type = %q, want %q", task.Type, jobs.TypeOutboxPrune)
	}
	if got, want := string(task.Payload), `{"slot":"2026-03-10T09:40:00Z"}`; got != want {
		t.Errorf("payload = %s, want %s", got, want)
	}
}

func TestEffectiveSpec(t *testing.T) {
	t.Parallel()
	tk := jobs.Tick{Name: "a", Spec: "@hourly"}
	tests := []struct {
		name      string
		overrides map[string]string
		want      string
	}{
		{name: "no overrides", want: "@hourly"},
		{name: "other tick overridden", overrides: map[string]string{"b": "@daily"}, want: "@hourly"},
		{name: "overridden and trimmed", overrides: map[string]string{"a": " @daily\n"}, want: "@daily"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tk.EffectiveSpec(tt.overrides); got != tt.want {
				t.Errorf("EffectiveSpec = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValidateTicks(t *testing.T) {
	t.Parallel()
	build := func(time.Time) (jobs.Task, error) { return jobs.Task{Type: "tick:x"}, nil }
	good := jobs.Tick{Name: "good", Spec: "*/5 * * * *", Build: build}
	tests := []struct {
		name      string
		ticks     []jobs.Tick
		overrides map[string]string
		want      []string // one line each, in order; nil means valid
	}{
		{name: "valid", ticks: []jobs.Tick{good}},
		{name: "valid override", ticks: []jobs.Tick{good}, overrides: map[string]string{"good": "0 3 * * *"}},
		{
			name:      "unknown overrides sorted",
			ticks:     []jobs.Tick{good},
			overrides: map[string]string{"zeta": "@daily", "alpha": "@daily"},
			want:      []string{`tick "alpha": no such tick to override`, `tick "zeta": no such tick to override`},
		},
		{
			name: "catalogue mistakes",
			ticks: []jobs.Tick{
				good,
				{Name: "good", Spec: "@hourly", Build: build},
				{Name: "", Spec: "@hourly", Build: build},
				{Name: "Bad_Name", Spec: "@hourly", Build: build},
				{Name: "no-build", Spec: "@hourly"},
			},
			want: []string{
				`tick "good": name is used twice`,
				`tick 2: name is empty`,
				`tick "Bad_Name": name must be lowercase letters, digits and dashes`,
				`tick "no-build": no build function`,
			},
		},
		{
			name:      "every problem reported",
			ticks:     []jobs.Tick{good, {Name: "other", Spec: "@sometimes"}},
			overrides: map[string]string{"good": "@daily", "ghost": "@daily"},
			want: []string{
				`tick "other": no build function`,
				`tick "ghost": no such tick to override`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := jobs.ValidateTicks(tt.ticks, tt.overrides)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ValidateTicks = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateTicks = nil, want %q", tt.want)
			}
			if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("ValidateTicks =\n%s\nwant\n%s", err, strings.Join(tt.want, "\n"))
			}
		})
	}
}

// A payload that cannot be decoded can never succeed: the handler says so
// with SkipRetry before touching the database.
func TestOutboxPruneHandlerBadPayload(t *testing.T) {
	t.Parallel()
	for _, payload := range []string{`not json`, `{"slot":"yesterday"}`, `{}`} {
		h := &jobs.OutboxPruneHandler{}
		err := h.ProcessTask(context.Background(), asynq.NewTask(jobs.TypeOutboxPrune, []byte(payload)))
		if !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("payload %s: err = %v, want SkipRetry", payload, err)
		}
	}
}

// seedOutbox inserts one outbox row per entry of sentAgo, marking it sent
// that long before now; a zero age leaves the row unsent. Every row was
// created a year before now, so age alone never decides.
func seedOutbox(t *testing.T, bdb *bun.DB, now time.Time, sentAgo map[string]time.Duration) {
	t.Helper()
	ctx := context.Background()
	var rows []db.OutboxRow
	for id := range sentAgo {
		rows = append(rows, db.OutboxRow{
			TaskID:    id,
			Queue:     jobs.QueueDefault,
			Type:      jobs.TypePing,
			Payload:   []byte(`{}`),
			CreatedAt: now.AddDate(-1, 0, 0),
		})
	}
	if err := (db.Outbox{}).Insert(ctx, bdb, rows); err != nil {
		t.Fatalf("insert outbox rows: %v", err)
	}
	var stored []db.OutboxRow
	if err := bdb.NewSelect().Model(&stored).Scan(ctx); err != nil {
		t.Fatalf("read outbox rows: %v", err)
	}
	for _, r := range stored {
		if age := sentAgo[r.TaskID]; age > 0 {
			if err := (db.Outbox{}).MarkSent(ctx, bdb, []int64{r.ID}, now.Add(-age)); err != nil {
				t.Fatalf("mark %s sent: %v", r.TaskID, err)
			}
		}
	}
}

// outboxTaskIDs returns the task ids left in the outbox, sorted.
func outboxTaskIDs(t *testing.T, bdb *bun.DB) []string {
	t.Helper()
	var ids []string
	if err := bdb.NewSelect().Model((*db.OutboxRow)(nil)).Column("task_id").Order("task_id").Scan(context.Background(), &ids); err != nil {
		t.Fatalf("read outbox task ids: %v", err)
	}
	return ids
}

func TestOutboxPruneHandler(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 10, 9, 40, 0, 0, time.UTC)
	tests := []struct {
		name      string
		keepSent  time.Duration
		batchSize int
		sentAgo   map[string]time.Duration
		want      []string
	}{
		{
			name:      "several batches",
			keepSent:  24 * time.Hour,
			batchSize: 2,
			sentAgo: map[string]time.Duration{
				"old-1": 48 * time.Hour, "old-2": 48 * time.Hour, "old-3": 30 * time.Hour,
				"old-4": 25 * time.Hour, "old-5": 24*time.Hour + time.Minute,
				"recent-1": 24*time.Hour - time.Minute, "recent-2": time.Hour,
				"unsent-1": 0, "unsent-2": 0,
			},
			want: []string{"recent-1", "recent-2", "unsent-1", "unsent-2"},
		},
		{
			name: "default keep and batch",
			sentAgo: map[string]time.Duration{
				"old-1": 25 * time.Hour, "recent-1": 23 * time.Hour, "unsent-1": 0,
			},
			want: []string{"recent-1", "unsent-1"},
		},
		{
			name:    "nothing to prune",
			sentAgo: map[string]time.Duration{"recent-1": time.Minute, "unsent-1": 0},
			want:    []string{"recent-1", "unsent-1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
				seedOutbox(t, bdb, now, tt.sentAgo)
				h := &jobs.OutboxPruneHandler{
					DB:        bdb,
					KeepSent:  tt.keepSent,
					BatchSize: tt.batchSize,
					NowFunc:   func() time.Time { return now },
				}
				task, err := outboxPruneTick(t).Build(now)
				if err != nil {
					t.Fatalf("build task: %v", err)
				}
				// Twice: a retried or duplicated prune changes nothing more.
				for run := 1; run <= 2; run++ {
					if err := h.ProcessTask(context.Background(), asynq.NewTask(task.Type, task.Payload)); err != nil {
						t.Fatalf("run %d: ProcessTask: %v", run, err)
					}
					if got := outboxTaskIDs(t, bdb); strings.Join(got, ",") != strings.Join(tt.want, ",") {
						t.Errorf("run %d: outbox = %v, want %v", run, got, tt.want)
					}
				}
			})
		})
	}
}

// TestRetentionHandler: one run deletes, in batches, exactly what the
// policy no longer keeps — finished deliveries and read notifications past
// their time, unread ones past theirs (with their deliveries), sessions
// expired long enough — and a second run deletes nothing more.
func TestRetentionHandler(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 10, 9, 45, 0, 0, time.UTC)
	day := 24 * time.Hour
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		m := newMember(t, bdb, "keeper", nil)
		// notification makes one created age ago, read readAgo ago (0: unread),
		// with a mail delivery that finished (or not) at the same age.
		notification := func(name string, age, readAgo time.Duration, finished bool) {
			t.Helper()
			n := &domain.Notification{MemberID: m.ID, Type: domain.NotifyJoinAccepted,
				Args: domain.NotificationArgs{Title: name}, CreatedAt: now.Add(-age)}
			if err := (db.Notifications{}).Create(ctx, bdb, n); err != nil {
				t.Fatalf("create notification %s: %v", name, err)
			}
			if readAgo > 0 {
				if _, err := (db.Notifications{}).MarkRead(ctx, bdb, m.ID, []string{n.ID}, now.Add(-readAgo)); err != nil {
					t.Fatalf("mark %s read: %v", name, err)
				}
			}
			id, _, err := (db.Deliveries{}).Create(ctx, bdb, n.ID, domain.ChannelMail, nil, now.Add(-age))
			if err != nil {
				t.Fatalf("create delivery of %s: %v", name, err)
			}
			if finished {
				if err := (db.Deliveries{}).FailPending(ctx, bdb, id, "no address", now.Add(-age)); err != nil {
					t.Fatalf("fail delivery of %s: %v", name, err)
				}
			}
		}
		notification("read-long-ago", 100*day, 91*day, true)
		notification("read-lately", 100*day, 89*day, true)
		notification("unread-old", 366*day, 0, false) // its pending delivery goes with it
		notification("unread-young", 364*day, 0, true)
		notification("recent", day, 0, true)
		notification("recent-pending", 40*day, 0, false)

		sessions := db.SessionStore{DB: bdb}
		for name, expiredAgo := range map[string]time.Duration{"ended-long-ago": 8 * day, "ended-lately": 6 * day, "alive": -day} {
			s := &domain.Session{ID: name, MemberID: m.ID, SecretHash: "h", CreatedAt: now.Add(-30 * day),
				LastUsedAt: now.Add(-20 * day), ExpiresAt: now.Add(-expiredAgo)}
			if err := sessions.CreateSession(ctx, s); err != nil {
				t.Fatalf("create session %s: %v", name, err)
			}
		}

		// Account codes expired over a day ago go; younger ones still
		// count in the daily send limits.
		for name, expiredAgo := range map[string]time.Duration{"code-old": jobs.AccountCodeKeep + time.Minute, "code-lately": jobs.AccountCodeKeep - time.Minute, "code-live": -time.Minute} {
			c := &domain.AccountCode{ID: name, Purpose: domain.CodeEmail, MemberID: m.ID, Target: "keeper@example.com",
				CodeHash: "h", CreatedAt: now.Add(-expiredAgo - 10*time.Minute), ExpiresAt: now.Add(-expiredAgo)}
			if err := (db.AccountCodes{}).Create(ctx, bdb, c); err != nil {
				t.Fatalf("create code %s: %v", name, err)
			}
		}

		h := &jobs.RetentionHandler{DB: bdb, BatchSize: 1, NowFunc: func() time.Time { return now }}
		task, err := retentionTick(t).Build(now)
		if err != nil {
			t.Fatalf("build task: %v", err)
		}
		for run := 1; run <= 2; run++ {
			if err := h.ProcessTask(ctx, asynq.NewTask(task.Type, task.Payload)); err != nil {
				t.Fatalf("run %d: ProcessTask: %v", run, err)
			}
		}

		var titles []string
		var kept []struct {
			Args string `bun:"args"`
			N    int    `bun:"n"`
		}
		if err := bdb.NewSelect().TableExpr("notifications AS n").ColumnExpr("n.args").
			ColumnExpr("(SELECT COUNT(*) FROM deliveries AS d WHERE d.notification_id = n.id) AS n").
			OrderExpr("n.id").Scan(ctx, &kept); err != nil {
			t.Fatalf("read notifications: %v", err)
		}
		for _, k := range kept {
			var a domain.NotificationArgs
			if err := json.Unmarshal([]byte(k.Args), &a); err != nil {
				t.Fatalf("args %s: %v", k.Args, err)
			}
			titles = append(titles, fmt.Sprintf("%s:%d", a.Title, k.N))
		}
		// A finished delivery older than 30 days goes; a pending one stays.
		want := []string{"read-lately:0", "unread-young:0", "recent:1", "recent-pending:1"}
		if strings.Join(titles, " ") != strings.Join(want, " ") {
			t.Errorf("notifications:deliveries left = %v, want %v", titles, want)
		}
		var ids []string
		if err := bdb.NewSelect().TableExpr("sessions").Column("id").Order("id").Scan(ctx, &ids); err != nil {
			t.Fatalf("read sessions: %v", err)
		}
		if got, want := strings.Join(ids, " "), "alive ended-lately"; got != want {
			t.Errorf("sessions left = %s, want %s", got, want)
		}
		ids = nil
		if err := bdb.NewSelect().TableExpr("account_codes").Column("id").Order("id").Scan(ctx, &ids); err != nil {
			t.Fatalf("read account codes: %v", err)
		}
		if got, want := strings.Join(ids, " "), "code-lately code-live"; got != want {
			t.Errorf("account codes left = %s, want %s", got, want)
		}
	})
}

func retentionTick(t *testing.T) jobs.Tick {
	t.Helper()
	for _, tk := range jobs.Ticks() {
		if tk.Name == jobs.TickRetention {
			if tk.Queue != jobs.QueueTicks || tk.Spec != "*/15 * * * *" {
				t.Errorf("retention tick: spec, queue = %q, %q; want */15 * * * *, ticks", tk.Spec, tk.Queue)
			}
			return tk
		}
	}
	t.Fatalf("no %s tick in the catalogue", jobs.TickRetention)
	return jobs.Tick{}
}
