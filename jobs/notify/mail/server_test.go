package mail_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// serverConfig shapes a test SMTP server.
type serverConfig struct {
	startTLS    bool // offer STARTTLS
	implicitTLS bool // TLS from the first byte, as on port 465
	// insecureAuth offers AUTH on a plain connection too, to prove the
	// client still keeps the password to itself.
	insecureAuth bool
	// username and password, when username is set, make AUTH PLAIN
	// required before MAIL FROM.
	username, password string
	rejectMail         *smtp.SMTPError            // answer to MAIL FROM
	rejectRcpt         map[string]*smtp.SMTPError // answer to RCPT TO, by address
	rejectData         *smtp.SMTPError            // answer after DATA
}

// received is one mail the server accepted.
type received struct {
	From string
	To   []string
	Data []byte
	TLS  bool // whether the connection was encrypted when DATA came
}

// testServer is a real SMTP server on 127.0.0.1 that records what it gets.
type testServer struct {
	cfg   serverConfig
	host  string
	port  int
	conns atomic.Int32 // TCP connections accepted

	mu       sync.Mutex
	mails    []received
	auths    []string     // usernames that tried AUTH
	sessions []*smtp.Conn // every connection, for dropConnections
}

// dropConnections hangs up on every client, as a server does on a session
// idle too long.
func (ts *testServer) dropConnections() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, c := range ts.sessions {
		_ = c.Close()
	}
}

// startServer runs a server for the rest of the test.
func startServer(t *testing.T, cfg serverConfig) *testServer {
	t.Helper()
	ts := &testServer{cfg: cfg}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		ts.mu.Lock()
		ts.sessions = append(ts.sessions, c)
		ts.mu.Unlock()
		return &serverConn{ts: ts, conn: c}, nil
	}))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = cfg.insecureAuth
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	// Its goroutines may outlive the test, where t.Log would panic.
	srv.ErrorLog = log.New(io.Discard, "", 0)
	if cfg.startTLS || cfg.implicitTLS {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{selfSignedCert(t)}}
	}

	var ln net.Listener
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ts.host, ts.port = addr.IP.String(), addr.Port
	ln = &countingListener{Listener: ln, n: &ts.conns}
	if cfg.implicitTLS {
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		// Close misses a listener that Serve has not registered yet.
		_ = ln.Close()
		<-done
	})
	return ts
}

// Mails returns what the server accepted so far.
func (ts *testServer) Mails() []received {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]received(nil), ts.mails...)
}

// Auths returns the usernames that tried to authenticate.
func (ts *testServer) Auths() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.auths...)
}

type countingListener struct {
	net.Listener
	n *atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// serverConn is one client connection to a testServer.
type serverConn struct {
	ts     *testServer
	conn   *smtp.Conn
	authed bool
	from   string
	to     []string
}

var _ smtp.AuthSession = (*serverConn)(nil)

func (s *serverConn) AuthMechanisms() []string {
	if s.ts.cfg.username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *serverConn) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, username, password string) error {
		s.ts.mu.Lock()
		s.ts.auths = append(s.ts.auths, username)
		s.ts.mu.Unlock()
		if username != s.ts.cfg.username || password != s.ts.cfg.password {
			return smtp.ErrAuthFailed // 535 5.7.8, as real servers answer
		}
		s.authed = true
		return nil
	}), nil
}

func (s *serverConn) Mail(from string, _ *smtp.MailOptions) error {
	if s.ts.cfg.username != "" && !s.authed {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	if e := s.ts.cfg.rejectMail; e != nil {
		return e
	}
	s.from = from
	return nil
}

func (s *serverConn) Rcpt(to string, _ *smtp.RcptOptions) error {
	if e := s.ts.cfg.rejectRcpt[to]; e != nil {
		return e
	}
	s.to = append(s.to, to)
	return nil
}

func (s *serverConn) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if e := s.ts.cfg.rejectData; e != nil {
		return e
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.ts.mu.Lock()
	s.ts.mails = append(s.ts.mails, received{From: s.from, To: s.to, Data: data, TLS: isTLS})
	s.ts.mu.Unlock()
	return nil
}

func (s *serverConn) Reset() { s.from, s.to = "", nil }

func (s *serverConn) Logout() error { return nil }

// selfSignedCert makes a certificate for 127.0.0.1 that no client trusts
// unless told to skip verification.
func selfSignedCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// silentServer accepts TCP connections and never greets.
func silentServer(t *testing.T) (host string, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	addr := ln.Addr().(*net.TCPAddr)
	return addr.IP.String(), addr.Port
}

// closedPort returns a port on 127.0.0.1 that nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		t.Fatalf("close listener: %v", err)
	}
	return port
}
