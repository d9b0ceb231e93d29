package jobs

import (
	"time"

	"github.com/hibiken/asynq"
)

// SetAfterEnqueue makes r call fn after each batch's enqueues and before its
// marks, so external tests can watch a real relay there. Call it before r
// runs.
func SetAfterEnqueue(r *Relay, fn func()) { r.afterEnqueue = func() bool { fn(); return false } }

// SetCrashAfterEnqueue makes r call fn and then abandon each batch after its
// enqueues and before its marks, as a relay whose process dies there would.
// Call it before r runs.
func SetCrashAfterEnqueue(r *Relay, fn func()) { r.afterEnqueue = func() bool { fn(); return true } }

// SetClock makes r take leases and mark rows by now instead of time.Now.
// Call it before r runs.
func SetClock(r *Relay, now func() time.Time) { r.now = now }

// TypeCount is how many task types a mux of deps serves.
func TypeCount(deps Deps) int {
	r := newRegistry(asynq.NewServeMux())
	if err := registerHandlers(r, deps); err != nil {
		panic(err)
	}
	return len(r.types)
}
