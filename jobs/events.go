package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/moim/moim/domain"
)

// EventsChannel is the Redis pub/sub channel on which workers announce new
// notifications. Every API instance holds one subscription to it and
// forwards each event to its own connected clients of that member.
const EventsChannel = "moim:events"

// Event is one new notification on EventsChannel. It carries the whole
// notification so an API instance can forward it without a database read.
type Event struct {
	MemberID     string            `json:"member_id"`
	Notification EventNotification `json:"notification"`
}

// EventNotification is a notification as it travels on EventsChannel.
type EventNotification struct {
	ID        string                  `json:"id"`
	Type      domain.NotificationType `json:"type"`
	Args      domain.NotificationArgs `json:"args"`
	CreatedAt time.Time               `json:"created_at"`
}

// Publisher announces new notifications on EventsChannel.
type Publisher struct {
	rdb redis.UniversalClient
}

// NewPublisher returns a publisher on rdb.
func NewPublisher(rdb redis.UniversalClient) *Publisher { return &Publisher{rdb: rdb} }

// Publish announces n. Pub/sub keeps nothing: a client that is not
// connected catches up from the table (Last-Event-ID), so a lost event only
// delays what it shows.
func (p *Publisher) Publish(ctx context.Context, n domain.Notification) error {
	b, err := json.Marshal(Event{MemberID: n.MemberID, Notification: EventNotification{
		ID: n.ID, Type: n.Type, Args: n.Args, CreatedAt: n.CreatedAt,
	}})
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	if err := p.rdb.Publish(ctx, EventsChannel, b).Err(); err != nil {
		return fmt.Errorf("publish event: %w", err)
	}
	return nil
}
