package db

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/moim/moim/domain"
)

// memberRow is a row of the members table. Empty strings are NULL
// (nullzero): email and nickname_key so a deleted member holds no unique
// value, phone and slack_email because "" means none.
type memberRow struct {
	bun.BaseModel `bun:"table:members"`

	ID           int64     `bun:"id,pk,autoincrement"`
	PublicID     string    `bun:"public_id,notnull"`
	Email        string    `bun:"email,nullzero"`
	PasswordHash string    `bun:"password_hash,notnull"`
	Nickname     string    `bun:"nickname,notnull"`
	NicknameKey  string    `bun:"nickname_key,nullzero"`
	Phone        string    `bun:"phone,nullzero"`
	SMSConsent   bool      `bun:"sms_consent,notnull"`
	SlackEmail   string    `bun:"slack_email,nullzero"`
	NotifyMail   bool      `bun:"notify_mail,notnull"`
	NotifySMS    bool      `bun:"notify_sms,notnull"`
	NotifySlack  bool      `bun:"notify_slack,notnull"`
	Role         int16     `bun:"role,notnull"`
	CreatedAt    time.Time `bun:"created_at,notnull"`
	UpdatedAt    time.Time `bun:"updated_at,notnull"`
	DeletedAt    time.Time `bun:"deleted_at,nullzero"`

	EmailVerifiedAt time.Time `bun:"email_verified_at,nullzero"`
	PhoneVerifiedAt time.Time `bun:"phone_verified_at,nullzero"`
}

func (r *memberRow) toDomain() *domain.Member {
	m := &domain.Member{
		ID:           r.PublicID,
		Email:        r.Email,
		PasswordHash: r.PasswordHash,
		Nickname:     r.Nickname,
		Phone:        r.Phone,
		SMSConsent:   r.SMSConsent,
		SlackEmail:   r.SlackEmail,
		Prefs: domain.NotificationPrefs{
			Mail:  r.NotifyMail,
			SMS:   r.NotifySMS,
			Slack: r.NotifySlack,
		},
		Role:      domain.Role(r.Role),
		CreatedAt: r.CreatedAt.UTC(),
		UpdatedAt: r.UpdatedAt.UTC(),
	}
	m.DeletedAt = optionalTime(r.DeletedAt)
	m.EmailVerifiedAt = optionalTime(r.EmailVerifiedAt)
	m.PhoneVerifiedAt = optionalTime(r.PhoneVerifiedAt)
	return m
}

// optionalTime is a nullzero column as a domain pointer: nil for NULL.
func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	at := t.UTC()
	return &at
}

// fromDomain fills r from m, deriving nickname_key from the nickname.
func (r *memberRow) fromDomain(m *domain.Member) *memberRow {
	*r = memberRow{
		PublicID:     m.ID,
		Email:        m.Email,
		PasswordHash: m.PasswordHash,
		Nickname:     m.Nickname,
		NicknameKey:  domain.NicknameKey(m.Nickname),
		Phone:        m.Phone,
		SMSConsent:   m.SMSConsent,
		SlackEmail:   m.SlackEmail,
		NotifyMail:   m.Prefs.Mail,
		NotifySMS:    m.Prefs.SMS,
		NotifySlack:  m.Prefs.Slack,
		Role:         int16(m.Role),
		CreatedAt:    dbTime(m.CreatedAt),
		UpdatedAt:    dbTime(m.UpdatedAt),
	}
	if m.DeletedAt != nil {
		r.DeletedAt = dbTime(*m.DeletedAt)
	}
	if m.EmailVerifiedAt != nil {
		r.EmailVerifiedAt = dbTime(*m.EmailVerifiedAt)
	}
	if m.PhoneVerifiedAt != nil {
		r.PhoneVerifiedAt = dbTime(*m.PhoneVerifiedAt)
	}
	return r
}

// dbTime is t as every dialect stores it: UTC, whole microseconds.
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// errMemberNotFound is returned for unknown and deleted members alike.
func errMemberNotFound() error {
	return &domain.Error{Code: domain.ENOTFOUND, Message: "Member not found."}
}

// Members is the store of members. The zero value is ready to use; every
// method takes the bun.IDB to run on, so it composes with the caller's
// transaction. A soft-deleted member is never found.
type Members struct{}

// Create inserts m and sets m.ID to a new public id. The caller has
// normalised and validated the fields (see domain.NormalizeEmail and
// friends) and set Role, Prefs, CreatedAt and UpdatedAt; times are written
// back in UTC, truncated to microseconds, as they are stored.
// Errors: EEMAILTAKEN (field "email") when the address is registered,
// ENICKNAMETAKEN (field "nickname") when the nickname is taken in any case;
// when both are, EEMAILTAKEN. A rejected member stores nothing.
func (Members) Create(ctx context.Context, idb bun.IDB, m *domain.Member) error {
	if !m.Role.Valid() {
		return fmt.Errorf("create member: invalid role %d", int(m.Role))
	}
	m.ID = NewPublicID()
	m.CreatedAt, m.UpdatedAt = dbTime(m.CreatedAt), dbTime(m.UpdatedAt)
	for _, at := range []**time.Time{&m.DeletedAt, &m.EmailVerifiedAt, &m.PhoneVerifiedAt} {
		if *at != nil {
			t := dbTime(**at)
			*at = &t
		}
	}
	if _, err := idb.NewInsert().Model(new(memberRow).fromDomain(m)).Exec(ctx); err != nil {
		terr := translate(err)
		if domain.ErrorCode(terr) == domain.ENICKNAMETAKEN && emailTaken(ctx, idb, m.Email) {
			// SQLite checks the nickname's index before the address's. The
			// address matters more: its owner has an account and should log
			// in, whatever nickname they try.
			de := uniqueError("members_email_key")
			de.Err = err
			terr = de
		}
		return fmt.Errorf("create member %s: %w", m.ID, terr)
	}
	return nil
}

// emailTaken reports whether a live member has the address, after an insert
// failed on the nickname. PostgreSQL is not asked: it checks the address
// first anyway, and in a transaction the failed insert has aborted it.
func emailTaken(ctx context.Context, idb bun.IDB, email string) bool {
	if idb.Dialect().Name() == dialect.PG {
		return false
	}
	taken, err := idb.NewSelect().Model((*memberRow)(nil)).Where("email = ?", email).Exists(ctx)
	return err == nil && taken
}

// FindByID returns the member with public id id. Errors: ENOTFOUND when
// there is none or it was deleted.
func (Members) FindByID(ctx context.Context, idb bun.IDB, id string) (*domain.Member, error) {
	m, err := findMember(ctx, idb, "public_id", id)
	if err != nil {
		return nil, fmt.Errorf("find member %s: %w", id, err)
	}
	return m, nil
}

// FindByEmail returns the member with the given address, which the caller
// has normalised (domain.NormalizeEmail). Errors: ENOTFOUND when there is
// none or it was deleted.
func (Members) FindByEmail(ctx context.Context, idb bun.IDB, email string) (*domain.Member, error) {
	m, err := findMember(ctx, idb, "email", email)
	if err != nil {
		// The address is personal data; it stays out of the error text.
		return nil, fmt.Errorf("find member by email: %w", err)
	}
	return m, nil
}

// findMember returns the live member whose column equals value.
func findMember(ctx context.Context, idb bun.IDB, column, value string) (*domain.Member, error) {
	var r memberRow
	err := idb.NewSelect().
		Model(&r).
		Where("? = ?", bun.Ident(column), value).
		Where("deleted_at IS NULL").
		Limit(1).
		Scan(ctx)
	if err != nil {
		err = translate(err)
		if domain.ErrorCode(err) == domain.ENOTFOUND {
			return nil, errMemberNotFound()
		}
		return nil, err
	}
	return r.toDomain(), nil
}

// Update applies the non-nil fields of upd to the member with public id id,
// sets its updated_at to now and returns the member as stored. Phone or
// SlackEmail set to "" clear the value; a new nickname is checked for
// uniqueness in any case. The caller has normalised the values.
// Errors: ENOTFOUND for an unknown or deleted member, ENICKNAMETAKEN (field
// "nickname") when another member has the nickname.
func (Members) Update(ctx context.Context, idb bun.IDB, id string, upd domain.MemberUpdate, now time.Time) (*domain.Member, error) {
	q := idb.NewUpdate().
		Model((*memberRow)(nil)).
		Set("updated_at = ?", dbTime(now)).
		Where("public_id = ?", id).
		Where("deleted_at IS NULL")
	if upd.Nickname != nil {
		q = q.Set("nickname = ?", *upd.Nickname).
			Set("nickname_key = ?", domain.NicknameKey(*upd.Nickname))
	}
	if upd.Phone != nil {
		// A different number is unverified until its own code comes back.
		// Set before phone: MySQL evaluates SET left to right with the new
		// values, the others with the old ones; this order reads the old
		// number on all three.
		q = q.Set("phone_verified_at = CASE WHEN phone = ? THEN phone_verified_at ELSE NULL END", nullIfEmpty(*upd.Phone)).
			Set("phone = ?", nullIfEmpty(*upd.Phone))
	}
	if upd.SMSConsent != nil {
		q = q.Set("sms_consent = ?", *upd.SMSConsent)
	}
	if upd.SlackEmail != nil {
		q = q.Set("slack_email = ?", nullIfEmpty(*upd.SlackEmail))
	}
	if upd.PrefMail != nil {
		q = q.Set("notify_mail = ?", *upd.PrefMail)
	}
	if upd.PrefSMS != nil {
		q = q.Set("notify_sms = ?", *upd.PrefSMS)
	}
	if upd.PrefSlack != nil {
		q = q.Set("notify_slack = ?", *upd.PrefSlack)
	}
	if upd.PasswordHash != nil {
		q = q.Set("password_hash = ?", *upd.PasswordHash)
	}
	if _, err := q.Exec(ctx); err != nil {
		return nil, fmt.Errorf("update member %s: %w", id, translate(err))
	}
	// The row is read back rather than judged by the rows affected: MySQL
	// counts only rows whose values changed, so an update that changes
	// nothing would look like a missing member.
	m, err := findMember(ctx, idb, "public_id", id)
	if err != nil {
		return nil, fmt.Errorf("update member %s: %w", id, err)
	}
	return m, nil
}

// VerifyEmail makes email the member's address, verified at now (an
// address change takes effect only here). Errors: ENOTFOUND for an unknown
// or deleted member, EEMAILTAKEN when another member has the address.
func (Members) VerifyEmail(ctx context.Context, idb bun.IDB, id, email string, now time.Time) error {
	return setVerified(ctx, idb, id, "email", email, now)
}

// VerifyPhone makes phone the member's number, verified at now. Errors:
// ENOTFOUND for an unknown or deleted member.
func (Members) VerifyPhone(ctx context.Context, idb bun.IDB, id, phone string, now time.Time) error {
	return setVerified(ctx, idb, id, "phone", phone, now)
}

// setVerified sets column and its <column>_verified_at on a live member.
func setVerified(ctx context.Context, idb bun.IDB, id, column, value string, now time.Time) error {
	res, err := idb.NewUpdate().
		Model((*memberRow)(nil)).
		Set("? = ?", bun.Ident(column), value).
		Set("? = ?", bun.Ident(column+"_verified_at"), dbTime(now)).
		Set("updated_at = ?", dbTime(now)).
		Where("public_id = ?", id).
		Where("deleted_at IS NULL").
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("verify %s of member %s: %w", column, id, translate(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("verify %s of member %s: %w", column, id, err)
	} else if n > 0 {
		return nil
	}
	// MySQL counts only changed rows, so 0 may mean "already so".
	if _, err := findMember(ctx, idb, "public_id", id); err != nil {
		return fmt.Errorf("verify %s of member %s: %w", column, id, err)
	}
	return nil
}

// SetRole changes the role of the member with public id id and sets its
// updated_at to now. Errors: ENOTFOUND for an unknown or deleted member,
// EINVALID for a value that is not a role.
func (Members) SetRole(ctx context.Context, idb bun.IDB, id string, role domain.Role, now time.Time) error {
	if !role.Valid() {
		return domain.FieldErrorf(domain.EINVALID, "role", "Unknown role %d.", int(role))
	}
	res, err := idb.NewUpdate().
		Model((*memberRow)(nil)).
		Set("role = ?", int16(role)).
		Set("updated_at = ?", dbTime(now)).
		Where("public_id = ?", id).
		Where("deleted_at IS NULL").
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("set role of member %s: %w", id, translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("set role of member %s: rows affected: %w", id, err)
	}
	if n > 0 {
		return nil
	}
	// Zero rows is also MySQL's answer when role and time were already
	// these values, so look before calling the member missing.
	if _, err := findMember(ctx, idb, "public_id", id); err != nil {
		return fmt.Errorf("set role of member %s: %w", id, err)
	}
	return nil
}

// ReplacePasswordHash sets the password hash of a live member to newHash
// only while it is still oldHash, and reports whether it did: a hash
// upgraded in the background must never undo a password change that
// committed in between.
func (Members) ReplacePasswordHash(ctx context.Context, idb bun.IDB, id, oldHash, newHash string, now time.Time) (bool, error) {
	res, err := idb.NewUpdate().
		Model((*memberRow)(nil)).
		Set("password_hash = ?", newHash).
		Set("updated_at = ?", dbTime(now)).
		Where("public_id = ?", id).
		Where("password_hash = ?", oldHash).
		Where("deleted_at IS NULL").
		Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("replace password hash of member %s: %w", id, translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("replace password hash of member %s: %w", id, err)
	}
	return n == 1, nil
}

// Delete soft-deletes the member with public id id at now. The row stays for
// the history that refers to it (the nickname with it), but the personal
// data goes: e-mail address, phone, Slack address and password hash are
// erased, and the address and nickname are free for a new sign-up.
// Errors: ENOTFOUND for an unknown or already deleted member.
func (Members) Delete(ctx context.Context, idb bun.IDB, id string, now time.Time) error {
	at := dbTime(now)
	res, err := idb.NewUpdate().
		Model((*memberRow)(nil)).
		Set("deleted_at = ?", at).
		Set("updated_at = ?", at).
		Set("email = NULL").
		Set("nickname_key = NULL").
		Set("phone = NULL").
		Set("slack_email = NULL").
		Set("password_hash = ''").
		Where("public_id = ?", id).
		Where("deleted_at IS NULL").
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("delete member %s: %w", id, translate(err))
	}
	// deleted_at goes from NULL to a time, so every dialect counts the row.
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("delete member %s: rows affected: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("delete member %s: %w", id, errMemberNotFound())
	}
	// The social-login accounts go too: they are personal data, and a
	// later login with one of them starts a new account.
	if _, err := idb.NewDelete().Model((*identityRow)(nil)).
		Where("member_id IN (?)", idb.NewSelect().Model((*memberRow)(nil)).Column("id").Where("public_id = ?", id)).
		Exec(ctx); err != nil {
		return fmt.Errorf("delete member %s: identities: %w", id, translate(err))
	}
	return nil
}

// nullIfEmpty turns "" into SQL NULL for an optional column.
func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// MannerPoints returns the live member's manner points (ErunJrun: 50 to
// start, +1 per attended group run, plus the evaluations of the runs they
// hosted). Errors: ENOTFOUND.
func (Members) MannerPoints(ctx context.Context, idb bun.IDB, id string) (int, error) {
	var points []int
	err := idb.NewSelect().Model((*memberRow)(nil)).Column("manner_points").
		Where("public_id = ?", id).Where("deleted_at IS NULL").Scan(ctx, &points)
	if err != nil {
		return 0, fmt.Errorf("manner points of %s: %w", id, translate(err))
	}
	if len(points) == 0 {
		return 0, fmt.Errorf("manner points of %s: %w", id, errMemberNotFound())
	}
	return points[0], nil
}
