package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs/notify"
	"github.com/moim/moim/templates"
)

// TypeAccountSendCode sends one account code: a verification code by mail
// or SMS, or a password-reset link by mail.
const TypeAccountSendCode = "account:send-code"

// AccountSendCodePayload names the code row.
type AccountSendCodePayload struct {
	CodeID  string `json:"code_id"`
	Purpose int    `json:"purpose"`
}

// accountCodeMaxRetry covers a mail or SMS provider's short outage; past
// the code's own lifetime a retry sends nothing anyway.
const accountCodeMaxRetry = 5

// NewAccountSendCodeTask returns the task that sends code c. Its id is
// named after the code, so the relay and a sweep never make it twice.
// Critical queue: a member is waiting for it.
func NewAccountSendCodeTask(c *domain.AccountCode) (Task, error) {
	t, err := newTask(TypeAccountSendCode, AccountSendCodePayload{CodeID: c.ID, Purpose: int(c.Purpose)}, QueueCritical, accountCodeMaxRetry)
	t.ID = AccountCodeTaskID(c.ID)
	return t, err
}

// AccountCodeTaskID is the asynq task id of code id's task.
func AccountCodeTaskID(id string) string { return "account-code:" + id }

// Paths in the client app that the mailed links open; the app posts the
// code or token to the API.
const (
	VerifyEmailPath   = "/verify-email"
	ResetPasswordPath = "/reset-password"
)

// AccountCodeHandler processes TypeAccountSendCode. It derives the code
// from the row id with Key (the API derives the same to check it), renders
// the Korean text and sends it straight to the row's target: the pending
// address of an e-mail change, the new number, the account's address for a
// reset. Not through notifications: these go out whatever the member's
// channel settings, and never to an unverified number's predecessor.
//
// It is idempotent: a code already handled, used, expired or superseded by
// a newer one sends nothing, and sent_at is set after the provider accepted
// it. A crash between the two sends the same code again, which is harmless:
// the code is derived, not drawn.
type AccountCodeHandler struct {
	DB       *bun.DB
	Key      []byte
	Renderer *templates.Renderer
	Mail     notify.MailSender
	SMS      notify.SMSSender
	// MessageIDHost is the right-hand side of mail Message-IDs.
	MessageIDHost string
	// LinkBase makes the links absolute.
	LinkBase string
	Logger   *slog.Logger
	NowFunc  func() time.Time
}

// ProcessTask sends the code named by the payload.
func (h *AccountCodeHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p AccountSendCodePayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("decode %s payload: %v: %w", TypeAccountSendCode, err, asynq.SkipRetry)
	}
	purpose := domain.CodePurpose(p.Purpose)
	if p.CodeID == "" || !purpose.Valid() {
		return fmt.Errorf("decode %s payload: no code id or purpose: %w", TypeAccountSendCode, asynq.SkipRetry)
	}
	if len(h.Key) == 0 {
		return fmt.Errorf("send account code: no code key configured: %w", asynq.SkipRetry)
	}
	c, err := (db.AccountCodes{}).FindByID(ctx, h.DB, p.CodeID, purpose, "code")
	if domain.ErrorCode(err) == domain.ECODEEXPIRED {
		// Deleted by the cleanup: long expired.
		return nil
	}
	if err != nil {
		return fmt.Errorf("send account code: %w", err)
	}
	now := h.NowFunc().UTC()
	if c.SentAt != nil {
		return nil
	}
	send, why, err := h.prepare(ctx, c, now)
	if err != nil {
		return err
	}
	if send != nil {
		if err := send(ctx); err != nil {
			if notify.IsPermanent(err) {
				h.Logger.WarnContext(ctx, "account code not accepted by the provider",
					slog.String("code_id", c.ID), slog.String("purpose", c.Purpose.String()), slog.Any("err", err))
				if _, merr := (db.AccountCodes{}).MarkSent(ctx, h.DB, c.ID, now); merr != nil {
					return fmt.Errorf("send account code: %w", merr)
				}
				return fmt.Errorf("send account code: %w: %w", err, asynq.SkipRetry)
			}
			return fmt.Errorf("send account code: %w", err)
		}
	}
	if _, err := (db.AccountCodes{}).MarkSent(ctx, h.DB, c.ID, now); err != nil {
		return fmt.Errorf("send account code: %w", err)
	}
	if send == nil {
		h.Logger.InfoContext(ctx, "account code not sent",
			slog.String("code_id", c.ID), slog.String("purpose", c.Purpose.String()), slog.String("reason", why))
		return nil
	}
	h.Logger.InfoContext(ctx, "account code sent",
		slog.String("code_id", c.ID), slog.String("purpose", c.Purpose.String()))
	return nil
}

// prepare returns the call that sends c, or nil and the reason when there
// is nothing to send.
func (h *AccountCodeHandler) prepare(ctx context.Context, c *domain.AccountCode, now time.Time) (func(context.Context) error, string, error) {
	switch {
	case c.UsedAt != nil:
		return nil, "used", nil
	case !now.Before(c.ExpiresAt):
		return nil, "expired", nil
	case c.MemberID == "":
		// A reset asked for an address no member has.
		return nil, "no such account", nil
	}
	m, err := (db.Members{}).FindByID(ctx, h.DB, c.MemberID)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return nil, "member deleted", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("send account code: %w", err)
	}
	latest, err := (db.AccountCodes{}).Latest(ctx, h.DB, c.MemberID, c.Purpose, "code")
	if err != nil {
		return nil, "", fmt.Errorf("send account code: %w", err)
	}
	if latest.ID != c.ID {
		return nil, "superseded", nil
	}
	if c.Purpose == domain.CodeReset && m.Email != c.Target {
		return nil, "address changed", nil
	}
	code := domain.AccountCodeSecret(h.Key, c.ID, c.Purpose)
	data := templates.Data{Nickname: m.Nickname, Expiry: lifetime(c.ExpiresAt.Sub(c.CreatedAt))}
	var typ string
	switch c.Purpose {
	case domain.CodeEmail:
		typ, data.Code, data.Link = "EMAIL_VERIFICATION", code, h.link(VerifyEmailPath, "code", code)
	case domain.CodeReset:
		typ, data.Link = "PASSWORD_RESET", h.link(ResetPasswordPath, "token", code)
	case domain.CodePhone:
		msg, err := h.Renderer.Render(templates.SMS, "PHONE_VERIFICATION", templates.Data{Code: code, Expiry: data.Expiry})
		if err != nil {
			return nil, "", fmt.Errorf("render sms: %v: %w", err, asynq.SkipRetry)
		}
		sms := notify.SMS{To: c.Target, Subject: msg.Subject, Text: msg.Text}
		return func(ctx context.Context) error {
			_, err := h.SMS.SendSMS(ctx, sms)
			return err
		}, "", nil
	}
	msg, err := h.Renderer.Render(templates.Mail, typ, data)
	if err != nil {
		return nil, "", fmt.Errorf("render mail: %v: %w", err, asynq.SkipRetry)
	}
	mail := notify.Mail{To: c.Target, ToName: m.Nickname, Subject: msg.Subject, HTML: msg.HTML, Text: msg.Text,
		MessageID: fmt.Sprintf("<code-%s@%s>", c.ID, h.MessageIDHost)}
	return func(ctx context.Context) error {
		_, err := h.Mail.SendMail(ctx, mail)
		return err
	}, "", nil
}

// link is the client-app link carrying the code.
func (h *AccountCodeHandler) link(path, param, value string) string {
	return strings.TrimRight(h.LinkBase, "/") + path + "?" + param + "=" + url.QueryEscape(value)
}

// lifetime shows how long a code works, in Korean: "10분", "2시간".
func lifetime(d time.Duration) string {
	if d >= 2*time.Hour && d%time.Hour == 0 {
		return fmt.Sprintf("%d시간", int(d/time.Hour))
	}
	if m := int(d.Round(time.Minute) / time.Minute); m > 0 {
		return fmt.Sprintf("%d분", m)
	}
	return ""
}
