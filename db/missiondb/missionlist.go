package missiondb

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

// MissionSort orders the mission list.
type MissionSort int

// The orders of the mission list.
const (
	// MissionSortNew: newest first.
	MissionSortNew MissionSort = iota
	// MissionSortHot: fewest seats left first, then newest.
	MissionSortHot
)

// MissionFilter selects a page of the mission list.
type MissionFilter struct {
	Sort MissionSort
	Type domain.MissionType // 0 = any
	// Q keeps missions whose title contains it (case-insensitive for
	// ASCII letters); "" = any.
	Q string
	// Code finds the one mission with that join code, whatever its status
	// and privacy: that is how a private mission is found. The other
	// filters still apply.
	Code string
	// Now: without Code only missions that can be joined at Now are listed
	// (OPEN, public, not started, a seat left).
	Now time.Time
	// Cursor is MissionPage.Next of the previous page; "" for the first.
	Cursor string
	Limit  int
}

// MissionPage is one page of missions.
type MissionPage struct {
	Missions []domain.Mission // with their windows
	Next     string           // cursor of the following page; "" on the last
}

// likeEscaper escapes LIKE's wildcards with '!', a character every dialect
// takes as ESCAPE without quoting rules of its own (MySQL's backslash).
var likeEscaper = strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")

// missionCursor is where a page ends: the last mission's seats left (for
// the hot order), creation time and row id, looked up from its public id.
type missionCursor struct {
	seats     int
	createdAt time.Time
	id        int64
}

// parseMissionCursor reads a cursor: the last mission's public id, and for
// the hot order "<seats left>.<public id>" — the seats as they were when
// the page was cut, so a mission filling up meanwhile does not shift the
// pages. Errors: EINVALID with field "cursor".
func parseMissionCursor(ctx context.Context, idb bun.IDB, cursor string, hot bool) (*missionCursor, error) {
	if cursor == "" {
		return nil, nil
	}
	bad := domain.FieldErrorf(domain.EINVALID, "cursor", "Invalid cursor.")
	var c missionCursor
	id := cursor
	if hot {
		s, rest, ok := strings.Cut(cursor, ".")
		n, err := strconv.Atoi(s)
		if !ok || err != nil || n < 0 || n > domain.MissionCapacityMax {
			return nil, bad
		}
		c.seats, id = n, rest
	}
	var rows []missionRow
	if err := idb.NewSelect().Model(&rows).Column("mi.id", "mi.created_at").Where("mi.public_id = ?", id).Scan(ctx); err != nil {
		return nil, fmt.Errorf("mission cursor: %w", db.Translate(err))
	}
	if len(rows) == 0 {
		return nil, bad
	}
	c.createdAt, c.id = rows[0].CreatedAt, rows[0].ID
	return &c, nil
}

// newestAfter keeps the rows after cursor c in the newest-first order.
func newestAfter(q *bun.SelectQuery, c *missionCursor) *bun.SelectQuery {
	return q.Where("(mi.created_at < ? OR (mi.created_at = ? AND mi.id < ?))", c.createdAt, c.createdAt, c.id)
}

// List returns a page of missions (see MissionFilter). Errors: EINVALID
// with field "cursor" or "limit".
func (Missions) List(ctx context.Context, idb bun.IDB, f MissionFilter) (MissionPage, error) {
	if err := db.CheckLimit(f.Limit); err != nil {
		return MissionPage{}, err
	}
	hot := f.Sort == MissionSortHot
	after, err := parseMissionCursor(ctx, idb, f.Cursor, hot)
	if err != nil {
		return MissionPage{}, err
	}
	var rows []missionRow
	q := selectMissions(idb, &rows).Limit(int64(f.Limit) + 1)
	if f.Code != "" {
		q = q.Where("mi.code = ?", f.Code)
	} else {
		q = q.Where("mi.status = ?", int16(domain.MissionOpen)).
			Where("mi.private = ?", false).
			Where("mi.starts_at > ?", db.DBTime(f.Now)).
			Where("mi.member_count < mi.capacity")
	}
	if f.Type != 0 {
		q = q.Where("mi.type = ?", int16(f.Type))
	}
	if f.Q != "" {
		q = q.Where("LOWER(mi.title) LIKE ? ESCAPE '!'", "%"+likeEscaper.Replace(strings.ToLower(f.Q))+"%")
	}
	const seats = "(mi.capacity - mi.member_count)"
	if hot {
		q = q.OrderExpr(seats + " ASC, mi.created_at DESC, mi.id DESC")
		if after != nil {
			q = q.Where("("+seats+" > ? OR ("+seats+" = ? AND (mi.created_at < ? OR (mi.created_at = ? AND mi.id < ?))))",
				after.seats, after.seats, after.createdAt, after.createdAt, after.id)
		}
	} else {
		q = q.OrderExpr("mi.created_at DESC, mi.id DESC")
		if after != nil {
			q = newestAfter(q, after)
		}
	}
	if err := q.Scan(ctx); err != nil {
		return MissionPage{}, fmt.Errorf("list missions: %w", db.Translate(err))
	}
	return missionPage(ctx, idb, rows, f.Limit, hot)
}

// missionPage cuts rows (one more than limit when a page follows) into a
// page with windows and the cursor of the next.
func missionPage(ctx context.Context, idb bun.IDB, rows []missionRow, limit int, hot bool) (MissionPage, error) {
	var page MissionPage
	if len(rows) > limit {
		rows = rows[:limit]
		last := rows[len(rows)-1]
		page.Next = last.PublicID
		if hot {
			page.Next = strconv.Itoa(int(last.Capacity-last.MemberCount)) + "." + last.PublicID
		}
	}
	keys := make([]int64, len(rows))
	for i := range rows {
		keys[i] = rows[i].ID
	}
	ws, err := missionWindows(ctx, idb, keys)
	if err != nil {
		return MissionPage{}, fmt.Errorf("list missions: %w", err)
	}
	page.Missions = make([]domain.Mission, len(rows))
	for i := range rows {
		page.Missions[i] = rows[i].toDomain()
		page.Missions[i].Windows = ws[rows[i].ID]
	}
	return page, nil
}

// MissionRole picks a member's missions.
type MissionRole int

// The roles of "my missions".
const (
	// MissionRoleHosting: missions the member hosts that have not ended.
	MissionRoleHosting MissionRole = iota + 1
	// MissionRoleJoined: missions the member joined (not hosts) and is
	// still ACTIVE in, that have not ended.
	MissionRoleJoined
	// MissionRoleFinished: missions the member was in (hosting, joined or
	// left after the start) that are CLOSE or CANCELLED.
	MissionRoleFinished
)

var missionsLive = []int16{int16(domain.MissionUnactivated), int16(domain.MissionOpen), int16(domain.MissionOngoing)}

// Mine returns a page of memberID's (a public id) missions in role, newest
// first. Errors: EINVALID with field "cursor" or "limit"; ENOTFOUND for an
// unknown member.
func (Missions) Mine(ctx context.Context, idb bun.IDB, memberID string, role MissionRole, cursor string, limit int) (MissionPage, error) {
	if err := db.CheckLimit(limit); err != nil {
		return MissionPage{}, err
	}
	member, err := db.MemberKey(ctx, idb, memberID)
	if err != nil {
		return MissionPage{}, fmt.Errorf("missions of %s: %w", memberID, err)
	}
	after, err := parseMissionCursor(ctx, idb, cursor, false)
	if err != nil {
		return MissionPage{}, err
	}
	var rows []missionRow
	q := selectMissions(idb, &rows).OrderExpr("mi.created_at DESC, mi.id DESC").Limit(int64(limit) + 1)
	mine := idb.NewSelect().Model((*missionMemberRow)(nil)).Column("mm.mission_id").Where("mm.member_id = ?", member)
	switch role {
	case MissionRoleHosting:
		q = q.Where("mi.host_id = ?", member).Where("mi.status IN (?)", bun.In(missionsLive))
	case MissionRoleJoined:
		mine = mine.Where("mm.status = ?", int16(domain.MissionMemberActive))
		q = q.Where("mi.host_id <> ?", member).Where("mi.status IN (?)", bun.In(missionsLive)).Where("mi.id IN (?)", mine)
	case MissionRoleFinished:
		q = q.Where("mi.status IN (?)", bun.In([]int16{int16(domain.MissionClose), int16(domain.MissionCancelled)})).
			Where("mi.id IN (?)", mine)
	default:
		return MissionPage{}, fmt.Errorf("missions of %s: invalid role %d", memberID, int(role))
	}
	if after != nil {
		q = newestAfter(q, after)
	}
	if err := q.Scan(ctx); err != nil {
		return MissionPage{}, fmt.Errorf("missions of %s: %w", memberID, db.Translate(err))
	}
	return missionPage(ctx, idb, rows, limit, false)
}
