package mail

import "time"

// NewImplicitTLS is New with TLS from the first byte, as on port 465, so a
// test can take that path against a server on a free port.
func NewImplicitTLS(cfg Config) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newSender(cfg, true)
}

// SetIdleTimeout sets how long s keeps a session waiting for its next mail;
// 0 closes every session instead of reusing it.
func SetIdleTimeout(s *Sender, d time.Duration) { s.idleTimeout = d }
