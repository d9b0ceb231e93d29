// Package notify holds what the delivery channels share: the messages the
// notification handlers hand to a sender, the sender interfaces, and the
// classification of send errors into "retry later" and "give up". Each
// channel's client lives in a sub-package (mail, sms, slack) and knows only
// its protocol.
package notify

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Mail is one rendered e-mail.
type Mail struct {
	To        string // a bare address
	ToName    string // display name, may be empty
	Subject   string
	HTML      string
	Text      string
	MessageID string // deterministic per delivery: "<delivery-id@host>"
}

// MailSender sends mail. It returns the provider's id of the accepted
// message (for SMTP, the Message-ID) or an error classified with Permanent
// or Temporary.
type MailSender interface {
	SendMail(ctx context.Context, m Mail) (providerID string, err error)
}

// SMSType is what an SMS delivery went out as: ErunJrun's send log codes.
type SMSType int

// The SMS types, stored in the delivery row.
const (
	SMSNone  SMSType = 0
	SMSShort SMSType = 1 // SMS: up to 90 bytes of EUC-KR
	SMSLong  SMSType = 2 // LMS: up to 2,000 bytes with a subject
)

// SMS is one text message. The sender picks SMS or LMS by length.
type SMS struct {
	To      string // E.164 (+821012345678)
	Subject string // used only when it goes as LMS
	Text    string
}

// SMSResult is what the provider accepted.
type SMSResult struct {
	ProviderID string
	Type       SMSType
}

// SMSSender sends text messages.
type SMSSender interface {
	SendSMS(ctx context.Context, m SMS) (SMSResult, error)
}

// SlackGroupMessage is one message to a group DM of the members with these
// Slack e-mail addresses (addresses without a Slack account are skipped).
type SlackGroupMessage struct {
	Emails []string
	Text   string
}

// SlackSender posts to Slack.
type SlackSender interface {
	PostGroup(ctx context.Context, m SlackGroupMessage) (providerID string, err error)
}

// ErrNoRecipients is returned (as a permanent error) by a sender that found
// nobody to send to, such as a Slack group none of whose members has a
// Slack account.
var ErrNoRecipients = errors.New("no recipients")

// permanentError marks a failure that sending again cannot fix: an invalid
// address or number, a 4xx answer, a rejected token.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return "permanent: " + e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// temporaryError marks a failure worth retrying, optionally not before a
// delay the provider asked for (HTTP 429 Retry-After).
type temporaryError struct {
	err   error
	after time.Duration
}

func (e *temporaryError) Error() string {
	if e.after > 0 {
		return fmt.Sprintf("temporary (retry after %s): %v", e.after, e.err)
	}
	return "temporary: " + e.err.Error()
}
func (e *temporaryError) Unwrap() error { return e.err }

// Temporary marks err as worth retrying; after > 0 is the earliest retry the
// provider asked for. Unclassified errors count as temporary too: this only
// carries the delay.
func Temporary(err error, after time.Duration) error {
	if err == nil {
		return nil
	}
	return &temporaryError{err: err, after: after}
}

// RetryAfter returns the delay a Temporary error asked for, if any.
func RetryAfter(err error) (time.Duration, bool) {
	var t *temporaryError
	if errors.As(err, &t) && t.after > 0 {
		return t.after, true
	}
	return 0, false
}
