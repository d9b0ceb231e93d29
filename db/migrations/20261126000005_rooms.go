package migrations

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Frozen row structs of rooms: the rooms, who is in them, and the join and
// leave requests workers decide. See the foundation migration for why
// MySQL has its own.
//
// participant_count is the number of room_participants rows of the room
// (the host included); every change of it, and every other change of the
// room, bumps version, so a worker's `AND version = ?` update tells whether
// the room moved since it read it. The four condition masks are zero for
// "not stated". A request's pending_key is "<room id>:<member id>" while it
// is REQUESTED and NULL after: its unique index keeps a member to one
// pending request per room, on every dialect.
//
// matches.room_id gets its foreign key here on PostgreSQL and MySQL;
// SQLite cannot add one to an existing table, and the stores write it only
// together with the room.

type rooms20261126 struct {
	bun.BaseModel `bun:"table:rooms"`

	ID               int64     `bun:"id,pk,autoincrement"`
	PublicID         string    `bun:"public_id,type:varchar(32),notnull,unique:rooms_public_id_key"`
	HostID           int64     `bun:"host_id,notnull"`
	Category         int16     `bun:"category,type:smallint,notnull"`
	Title            string    `bun:"title,type:varchar(255),notnull"`
	Body             string    `bun:"body,type:text,notnull"`
	Place            string    `bun:"place,type:varchar(255),notnull"`
	StartsAt         time.Time `bun:"starts_at,notnull"`
	Capacity         int16     `bun:"capacity,type:smallint,notnull"`
	ParticipantCount int16     `bun:"participant_count,type:smallint,notnull"`
	Version          int64     `bun:"version,type:bigint,notnull,default:1"`
	Places           int16     `bun:"places,type:smallint,notnull,default:0"`
	TimesOfEating    int16     `bun:"times_of_eating,type:smallint,notnull,default:0"`
	WaysOfEating     int16     `bun:"ways_of_eating,type:smallint,notnull,default:0"`
	StudyTypes       int16     `bun:"study_types,type:smallint,notnull,default:0"`
	Anonymous        bool      `bun:"anonymous,notnull,default:false"`
	MatchID          int64     `bun:"match_id,type:bigint,nullzero"`
	CompletedAt      time.Time `bun:"completed_at,nullzero"`
	DeletedAt        time.Time `bun:"deleted_at,nullzero"`
	CreatedAt        time.Time `bun:"created_at,notnull"`
	UpdatedAt        time.Time `bun:"updated_at,notnull"`
}

// rooms20261126MySQL: MEDIUMTEXT because TEXT stops at 64 KiB and a body
// may take 100,000 characters of up to 4 bytes.
type rooms20261126MySQL struct {
	bun.BaseModel `bun:"table:rooms"`

	ID               int64     `bun:"id,pk,autoincrement"`
	PublicID         string    `bun:"public_id,type:varchar(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull,unique:rooms_public_id_key"`
	HostID           int64     `bun:"host_id,notnull"`
	Category         int16     `bun:"category,type:smallint,notnull"`
	Title            string    `bun:"title,type:varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull"`
	Body             string    `bun:"body,type:mediumtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull"`
	Place            string    `bun:"place,type:varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull"`
	StartsAt         time.Time `bun:"starts_at,type:datetime(6),notnull"`
	Capacity         int16     `bun:"capacity,type:smallint,notnull"`
	ParticipantCount int16     `bun:"participant_count,type:smallint,notnull"`
	Version          int64     `bun:"version,type:bigint,notnull,default:1"`
	Places           int16     `bun:"places,type:smallint,notnull,default:0"`
	TimesOfEating    int16     `bun:"times_of_eating,type:smallint,notnull,default:0"`
	WaysOfEating     int16     `bun:"ways_of_eating,type:smallint,notnull,default:0"`
	StudyTypes       int16     `bun:"study_types,type:smallint,notnull,default:0"`
	Anonymous        bool      `bun:"anonymous,notnull,default:false"`
	MatchID          int64     `bun:"match_id,type:bigint,nullzero"`
	CompletedAt      time.Time `bun:"completed_at,type:datetime(6),nullzero"`
	DeletedAt        time.Time `bun:"deleted_at,type:datetime(6),nullzero"`
	CreatedAt        time.Time `bun:"created_at,type:datetime(6),notnull"`
	UpdatedAt        time.Time `bun:"updated_at,type:datetime(6),notnull"`
}

type roomParticipants20261126 struct {
	bun.BaseModel `bun:"table:room_participants"`

	ID       int64     `bun:"id,pk,autoincrement"`
	RoomID   int64     `bun:"room_id,notnull,unique:room_participants_room_id_member_id_key"`
	MemberID int64     `bun:"member_id,notnull,unique:room_participants_room_id_member_id_key"`
	Host     bool      `bun:"host,notnull,default:false"`
	JoinedAt time.Time `bun:"joined_at,notnull"`
}

type roomParticipants20261126MySQL struct {
	bun.BaseModel `bun:"table:room_participants"`

	ID       int64     `bun:"id,pk,autoincrement"`
	RoomID   int64     `bun:"room_id,notnull,unique:room_participants_room_id_member_id_key"`
	MemberID int64     `bun:"member_id,notnull,unique:room_participants_room_id_member_id_key"`
	Host     bool      `bun:"host,notnull,default:false"`
	JoinedAt time.Time `bun:"joined_at,type:datetime(6),notnull"`
}

type roomParticipations20261126 struct {
	bun.BaseModel `bun:"table:room_participations"`

	ID         int64     `bun:"id,pk,autoincrement"`
	PublicID   string    `bun:"public_id,type:varchar(32),notnull,unique:room_participations_public_id_key"`
	RoomID     int64     `bun:"room_id,notnull"`
	MemberID   int64     `bun:"member_id,notnull"`
	Kind       int16     `bun:"kind,type:smallint,notnull"`
	Status     int16     `bun:"status,type:smallint,notnull"`
	PendingKey string    `bun:"pending_key,type:varchar(64),nullzero,unique:room_participations_pending_key"`
	CreatedAt  time.Time `bun:"created_at,notnull"`
	DecidedAt  time.Time `bun:"decided_at,nullzero"`
}

type roomParticipations20261126MySQL struct {
	bun.BaseModel `bun:"table:room_participations"`

	ID         int64     `bun:"id,pk,autoincrement"`
	PublicID   string    `bun:"public_id,type:varchar(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull,unique:room_participations_public_id_key"`
	RoomID     int64     `bun:"room_id,notnull"`
	MemberID   int64     `bun:"member_id,notnull"`
	Kind       int16     `bun:"kind,type:smallint,notnull"`
	Status     int16     `bun:"status,type:smallint,notnull"`
	PendingKey string    `bun:"pending_key,type:varchar(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,nullzero,unique:room_participations_pending_key"`
	CreatedAt  time.Time `bun:"created_at,type:datetime(6),notnull"`
	DecidedAt  time.Time `bun:"decided_at,type:datetime(6),nullzero"`
}

// roomsUp creates rooms, room_participants and room_participations.
func roomsUp(ctx context.Context, bdb *bun.DB) error {
	rModel, pModel, qModel := any((*rooms20261126)(nil)), any((*roomParticipants20261126)(nil)), any((*roomParticipations20261126)(nil))
	name := bdb.Dialect().Name()
	if name == dialect.MySQL {
		rModel, pModel, qModel = (*rooms20261126MySQL)(nil), (*roomParticipants20261126MySQL)(nil), (*roomParticipations20261126MySQL)(nil)
	}
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewCreateTable().Model(rModel).
			ForeignKey("(host_id) REFERENCES members (id)").
			ForeignKey("(match_id) REFERENCES matches (id)").
			Exec(ctx); err != nil {
			return fmt.Errorf("create table rooms: %w", err)
		}
		for idx, cols := range map[string][]string{
			// The list: newest first, optionally by category.
			"rooms_created_at_id_idx":          {"created_at", "id"},
			"rooms_category_created_at_id_idx": {"category", "created_at", "id"},
			// Reminders: rooms starting in a window.
			"rooms_starts_at_idx": {"starts_at"},
			// A host's rooms.
			"rooms_host_id_idx": {"host_id"},
		} {
			if _, err := tx.NewCreateIndex().Model(rModel).Index(idx).Column(cols...).Exec(ctx); err != nil {
				return fmt.Errorf("create index %s: %w", idx, err)
			}
		}

		if _, err := tx.NewCreateTable().Model(pModel).
			ForeignKey("(room_id) REFERENCES rooms (id)").
			ForeignKey("(member_id) REFERENCES members (id)").
			Exec(ctx); err != nil {
			return fmt.Errorf("create table room_participants: %w", err)
		}
		if _, err := tx.NewCreateIndex().Model(pModel).Index("room_participants_member_id_idx").
			Column("member_id").Exec(ctx); err != nil {
			return fmt.Errorf("create index room_participants_member_id_idx: %w", err)
		}

		if _, err := tx.NewCreateTable().Model(qModel).
			ForeignKey("(room_id) REFERENCES rooms (id)").
			ForeignKey("(member_id) REFERENCES members (id)").
			Exec(ctx); err != nil {
			return fmt.Errorf("create table room_participations: %w", err)
		}
		// The sweep: requests still REQUESTED, oldest first.
		if _, err := tx.NewCreateIndex().Model(qModel).Index("room_participations_status_created_at_idx").
			Column("status", "created_at").Exec(ctx); err != nil {
			return fmt.Errorf("create index room_participations_status_created_at_idx: %w", err)
		}

		if name == dialect.PG || name == dialect.MySQL {
			if _, err := tx.ExecContext(ctx, "ALTER TABLE matches ADD CONSTRAINT matches_room_id_fkey FOREIGN KEY (room_id) REFERENCES rooms (id)"); err != nil {
				return fmt.Errorf("add matches_room_id_fkey: %w", err)
			}
		}
		return nil
	})
}

// roomsDown drops what roomsUp created.
func roomsDown(ctx context.Context, bdb *bun.DB) error {
	name := bdb.Dialect().Name()
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		drop := "ALTER TABLE matches DROP CONSTRAINT matches_room_id_fkey"
		if name == dialect.MySQL {
			drop = "ALTER TABLE matches DROP FOREIGN KEY matches_room_id_fkey"
		}
		if name == dialect.PG || name == dialect.MySQL {
			if _, err := tx.ExecContext(ctx, drop); err != nil {
				return fmt.Errorf("drop matches_room_id_fkey: %w", err)
			}
		}
		for _, table := range []string{"room_participations", "room_participants", "rooms"} {
			if _, err := tx.NewDropTable().Table(table).IfExists().Exec(ctx); err != nil {
				return fmt.Errorf("drop table %s: %w", table, err)
			}
		}
		return nil
	})
}
