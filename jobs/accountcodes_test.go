package jobs_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/internal/clocktest"
	"github.com/moim/moim/jobs"
	"github.com/moim/moim/jobs/notify"
	"github.com/moim/moim/templates"
)

// codeKey derives the account codes of these tests.
var codeKey = []byte("jobs-test-code-key-0123456789-0123456789")

// createCode records a code of purpose p for member to target as the API
// does, and returns it with its send task.
func createCode(t *testing.T, bdb *bun.DB, p domain.CodePurpose, memberID, target string, now time.Time) (*domain.AccountCode, *asynq.Task) {
	t.Helper()
	id := db.NewAccountCodeID()
	c := &domain.AccountCode{ID: id, Purpose: p, MemberID: memberID, Target: target,
		CodeHash:  domain.HashAccountCode(codeKey, id, domain.AccountCodeSecret(codeKey, id, p)),
		ExpiresAt: now.Add(10 * time.Minute), CreatedAt: now}
	if err := (db.AccountCodes{}).Create(context.Background(), bdb, c); err != nil {
		t.Fatal(err)
	}
	task, err := jobs.NewAccountSendCodeTask(c)
	if err != nil {
		t.Fatal(err)
	}
	return c, asynq.NewTask(task.Type, task.Payload)
}

// TestAccountCodeHandlerSends: the worker mails an e-mail code and a reset
// link, texts a phone code to an SMS peer, and each code it sent verifies;
// a reset for an unknown address and a second run send nothing.
func TestAccountCodeHandlerSends(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		r, err := templates.New(time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		box := newMailbox(t, 10)
		peer := newSENSPeer(t, 0)
		now := clocktest.Now().UTC().Truncate(time.Second)
		h := &jobs.AccountCodeHandler{DB: bdb, Key: codeKey, Renderer: r,
			Mail:          &notify.LogMail{Logger: slog.New(slog.DiscardHandler), Mailbox: box, NowFunc: func() time.Time { return now }},
			SMS:           peer.client(t),
			MessageIDHost: "moim.test", LinkBase: "https://app.moim.test",
			Logger: slog.New(slog.DiscardHandler), NowFunc: func() time.Time { return now }}
		mina := newMember(t, bdb, "mina", nil)

		run := func(task *asynq.Task) {
			t.Helper()
			if err := h.ProcessTask(ctx, task); err != nil {
				t.Fatalf("process: %v", err)
			}
		}
		sent := func(c *domain.AccountCode) {
			t.Helper()
			got, err := (db.AccountCodes{}).FindByID(ctx, bdb, c.ID, c.Purpose, "code")
			if err != nil || got.SentAt == nil {
				t.Errorf("code %s after the run: %+v, %v", c.Purpose, got, err)
			}
		}

		// E-mail code: the mail carries it, and it matches the stored hash.
		email, task := createCode(t, bdb, domain.CodeEmail, mina.ID, "mina.new@example.com", now)
		run(task)
		run(task) // handled once
		mails := listMailbox(t, box)
		if len(mails) != 1 || mails[0].To != "mina.new@example.com" {
			t.Fatalf("mailbox after the e-mail code: %+v", mails)
		}
		code := domain.AccountCodeSecret(codeKey, email.ID, domain.CodeEmail)
		if !strings.Contains(mails[0].Text, code) || !email.CodeMatches(codeKey, code) {
			t.Errorf("the mail does not carry the code %s:\n%s", code, mails[0].Text)
		}
		sent(email)

		// Phone code: the SMS peer gets it.
		phone, task := createCode(t, bdb, domain.CodePhone, mina.ID, "+821099998888", now)
		run(task)
		peer.mu.Lock()
		req, _ := json.Marshal(peer.lastReq)
		peer.mu.Unlock()
		code = domain.AccountCodeSecret(codeKey, phone.ID, domain.CodePhone)
		if peer.calls.Load() != 1 || !strings.Contains(string(req), code) || !strings.Contains(string(req), "01099998888") ||
			!phone.CodeMatches(codeKey, code) {
			t.Errorf("SMS peer got %d calls, last %s; want code %s", peer.calls.Load(), req, code)
		}
		sent(phone)

		// Reset: a link with the token to the member's address.
		reset, task := createCode(t, bdb, domain.CodeReset, mina.ID, mina.Email, now)
		run(task)
		mails = listMailbox(t, box)
		token := domain.AccountCodeSecret(codeKey, reset.ID, domain.CodeReset)
		if len(mails) != 2 || mails[0].To != mina.Email || !strings.Contains(mails[0].Text, token) || !reset.CodeMatches(codeKey, token) {
			t.Errorf("mailbox after the reset: %+v", mails)
		}

		// A reset for an address nobody has: handled, nothing sent.
		ghost, task := createCode(t, bdb, domain.CodeReset, "", "nobody@example.com", now)
		run(task)
		if n := len(listMailbox(t, box)); n != 2 || peer.calls.Load() != 1 {
			t.Errorf("a reset for an unknown address sent something: %d mails, %d SMS", n, peer.calls.Load())
		}
		sent(ghost)
	})
}
