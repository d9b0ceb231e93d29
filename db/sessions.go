package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/domain"
)

// sessionRow is a row of the sessions table.
type sessionRow struct {
	bun.BaseModel `bun:"table:sessions"`

	ID         string    `bun:"id,pk"`
	MemberID   string    `bun:"member_id,notnull"`
	SecretHash string    `bun:"secret_hash,notnull"`
	PrevHashes string    `bun:"prev_hashes,notnull"`
	UserAgent  string    `bun:"user_agent,notnull"`
	IP         string    `bun:"ip,notnull"`
	CreatedAt  time.Time `bun:"created_at,notnull"`
	LastUsedAt time.Time `bun:"last_used_at,notnull"`
	ExpiresAt  time.Time `bun:"expires_at,notnull"`
	RevokedAt  time.Time `bun:"revoked_at,nullzero"`
}

func (r *sessionRow) toDomain() *domain.Session {
	s := &domain.Session{
		ID:         r.ID,
		MemberID:   r.MemberID,
		UserAgent:  r.UserAgent,
		IP:         r.IP,
		SecretHash: r.SecretHash,
		PrevHashes: r.PrevHashes,
		CreatedAt:  r.CreatedAt.UTC(),
		LastUsedAt: r.LastUsedAt.UTC(),
		ExpiresAt:  r.ExpiresAt.UTC(),
	}
	if !r.RevokedAt.IsZero() {
		at := r.RevokedAt.UTC()
		s.RevokedAt = &at
	}
	return s
}

// SessionStore keeps refresh sessions in SQL for the API's auth package.
// Unlike the other stores it holds its bun.IDB: a session is written on its
// own, never inside a caller's transaction. Times are stored in UTC,
// truncated to microseconds. It is safe for concurrent use.
type SessionStore struct {
	DB bun.IDB
}

// CreateSession inserts s.
func (st SessionStore) CreateSession(ctx context.Context, s *domain.Session) error {
	row := &sessionRow{
		ID:         s.ID,
		MemberID:   s.MemberID,
		SecretHash: s.SecretHash,
		PrevHashes: s.PrevHashes,
		UserAgent:  s.UserAgent,
		IP:         s.IP,
		CreatedAt:  dbTime(s.CreatedAt),
		LastUsedAt: dbTime(s.LastUsedAt),
		ExpiresAt:  dbTime(s.ExpiresAt),
	}
	if _, err := st.DB.NewInsert().Model(row).Exec(ctx); err != nil {
		return fmt.Errorf("create session: %w", translate(err))
	}
	return nil
}

// FindSession returns the session with the id, alive or not, or ENOTFOUND.
func (st SessionStore) FindSession(ctx context.Context, id string) (*domain.Session, error) {
	var row sessionRow
	err := st.DB.NewSelect().Model(&row).Where("id = ?", id).Limit(1).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, &domain.Error{Code: domain.ENOTFOUND, Message: "Session not found.", Err: domain.ErrNotFound}
	}
	if err != nil {
		return nil, fmt.Errorf("find session: %w", translate(err))
	}
	return row.toDomain(), nil
}

// RotateSession replaces the session's current secret hash with rot's if
// it is still presentedHash and the session is alive at rot.LastUsedAt.
// Of concurrent rotations from one secret exactly one sees true: the
// update re-checks the hash on the row it locks.
func (st SessionStore) RotateSession(ctx context.Context, id, presentedHash string, rot domain.SessionRotation) (bool, error) {
	res, err := st.DB.NewUpdate().Model((*sessionRow)(nil)).
		Set("secret_hash = ?", rot.SecretHash).
		Set("prev_hashes = ?", rot.PrevHashes).
		Set("user_agent = ?", rot.UserAgent).
		Set("ip = ?", rot.IP).
		Set("last_used_at = ?", dbTime(rot.LastUsedAt)).
		Set("expires_at = ?", dbTime(rot.ExpiresAt)).
		Where("id = ?", id).
		Where("secret_hash = ?", presentedHash).
		Where("revoked_at IS NULL").
		Where("expires_at > ?", dbTime(rot.LastUsedAt)).
		Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("rotate session: %w", translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("rotate session: %w", err)
	}
	return n == 1, nil
}

// RevokeSession ends the session if it is memberID's and alive at now
// (memberID "" matches any member). It reports whether it ended it.
func (st SessionStore) RevokeSession(ctx context.Context, id, memberID string, now time.Time) (bool, error) {
	q := st.DB.NewUpdate().Model((*sessionRow)(nil)).
		Set("revoked_at = ?", dbTime(now)).
		Where("id = ?", id).
		Where("revoked_at IS NULL").
		Where("expires_at > ?", dbTime(now))
	if memberID != "" {
		q = q.Where("member_id = ?", memberID)
	}
	res, err := q.Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("revoke session: %w", translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("revoke session: %w", err)
	}
	return n == 1, nil
}

// RevokeSessions ends every session of the member alive at now except the
// one with id except ("" ends them all) and returns the ids it ended. A
// session created while it runs may be missed: one statement reads the
// ids, the next ends exactly those.
func (st SessionStore) RevokeSessions(ctx context.Context, memberID, except string, now time.Time) ([]string, error) {
	var ids []string
	q := st.DB.NewSelect().Model((*sessionRow)(nil)).Column("id").
		Where("member_id = ?", memberID).
		Where("revoked_at IS NULL").
		Where("expires_at > ?", dbTime(now))
	if except != "" {
		q = q.Where("id <> ?", except)
	}
	if err := q.Scan(ctx, &ids); err != nil {
		return nil, fmt.Errorf("revoke sessions: %w", translate(err))
	}
	if len(ids) == 0 {
		return nil, nil
	}
	if _, err := st.DB.NewUpdate().Model((*sessionRow)(nil)).
		Set("revoked_at = ?", dbTime(now)).
		Where("id IN (?)", bun.In(ids)).
		Where("revoked_at IS NULL").
		Exec(ctx); err != nil {
		return nil, fmt.Errorf("revoke sessions: %w", translate(err))
	}
	return ids, nil
}

// ListSessions returns the member's sessions alive at now, most recently
// used first.
func (st SessionStore) ListSessions(ctx context.Context, memberID string, now time.Time) ([]domain.Session, error) {
	var rows []sessionRow
	err := st.DB.NewSelect().Model(&rows).
		Where("member_id = ?", memberID).
		Where("revoked_at IS NULL").
		Where("expires_at > ?", dbTime(now)).
		Order("last_used_at DESC", "created_at DESC", "id ASC").
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", translate(err))
	}
	out := make([]domain.Session, len(rows))
	for i := range rows {
		out[i] = *rows[i].toDomain()
	}
	return out, nil
}

// DeleteEndedSessions deletes up to limit sessions that expired before
// before, revoked or not (a revoked session also expires), and returns how
// many it deleted. Batches keep each statement short.
func (st SessionStore) DeleteEndedSessions(ctx context.Context, before time.Time, limit int) (int, error) {
	var ids []string
	if err := st.DB.NewSelect().Model((*sessionRow)(nil)).Column("id").
		Where("expires_at < ?", dbTime(before)).
		OrderExpr("expires_at").Limit(int64(limit)).
		Scan(ctx, &ids); err != nil {
		return 0, fmt.Errorf("delete ended sessions: %w", translate(err))
	}
	if len(ids) == 0 {
		return 0, nil
	}
	res, err := st.DB.NewDelete().Model((*sessionRow)(nil)).
		Where("id IN (?)", bun.In(ids)).
		Where("expires_at < ?", dbTime(before)).
		Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("delete ended sessions: %w", translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete ended sessions: %w", err)
	}
	return int(n), nil
}

// HasSessionFromIP reports whether the member has a session row last used
// from ip: alive, expired or revoked, until DeleteEndedSessions removes it.
// Login takes such an IP as one the member has logged in from before.
func (st SessionStore) HasSessionFromIP(ctx context.Context, memberID, ip string) (bool, error) {
	if memberID == "" || ip == "" {
		// Still one query, so an unknown address costs what a known one does.
		memberID, ip = "", "-"
	}
	n, err := st.DB.NewSelect().Model((*sessionRow)(nil)).
		Where("member_id = ?", memberID).
		Where("ip = ?", ip).
		Limit(1).
		Count(ctx)
	if err != nil {
		return false, fmt.Errorf("find sessions from an IP: %w", translate(err))
	}
	return n > 0, nil
}
