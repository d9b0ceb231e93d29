package db

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/domain"
)

// identityRow is a row of member_identities.
type identityRow struct {
	bun.BaseModel `bun:"table:member_identities"`

	ID        int64     `bun:"id,pk,autoincrement"`
	MemberID  int64     `bun:"member_id,notnull"`
	Provider  string    `bun:"provider,notnull"`
	Subject   string    `bun:"subject,notnull"`
	Email     string    `bun:"email,nullzero"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

// identityWithMember is an identity row read with its member's public id.
type identityWithMember struct {
	identityRow `bun:",extend"`

	MemberPublicID string `bun:"member_public_id"`
}

func (r *identityWithMember) toDomain() domain.Identity {
	return domain.Identity{
		MemberID:  r.MemberPublicID,
		Provider:  r.Provider,
		Subject:   r.Subject,
		Email:     r.Email,
		CreatedAt: r.CreatedAt.UTC(),
	}
}

func errIdentityNotFound() error {
	return &domain.Error{Code: domain.ENOTFOUND, Message: "No such linked account."}
}

// Identities is the store of members' social-login accounts. The zero value
// is ready to use.
type Identities struct{}

// Create links id.Provider's account id.Subject to the live member
// id.MemberID; CreatedAt is stored in UTC to the microsecond and written
// back so. Errors: ENOTFOUND for an unknown or deleted member,
// EIDENTITYTAKEN when the account is linked to a member already (this one
// included), EPROVIDERLINKED when the member has an account of the provider.
func (Identities) Create(ctx context.Context, idb bun.IDB, id *domain.Identity) error {
	key, err := memberKey(ctx, idb, id.MemberID)
	if err != nil {
		return fmt.Errorf("link %s account to member %s: %w", id.Provider, id.MemberID, err)
	}
	id.CreatedAt = dbTime(id.CreatedAt)
	row := identityRow{MemberID: key, Provider: id.Provider, Subject: id.Subject, Email: id.Email, CreatedAt: id.CreatedAt}
	if _, err := idb.NewInsert().Model(&row).Exec(ctx); err != nil {
		return fmt.Errorf("link %s account to member %s: %w", id.Provider, id.MemberID, translate(err))
	}
	return nil
}

// FindBySubject returns the identity of provider's account subject, when
// it is linked to a live member. Errors: ENOTFOUND.
func (Identities) FindBySubject(ctx context.Context, idb bun.IDB, provider, subject string) (*domain.Identity, error) {
	var rows []identityWithMember
	err := selectIdentities(idb, &rows).
		Where("i.provider = ?", provider).Where("i.subject = ?", subject).
		Limit(1).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("find %s account: %w", provider, translate(err))
	}
	if len(rows) == 0 {
		return nil, errIdentityNotFound()
	}
	id := rows[0].toDomain()
	return &id, nil
}

// ListByMember returns the live member's identities by provider name; an
// unknown member has none.
func (Identities) ListByMember(ctx context.Context, idb bun.IDB, memberID string) ([]domain.Identity, error) {
	var rows []identityWithMember
	if err := selectIdentities(idb, &rows).Where("m.public_id = ?", memberID).
		OrderExpr("i.provider").Scan(ctx); err != nil {
		return nil, fmt.Errorf("list identities of member %s: %w", memberID, translate(err))
	}
	out := make([]domain.Identity, len(rows))
	for i := range rows {
		out[i] = rows[i].toDomain()
	}
	return out, nil
}

// selectIdentities selects identities of live members into rows.
func selectIdentities(idb bun.IDB, rows *[]identityWithMember) *bun.SelectQuery {
	return idb.NewSelect().Model(rows).
		ModelTableExpr("member_identities AS i").
		ColumnExpr("i.id, i.member_id, i.provider, i.subject, i.email, i.created_at").
		ColumnExpr("m.public_id AS member_public_id").
		Join("JOIN members AS m ON m.id = i.member_id").
		Where("m.deleted_at IS NULL")
}

// Delete unlinks the member's account of provider, unless it is the last
// way the member can log in (no password, no other identity). It runs its
// own transaction, which first touches the member's row: two unlinks of
// the same member then take turns, so they cannot each leave the other's
// identity as the last one and both go. Errors: ENOTFOUND when the member
// has no such identity (or is unknown), ELASTLOGINMETHOD.
func (Identities) Delete(ctx context.Context, bdb *bun.DB, memberID, provider string, now time.Time) error {
	err := RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewUpdate().Model((*memberRow)(nil)).
			Set("updated_at = ?", dbTime(now)).
			Where("public_id = ?", memberID).Where("deleted_at IS NULL").
			Exec(ctx); err != nil {
			return translate(err)
		}
		var m memberRow
		if err := tx.NewSelect().Model(&m).Column("id", "password_hash").
			Where("public_id = ?", memberID).Where("deleted_at IS NULL").Scan(ctx); err != nil {
			if err = translate(err); domain.ErrorCode(err) == domain.ENOTFOUND {
				return errIdentityNotFound()
			}
			return err
		}
		var providers []string
		if err := tx.NewSelect().Model((*identityRow)(nil)).Column("provider").
			Where("member_id = ?", m.ID).Scan(ctx, &providers); err != nil {
			return translate(err)
		}
		found := false
		for _, p := range providers {
			found = found || p == provider
		}
		if !found {
			return errIdentityNotFound()
		}
		if !domain.CanUnlink(m.PasswordHash != "", len(providers)) {
			return domain.Errorf(domain.ELASTLOGINMETHOD,
				"This is your only way to log in; link another account or set a password first.")
		}
		_, err := tx.NewDelete().Model((*identityRow)(nil)).
			Where("member_id = ?", m.ID).Where("provider = ?", provider).Exec(ctx)
		return translate(err)
	})
	if err != nil {
		return fmt.Errorf("unlink %s account of member %s: %w", provider, memberID, err)
	}
	return nil
}
