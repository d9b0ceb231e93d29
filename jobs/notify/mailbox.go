package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// MailboxEntry is a message a log sender would have sent.
type MailboxEntry struct {
	Channel string    `json:"channel"` // "mail" or "sms"
	To      string    `json:"to"`
	Subject string    `json:"subject,omitempty"`
	Text    string    `json:"text"`
	HTML    string    `json:"html,omitempty"`
	SMSType SMSType   `json:"sms_type,omitempty"`
	ID      string    `json:"id"`
	At      time.Time `json:"at"`
}

// DefaultMailboxKey is the Redis list the mailbox keeps its messages in;
// the key with ":seq" appended numbers them.
const DefaultMailboxKey = "moim:mailbox"

// Mailbox keeps the last messages the log senders "sent", newest first, so
// an admin of a local run can read what would have gone out. It lives in
// Redis, a list capped at its size, so an API process reads what a
// separate worker process kept. It is a convenience of the log providers,
// not a record: what was sent, to whom and when is the deliveries table,
// and a Redis that loses the list loses only these copies. The bound is
// size messages (notify.mailbox_size, 100 by default: with mail bodies of
// some 10 KB, about a megabyte).
type Mailbox struct {
	rdb  redis.UniversalClient
	key  string
	size int
}

// NewMailbox keeps the last size messages (at least 1) in rdb.
func NewMailbox(rdb redis.UniversalClient, size int) *Mailbox {
	return &Mailbox{rdb: rdb, key: DefaultMailboxKey, size: max(size, 1)}
}

// Add stores e with a new id ("log-<n>") and returns the id.
func (b *Mailbox) Add(ctx context.Context, e MailboxEntry) (string, error) {
	seq, err := b.rdb.Incr(ctx, b.key+":seq").Result()
	if err != nil {
		return "", fmt.Errorf("mailbox: number message: %w", err)
	}
	e.ID = "log-" + strconv.FormatInt(seq, 10)
	v, err := json.Marshal(e)
	if err != nil {
		return "", fmt.Errorf("mailbox: encode message: %w", err)
	}
	// Push and trim in one transaction, so the list never holds more
	// than size messages.
	if _, err := b.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, b.key, v)
		p.LTrim(ctx, b.key, 0, int64(b.size-1))
		return nil
	}); err != nil {
		return "", fmt.Errorf("mailbox: keep message: %w", err)
	}
	return e.ID, nil
}

// List returns the kept messages, newest first. A message that does not
// decode (written by another version) is left out.
func (b *Mailbox) List(ctx context.Context) ([]MailboxEntry, error) {
	raw, err := b.rdb.LRange(ctx, b.key, 0, int64(b.size-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("mailbox: read: %w", err)
	}
	out := make([]MailboxEntry, 0, len(raw))
	for _, r := range raw {
		var e MailboxEntry
		if json.Unmarshal([]byte(r), &e) == nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// LogMail is the local MailSender: it logs each mail (never its body) and
// keeps it in the mailbox instead of sending it.
type LogMail struct {
	Logger  *slog.Logger
	Mailbox *Mailbox
	NowFunc func() time.Time
}

// SendMail records m and reports it accepted. A mailbox that cannot keep
// it (Redis down) is a transient failure: the delivery is tried again.
func (l *LogMail) SendMail(ctx context.Context, m Mail) (string, error) {
	id, err := l.Mailbox.Add(ctx, MailboxEntry{Channel: "mail", To: m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML, At: l.NowFunc()})
	if err != nil {
		return "", fmt.Errorf("log mail: %w", err)
	}
	l.Logger.InfoContext(ctx, "mail not sent: log provider", slog.String("to", m.To),
		slog.String("subject", m.Subject), slog.String("message_id", m.MessageID), slog.String("mailbox_id", id))
	return m.MessageID, nil
}
