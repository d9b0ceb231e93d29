package dbtest

import (
	"context"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

// Rows written by SeedMission: a mission in any status, as the API and
// earlier transitions would have left it, stored directly so tests of later
// steps need not replay the earlier ones.

type fixtureMission struct {
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
	Status      int16     `bun:"status"`
	StartsAt    time.Time `bun:"starts_at"`
	EndsAt      time.Time `bun:"ends_at"`
	Weeks       int16     `bun:"weeks"`
	DaysPerWeek int16     `bun:"days_per_week"`
	PerDay      int16     `bun:"per_day"`
	Version     int64     `bun:"version"`
	CreatedAt   time.Time `bun:"created_at"`
	UpdatedAt   time.Time `bun:"updated_at"`
}

type fixtureWindow struct {
	bun.BaseModel `bun:"table:mission_windows"`

	ID          int64 `bun:"id,pk,autoincrement"`
	MissionID   int64 `bun:"mission_id"`
	Position    int16 `bun:"position"`
	StartMinute int16 `bun:"start_minute"`
	EndMinute   int16 `bun:"end_minute"`
}

type fixtureMember struct {
	bun.BaseModel `bun:"table:mission_members"`

	ID        int64     `bun:"id,pk,autoincrement"`
	MissionID int64     `bun:"mission_id"`
	MemberID  int64     `bun:"member_id"`
	Status    int16     `bun:"status"`
	Stake     int64     `bun:"stake"`
	JoinedAt  time.Time `bun:"joined_at"`
}

type fixtureImage struct {
	bun.BaseModel `bun:"table:images"`

	ID        int64     `bun:"id,pk,autoincrement"`
	PublicID  string    `bun:"public_id"`
	OwnerID   int64     `bun:"owner_id"`
	Purpose   int16     `bun:"purpose"`
	Status    int16     `bun:"status"`
	Variants  string    `bun:"variants"`
	CreatedAt time.Time `bun:"created_at"`
	UpdatedAt time.Time `bun:"updated_at"`
}

type fixtureVerification struct {
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
	Title  string               // "" means "seeded mission"
	Status domain.MissionStatus // OPEN, ONGOING, …
	Stake  int64                // 0 means 1000
	// Schedule; EndsAt zero means 7 × Weeks days after the start.
	StartsAt                   time.Time
	EndsAt                     time.Time
	Weeks, DaysPerWeek, PerDay int
	Windows                    []domain.MissionWindow
	// Members are members.id keys, the host first.
	Members []MissionMemberSeed
}

// MissionMemberSeed is one member of a seeded mission.
type MissionMemberSeed struct {
	Key    int64                      // members.id
	Status domain.MissionMemberStatus // zero means ACTIVE
	// Days are the mission days of the member's verifications, one entry
	// per verification (a day repeated for several in a day).
	Days []int
}

// SeedMission stores the mission s describes, with its windows, members
// (their stakes as given, no ledger entries) and verifications (each with
// an image of its own), and returns its row id.
func SeedMission(ctx context.Context, idb bun.IDB, s MissionFixture, now time.Time) (int64, error) {
	if s.Title == "" {
		s.Title = "seeded mission"
	}
	if s.Stake == 0 {
		s.Stake = 1000
	}
	if s.EndsAt.IsZero() {
		s.EndsAt = s.StartsAt.AddDate(0, 0, 7*s.Weeks)
	}
	active := 0
	for _, m := range s.Members {
		if m.Status == 0 || m.Status == domain.MissionMemberActive {
			active++
		}
	}
	code := db.NewPublicID()
	m := &fixtureMission{PublicID: db.NewPublicID(), Code: code[len(code)-domain.MissionCodeLen:], HostID: s.Members[0].Key,
		Title: s.Title, Type: int16(domain.MissionExercise), Description: "seeded for a test", Stake: s.Stake,
		Capacity: domain.MissionCapacityMax, MemberCount: int16(active), Status: int16(s.Status),
		StartsAt: s.StartsAt.UTC(), EndsAt: s.EndsAt.UTC(), Weeks: int16(s.Weeks), DaysPerWeek: int16(s.DaysPerWeek),
		PerDay: int16(s.PerDay), Version: 1, CreatedAt: now.UTC(), UpdatedAt: now.UTC()}
	if _, err := idb.NewInsert().Model(m).Exec(ctx); err != nil {
		return 0, err
	}
	for i, w := range s.Windows {
		row := &fixtureWindow{MissionID: m.ID, Position: int16(i), StartMinute: int16(w.Start), EndMinute: int16(w.End)}
		if _, err := idb.NewInsert().Model(row).Exec(ctx); err != nil {
			return 0, err
		}
	}
	for _, mm := range s.Members {
		st := mm.Status
		if st == 0 {
			st = domain.MissionMemberActive
		}
		row := &fixtureMember{MissionID: m.ID, MemberID: mm.Key, Status: int16(st), Stake: s.Stake, JoinedAt: now.UTC()}
		if _, err := idb.NewInsert().Model(row).Exec(ctx); err != nil {
			return 0, err
		}
		perDay := map[int]int{}
		perWeek := map[int]int{}
		for _, d := range mm.Days {
			img := &fixtureImage{PublicID: db.NewPublicID(), OwnerID: mm.Key, Purpose: int16(domain.ImagePurposeVerification),
				Status: int16(domain.ImageReady), Variants: "{}", CreatedAt: now.UTC(), UpdatedAt: now.UTC()}
			if _, err := idb.NewInsert().Model(img).Exec(ctx); err != nil {
				return 0, err
			}
			w := domain.Week(d)
			v := &fixtureVerification{PublicID: db.NewPublicID(), MissionID: m.ID, MemberID: mm.Key, ImageID: img.ID,
				Day: int16(d), DaySlot: int16(perDay[d]), Week: int16(w), WeekSlot: int16(perWeek[w]), CreatedAt: now.UTC()}
			perDay[d]++
			perWeek[w]++
			if _, err := idb.NewInsert().Model(v).Exec(ctx); err != nil {
				return 0, err
			}
		}
	}
	return m.ID, nil
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

// VerificationDays returns the mission days of n verifications at perDay
// a day from day 0: 0, 0, 1, 1, … for perDay 2.
func VerificationDays(n, perDay int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i / max(perDay, 1)
	}
	return out
}
