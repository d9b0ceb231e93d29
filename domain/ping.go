package domain

import "time"

// Ping is an operator's probe of the whole task loop: the API records it and
// enqueues a task through the outbox; a worker marks it processed.
type Ping struct {
	ID          string     // opaque public id
	RequestID   string     // the HTTP request that created it
	CreatedAt   time.Time  // when the API committed it
	ProcessedAt *time.Time // when a worker first handled it; nil until then
}
