package db_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/internal/clocktest"
)

// usec truncates t to the microseconds every dialect keeps.
func usec(t time.Time) time.Time { return t.Truncate(time.Microsecond) }

func TestPingsCreateAndFind(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		pings := db.Pings{}
		seoul := time.FixedZone("KST", 9*60*60)
		created := usec(time.Date(2026, 11, 25, 9, 30, 15, 123456789, seoul))

		tests := []struct {
			name string
			in   domain.Ping
		}{
			{"given id and time", domain.Ping{ID: db.NewPublicID(), RequestID: "req-1", CreatedAt: created}},
			{"generated id and time", domain.Ping{RequestID: "req-2"}},
			{"no request id", domain.Ping{CreatedAt: created}},
		}
		for _, tt := range tests {
			p := tt.in
			before := time.Now()
			if err := pings.Create(ctx, bdb, &p); err != nil {
				t.Fatalf("%s: Create: %v", tt.name, err)
			}
			if tt.in.ID != "" && p.ID != tt.in.ID {
				t.Errorf("%s: ID = %q, want %q kept", tt.name, p.ID, tt.in.ID)
			}
			if len(p.ID) != 26 {
				t.Errorf("%s: ID = %q, want a 26-character public id", tt.name, p.ID)
			}
			if p.CreatedAt.Location() != time.UTC {
				t.Errorf("%s: CreatedAt in %v, want UTC", tt.name, p.CreatedAt.Location())
			}
			if tt.in.CreatedAt.IsZero() && (p.CreatedAt.Before(before.Add(-time.Second)) || p.CreatedAt.After(time.Now().Add(time.Second))) {
				t.Errorf("%s: CreatedAt = %v, want about now", tt.name, p.CreatedAt)
			}

			got, err := pings.FindByID(ctx, bdb, p.ID)
			if err != nil {
				t.Fatalf("%s: FindByID: %v", tt.name, err)
			}
			if got.ID != p.ID || got.RequestID != tt.in.RequestID || got.ProcessedAt != nil {
				t.Errorf("%s: FindByID = %+v, want %+v", tt.name, got, p)
			}
			if !got.CreatedAt.Equal(usec(p.CreatedAt)) || got.CreatedAt.Location() != time.UTC {
				t.Errorf("%s: CreatedAt = %v, want %v in UTC", tt.name, got.CreatedAt, usec(p.CreatedAt).UTC())
			}
		}
	})
}

func TestPingsErrors(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		pings := db.Pings{}
		existing := domain.Ping{}
		if err := pings.Create(ctx, bdb, &existing); err != nil {
			t.Fatal(err)
		}

		tests := []struct {
			name     string
			run      func() error
			wantCode string
		}{
			{"duplicate id", func() error {
				return pings.Create(ctx, bdb, &domain.Ping{ID: existing.ID})
			}, domain.ECONFLICT},
			{"request id too long", func() error {
				return pings.Create(ctx, bdb, &domain.Ping{RequestID: strings.Repeat("r", 129)})
			}, domain.EINVALID},
			{"find unknown id", func() error {
				_, err := pings.FindByID(ctx, bdb, "nosuchping")
				return err
			}, domain.ENOTFOUND},
			{"mark unknown id", func() error {
				_, err := pings.MarkProcessed(ctx, bdb, "nosuchping", clocktest.Now())
				return err
			}, domain.ENOTFOUND},
		}
		for _, tt := range tests {
			if got := domain.ErrorCode(tt.run()); got != tt.wantCode {
				t.Errorf("%s: code = %q, want %q", tt.name, got, tt.wantCode)
			}
		}
		if err := pings.Create(ctx, bdb, &domain.Ping{RequestID: strings.Repeat("r", 128)}); err != nil {
			t.Errorf("request id of 128 bytes: %v", err)
		}
	})
}

func TestPingsMarkProcessedIsIdempotent(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		pings := db.Pings{}
		p := domain.Ping{}
		if err := pings.Create(ctx, bdb, &p); err != nil {
			t.Fatal(err)
		}
		first := usec(clocktest.Now().In(time.FixedZone("X", -5*60*60)))

		steps := []struct {
			at          time.Time
			wantChanged bool
		}{
			{first, true},
			{first.Add(time.Minute), false},
			{first.Add(-time.Minute), false},
		}
		for i, s := range steps {
			changed, err := pings.MarkProcessed(ctx, bdb, p.ID, s.at)
			if err != nil {
				t.Fatalf("call %d: %v", i+1, err)
			}
			if changed != s.wantChanged {
				t.Errorf("call %d: changed = %v, want %v", i+1, changed, s.wantChanged)
			}
			got, err := pings.FindByID(ctx, bdb, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.ProcessedAt == nil || !got.ProcessedAt.Equal(first) || got.ProcessedAt.Location() != time.UTC {
				t.Errorf("call %d: ProcessedAt = %v, want the first time %v in UTC", i+1, got.ProcessedAt, first.UTC())
			}
		}
	})
}

func TestPingsMarkProcessedConcurrent(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		pings := db.Pings{}
		p := domain.Ping{}
		if err := pings.Create(ctx, bdb, &p); err != nil {
			t.Fatal(err)
		}
		const workers = 24
		var changes atomic.Int32
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range workers {
			wg.Go(func() {
				<-start
				at := clocktest.Now().Add(time.Duration(i) * time.Second)
				changed, err := pings.MarkProcessed(ctx, bdb, p.ID, at)
				if err != nil {
					t.Errorf("worker %d: %v", i, err)
					return
				}
				if changed {
					changes.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		if n := changes.Load(); n != 1 {
			t.Errorf("%d calls reported a change, want exactly 1", n)
		}
		got, err := pings.FindByID(ctx, bdb, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.ProcessedAt == nil {
			t.Error("ProcessedAt = nil after the calls, want set")
		}
	})
}
