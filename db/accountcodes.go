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

// accountCodeRow is a row of the account_codes table.
type accountCodeRow struct {
	bun.BaseModel `bun:"table:account_codes"`

	ID        string    `bun:"id,pk"`
	MemberID  string    `bun:"member_id,notnull"`
	Purpose   int16     `bun:"purpose,notnull"`
	Target    string    `bun:"target,notnull"`
	CodeHash  string    `bun:"code_hash,notnull"`
	Attempts  int       `bun:"attempts,notnull"`
	ExpiresAt time.Time `bun:"expires_at,notnull"`
	SentAt    time.Time `bun:"sent_at,nullzero"`
	UsedAt    time.Time `bun:"used_at,nullzero"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

func (r *accountCodeRow) toDomain() *domain.AccountCode {
	return &domain.AccountCode{
		ID:        r.ID,
		Purpose:   domain.CodePurpose(r.Purpose),
		MemberID:  r.MemberID,
		Target:    r.Target,
		CodeHash:  r.CodeHash,
		Attempts:  r.Attempts,
		ExpiresAt: r.ExpiresAt.UTC(),
		SentAt:    optionalTime(r.SentAt),
		UsedAt:    optionalTime(r.UsedAt),
		CreatedAt: r.CreatedAt.UTC(),
	}
}

// AccountCodes is the store of one-time account codes. The zero value is
// ready to use; every method takes the bun.IDB to run on.
type AccountCodes struct{}

// NewAccountCodeID returns the id of a code about to be created; the
// caller derives the code's hash from it before Create.
func NewAccountCodeID() string { return NewPublicID() }

// Create inserts c, whose ID, CodeHash and times the caller has set.
func (AccountCodes) Create(ctx context.Context, idb bun.IDB, c *domain.AccountCode) error {
	if !c.Purpose.Valid() || c.ID == "" || c.CodeHash == "" {
		return fmt.Errorf("create account code: incomplete code %q", c.ID)
	}
	c.CreatedAt, c.ExpiresAt = dbTime(c.CreatedAt), dbTime(c.ExpiresAt)
	row := &accountCodeRow{
		ID:        c.ID,
		MemberID:  c.MemberID,
		Purpose:   int16(c.Purpose),
		Target:    c.Target,
		CodeHash:  c.CodeHash,
		ExpiresAt: c.ExpiresAt,
		CreatedAt: c.CreatedAt,
	}
	if _, err := idb.NewInsert().Model(row).Exec(ctx); err != nil {
		return fmt.Errorf("create account code: %w", translate(err))
	}
	return nil
}

// errNoCode is the answer when there is no code to check.
func errNoCode(field string) error {
	return domain.FieldErrorf(domain.ECODEEXPIRED, field, "No code is pending; ask for a new one.")
}

// FindByID returns the code with the id and purpose. Errors: ECODEEXPIRED
// (field) when there is none, as for a code that is gone.
func (AccountCodes) FindByID(ctx context.Context, idb bun.IDB, id string, p domain.CodePurpose, field string) (*domain.AccountCode, error) {
	var row accountCodeRow
	err := idb.NewSelect().Model(&row).Where("id = ?", id).Where("purpose = ?", int16(p)).Limit(1).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoCode(field)
	}
	if err != nil {
		return nil, fmt.Errorf("find account code: %w", translate(err))
	}
	return row.toDomain(), nil
}

// Latest returns the member's newest code of the purpose, the only one
// that counts: asking again supersedes the earlier codes. Errors:
// ECODEEXPIRED (field) when there is none.
func (AccountCodes) Latest(ctx context.Context, idb bun.IDB, memberID string, p domain.CodePurpose, field string) (*domain.AccountCode, error) {
	var row accountCodeRow
	err := idb.NewSelect().Model(&row).
		Where("member_id = ?", memberID).Where("purpose = ?", int16(p)).
		Order("created_at DESC", "id DESC").Limit(1).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoCode(field)
	}
	if err != nil {
		return nil, fmt.Errorf("latest account code: %w", translate(err))
	}
	return row.toDomain(), nil
}

// SendCounts are the codes of one purpose created since a moment.
type SendCounts struct {
	Member int       // for the member
	Target int       // to the address or number
	Last   time.Time // the member's newest, zero for none
}

// noMemberID matches no member_id: public ids are lower-case base32.
const noMemberID = "-"

// CountSends counts the codes of purpose p created at or after since, for
// memberID and to target, in one statement ("" memberID counts nothing
// for the member). The limits are counted here, not in Redis, so that
// losing Redis does not reset what SMS already cost.
func (AccountCodes) CountSends(ctx context.Context, idb bun.IDB, p domain.CodePurpose, memberID, target string, since time.Time) (SendCounts, error) {
	if memberID == "" {
		// Not '': that would match (and read) every code asked for an
		// unknown address. "-" is no public id, and the statement stays
		// the same as for a member.
		memberID = noMemberID
	}
	var out struct {
		Member int       `bun:"m"`
		Target int       `bun:"t"`
		Last   time.Time `bun:"last,nullzero"`
	}
	err := idb.NewSelect().Model((*accountCodeRow)(nil)).
		ColumnExpr("COALESCE(SUM(CASE WHEN member_id = ? THEN 1 ELSE 0 END), 0) AS m", memberID).
		ColumnExpr("COALESCE(SUM(CASE WHEN target = ? THEN 1 ELSE 0 END), 0) AS t", target).
		ColumnExpr("MAX(CASE WHEN member_id = ? THEN created_at END) AS last", memberID).
		Where("purpose = ?", int16(p)).
		Where("created_at >= ?", dbTime(since)).
		WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
			return q.Where("member_id = ?", memberID).WhereOr("target = ?", target)
		}).
		Scan(ctx, &out)
	if err != nil {
		return SendCounts{}, fmt.Errorf("count account code sends: %w", translate(err))
	}
	return SendCounts{Member: out.Member, Target: out.Target, Last: out.Last.UTC()}, nil
}

// CountAttempt spends one attempt on the code if it is unused, unexpired
// at now and has attempts left, and reports whether it did. The check and
// the increment are one statement, so concurrent guesses cannot exceed
// maxAttempts between them.
func (AccountCodes) CountAttempt(ctx context.Context, idb bun.IDB, id string, maxAttempts int, now time.Time) (bool, error) {
	res, err := idb.NewUpdate().Model((*accountCodeRow)(nil)).
		Set("attempts = attempts + 1").
		Where("id = ?", id).
		Where("used_at IS NULL").
		Where("expires_at > ?", dbTime(now)).
		Where("attempts < ?", maxAttempts).
		Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("count code attempt: %w", translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("count code attempt: %w", err)
	}
	return n == 1, nil
}

// MarkUsed uses the code up at now and reports whether this call did:
// of concurrent calls exactly one sees true.
func (AccountCodes) MarkUsed(ctx context.Context, idb bun.IDB, id string, now time.Time) (bool, error) {
	return markCode(ctx, idb, id, "used_at", now)
}

// MarkSent records that the worker handled the code at now; true when
// this call did.
func (AccountCodes) MarkSent(ctx context.Context, idb bun.IDB, id string, now time.Time) (bool, error) {
	return markCode(ctx, idb, id, "sent_at", now)
}

func markCode(ctx context.Context, idb bun.IDB, id, column string, now time.Time) (bool, error) {
	res, err := idb.NewUpdate().Model((*accountCodeRow)(nil)).
		Set("? = ?", bun.Ident(column), dbTime(now)).
		Where("id = ?", id).
		Where("? IS NULL", bun.Ident(column)).
		Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("mark account code %s: %w", column, translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("mark account code %s: %w", column, err)
	}
	return n == 1, nil
}

// DeleteExpired deletes up to limit codes that expired before before and
// returns how many it deleted; they count no send window any more.
func (AccountCodes) DeleteExpired(ctx context.Context, idb bun.IDB, before time.Time, limit int) (int, error) {
	var ids []string
	if err := idb.NewSelect().Model((*accountCodeRow)(nil)).Column("id").
		Where("expires_at < ?", dbTime(before)).
		OrderExpr("expires_at").Limit(int64(limit)).
		Scan(ctx, &ids); err != nil {
		return 0, fmt.Errorf("delete expired account codes: %w", translate(err))
	}
	if len(ids) == 0 {
		return 0, nil
	}
	res, err := idb.NewDelete().Model((*accountCodeRow)(nil)).Where("id IN (?)", bun.In(ids)).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("delete expired account codes: %w", translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete expired account codes: %w", err)
	}
	return int(n), nil
}
