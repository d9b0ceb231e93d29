package missiondb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

// ErrVerifySlotTaken is the cause of the EQUOTAREACHED error of a post
// that lost the day's or the week's slot it counted on to a concurrent one:
// the transaction is spoilt (PostgreSQL aborts it), but running it again
// recounts and may still find room.
var ErrVerifySlotTaken = errors.New("verification slot taken by a concurrent post")

// VerifyParams is one photo a member posts for a mission.
type VerifyParams struct {
	MissionID string // the mission's public id
	MemberID  string // the poster's public id
	ImageID   string // the photo's public id
	Now       time.Time
	// Loc is the missions' zone: days begin at its midnights and windows
	// are its times of day.
	Loc *time.Location
}

// Verified is a stored verification with what the answer shows besides.
type Verified struct {
	Verification domain.MissionVerification
	Mission      *domain.Mission
	// DayCount and WeekCount are the poster's photos of the day and the
	// week, this one included.
	DayCount, WeekCount int
}

// verifierRow is the poster's membership.
type verifierRow struct {
	ID       int64  `bun:"id"`
	MemberID int64  `bun:"member_id"`
	Status   int16  `bun:"status"`
	Nickname string `bun:"nickname"`
}

// Verify stores p's photo for the mission in a transaction of its own. The
// transaction locks the mission row first (SQLite's writer lock is taken
// at BEGIN), so two posts of a mission take turns, a close cannot slip
// between the status check and the insert, and the counts it reads are
// current. The slot uniques stay the last guard: a post that loses a race
// for a slot anyway is run once more, recounting, and answers
// EQUOTAREACHED only if it loses again.
//
// Errors: ENOTFOUND (the mission, also a private one to a non-member;
// field "image_id" for the image), ENOTPARTICIPATING (not a member of a
// public mission, or LEFT), EMISSIONNOTONGOING,
// EOUTSIDEWINDOW, EFORBIDDEN / EINVALID (field "image_id": another's image,
// another purpose, an upload not completed), EIMAGEUSED, EQUOTAREACHED.
func (Missions) Verify(ctx context.Context, bdb *bun.DB, p VerifyParams) (*Verified, error) {
	var out *Verified
	var err error
	for attempt := 1; ; attempt++ {
		err = db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
			v, err := verify(ctx, tx, p)
			out = v
			return err
		})
		if !errors.Is(err, ErrVerifySlotTaken) || attempt == 2 {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// verify is one run of Verify's transaction.
func verify(ctx context.Context, idb bun.IDB, p VerifyParams) (*Verified, error) {
	// The lock comes first: MySQL's repeatable read fixes its snapshot at
	// the first plain read, which must see every post that went before.
	lock := idb.NewSelect().Model((*missionRow)(nil)).Column("mi.id").Where("mi.public_id = ?", p.MissionID)
	if idb.Dialect().Name() != dialect.SQLite {
		lock = lock.For("UPDATE")
	}
	var keys []int64
	if err := lock.Scan(ctx, &keys); err != nil {
		return nil, fmt.Errorf("verify mission %s: lock: %w", p.MissionID, db.Translate(err))
	}
	if len(keys) == 0 {
		return nil, errMissionNotFound()
	}
	m, err := (Missions{}).FindByKey(ctx, idb, keys[0])
	if err != nil {
		return nil, err
	}
	member, err := verifier(ctx, idb, m.Key, p.MemberID)
	if m.Private && domain.ErrorCode(err) == domain.ENOTPARTICIPATING && member == nil {
		// A private mission is not shown to outsiders.
		return nil, errMissionNotFound()
	}
	if err != nil {
		return nil, fmt.Errorf("verify mission %s: %w", m.ID, err)
	}
	day, window, err := m.VerifyAt(p.Now, p.Loc)
	if err != nil {
		return nil, err
	}
	img, imageKey, err := verificationImage(ctx, idb, p.ImageID, p.MemberID)
	if err != nil {
		return nil, err
	}
	week := domain.Week(day)
	dayCount, weekCount, err := verificationCountsOf(ctx, idb, m.Key, member.MemberID, day, week)
	if err != nil {
		return nil, fmt.Errorf("verify mission %s: %w", m.ID, err)
	}
	if err := m.Schedule.CheckQuota(dayCount, weekCount); err != nil {
		return nil, err
	}
	now := db.DBTime(p.Now)
	row := missionVerificationRow{
		PublicID: db.NewPublicID(), MissionID: m.Key, MemberID: member.MemberID, ImageID: imageKey,
		Day: int16(day), DaySlot: int16(dayCount), Week: int16(week), WeekSlot: int16(weekCount),
		Window: int16(window), CreatedAt: now,
	}
	if _, err := idb.NewInsert().Model(&row).Exec(ctx); err != nil {
		return nil, fmt.Errorf("verify mission %s: %w", m.ID, verifyInsertError(err))
	}
	return &Verified{
		Verification: domain.MissionVerification{
			ID: row.PublicID, Key: row.ID, MissionID: m.ID, MemberID: p.MemberID, Nickname: member.Nickname,
			Image: *img, Day: day, Week: week, Window: m.Windows[window], CreatedAt: now,
		},
		Mission: m, DayCount: dayCount + 1, WeekCount: weekCount + 1,
	}, nil
}

// verifier returns the ACTIVE membership of the member with public id
// memberID in the mission with row id missionKey; the error of one who
// left comes with their membership.
func verifier(ctx context.Context, idb bun.IDB, missionKey int64, memberID string) (*verifierRow, error) {
	var rows []verifierRow
	err := idb.NewSelect().TableExpr("mission_members AS mm").
		ColumnExpr("mm.id, mm.member_id, mm.status, m.nickname").
		Join("JOIN members AS m ON m.id = mm.member_id").
		Where("mm.mission_id = ?", missionKey).
		Where("m.public_id = ?", memberID).
		Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("membership of %s: %w", memberID, db.Translate(err))
	}
	switch {
	case len(rows) == 0:
		return nil, domain.Errorf(domain.ENOTPARTICIPATING, "You are not a member of this mission.")
	case domain.MissionMemberStatus(rows[0].Status) != domain.MissionMemberActive:
		return &rows[0], domain.Errorf(domain.ENOTPARTICIPATING, "You left this mission; you can no longer post photos for it.")
	}
	return &rows[0], nil
}

// verificationImage returns image id and its row id if member may post it
// as a verification photo: theirs, uploaded for verifications, stored, and
// not posted before.
func verificationImage(ctx context.Context, idb bun.IDB, id, member string) (*domain.Image, int64, error) {
	const field = "image_id"
	img, err := (db.Images{}).FindByID(ctx, idb, id)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return nil, 0, domain.FieldErrorf(domain.ENOTFOUND, field, "Image %s not found.", id)
	}
	if err != nil {
		return nil, 0, err
	}
	if err := img.CheckAttach(member, domain.ImagePurposeVerification, field); err != nil {
		return nil, 0, err
	}
	keys, err := db.ImageKeys(ctx, idb, []string{id})
	if err != nil {
		return nil, 0, err
	}
	used, err := idb.NewSelect().Model((*missionVerificationRow)(nil)).Where("image_id = ?", keys[id]).Exists(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("image %s used: %w", id, db.Translate(err))
	}
	if used {
		return nil, 0, errImageUsed(nil)
	}
	return img, keys[id], nil
}

func errImageUsed(cause error) error {
	return &domain.Error{Code: domain.EIMAGEUSED, Field: "image_id",
		Message: "This photo was posted already; each photo counts once.", Err: cause}
}

// verificationCountsOf counts member's photos of the mission on day and in
// week.
func verificationCountsOf(ctx context.Context, idb bun.IDB, missionKey, member int64, day, week int) (int, int, error) {
	count := func(col string, v int) (int, error) {
		n, err := idb.NewSelect().Model((*missionVerificationRow)(nil)).
			Where("mission_id = ?", missionKey).Where("member_id = ?", member).Where("? = ?", bun.Ident(col), v).
			Count(ctx)
		if err != nil {
			return 0, fmt.Errorf("count verifications by %s: %w", col, db.Translate(err))
		}
		return int(n), nil
	}
	d, err := count("day", day)
	if err != nil {
		return 0, 0, err
	}
	w, err := count("week", week)
	return d, w, err
}

// verifyInsertError names the unique index a verification insert broke:
// the image's (EIMAGEUSED) or a slot's (a lost race, ErrVerifySlotTaken).
// PostgreSQL and MySQL report the index name, SQLite its columns; both
// contain the column that tells them apart.
func verifyInsertError(err error) error {
	name, ok := db.UniqueViolation(err)
	switch {
	case !ok:
		return db.Translate(err)
	case strings.Contains(name, "image_id"):
		return errImageUsed(err)
	case strings.Contains(name, "day_slot"), strings.Contains(name, "week_slot"):
		return &domain.Error{Code: domain.EQUOTAREACHED, Message: "Another photo of yours took the last place of the quota.",
			Err: fmt.Errorf("%w: %w", ErrVerifySlotTaken, err)}
	}
	return db.Translate(err)
}

// VerificationCounts returns how many photos each member of the mission
// with row id missionKey posted, keyed by mission_members row id
// (domain.MissionMember.Key); members without photos are absent.
func (Missions) VerificationCounts(ctx context.Context, idb bun.IDB, missionKey int64) (map[int64]int, error) {
	days, err := (Missions{}).VerificationDayCounts(ctx, idb, missionKey)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]int)
	for _, d := range days {
		out[d.MemberKey] += d.Count
	}
	return out, nil
}

// VerificationDayCount is how many photos a member posted on a mission
// day.
type VerificationDayCount struct {
	MemberKey int64 // mission_members row id (domain.MissionMember.Key)
	Day       int   // mission day, 0 = the start's local date
	Count     int
}

// VerificationDayCounts returns the photo counts of the mission with row id
// missionKey per member and day, by member key and day; only non-zero
// counts are listed.
func (Missions) VerificationDayCounts(ctx context.Context, idb bun.IDB, missionKey int64) ([]VerificationDayCount, error) {
	var rows []struct {
		MemberKey int64 `bun:"member_key"`
		Day       int16 `bun:"day"`
		N         int64 `bun:"n"`
	}
	err := idb.NewSelect().TableExpr("mission_verifications AS mv").
		ColumnExpr("mm.id AS member_key, mv.day AS day, COUNT(*) AS n").
		Join("JOIN mission_members AS mm ON mm.mission_id = mv.mission_id AND mm.member_id = mv.member_id").
		Where("mv.mission_id = ?", missionKey).
		GroupExpr("mm.id, mv.day").
		OrderExpr("mm.id, mv.day").
		Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("verification counts of mission %d: %w", missionKey, db.Translate(err))
	}
	out := make([]VerificationDayCount, len(rows))
	for i, r := range rows {
		out[i] = VerificationDayCount{MemberKey: r.MemberKey, Day: int(r.Day), Count: int(r.N)}
	}
	return out, nil
}

// verificationImageRow is a verification's image with the verification
// joined in.
type verificationImageRow struct {
	db.ImageRow `bun:",extend"`

	VKey       int64     `bun:"v_key,scanonly"`
	VPublicID  string    `bun:"v_public_id,scanonly"`
	VMemberID  string    `bun:"v_member_id,scanonly"`
	VNickname  string    `bun:"v_nickname,scanonly"`
	VDay       int16     `bun:"v_day,scanonly"`
	VWeek      int16     `bun:"v_week,scanonly"`
	VWindow    int16     `bun:"v_window,scanonly"`
	VCreatedAt time.Time `bun:"v_created_at,scanonly"`
}

// VerificationPage is one page of a mission's photos, newest first.
type VerificationPage struct {
	Verifications []domain.MissionVerification
	// Next is the cursor of the following (older) page; "" on the last.
	Next string
}

// Verifications returns a page of at most limit of mission m's photos,
// newest first, after cursor ("" = the newest), only those of the member
// with public id memberID when it is not "". Errors: EINVALID (field
// "cursor") for a cursor that is not one of m's photos, EINVALID (field
// "limit") for a limit below 1.
func (Missions) Verifications(ctx context.Context, idb bun.IDB, m *domain.Mission, memberID, cursor string, limit int) (VerificationPage, error) {
	if err := db.CheckLimit(limit); err != nil {
		return VerificationPage{}, err
	}
	// The cursor is the public id of the last photo of the previous page.
	var before int64
	if cursor != "" {
		var ids []int64
		err := idb.NewSelect().Model((*missionVerificationRow)(nil)).Column("mv.id").
			Where("mv.public_id = ?", cursor).Where("mv.mission_id = ?", m.Key).Scan(ctx, &ids)
		if err != nil {
			return VerificationPage{}, fmt.Errorf("list verifications: %w", db.Translate(err))
		}
		if len(ids) == 0 {
			return VerificationPage{}, domain.FieldErrorf(domain.EINVALID, "cursor", "Invalid cursor.")
		}
		before = ids[0]
	}
	var rows []verificationImageRow
	q := db.SelectImages(idb, &rows).
		ColumnExpr("mv.id AS v_key, mv.public_id AS v_public_id, mv.day AS v_day, mv.week AS v_week").
		ColumnExpr("mv.window_position AS v_window, mv.created_at AS v_created_at").
		ColumnExpr("vm.public_id AS v_member_id, vm.nickname AS v_nickname").
		Join("JOIN mission_verifications AS mv ON mv.image_id = i.id").
		Join("JOIN members AS vm ON vm.id = mv.member_id").
		Where("mv.mission_id = ?", m.Key).
		OrderExpr("mv.id DESC").
		Limit(int64(limit) + 1) // one more tells whether there is a next page
	if memberID != "" {
		q = q.Where("vm.public_id = ?", memberID)
	}
	if before > 0 {
		q = q.Where("mv.id < ?", before)
	}
	if err := q.Scan(ctx); err != nil {
		return VerificationPage{}, fmt.Errorf("list verifications: %w", db.Translate(err))
	}
	var page VerificationPage
	if len(rows) > limit {
		rows = rows[:limit]
		page.Next = rows[len(rows)-1].VPublicID
	}
	page.Verifications = make([]domain.MissionVerification, 0, len(rows))
	for i := range rows {
		r := &rows[i]
		img, err := r.Image()
		if err != nil {
			return VerificationPage{}, err
		}
		v := domain.MissionVerification{
			ID: r.VPublicID, Key: r.VKey, MissionID: m.ID, MemberID: r.VMemberID, Nickname: r.VNickname,
			Image: *img, Day: int(r.VDay), Week: int(r.VWeek), CreatedAt: r.VCreatedAt.UTC(),
		}
		if w := int(r.VWindow); w >= 0 && w < len(m.Windows) {
			v.Window = m.Windows[w]
		}
		page.Verifications = append(page.Verifications, v)
	}
	return page, nil
}
