package db

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/domain"
)

// matchRow is a row of matches.
type matchRow struct {
	bun.BaseModel `bun:"table:matches,alias:mt"`

	ID        int64     `bun:"id,pk,autoincrement"`
	PublicID  string    `bun:"public_id,notnull"`
	Category  int16     `bun:"category,notnull"`
	Method    int16     `bun:"method,notnull"`
	Places    int16     `bun:"places,notnull"`
	Second    int16     `bun:"second,notnull"`
	RoomID    int64     `bun:"room_id,nullzero"`
	CreatedAt time.Time `bun:"created_at,notnull"`

	RoomPublicID string `bun:"room_public_id,scanonly"`
}

func (r *matchRow) toDomain() domain.Match {
	return domain.Match{
		ID:         r.PublicID,
		Category:   domain.Category(r.Category),
		Method:     domain.MatchMethod(r.Method),
		Conditions: domain.Conditions{Places: domain.Mask(r.Places), Second: domain.Mask(r.Second)},
		RoomID:     r.RoomPublicID,
		CreatedAt:  r.CreatedAt.UTC(),
	}
}

// matchMemberRow is a row of match_members, with the member's public id and
// nickname joined in.
type matchMemberRow struct {
	bun.BaseModel `bun:"table:match_members,alias:mm"`

	ID       int64 `bun:"id,pk,autoincrement"`
	MatchID  int64 `bun:"match_id,notnull"`
	MemberID int64 `bun:"member_id,notnull"`

	MemberPublicID string `bun:"member_public_id,scanonly"`
	Nickname       string `bun:"nickname,scanonly"`
}

func errMatchNotFound() error {
	return &domain.Error{Code: domain.ENOTFOUND, Message: "Match not found."}
}

// Matches is the store of matches, random or from a room: one history.
type Matches struct{}

// Create inserts m with its members, given as public ids in the order they
// are to be listed, sets m.ID, m.Members (with nicknames) and m.CreatedAt
// (UTC microseconds), and returns the match's row id for
// Applications.MarkGroupMatched. The caller sets Category, Method,
// Conditions (what the members have in common; zero for none) and
// CreatedAt; RoomID stays empty (Rooms.Complete links a room's match in
// its own transaction). Errors: ENOTFOUND when a member is
// unknown or deleted (nothing is stored then).
func (Matches) Create(ctx context.Context, idb bun.IDB, m *domain.Match, memberIDs []string) (int64, error) {
	if err := checkMatch(m, memberIDs); err != nil {
		return 0, fmt.Errorf("create match: %w", err)
	}
	var found []memberRow
	err := idb.NewSelect().Model(&found).Column("id", "public_id", "nickname").
		Where("public_id IN (?)", bun.In(memberIDs)).
		Where("deleted_at IS NULL").
		Scan(ctx)
	if err != nil {
		return 0, fmt.Errorf("create match: find members: %w", translate(err))
	}
	byID := make(map[string]*memberRow, len(found))
	for i := range found {
		byID[found[i].PublicID] = &found[i]
	}

	row := matchRow{
		PublicID:  NewPublicID(),
		Category:  int16(m.Category),
		Method:    int16(m.Method),
		Places:    int16(m.Conditions.Places),
		Second:    int16(m.Conditions.Second),
		CreatedAt: dbTime(m.CreatedAt),
	}
	members := make([]domain.MatchMember, len(memberIDs))
	for i, id := range memberIDs {
		r, ok := byID[id]
		if !ok {
			return 0, fmt.Errorf("create match: member %s: %w", id, errMemberNotFound())
		}
		members[i] = domain.MatchMember{MemberID: id, Nickname: r.Nickname}
	}
	if _, err := idb.NewInsert().Model(&row).Exec(ctx); err != nil {
		return 0, fmt.Errorf("create match: %w", translate(err))
	}
	// One statement; every dialect numbers its rows in order, and the id
	// is what keeps the members' order.
	rows := make([]matchMemberRow, len(memberIDs))
	for i, id := range memberIDs {
		rows[i] = matchMemberRow{MatchID: row.ID, MemberID: byID[id].ID}
	}
	if _, err := idb.NewInsert().Model(&rows).Exec(ctx); err != nil {
		return 0, fmt.Errorf("create match %s: members: %w", row.PublicID, translate(err))
	}
	// Attending a match is part of each member's activity score.
	if _, err := idb.NewUpdate().Model((*memberRow)(nil)).
		Set("activity_matches = activity_matches + 1").
		Set("activity_score = activity_score + ?", domain.ActivityPerMatch).
		Where("id IN (?)", bun.In(matchMemberKeys(rows))).
		Exec(ctx); err != nil {
		return 0, fmt.Errorf("create match %s: activity: %w", row.PublicID, translate(err))
	}
	m.ID, m.Members, m.CreatedAt = row.PublicID, members, row.CreatedAt
	return row.ID, nil
}

func matchMemberKeys(rows []matchMemberRow) []int64 {
	keys := make([]int64, len(rows))
	for i := range rows {
		keys[i] = rows[i].MemberID
	}
	return keys
}

// checkMatch rejects what the caller should have validated.
func checkMatch(m *domain.Match, memberIDs []string) error {
	if !m.Category.Valid() {
		return fmt.Errorf("invalid category %d", int(m.Category))
	}
	if !validMethod(m.Method) {
		return fmt.Errorf("invalid method %d", int(m.Method))
	}
	if m.RoomID != "" {
		return fmt.Errorf("room %s: Rooms.Complete links a match to its room", m.RoomID)
	}
	if len(memberIDs) == 0 {
		return fmt.Errorf("a match needs members")
	}
	seen := make(map[string]bool, len(memberIDs))
	for _, id := range memberIDs {
		if seen[id] {
			return fmt.Errorf("member %s named twice", id)
		}
		seen[id] = true
	}
	return nil
}

func validMethod(m domain.MatchMethod) bool { return m == domain.MatchRandom || m == domain.MatchRoom }

// loadMatchMembers fills in the members of the matches, in the order they
// were stored, with one query whatever the number of matches.
func loadMatchMembers(ctx context.Context, idb bun.IDB, rows []matchRow, out []domain.Match) error {
	if len(rows) == 0 {
		return nil
	}
	keys := make([]int64, len(rows))
	index := make(map[int64]int, len(rows))
	for i := range rows {
		keys[i] = rows[i].ID
		index[rows[i].ID] = i
	}
	var members []matchMemberRow
	// A deleted member keeps their row and nickname, so the history still
	// shows who was there.
	err := idb.NewSelect().Model(&members).
		ColumnExpr("mm.match_id").
		ColumnExpr("m.public_id AS member_public_id").
		ColumnExpr("m.nickname AS nickname").
		Join("JOIN members AS m ON m.id = mm.member_id").
		Where("mm.match_id IN (?)", bun.In(keys)).
		OrderExpr("mm.match_id ASC, mm.id ASC").
		Scan(ctx)
	if err != nil {
		return fmt.Errorf("load match members: %w", translate(err))
	}
	for _, r := range members {
		i := index[r.MatchID]
		out[i].Members = append(out[i].Members, domain.MatchMember{MemberID: r.MemberPublicID, Nickname: r.Nickname})
	}
	return nil
}

// selectMatches starts a query over matches with the room's public id
// joined in.
func selectMatches(idb bun.IDB, dest any) *bun.SelectQuery {
	return idb.NewSelect().Model(dest).
		ColumnExpr("mt.*").
		ColumnExpr("rm.public_id AS room_public_id").
		Join("LEFT JOIN rooms AS rm ON rm.id = mt.room_id")
}

// FindByID returns the match with public id id and its members, whoever
// asks. Errors: ENOTFOUND.
func (Matches) FindByID(ctx context.Context, idb bun.IDB, id string) (*domain.Match, error) {
	var rows []matchRow
	if err := selectMatches(idb, &rows).Where("mt.public_id = ?", id).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find match %s: %w", id, translate(err))
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("find match %s: %w", id, errMatchNotFound())
	}
	out := []domain.Match{rows[0].toDomain()}
	if err := loadMatchMembers(ctx, idb, rows, out); err != nil {
		return nil, fmt.Errorf("find match %s: %w", id, err)
	}
	return &out[0], nil
}

// MatchFilter selects a page of a member's matches.
type MatchFilter struct {
	Category domain.Category    // 0 = any
	Method   domain.MatchMethod // 0 = any
	// Cursor is MatchPage.Next of the previous page; "" for the first.
	Cursor string
	Limit  int
}

// MatchPage is one page of a member's matches, newest first.
type MatchPage struct {
	Matches []domain.Match
	// Next is the cursor of the following (older) page; "" on the last.
	Next string
}

// ListForMember returns a page of the member's matches, newest first
// (created_at, then id), each with its members. An unknown member has
// none. Errors: EINVALID with field "cursor" for a cursor that is not one of
// the member's matches, "limit" for a limit below 1, "category" or
// "method" for a value that is neither 0 nor valid.
func (Matches) ListForMember(ctx context.Context, idb bun.IDB, memberID string, f MatchFilter) (MatchPage, error) {
	if err := checkLimit(f.Limit); err != nil {
		return MatchPage{}, err
	}
	if f.Category != 0 && !f.Category.Valid() {
		return MatchPage{}, domain.FieldErrorf(domain.EINVALID, "category", "Unknown category %d.", int(f.Category))
	}
	if f.Method != 0 && !validMethod(f.Method) {
		return MatchPage{}, domain.FieldErrorf(domain.EINVALID, "method", "Unknown method %d.", int(f.Method))
	}
	// The cursor is the public id of the last match of the previous page,
	// and only valid in the list of a member of that match.
	var after *matchRow
	if f.Cursor != "" {
		var cur []matchRow
		err := idb.NewSelect().Model(&cur).Column("mt.id", "mt.created_at").
			Join("JOIN match_members AS mm ON mm.match_id = mt.id").
			Join("JOIN members AS m ON m.id = mm.member_id").
			Where("mt.public_id = ?", f.Cursor).
			Where("m.public_id = ?", memberID).
			Scan(ctx)
		if err != nil {
			return MatchPage{}, fmt.Errorf("list matches: cursor: %w", translate(err))
		}
		if len(cur) == 0 {
			return MatchPage{}, domain.FieldErrorf(domain.EINVALID, "cursor", "Invalid cursor.")
		}
		after = &cur[0]
	}

	var rows []matchRow
	q := selectMatches(idb, &rows).
		Join("JOIN match_members AS mm ON mm.match_id = mt.id").
		Join("JOIN members AS m ON m.id = mm.member_id").
		Where("m.public_id = ?", memberID).
		OrderExpr("mt.created_at DESC, mt.id DESC").
		Limit(int64(f.Limit) + 1) // one more tells whether there is a next page
	if f.Category != 0 {
		q = q.Where("mt.category = ?", int16(f.Category))
	}
	if f.Method != 0 {
		q = q.Where("mt.method = ?", int16(f.Method))
	}
	if after != nil {
		q = q.Where("(mt.created_at < ? OR (mt.created_at = ? AND mt.id < ?))", after.CreatedAt, after.CreatedAt, after.ID)
	}
	if err := q.Scan(ctx); err != nil {
		return MatchPage{}, fmt.Errorf("list matches: %w", translate(err))
	}

	var page MatchPage
	if len(rows) > f.Limit {
		rows = rows[:f.Limit]
		page.Next = rows[len(rows)-1].PublicID
	}
	page.Matches = make([]domain.Match, len(rows))
	for i := range rows {
		page.Matches[i] = rows[i].toDomain()
	}
	if err := loadMatchMembers(ctx, idb, rows, page.Matches); err != nil {
		return MatchPage{}, fmt.Errorf("list matches: %w", err)
	}
	return page, nil
}
