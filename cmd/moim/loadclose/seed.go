package main

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/domain"
)

// The shape of every seeded mission: 1 week × 5 days × 1 a day, so 5
// verifications make 100 %; the last two members reach 80 % and 40 %.
const (
	seedWeeks, seedDays, seedPerDay = 1, 5, 1
	seedStake                       = 1000
)

// verifications is how many the member in slot j of m members posted.
func verifications(j, m int) int {
	switch j {
	case m - 1:
		return 2
	case m - 2:
		return 4
	}
	return seedWeeks * seedDays * seedPerDay
}

// missionSet is one set of seeded missions: mission i (0-based) has row id
// first+i, and its member in slot j (ascending member id) has the
// membership row mmFirst+i·members+j and the member pool[(i·members+j) %
// len(pool)].
type missionSet struct {
	first, last int64
	mmFirst     int64
	members     int
	pool        []int64
}

// member returns the member row id and membership row id of slot j of
// mission i.
func (s missionSet) member(i, j int) (int64, int64) {
	return s.pool[(i*s.members+j)%len(s.pool)], s.mmFirst + int64(i*s.members+j)
}

// seed stores two sets of p.n ONGOING missions, alike in everything but
// their rows and their end: an hour before now, and an hour after.
func seed(ctx context.Context, bdb *bun.DB, p params, now time.Time) ([2]missionSet, error) {
	var sets [2]missionSet
	// Above every row id there is, so a database used before serves again.
	var top int64
	for _, t := range []string{"members", "missions", "mission_members"} {
		var m int64
		if err := bdb.NewSelect().Table(t).ColumnExpr("COALESCE(MAX(id), 0)").Scan(ctx, &m); err != nil {
			return sets, err
		}
		top = max(top, m)
	}
	base := (top/idSpan + 1) * idSpan
	pool, err := seedPool(ctx, bdb, base, p.pool, now)
	if err != nil {
		return sets, err
	}
	for k := range sets {
		s := missionSet{first: base + int64(k+1)*idSpan + 1, mmFirst: base + int64(k+3)*idSpan + 1,
			members: p.members, pool: pool}
		// The worker's set ended an hour ago; the baseline's ends in an
		// hour, so the worker's tick leaves it alone.
		end := now.Add(time.Duration(2*k-1) * time.Hour)
		if sets[k], err = seedSet(ctx, bdb, p, s, end); err != nil {
			return sets, err
		}
	}
	return sets, nil
}

// seedSet stores one set, in chunks of missions.
func seedSet(ctx context.Context, bdb *bun.DB, p params, s missionSet, end time.Time) (missionSet, error) {
	now := end
	start := end.AddDate(0, 0, -7*seedWeeks)
	const chunk = 250
	for lo := 0; lo < p.n; lo += chunk {
		hi := min(lo+chunk, p.n)
		fs := make([]dbtest.MissionFixture, 0, hi-lo)
		for i := lo; i < hi; i++ {
			f := dbtest.MissionFixture{Key: s.first + int64(i), Title: "loadclose mission", Description: "seeded by loadclose",
				Status: domain.MissionOngoing, Stake: seedStake, StartsAt: start,
				Weeks: seedWeeks, DaysPerWeek: seedDays, PerDay: seedPerDay}
			for j := range p.members {
				member, mmKey := s.member(i, j)
				f.Members = append(f.Members, dbtest.MissionMemberSeed{Key: member, RowKey: mmKey,
					Days: dbtest.VerificationDays(verifications(j, p.members), seedPerDay)})
			}
			fs = append(fs, f)
		}
		err := db.RunInTx(ctx, bdb, func(ctx context.Context, tx bun.Tx) error {
			_, err := dbtest.SeedMissions(ctx, tx, fs, now)
			return err
		})
		if err != nil {
			return s, err
		}
	}
	s.last = s.first + int64(p.n) - 1
	return s, nil
}

// idSpan separates the row ids of the pool, the two sets and their
// memberships, far above every other number in a close's SQL (amounts,
// rates in basis points), so the baseline's template can tell a row id
// from anything else.
const idSpan = 10_000_000

// poolRow is the part of a members row the seed fills.
type poolRow struct {
	bun.BaseModel `bun:"table:members"`

	ID           int64     `bun:"id,pk"`
	PublicID     string    `bun:"public_id"`
	Email        string    `bun:"email"`
	PasswordHash string    `bun:"password_hash"`
	Nickname     string    `bun:"nickname"`
	NicknameKey  string    `bun:"nickname_key"`
	NotifyMail   bool      `bun:"notify_mail"`
	NotifySMS    bool      `bun:"notify_sms"`
	NotifySlack  bool      `bun:"notify_slack"`
	Role         int16     `bun:"role"`
	CreatedAt    time.Time `bun:"created_at"`
	UpdatedAt    time.Time `bun:"updated_at"`
}

// seedPool stores n members with consecutive row ids from base + 1,
// public id "lc<id>", and returns their ids.
func seedPool(ctx context.Context, bdb *bun.DB, base int64, n int, now time.Time) ([]int64, error) {
	tag := db.NewPublicID()[:6]
	ids := make([]int64, n)
	for lo := 0; lo < n; lo += 500 {
		var rows []poolRow
		for i := lo; i < min(lo+500, n); i++ {
			ids[i] = base + int64(i) + 1
			nick := fmt.Sprintf("lc%s%06d", tag, i)
			rows = append(rows, poolRow{ID: ids[i], PublicID: fmt.Sprintf("lc%d", ids[i]), Email: nick + "@example.com",
				PasswordHash: "x", Nickname: nick, NicknameKey: nick, Role: int16(domain.RoleMember),
				NotifyMail: true, NotifySMS: true, NotifySlack: true, CreatedAt: now, UpdatedAt: now})
		}
		if _, err := bdb.NewInsert().Model(&rows).Exec(ctx); err != nil {
			return nil, fmt.Errorf("insert members: %w", err)
		}
	}
	return ids, nil
}
