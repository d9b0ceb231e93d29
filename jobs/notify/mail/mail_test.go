package mail_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"

	"github.com/moim/moim/jobs/notify"
	"github.com/moim/moim/jobs/notify/mail"
)

const (
	testFrom     = "moim <no-reply@example.com>"
	testUser     = "mailer"
	testPassword = "s3cret-pa55word"
)

// config points at ts with settings that work unless a test changes them.
func config(ts *testServer, policy mail.TLSPolicy) mail.Config {
	return mail.Config{
		Host:               ts.host,
		Port:               ts.port,
		TLS:                policy,
		From:               testFrom,
		Timeout:            5 * time.Second,
		HeloName:           "moim.test",
		InsecureSkipVerify: true,
	}
}

// newSender fails the test if cfg is rejected.
func newSender(t *testing.T, cfg mail.Config) *mail.Sender {
	t.Helper()
	return newSenderTLS(t, cfg, false)
}

// newSenderTLS builds a sender for cfg, over implicit TLS when asked.
func newSenderTLS(t *testing.T, cfg mail.Config, implicit bool) *mail.Sender {
	t.Helper()
	newFunc := mail.New
	if implicit {
		newFunc = mail.NewImplicitTLS
	}
	s, err := newFunc(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func sampleMail(to string) notify.Mail {
	return notify.Mail{
		To:        to,
		ToName:    "김민지",
		Subject:   "[모임] 방 배정이 완료되었습니다",
		Text:      "안녕하세요, 김민지님.\n방 배정이 완료되었습니다.",
		HTML:      "<p>안녕하세요, <b>김민지</b>님.</p>",
		MessageID: "<delivery-42@moim.example>",
	}
}

func TestSendMailMessage(t *testing.T) {
	t.Parallel()
	longSubject := strings.Repeat("이번 주 미션이 시작되었습니다. ", 5)
	tests := []struct {
		name     string
		from     string
		mail     notify.Mail
		wantFrom netmail.Address
	}{
		{
			name:     "korean with display names",
			from:     testFrom,
			mail:     sampleMail("minji@example.com"),
			wantFrom: netmail.Address{Name: "moim", Address: "no-reply@example.com"},
		},
		{
			name: "bare from and no recipient name",
			from: "no-reply@example.com",
			mail: notify.Mail{
				To: "minji@example.com", Subject: "plain ascii", Text: "text", HTML: "<p>html</p>",
				MessageID: "<d-1@moim.example>",
			},
			wantFrom: netmail.Address{Address: "no-reply@example.com"},
		},
		{
			name: "long subject is folded",
			from: testFrom,
			mail: func() notify.Mail {
				m := sampleMail("minji@example.com")
				m.Subject = longSubject
				return m
			}(),
			wantFrom: netmail.Address{Name: "moim", Address: "no-reply@example.com"},
		},
		{
			name: "line break in name stays inside the To header",
			from: testFrom,
			mail: func() notify.Mail {
				m := sampleMail("minji@example.com")
				m.ToName = "김민지\r\nBcc: evil@example.com"
				m.Subject = "제목\r\nBcc: evil@example.com"
				return m
			}(),
			wantFrom: netmail.Address{Name: "moim", Address: "no-reply@example.com"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, serverConfig{})
			cfg := config(ts, mail.TLSOpportunistic)
			cfg.From = tt.from
			id, err := newSender(t, cfg).SendMail(context.Background(), tt.mail)
			if err != nil {
				t.Fatalf("SendMail: %v", err)
			}
			if id != tt.mail.MessageID {
				t.Errorf("provider id = %q, want %q", id, tt.mail.MessageID)
			}

			mails := ts.Mails()
			if len(mails) != 1 {
				t.Fatalf("server got %d mails, want 1", len(mails))
			}
			got := mails[0]
			if got.From != tt.wantFrom.Address {
				t.Errorf("MAIL FROM = %q, want %q", got.From, tt.wantFrom.Address)
			}
			if diff := cmp.Diff([]string{tt.mail.To}, got.To); diff != "" {
				t.Errorf("RCPT TO (-want +got):\n%s", diff)
			}
			checkMessage(t, got.Data, tt.mail, tt.wantFrom)
		})
	}
}

// checkMessage parses raw as the receiving side would and compares it with
// what was sent.
func checkMessage(t *testing.T, raw []byte, want notify.Mail, wantFrom netmail.Address) {
	t.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("read message: %v\n%s", err, raw)
	}
	h := msg.Header
	for _, name := range []string{"Subject", "To", "From"} {
		if v := h.Get(name); strings.ContainsFunc(v, func(r rune) bool { return r > 0x7e || r < 0x20 }) {
			t.Errorf("%s header is not 7-bit ASCII: %q", name, v)
		}
	}
	if v, ok := h["Bcc"]; ok {
		t.Errorf("Bcc header = %q, want none", v)
	}

	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(h.Get("Subject"))
	if err != nil {
		t.Errorf("decode subject %q: %v", h.Get("Subject"), err)
	}
	if subject != want.Subject {
		t.Errorf("Subject = %q, want %q", subject, want.Subject)
	}

	to, err := h.AddressList("To")
	if err != nil {
		t.Fatalf("parse To %q: %v", h.Get("To"), err)
	}
	if diff := cmp.Diff([]*netmail.Address{{Name: want.ToName, Address: want.To}}, to); diff != "" {
		t.Errorf("To (-want +got):\n%s", diff)
	}
	from, err := h.AddressList("From")
	if err != nil {
		t.Fatalf("parse From %q: %v", h.Get("From"), err)
	}
	if diff := cmp.Diff([]*netmail.Address{&wantFrom}, from); diff != "" {
		t.Errorf("From (-want +got):\n%s", diff)
	}
	if got := h.Get("Message-Id"); got != want.MessageID {
		t.Errorf("Message-ID = %q, want %q", got, want.MessageID)
	}
	if date, err := h.Date(); err != nil {
		t.Errorf("Date %q: %v", h.Get("Date"), err)
	} else if d := time.Since(date); d < -time.Minute || d > time.Minute {
		t.Errorf("Date = %v, want about now", date)
	}

	mediaType, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mediaType != "multipart/alternative" {
		t.Fatalf("Content-Type = %q (%v), want multipart/alternative", h.Get("Content-Type"), err)
	}
	type part struct{ ContentType, Body string }
	var parts []part
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("next part: %v", err)
		}
		body, err := io.ReadAll(p) // undoes quoted-printable
		if err != nil {
			t.Fatalf("read part: %v", err)
		}
		ct, ctParams, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if err != nil {
			t.Fatalf("part Content-Type %q: %v", p.Header.Get("Content-Type"), err)
		}
		if cs := ctParams["charset"]; !strings.EqualFold(cs, "utf-8") {
			t.Errorf("%s charset = %q, want UTF-8", ct, cs)
		}
		// SMTP carries lines ending in CRLF whatever the sender wrote.
		parts = append(parts, part{ct, strings.ReplaceAll(string(body), "\r\n", "\n")})
	}
	wantParts := []part{{"text/plain", want.Text}, {"text/html", want.HTML}}
	if diff := cmp.Diff(wantParts, parts); diff != "" {
		t.Errorf("parts (-want +got):\n%s", diff)
	}
}

func TestSendMailAuth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		server    serverConfig
		policy    mail.TLSPolicy
		implicit  bool
		password  string
		wantErr   bool
		wantPerm  bool
		wantAuths []string
	}{
		{
			name:      "right password over STARTTLS",
			server:    serverConfig{startTLS: true},
			policy:    mail.TLSMandatory,
			password:  testPassword,
			wantAuths: []string{testUser},
		},
		{
			name:      "right password over implicit TLS",
			server:    serverConfig{implicitTLS: true},
			policy:    mail.TLSMandatory,
			implicit:  true,
			password:  testPassword,
			wantAuths: []string{testUser},
		},
		{
			name:      "wrong password is permanent",
			server:    serverConfig{startTLS: true},
			policy:    mail.TLSMandatory,
			password:  "wrong-" + testPassword,
			wantErr:   true,
			wantPerm:  true,
			wantAuths: []string{testUser},
		},
		{
			// PLAIN without TLS would hand the password to anyone on the
			// path: the client refuses before AUTH, so it is a configuration
			// fault, retried once ops fix it.
			name:     "no plain AUTH without TLS",
			server:   serverConfig{insecureAuth: true},
			policy:   mail.TLSOpportunistic,
			password: testPassword,
			wantErr:  true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srvCfg := tt.server
			srvCfg.username, srvCfg.password = testUser, testPassword
			ts := startServer(t, srvCfg)
			cfg := config(ts, tt.policy)
			cfg.Username, cfg.Password = testUser, tt.password
			s := newSenderTLS(t, cfg, tt.implicit)
			_, err := s.SendMail(context.Background(), sampleMail("minji@example.com"))
			if (err != nil) != tt.wantErr {
				t.Fatalf("SendMail error = %v, want error %t", err, tt.wantErr)
			}
			if got := notify.IsPermanent(err); got != tt.wantPerm {
				t.Errorf("IsPermanent = %t, want %t (%v)", got, tt.wantPerm, err)
			}
			if err != nil && strings.Contains(err.Error(), tt.password) {
				t.Errorf("error %q contains the password", err)
			}
			if diff := cmp.Diff(tt.wantAuths, ts.Auths()); diff != "" {
				t.Errorf("AUTH attempts (-want +got):\n%s", diff)
			}
			if got, want := len(ts.Mails()), map[bool]int{false: 1, true: 0}[tt.wantErr]; got != want {
				t.Errorf("server got %d mails, want %d", got, want)
			}
		})
	}
}

func TestSendMailTLSPolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		server     serverConfig
		policy     mail.TLSPolicy
		implicit   bool
		skipVerify bool
		wantErr    bool
		wantTLS    bool
	}{
		// A server without STARTTLS under a mandatory policy is a
		// configuration fault on one side or the other. It is temporary: the
		// mail is still worth sending once ops fix it, and giving up would
		// lose every mail sent meanwhile.
		{name: "mandatory without STARTTLS fails", policy: mail.TLSMandatory, skipVerify: true, wantErr: true},
		{name: "mandatory with STARTTLS", server: serverConfig{startTLS: true}, policy: mail.TLSMandatory, skipVerify: true, wantTLS: true},
		{name: "mandatory with untrusted certificate fails", server: serverConfig{startTLS: true}, policy: mail.TLSMandatory, wantErr: true},
		{name: "empty policy is mandatory", policy: "", skipVerify: true, wantErr: true},
		{name: "implicit TLS", server: serverConfig{implicitTLS: true}, policy: mail.TLSMandatory, implicit: true, skipVerify: true, wantTLS: true},
		{name: "implicit TLS with untrusted certificate fails", server: serverConfig{implicitTLS: true}, policy: mail.TLSMandatory, implicit: true, wantErr: true},
		{name: "opportunistic without STARTTLS sends plain", policy: mail.TLSOpportunistic},
		{name: "opportunistic with STARTTLS", server: serverConfig{startTLS: true}, policy: mail.TLSOpportunistic, skipVerify: true, wantTLS: true},
		{name: "opportunistic handshake failure is temporary", server: serverConfig{startTLS: true}, policy: mail.TLSOpportunistic, wantErr: true},
		{name: "none sends plain although STARTTLS is offered", server: serverConfig{startTLS: true}, policy: mail.TLSNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, tt.server)
			cfg := config(ts, tt.policy)
			cfg.InsecureSkipVerify = tt.skipVerify
			s := newSenderTLS(t, cfg, tt.implicit)
			_, err := s.SendMail(context.Background(), sampleMail("minji@example.com"))
			if (err != nil) != tt.wantErr {
				t.Fatalf("SendMail error = %v, want error %t", err, tt.wantErr)
			}
			if notify.IsPermanent(err) {
				t.Errorf("IsPermanent = true, want false (%v)", err)
			}
			mails := ts.Mails()
			if tt.wantErr {
				if len(mails) != 0 {
					t.Errorf("server got %d mails, want 0", len(mails))
				}
				return
			}
			if len(mails) != 1 {
				t.Fatalf("server got %d mails, want 1", len(mails))
			}
			if mails[0].TLS != tt.wantTLS {
				t.Errorf("sent over TLS = %t, want %t", mails[0].TLS, tt.wantTLS)
			}
		})
	}
}

func TestSendMailErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		server   serverConfig
		mail     func(notify.Mail) notify.Mail
		wantPerm bool
		wantIs   error
		wantCode string // the server's reply code, to see the right answer classified
		noDial   bool   // must fail before connecting
	}{
		{
			name:     "RCPT 550",
			server:   serverConfig{rejectRcpt: map[string]*smtp.SMTPError{"gone@example.com": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}}},
			mail:     func(m notify.Mail) notify.Mail { m.To = "gone@example.com"; return m },
			wantPerm: true,
			wantCode: "550",
		},
		{
			name:     "RCPT 451",
			server:   serverConfig{rejectRcpt: map[string]*smtp.SMTPError{"busy@example.com": {Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}}},
			mail:     func(m notify.Mail) notify.Mail { m.To = "busy@example.com"; return m },
			wantCode: "451",
		},
		{
			name:     "MAIL FROM 553",
			server:   serverConfig{rejectMail: &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender not allowed"}},
			wantPerm: true,
			wantCode: "553",
		},
		{
			name:     "MAIL FROM 421",
			server:   serverConfig{rejectMail: &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Shutting down"}},
			wantCode: "421",
		},
		{
			name:     "DATA 554",
			server:   serverConfig{rejectData: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message rejected"}},
			wantPerm: true,
			wantCode: "554",
		},
		{
			name:     "DATA 452",
			server:   serverConfig{rejectData: &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient storage"}},
			wantCode: "452",
		},
		{
			name:     "invalid To",
			mail:     func(m notify.Mail) notify.Mail { m.To = "not an address"; return m },
			wantPerm: true,
			wantIs:   mail.ErrInvalidAddress,
			noDial:   true,
		},
		{
			name:     "empty To",
			mail:     func(m notify.Mail) notify.Mail { m.To = ""; return m },
			wantPerm: true,
			wantIs:   mail.ErrInvalidAddress,
			noDial:   true,
		},
		{
			name:     "message id without brackets",
			mail:     func(m notify.Mail) notify.Mail { m.MessageID = "delivery-42@moim.example"; return m },
			wantPerm: true,
			wantIs:   mail.ErrInvalidMessageID,
			noDial:   true,
		},
		{
			name:     "message id with a line break",
			mail:     func(m notify.Mail) notify.Mail { m.MessageID = "<a@b>\r\nBcc: evil@example.com"; return m },
			wantPerm: true,
			wantIs:   mail.ErrInvalidMessageID,
			noDial:   true,
		},
		{
			name:     "no body",
			mail:     func(m notify.Mail) notify.Mail { m.Text, m.HTML = "", ""; return m },
			wantPerm: true,
			wantIs:   mail.ErrEmptyBody,
			noDial:   true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, tt.server)
			m := sampleMail("minji@example.com")
			if tt.mail != nil {
				m = tt.mail(m)
			}
			id, err := newSender(t, config(ts, mail.TLSNone)).SendMail(context.Background(), m)
			if err == nil {
				t.Fatalf("SendMail = %q, want an error", id)
			}
			if got := notify.IsPermanent(err); got != tt.wantPerm {
				t.Errorf("IsPermanent = %t, want %t (%v)", got, tt.wantPerm, err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error = %v, want %v", err, tt.wantIs)
			}
			if tt.wantCode != "" && !strings.Contains(err.Error(), tt.wantCode) {
				t.Errorf("error = %v, want the server's %s in it", err, tt.wantCode)
			}
			if n := ts.conns.Load(); tt.noDial && n != 0 {
				t.Errorf("connections = %d, want 0", n)
			}
			if n := len(ts.Mails()); n != 0 {
				t.Errorf("server got %d mails, want 0", n)
			}
		})
	}
}

func TestSendMailConnectionRefused(t *testing.T) {
	t.Parallel()
	s := newSender(t, mail.Config{Host: "127.0.0.1", Port: closedPort(t), TLS: mail.TLSNone, From: testFrom, Timeout: 5 * time.Second})
	_, err := s.SendMail(context.Background(), sampleMail("minji@example.com"))
	if err == nil {
		t.Fatal("SendMail succeeded against a closed port")
	}
	if notify.IsPermanent(err) {
		t.Errorf("IsPermanent = true, want false (%v)", err)
	}
}

func TestSendMailDeadline(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		timeout time.Duration
		ctx     func() (context.Context, context.CancelFunc)
		wantIs  error
		within  time.Duration
	}{
		{
			// Either the read deadline or the ctx deadline may fire first,
			// so the error is not checked for a particular cause.
			name:    "config timeout",
			timeout: 300 * time.Millisecond,
			ctx:     func() (context.Context, context.CancelFunc) { return context.Background(), func() {} },
			within:  300 * time.Millisecond,
		},
		{
			name:    "ctx deadline shorter than timeout",
			timeout: time.Minute,
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 200*time.Millisecond)
			},
			wantIs: context.DeadlineExceeded,
			within: 200 * time.Millisecond,
		},
		{
			name:    "ctx cancelled after connecting",
			timeout: time.Minute,
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(200*time.Millisecond, cancel)
				return ctx, cancel
			},
			wantIs: context.Canceled,
			within: 200 * time.Millisecond,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			host, port := silentServer(t)
			s := newSender(t, mail.Config{Host: host, Port: port, TLS: mail.TLSNone, From: testFrom, Timeout: tt.timeout})
			ctx, cancel := tt.ctx()
			defer cancel()

			start := time.Now()
			_, err := s.SendMail(ctx, sampleMail("minji@example.com"))
			elapsed := time.Since(start)
			if err == nil {
				t.Fatal("SendMail succeeded against a server that never greets")
			}
			if notify.IsPermanent(err) {
				t.Errorf("IsPermanent = true, want false (%v)", err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error = %v, want %v", err, tt.wantIs)
			}
			// Slack for a loaded machine running the race detector.
			if limit := tt.within + time.Second; elapsed > limit {
				t.Errorf("SendMail took %v, want under %v", elapsed, limit)
			}
		})
	}
}

// authedSender is a sender that must STARTTLS and AUTH with its server.
func authedSender(t *testing.T) (*testServer, *mail.Sender) {
	t.Helper()
	ts := startServer(t, serverConfig{startTLS: true, username: testUser, password: testPassword})
	cfg := config(ts, mail.TLSMandatory)
	cfg.Username, cfg.Password = testUser, testPassword
	return ts, newSender(t, cfg)
}

// TestSendMailKeepsSessions: mails one after another share one SMTP
// session (one TCP connection, one STARTTLS and AUTH); a session the
// server hung up on while it waited is replaced without losing or doubling
// the mail; a session kept too long is not tried; Close ends the kept ones.
func TestSendMailKeepsSessions(t *testing.T) {
	t.Parallel()
	ts, s := authedSender(t)
	send := func(i int) {
		t.Helper()
		m := sampleMail(fmt.Sprintf("member-%d@example.com", i))
		m.MessageID = fmt.Sprintf("<delivery-%d@moim.example>", i)
		if _, err := s.SendMail(context.Background(), m); err != nil {
			t.Fatalf("mail %d: %v", i, err)
		}
	}
	for i := range 5 {
		send(i)
	}
	if n := ts.conns.Load(); n != 1 {
		t.Errorf("5 mails in a row took %d connections, want 1", n)
	}
	if n := len(ts.Auths()); n != 1 {
		t.Errorf("5 mails in a row authenticated %d times, want 1", n)
	}

	ts.dropConnections()
	send(5)
	if n := ts.conns.Load(); n != 2 {
		t.Errorf("after the server hung up: %d connections, want 2", n)
	}

	mail.SetIdleTimeout(s, 0)
	send(6)
	if n := ts.conns.Load(); n != 3 {
		t.Errorf("a session past its idle time was reused: %d connections, want 3", n)
	}

	mails := ts.Mails()
	if len(mails) != 7 {
		t.Fatalf("server got %d mails, want 7 (none lost, none twice)", len(mails))
	}
	for i, m := range mails {
		if want := fmt.Sprintf("member-%d@example.com", i); len(m.To) != 1 || m.To[0] != want || !m.TLS {
			t.Errorf("mail %d to %v (TLS %v), want %s over TLS", i, m.To, m.TLS, want)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestSendMailConcurrent: concurrent mails open sessions of their own,
// and at most MaxIdleSessions stay open for the next ones.
func TestSendMailConcurrent(t *testing.T) {
	t.Parallel()
	ts, s := authedSender(t)
	const n = 8
	for round := range 2 {
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				_, errs[i] = s.SendMail(context.Background(), sampleMail(fmt.Sprintf("member-%d-%d@example.com", round, i)))
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	if got := len(ts.Mails()); got != 2*n {
		t.Errorf("server got %d mails, want %d", got, 2*n)
	}
	// The first round opens up to n sessions and keeps MaxIdleSessions;
	// the second reuses those and opens at most n - MaxIdleSessions more.
	if c := int(ts.conns.Load()); c > 2*n-mail.MaxIdleSessions {
		t.Errorf("%d connections for two rounds of %d, want at most %d", c, n, 2*n-mail.MaxIdleSessions)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	valid := mail.Config{Host: "smtp.example.com", Port: 587, TLS: mail.TLSMandatory, From: testFrom}
	tests := []struct {
		name    string
		change  func(*mail.Config)
		wantErr []string // one substring per expected line
	}{
		{name: "valid", change: func(*mail.Config) {}},
		{name: "bare from", change: func(c *mail.Config) { c.From = "no-reply@example.com" }},
		{name: "korean from name", change: func(c *mail.Config) { c.From = "모임 <no-reply@example.com>" }},
		{name: "empty policy", change: func(c *mail.Config) { c.TLS = "" }},
		{name: "opportunistic", change: func(c *mail.Config) { c.TLS = mail.TLSOpportunistic }},
		{name: "none", change: func(c *mail.Config) { c.TLS = mail.TLSNone }},
		{name: "implicit TLS port", change: func(c *mail.Config) { c.Port = 465 }},
		{name: "ipv6 host", change: func(c *mail.Config) { c.Host = "::1" }},
		{name: "credentials", change: func(c *mail.Config) { c.Username, c.Password = testUser, testPassword }},
		{name: "helo and timeout", change: func(c *mail.Config) { c.HeloName, c.Timeout = "moim.example", time.Second }},
		{name: "no host", change: func(c *mail.Config) { c.Host = "" }, wantErr: []string{"host is required"}},
		{name: "host with port", change: func(c *mail.Config) { c.Host = "smtp.example.com:25" }, wantErr: []string{"must not include a port"}},
		{name: "host with scheme", change: func(c *mail.Config) { c.Host = "unix:///run/smtp.sock" }, wantErr: []string{"host must be"}},
		{name: "bracketed ipv6", change: func(c *mail.Config) { c.Host = "[::1]" }, wantErr: []string{"host must be"}},
		{name: "port 0", change: func(c *mail.Config) { c.Port = 0 }, wantErr: []string{"port must be"}},
		{name: "port 65536", change: func(c *mail.Config) { c.Port = 65536 }, wantErr: []string{"port must be"}},
		{name: "unknown policy", change: func(c *mail.Config) { c.TLS = "starttls" }, wantErr: []string{`"starttls"`}},
		{name: "465 without TLS", change: func(c *mail.Config) { c.Port, c.TLS = 465, mail.TLSOpportunistic }, wantErr: []string{"port 465"}},
		{name: "no from", change: func(c *mail.Config) { c.From = "" }, wantErr: []string{"from is required"}},
		{name: "from not an address", change: func(c *mail.Config) { c.From = "not an address" }, wantErr: []string{"from is not an address"}},
		{name: "negative timeout", change: func(c *mail.Config) { c.Timeout = -time.Second }, wantErr: []string{"timeout"}},
		{name: "password without username", change: func(c *mail.Config) { c.Password = testPassword }, wantErr: []string{"username is required"}},
		{name: "username without password", change: func(c *mail.Config) { c.Username = testUser }, wantErr: []string{"password is required"}},
		{name: "helo with space", change: func(c *mail.Config) { c.HeloName = "moim example" }, wantErr: []string{"helo"}},
		{
			name: "every problem at once",
			change: func(c *mail.Config) {
				*c = mail.Config{TLS: "tls", From: "nobody", Timeout: -1, Password: testPassword}
			},
			wantErr: []string{"host", "port", "tls policy", "username", "from", "timeout"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid
			tt.change(&cfg)
			err := cfg.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if _, err := mail.New(cfg); err != nil {
					t.Errorf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want %q", tt.wantErr)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.wantErr) {
				t.Errorf("Validate has %d lines, want %d:\n%v", len(lines), len(tt.wantErr), err)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate = %q, want it to mention %q", err, want)
				}
			}
			if strings.Contains(err.Error(), testPassword) {
				t.Errorf("Validate = %q, contains the password", err)
			}
			if _, newErr := mail.New(cfg); newErr == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
}
