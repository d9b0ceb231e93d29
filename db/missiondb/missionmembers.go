package missiondb

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

// Lock order of every mission change: the mission row first (its
// version-checked update), then membership rows, then point balances in
// ascending member row id (Points.Post), so no two transactions wait on
// each other in a circle.

// missionCodeTries bounds the draws of a fresh join code: with 32^8 codes
// a second draw is already rare.
const missionCodeTries = 8

// newMissionCode draws a join code from domain.MissionCodeAlphabet.
func newMissionCode() string {
	b := make([]byte, domain.MissionCodeLen)
	_, _ = crand.Read(b) // crypto/rand.Read never fails (Go 1.24)
	for i := range b {
		b[i] = domain.MissionCodeAlphabet[int(b[i])%len(domain.MissionCodeAlphabet)]
	}
	return string(b)
}

// freshMissionCode draws codes until one is not taken. A mission created
// with the same code between this read and the insert fails the insert on
// the unique key (a conflict the caller may retry): checking first keeps a
// PostgreSQL transaction from being aborted by the expected collision.
func freshMissionCode(ctx context.Context, idb bun.IDB) (string, error) {
	for range missionCodeTries {
		code := newMissionCode()
		n, err := idb.NewSelect().Model((*missionRow)(nil)).Where("code = ?", code).Count(ctx)
		if err != nil {
			return "", fmt.Errorf("mission code: %w", db.Translate(err))
		}
		if n == 0 {
			return code, nil
		}
	}
	return "", fmt.Errorf("mission code: %d draws all taken", missionCodeTries)
}

// Create stores m, hosted by m.HostID (a public id), with a fresh join
// code; the host becomes its first ACTIVE member and stakes m.Stake, in
// idb, which must be a transaction (the stake rolls back with the mission).
// m is OPEN when its schedule and windows are complete (m.Ready), else
// UNACTIVATED. The caller has validated m, its schedule and windows, and
// set m.EndsAt and m.CreatedAt. Create sets m's ids, code, status, counts,
// version, host nickname and times.
// Errors: ENOTFOUND for an unknown host; EINSUFFICIENTPOINTS.
func (Missions) Create(ctx context.Context, idb bun.IDB, m *domain.Mission) error {
	host, err := db.MemberKey(ctx, idb, m.HostID)
	if err != nil {
		return fmt.Errorf("create mission for %s: %w", m.HostID, err)
	}
	code, err := freshMissionCode(ctx, idb)
	if err != nil {
		return fmt.Errorf("create mission: %w", err)
	}
	status := domain.MissionUnactivated
	if m.Ready() {
		status = domain.MissionOpen
	}
	now := db.DBTime(m.CreatedAt)
	row := missionRow{
		PublicID: db.NewPublicID(), Code: code, HostID: host, Title: m.Title, Type: int16(m.Type),
		Description: m.Description, Stake: m.Stake, Capacity: int16(m.Capacity), MemberCount: 1,
		Private: m.Private, Status: int16(status), Version: 1, CreatedAt: now, UpdatedAt: now,
	}
	if m.Schedule.Set() {
		row.StartsAt, row.EndsAt = db.DBTime(m.Schedule.StartsAt), db.DBTime(m.EndsAt)
		row.Weeks, row.DaysPerWeek, row.PerDay = int16(m.Schedule.Weeks), int16(m.Schedule.DaysPerWeek), int16(m.Schedule.PerDay)
	}
	if _, err := idb.NewInsert().Model(&row).Exec(ctx); err != nil {
		return fmt.Errorf("create mission: %w", db.Translate(err))
	}
	if err := insertWindows(ctx, idb, row.ID, m.Windows); err != nil {
		return fmt.Errorf("create mission %s: %w", row.PublicID, err)
	}
	if _, err := addMember(ctx, idb, &row, host, now); err != nil {
		return fmt.Errorf("create mission %s: %w", row.PublicID, err)
	}
	found, err := findMission(ctx, idb, "mi.id = ?", row.ID)
	if err != nil {
		return err
	}
	*m = *found
	return nil
}

// insertWindows stores ws as mission key's windows, positions in order.
func insertWindows(ctx context.Context, idb bun.IDB, key int64, ws []domain.MissionWindow) error {
	if len(ws) == 0 {
		return nil
	}
	rows := make([]missionWindowRow, len(ws))
	for i, w := range ws {
		rows[i] = missionWindowRow{MissionID: key, Position: int16(i), StartMinute: int16(w.Start), EndMinute: int16(w.End)}
	}
	if _, err := idb.NewInsert().Model(&rows).Exec(ctx); err != nil {
		return fmt.Errorf("windows: %w", db.Translate(err))
	}
	return nil
}

// addMember inserts member's ACTIVE row in mission row and posts its stake
// keyed by the row. Errors: EALREADYJOINED, EINSUFFICIENTPOINTS.
func addMember(ctx context.Context, idb bun.IDB, mission *missionRow, member int64, now time.Time) (*missionMemberRow, error) {
	mm := missionMemberRow{MissionID: mission.ID, MemberID: member, Status: int16(domain.MissionMemberActive),
		Stake: mission.Stake, JoinedAt: now}
	if _, err := idb.NewInsert().Model(&mm).Exec(ctx); err != nil {
		err = db.Translate(err)
		if domain.ErrorCode(err) == domain.ECONFLICT {
			return nil, &domain.Error{Code: domain.EALREADYJOINED, Message: "You are already in this mission.", Err: err}
		}
		return nil, fmt.Errorf("add member: %w", err)
	}
	_, err := (Points{}).Post(ctx, idb, PointPost{
		MemberKey: member, Amount: -mission.Stake, Kind: domain.PointStake, MissionKey: mission.ID,
		Key: stakeKey(mm.ID), Reason: mission.Title, Now: now,
	})
	if err != nil {
		return nil, fmt.Errorf("stake: %w", err)
	}
	return &mm, nil
}

// membership is member's row in mission m, nil when there is none.
func membership(ctx context.Context, idb bun.IDB, m *domain.Mission, member int64) (*missionMemberRow, error) {
	var rows []missionMemberRow
	err := idb.NewSelect().Model(&rows).Where("mm.mission_id = ?", m.Key).Where("mm.member_id = ?", member).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("membership in %s: %w", m.ID, db.Translate(err))
	}
	if len(rows) == 0 {
		return nil, nil
	}
	return &rows[0], nil
}

// Join makes memberID (a public id) an ACTIVE member of m, as the caller
// read it in this transaction, and takes their stake, in idb, which must be
// a transaction: without the points everything rolls back. The seat is
// taken by `member_count + 1 WHERE member_count < capacity AND status =
// OPEN AND version = ?`, so concurrent joins never overfill it. The caller
// checked the join code. It returns the membership and the member's new
// balance. Errors: EMISSIONNOTOPEN, EMISSIONFULL, EALREADYJOINED,
// EINSUFFICIENTPOINTS, ENOTFOUND (unknown member), db.ErrStale when m moved
// since it was read (read again and retry: RetryStale).
func (Missions) Join(ctx context.Context, idb bun.IDB, m *domain.Mission, memberID string, now time.Time) (*domain.MissionMember, int64, error) {
	var who db.MemberRow
	err := idb.NewSelect().Model(&who).Column("id", "nickname").
		Where("public_id = ?", memberID).Where("deleted_at IS NULL").Scan(ctx)
	if err != nil {
		if err = db.Translate(err); domain.ErrorCode(err) == domain.ENOTFOUND {
			err = db.ErrMemberNotFound()
		}
		return nil, 0, fmt.Errorf("join mission %s: %w", m.ID, err)
	}
	member := who.ID
	if mm, err := membership(ctx, idb, m, member); err != nil {
		return nil, 0, err
	} else if mm != nil {
		return nil, 0, domain.Errorf(domain.EALREADYJOINED, "You are already in this mission.")
	}
	if err := m.Joinable(now); err != nil {
		return nil, 0, err
	}
	q := bumpMission(idb, m, now).
		Set("member_count = member_count + 1").
		Where("member_count < capacity").
		Where("status = ?", int16(domain.MissionOpen))
	if err := db.ExecBumped(ctx, q, "join mission "+m.ID); err != nil {
		return nil, 0, err
	}
	row := missionRow{ID: m.Key, Stake: m.Stake, Title: m.Title}
	mm, err := addMember(ctx, idb, &row, member, db.DBTime(now))
	if err != nil {
		return nil, 0, fmt.Errorf("join mission %s: %w", m.ID, err)
	}
	balance, err := (Points{}).Balance(ctx, idb, member)
	if err != nil {
		return nil, 0, err
	}
	m.Version++
	m.MemberCount++
	out := mm.toDomain(m.HostID)
	out.MemberID, out.Nickname, out.Host = memberID, who.Nickname, false
	return &out, balance, nil
}

// Leave takes memberID (a public id) out of m as the caller read it, in
// idb (a transaction). Before the start the row goes and the stake is
// refunded; once ONGOING the row stays as LEFT and the stake is forfeit.
// Between the start and the tick that moves m on nobody leaves: whether
// stakes are kept depends on whether the mission starts at all.
// It returns the refund (0 when forfeit) and the member's balance.
// Errors: ENOTPARTICIPATING, EHOSTCANNOTLEAVE, EMISSIONNOTOPEN, db.ErrStale.
func (Missions) Leave(ctx context.Context, idb bun.IDB, m *domain.Mission, memberID string, now time.Time) (refund, balance int64, err error) {
	mm, err := activeMember(ctx, idb, m, memberID)
	if err != nil {
		return 0, 0, err
	}
	if m.BeforeStart(now) {
		if refund, err = dropMember(ctx, idb, m, mm, now); err != nil {
			return 0, 0, err
		}
	} else if err := forfeit(ctx, idb, m, mm, now); err != nil {
		return 0, 0, err
	}
	balance, err = (Points{}).Balance(ctx, idb, mm.MemberID)
	return refund, balance, err
}

// forfeit marks mm LEFT in an ONGOING mission; the stake stays staked.
func forfeit(ctx context.Context, idb bun.IDB, m *domain.Mission, mm *missionMemberRow, now time.Time) error {
	if m.Status != domain.MissionOngoing {
		return domain.ErrMissionNotOpen(m, now)
	}
	q := bumpMission(idb, m, now).Set("member_count = member_count - 1").
		Where("status = ?", int16(domain.MissionOngoing))
	if err := db.ExecBumped(ctx, q, "leave mission "+m.ID); err != nil {
		return err
	}
	if _, err := idb.NewUpdate().Model((*missionMemberRow)(nil)).
		Set("status = ?", int16(domain.MissionMemberLeft)).Set("left_at = ?", db.DBTime(now)).
		Where("id = ?", mm.ID).Where("status = ?", int16(domain.MissionMemberActive)).
		Exec(ctx); err != nil {
		return fmt.Errorf("leave mission %s: %w", m.ID, db.Translate(err))
	}
	m.Version++
	m.MemberCount--
	return nil
}

// Remove is the host's removal of memberID (a public id) from m before the
// start; their stake is refunded. It returns the refund.
// Errors: ENOTPARTICIPATING, EHOSTCANNOTLEAVE, EMISSIONNOTOPEN, db.ErrStale.
func (Missions) Remove(ctx context.Context, idb bun.IDB, m *domain.Mission, memberID string, now time.Time) (int64, error) {
	mm, err := activeMember(ctx, idb, m, memberID)
	if err != nil {
		return 0, err
	}
	if !m.BeforeStart(now) {
		return 0, domain.ErrMissionNotOpen(m, now)
	}
	return dropMember(ctx, idb, m, mm, now)
}

// activeMember is memberID's ACTIVE row in m, which must not be the host's.
func activeMember(ctx context.Context, idb bun.IDB, m *domain.Mission, memberID string) (*missionMemberRow, error) {
	if memberID == m.HostID {
		return nil, domain.Errorf(domain.EHOSTCANNOTLEAVE, "The host cannot leave the mission; cancel it instead.")
	}
	member, err := db.MemberKey(ctx, idb, memberID)
	if err != nil && domain.ErrorCode(err) != domain.ENOTFOUND {
		return nil, err
	}
	var mm *missionMemberRow
	if err == nil {
		if mm, err = membership(ctx, idb, m, member); err != nil {
			return nil, err
		}
	}
	if mm == nil || mm.Status != int16(domain.MissionMemberActive) {
		return nil, domain.Errorf(domain.ENOTPARTICIPATING, "Not a member of this mission.")
	}
	return mm, nil
}

// dropMember deletes mm's row before the start and refunds its stake.
func dropMember(ctx context.Context, idb bun.IDB, m *domain.Mission, mm *missionMemberRow, now time.Time) (int64, error) {
	q := bumpMission(idb, m, now).Set("member_count = member_count - 1").
		Where("member_count > 1").
		Where("status IN (?)", bun.In([]int16{int16(domain.MissionUnactivated), int16(domain.MissionOpen)}))
	if err := db.ExecBumped(ctx, q, "drop member of "+m.ID); err != nil {
		return 0, err
	}
	res, err := idb.NewDelete().Model((*missionMemberRow)(nil)).Where("id = ?", mm.ID).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("drop member of %s: %w", m.ID, db.Translate(err))
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		// The version said nothing changed; a missing row means it did.
		return 0, fmt.Errorf("drop member of %s: row: %v: %w", m.ID, err, db.ErrStale)
	}
	if err := refund(ctx, idb, m, mm, now); err != nil {
		return 0, err
	}
	m.Version++
	m.MemberCount--
	return mm.Stake, nil
}

// refund gives mm's whole stake back, once per membership row.
func refund(ctx context.Context, idb bun.IDB, m *domain.Mission, mm *missionMemberRow, now time.Time) error {
	_, err := (Points{}).Post(ctx, idb, PointPost{
		MemberKey: mm.MemberID, Amount: mm.Stake, Kind: domain.PointRefund, MissionKey: m.Key,
		Key: refundKey(mm.ID), Reason: m.Title, Now: now,
	})
	if err != nil {
		return fmt.Errorf("refund stake of %s: %w", m.ID, err)
	}
	return nil
}

// Cancel is the host's cancellation of m before the start: m becomes
// CANCELLED and every ACTIVE member, the host included, gets their stake
// back, in idb (a transaction). It returns the members refunded (public
// ids and stakes), in ascending row id.
// Errors: EMISSIONNOTOPEN, db.ErrStale.
func (Missions) Cancel(ctx context.Context, idb bun.IDB, m *domain.Mission, now time.Time) ([]domain.MissionMember, error) {
	if !m.BeforeStart(now) {
		return nil, domain.ErrMissionNotOpen(m, now)
	}
	q := bumpMission(idb, m, now).
		Set("status = ?", int16(domain.MissionCancelled)).
		Set("closed_at = ?", db.DBTime(now)).
		Where("status IN (?)", bun.In([]int16{int16(domain.MissionUnactivated), int16(domain.MissionOpen)}))
	if err := db.ExecBumped(ctx, q, "cancel mission "+m.ID); err != nil {
		return nil, err
	}
	var rows []missionMemberRow
	err := idb.NewSelect().Model(&rows).
		ColumnExpr("mm.*").
		ColumnExpr("m.public_id AS member_public_id").
		ColumnExpr("m.nickname AS nickname").
		Join("JOIN members AS m ON m.id = mm.member_id").
		Where("mm.mission_id = ?", m.Key).
		Where("mm.status = ?", int16(domain.MissionMemberActive)).
		OrderExpr("mm.member_id ASC").
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("cancel mission %s: members: %w", m.ID, db.Translate(err))
	}
	out := make([]domain.MissionMember, 0, len(rows))
	for i := range rows {
		if err := refund(ctx, idb, m, &rows[i], now); err != nil {
			return nil, err
		}
		out = append(out, rows[i].toDomain(m.HostID))
	}
	m.Version++
	m.Status, m.ClosedAt, m.UpdatedAt = domain.MissionCancelled, db.DBTime(now), db.DBTime(now)
	return out, nil
}

// SetSchedule sets m's schedule (validated by the caller) and its end
// endsAt, if m is still at the version the caller read; m opens when its
// windows are set too. The caller checked m.Editable.
// Errors: db.ErrStale.
func (Missions) SetSchedule(ctx context.Context, idb bun.IDB, m *domain.Mission, s domain.MissionSchedule, endsAt time.Time, now time.Time) error {
	next := *m
	next.Schedule, next.EndsAt = s, endsAt
	q := editMission(idb, &next, now).
		Set("starts_at = ?", db.DBTime(s.StartsAt)).
		Set("ends_at = ?", db.DBTime(endsAt)).
		Set("weeks = ?", int16(s.Weeks)).
		Set("days_per_week = ?", int16(s.DaysPerWeek)).
		Set("per_day = ?", int16(s.PerDay))
	if err := db.ExecBumped(ctx, q, "set schedule of "+m.ID); err != nil {
		return err
	}
	next.Schedule.StartsAt, next.EndsAt = db.DBTime(s.StartsAt), db.DBTime(endsAt)
	*m = next
	return nil
}

// SetWindows replaces m's windows with ws (validated and sorted by the
// caller), if m is still at the version the caller read; m opens when its
// schedule is set too. The caller checked m.Editable. Errors: db.ErrStale.
func (Missions) SetWindows(ctx context.Context, idb bun.IDB, m *domain.Mission, ws []domain.MissionWindow, now time.Time) error {
	next := *m
	next.Windows = ws
	if err := db.ExecBumped(ctx, editMission(idb, &next, now), "set windows of "+m.ID); err != nil {
		return err
	}
	if _, err := idb.NewDelete().Model((*missionWindowRow)(nil)).Where("mission_id = ?", m.Key).Exec(ctx); err != nil {
		return fmt.Errorf("set windows of %s: %w", m.ID, db.Translate(err))
	}
	if err := insertWindows(ctx, idb, m.Key, ws); err != nil {
		return fmt.Errorf("set windows of %s: %w", m.ID, err)
	}
	*m = next
	return nil
}

// editMission starts the version-checked update of a host's edit that
// leaves m as next: the status follows next.Ready, and the update holds only
// while the host is alone and m has not started (Editable's rule, kept in
// the row's own condition too). It sets next's status and version.
func editMission(idb bun.IDB, next *domain.Mission, now time.Time) *bun.UpdateQuery {
	status := domain.MissionUnactivated
	if next.Ready() {
		status = domain.MissionOpen
	}
	q := bumpMission(idb, next, now).
		Set("status = ?", int16(status)).
		Where("member_count = 1").
		Where("status IN (?)", bun.In([]int16{int16(domain.MissionUnactivated), int16(domain.MissionOpen)}))
	next.Status = status
	next.Version++
	next.UpdatedAt = db.DBTime(now)
	return q
}

// missionStaleAttempts bounds RetryStale. Each db.ErrStale means another
// change of the mission committed; joins can cause at most capacity - 1 of
// them before the mission is full, so twice the largest capacity leaves
// room for the host's edits and leaves too.
const missionStaleAttempts = 2 * domain.MissionCapacityMax

// RetryStale runs run (one transaction that reads a mission and changes it
// version-checked) until it does not fail with db.ErrStale, a bounded number
// of times with a short jittered pause, and answers ECONFLICT when the
// mission kept changing.
func RetryStale(ctx context.Context, run func(ctx context.Context) error) error {
	for attempt := 1; ; attempt++ {
		err := run(ctx)
		if !errors.Is(err, db.ErrStale) {
			return err
		}
		if attempt == missionStaleAttempts {
			return &domain.Error{Code: domain.ECONFLICT, Message: "The mission kept changing; try again.", Err: err}
		}
		// A competing join is a few milliseconds; growing jittered pauses
		// keep the losers from meeting again in step.
		base := time.Duration(min(attempt, 5)) * 2 * time.Millisecond
		t := time.NewTimer(base + rand.N(base))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("retry mission change: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// ErrMemberGone marks a join by a member whose account no longer exists
// (the API answers that the token is revoked); the error's code stays
// ENOTFOUND.
var ErrMemberGone = errors.New("the member's account is gone")

// MissionJoin names a join: the mission by public id, or by code when
// ByCode is set; Code is checked against a private mission's.
type MissionJoin struct {
	MissionID string
	ByCode    bool
	Code      string // as the member typed it
	MemberID  string // public id
}

// MissionJoined is what a join did.
type MissionJoined struct {
	Mission    *domain.Mission // after the join
	Membership *domain.MissionMember
	Balance    int64 // the member's, after the stake
}

// JoinRetrying is the whole join as the API runs it: one transaction that
// reads the mission, checks the code and takes the seat and the stake
// (Join), run again while the mission moves under it (RetryStale). now is
// read at each attempt. Errors: Join's; EWRONGCODE for a wrong code or, by
// code, one no mission has; ENOTFOUND for an unknown mission, or wrapping
// ErrMemberGone for an unknown member; ECONFLICT when the mission kept
// changing.
func (Missions) JoinRetrying(ctx context.Context, bdb *bun.DB, j MissionJoin, now func() time.Time) (*MissionJoined, error) {
	code := domain.NormalizeMissionCode(j.Code)
	var out MissionJoined
	err := RetryStale(ctx, func(ctx context.Context) error {
		return db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
			var err error
			if j.ByCode {
				out.Mission, err = (Missions{}).FindByCode(ctx, tx, code)
				if domain.ErrorCode(err) == domain.ENOTFOUND {
					// No mission has it: to the member that is a wrong code.
					return domain.FieldErrorf(domain.EWRONGCODE, "code", "Wrong or missing join code.")
				}
			} else {
				out.Mission, err = (Missions{}).FindByID(ctx, tx, j.MissionID)
			}
			if err != nil {
				return err
			}
			if err := out.Mission.CheckCode(code); err != nil {
				return err
			}
			out.Membership, out.Balance, err = (Missions{}).Join(ctx, tx, out.Mission, j.MemberID, now().UTC())
			if domain.ErrorCode(err) == domain.ENOTFOUND {
				return fmt.Errorf("%w: %w", err, ErrMemberGone)
			}
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}
