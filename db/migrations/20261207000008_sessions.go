package migrations

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Refresh sessions, which lived only in Redis: a FLUSHALL or a restart
// without persistence logged every member out. The row is the truth; Redis
// only caches whether a session is alive.
//
// secret_hash is the SHA-256 of the current refresh secret, prev_hashes
// those of the secrets rotated away (newest first, end to end, 64 at most),
// so presenting one of them is recognised as a replay. Neither is usable as
// a token. member_id is the member's public id, as in the tokens; members
// are only ever soft-deleted, and deleting one revokes their sessions.
// Revoked and expired rows stay until the cleanup deletes them, which keeps
// a replay of a revoked session's token recognisable meanwhile.

type sessions20261207 struct {
	bun.BaseModel `bun:"table:sessions"`

	ID         string    `bun:"id,pk,type:varchar(32)"`
	MemberID   string    `bun:"member_id,type:varchar(32),notnull"`
	SecretHash string    `bun:"secret_hash,type:varchar(64),notnull"`
	PrevHashes string    `bun:"prev_hashes,type:text,notnull"`
	UserAgent  string    `bun:"user_agent,type:varchar(1024),notnull"`
	IP         string    `bun:"ip,type:varchar(64),notnull"`
	CreatedAt  time.Time `bun:"created_at,notnull"`
	LastUsedAt time.Time `bun:"last_used_at,notnull"`
	ExpiresAt  time.Time `bun:"expires_at,notnull"`
	RevokedAt  time.Time `bun:"revoked_at,nullzero"`
}

type sessions20261207MySQL struct {
	bun.BaseModel `bun:"table:sessions"`

	ID         string    `bun:"id,pk,type:varchar(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"`
	MemberID   string    `bun:"member_id,type:varchar(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull"`
	SecretHash string    `bun:"secret_hash,type:varchar(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull"`
	PrevHashes string    `bun:"prev_hashes,type:text CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull"`
	UserAgent  string    `bun:"user_agent,type:varchar(1024) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull"`
	IP         string    `bun:"ip,type:varchar(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull"`
	CreatedAt  time.Time `bun:"created_at,type:datetime(6),notnull"`
	LastUsedAt time.Time `bun:"last_used_at,type:datetime(6),notnull"`
	ExpiresAt  time.Time `bun:"expires_at,type:datetime(6),notnull"`
	RevokedAt  time.Time `bun:"revoked_at,type:datetime(6),nullzero"`
}

// sessionsUp creates the sessions table.
func sessionsUp(ctx context.Context, bdb *bun.DB) error {
	model := any((*sessions20261207)(nil))
	if bdb.Dialect().Name() == dialect.MySQL {
		model = (*sessions20261207MySQL)(nil)
	}
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewCreateTable().Model(model).Exec(ctx); err != nil {
			return fmt.Errorf("create table sessions: %w", err)
		}
		// A member's sessions (list, revoke all), and the cleanup of
		// sessions that ended long ago.
		for name, col := range map[string]string{
			"sessions_member_id_idx":  "member_id",
			"sessions_expires_at_idx": "expires_at",
		} {
			if _, err := tx.NewCreateIndex().Model(model).Index(name).Column(col).Exec(ctx); err != nil {
				return fmt.Errorf("create index %s: %w", name, err)
			}
		}
		return nil
	})
}

// sessionsDown drops the sessions table.
func sessionsDown(ctx context.Context, bdb *bun.DB) error {
	if _, err := bdb.NewDropTable().Table("sessions").IfExists().Exec(ctx); err != nil {
		return fmt.Errorf("drop table sessions: %w", err)
	}
	return nil
}
