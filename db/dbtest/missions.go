package dbtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

// MissionSeed is a mission written straight into the tables, for tests of
// what happens to missions once they exist.
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

type seedMission struct {
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

type seedWindow struct {
	bun.BaseModel `bun:"table:mission_windows"`

	ID          int64 `bun:"id,pk,autoincrement"`
	MissionID   int64 `bun:"mission_id"`
	Position    int16 `bun:"position"`
	StartMinute int16 `bun:"start_minute"`
	EndMinute   int16 `bun:"end_minute"`
}

type seedMember struct {
	bun.BaseModel `bun:"table:mission_members"`

	ID        int64     `bun:"id,pk,autoincrement"`
	MissionID int64     `bun:"mission_id"`
	MemberID  int64     `bun:"member_id"`
	Status    int16     `bun:"status"`
	Stake     int64     `bun:"stake"`
	JoinedAt  time.Time `bun:"joined_at"`
}

// InsertMission writes s (the mission, its windows and its members, the
// host first) and returns the mission's public id and row id. It fails the
// test on any error.
func InsertMission(tb testing.TB, bdb bun.IDB, s MissionSeed) (string, int64) {
	tb.Helper()
	ctx := context.Background()
	loc := s.Loc
	if loc == nil {
		loc = time.UTC
	}
	if s.Stake == 0 {
		s.Stake = 1000
	}
	ids := append([]string{s.HostID}, s.MemberIDs...)
	keys := make([]int64, len(ids))
	for i, id := range ids {
		if err := bdb.NewSelect().TableExpr("members").Column("id").Where("public_id = ?", id).Scan(ctx, &keys[i]); err != nil {
			tb.Fatalf("dbtest: mission member %s: %v", id, err)
		}
	}
	created := s.Schedule.StartsAt.Add(-24 * time.Hour).UTC()
	publicID := db.NewPublicID()
	m := seedMission{
		PublicID: publicID, Code: publicID[:domain.MissionCodeLen], HostID: keys[0], Title: "Morning run",
		Type: int16(domain.MissionExercise), Description: "Run every morning.", Stake: s.Stake,
		Capacity: domain.MissionCapacityMax, MemberCount: int16(len(ids)), Private: s.Private,
		Status: int16(s.Status), StartsAt: s.Schedule.StartsAt.UTC(),
		Weeks: int16(s.Schedule.Weeks), DaysPerWeek: int16(s.Schedule.DaysPerWeek), PerDay: int16(s.Schedule.PerDay),
		Version: 1, CreatedAt: created, UpdatedAt: created,
	}
	if s.Schedule.Set() {
		m.EndsAt = s.Schedule.EndsAt(loc)
	}
	err := bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(&m).Exec(ctx); err != nil {
			return fmt.Errorf("mission: %w", err)
		}
		for i, w := range s.Windows {
			row := seedWindow{MissionID: m.ID, Position: int16(i), StartMinute: int16(w.Start), EndMinute: int16(w.End)}
			if _, err := tx.NewInsert().Model(&row).Exec(ctx); err != nil {
				return fmt.Errorf("window: %w", err)
			}
		}
		for i, k := range keys {
			row := seedMember{MissionID: m.ID, MemberID: k, Status: int16(domain.MissionMemberActive),
				Stake: s.Stake, JoinedAt: created.Add(time.Duration(i) * time.Second)}
			if _, err := tx.NewInsert().Model(&row).Exec(ctx); err != nil {
				return fmt.Errorf("member: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("dbtest: insert mission: %v", err)
	}
	return publicID, m.ID
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
	img := domain.Image{OwnerID: owner, Purpose: p, Status: st, ContentType: "image/jpeg",
		Width: 800, Height: 600, Bytes: 1000, CreatedAt: created, UpdatedAt: created}
	if err := (db.Images{}).Create(context.Background(), bdb, &img); err != nil {
		tb.Fatalf("dbtest: create image: %v", err)
	}
	return img.ID
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
