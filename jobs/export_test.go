package jobs

import "time"

// SetAfterEnqueue makes r call fn after each batch's enqueues and before its
// marks, so external tests can stop a real relay there. Call it before r
// runs.
func SetAfterEnqueue(r *Relay, fn func()) { r.afterEnqueue = fn }

// SetClock makes r take leases and mark rows by now instead of time.Now.
// Call it before r runs.
func SetClock(r *Relay, now func() time.Time) { r.now = now }
