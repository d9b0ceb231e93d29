package migrations

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Frozen row structs of missions; see the foundation migration for why
// MySQL has its own.
//
// missions: status and type are small numbers (domain.MissionStatus,
// domain.MissionType). starts_at, ends_at and the schedule (weeks,
// days_per_week, per_day) stay zero until the host sets them; the mission
// is UNACTIVATED until they and at least one window are set. member_count
// is the number of ACTIVE mission_members rows (the host included), and
// every change of it, of the status or of the schedule bumps version, so a
// join's `member_count < capacity AND version = ?` and a transition's
// `status = ? AND version = ?` tell whether the mission moved since it was
// read. Every mission has a unique 8-character code: private missions are
// joined by it, and anyone may look a mission up by it.
//
// mission_windows: the daily verification windows, minutes of the day in
// the missions' zone, start < end, not overlapping.
//
// mission_members: one row per member and mission (Octopus kept a
// comma-separated text column). A member who leaves before the start loses
// the row (the stake is refunded); one who leaves after it keeps it as LEFT
// (the stake is forfeit). rate_bp and payout are written by the close.
//
// mission_verifications: one row per photo. image_id is unique (an image
// counts once); (mission, member, day, day_slot) and (mission, member,
// week, week_slot) are unique, so two posts racing for the last place of a
// day's or a week's quota cannot both be stored.
//
// mission_reminders: the sent markers of verify reminders, one per member,
// mission day and window.

type missions20261207 struct {
	bun.BaseModel `bun:"table:missions"`

	ID          int64     `bun:"id,pk,autoincrement"`
	PublicID    string    `bun:"public_id,type:varchar(32),notnull,unique:missions_public_id_key"`
	Code        string    `bun:"code,type:varchar(8),notnull,unique:missions_code_key"`
	HostID      int64     `bun:"host_id,notnull"`
	Title       string    `bun:"title,type:varchar(255),notnull"`
	Type        int16     `bun:"type,type:smallint,notnull"`
	Description string    `bun:"description,type:text,notnull"`
	Stake       int64     `bun:"stake,type:bigint,notnull"`
	Capacity    int16     `bun:"capacity,type:smallint,notnull"`
	MemberCount int16     `bun:"member_count,type:smallint,notnull"`
	Private     bool      `bun:"private,notnull,default:false"`
	Status      int16     `bun:"status,type:smallint,notnull"`
	StartsAt    time.Time `bun:"starts_at,nullzero"`
	EndsAt      time.Time `bun:"ends_at,nullzero"`
	Weeks       int16     `bun:"weeks,type:smallint,notnull,default:0"`
	DaysPerWeek int16     `bun:"days_per_week,type:smallint,notnull,default:0"`
	PerDay      int16     `bun:"per_day,type:smallint,notnull,default:0"`
	Version     int64     `bun:"version,type:bigint,notnull,default:1"`
	ClosedAt    time.Time `bun:"closed_at,nullzero"`
	CreatedAt   time.Time `bun:"created_at,notnull"`
	UpdatedAt   time.Time `bun:"updated_at,notnull"`
}

type missions20261207MySQL struct {
	bun.BaseModel `bun:"table:missions"`

	ID          int64     `bun:"id,pk,autoincrement"`
	PublicID    string    `bun:"public_id,type:varchar(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull,unique:missions_public_id_key"`
	Code        string    `bun:"code,type:varchar(8) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull,unique:missions_code_key"`
	HostID      int64     `bun:"host_id,notnull"`
	Title       string    `bun:"title,type:varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull"`
	Type        int16     `bun:"type,type:smallint,notnull"`
	Description string    `bun:"description,type:text CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull"`
	Stake       int64     `bun:"stake,type:bigint,notnull"`
	Capacity    int16     `bun:"capacity,type:smallint,notnull"`
	MemberCount int16     `bun:"member_count,type:smallint,notnull"`
	Private     bool      `bun:"private,notnull,default:false"`
	Status      int16     `bun:"status,type:smallint,notnull"`
	StartsAt    time.Time `bun:"starts_at,type:datetime(6),nullzero"`
	EndsAt      time.Time `bun:"ends_at,type:datetime(6),nullzero"`
	Weeks       int16     `bun:"weeks,type:smallint,notnull,default:0"`
	DaysPerWeek int16     `bun:"days_per_week,type:smallint,notnull,default:0"`
	PerDay      int16     `bun:"per_day,type:smallint,notnull,default:0"`
	Version     int64     `bun:"version,type:bigint,notnull,default:1"`
	ClosedAt    time.Time `bun:"closed_at,type:datetime(6),nullzero"`
	CreatedAt   time.Time `bun:"created_at,type:datetime(6),notnull"`
	UpdatedAt   time.Time `bun:"updated_at,type:datetime(6),notnull"`
}

type missionWindows20261207 struct {
	bun.BaseModel `bun:"table:mission_windows"`

	ID          int64 `bun:"id,pk,autoincrement"`
	MissionID   int64 `bun:"mission_id,notnull,unique:mission_windows_mission_id_position_key"`
	Position    int16 `bun:"position,type:smallint,notnull,unique:mission_windows_mission_id_position_key"`
	StartMinute int16 `bun:"start_minute,type:smallint,notnull"`
	EndMinute   int16 `bun:"end_minute,type:smallint,notnull"`
}

type missionMembers20261207 struct {
	bun.BaseModel `bun:"table:mission_members"`

	ID        int64     `bun:"id,pk,autoincrement"`
	MissionID int64     `bun:"mission_id,notnull,unique:mission_members_mission_id_member_id_key"`
	MemberID  int64     `bun:"member_id,notnull,unique:mission_members_mission_id_member_id_key"`
	Status    int16     `bun:"status,type:smallint,notnull"`
	Stake     int64     `bun:"stake,type:bigint,notnull"`
	RateBP    int32     `bun:"rate_bp,type:integer,notnull,default:0"`
	Payout    int64     `bun:"payout,type:bigint,notnull,default:0"`
	JoinedAt  time.Time `bun:"joined_at,notnull"`
	LeftAt    time.Time `bun:"left_at,nullzero"`
}

type missionMembers20261207MySQL struct {
	bun.BaseModel `bun:"table:mission_members"`

	ID        int64     `bun:"id,pk,autoincrement"`
	MissionID int64     `bun:"mission_id,notnull,unique:mission_members_mission_id_member_id_key"`
	MemberID  int64     `bun:"member_id,notnull,unique:mission_members_mission_id_member_id_key"`
	Status    int16     `bun:"status,type:smallint,notnull"`
	Stake     int64     `bun:"stake,type:bigint,notnull"`
	RateBP    int32     `bun:"rate_bp,type:integer,notnull,default:0"`
	Payout    int64     `bun:"payout,type:bigint,notnull,default:0"`
	JoinedAt  time.Time `bun:"joined_at,type:datetime(6),notnull"`
	LeftAt    time.Time `bun:"left_at,type:datetime(6),nullzero"`
}

type missionVerifications20261207 struct {
	bun.BaseModel `bun:"table:mission_verifications"`

	ID        int64     `bun:"id,pk,autoincrement"`
	PublicID  string    `bun:"public_id,type:varchar(32),notnull,unique:mission_verifications_public_id_key"`
	MissionID int64     `bun:"mission_id,notnull,unique:mission_verifications_day_slot_key,unique:mission_verifications_week_slot_key"`
	MemberID  int64     `bun:"member_id,notnull,unique:mission_verifications_day_slot_key,unique:mission_verifications_week_slot_key"`
	ImageID   int64     `bun:"image_id,notnull,unique:mission_verifications_image_id_key"`
	Day       int16     `bun:"day,type:smallint,notnull,unique:mission_verifications_day_slot_key"`
	DaySlot   int16     `bun:"day_slot,type:smallint,notnull,unique:mission_verifications_day_slot_key"`
	Week      int16     `bun:"week,type:smallint,notnull,unique:mission_verifications_week_slot_key"`
	WeekSlot  int16     `bun:"week_slot,type:smallint,notnull,unique:mission_verifications_week_slot_key"`
	Window    int16     `bun:"window_position,type:smallint,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

type missionVerifications20261207MySQL struct {
	bun.BaseModel `bun:"table:mission_verifications"`

	ID        int64     `bun:"id,pk,autoincrement"`
	PublicID  string    `bun:"public_id,type:varchar(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,notnull,unique:mission_verifications_public_id_key"`
	MissionID int64     `bun:"mission_id,notnull,unique:mission_verifications_day_slot_key,unique:mission_verifications_week_slot_key"`
	MemberID  int64     `bun:"member_id,notnull,unique:mission_verifications_day_slot_key,unique:mission_verifications_week_slot_key"`
	ImageID   int64     `bun:"image_id,notnull,unique:mission_verifications_image_id_key"`
	Day       int16     `bun:"day,type:smallint,notnull,unique:mission_verifications_day_slot_key"`
	DaySlot   int16     `bun:"day_slot,type:smallint,notnull,unique:mission_verifications_day_slot_key"`
	Week      int16     `bun:"week,type:smallint,notnull,unique:mission_verifications_week_slot_key"`
	WeekSlot  int16     `bun:"week_slot,type:smallint,notnull,unique:mission_verifications_week_slot_key"`
	Window    int16     `bun:"window_position,type:smallint,notnull"`
	CreatedAt time.Time `bun:"created_at,type:datetime(6),notnull"`
}

type missionReminders20261207 struct {
	bun.BaseModel `bun:"table:mission_reminders"`

	ID        int64     `bun:"id,pk,autoincrement"`
	MissionID int64     `bun:"mission_id,notnull,unique:mission_reminders_key"`
	MemberID  int64     `bun:"member_id,notnull,unique:mission_reminders_key"`
	Day       int16     `bun:"day,type:smallint,notnull,unique:mission_reminders_key"`
	Window    int16     `bun:"window_position,type:smallint,notnull,unique:mission_reminders_key"`
	SentAt    time.Time `bun:"sent_at,notnull"`
}

type missionReminders20261207MySQL struct {
	bun.BaseModel `bun:"table:mission_reminders"`

	ID        int64     `bun:"id,pk,autoincrement"`
	MissionID int64     `bun:"mission_id,notnull,unique:mission_reminders_key"`
	MemberID  int64     `bun:"member_id,notnull,unique:mission_reminders_key"`
	Day       int16     `bun:"day,type:smallint,notnull,unique:mission_reminders_key"`
	Window    int16     `bun:"window_position,type:smallint,notnull,unique:mission_reminders_key"`
	SentAt    time.Time `bun:"sent_at,type:datetime(6),notnull"`
}

// missionsUp creates the mission tables.
func missionsUp(ctx context.Context, bdb *bun.DB) error {
	missions, members := any((*missions20261207)(nil)), any((*missionMembers20261207)(nil))
	verifications, reminders := any((*missionVerifications20261207)(nil)), any((*missionReminders20261207)(nil))
	if bdb.Dialect().Name() == dialect.MySQL {
		missions, members = (*missions20261207MySQL)(nil), (*missionMembers20261207MySQL)(nil)
		verifications, reminders = (*missionVerifications20261207MySQL)(nil), (*missionReminders20261207MySQL)(nil)
	}
	windows := any((*missionWindows20261207)(nil))
	return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		tables := []struct {
			name  string
			model any
			fks   []string
		}{
			{"missions", missions, []string{"(host_id) REFERENCES members (id)"}},
			{"mission_windows", windows, []string{"(mission_id) REFERENCES missions (id)"}},
			{"mission_members", members, []string{"(mission_id) REFERENCES missions (id)", "(member_id) REFERENCES members (id)"}},
			{"mission_verifications", verifications, []string{"(mission_id) REFERENCES missions (id)",
				"(member_id) REFERENCES members (id)", "(image_id) REFERENCES images (id)"}},
			{"mission_reminders", reminders, []string{"(mission_id) REFERENCES missions (id)", "(member_id) REFERENCES members (id)"}},
		}
		for _, t := range tables {
			q := tx.NewCreateTable().Model(t.model)
			for _, fk := range t.fks {
				q = q.ForeignKey(fk)
			}
			if _, err := q.Exec(ctx); err != nil {
				return fmt.Errorf("create table %s: %w", t.name, err)
			}
		}
		for _, idx := range []struct {
			model any
			name  string
			cols  []string
		}{
			// The transitions tick: OPEN missions by start, ONGOING by end.
			{missions, "missions_status_starts_at_idx", []string{"status", "starts_at"}},
			{missions, "missions_status_ends_at_idx", []string{"status", "ends_at"}},
			// The open list, newest first.
			{missions, "missions_status_id_idx", []string{"status", "id"}},
			{missions, "missions_host_id_idx", []string{"host_id"}},
			// A member's missions.
			{members, "mission_members_member_id_idx", []string{"member_id", "mission_id"}},
		} {
			if _, err := tx.NewCreateIndex().Model(idx.model).Index(idx.name).Column(idx.cols...).Exec(ctx); err != nil {
				return fmt.Errorf("create index %s: %w", idx.name, err)
			}
		}
		return nil
	})
}

// missionsDown drops the mission tables, dependants first.
func missionsDown(ctx context.Context, bdb *bun.DB) error {
	for _, t := range []string{"mission_reminders", "mission_verifications", "mission_members", "mission_windows", "missions"} {
		if _, err := bdb.NewDropTable().Table(t).IfExists().Exec(ctx); err != nil {
			return fmt.Errorf("drop table %s: %w", t, err)
		}
	}
	return nil
}
