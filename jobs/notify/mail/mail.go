// Package mail sends e-mail over SMTP with go-mail. It knows the protocol
// only: what to send and when is decided by the notification handlers, and
// the message arrives already rendered.
package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"github.com/moim/moim/jobs/notify"
)

// DefaultTimeout bounds one message, dial to QUIT, when Config.Timeout is
// zero.
const DefaultTimeout = 15 * time.Second

// implicitTLSPort is the submissions port (RFC 8314), where TLS starts
// before the first SMTP byte instead of through STARTTLS.
const implicitTLSPort = 465

// Errors for a mail that cannot be sent whatever the server says. They come
// wrapped with notify.Permanent.
var (
	ErrInvalidAddress   = errors.New("invalid recipient address")
	ErrInvalidMessageID = errors.New("invalid message id")
	ErrEmptyBody        = errors.New("empty body")
)

// TLSPolicy says how the connection to the SMTP server is protected.
type TLSPolicy string

// The TLS policies.
const (
	// TLSMandatory requires STARTTLS, or TLS from the first byte when the
	// port is 465. It is what an empty policy means.
	TLSMandatory TLSPolicy = "mandatory"
	// TLSOpportunistic uses STARTTLS when the server offers it and sends in
	// plain text otherwise. A failed handshake is an error, not a fallback.
	TLSOpportunistic TLSPolicy = "opportunistic"
	// TLSNone never starts TLS, even when the server offers it.
	TLSNone TLSPolicy = "none"
)

// Config is what the sender needs to reach the SMTP server.
type Config struct {
	Host string
	Port int
	TLS  TLSPolicy // empty means TLSMandatory
	// Username turns on SMTP AUTH with the strongest mechanism both sides
	// know. PLAIN and LOGIN are used only over TLS: without it go-mail tries
	// challenge-response mechanisms alone, so a password never crosses the
	// network in the clear.
	Username string
	Password string // secret: never in errors or logs
	From     string // "moim <no-reply@example.com>" or a bare address
	// Timeout bounds one message, from dialling to QUIT; 0 means
	// DefaultTimeout.
	Timeout  time.Duration
	HeloName string // EHLO name; empty means the machine's host name
	// InsecureSkipVerify accepts any server certificate. It exists for tests
	// against a self-signed certificate and must stay false in production,
	// where it would let anyone on the path read the mail and the password.
	InsecureSkipVerify bool
}

// Validate reports every problem with c, one line each. It never quotes the
// password.
func (c Config) Validate() error {
	var errs []error
	switch {
	case c.Host == "":
		errs = append(errs, errors.New("mail: host is required"))
	case strings.ContainsFunc(c.Host, notHostRune):
		// go-mail would take "unix://…" for a socket path; we only dial TCP.
		errs = append(errs, errors.New("mail: host must be a host name or IP address"))
	default:
		if _, _, err := net.SplitHostPort(c.Host); err == nil {
			errs = append(errs, errors.New("mail: host must not include a port; set port"))
		}
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, errors.New("mail: port must be between 1 and 65535"))
	}
	switch c.TLS {
	case "", TLSMandatory:
	case TLSOpportunistic, TLSNone:
		if c.Port == implicitTLSPort {
			errs = append(errs, errors.New("mail: port 465 speaks TLS from the first byte; use tls mandatory"))
		}
	default:
		errs = append(errs, fmt.Errorf("mail: tls policy %q is not one of mandatory, opportunistic, none", c.TLS))
	}
	if c.Username == "" && c.Password != "" {
		errs = append(errs, errors.New("mail: username is required with a password"))
	}
	if c.Username != "" && c.Password == "" {
		errs = append(errs, errors.New("mail: password is required with a username"))
	}
	if strings.ContainsFunc(c.Username, unicode.IsControl) {
		errs = append(errs, errors.New("mail: username must not contain control characters"))
	}
	if c.From == "" {
		errs = append(errs, errors.New("mail: from is required"))
	} else if _, err := netmail.ParseAddress(c.From); err != nil {
		errs = append(errs, fmt.Errorf("mail: from is not an address: %w", err))
	}
	if c.Timeout < 0 {
		errs = append(errs, errors.New("mail: timeout must not be negative"))
	}
	if strings.ContainsFunc(c.HeloName, notHostRune) {
		errs = append(errs, errors.New("mail: helo name must be a host name"))
	}
	return errors.Join(errs...)
}

// notHostRune rejects what cannot be part of a host name or a bare IP
// address (an IPv6 address goes without brackets: the port is added later).
func notHostRune(r rune) bool {
	return r > unicode.MaxASCII || !unicode.IsGraphic(r) || strings.ContainsRune(" /[]", r)
}

// Sender sends each mail over its own SMTP connection. It is safe for
// concurrent use.
type Sender struct {
	host    string
	addr    string // host:port to dial
	from    *netmail.Address
	timeout time.Duration
	// implicitTLS is set for port 465: the dialler does the handshake
	// itself, see dial.
	implicitTLS bool
	tlsConfig   *tls.Config
	opts        []gomail.Option
	// client dials sessions for the pool; set once in newSender.
	client *gomail.Client
	// idle holds sessions kept open between mails, up to its capacity:
	// a new TCP connection, TLS handshake and AUTH per mail cost more
	// than the mail itself.
	idle        chan *session
	idleTimeout time.Duration // IdleTimeout; tests shorten it
}

var _ notify.MailSender = (*Sender)(nil)

// New returns a sender for cfg, or the errors of cfg.Validate.
func New(cfg Config) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	mandatory := cfg.TLS == "" || cfg.TLS == TLSMandatory
	return newSender(cfg, mandatory && cfg.Port == implicitTLSPort)
}

// newSender builds the sender for a valid cfg; implicitTLS is split out so
// a test can use it on a port other than 465.
func newSender(cfg Config, implicitTLS bool) (*Sender, error) {
	from, _ := netmail.ParseAddress(cfg.From) // checked by Validate
	s := &Sender{
		host:        cfg.Host,
		addr:        net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)),
		from:        from,
		timeout:     cfg.Timeout,
		implicitTLS: implicitTLS,
		tlsConfig: &tls.Config{
			ServerName:         cfg.Host,
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: cfg.InsecureSkipVerify, // tests only, see Config
		},
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	policy := gomail.TLSMandatory
	switch {
	case implicitTLS:
		// go-mail counts a connection as encrypted only when it dials TLS
		// itself or finds a TLS connection while looking for STARTTLS; with
		// our own dialler only the second works. A server must not offer
		// STARTTLS inside TLS (RFC 3207, section 4.2), so this never starts
		// a second handshake.
		policy = gomail.TLSOpportunistic
	case cfg.TLS == TLSOpportunistic:
		policy = gomail.TLSOpportunistic
	case cfg.TLS == TLSNone:
		policy = gomail.NoTLS
	}
	s.opts = []gomail.Option{
		gomail.WithPort(cfg.Port),
		gomail.WithTimeout(s.timeout),
		gomail.WithTLSPolicy(policy),
		gomail.WithTLSConfig(s.tlsConfig),
	}
	if cfg.HeloName != "" {
		s.opts = append(s.opts, gomail.WithHELO(cfg.HeloName))
	}
	if cfg.Username != "" {
		s.opts = append(s.opts,
			gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(cfg.Username),
			gomail.WithPassword(cfg.Password))
	}
	// Fail at startup, not on the first mail, if go-mail rejects an option.
	client, err := gomail.NewClient(s.host, append(slices.Clip(s.opts), gomail.WithDialContextFunc(s.dialRaw))...)
	if err != nil {
		return nil, fmt.Errorf("mail: %w", err)
	}
	s.client = client
	s.idle = make(chan *session, MaxIdleSessions)
	s.idleTimeout = IdleTimeout
	return s, nil
}

// MaxIdleSessions is how many SMTP sessions a Sender keeps open between
// mails; more concurrent sends open more and close the surplus after.
const MaxIdleSessions = 4

// IdleTimeout is how long an open session may wait for its next mail.
// Servers may hang up on an idle client after 5 minutes (RFC 5321
// 4.5.3.2.7), many sooner; a session older than this is closed rather
// than tried.
const IdleTimeout = 30 * time.Second

// session is an SMTP session open to the server: greeted, past STARTTLS
// and AUTH.
type session struct {
	smtp     *smtp.Client
	conn     net.Conn // under smtp: closed to abort a send whose ctx ended
	lastUsed time.Time
}

func (p *session) close() {
	_ = p.conn.Close()
}

// take returns an idle session that has not waited too long, or nil.
func (s *Sender) take() *session {
	for {
		select {
		case p := <-s.idle:
			if time.Since(p.lastUsed) < s.idleTimeout {
				return p
			}
			p.close()
		default:
			return nil
		}
	}
}

// put keeps p for the next mail, or closes it when enough are kept.
func (s *Sender) put(p *session) {
	p.lastUsed = time.Now()
	select {
	case s.idle <- p:
	default:
		s.quit(p)
	}
}

// quit ends p politely (QUIT), bounded by the send timeout.
func (s *Sender) quit(p *session) {
	_ = p.conn.SetDeadline(time.Now().Add(s.timeout))
	_ = s.client.CloseWithSMTPClient(p.smtp)
	p.close()
}

// Close ends the idle sessions. Sends after Close open sessions anew.
func (s *Sender) Close() error {
	for {
		select {
		case p := <-s.idle:
			s.quit(p)
		default:
			return nil
		}
	}
}

// connKey carries a *connSlot through go-mail's dial to dialRaw, which
// fills it, so the session can close its own connection.
type connKey struct{}

// connSlot is where dialRaw leaves the connection it made. A slot closed
// before the dial finishes closes the connection as soon as it is set.
type connSlot struct {
	mu     sync.Mutex
	conn   net.Conn
	closed bool
}

func (c *connSlot) set(conn net.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn = conn
	if c.closed {
		_ = conn.Close()
	}
}

func (c *connSlot) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.conn != nil {
		_ = c.conn.Close()
	}
}

// open dials a new session. It ends with ctx: go-mail bounds the dial by
// its timeout but reads the greeting and talks EHLO, STARTTLS and AUTH
// without a context, so the connection is closed when ctx ends.
func (s *Sender) open(ctx context.Context) (*session, error) {
	slot := &connSlot{}
	// The session outlives this mail's ctx, so only the slot goes down
	// to the dial, not ctx's deadline or cancellation.
	dialCtx := context.WithValue(context.WithoutCancel(ctx), connKey{}, slot)
	stop := context.AfterFunc(ctx, slot.close)
	c, err := s.client.DialToSMTPClientWithContext(dialCtx)
	if !stop() || err != nil {
		slot.close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, err
	}
	return &session{smtp: c, conn: slot.conn}, nil
}

// SendMail sends m as multipart/alternative (text, then HTML) and returns
// m.MessageID, which it puts in the Message-ID header. Errors are
// notify.Permanent when sending again cannot help (a bad address or message
// id, a 5xx answer to MAIL, RCPT or DATA, rejected credentials) and
// notify.Temporary otherwise (4xx answers, network errors and timeouts, TLS
// failures, a server without the STARTTLS that the policy requires — the
// last is a configuration fault that ops can fix, so the mail should still
// go out once they have).
func (s *Sender) SendMail(ctx context.Context, m notify.Mail) (string, error) {
	msg, err := s.message(m)
	if err != nil {
		return "", notify.Permanent(fmt.Errorf("build mail: %w", err))
	}

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	for {
		p := s.take()
		reused := p != nil
		if p == nil {
			if p, err = s.open(ctx); err != nil {
				if ctxErr := ctx.Err(); ctxErr != nil {
					err = fmt.Errorf("%w: %w", ctxErr, err)
				}
				return "", classify(fmt.Errorf("send mail: %w", err))
			}
		}
		_ = p.smtp.UpdateDeadline(s.timeout)
		// go-mail watches no context once connected: closing the
		// connection when ctx ends honours a cancellation mid-send.
		stop := context.AfterFunc(ctx, p.close)
		err = s.client.SendWithSMTPClient(p.smtp, msg)
		intact := stop()
		if err == nil || msg.IsDelivered() {
			// Once the server took the DATA, a failed RSET must not get
			// the mail sent a second time; the session is dropped then.
			if err == nil && intact {
				s.put(p)
			} else {
				p.close()
			}
			return m.MessageID, nil
		}
		p.close()
		if reused && stale(err) && ctx.Err() == nil {
			// The kept session had died (the server hung up while it
			// waited) before MAIL FROM: nothing was sent; dial anew.
			continue
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w: %w", ctxErr, err)
		}
		return "", classify(fmt.Errorf("send mail: %w", err))
	}
}

// stale reports whether err is a kept session found dead before its mail
// was started: the NOOP check or MAIL FROM failed without an SMTP reply.
func stale(err error) bool {
	var sendErr *gomail.SendError
	if !errors.As(err, &sendErr) || sendErr.ErrorCode() != 0 {
		return false
	}
	return sendErr.Reason == gomail.ErrConnCheck || sendErr.Reason == gomail.ErrSMTPMailFrom
}

// dialRaw is go-mail's dialler: TCP, then TLS at once on the implicit-TLS
// port. It leaves the connection in the slot open put in ctx.
func (s *Sender) dialRaw(ctx context.Context, _, _ string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, err
	}
	if slot, ok := ctx.Value(connKey{}).(*connSlot); ok {
		slot.set(conn)
	}
	if !s.implicitTLS {
		return conn, nil
	}
	tlsConn := tls.Client(conn, s.tlsConfig)
	if err := tlsConn.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return tlsConn, nil
}

// message builds the go-mail message for m.
func (s *Sender) message(m notify.Mail) (*gomail.Msg, error) {
	to, err := netmail.ParseAddress(m.To)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidAddress, err)
	}
	if !validMessageID(m.MessageID) {
		return nil, ErrInvalidMessageID
	}
	if m.Text == "" && m.HTML == "" {
		return nil, ErrEmptyBody
	}
	// The version banner go-mail adds by default tells the world nothing it
	// needs.
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(s.from)
	// Built as a struct, not formatted and parsed, so quotes or line breaks
	// in the name are encoded rather than breaking the header.
	msg.ToMailAddress(&netmail.Address{Name: m.ToName, Address: to.Address})
	msg.Subject(m.Subject)
	// go-mail adds the angle brackets back.
	msg.SetMessageIDWithValue(m.MessageID[1 : len(m.MessageID)-1])
	msg.SetDate()
	switch {
	case m.HTML == "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	case m.Text == "":
		msg.SetBodyString(gomail.TypeTextHTML, m.HTML)
	default:
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

// validMessageID accepts "<left@right>" in printable ASCII without spaces:
// anything else would be encoded or mangled on the way into the header, and
// the header would no longer equal the id we return.
func validMessageID(id string) bool {
	if len(id) < len("<a@b>") || id[0] != '<' || id[len(id)-1] != '>' {
		return false
	}
	inner := id[1 : len(id)-1]
	left, right, ok := strings.Cut(inner, "@")
	if !ok || left == "" || right == "" {
		return false
	}
	for i := 0; i < len(inner); i++ {
		if c := inner[i]; c <= ' ' || c > '~' || c == '<' || c == '>' {
			return false
		}
	}
	return true
}

// classify marks err as permanent or temporary for the delivery worker.
func classify(err error) error {
	var sendErr *gomail.SendError
	if errors.As(err, &sendErr) {
		switch sendErr.Reason {
		case gomail.ErrGetSender, gomail.ErrGetRcpts, gomail.ErrNoUnencoded:
			// The message itself is unsendable.
			return notify.Permanent(err)
		case gomail.ErrSMTPMailFrom, gomail.ErrSMTPRcptTo, gomail.ErrSMTPData, gomail.ErrSMTPDataClose:
			// SendError hides the *textproto.Error from errors.As; its code
			// is the reply code of the failed command.
			if code := sendErr.ErrorCode(); code >= 500 && code < 600 {
				return notify.Permanent(err)
			}
		}
		return notify.Temporary(err, 0)
	}
	// Before MAIL FROM (greeting, EHLO, STARTTLS, AUTH) a 5xx is about the
	// server or our account rather than this mail, so only rejected
	// credentials are final; an outage or a block is worth retrying.
	var protoErr *textproto.Error
	if errors.As(err, &protoErr) && authRejected(protoErr.Code) {
		return notify.Permanent(err)
	}
	return notify.Temporary(err, 0)
}

// authRejected reports the AUTH failures of RFC 4954: the mechanism is too
// weak (534), the credentials are wrong (535), or the mechanism needs
// encryption (538). None of them goes away by trying again.
func authRejected(code int) bool {
	return code == 534 || code == 535 || code == 538
}
