package dbtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/missiondb"
	"github.com/moim/moim/domain"
)

// Rows written by SeedMissions: a mission in any status, as the API and
// earlier transitions would have left it, stored directly so tests (and
// the load programs) of later steps need not replay the earlier ones.
// They are frozen copies of the columns the seed fills, apart from db's
// own rows, so a change there does not silently change what is seeded.

type missionRow struct {
	bun.BaseModel `bun:"table:missions"`

	ID          int64     `bun:"id,pk,autoincrement"`
	PublicID    string    `bun:"public_id"`
	Code        string    `bun:"code"`
	HostID      int64     `bun:"host_id"`
	Title       string    `bun:"title"`
	Type        int16     `bun:"type"`
	Description string    `bun:"description"`
	Stake       int64     `bun:"stake"`
	Capacity    int16     `bun:"capacity"`
	MemberCount int16     `bun:"member_count"`
	Private     bool      `bun:"private"`
	Status      int16     `bun:"status"`
	StartsAt    time.Time `bun:"starts_at,nullzero"`
	EndsAt      time.Time `bun:"ends_at,nullzero"`
	Weeks       int16     `bun:"weeks"`
	DaysPerWeek int16     `bun:"days_per_week"`
	PerDay      int16     `bun:"per_day"`
	Version     int64     `bun:"version"`
	CreatedAt   time.Time `bun:"created_at"`
	UpdatedAt   time.Time `bun:"updated_at"`
}

type windowRow struct {
	bun.BaseModel `bun:"table:mission_windows"`

	ID          int64 `bun:"id,pk,autoincrement"`
	MissionID   int64 `bun:"mission_id"`
	Position    int16 `bun:"position"`
	StartMinute int16 `bun:"start_minute"`
	EndMinute   int16 `bun:"end_minute"`
}

type memberRow struct {
	bun.BaseModel `bun:"table:mission_members"`

	ID        int64     `bun:"id,pk,autoincrement"`
	MissionID int64     `bun:"mission_id"`
	MemberID  int64     `bun:"member_id"`
	Status    int16     `bun:"status"`
	Stake     int64     `bun:"stake"`
	JoinedAt  time.Time `bun:"joined_at"`
}

type imageRow struct {
	bun.BaseModel `bun:"table:images"`

	ID          int64     `bun:"id,pk,autoincrement"`
	PublicID    string    `bun:"public_id"`
	OwnerID     int64     `bun:"owner_id"`
	Purpose     int16     `bun:"purpose"`
	Status      int16     `bun:"status"`
	ContentType string    `bun:"content_type"`
	Width       int32     `bun:"width"`
	Height      int32     `bun:"height"`
	Bytes       int64     `bun:"bytes"`
	Variants    string    `bun:"variants"`
	CreatedAt   time.Time `bun:"created_at"`
	UpdatedAt   time.Time `bun:"updated_at"`
}

type verificationRow struct {
	bun.BaseModel `bun:"table:mission_verifications"`

	ID        int64     `bun:"id,pk,autoincrement"`
	PublicID  string    `bun:"public_id"`
	MissionID int64     `bun:"mission_id"`
	MemberID  int64     `bun:"member_id"`
	ImageID   int64     `bun:"image_id"`
	Day       int16     `bun:"day"`
	DaySlot   int16     `bun:"day_slot"`
	Week      int16     `bun:"week"`
	WeekSlot  int16     `bun:"week_slot"`
	Window    int16     `bun:"window_position"`
	CreatedAt time.Time `bun:"created_at"`
}

// MissionFixture describes a mission for SeedMission.
type MissionFixture struct {
	Key         int64  // missions.id; 0 means the next one
	PublicID    string // "" means a new one
	Title       string // "" means "seeded mission"
	Description string // "" means "seeded for a test"
	Status      domain.MissionStatus
	Private     bool
	Stake       int64 // 0 means 1000
	// Schedule; a zero StartsAt stores none (NULL), a zero EndsAt with a
	// start means 7 × Weeks days after the start.
	StartsAt                   time.Time
	EndsAt                     time.Time
	Weeks, DaysPerWeek, PerDay int
	Windows                    []domain.MissionWindow
	// Members, the host first.
	Members []MissionMemberSeed
}

// MissionMemberSeed is one member of a seeded mission.
type MissionMemberSeed struct {
	Key      int64                      // members.id
	RowKey   int64                      // mission_members.id; 0 means the next one
	Status   domain.MissionMemberStatus // zero means ACTIVE
	JoinedAt time.Time                  // zero means the seed's now
	// Days are the mission days of the member's verifications, one entry
	// per verification (a day repeated for several in a day).
	Days []int
}

// SeedMission stores the mission s describes, with its windows, members
// (their stakes as given, no ledger entries) and verifications (each with
// an image of its own), created at now, and returns its row id.
func SeedMission(ctx context.Context, idb bun.IDB, s MissionFixture, now time.Time) (int64, error) {
	keys, err := SeedMissions(ctx, idb, []MissionFixture{s}, now)
	if err != nil {
		return 0, err
	}
	return keys[0], nil
}

// SeedMissions is SeedMission for many missions at once, one multi-row
// insert a table, and returns their row ids in order. It opens no
// transaction: callers wanting all or nothing pass one.
func SeedMissions(ctx context.Context, idb bun.IDB, fs []MissionFixture, now time.Time) ([]int64, error) {
	now = now.UTC()
	fs = append([]MissionFixture(nil), fs...) // defaults filled in below stay ours
	ms := make([]missionRow, len(fs))
	for i, s := range fs {
		if s.PublicID == "" {
			s.PublicID = db.NewPublicID()
		}
		if s.Title == "" {
			s.Title = "seeded mission"
		}
		if s.Description == "" {
			s.Description = "seeded for a test"
		}
		if s.Stake == 0 {
			s.Stake = 1000
		}
		if s.EndsAt.IsZero() && !s.StartsAt.IsZero() {
			s.EndsAt = s.StartsAt.AddDate(0, 0, 7*s.Weeks)
		}
		active := 0
		for _, m := range s.Members {
			if m.Status == 0 || m.Status == domain.MissionMemberActive {
				active++
			}
		}
		fs[i] = s
		ms[i] = missionRow{ID: s.Key, PublicID: s.PublicID, Code: db.NewPublicID()[:domain.MissionCodeLen],
			HostID: s.Members[0].Key, Title: s.Title, Type: int16(domain.MissionExercise), Description: s.Description,
			Stake: s.Stake, Capacity: domain.MissionCapacityMax, MemberCount: int16(active), Private: s.Private,
			Status: int16(s.Status), StartsAt: s.StartsAt.UTC(), EndsAt: s.EndsAt.UTC(), Weeks: int16(s.Weeks),
			DaysPerWeek: int16(s.DaysPerWeek), PerDay: int16(s.PerDay), Version: 1, CreatedAt: now, UpdatedAt: now}
	}
	if err := insertRows(ctx, idb, "missions", &ms); err != nil {
		return nil, err
	}
	var ws []windowRow
	var mms []memberRow
	var imgs []imageRow
	var vs []verificationRow
	for i, s := range fs {
		for p, w := range s.Windows {
			ws = append(ws, windowRow{MissionID: ms[i].ID, Position: int16(p), StartMinute: int16(w.Start), EndMinute: int16(w.End)})
		}
		for _, mm := range s.Members {
			st := mm.Status
			if st == 0 {
				st = domain.MissionMemberActive
			}
			joined := mm.JoinedAt
			if joined.IsZero() {
				joined = now
			}
			mms = append(mms, memberRow{ID: mm.RowKey, MissionID: ms[i].ID, MemberID: mm.Key, Status: int16(st),
				Stake: s.Stake, JoinedAt: joined.UTC()})
			perDay := map[int]int{}
			perWeek := map[int]int{}
			for _, d := range mm.Days {
				imgs = append(imgs, imageRow{PublicID: db.NewPublicID(), OwnerID: mm.Key,
					Purpose: int16(domain.ImagePurposeVerification), Status: int16(domain.ImageReady), Variants: "[]",
					CreatedAt: now, UpdatedAt: now})
				w := domain.Week(d)
				vs = append(vs, Verification{MissionKey: ms[i].ID, MemberKey: mm.Key, Day: d, DaySlot: perDay[d],
					Week: w, WeekSlot: perWeek[w], CreatedAt: now}.row())
				perDay[d]++
				perWeek[w]++
			}
		}
	}
	if err := insertRows(ctx, idb, "mission windows", &ws); err != nil {
		return nil, err
	}
	if err := insertRows(ctx, idb, "mission members", &mms); err != nil {
		return nil, err
	}
	if err := insertRows(ctx, idb, "images", &imgs); err != nil {
		return nil, err
	}
	for i := range vs {
		if imgs[i].ID == 0 {
			return nil, fmt.Errorf("insert images: the driver returned no ids")
		}
		vs[i].ImageID = imgs[i].ID
	}
	if err := insertRows(ctx, idb, "verifications", &vs); err != nil {
		return nil, err
	}
	keys := make([]int64, len(ms))
	for i := range ms {
		keys[i] = ms[i].ID
	}
	return keys, nil
}

// insertRows stores the rows of *rows in one statement, if there are any.
func insertRows[T any](ctx context.Context, idb bun.IDB, what string, rows *[]T) error {
	if len(*rows) == 0 {
		return nil
	}
	if _, err := idb.NewInsert().Model(rows).Exec(ctx); err != nil {
		return fmt.Errorf("insert %s: %w", what, err)
	}
	return nil
}

// MustSeedMission is SeedMission failing tb on an error.
func MustSeedMission(tb testing.TB, idb bun.IDB, s MissionFixture, now time.Time) int64 {
	tb.Helper()
	key, err := SeedMission(context.Background(), idb, s, now)
	if err != nil {
		tb.Fatalf("dbtest: seed mission: %v", err)
	}
	return key
}

// MissionSeed is a mission written straight into the tables, for tests of
// what happens to missions once they exist, its members by public id.
type MissionSeed struct {
	HostID    string   // the host's public id; the first member
	MemberIDs []string // further ACTIVE members (public ids)
	Status    domain.MissionStatus
	Private   bool
	Stake     int64 // 1000 when 0
	Schedule  domain.MissionSchedule
	Windows   []domain.MissionWindow
	// Loc places the end (start + 7 × weeks local days); UTC when nil.
	Loc *time.Location
}

// InsertMission writes s (the mission, its windows and its members, the
// host first, joined a second apart from a day before the start) in one
// transaction and returns the mission's public id and row id. It fails the
// test on any error.
func InsertMission(tb testing.TB, bdb bun.IDB, s MissionSeed) (string, int64) {
	tb.Helper()
	loc := s.Loc
	if loc == nil {
		loc = time.UTC
	}
	created := s.Schedule.StartsAt.Add(-24 * time.Hour).UTC()
	f := MissionFixture{PublicID: db.NewPublicID(), Title: "Morning run", Description: "Run every morning.",
		Status: s.Status, Private: s.Private, Stake: s.Stake, StartsAt: s.Schedule.StartsAt,
		Weeks: s.Schedule.Weeks, DaysPerWeek: s.Schedule.DaysPerWeek, PerDay: s.Schedule.PerDay, Windows: s.Windows}
	if s.Schedule.Set() {
		f.EndsAt = s.Schedule.EndsAt(loc)
	}
	for i, id := range append([]string{s.HostID}, s.MemberIDs...) {
		f.Members = append(f.Members, MissionMemberSeed{Key: MemberKey(tb, bdb, id),
			JoinedAt: created.Add(time.Duration(i) * time.Second)})
	}
	var key int64
	err := bdb.RunInTx(context.Background(), nil, func(ctx context.Context, tx bun.Tx) (err error) {
		key, err = SeedMission(ctx, tx, f, created)
		return err
	})
	if err != nil {
		tb.Fatalf("dbtest: insert mission: %v", err)
	}
	return f.PublicID, key
}

// Verification is a mission_verifications row, for tests that write one
// around Verify.
type Verification struct {
	MissionKey, MemberKey, ImageKey      int64 // missions.id, members.id, images.id
	Day, DaySlot, Week, WeekSlot, Window int
	CreatedAt                            time.Time
}

func (v Verification) row() verificationRow {
	return verificationRow{PublicID: db.NewPublicID(), MissionID: v.MissionKey, MemberID: v.MemberKey, ImageID: v.ImageKey,
		Day: int16(v.Day), DaySlot: int16(v.DaySlot), Week: int16(v.Week), WeekSlot: int16(v.WeekSlot),
		Window: int16(v.Window), CreatedAt: v.CreatedAt.UTC()}
}

// InsertVerification stores v and returns the driver's error as it is,
// so a test can see which unique it broke.
func InsertVerification(ctx context.Context, idb bun.IDB, v Verification) error {
	row := v.row()
	_, err := idb.NewInsert().Model(&row).Exec(ctx)
	return err
}

// SetMissionMemberStatus sets the status of member (a public id) in the
// mission with row id missionKey, as a leave after the start does.
func SetMissionMemberStatus(tb testing.TB, bdb bun.IDB, missionKey int64, member string, st domain.MissionMemberStatus) {
	tb.Helper()
	_, err := bdb.NewUpdate().TableExpr("mission_members").Set("status = ?", int16(st)).
		Where("mission_id = ?", missionKey).
		Where("member_id = (SELECT id FROM members WHERE public_id = ?)", member).
		Exec(context.Background())
	if err != nil {
		tb.Fatalf("dbtest: set mission member status: %v", err)
	}
}

// InsertImage writes an 800×600 JPEG of owner (a public id) with purpose
// and status and returns its public id.
func InsertImage(tb testing.TB, bdb bun.IDB, owner string, p domain.ImagePurpose, st domain.ImageStatus) string {
	tb.Helper()
	created := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	rows := []imageRow{{PublicID: db.NewPublicID(), OwnerID: MemberKey(tb, bdb, owner), Purpose: int16(p), Status: int16(st),
		ContentType: "image/jpeg", Width: 800, Height: 600, Bytes: 1000, Variants: "[]", CreatedAt: created, UpdatedAt: created}}
	if err := insertRows(context.Background(), bdb, "images", &rows); err != nil {
		tb.Fatalf("dbtest: %v", err)
	}
	return rows[0].PublicID
}

// CountVerifications is how many mission_verifications rows there are.
func CountVerifications(tb testing.TB, bdb bun.IDB) int {
	tb.Helper()
	n, err := bdb.NewSelect().Table("mission_verifications").Count(context.Background())
	if err != nil {
		tb.Fatalf("dbtest: count verifications: %v", err)
	}
	return int(n)
}

// MemberKey returns the members.id of the member with public id id.
func MemberKey(tb testing.TB, idb bun.IDB, id string) int64 {
	tb.Helper()
	var key int64
	err := idb.NewSelect().Table("members").Column("id").Where("public_id = ?", id).Scan(context.Background(), &key)
	if err != nil {
		tb.Fatalf("dbtest: member %s: %v", id, err)
	}
	return key
}

// MissionStatus returns the status and version of the mission with row id
// key.
func MissionStatus(tb testing.TB, idb bun.IDB, key int64) (domain.MissionStatus, int64) {
	tb.Helper()
	m, err := (missiondb.Missions{}).FindByKey(context.Background(), idb, key)
	if err != nil {
		tb.Fatalf("dbtest: mission %d: %v", key, err)
	}
	return m.Status, m.Version
}

// VerificationDays returns the mission days of n verifications at perDay
// a day from day 0: 0, 0, 1, 1, … for perDay 2.
func VerificationDays(n, perDay int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i / max(perDay, 1)
	}
	return out
}

// MissionEntries returns the point entries of the mission with row id
// mission as "KIND:members.id" → their amounts.
func MissionEntries(tb testing.TB, idb bun.IDB, mission int64) map[string][]int64 {
	tb.Helper()
	var rows []struct {
		MemberID int64 `bun:"member_id"`
		Kind     int   `bun:"kind"`
		Amount   int64 `bun:"amount"`
	}
	err := idb.NewSelect().Table("point_entries").Column("member_id", "kind", "amount").
		Where("mission_id = ?", mission).Scan(context.Background(), &rows)
	if err != nil {
		tb.Fatalf("dbtest: mission %d entries: %v", mission, err)
	}
	out := map[string][]int64{}
	for _, r := range rows {
		k := fmt.Sprintf("%v:%d", domain.PointKind(r.Kind), r.MemberID)
		out[k] = append(out[k], r.Amount)
	}
	return out
}

// CheckBalances fails tb unless every point balance equals the sum of its
// entries.
func CheckBalances(tb testing.TB, idb bun.IDB) {
	tb.Helper()
	var bad int
	err := idb.NewSelect().Table("point_balances").ColumnExpr("COUNT(*)").
		Where("balance <> (SELECT COALESCE(SUM(e.amount), 0) FROM point_entries AS e WHERE e.member_id = point_balances.member_id)").
		Scan(context.Background(), &bad)
	if err != nil || bad != 0 {
		tb.Errorf("%d balances differ from their entries (%v)", bad, err)
	}
}
