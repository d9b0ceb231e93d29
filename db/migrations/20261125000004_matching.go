package migrations

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Frozen row structs of random matching: the matches (random or, later, from
// a room), their members, and the random-match applications. See the
// foundation migration for why MySQL has its own.
//
// An application carries its conditions as bit masks (places, and ways of
// eating or types of study in second), so one row stands for every
// combination and can be matched only once. waiting_key is
// "<member id>:<category>" while the application waits and NULL otherwise:
// its unique index is what keeps a member to one waiting application per
// category under concurrent requests, on every dialect (MySQL has no
// partial indexes, and a unique index admits any number of NULLs).
// version is bumped by every change, for the matcher's optimistic update.
//
// matches.room_id gets its foreign key with the rooms table.

type matches20261125 struct {
	bun.BaseModel `bun:"table:matches"`

	ID        int64     `bun:"id,pk,autoincrement"`
	PublicID  string    `bun:"public_id,type:varchar(32),notnull,unique:matches_public_id_key"`
	Category  int16     `bun:"category,type:smallint,notnull"`
	Method    int16     `bun:"method,type:smallint,notnull"`
	Places    int16     `bun:"places,type:smallint,notnull,default:0"`
	Second    int16     `bun:"second,type:smallint,notnull,default:0"`
	RoomID    int64     `bun:"room_id,type:bigint,nullzero"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

type matches20261125MySQL struct {
	bun.BaseModel `bun:"table:matches"`

	ID        int64     `bun:"id,pk,autoincrement"`
	PublicID  string    `bun:"public_id,type:varchar(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull,unique:matches_public_id_key"`
	Category  int16     `bun:"category,type:smallint,notnull"`
	Method    int16     `bun:"method,type:smallint,notnull"`
	Places    int16     `bun:"places,type:smallint,notnull,default:0"`
	Second    int16     `bun:"second,type:smallint,notnull,default:0"`
	RoomID    int64     `bun:"room_id,type:bigint,nullzero"`
	CreatedAt time.Time `bun:"created_at,type:datetime(6),notnull"`
}

// matchMembers20261125 serves MySQL too: it has no string or time columns.
type matchMembers20261125 struct {
	bun.BaseModel `bun:"table:match_members"`

	ID       int64 `bun:"id,pk,autoincrement"`
	MatchID  int64 `bun:"match_id,notnull,unique:match_members_match_id_member_id_key"`
	MemberID int64 `bun:"member_id,notnull,unique:match_members_match_id_member_id_key"`
}

type randomApplications20261125 struct {
	bun.BaseModel `bun:"table:random_applications"`

	ID         int64     `bun:"id,pk,autoincrement"`
	PublicID   string    `bun:"public_id,type:varchar(32),notnull,unique:random_applications_public_id_key"`
	MemberID   int64     `bun:"member_id,notnull"`
	Category   int16     `bun:"category,type:smallint,notnull"`
	Places     int16     `bun:"places,type:smallint,notnull"`
	Second     int16     `bun:"second,type:smallint,notnull"`
	Status     int16     `bun:"status,type:smallint,notnull"`
	Version    int64     `bun:"version,type:bigint,notnull,default:1"`
	WaitingKey string    `bun:"waiting_key,type:varchar(64),nullzero,unique:random_applications_waiting_key"`
	MatchID    int64     `bun:"match_id,type:bigint,nullzero"`
	CreatedAt  time.Time `bun:"created_at,notnull"`
	ExpiresAt  time.Time `bun:"expires_at,notnull"`
	UpdatedAt  time.Time `bun:"updated_at,notnull"`
}

type randomApplications20261125MySQL struct {
	bun.BaseModel `bun:"table:random_applications"`

	ID         int64     `bun:"id,pk,autoincrement"`
	PublicID   string    `bun:"public_id,type:varchar(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull,unique:random_applications_public_id_key"`
	MemberID   int64     `bun:"member_id,notnull"`
	Category   int16     `bun:"category,type:smallint,notnull"`
	Places     int16     `bun:"places,type:smallint,notnull"`
	Second     int16     `bun:"second,type:smallint,notnull"`
	Status     int16     `bun:"status,type:smallint,notnull"`
	Version    int64     `bun:"version,type:bigint,notnull,default:1"`
	WaitingKey string    `bun:"waiting_key,type:varchar(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,nullzero,unique:random_applications_waiting_key"`
	MatchID    int64     `bun:"match_id,type:bigint,nullzero"`
	CreatedAt  time.Time `bun:"created_at,type:datetime(6),notnull"`
	ExpiresAt  time.Time `bun:"expires_at,type:datetime(6),notnull"`
	UpdatedAt  time.Time `bun:"updated_at,type:datetime(6),notnull"`
}

// matchingUp creates matches, match_members and random_applications, in
// that order for the foreign keys.
func matchingUp(ctx context.Context, bdb *bun.DB) error {
	mModel, aModel := any((*matches20261125)(nil)), any((*randomApplications20261125)(nil))
	if bdb.Dialect().Name() == dialect.MySQL {
		mModel, aModel = (*matches20261125MySQL)(nil), (*randomApplications20261125MySQL)(nil)
	}
	mmModel := (*matchMembers20261125)(nil)
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewCreateTable().Model(mModel).Exec(ctx); err != nil {
			return fmt.Errorf("create table matches: %w", err)
		}
		if _, err := tx.NewCreateIndex().Model(mModel).Index("matches_created_at_idx").
			Column("created_at").Exec(ctx); err != nil {
			return fmt.Errorf("create index matches_created_at_idx: %w", err)
		}

		if _, err := tx.NewCreateTable().Model(mmModel).
			ForeignKey("(match_id) REFERENCES matches (id)").
			ForeignKey("(member_id) REFERENCES members (id)").
			Exec(ctx); err != nil {
			return fmt.Errorf("create table match_members: %w", err)
		}
		// A member's history; the unique key serves a match's members.
		if _, err := tx.NewCreateIndex().Model(mmModel).Index("match_members_member_id_match_id_idx").
			Column("member_id", "match_id").Exec(ctx); err != nil {
			return fmt.Errorf("create index match_members_member_id_match_id_idx: %w", err)
		}

		if _, err := tx.NewCreateTable().Model(aModel).
			ForeignKey("(member_id) REFERENCES members (id)").
			ForeignKey("(match_id) REFERENCES matches (id)").
			Exec(ctx); err != nil {
			return fmt.Errorf("create table random_applications: %w", err)
		}
		for name, cols := range map[string][]string{
			// The matcher's read: a category's waiting pool, oldest first.
			"random_applications_category_status_created_at_id_idx": {"category", "status", "created_at", "id"},
			// The sweep: waiting applications past their expiry.
			"random_applications_status_expires_at_idx": {"status", "expires_at"},
		} {
			if _, err := tx.NewCreateIndex().Model(aModel).Index(name).Column(cols...).Exec(ctx); err != nil {
				return fmt.Errorf("create index %s: %w", name, err)
			}
		}
		return nil
	})
}

// matchingDown drops what matchingUp created, referencing tables first.
func matchingDown(ctx context.Context, bdb *bun.DB) error {
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for _, table := range []string{"random_applications", "match_members", "matches"} {
			if _, err := tx.NewDropTable().Table(table).IfExists().Exec(ctx); err != nil {
				return fmt.Errorf("drop table %s: %w", table, err)
			}
		}
		return nil
	})
}
