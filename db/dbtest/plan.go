package dbtest

import (
	"context"
	"sync"

	"github.com/uptrace/bun"
)

// PlanCapture records the SQL bun sends, so a test can EXPLAIN it: add it
// with bun.DB.AddQueryHook.
type PlanCapture struct {
	mu  sync.Mutex
	sql []string
}

// BeforeQuery implements bun.QueryHook.
func (c *PlanCapture) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

// AfterQuery implements bun.QueryHook.
func (c *PlanCapture) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sql = append(c.sql, e.Query)
}

// Last returns the last query sent.
func (c *PlanCapture) Last() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sql[len(c.sql)-1]
}

// All returns every query sent, in order.
func (c *PlanCapture) All() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.sql...)
}
