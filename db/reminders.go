package db

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/domain"
)

// reminderRow is a row of room_reminders: a reminder that went out.
type reminderRow struct {
	bun.BaseModel `bun:"table:room_reminders,alias:rr"`

	ID       int64     `bun:"id,pk,autoincrement"`
	RoomID   int64     `bun:"room_id,notnull"`
	MemberID int64     `bun:"member_id,notnull"`
	Kind     int16     `bun:"kind,notnull"`
	SentAt   time.Time `bun:"sent_at,notnull"`
}

// Reminders is the store of the group-run reminders' sent markers.
type Reminders struct{}

// RoomsStarting returns the rooms of the categories, not cancelled, that
// start in [from, to), soonest first, without their participants (read
// those with Rooms.FindByKey for the rooms that are due).
func (Reminders) RoomsStarting(ctx context.Context, idb bun.IDB, cats []domain.Category, from, to time.Time) ([]domain.Room, error) {
	if len(cats) == 0 {
		return nil, nil
	}
	cs := make([]int16, len(cats))
	for i, c := range cats {
		cs[i] = int16(c)
	}
	var rows []roomRow
	err := selectRooms(idb, &rows).
		Where("r.category IN (?)", bun.In(cs)).
		Where("r.deleted_at IS NULL").
		Where("r.starts_at >= ?", dbTime(from)).
		Where("r.starts_at < ?", dbTime(to)).
		OrderExpr("r.starts_at ASC, r.id ASC").
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("rooms starting: %w", translate(err))
	}
	out := make([]domain.Room, len(rows))
	for i := range rows {
		out[i] = rows[i].toDomain()
	}
	return out, nil
}

// Mark records that the reminder of kind for room r goes to the members
// (public ids) who have not had it yet, and returns those, in the order
// given; members whose account is gone are left out. Run it in the
// transaction that creates their notifications. Errors: ECONFLICT when a
// concurrent transaction marked one of them first (roll back: that one is
// sending them).
func (Reminders) Mark(ctx context.Context, idb bun.IDB, r *domain.Room, kind domain.ReminderKind, memberIDs []string, now time.Time) ([]string, error) {
	if len(memberIDs) == 0 {
		return nil, nil
	}
	var members []memberRow
	err := idb.NewSelect().Model(&members).Column("id", "public_id").
		Where("public_id IN (?)", bun.In(memberIDs)).Where("deleted_at IS NULL").
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("mark reminders: %w", translate(err))
	}
	keyOf := make(map[string]int64, len(members))
	for _, m := range members {
		keyOf[m.PublicID] = m.ID
	}
	var sent []int64
	err = idb.NewSelect().Model((*reminderRow)(nil)).Column("rr.member_id").
		Where("rr.room_id = ?", r.Key).Where("rr.kind = ?", int16(kind)).
		Scan(ctx, &sent)
	if err != nil {
		return nil, fmt.Errorf("mark reminders: %w", translate(err))
	}
	had := make(map[int64]bool, len(sent))
	for _, k := range sent {
		had[k] = true
	}
	var rows []reminderRow
	var out []string
	for _, id := range memberIDs {
		k, ok := keyOf[id]
		if !ok || had[k] {
			continue
		}
		had[k] = true
		rows = append(rows, reminderRow{RoomID: r.Key, MemberID: k, Kind: int16(kind), SentAt: dbTime(now)})
		out = append(out, id)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	if _, err := idb.NewInsert().Model(&rows).Exec(ctx); err != nil {
		return nil, fmt.Errorf("mark reminders: %w", translate(err))
	}
	return out, nil
}
