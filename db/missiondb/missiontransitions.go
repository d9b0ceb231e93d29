package missiondb

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

// DueMission is a mission the transitions tick found due: OPEN with its
// start come, or ONGOING with its end passed.
type DueMission struct {
	Key    int64
	Status domain.MissionStatus
	At     time.Time // the start or the end that is due
}

// DueMissions returns up to limit missions of status (OPEN or ONGOING)
// whose start (OPEN) or end (ONGOING) is at or before now, earliest first,
// after the cursor (at, key) of the previous page (zero for the first).
// However late the tick, every due mission is found: nothing but status
// and time select them, on the (status, starts_at) and (status, ends_at)
// indexes.
func (Missions) DueMissions(ctx context.Context, idb bun.IDB, status domain.MissionStatus, now time.Time, after DueMission, limit int) ([]DueMission, error) {
	col := "starts_at"
	switch status {
	case domain.MissionOpen:
	case domain.MissionOngoing:
		col = "ends_at"
	default:
		return nil, fmt.Errorf("due missions: status %v has no transition", status)
	}
	var rows []struct {
		ID int64     `bun:"id"`
		At time.Time `bun:"at"`
	}
	q := idb.NewSelect().Model((*missionRow)(nil)).
		ColumnExpr("mi.id").ColumnExpr("mi.? AS at", bun.Ident(col)).
		Where("mi.status = ?", int16(status)).
		Where("mi.? <= ?", bun.Ident(col), db.DBTime(now))
	if after.Key > 0 {
		at := db.DBTime(after.At)
		q = q.Where("(mi.? > ? OR (mi.? = ? AND mi.id > ?))", bun.Ident(col), at, bun.Ident(col), at, after.Key)
	}
	err := q.OrderExpr("mi.? ASC, mi.id ASC", bun.Ident(col)).Limit(int64(limit)).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("due missions: %w", db.Translate(err))
	}
	out := make([]DueMission, len(rows))
	for i, r := range rows {
		out[i] = DueMission{Key: r.ID, Status: status, At: r.At.UTC()}
	}
	return out, nil
}

// TransitionMember is one member's part in a transition.
type TransitionMember struct {
	Key      int64  // members.id
	MemberID string // public id
	Status   domain.MissionMemberStatus
	Stake    int64
	// Done is the member's verifications (a close only).
	Done int
	// Payout is what the member got back: the whole stake of a cancelled
	// mission (as Refund), or the close's refund and bonus.
	Payout domain.Payout

	membership int64 // mission_members.id: stake and refund keys
}

// Amount is what the member was paid in all.
func (m TransitionMember) Amount() int64 { return m.Payout.Refund + m.Payout.Bonus }

// MissionTransition is what Transition did to one mission.
type MissionTransition struct {
	// Mission is the mission as read before the transition.
	Mission *domain.Mission
	// To is the status it moved to; zero when nothing was due.
	To domain.MissionStatus
	// Members are its members in ascending members.id, the order their
	// balances were locked in.
	Members []TransitionMember
	// TeamPerfect: every ACTIVE member of a closed mission reached 100 %.
	TeamPerfect bool
}

// Transition moves mission key on if it is due at now: an OPEN mission
// whose start has come to ONGOING, or, with fewer than
// domain.MissionMinMembers ACTIVE members, to CANCELLED with every stake
// refunded; an ONGOING mission whose end has passed to CLOSE with its
// payouts. Run it in a transaction: the version-checked status update comes
// first (the mission row is locked before any balance), then the ledger
// posts in ascending members.id, each under its idempotency key, so a
// mission is paid once however often and however concurrently this runs.
// A mission not due is returned with To zero and nothing written. Errors:
// db.ErrStale when the mission moved since it was read (read again: it is no
// longer due, or due for something else); ENOTFOUND.
func (Missions) Transition(ctx context.Context, idb bun.IDB, key int64, now time.Time) (*MissionTransition, error) {
	var rows []missionRow
	if err := selectMissions(idb, &rows).Where("mi.id = ?", key).Scan(ctx); err != nil {
		return nil, fmt.Errorf("transition mission %d: %w", key, db.Translate(err))
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("transition mission %d: %w", key, errMissionNotFound())
	}
	m := rows[0].toDomain()
	tr := &MissionTransition{Mission: &m}
	switch {
	case m.Status == domain.MissionOpen && !m.Schedule.StartsAt.IsZero() && !m.Schedule.StartsAt.After(now):
		members, err := transitionMembers(ctx, idb, m.Key)
		if err != nil {
			return nil, err
		}
		tr.Members = members
		if len(members) >= domain.MissionMinMembers {
			tr.To = domain.MissionOngoing
			return tr, transitionStatus(ctx, idb, &m, tr.To, now)
		}
		tr.To = domain.MissionCancelled
		if err := transitionStatus(ctx, idb, &m, tr.To, now); err != nil {
			return nil, err
		}
		for i := range tr.Members {
			mm := &tr.Members[i]
			mm.Payout.Refund = mm.Stake
			if err := transitionPost(ctx, idb, &m, mm.Key, mm.Stake, domain.PointRefund, refundKey(mm.membership), now); err != nil {
				return nil, err
			}
		}
		return tr, nil
	case m.Status == domain.MissionOngoing && !m.EndsAt.IsZero() && !m.EndsAt.After(now):
		return tr, closeTransition(ctx, idb, tr, now)
	}
	return tr, nil
}

// closeTransition closes tr.Mission: rates, payouts, ledger posts.
func closeTransition(ctx context.Context, idb bun.IDB, tr *MissionTransition, now time.Time) error {
	m := tr.Mission
	tr.To = domain.MissionClose
	if err := transitionStatus(ctx, idb, m, tr.To, now); err != nil {
		return err
	}
	all, err := transitionMembers(ctx, idb, m.Key, domain.MissionMemberActive, domain.MissionMemberLeft)
	if err != nil {
		return err
	}
	counts, err := closeCounts(ctx, idb, m.Key)
	if err != nil {
		return err
	}
	required := m.Schedule.Required()
	var active []int
	for i := range all {
		mm := &all[i]
		mm.Done = counts[mm.Key]
		mm.Payout.RateBP = domain.RateBP(mm.Done, required)
		if mm.Status == domain.MissionMemberActive {
			active = append(active, mm.Payout.RateBP)
		}
	}
	tr.TeamPerfect = domain.TeamPerfect(active)
	tr.Members = all
	for i := range all {
		mm := &all[i]
		// A member who left after the start forfeits the stake and does
		// not count in the team's average.
		if mm.Status == domain.MissionMemberActive {
			mm.Payout = domain.PayoutFor(mm.Stake, mm.Payout.RateBP, tr.TeamPerfect)
		}
		_, err := idb.NewUpdate().Model((*missionMemberRow)(nil)).
			Set("rate_bp = ?", mm.Payout.RateBP).
			Set("payout = ?", mm.Amount()).
			Where("id = ?", mm.membership).
			Exec(ctx)
		if err != nil {
			return fmt.Errorf("close mission %s: member %s: %w", m.ID, mm.MemberID, db.Translate(err))
		}
		if err := transitionPost(ctx, idb, m, mm.Key, mm.Payout.Refund, domain.PointRefund, payoutKey(m.Key, mm.Key), now); err != nil {
			return err
		}
		if err := transitionPost(ctx, idb, m, mm.Key, mm.Payout.Bonus, domain.PointBonus, bonusKey(m.Key, mm.Key), now); err != nil {
			return err
		}
	}
	return nil
}

// transitionStatus moves m from the status it was read with to status,
// version-checked. Errors: db.ErrStale.
func transitionStatus(ctx context.Context, idb bun.IDB, m *domain.Mission, status domain.MissionStatus, now time.Time) error {
	q := bumpMission(idb, m, now).Set("status = ?", int16(status)).Where("status = ?", int16(m.Status))
	if status == domain.MissionClose {
		q = q.Set("closed_at = ?", db.DBTime(now))
	}
	if err := db.ExecBumped(ctx, q, fmt.Sprintf("mission %s to %v", m.ID, status)); err != nil {
		return err
	}
	m.Version++
	return nil
}

// transitionPost credits amount (if any) to member key under
// idempotency key k.
func transitionPost(ctx context.Context, idb bun.IDB, m *domain.Mission, member, amount int64, kind domain.PointKind, k string, now time.Time) error {
	if amount <= 0 {
		return nil
	}
	_, err := (Points{}).Post(ctx, idb, PointPost{MemberKey: member, Amount: amount, Kind: kind,
		MissionKey: m.Key, Key: k, Now: now})
	if err != nil {
		return fmt.Errorf("mission %s: %v for member %d: %w", m.ID, kind, member, err)
	}
	return nil
}

// transitionMembers returns the mission's members of the statuses (ACTIVE
// when none is given) in ascending members.id, the order balances are
// locked in.
func transitionMembers(ctx context.Context, idb bun.IDB, missionKey int64, statuses ...domain.MissionMemberStatus) ([]TransitionMember, error) {
	if len(statuses) == 0 {
		statuses = []domain.MissionMemberStatus{domain.MissionMemberActive}
	}
	st := make([]int16, len(statuses))
	for i, s := range statuses {
		st[i] = int16(s)
	}
	var rows []missionMemberRow
	err := idb.NewSelect().Model(&rows).
		ColumnExpr("mm.*").
		ColumnExpr("m.public_id AS member_public_id").
		Join("JOIN members AS m ON m.id = mm.member_id").
		Where("mm.mission_id = ?", missionKey).
		Where("mm.status IN (?)", bun.In(st)).
		OrderExpr("mm.member_id ASC").
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("mission %d members: %w", missionKey, db.Translate(err))
	}
	out := make([]TransitionMember, len(rows))
	for i, r := range rows {
		out[i] = TransitionMember{Key: r.MemberID, MemberID: r.MemberPublicID, Status: domain.MissionMemberStatus(r.Status),
			Stake: r.Stake, membership: r.ID}
	}
	return out, nil
}

// closeCounts returns each member's verifications of the mission, by
// members.id.
func closeCounts(ctx context.Context, idb bun.IDB, missionKey int64) (map[int64]int, error) {
	var rows []struct {
		MemberID int64 `bun:"member_id"`
		N        int   `bun:"n"`
	}
	err := idb.NewSelect().Model((*missionVerificationRow)(nil)).
		ColumnExpr("mv.member_id").ColumnExpr("COUNT(*) AS n").
		Where("mv.mission_id = ?", missionKey).
		GroupExpr("mv.member_id").
		Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("mission %d verification counts: %w", missionKey, db.Translate(err))
	}
	out := make(map[int64]int, len(rows))
	for _, r := range rows {
		out[r.MemberID] = r.N
	}
	return out, nil
}

// verifyReminderRow is a row of mission_reminders: a verify reminder that
// went out.
type verifyReminderRow struct {
	bun.BaseModel `bun:"table:mission_reminders,alias:mr"`

	ID        int64     `bun:"id,pk,autoincrement"`
	MissionID int64     `bun:"mission_id,notnull"`
	MemberID  int64     `bun:"member_id,notnull"`
	Day       int16     `bun:"day,notnull"`
	Window    int16     `bun:"window_position,notnull"`
	SentAt    time.Time `bun:"sent_at,notnull"`
}

// VerifyReminder is one window of one ONGOING mission that closes soon.
type VerifyReminder struct {
	Mission  domain.Mission // without windows
	Day      int            // the mission day the window is on
	Window   int            // the window's position
	ClosesAt time.Time
}

// VerifyRemindersDue returns the windows of ONGOING missions that are open
// at now and close within before of it (days and windows read in loc):
// a window is reminded of from max(its start, its close − before) until
// it closes, so a late tick still sends and one outside that span never
// does. A window is always inside one local day, so one that closes after
// midnight belongs to tomorrow and has not opened yet.
func (Missions) VerifyRemindersDue(ctx context.Context, idb bun.IDB, now time.Time, loc *time.Location, before time.Duration) ([]VerifyReminder, error) {
	nowMin := domain.MinuteOfDay(now, loc)
	var ws []struct {
		MissionID int64 `bun:"mission_id"`
		Position  int16 `bun:"position"`
		StartMin  int16 `bun:"start_minute"`
		EndMin    int16 `bun:"end_minute"`
	}
	err := idb.NewSelect().Model((*missionWindowRow)(nil)).
		ColumnExpr("mw.mission_id, mw.position, mw.start_minute, mw.end_minute").
		Join("JOIN missions AS mi ON mi.id = mw.mission_id").
		Where("mi.status = ?", int16(domain.MissionOngoing)).
		Where("mi.starts_at <= ?", db.DBTime(now)).
		Where("mi.ends_at > ?", db.DBTime(now)).
		Where("mw.start_minute <= ?", nowMin).
		Where("mw.end_minute > ?", nowMin).
		Where("mw.end_minute <= ?", nowMin+int(before.Minutes())+1).
		OrderExpr("mw.mission_id ASC, mw.position ASC").
		Scan(ctx, &ws)
	if err != nil {
		return nil, fmt.Errorf("verify reminders due: %w", db.Translate(err))
	}
	if len(ws) == 0 {
		return nil, nil
	}
	keys := make([]int64, 0, len(ws))
	for _, w := range ws {
		if len(keys) == 0 || keys[len(keys)-1] != w.MissionID {
			keys = append(keys, w.MissionID)
		}
	}
	var rows []missionRow
	if err := selectMissions(idb, &rows).Where("mi.id IN (?)", bun.In(keys)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("verify reminders due: %w", db.Translate(err))
	}
	missions := make(map[int64]domain.Mission, len(rows))
	for i := range rows {
		missions[rows[i].ID] = rows[i].toDomain()
	}
	var out []VerifyReminder
	for _, r := range ws {
		m, ok := missions[r.MissionID]
		if !ok {
			continue
		}
		day := m.Schedule.Day(now, loc)
		midnight := m.Schedule.DayStart(day, loc).In(loc)
		opens := time.Date(midnight.Year(), midnight.Month(), midnight.Day(), 0, int(r.StartMin), 0, 0, loc)
		closes := time.Date(midnight.Year(), midnight.Month(), midnight.Day(), 0, int(r.EndMin), 0, 0, loc)
		if now.Before(opens) || now.Before(closes.Add(-before)) || !now.Before(closes) {
			continue
		}
		out = append(out, VerifyReminder{Mission: m, Day: day, Window: int(r.Position), ClosesAt: closes.UTC()})
	}
	return out, nil
}

// MarkVerifyReminder records that reminder r goes to the mission's ACTIVE
// members who have not verified on its day and have not had it, and
// returns their public ids. Run it in the transaction that creates their
// notifications. Errors: ECONFLICT when a concurrent transaction marked one
// of them first (roll back: that one is sending them).
func (Missions) MarkVerifyReminder(ctx context.Context, idb bun.IDB, r *VerifyReminder, now time.Time) ([]string, error) {
	var members []struct {
		ID       int64  `bun:"member_id"`
		PublicID string `bun:"public_id"`
	}
	err := idb.NewSelect().Model((*missionMemberRow)(nil)).
		ColumnExpr("mm.member_id, m.public_id").
		Join("JOIN members AS m ON m.id = mm.member_id").
		Where("mm.mission_id = ?", r.Mission.Key).
		Where("mm.status = ?", int16(domain.MissionMemberActive)).
		Where("m.deleted_at IS NULL").
		Where("NOT EXISTS (SELECT 1 FROM mission_verifications AS mv WHERE mv.mission_id = mm.mission_id AND mv.member_id = mm.member_id AND mv.day = ?)", r.Day).
		Where("NOT EXISTS (SELECT 1 FROM mission_reminders AS mr WHERE mr.mission_id = mm.mission_id AND mr.member_id = mm.member_id AND mr.day = ? AND mr.window_position = ?)", r.Day, r.Window).
		OrderExpr("mm.member_id ASC").
		Scan(ctx, &members)
	if err != nil {
		return nil, fmt.Errorf("mark verify reminder of mission %s: %w", r.Mission.ID, db.Translate(err))
	}
	if len(members) == 0 {
		return nil, nil
	}
	rows := make([]verifyReminderRow, len(members))
	out := make([]string, len(members))
	for i, m := range members {
		rows[i] = verifyReminderRow{MissionID: r.Mission.Key, MemberID: m.ID, Day: int16(r.Day), Window: int16(r.Window), SentAt: db.DBTime(now)}
		out[i] = m.PublicID
	}
	if _, err := idb.NewInsert().Model(&rows).Exec(ctx); err != nil {
		return nil, fmt.Errorf("mark verify reminder of mission %s: %w", r.Mission.ID, db.Translate(err))
	}
	return out, nil
}
