package domain

import "time"

// Session is one login on one device as it is stored: the family of
// refresh tokens that rotation derives from it. It holds hashes of the
// refresh secrets, never the secrets.
type Session struct {
	ID         string
	MemberID   string
	UserAgent  string
	IP         string
	SecretHash string // of the current secret
	// PrevHashes are the hashes of the secrets rotated away, newest first,
	// end to end; presenting one of them is a replay.
	PrevHashes string
	CreatedAt  time.Time
	LastUsedAt time.Time
	// ExpiresAt is when the session ends unless rotated; rotation moves it.
	ExpiresAt time.Time
	// RevokedAt is set once the session was ended by logout, a revocation
	// or a replay; nil while it was not.
	RevokedAt *time.Time
}

// Alive reports whether the session can still be used at now.
func (s *Session) Alive(now time.Time) bool {
	return s.RevokedAt == nil && now.Before(s.ExpiresAt)
}

// SessionRotation is what a refresh changes in a session.
type SessionRotation struct {
	SecretHash string // the new current secret's hash
	PrevHashes string
	UserAgent  string
	IP         string
	LastUsedAt time.Time
	ExpiresAt  time.Time
}
