package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/feature"

	"github.com/moim/moim/domain"
)

// applicationRow is a row of random_applications, with the member's and the
// match's public ids joined in.
type applicationRow struct {
	bun.BaseModel `bun:"table:random_applications,alias:a"`

	ID         int64     `bun:"id,pk,autoincrement"`
	PublicID   string    `bun:"public_id,notnull"`
	MemberID   int64     `bun:"member_id,notnull"`
	Category   int16     `bun:"category,notnull"`
	Places     int16     `bun:"places,notnull"`
	Second     int16     `bun:"second,notnull"`
	Status     int16     `bun:"status,notnull"`
	Version    int64     `bun:"version,notnull"`
	WaitingKey string    `bun:"waiting_key,nullzero"`
	MatchID    int64     `bun:"match_id,nullzero"`
	CreatedAt  time.Time `bun:"created_at,notnull"`
	ExpiresAt  time.Time `bun:"expires_at,notnull"`
	UpdatedAt  time.Time `bun:"updated_at,notnull"`

	MemberPublicID string `bun:"member_public_id,scanonly"`
	MatchPublicID  string `bun:"match_public_id,scanonly"`
}

func (r *applicationRow) toDomain() domain.Application {
	return domain.Application{
		ID:         r.PublicID,
		Key:        r.ID,
		MemberID:   r.MemberPublicID,
		Category:   domain.Category(r.Category),
		Conditions: domain.Conditions{Places: domain.Mask(r.Places), Second: domain.Mask(r.Second)},
		Status:     domain.ApplicationStatus(r.Status),
		Version:    r.Version,
		MatchID:    r.MatchPublicID,
		CreatedAt:  r.CreatedAt.UTC(),
		ExpiresAt:  r.ExpiresAt.UTC(),
	}
}

// waitingKey is the value of waiting_key while a member's application in c
// waits. Its unique index allows one such row per member and category.
func waitingKey(member int64, c domain.Category) string {
	return strconv.FormatInt(member, 10) + waitingKeySuffix(c)
}

// waitingKeySuffix is what follows the member id in a waiting key.
func waitingKeySuffix(c domain.Category) string { return ":" + strconv.Itoa(int(c)) }

func errNotWaiting() error {
	return &domain.Error{Code: domain.ENOTFOUND, Message: "You are not waiting for a match in this category."}
}

// Applications is the store of random-match applications. Every change of
// an application bumps its version and takes it out of WAITING, so a
// version check on WAITING tells whether anything happened to it since it
// was read.
type Applications struct{}

// Create stores a WAITING application for a.MemberID (a public id) and sets
// a.ID, a.Key, a.Version (1), a.Status and a.MatchID (""); times are
// written back in UTC microseconds. The caller sets Category (one taking
// random matches), Conditions (full masks for "any", never 0), CreatedAt
// and ExpiresAt (after CreatedAt).
//
// A waiting application of the member in the category whose ExpiresAt has
// passed by a.CreatedAt, but that no sweep has expired yet, is expired here
// first, without being returned for a NO_MATCH_FOUND notice: the member is
// applying again, and FindWaiting already tells them they are not waiting.
//
// Errors: EALREADYWAITING (field "category") while the member waits in the
// category, ENOTFOUND for an unknown or deleted member.
func (Applications) Create(ctx context.Context, idb bun.IDB, a *domain.Application) error {
	if err := checkApplication(a); err != nil {
		return fmt.Errorf("create application: %w", err)
	}
	a.CreatedAt, a.ExpiresAt = dbTime(a.CreatedAt), dbTime(a.ExpiresAt)
	row := applicationRow{
		PublicID:  NewPublicID(),
		Category:  int16(a.Category),
		Places:    int16(a.Conditions.Places),
		Second:    int16(a.Conditions.Second),
		Status:    int16(domain.ApplicationWaiting),
		Version:   1,
		CreatedAt: a.CreatedAt,
		ExpiresAt: a.ExpiresAt,
		UpdatedAt: a.CreatedAt,
	}
	// MySQL has no conflict clause: its failed duplicate insert would keep
	// a shared lock on the key that the stale-application expiry then needs
	// exclusively, deadlocking two applies of one member. It takes the
	// slow path, which looks before it inserts.
	inserted := false
	if f := idb.Dialect().Features(); f.Has(feature.InsertOnConflict) && f.Has(feature.InsertReturning) {
		var err error
		if inserted, err = insertApplication(ctx, idb, &row, a.MemberID); err != nil {
			return fmt.Errorf("create application for %s: %w", a.MemberID, err)
		}
	}
	if !inserted {
		// The member is unknown or deleted, or already holds the key,
		// perhaps with an application that ran out but was not swept yet.
		// This is the rare path, so it may take a few more statements.
		member, err := memberKey(ctx, idb, a.MemberID)
		if err != nil {
			return fmt.Errorf("create application for %s: %w", a.MemberID, err)
		}
		row.MemberID, row.WaitingKey = member, waitingKey(member, a.Category)
		if err := expireStale(ctx, idb, row.WaitingKey, a.CreatedAt); err != nil {
			return fmt.Errorf("create application for %s: %w", a.MemberID, err)
		}
		// The unique waiting_key decides between concurrent applications;
		// a loser's violation becomes EALREADYWAITING in translate.
		if _, err := idb.NewInsert().Model(&row).Exec(ctx); err != nil {
			return fmt.Errorf("create application for %s: %w", a.MemberID, translate(err))
		}
	}
	a.ID, a.Key, a.Version = row.PublicID, row.ID, row.Version
	a.Status, a.MatchID = domain.ApplicationWaiting, ""
	return nil
}

// insertApplication stores row for the live member with public id
// memberID in one statement, taking the member's row id (and so the
// waiting key) from a join, and sets row.ID. It reports false, storing
// nothing, when the member is unknown or deleted or the waiting key is
// taken. A taken key must not fail the statement — that would abort a
// PostgreSQL transaction, and the caller still has to look for a stale
// holder — so the row is skipped on conflict, which takes no lock on the
// holder. Only for dialects with ON CONFLICT and RETURNING (PostgreSQL,
// SQLite).
func insertApplication(ctx context.Context, idb bun.IDB, row *applicationRow, memberID string) (bool, error) {
	const q = "INSERT INTO random_applications (public_id, member_id, category, places, ?, status, version, waiting_key, created_at, expires_at, updated_at) " +
		"SELECT ?, m.id, ?, ?, ?, ?, ?, CONCAT(m.id, ?), ?, ?, ? FROM members AS m WHERE m.public_id = ? AND m.deleted_at IS NULL " +
		"ON CONFLICT DO NOTHING RETURNING id"
	err := idb.NewRaw(q, bun.Ident("second"), row.PublicID, row.Category, row.Places, row.Second, row.Status, row.Version,
		waitingKeySuffix(domain.Category(row.Category)), row.CreatedAt, row.ExpiresAt, row.UpdatedAt, memberID).
		Scan(ctx, &row.ID)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, translate(err)
	}
	return true, nil
}

// checkApplication rejects what the caller should have validated.
func checkApplication(a *domain.Application) error {
	if !a.Category.RandomCategory() {
		return fmt.Errorf("category %v takes no random matching", a.Category)
	}
	second := a.Category.SecondDimension()
	if c := a.Conditions; c.Places == 0 || c.Places&^domain.Places.Full() != 0 ||
		c.Second == 0 || c.Second&^second.Full() != 0 {
		return fmt.Errorf("conditions %08b/%08b outside the masks of %v", c.Places, c.Second, a.Category)
	}
	if !a.ExpiresAt.After(a.CreatedAt) {
		return fmt.Errorf("expiry %v not after creation %v", a.ExpiresAt, a.CreatedAt)
	}
	return nil
}

// expireStale expires the application holding key if its time is up at
// now. The row is looked for with a plain read first, so that the usual
// case (no such row) takes no lock: on MySQL a locking miss would take a
// gap lock that deadlocks concurrent inserts of the same key.
func expireStale(ctx context.Context, idb bun.IDB, key string, now time.Time) error {
	var rows []applicationRow
	err := idb.NewSelect().Model(&rows).Column("a.id", "a.version").
		Where("a.waiting_key = ?", key).
		Where("a.expires_at <= ?", now).
		Scan(ctx)
	if err != nil {
		return fmt.Errorf("find expired application: %w", translate(err))
	}
	for _, r := range rows {
		// Losing the version race is fine: whoever won took the key too.
		if _, err := leaveWaiting(ctx, idb, r.ID, r.Version, domain.ApplicationExpired, now); err != nil {
			return err
		}
	}
	return nil
}

// leaveWaiting moves the application with row id key from WAITING to
// status, if it is still WAITING at version, and reports whether it did.
// Every such change alters status, so the rows affected are 1 on MySQL too.
func leaveWaiting(ctx context.Context, idb bun.IDB, key, version int64, status domain.ApplicationStatus, now time.Time) (bool, error) {
	res, err := idb.NewUpdate().Model((*applicationRow)(nil)).
		Set("status = ?", int16(status)).
		Set("version = version + 1").
		Set("waiting_key = NULL").
		Set("updated_at = ?", dbTime(now)).
		Where("id = ?", key).
		Where("version = ?", version).
		Where("status = ?", int16(domain.ApplicationWaiting)).
		Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("application %d to %v: %w", key, status, translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("application %d to %v: rows affected: %w", key, status, err)
	}
	return n == 1, nil
}

// selectApplications starts a query over applications with the member's
// and the match's public ids joined in.
func selectApplications(idb bun.IDB, dest any) *bun.SelectQuery {
	return idb.NewSelect().Model(dest).
		ColumnExpr("a.*").
		ColumnExpr("m.public_id AS member_public_id").
		ColumnExpr("mt.public_id AS match_public_id").
		Join("JOIN members AS m ON m.id = a.member_id").
		Join("LEFT JOIN matches AS mt ON mt.id = a.match_id")
}

// findWaiting returns the member's waiting application in c that has not
// expired at now. Errors: ENOTFOUND.
func findWaiting(ctx context.Context, idb bun.IDB, memberID string, c domain.Category, now time.Time) (*applicationRow, error) {
	member, err := memberKey(ctx, idb, memberID)
	if err != nil {
		return nil, err
	}
	var rows []applicationRow
	err = selectApplications(idb, &rows).
		Where("a.waiting_key = ?", waitingKey(member, c)).
		Where("a.status = ?", int16(domain.ApplicationWaiting)).
		Where("a.expires_at > ?", dbTime(now)).
		Scan(ctx)
	if err != nil {
		return nil, translate(err)
	}
	if len(rows) == 0 {
		return nil, errNotWaiting()
	}
	return &rows[0], nil
}

// FindWaiting returns the member's WAITING application in c that has not
// expired at now. Errors: ENOTFOUND when there is none, or the member is
// unknown or deleted.
func (Applications) FindWaiting(ctx context.Context, idb bun.IDB, memberID string, c domain.Category, now time.Time) (*domain.Application, error) {
	row, err := findWaiting(ctx, idb, memberID, c, now)
	if err != nil {
		return nil, fmt.Errorf("find waiting application of %s in %v: %w", memberID, c, err)
	}
	a := row.toDomain()
	return &a, nil
}

// FindByID returns the application with public id id, in any status;
// MatchID is the match's public id once it is MATCHED. It does not check
// whose it is. Errors: ENOTFOUND.
func (Applications) FindByID(ctx context.Context, idb bun.IDB, id string) (*domain.Application, error) {
	var rows []applicationRow
	if err := selectApplications(idb, &rows).Where("a.public_id = ?", id).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find application %s: %w", id, translate(err))
	}
	if len(rows) == 0 {
		return nil, &domain.Error{Code: domain.ENOTFOUND, Message: "Application not found."}
	}
	a := rows[0].toDomain()
	return &a, nil
}

// Cancel turns the member's waiting, unexpired application in c CANCELLED
// and returns it as it is now. Errors: ENOTFOUND when there is none (also
// when the matcher or the sweep took it between the read and the update:
// either way the member is no longer waiting).
func (Applications) Cancel(ctx context.Context, idb bun.IDB, memberID string, c domain.Category, now time.Time) (*domain.Application, error) {
	row, err := findWaiting(ctx, idb, memberID, c, now)
	if err != nil {
		return nil, fmt.Errorf("cancel application of %s in %v: %w", memberID, c, err)
	}
	done, err := leaveWaiting(ctx, idb, row.ID, row.Version, domain.ApplicationCancelled, now)
	if err != nil {
		return nil, fmt.Errorf("cancel application of %s in %v: %w", memberID, c, err)
	}
	if !done {
		return nil, fmt.Errorf("cancel application of %s in %v: %w", memberID, c, errNotWaiting())
	}
	a := row.toDomain()
	a.Status, a.Version = domain.ApplicationCancelled, row.Version+1
	return &a, nil
}

// CancelAllForMember cancels every WAITING application of the member (its
// account is being deleted) and returns how many; run it in the deleting
// transaction.
func (Applications) CancelAllForMember(ctx context.Context, idb bun.IDB, memberID string, now time.Time) (int, error) {
	res, err := idb.NewUpdate().Model((*applicationRow)(nil)).
		Set("status = ?", int16(domain.ApplicationCancelled)).
		Set("version = version + 1").
		Set("waiting_key = NULL").
		Set("updated_at = ?", dbTime(now)).
		Where("status = ?", int16(domain.ApplicationWaiting)).
		Where("member_id = (SELECT m.id FROM members AS m WHERE m.public_id = ?)", memberID).
		Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("cancel applications of %s: %w", memberID, translate(err))
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// waiting restricts q to c's applications waiting and unexpired at now,
// of members who still exist (deleting an account cancels its
// applications; this keeps any left behind out of the pool all the same).
func waiting(q *bun.SelectQuery, c domain.Category, now time.Time) *bun.SelectQuery {
	return q.Where("a.category = ?", int16(c)).
		Where("a.status = ?", int16(domain.ApplicationWaiting)).
		Where("a.expires_at > ?", dbTime(now)).
		Where("EXISTS (SELECT 1 FROM members AS live WHERE live.id = a.member_id AND live.deleted_at IS NULL)")
}

// CountWaiting counts c's applications that are WAITING and unexpired at
// now: the public "how many are waiting".
func (Applications) CountWaiting(ctx context.Context, idb bun.IDB, c domain.Category, now time.Time) (int, error) {
	n, err := waiting(idb.NewSelect().Model((*applicationRow)(nil)), c, now).Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("count waiting applications in %v: %w", c, translate(err))
	}
	return int(n), nil
}

// ListWaiting returns c's applications that are WAITING and unexpired at
// now, oldest first (created_at, then id): the matcher's read, without
// locks. Each has its Key and Version for MarkGroupMatched.
func (Applications) ListWaiting(ctx context.Context, idb bun.IDB, c domain.Category, now time.Time) ([]domain.Application, error) {
	var rows []applicationRow
	err := waiting(selectApplications(idb, &rows), c, now).
		OrderExpr("a.created_at ASC, a.id ASC").
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("list waiting applications in %v: %w", c, translate(err))
	}
	out := make([]domain.Application, len(rows))
	for i := range rows {
		out[i] = rows[i].toDomain()
	}
	return out, nil
}

// MarkGroupMatched flips all the applications of one group to MATCHED in
// the match with row id matchKey, in a single UPDATE: it reports true only
// if every one of them was still WAITING, unexpired at now, at its version
// (Key and Version as ListWaiting read them). On false the caller rolls the
// transaction back, undoing the rows that did change.
func (Applications) MarkGroupMatched(ctx context.Context, idb bun.IDB, apps []domain.Application, matchKey int64, now time.Time) (bool, error) {
	if matchKey <= 0 || len(apps) == 0 {
		return false, fmt.Errorf("mark group matched: invalid match key %d or empty group", matchKey)
	}
	res, err := idb.NewUpdate().Model((*applicationRow)(nil)).
		Set("status = ?", int16(domain.ApplicationMatched)).
		Set("version = version + 1").
		Set("waiting_key = NULL").
		Set("match_id = ?", matchKey).
		Set("updated_at = ?", dbTime(now)).
		Where("status = ?", int16(domain.ApplicationWaiting)).
		Where("expires_at > ?", dbTime(now)).
		WhereGroup(" AND ", func(q *bun.UpdateQuery) *bun.UpdateQuery {
			for _, a := range apps {
				q = q.WhereOr("(id = ? AND version = ?)", a.Key, a.Version)
			}
			return q
		}).
		Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("mark group matched: %w", translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("mark group matched: rows affected: %w", err)
	}
	return n == int64(len(apps)), nil
}

// Expire turns up to limit WAITING applications whose expiry is at or
// before now EXPIRED, those overdue longest first, and returns the ones it
// changed (status and version as they are now), for the caller to send
// NO_MATCH_FOUND in the same transaction. One that the matcher or a member
// changed in between is left out. Errors: EINVALID (field "limit") for a
// limit below 1.
func (Applications) Expire(ctx context.Context, idb bun.IDB, now time.Time, limit int) ([]domain.Application, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	var rows []applicationRow
	err := selectApplications(idb, &rows).
		Where("a.status = ?", int16(domain.ApplicationWaiting)).
		Where("a.expires_at <= ?", dbTime(now)).
		OrderExpr("a.expires_at ASC, a.id ASC").
		Limit(int64(limit)).
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("expire applications: %w", translate(err))
	}
	out := make([]domain.Application, 0, len(rows))
	for i := range rows {
		done, err := leaveWaiting(ctx, idb, rows[i].ID, rows[i].Version, domain.ApplicationExpired, now)
		if err != nil {
			return nil, fmt.Errorf("expire applications: %w", err)
		}
		if !done {
			continue
		}
		a := rows[i].toDomain()
		a.Status, a.Version = domain.ApplicationExpired, rows[i].Version+1
		out = append(out, a)
	}
	return out, nil
}

// CategoriesWaiting lists, in order, the categories with applications
// WAITING and unexpired at now: the pools a sweep should match.
func (Applications) CategoriesWaiting(ctx context.Context, idb bun.IDB, now time.Time) ([]domain.Category, error) {
	var cats []int16
	err := idb.NewSelect().Model((*applicationRow)(nil)).
		ColumnExpr("DISTINCT a.category").
		Where("a.status = ?", int16(domain.ApplicationWaiting)).
		Where("a.expires_at > ?", dbTime(now)).
		Where("EXISTS (SELECT 1 FROM members AS live WHERE live.id = a.member_id AND live.deleted_at IS NULL)").
		OrderExpr("a.category ASC").
		Scan(ctx, &cats)
	if err != nil {
		return nil, fmt.Errorf("list waiting categories: %w", translate(err))
	}
	out := make([]domain.Category, len(cats))
	for i, c := range cats {
		out[i] = domain.Category(c)
	}
	return out, nil
}
