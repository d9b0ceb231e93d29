package sms

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/moim/moim/jobs/notify"
)

// LogSender is the local SMSSender: it prepares each message exactly as
// the SENS client would (SMS or LMS, EUC-KR-safe text), logs it without the
// text, and keeps it in the mailbox instead of sending it.
type LogSender struct {
	Logger  *slog.Logger
	Mailbox *notify.Mailbox
	NowFunc func() time.Time
}

// SendSMS records m and reports it accepted.
func (l *LogSender) SendSMS(ctx context.Context, m notify.SMS) (notify.SMSResult, error) {
	// The same number check as SENS, so a bad number fails locally too.
	if _, _, err := splitNumber(m.To); err != nil {
		return notify.SMSResult{}, notify.Permanent(fmt.Errorf("log sms: %w", err))
	}
	typ, subject, text := Prepare(m.Subject, m.Text)
	id, err := l.Mailbox.Add(ctx, notify.MailboxEntry{Channel: "sms", To: m.To, Subject: subject, Text: text, SMSType: typ, At: l.NowFunc()})
	if err != nil {
		return notify.SMSResult{}, fmt.Errorf("log sms: %w", err)
	}
	l.Logger.InfoContext(ctx, "sms not sent: log provider", slog.String("mailbox_id", id), slog.Int("sms_type", int(typ)))
	return notify.SMSResult{ProviderID: id, Type: typ}, nil
}
