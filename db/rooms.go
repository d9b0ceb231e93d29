package db

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/moim/moim/domain"
)

// ErrStale: a version-checked write found the row changed since it was
// read. The caller rolls back and, if it wants, reads again and retries.
var ErrStale = errors.New("the row changed since it was read")

// roomRow is a row of rooms, with the host's public id and nickname and the
// match's public id joined in.
type roomRow struct {
	bun.BaseModel `bun:"table:rooms,alias:r"`

	ID               int64     `bun:"id,pk,autoincrement"`
	PublicID         string    `bun:"public_id,notnull"`
	HostID           int64     `bun:"host_id,notnull"`
	Category         int16     `bun:"category,notnull"`
	Title            string    `bun:"title,notnull"`
	Body             string    `bun:"body,notnull"`
	Place            string    `bun:"place,notnull"`
	StartsAt         time.Time `bun:"starts_at,notnull"`
	Capacity         int16     `bun:"capacity,notnull"`
	ParticipantCount int16     `bun:"participant_count,notnull"`
	Version          int64     `bun:"version,notnull"`
	Places           int16     `bun:"places,notnull"`
	TimesOfEating    int16     `bun:"times_of_eating,notnull"`
	WaysOfEating     int16     `bun:"ways_of_eating,notnull"`
	StudyTypes       int16     `bun:"study_types,notnull"`
	Anonymous        bool      `bun:"anonymous,notnull"`
	MatchID          int64     `bun:"match_id,nullzero"`
	CompletedAt      time.Time `bun:"completed_at,nullzero"`
	DeletedAt        time.Time `bun:"deleted_at,nullzero"`
	CreatedAt        time.Time `bun:"created_at,notnull"`
	UpdatedAt        time.Time `bun:"updated_at,notnull"`

	HostPublicID  string `bun:"host_public_id,scanonly"`
	HostNickname  string `bun:"host_nickname,scanonly"`
	MatchPublicID string `bun:"match_public_id,scanonly"`
}

func (r *roomRow) toDomain() domain.Room {
	return domain.Room{
		ID:               r.PublicID,
		Key:              r.ID,
		HostID:           r.HostPublicID,
		Host:             r.HostNickname,
		Category:         domain.Category(r.Category),
		Title:            r.Title,
		Body:             r.Body,
		StartsAt:         r.StartsAt.UTC(),
		Place:            r.Place,
		Capacity:         int(r.Capacity),
		ParticipantCount: int(r.ParticipantCount),
		Conditions: domain.RoomConditions{
			Places:        domain.Mask(r.Places),
			TimesOfEating: domain.Mask(r.TimesOfEating),
			WaysOfEating:  domain.Mask(r.WaysOfEating),
			StudyTypes:    domain.Mask(r.StudyTypes),
		},
		Anonymous:   r.Anonymous,
		Version:     r.Version,
		MatchID:     r.MatchPublicID,
		CompletedAt: utcOrZero(r.CompletedAt),
		DeletedAt:   utcOrZero(r.DeletedAt),
		CreatedAt:   r.CreatedAt.UTC(),
		UpdatedAt:   r.UpdatedAt.UTC(),
	}
}

func utcOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// participantRow is a row of room_participants, with the member's public id
// and nickname joined in.
type participantRow struct {
	bun.BaseModel `bun:"table:room_participants,alias:rp"`

	ID       int64     `bun:"id,pk,autoincrement"`
	RoomID   int64     `bun:"room_id,notnull"`
	MemberID int64     `bun:"member_id,notnull"`
	Host     bool      `bun:"host,notnull"`
	JoinedAt time.Time `bun:"joined_at,notnull"`
	Attended bool      `bun:"attended,notnull"`
	// Evaluated is the manner-point change a guest gave the host; 0 until
	// they evaluate (an evaluation of 0 is not allowed).
	Evaluated int16 `bun:"evaluated,notnull"`

	MemberPublicID string `bun:"member_public_id,scanonly"`
	Nickname       string `bun:"nickname,scanonly"`
}

func errRoomNotFound() error {
	return &domain.Error{Code: domain.ENOTFOUND, Message: "Room not found."}
}

// Rooms is the store of rooms and their participants. Every change of a
// room bumps its version; participant_count always equals its
// room_participants rows, because both change in one version-checked
// transaction.
type Rooms struct{}

// Create stores r, opened by r.HostID (a public id) who becomes its first
// participant, and sets r.ID, r.Key, r.Version (1), r.ParticipantCount
// (1), r.Host, r.Participants, and writes times back in UTC microseconds.
// The caller has validated r (domain.Room.Validate) and set CreatedAt.
// Errors: ENOTFOUND for an unknown or deleted host.
func (Rooms) Create(ctx context.Context, idb bun.IDB, r *domain.Room) error {
	if !r.Category.Valid() || r.Capacity < domain.RoomCapacityLo || r.Capacity > domain.RoomCapacityHi {
		return fmt.Errorf("create room: invalid category %d or capacity %d", int(r.Category), r.Capacity)
	}
	var host memberRow
	err := idb.NewSelect().Model(&host).Column("id", "nickname").
		Where("public_id = ?", r.HostID).Where("deleted_at IS NULL").Scan(ctx)
	if err != nil {
		return fmt.Errorf("create room for %s: %w", r.HostID, translate(err))
	}
	now := dbTime(r.CreatedAt)
	row := roomRow{
		PublicID:         NewPublicID(),
		HostID:           host.ID,
		Category:         int16(r.Category),
		Title:            r.Title,
		Body:             r.Body,
		Place:            r.Place,
		StartsAt:         dbTime(r.StartsAt),
		Capacity:         int16(r.Capacity),
		ParticipantCount: 1,
		Version:          1,
		Places:           int16(r.Conditions.Places),
		TimesOfEating:    int16(r.Conditions.TimesOfEating),
		WaysOfEating:     int16(r.Conditions.WaysOfEating),
		StudyTypes:       int16(r.Conditions.StudyTypes),
		Anonymous:        r.Anonymous,
		CreatedAt:        now,
		UpdatedAt:        now,
	}
	if _, err := idb.NewInsert().Model(&row).Exec(ctx); err != nil {
		return fmt.Errorf("create room: %w", translate(err))
	}
	p := participantRow{RoomID: row.ID, MemberID: host.ID, Host: true, JoinedAt: now}
	if _, err := idb.NewInsert().Model(&p).Exec(ctx); err != nil {
		return fmt.Errorf("create room %s: host: %w", row.PublicID, translate(err))
	}
	r.ID, r.Key, r.Version, r.ParticipantCount = row.PublicID, row.ID, 1, 1
	r.Host = host.Nickname
	r.StartsAt, r.CreatedAt, r.UpdatedAt = row.StartsAt, now, now
	r.MatchID, r.CompletedAt, r.DeletedAt = "", time.Time{}, time.Time{}
	r.Participants = []domain.Participant{{MemberID: r.HostID, Nickname: host.Nickname, Host: true, JoinedAt: now}}
	return nil
}

// selectRooms starts a query over rooms with the host's public id and
// nickname and the match's public id joined in.
func selectRooms(idb bun.IDB, dest any) *bun.SelectQuery {
	return idb.NewSelect().Model(dest).
		ColumnExpr("r.*").
		ColumnExpr("h.public_id AS host_public_id").
		ColumnExpr("h.nickname AS host_nickname").
		ColumnExpr("mt.public_id AS match_public_id").
		Join("JOIN members AS h ON h.id = r.host_id").
		Join("LEFT JOIN matches AS mt ON mt.id = r.match_id")
}

// FindByID returns the room with public id id, its participants (the
// host first and then in joining order) and its images. A cancelled room is returned too
// (DeletedAt set), for the caller to decide. Read the room before anything
// that depends on its version: the participants are read after the room,
// so a version check against r.Version also vouches for them.
// Errors: ENOTFOUND.
func (Rooms) FindByID(ctx context.Context, idb bun.IDB, id string) (*domain.Room, error) {
	return findRoom(ctx, idb, "r.public_id = ?", id)
}

// FindByKey is FindByID by row id.
func (Rooms) FindByKey(ctx context.Context, idb bun.IDB, key int64) (*domain.Room, error) {
	return findRoom(ctx, idb, "r.id = ?", key)
}

func findRoom(ctx context.Context, idb bun.IDB, where string, arg any) (*domain.Room, error) {
	var rows []roomRow
	if err := selectRooms(idb, &rows).Where(where, arg).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find room %v: %w", arg, translate(err))
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("find room %v: %w", arg, errRoomNotFound())
	}
	r := rows[0].toDomain()
	var ps []participantRow
	err := idb.NewSelect().Model(&ps).
		ColumnExpr("rp.*").
		ColumnExpr("m.public_id AS member_public_id").
		ColumnExpr("m.nickname AS nickname").
		Join("JOIN members AS m ON m.id = rp.member_id").
		Where("rp.room_id = ?", rows[0].ID).
		OrderExpr("rp.host DESC, rp.joined_at ASC, rp.id ASC").
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("find room %s: participants: %w", r.ID, translate(err))
	}
	r.Participants = make([]domain.Participant, len(ps))
	for i, p := range ps {
		r.Participants[i] = domain.Participant{MemberID: p.MemberPublicID, Nickname: p.Nickname, Host: p.Host,
			JoinedAt: p.JoinedAt.UTC(), Attended: p.Attended, Evaluation: int(p.Evaluated)}
	}
	imgs, err := (Images{}).RoomImages(ctx, idb, []int64{r.Key})
	if err != nil {
		return nil, fmt.Errorf("find room %s: %w", r.ID, err)
	}
	r.Images = imgs[r.Key]
	return &r, nil
}

// bump starts the version-checked update of room r as it was read.
func bump(idb bun.IDB, r *domain.Room, now time.Time) *bun.UpdateQuery {
	return idb.NewUpdate().Model((*roomRow)(nil)).
		Set("version = version + 1").
		Set("updated_at = ?", dbTime(now)).
		Where("id = ?", r.Key).
		Where("version = ?", r.Version)
}

// execBumped runs a version-checked update and returns ErrStale when no
// row matched. Each such update changes version, so the rows affected are
// 1 on MySQL too.
func execBumped(ctx context.Context, q *bun.UpdateQuery, what string) error {
	res, err := q.Exec(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: rows affected: %w", what, err)
	}
	if n != 1 {
		return fmt.Errorf("%s: %w", what, ErrStale)
	}
	return nil
}

// Update writes the editable fields of r (title, body, place, start,
// capacity, conditions, anonymity), as domain.Room.Apply left them, if the
// room is still at r.Version, and bumps the version in r. Errors: ErrStale.
func (Rooms) Update(ctx context.Context, idb bun.IDB, r *domain.Room, now time.Time) error {
	q := bump(idb, r, now).
		Set("title = ?", r.Title).
		Set("body = ?", r.Body).
		Set("place = ?", r.Place).
		Set("starts_at = ?", dbTime(r.StartsAt)).
		Set("capacity = ?", int16(r.Capacity)).
		Set("places = ?", int16(r.Conditions.Places)).
		Set("times_of_eating = ?", int16(r.Conditions.TimesOfEating)).
		Set("ways_of_eating = ?", int16(r.Conditions.WaysOfEating)).
		Set("study_types = ?", int16(r.Conditions.StudyTypes)).
		Set("anonymous = ?", r.Anonymous).
		// Belt and braces: the count can only have moved with the version.
		Where("participant_count <= ?", int16(r.Capacity))
	if err := execBumped(ctx, q, "update room "+r.ID); err != nil {
		return err
	}
	r.Version++
	r.UpdatedAt = dbTime(now)
	return nil
}

// Delete cancels r (soft) if it is still at r.Version. Errors: ErrStale.
func (Rooms) Delete(ctx context.Context, idb bun.IDB, r *domain.Room, now time.Time) error {
	q := bump(idb, r, now).Set("deleted_at = ?", dbTime(now)).Where("deleted_at IS NULL")
	if err := execBumped(ctx, q, "delete room "+r.ID); err != nil {
		return err
	}
	r.Version++
	r.DeletedAt, r.UpdatedAt = dbTime(now), dbTime(now)
	return nil
}

// Complete turns r completed, if it is still at r.Version, with a match
// (method ROOM) of its participants as FindByID read them, and returns the
// match. Errors: ErrStale; ENOTFOUND when a participant's account is gone.
func (Rooms) Complete(ctx context.Context, idb bun.IDB, r *domain.Room, now time.Time) (*domain.Match, error) {
	ids := make([]string, len(r.Participants))
	for i, p := range r.Participants {
		ids[i] = p.MemberID
	}
	m := domain.Match{Category: r.Category, Method: domain.MatchRoom, CreatedAt: now}
	if places := r.Conditions.Places; places != 0 {
		m.Conditions.Places = places
	}
	matchKey, err := (Matches{}).Create(ctx, idb, &m, ids)
	if err != nil {
		return nil, fmt.Errorf("complete room %s: %w", r.ID, err)
	}
	q := bump(idb, r, now).
		Set("completed_at = ?", dbTime(now)).
		Set("match_id = ?", matchKey).
		Where("completed_at IS NULL").
		Where("deleted_at IS NULL")
	if err := execBumped(ctx, q, "complete room "+r.ID); err != nil {
		return nil, err
	}
	if _, err := idb.NewUpdate().Model((*matchRow)(nil)).Set("room_id = ?", r.Key).
		Where("id = ?", matchKey).Exec(ctx); err != nil {
		return nil, fmt.Errorf("complete room %s: match: %w", r.ID, translate(err))
	}
	r.Version++
	r.CompletedAt, r.UpdatedAt, r.MatchID = dbTime(now), dbTime(now), m.ID
	m.RoomID = r.ID
	return &m, nil
}

// RoomFilter selects a page of the room list.
type RoomFilter struct {
	Category  domain.Category // 0 = any
	Completed *bool           // nil = both
	// From and To bound the start time, [From, To); zero = unbounded.
	From, To time.Time
	// Place keeps rooms whose places include any of these; 0 = any.
	Place domain.Mask
	// Cursor is RoomPage.Next of the previous page; "" for the first.
	Cursor string
	Limit  int
}

// RoomPage is one page of rooms, newest first.
type RoomPage struct {
	Rooms []domain.Room // without participants, with their images
	Next  string        // cursor of the following page; "" on the last
}

// List returns a page of the rooms not cancelled, newest first (created_at,
// then id), without their participants. Errors: EINVALID with field
// "cursor" for a cursor that is not a listed room, "limit" below 1.
func (Rooms) List(ctx context.Context, idb bun.IDB, f RoomFilter) (RoomPage, error) {
	if err := checkLimit(f.Limit); err != nil {
		return RoomPage{}, err
	}
	var after *roomRow
	if f.Cursor != "" {
		var cur []roomRow
		err := idb.NewSelect().Model(&cur).Column("r.id", "r.created_at").
			Where("r.public_id = ?", f.Cursor).Where("r.deleted_at IS NULL").Scan(ctx)
		if err != nil {
			return RoomPage{}, fmt.Errorf("list rooms: cursor: %w", translate(err))
		}
		if len(cur) == 0 {
			return RoomPage{}, domain.FieldErrorf(domain.EINVALID, "cursor", "Invalid cursor.")
		}
		after = &cur[0]
	}
	var rows []roomRow
	q := selectRooms(idb, &rows).
		Where("r.deleted_at IS NULL").
		OrderExpr("r.created_at DESC, r.id DESC").
		Limit(int64(f.Limit) + 1)
	if f.Category != 0 {
		q = q.Where("r.category = ?", int16(f.Category))
	}
	if f.Completed != nil {
		if *f.Completed {
			q = q.Where("r.completed_at IS NOT NULL")
		} else {
			q = q.Where("r.completed_at IS NULL")
		}
	}
	if !f.From.IsZero() {
		q = q.Where("r.starts_at >= ?", dbTime(f.From))
	}
	if !f.To.IsZero() {
		q = q.Where("r.starts_at < ?", dbTime(f.To))
	}
	if f.Place != 0 {
		// The masks are small: "shares a bit" is an IN over the values that
		// do, which every dialect takes without bitwise operators.
		var shared []int16
		for m := domain.Mask(1); m <= domain.Places.Full(); m++ {
			if m&f.Place != 0 {
				shared = append(shared, int16(m))
			}
		}
		q = q.Where("r.places IN (?)", bun.In(shared))
	}
	if after != nil {
		q = q.Where("(r.created_at < ? OR (r.created_at = ? AND r.id < ?))", after.CreatedAt, after.CreatedAt, after.ID)
	}
	if err := q.Scan(ctx); err != nil {
		return RoomPage{}, fmt.Errorf("list rooms: %w", translate(err))
	}
	var page RoomPage
	if len(rows) > f.Limit {
		rows = rows[:f.Limit]
		page.Next = rows[len(rows)-1].PublicID
	}
	keys := make([]int64, len(rows))
	for i := range rows {
		keys[i] = rows[i].ID
	}
	imgs, err := (Images{}).RoomImages(ctx, idb, keys)
	if err != nil {
		return RoomPage{}, fmt.Errorf("list rooms: %w", err)
	}
	page.Rooms = make([]domain.Room, len(rows))
	for i := range rows {
		page.Rooms[i] = rows[i].toDomain()
		page.Rooms[i].Images = imgs[rows[i].ID]
	}
	return page, nil
}

// participationRow is a row of room_participations with the room's and the
// member's public ids joined in.
type participationRow struct {
	bun.BaseModel `bun:"table:room_participations,alias:rq"`

	ID         int64     `bun:"id,pk,autoincrement"`
	PublicID   string    `bun:"public_id,notnull"`
	RoomID     int64     `bun:"room_id,notnull"`
	MemberID   int64     `bun:"member_id,notnull"`
	Kind       int16     `bun:"kind,notnull"`
	Status     int16     `bun:"status,notnull"`
	PendingKey string    `bun:"pending_key,nullzero"`
	CreatedAt  time.Time `bun:"created_at,notnull"`
	DecidedAt  time.Time `bun:"decided_at,nullzero"`

	RoomPublicID   string    `bun:"room_public_id,scanonly"`
	MemberPublicID string    `bun:"member_public_id,scanonly"`
	MemberNickname string    `bun:"member_nickname,scanonly"`
	MemberDeleted  time.Time `bun:"member_deleted_at,scanonly"`
}

func (r *participationRow) toDomain() domain.Participation {
	return domain.Participation{
		ID:        r.PublicID,
		Key:       r.ID,
		RoomID:    r.RoomPublicID,
		MemberID:  r.MemberPublicID,
		Kind:      domain.ParticipationKind(r.Kind),
		Status:    domain.ParticipationStatus(r.Status),
		CreatedAt: r.CreatedAt.UTC(),
		DecidedAt: utcOrZero(r.DecidedAt),
	}
}

func pendingKey(room, member int64) string {
	return strconv.FormatInt(room, 10) + ":" + strconv.FormatInt(member, 10)
}

func errParticipationNotFound() error {
	return &domain.Error{Code: domain.ENOTFOUND, Message: "Request not found."}
}

// Participations is the store of join and leave requests.
type Participations struct{}

// Create records a REQUESTED request of p.Kind by p.MemberID for room r
// and sets p.ID, p.Key, p.RoomID, p.Status and times. Errors:
// EREQUESTPENDING while another request of the member for the room is
// pending, ENOTFOUND for an unknown or deleted member.
func (Participations) Create(ctx context.Context, idb bun.IDB, r *domain.Room, p *domain.Participation) error {
	if p.Kind != domain.ParticipationJoin && p.Kind != domain.ParticipationLeave {
		return fmt.Errorf("create participation: invalid kind %d", int(p.Kind))
	}
	member, err := memberKey(ctx, idb, p.MemberID)
	if err != nil {
		return fmt.Errorf("create participation for %s: %w", p.MemberID, err)
	}
	row := participationRow{
		PublicID:   NewPublicID(),
		RoomID:     r.Key,
		MemberID:   member,
		Kind:       int16(p.Kind),
		Status:     int16(domain.ParticipationRequested),
		PendingKey: pendingKey(r.Key, member),
		CreatedAt:  dbTime(p.CreatedAt),
	}
	if _, err := idb.NewInsert().Model(&row).Exec(ctx); err != nil {
		return fmt.Errorf("create participation for %s: %w", p.MemberID, translate(err))
	}
	p.ID, p.Key, p.RoomID, p.Status = row.PublicID, row.ID, r.ID, domain.ParticipationRequested
	p.CreatedAt, p.DecidedAt = row.CreatedAt, time.Time{}
	return nil
}

// selectParticipations starts a query over requests with the room's and
// the member's public ids joined in.
func selectParticipations(idb bun.IDB, dest any) *bun.SelectQuery {
	return idb.NewSelect().Model(dest).
		ColumnExpr("rq.*").
		ColumnExpr("r.public_id AS room_public_id").
		ColumnExpr("m.public_id AS member_public_id").
		ColumnExpr("m.nickname AS member_nickname").
		ColumnExpr("m.deleted_at AS member_deleted_at").
		Join("JOIN rooms AS r ON r.id = rq.room_id").
		Join("JOIN members AS m ON m.id = rq.member_id")
}

// findParticipation returns the row of the request matching where.
// Errors: ENOTFOUND.
func findParticipation(ctx context.Context, idb bun.IDB, where string, arg any) (*participationRow, error) {
	var rows []participationRow
	err := selectParticipations(idb, &rows).Where(where, arg).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("find request %v: %w", arg, translate(err))
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("find request %v: %w", arg, errParticipationNotFound())
	}
	return &rows[0], nil
}

// FindByID returns the request with public id id, whoever's it is.
// Errors: ENOTFOUND.
func (Participations) FindByID(ctx context.Context, idb bun.IDB, id string) (*domain.Participation, error) {
	row, err := findParticipation(ctx, idb, "rq.public_id = ?", id)
	if err != nil {
		return nil, err
	}
	p := row.toDomain()
	return &p, nil
}

// Admission is what Admit decided.
type Admission struct {
	Request domain.Participation // as it is now
	Room    domain.Room          // as Admit read it (participants included), before its change
	// Nickname is the requester's, for the host's notification.
	Nickname string
	Decided  bool // false: the request had been decided before
}

// Admit decides the REQUESTED request with row id key (domain.Decide) and
// applies it in idb, which must be a transaction: a JOINED adds the
// participant and a LEFT removes them, each with a version-checked update
// of the room's count; then the request takes its final status. A request
// already decided is returned as it is (Decided false). Errors: ErrStale
// when the room or the request changed since they were read: roll back,
// and retry if you like; ENOTFOUND for an unknown request.
func (Participations) Admit(ctx context.Context, idb bun.IDB, key int64, now time.Time) (*Admission, error) {
	req, err := findParticipation(ctx, idb, "rq.id = ?", key)
	if err != nil {
		return nil, fmt.Errorf("admit: %w", err)
	}
	p := req.toDomain()
	if p.Status != domain.ParticipationRequested {
		return &Admission{Request: p}, nil
	}
	r, err := (Rooms{}).FindByKey(ctx, idb, req.RoomID)
	if err != nil {
		return nil, fmt.Errorf("admit request %s: %w", p.ID, err)
	}
	status := domain.Decide(r, p.Kind, p.MemberID, now)
	member, nickname := req.MemberID, req.MemberNickname
	if !req.MemberDeleted.IsZero() && (status == domain.ParticipationJoined || status == domain.ParticipationLeft) {
		status = domain.ParticipationRejectedInvalid // the account is gone
	}
	switch status {
	case domain.ParticipationJoined:
		q := bump(idb, r, now).
			Set("participant_count = participant_count + 1").
			Where("participant_count < capacity")
		if err := execBumped(ctx, q, "admit request "+p.ID); err != nil {
			return nil, err
		}
		row := participantRow{RoomID: r.Key, MemberID: member, JoinedAt: dbTime(now)}
		if _, err := idb.NewInsert().Model(&row).Exec(ctx); err != nil {
			return nil, fmt.Errorf("admit request %s: %w", p.ID, translate(err))
		}
	case domain.ParticipationLeft:
		q := bump(idb, r, now).
			Set("participant_count = participant_count - 1").
			Where("participant_count > 1")
		if err := execBumped(ctx, q, "admit request "+p.ID); err != nil {
			return nil, err
		}
		res, err := idb.NewDelete().Model((*participantRow)(nil)).
			Where("room_id = ?", r.Key).Where("member_id = ?", member).Where("host = ?", false).
			Exec(ctx)
		if err != nil {
			return nil, fmt.Errorf("admit request %s: %w", p.ID, translate(err))
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			// The version said nothing changed; a missing row means it did.
			return nil, fmt.Errorf("admit request %s: participant row: %v: %w", p.ID, err, ErrStale)
		}
	}
	res, err := idb.NewUpdate().Model((*participationRow)(nil)).
		Set("status = ?", int16(status)).
		Set("pending_key = NULL").
		Set("decided_at = ?", dbTime(now)).
		Where("id = ?", key).
		Where("status = ?", int16(domain.ParticipationRequested)).
		Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("admit request %s: %w", p.ID, translate(err))
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return nil, fmt.Errorf("admit request %s: decided elsewhere: %v: %w", p.ID, err, ErrStale)
	}
	p.Status, p.DecidedAt = status, dbTime(now)
	return &Admission{Request: p, Room: *r, Nickname: nickname, Decided: true}, nil
}

// Pending returns up to limit requests still REQUESTED that were created
// before before, oldest first: the sweep's read, for requests whose task
// was lost.
func (Participations) Pending(ctx context.Context, idb bun.IDB, before time.Time, limit int) ([]domain.Participation, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	var rows []participationRow
	err := selectParticipations(idb, &rows).
		Where("rq.status = ?", int16(domain.ParticipationRequested)).
		Where("rq.created_at < ?", dbTime(before)).
		OrderExpr("rq.created_at ASC, rq.id ASC").
		Limit(int64(limit)).
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("list pending requests: %w", translate(err))
	}
	out := make([]domain.Participation, len(rows))
	for i := range rows {
		out[i] = rows[i].toDomain()
	}
	return out, nil
}

// MarkAttendance records that the guests (public ids) of room r came, as
// its host says, and gives each one newly marked a manner point (and its
// share of the activity score, domain.ActivityPerMannerPoint), all in
// idb (a transaction). It returns the ids newly marked; guests already
// marked are passed over. Errors: ENOTPARTICIPATING (field "member_ids")
// when one of them is not a guest of r.
func (Rooms) MarkAttendance(ctx context.Context, idb bun.IDB, r *domain.Room, memberIDs []string) ([]string, error) {
	guest := make(map[string]domain.Participant, len(r.Participants))
	for _, p := range r.Participants {
		if !p.Host {
			guest[p.MemberID] = p
		}
	}
	var fresh []string
	seen := make(map[string]bool, len(memberIDs))
	for _, id := range memberIDs {
		p, ok := guest[id]
		if !ok {
			return nil, domain.FieldErrorf(domain.ENOTPARTICIPATING, "member_ids", "Member %s is not a guest of this room.", id)
		}
		if !p.Attended && !seen[id] {
			fresh = append(fresh, id)
		}
		seen[id] = true
	}
	if len(fresh) == 0 {
		return nil, nil
	}
	members := idb.NewSelect().Model((*memberRow)(nil)).Column("id").Where("public_id IN (?)", bun.In(fresh))
	// The flag flips once: a concurrent marking of the same guest finds it
	// set and gives no second point.
	res, err := idb.NewUpdate().Model((*participantRow)(nil)).
		Set("attended = ?", true).
		Where("room_id = ?", r.Key).
		Where("attended = ?", false).
		Where("member_id IN (?)", members).
		Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("mark attendance in %s: %w", r.ID, translate(err))
	}
	if n, err := res.RowsAffected(); err != nil || n != int64(len(fresh)) {
		return nil, fmt.Errorf("mark attendance in %s: %d of %d rows: %v: %w", r.ID, n, len(fresh), err, ErrStale)
	}
	if _, err := idb.NewUpdate().Model((*memberRow)(nil)).
		Set("manner_points = manner_points + 1").
		Set("activity_score = activity_score + ?", domain.ActivityPerMannerPoint).
		Where("public_id IN (?)", bun.In(fresh)).
		Exec(ctx); err != nil {
		return nil, fmt.Errorf("mark attendance in %s: manner points: %w", r.ID, translate(err))
	}
	return fresh, nil
}

// Evaluate records guest memberID's evaluation of room r's host, a
// manner-point change of points (not 0), and applies it to the host (the
// manner points and their share of the activity score), in
// idb (a transaction). Errors: ENOTPARTICIPATING when memberID is not a
// guest of r; EALREADYEVALUATED when they have evaluated this room.
func (Rooms) Evaluate(ctx context.Context, idb bun.IDB, r *domain.Room, memberID string, points int) error {
	if points == 0 {
		return fmt.Errorf("evaluate room %s: an evaluation changes the points", r.ID)
	}
	var guest *domain.Participant
	for i, p := range r.Participants {
		if p.MemberID == memberID && !p.Host {
			guest = &r.Participants[i]
		}
	}
	if guest == nil {
		return domain.Errorf(domain.ENOTPARTICIPATING, "Only the room's guests evaluate its host.")
	}
	res, err := idb.NewUpdate().Model((*participantRow)(nil)).
		Set("evaluated = ?", int16(points)).
		Where("room_id = ?", r.Key).
		Where("evaluated = 0").
		Where("member_id = (SELECT m.id FROM members AS m WHERE m.public_id = ?)", memberID).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("evaluate room %s: %w", r.ID, translate(err))
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return &domain.Error{Code: domain.EALREADYEVALUATED, Message: "You have already evaluated this room's host.", Err: err}
	}
	if _, err := idb.NewUpdate().Model((*memberRow)(nil)).
		Set("manner_points = manner_points + ?", points).
		Set("activity_score = activity_score + ?", domain.ActivityPerMannerPoint*points).
		Where("public_id = ?", r.HostID).
		Exec(ctx); err != nil {
		return fmt.Errorf("evaluate room %s: manner points: %w", r.ID, translate(err))
	}
	guest.Evaluation = points
	return nil
}

// LeaveAllForMember takes the member (a public id) out of every room that
// is not completed, as their account is being deleted; run it in the
// deleting transaction. Rooms they host are cancelled and returned (as they
// were, participants included) for the caller to notify the guests; from
// the others they leave, the count following the rows; their pending
// requests are closed as REJECTED_INVALID. Completed rooms keep them: the
// match history shows who was there. Each change bumps the room's version,
// so a worker deciding a request meanwhile reads the room again.
func (Rooms) LeaveAllForMember(ctx context.Context, idb bun.IDB, memberID string, now time.Time) ([]domain.Room, error) {
	member, err := memberKey(ctx, idb, memberID)
	if err != nil {
		return nil, fmt.Errorf("leave rooms of %s: %w", memberID, err)
	}
	at := dbTime(now)
	if _, err := idb.NewUpdate().Model((*participationRow)(nil)).
		Set("status = ?", int16(domain.ParticipationRejectedInvalid)).
		Set("pending_key = NULL").
		Set("decided_at = ?", at).
		Where("member_id = ?", member).
		Where("status = ?", int16(domain.ParticipationRequested)).
		Exec(ctx); err != nil {
		return nil, fmt.Errorf("leave rooms of %s: requests: %w", memberID, translate(err))
	}

	var hosted []int64
	if err := idb.NewSelect().Model((*roomRow)(nil)).Column("r.id").
		Where("r.host_id = ?", member).Where("r.deleted_at IS NULL").Where("r.completed_at IS NULL").
		Scan(ctx, &hosted); err != nil {
		return nil, fmt.Errorf("leave rooms of %s: hosted: %w", memberID, translate(err))
	}
	cancelled := make([]domain.Room, 0, len(hosted))
	for _, k := range hosted {
		r, err := (Rooms{}).FindByKey(ctx, idb, k)
		if err != nil {
			return nil, err
		}
		cancelled = append(cancelled, *r)
	}
	if len(hosted) > 0 {
		if _, err := idb.NewUpdate().Model((*roomRow)(nil)).
			Set("deleted_at = ?", at).Set("version = version + 1").Set("updated_at = ?", at).
			Where("id IN (?)", bun.In(hosted)).
			Exec(ctx); err != nil {
			return nil, fmt.Errorf("leave rooms of %s: cancel: %w", memberID, translate(err))
		}
	}

	var joined []int64
	if err := idb.NewSelect().Model((*participantRow)(nil)).Column("rp.room_id").
		Join("JOIN rooms AS r ON r.id = rp.room_id").
		Where("rp.member_id = ?", member).Where("rp.host = ?", false).
		Where("r.deleted_at IS NULL").Where("r.completed_at IS NULL").
		Scan(ctx, &joined); err != nil {
		return nil, fmt.Errorf("leave rooms of %s: joined: %w", memberID, translate(err))
	}
	if len(joined) > 0 {
		// Lock the rooms first, in id order: a worker's join or leave in
		// flight commits before the recount below, whose snapshot
		// (PostgreSQL takes one per statement) then includes it. SQLite's
		// single writer needs no lock.
		if idb.Dialect().Name() != dialect.SQLite {
			var locked []int64
			if err := idb.NewSelect().Model((*roomRow)(nil)).Column("r.id").
				Where("r.id IN (?)", bun.In(joined)).OrderExpr("r.id ASC").For("UPDATE").
				Scan(ctx, &locked); err != nil {
				return nil, fmt.Errorf("leave rooms of %s: lock: %w", memberID, translate(err))
			}
		}
		if _, err := idb.NewDelete().Model((*participantRow)(nil)).
			Where("member_id = ?", member).Where("room_id IN (?)", bun.In(joined)).
			Exec(ctx); err != nil {
			return nil, fmt.Errorf("leave rooms of %s: rows: %w", memberID, translate(err))
		}
		// The count is taken from the rows rather than decremented: the
		// list of rooms above may come from an older snapshot (MySQL's
		// repeatable read) than a leave a worker committed meanwhile.
		if _, err := idb.NewUpdate().Model((*roomRow)(nil)).
			Set("participant_count = (SELECT COUNT(*) FROM room_participants AS rp WHERE rp.room_id = r.id)").
			Set("version = version + 1").Set("updated_at = ?", at).
			Where("id IN (?)", bun.In(joined)).
			Exec(ctx); err != nil {
			return nil, fmt.Errorf("leave rooms of %s: count: %w", memberID, translate(err))
		}
	}
	return cancelled, nil
}
