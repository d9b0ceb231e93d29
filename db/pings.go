package db

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/domain"
)

// maxRequestIDLen is the width of pings.request_id.
const maxRequestIDLen = 128

// pingRow is a row of the pings table.
type pingRow struct {
	bun.BaseModel `bun:"table:pings"`

	ID          int64     `bun:"id,pk,autoincrement"`
	PublicID    string    `bun:"public_id,notnull"`
	RequestID   string    `bun:"request_id,notnull"`
	CreatedAt   time.Time `bun:"created_at,notnull"`
	ProcessedAt time.Time `bun:"processed_at,nullzero"`
}

func (r *pingRow) toDomain() *domain.Ping {
	p := &domain.Ping{
		ID:        r.PublicID,
		RequestID: r.RequestID,
		CreatedAt: r.CreatedAt.UTC(),
	}
	if !r.ProcessedAt.IsZero() {
		at := r.ProcessedAt.UTC()
		p.ProcessedAt = &at
	}
	return p
}

// fromDomain fills r from p (methods, not functions, so every store can
// have its own pair under the same names).
func (r *pingRow) fromDomain(p *domain.Ping) *pingRow {
	*r = pingRow{
		PublicID:  p.ID,
		RequestID: p.RequestID,
		CreatedAt: p.CreatedAt.UTC(),
	}
	if p.ProcessedAt != nil {
		r.ProcessedAt = p.ProcessedAt.UTC()
	}
	return r
}

// Pings is the store of pings. The zero value is ready to use; every method
// takes the bun.IDB to run on, so it composes with the caller's transaction.
type Pings struct{}

// Create inserts p. An empty p.ID gets a new public id and a zero CreatedAt
// the current time, both written back into p; times are stored in UTC.
// Errors: EINVALID for a request id longer than 128 bytes, ECONFLICT for an
// id that exists already.
func (Pings) Create(ctx context.Context, idb bun.IDB, p *domain.Ping) error {
	if len(p.RequestID) > maxRequestIDLen {
		return domain.FieldErrorf(domain.EINVALID, "request_id", "Request id is longer than %d bytes.", maxRequestIDLen)
	}
	if p.ID == "" {
		p.ID = NewPublicID()
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = time.Now()
	}
	p.CreatedAt = p.CreatedAt.UTC()
	if p.ProcessedAt != nil {
		at := p.ProcessedAt.UTC()
		p.ProcessedAt = &at
	}
	if _, err := idb.NewInsert().Model(new(pingRow).fromDomain(p)).Exec(ctx); err != nil {
		return fmt.Errorf("create ping %s: %w", p.ID, translate(err))
	}
	return nil
}

// FindByID returns the ping with public id id, or an ENOTFOUND error.
func (Pings) FindByID(ctx context.Context, idb bun.IDB, id string) (*domain.Ping, error) {
	var r pingRow
	err := idb.NewSelect().Model(&r).Where("public_id = ?", id).Limit(1).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("find ping %s: %w", id, translate(err))
	}
	return r.toDomain(), nil
}

// MarkProcessed records that the ping was processed at the given time, unless
// it already was: the first call wins and reports changed; later ones, even
// concurrent ones, leave the first time in place and report false. An
// unknown id is an ENOTFOUND error.
func (Pings) MarkProcessed(ctx context.Context, idb bun.IDB, id string, at time.Time) (changed bool, err error) {
	// The IS NULL condition makes the check and the write one atomic
	// statement, so exactly one of many concurrent callers changes the row.
	res, err := idb.NewUpdate().
		Model((*pingRow)(nil)).
		Set("processed_at = ?", at.UTC()).
		Where("public_id = ?", id).
		Where("processed_at IS NULL").
		Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("mark ping %s processed: %w", id, translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("mark ping %s processed: rows affected: %w", id, err)
	}
	if n > 0 {
		return true, nil
	}
	exists, err := idb.NewSelect().Model((*pingRow)(nil)).Where("public_id = ?", id).Exists(ctx)
	if err != nil {
		return false, fmt.Errorf("mark ping %s processed: %w", id, translate(err))
	}
	if !exists {
		return false, &domain.Error{Code: domain.ENOTFOUND, Message: "Ping not found."}
	}
	return false, nil
}
