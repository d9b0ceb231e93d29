// Package missiondb stores missions (Octopus) and the point wallet their
// stakes and refunds are posted to: creation and joins, the list, photo
// verifications, the midnight transitions with their payouts, and the
// ledger. It builds on db for transactions, error mapping and members.
package missiondb

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

// missionRow is a row of missions, with the host's public id and nickname
// joined in.
type missionRow struct {
	bun.BaseModel `bun:"table:missions,alias:mi"`

	ID          int64     `bun:"id,pk,autoincrement"`
	PublicID    string    `bun:"public_id,notnull"`
	Code        string    `bun:"code,notnull"`
	HostID      int64     `bun:"host_id,notnull"`
	Title       string    `bun:"title,notnull"`
	Type        int16     `bun:"type,notnull"`
	Description string    `bun:"description,notnull"`
	Stake       int64     `bun:"stake,notnull"`
	Capacity    int16     `bun:"capacity,notnull"`
	MemberCount int16     `bun:"member_count,notnull"`
	Private     bool      `bun:"private,notnull"`
	Status      int16     `bun:"status,notnull"`
	StartsAt    time.Time `bun:"starts_at,nullzero"`
	EndsAt      time.Time `bun:"ends_at,nullzero"`
	Weeks       int16     `bun:"weeks,notnull"`
	DaysPerWeek int16     `bun:"days_per_week,notnull"`
	PerDay      int16     `bun:"per_day,notnull"`
	Version     int64     `bun:"version,notnull"`
	ClosedAt    time.Time `bun:"closed_at,nullzero"`
	CreatedAt   time.Time `bun:"created_at,notnull"`
	UpdatedAt   time.Time `bun:"updated_at,notnull"`

	HostPublicID string `bun:"host_public_id,scanonly"`
	HostNickname string `bun:"host_nickname,scanonly"`
}

func (r *missionRow) toDomain() domain.Mission {
	return domain.Mission{
		ID:          r.PublicID,
		Key:         r.ID,
		Code:        r.Code,
		HostID:      r.HostPublicID,
		Host:        r.HostNickname,
		Title:       r.Title,
		Type:        domain.MissionType(r.Type),
		Description: r.Description,
		Stake:       r.Stake,
		Capacity:    int(r.Capacity),
		MemberCount: int(r.MemberCount),
		Private:     r.Private,
		Status:      domain.MissionStatus(r.Status),
		Schedule: domain.MissionSchedule{
			StartsAt:    db.UTCOrZero(r.StartsAt),
			Weeks:       int(r.Weeks),
			DaysPerWeek: int(r.DaysPerWeek),
			PerDay:      int(r.PerDay),
		},
		EndsAt:    db.UTCOrZero(r.EndsAt),
		Version:   r.Version,
		ClosedAt:  db.UTCOrZero(r.ClosedAt),
		CreatedAt: r.CreatedAt.UTC(),
		UpdatedAt: r.UpdatedAt.UTC(),
	}
}

// missionWindowRow is a row of mission_windows.
type missionWindowRow struct {
	bun.BaseModel `bun:"table:mission_windows,alias:mw"`

	ID          int64 `bun:"id,pk,autoincrement"`
	MissionID   int64 `bun:"mission_id,notnull"`
	Position    int16 `bun:"position,notnull"`
	StartMinute int16 `bun:"start_minute,notnull"`
	EndMinute   int16 `bun:"end_minute,notnull"`
}

// missionMemberRow is a row of mission_members, with the member's public
// id and nickname joined in.
type missionMemberRow struct {
	bun.BaseModel `bun:"table:mission_members,alias:mm"`

	ID        int64     `bun:"id,pk,autoincrement"`
	MissionID int64     `bun:"mission_id,notnull"`
	MemberID  int64     `bun:"member_id,notnull"`
	Status    int16     `bun:"status,notnull"`
	Stake     int64     `bun:"stake,notnull"`
	RateBP    int32     `bun:"rate_bp,notnull"`
	Payout    int64     `bun:"payout,notnull"`
	JoinedAt  time.Time `bun:"joined_at,notnull"`
	LeftAt    time.Time `bun:"left_at,nullzero"`

	MemberPublicID string `bun:"member_public_id,scanonly"`
	Nickname       string `bun:"nickname,scanonly"`
}

// toDomain needs the host's public id, which m.HostID of the mission read
// before already holds, so listing members costs no query for it.
func (r *missionMemberRow) toDomain(hostID string) domain.MissionMember {
	return domain.MissionMember{
		Key:      r.ID,
		MemberID: r.MemberPublicID,
		Nickname: r.Nickname,
		Host:     r.MemberPublicID == hostID,
		Status:   domain.MissionMemberStatus(r.Status),
		Stake:    r.Stake,
		RateBP:   int(r.RateBP),
		Payout:   r.Payout,
		JoinedAt: r.JoinedAt.UTC(),
		LeftAt:   db.UTCOrZero(r.LeftAt),
	}
}

// missionVerificationRow is a row of mission_verifications.
type missionVerificationRow struct {
	bun.BaseModel `bun:"table:mission_verifications,alias:mv"`

	ID        int64     `bun:"id,pk,autoincrement"`
	PublicID  string    `bun:"public_id,notnull"`
	MissionID int64     `bun:"mission_id,notnull"`
	MemberID  int64     `bun:"member_id,notnull"`
	ImageID   int64     `bun:"image_id,notnull"`
	Day       int16     `bun:"day,notnull"`
	DaySlot   int16     `bun:"day_slot,notnull"`
	Week      int16     `bun:"week,notnull"`
	WeekSlot  int16     `bun:"week_slot,notnull"`
	Window    int16     `bun:"window_position,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

func errMissionNotFound() error {
	return &domain.Error{Code: domain.ENOTFOUND, Message: "Mission not found."}
}

// Missions is the store of missions, their windows, members and
// verifications. Every change of a mission's status, schedule or
// member_count bumps its version, so a version-checked update tells a
// writer whether the mission moved since it read it.
type Missions struct{}

// selectMissions is the query of missions with their hosts joined in.
func selectMissions(idb bun.IDB, rows *[]missionRow) *bun.SelectQuery {
	return idb.NewSelect().Model(rows).
		ColumnExpr("mi.*").
		ColumnExpr("h.public_id AS host_public_id").
		ColumnExpr("h.nickname AS host_nickname").
		Join("JOIN members AS h ON h.id = mi.host_id")
}

// FindByID returns the mission with public id id and its windows (by
// start). Read it before anything that depends on its version.
// Errors: ENOTFOUND.
func (Missions) FindByID(ctx context.Context, idb bun.IDB, id string) (*domain.Mission, error) {
	return findMission(ctx, idb, "mi.public_id = ?", id)
}

// FindByKey is FindByID by row id.
func (Missions) FindByKey(ctx context.Context, idb bun.IDB, key int64) (*domain.Mission, error) {
	return findMission(ctx, idb, "mi.id = ?", key)
}

// FindByCode is FindByID by join code.
func (Missions) FindByCode(ctx context.Context, idb bun.IDB, code string) (*domain.Mission, error) {
	return findMission(ctx, idb, "mi.code = ?", code)
}

func findMission(ctx context.Context, idb bun.IDB, where string, arg any) (*domain.Mission, error) {
	var rows []missionRow
	if err := selectMissions(idb, &rows).Where(where, arg).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find mission %v: %w", arg, db.Translate(err))
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("find mission %v: %w", arg, errMissionNotFound())
	}
	m := rows[0].toDomain()
	ws, err := missionWindows(ctx, idb, []int64{m.Key})
	if err != nil {
		return nil, fmt.Errorf("find mission %s: %w", m.ID, err)
	}
	m.Windows = ws[m.Key]
	return &m, nil
}

// missionWindows returns the windows of each mission, by start.
func missionWindows(ctx context.Context, idb bun.IDB, keys []int64) (map[int64][]domain.MissionWindow, error) {
	out := make(map[int64][]domain.MissionWindow, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	var rows []missionWindowRow
	err := idb.NewSelect().Model(&rows).Where("mission_id IN (?)", bun.In(keys)).
		OrderExpr("mission_id, start_minute").Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("mission windows: %w", db.Translate(err))
	}
	for _, r := range rows {
		out[r.MissionID] = append(out[r.MissionID], domain.MissionWindow{Start: int(r.StartMinute), End: int(r.EndMinute)})
	}
	return out, nil
}

// Members returns the mission's members (ACTIVE and LEFT), the host first,
// then in joining order.
func (Missions) Members(ctx context.Context, idb bun.IDB, m *domain.Mission) ([]domain.MissionMember, error) {
	var rows []missionMemberRow
	err := idb.NewSelect().Model(&rows).
		ColumnExpr("mm.*").
		ColumnExpr("m.public_id AS member_public_id").
		ColumnExpr("m.nickname AS nickname").
		Join("JOIN members AS m ON m.id = mm.member_id").
		Where("mm.mission_id = ?", m.Key).
		OrderExpr("mm.joined_at ASC, mm.id ASC").
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("mission %s members: %w", m.ID, db.Translate(err))
	}
	out := make([]domain.MissionMember, 0, len(rows))
	for _, r := range rows {
		mm := r.toDomain(m.HostID)
		if mm.Host {
			out = append([]domain.MissionMember{mm}, out...)
			continue
		}
		out = append(out, mm)
	}
	return out, nil
}

// bumpMission starts the version-checked update of mission m as it was
// read; run it with db.ExecBumped, which answers db.ErrStale when m moved.
func bumpMission(idb bun.IDB, m *domain.Mission, now time.Time) *bun.UpdateQuery {
	return idb.NewUpdate().Model((*missionRow)(nil)).
		Set("version = version + 1").
		Set("updated_at = ?", db.DBTime(now)).
		Where("id = ?", m.Key).
		Where("version = ?", m.Version)
}

// Stake keys: one STAKE and at most one REFUND of it per membership row
// (a member who leaves before the start and joins again has a new row, so
// a new stake), and one payout REFUND and one BONUS per mission and member.
func stakeKey(membershipKey int64) string  { return fmt.Sprintf("mission-stake:%d", membershipKey) }
func refundKey(membershipKey int64) string { return fmt.Sprintf("mission-refund:%d", membershipKey) }
func payoutKey(missionKey, memberKey int64) string {
	return fmt.Sprintf("mission-payout:%d:%d", missionKey, memberKey)
}
func bonusKey(missionKey, memberKey int64) string {
	return fmt.Sprintf("mission-bonus:%d:%d", missionKey, memberKey)
}
