// Package jobs holds moim's task types and typed payloads, the transactional
// outbox and its relay, the task handlers and the tick catalogue.
package jobs

import (
	"encoding/json"
	"fmt"
	"time"
)

// Queues, weighted by config (worker.queues). A task's queue is part of its
// contract: operators scale and watch by queue.
const (
	QueueCritical = "critical"
	QueueDefault  = "default"
	QueueLow      = "low"
	// QueueTicks holds the scheduler's ticks and nothing else. A tick's
	// task id must outlive the catch-up window (an hour by default) so two
	// schedulers dedupe by it; kept in a business queue, a few hundred
	// retained ticks would bury that queue's completed tasks in the queue
	// UI. Every worker serves it (NewServer), weighted like the heaviest
	// queue: ticks are small and are what repairs lost work.
	QueueTicks = "ticks"
)

// HeaderRequestID is the task header carrying the id of the HTTP request that
// caused the task, so worker logs can be joined with API logs.
const HeaderRequestID = "request_id"

// Task is a follow-up task as written to the outbox: its type, JSON payload
// and delivery options. The relay turns it into an asynq task whose TaskID is
// the outbox row's task id.
type Task struct {
	// ID, if set, is the asynq task id instead of a random one: a task
	// that a sweep may enqueue again when Redis lost it is named after
	// its work, so the sweep and the relay never make it twice.
	ID        string
	Type      string
	Payload   []byte
	Queue     string    // "" means QueueDefault
	MaxRetry  int       // retries after the first attempt
	ProcessAt time.Time // zero means now
}

// newTask builds a Task with a JSON payload.
func newTask(typ string, payload any, queue string, maxRetry int) (Task, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return Task{}, fmt.Errorf("encode %s payload: %w", typ, err)
	}
	return Task{Type: typ, Payload: b, Queue: queue, MaxRetry: maxRetry}, nil
}

// TypePing is the built-in task that proves the loop API → outbox → relay →
// Redis → worker → database end to end.
const TypePing = "system:ping"

// PingPayload names the ping row to mark processed.
type PingPayload struct {
	PingID string `json:"ping_id"`
}

// NewPingTask returns the task that marks ping pingID processed, routed through
// queue so an operator can probe each queue ("" means QueueDefault).
func NewPingTask(pingID, queue string) (Task, error) {
	if queue == "" {
		queue = QueueDefault
	}
	return newTask(TypePing, PingPayload{PingID: pingID}, queue, 3)
}
