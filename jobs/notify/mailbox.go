package notify

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
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

// Mailbox keeps the last messages the log senders "sent", newest first, so
// an admin of a local run can read what would have gone out. It is safe
// for concurrent use.
type Mailbox struct {
	mu      sync.Mutex
	entries []MailboxEntry // a ring of at most size entries
	next    int
	size    int
	seq     int64
}

// NewMailbox keeps the last size messages (at least 1).
func NewMailbox(size int) *Mailbox {
	return &Mailbox{size: max(size, 1)}
}

// Add stores e with a new id and returns the id.
func (b *Mailbox) Add(e MailboxEntry) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	e.ID = fmt.Sprintf("log-%d", b.seq)
	if len(b.entries) < b.size {
		b.entries = append(b.entries, e)
	} else {
		b.entries[b.next] = e
	}
	b.next = (b.next + 1) % b.size
	return e.ID
}

// List returns the kept messages, newest first.
func (b *Mailbox) List() []MailboxEntry {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]MailboxEntry, 0, len(b.entries))
	for i := 1; i <= len(b.entries); i++ {
		out = append(out, b.entries[(b.next-i+len(b.entries))%len(b.entries)])
	}
	return out
}

// LogMail is the local MailSender: it logs each mail (never its body) and
// keeps it in the mailbox instead of sending it.
type LogMail struct {
	Logger  *slog.Logger
	Mailbox *Mailbox
	NowFunc func() time.Time
}

// SendMail records m and reports it accepted.
func (l *LogMail) SendMail(ctx context.Context, m Mail) (string, error) {
	id := l.Mailbox.Add(MailboxEntry{Channel: "mail", To: m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML, At: l.NowFunc()})
	l.Logger.InfoContext(ctx, "mail not sent: log provider", slog.String("to", m.To),
		slog.String("subject", m.Subject), slog.String("mailbox_id", id))
	return m.MessageID, nil
}
