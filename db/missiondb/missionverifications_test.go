package missiondb_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // Asia/Seoul even on hosts without a zoneinfo database

	"github.com/google/go-cmp/cmp"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db/dbtest"
	"github.com/moim/moim/db/missiondb"
	"github.com/moim/moim/domain"
)

// verifyFixture is an ONGOING mission in Seoul that started on Monday
// 2026-12-07 at local midnight: 2 weeks, 3 days a week, 2 photos a day,
// windows 07:00–09:00 and 21:00–24:00; host and member are in it, outsider
// is not.
type verifyFixture struct {
	bdb                    *bun.DB
	seoul                  *time.Location
	host, member, outsider *domain.Member
	mission                string
	key                    int64
	schedule               domain.MissionSchedule
	imageSeq               int
	imageMu                sync.Mutex
}

func newVerifyFixture(t *testing.T, bdb *bun.DB, status domain.MissionStatus) *verifyFixture {
	t.Helper()
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatal(err)
	}
	f := &verifyFixture{bdb: bdb, seoul: seoul,
		host:     dbtest.MustCreateMember(t, bdb, dbtest.NewMember("vhost@example.com", "vhost")),
		member:   dbtest.MustCreateMember(t, bdb, dbtest.NewMember("vmember@example.com", "vmember")),
		outsider: dbtest.MustCreateMember(t, bdb, dbtest.NewMember("voutsider@example.com", "voutsider")),
		schedule: domain.MissionSchedule{StartsAt: time.Date(2026, 12, 7, 0, 0, 0, 0, seoul), Weeks: 2, DaysPerWeek: 3, PerDay: 2},
	}
	f.mission, f.key = dbtest.InsertMission(t, bdb, dbtest.MissionSeed{
		HostID: f.host.ID, MemberIDs: []string{f.member.ID}, Status: status, Schedule: f.schedule,
		Windows: []domain.MissionWindow{{Start: 7 * 60, End: 9 * 60}, {Start: 21 * 60, End: 24 * 60}}, Loc: seoul,
	})
	return f
}

// at is hh:mm:ss on mission day d in Seoul, as a machine in New York would
// hold it: the zone of the instant must not matter.
func (f *verifyFixture) at(d, hh, mm, ss int) time.Time {
	ny, _ := time.LoadLocation("America/New_York")
	return time.Date(2026, 12, 7+d, hh, mm, ss, 0, f.seoul).In(ny)
}

// image creates an image of owner with purpose and status and returns its
// public id.
func (f *verifyFixture) image(t *testing.T, owner *domain.Member, purpose domain.ImagePurpose, status domain.ImageStatus) string {
	t.Helper()
	return dbtest.InsertImage(t, f.bdb, owner.ID, purpose, status)
}

func (f *verifyFixture) photo(t *testing.T, owner *domain.Member) string {
	t.Helper()
	return f.image(t, owner, domain.ImagePurposeVerification, domain.ImageProcessing)
}

func (f *verifyFixture) post(now time.Time, member *domain.Member, image string) (*missiondb.Verified, error) {
	return (missiondb.Missions{}).Verify(context.Background(), f.bdb, missiondb.VerifyParams{
		MissionID: f.mission, MemberID: member.ID, ImageID: image, Now: now, Loc: f.seoul})
}

func (f *verifyFixture) mustPost(t *testing.T, now time.Time, member *domain.Member) *missiondb.Verified {
	t.Helper()
	v, err := f.post(now, member, f.photo(t, member))
	if err != nil {
		t.Fatalf("post at %v: %v", now, err)
	}
	return v
}

func (f *verifyFixture) stored(t *testing.T) int {
	t.Helper()
	return dbtest.CountVerifications(t, f.bdb)
}

func TestMissionVerify(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		f := newVerifyFixture(t, bdb, domain.MissionOngoing)
		img := f.photo(t, f.member)
		now := f.at(1, 7, 30, 15)
		v, err := f.post(now, f.member, img)
		if err != nil {
			t.Fatal(err)
		}
		got := v.Verification
		if len(got.ID) != 26 || got.Key == 0 {
			t.Errorf("ids %q %d", got.ID, got.Key)
		}
		want := domain.MissionVerification{ID: got.ID, Key: got.Key, MissionID: f.mission, MemberID: f.member.ID,
			Nickname: "vmember", Image: got.Image, Day: 1, Week: 1, Window: domain.MissionWindow{Start: 420, End: 540},
			CreatedAt: now.UTC()}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("verification (-want +got):\n%s", diff)
		}
		if got.Image.ID != img || got.CreatedAt.Location() != time.UTC {
			t.Errorf("image %s, created %v", got.Image.ID, got.CreatedAt)
		}
		if v.DayCount != 1 || v.WeekCount != 1 || v.Mission.ID != f.mission {
			t.Errorf("counts %d/%d of %s", v.DayCount, v.WeekCount, v.Mission.ID)
		}
		page, err := (missiondb.Missions{}).Verifications(context.Background(), bdb, v.Mission, "", "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Verifications) != 1 || page.Next != "" {
			t.Fatalf("page %+v", page)
		}
		if diff := cmp.Diff(got, page.Verifications[0]); diff != "" {
			t.Errorf("listed (-posted +listed):\n%s", diff)
		}
	})
}

func TestMissionVerifyRejects(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		f := newVerifyFixture(t, bdb, domain.MissionOngoing)
		ok := f.at(0, 8, 0, 0)
		used := f.photo(t, f.member)
		if _, err := f.post(ok, f.member, used); err != nil {
			t.Fatal(err)
		}
		open := newVerifyFixture(t, dbtest.Open(t, dbtest.SQLite), domain.MissionOpen)
		left := dbtest.MustCreateMember(t, bdb, dbtest.NewMember("vleft@example.com", "vleft"))
		_, leftKey := dbtest.InsertMission(t, bdb, dbtest.MissionSeed{HostID: f.host.ID, MemberIDs: []string{left.ID},
			Status: domain.MissionOngoing, Schedule: f.schedule, Windows: []domain.MissionWindow{{Start: 0, End: 1440}}, Loc: f.seoul})
		dbtest.SetMissionMemberStatus(t, bdb, leftKey, left.ID, domain.MissionMemberLeft)
		var leftMission string
		if err := bdb.NewSelect().Table("missions").Column("public_id").Where("id = ?", leftKey).Scan(context.Background(), &leftMission); err != nil {
			t.Fatal(err)
		}

		tests := []struct {
			name      string
			fixture   *verifyFixture
			mission   string
			now       time.Time
			member    *domain.Member
			image     string
			wantCode  string
			wantField string
		}{
			{"unknown mission", f, "nosuchmission", ok, f.member, f.photo(t, f.member), domain.ENOTFOUND, ""},
			{"not a member", f, "", ok, f.outsider, f.photo(t, f.outsider), domain.ENOTPARTICIPATING, ""},
			{"left", f, leftMission, ok, left, f.photo(t, left), domain.ENOTPARTICIPATING, ""},
			{"mission open", open, "", open.at(0, 8, 0, 0), open.member, open.photo(t, open.member), domain.EMISSIONNOTONGOING, ""},
			{"before the start", f, "", f.at(-1, 8, 0, 0), f.member, f.photo(t, f.member), domain.EMISSIONNOTONGOING, ""},
			{"after the end", f, "", f.at(14, 8, 0, 0), f.member, f.photo(t, f.member), domain.EMISSIONNOTONGOING, ""},
			{"before a window", f, "", f.at(0, 6, 59, 59), f.member, f.photo(t, f.member), domain.EOUTSIDEWINDOW, ""},
			{"at a window's end", f, "", f.at(0, 9, 0, 0), f.member, f.photo(t, f.member), domain.EOUTSIDEWINDOW, ""},
			{"between windows", f, "", f.at(0, 15, 0, 0), f.member, f.photo(t, f.member), domain.EOUTSIDEWINDOW, ""},
			{"unknown image", f, "", ok, f.member, "nosuchimage", domain.ENOTFOUND, "image_id"},
			{"another's image", f, "", ok, f.member, f.photo(t, f.host), domain.EFORBIDDEN, "image_id"},
			{"room image", f, "", ok, f.member, f.image(t, f.member, domain.ImagePurposeRoom, domain.ImageReady), domain.EINVALID, "image_id"},
			{"upload not completed", f, "", ok, f.member, f.image(t, f.member, domain.ImagePurposeVerification, domain.ImageUploading), domain.EINVALID, "image_id"},
			{"failed image", f, "", ok, f.member, f.image(t, f.member, domain.ImagePurposeVerification, domain.ImageFailed), domain.EINVALID, "image_id"},
			{"image used", f, "", f.at(0, 8, 1, 0), f.member, used, domain.EIMAGEUSED, "image_id"},
		}
		for _, tt := range tests {
			before := tt.fixture.stored(t)
			p := missiondb.VerifyParams{MissionID: tt.fixture.mission, MemberID: tt.member.ID, ImageID: tt.image, Now: tt.now, Loc: f.seoul}
			if tt.mission != "" {
				p.MissionID = tt.mission
			}
			_, err := (missiondb.Missions{}).Verify(context.Background(), tt.fixture.bdb, p)
			t.Run(tt.name, func(t *testing.T) { dbtest.CheckCode(t, err, tt.wantCode, tt.wantField) })
			if after := tt.fixture.stored(t); after != before {
				t.Errorf("%s: %d verifications stored, want %d", tt.name, after, before)
			}
		}
	})
}

func TestMissionVerifyWindowsAndQuotas(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		f := newVerifyFixture(t, bdb, domain.MissionOngoing)
		refused := func(now time.Time, code string) {
			t.Helper()
			_, err := f.post(now, f.member, f.photo(t, f.member))
			dbtest.CheckCode(t, err, code, "")
		}
		// Day 0: a window's first second counts (start inclusive), its
		// last second too; then the day is full.
		if v := f.mustPost(t, f.at(0, 7, 0, 0), f.member); v.Verification.Window.Start != 420 {
			t.Errorf("window %v", v.Verification.Window)
		}
		if v := f.mustPost(t, f.at(0, 8, 59, 59), f.member); v.DayCount != 2 || v.WeekCount != 2 {
			t.Errorf("counts %d/%d, want 2/2", v.DayCount, v.WeekCount)
		}
		refused(f.at(0, 21, 0, 0), domain.EQUOTAREACHED)
		// Another member has a quota of their own.
		f.mustPost(t, f.at(0, 21, 0, 0), f.host)

		// The day ends at midnight in Seoul: 23:59:59 is day 1, 00:00:00
		// day 2, whatever zone the instant is written in.
		if v := f.mustPost(t, f.at(1, 23, 59, 59), f.member); v.Verification.Day != 1 || v.DayCount != 1 {
			t.Errorf("23:59:59: day %d, count %d", v.Verification.Day, v.DayCount)
		}
		refused(f.at(2, 0, 0, 0), domain.EOUTSIDEWINDOW) // 24:00 is the window's end
		if v := f.mustPost(t, f.at(2, 7, 0, 0), f.member); v.Verification.Day != 2 || v.DayCount != 1 || v.WeekCount != 4 {
			t.Errorf("day 2: day %d, counts %d/%d", v.Verification.Day, v.DayCount, v.WeekCount)
		}
		// Week 1's quota is 3 days × 2 = 6: two more on day 3, then none
		// until day 7, the first of week 2.
		f.mustPost(t, f.at(3, 7, 0, 0), f.member)
		if v := f.mustPost(t, f.at(3, 21, 0, 0), f.member); v.WeekCount != 6 || v.Verification.Week != 1 {
			t.Errorf("day 3: week %d count %d", v.Verification.Week, v.WeekCount)
		}
		refused(f.at(4, 7, 0, 0), domain.EQUOTAREACHED)
		refused(f.at(6, 23, 0, 0), domain.EQUOTAREACHED)
		if v := f.mustPost(t, f.at(7, 7, 0, 0), f.member); v.Verification.Week != 2 || v.Verification.Day != 7 || v.WeekCount != 1 {
			t.Errorf("day 7: week %d day %d count %d", v.Verification.Week, v.Verification.Day, v.WeekCount)
		}

		counts, err := (missiondb.Missions{}).VerificationCounts(context.Background(), bdb, f.key)
		if err != nil {
			t.Fatal(err)
		}
		members, err := (missiondb.Missions{}).Members(context.Background(), bdb, &domain.Mission{ID: f.mission, Key: f.key})
		if err != nil {
			t.Fatal(err)
		}
		byNick := map[string]int{}
		for _, m := range members {
			byNick[m.Nickname] = counts[m.Key]
		}
		if diff := cmp.Diff(map[string]int{"vhost": 1, "vmember": 7}, byNick); diff != "" || len(counts) != 2 {
			t.Errorf("VerificationCounts (-want +got):\n%s (%v)", diff, counts)
		}
		days, err := (missiondb.Missions{}).VerificationDayCounts(context.Background(), bdb, f.key)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for _, d := range days {
			for _, m := range members {
				if m.Key == d.MemberKey {
					got[fmt.Sprintf("%s/%d", m.Nickname, d.Day)] = d.Count
				}
			}
		}
		want := map[string]int{"vhost/0": 1, "vmember/0": 2, "vmember/1": 1, "vmember/2": 1, "vmember/3": 2, "vmember/7": 1}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("VerificationDayCounts (-want +got):\n%s", diff)
		}
	})
}

// TestMissionVerifyConcurrent posts per_day+3 photos of one member at once:
// exactly per_day are stored, the rest are refused for the quota.
func TestMissionVerifyConcurrent(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		f := newVerifyFixture(t, bdb, domain.MissionOngoing)
		n := f.schedule.PerDay + 3
		images := make([]string, n)
		for i := range images {
			images[i] = f.photo(t, f.member)
		}
		now := f.at(4, 21, 30, 0)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range images {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = f.post(now, f.member, images[i])
			}()
		}
		close(start)
		wg.Wait()
		stored := 0
		for _, err := range errs {
			switch {
			case err == nil:
				stored++
			case domain.ErrorCode(err) != domain.EQUOTAREACHED:
				t.Errorf("post: %v, want nil or quota_reached", err)
			case errors.Is(err, missiondb.ErrVerifySlotTaken):
				t.Logf("a post lost its slot twice: %v", err)
			}
		}
		if stored != f.schedule.PerDay || f.stored(t) != f.schedule.PerDay {
			t.Errorf("%d posts succeeded, %d stored; want %d", stored, f.stored(t), f.schedule.PerDay)
		}
	})
}

func TestMissionVerificationsPages(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		f := newVerifyFixture(t, bdb, domain.MissionOngoing)
		var posted []string
		for d := range 3 {
			for _, m := range []*domain.Member{f.member, f.host} {
				posted = append(posted, f.mustPost(t, f.at(d, 7, 10, 0), m).Verification.ID)
			}
		}
		m, err := (missiondb.Missions{}).FindByID(context.Background(), bdb, f.mission)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		cursor := ""
		for pages := 0; ; pages++ {
			page, err := (missiondb.Missions{}).Verifications(context.Background(), bdb, m, "", cursor, 4)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range page.Verifications {
				got = append(got, v.ID)
			}
			if page.Next == "" {
				if pages != 1 {
					t.Errorf("%d pages, want 2", pages+1)
				}
				break
			}
			cursor = page.Next
		}
		want := make([]string, len(posted))
		for i, id := range posted {
			want[len(posted)-1-i] = id
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("pages, newest first (-want +got):\n%s", diff)
		}
		mine, err := (missiondb.Missions{}).Verifications(context.Background(), bdb, m, f.host.ID, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(mine.Verifications) != 3 || mine.Verifications[0].MemberID != f.host.ID || mine.Verifications[0].Nickname != "vhost" {
			t.Errorf("host's photos %+v", mine.Verifications)
		}
		_, err = (missiondb.Missions{}).Verifications(context.Background(), bdb, m, "", "nosuchcursor", 10)
		dbtest.CheckCode(t, err, domain.EINVALID, "cursor")
		_, err = (missiondb.Missions{}).Verifications(context.Background(), bdb, m, "", "", 0)
		dbtest.CheckCode(t, err, domain.EINVALID, "limit")
	})
}

// TestMissionVerifySlotUniques proves the uniques that guard the quotas
// when the counts are wrong, and that each dialect's violation is told
// apart: a taken day or week slot is quota_reached caused by
// ErrVerifySlotTaken (after one more try), a used image image_used.
func TestMissionVerifySlotUniques(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, bdb *bun.DB) {
		ctx := context.Background()
		f := newVerifyFixture(t, bdb, domain.MissionOngoing)
		member := dbtest.MemberKey(t, bdb, f.member.ID)
		imageKey := func(id string) int64 {
			var k int64
			if err := bdb.NewSelect().Table("images").Column("id").Where("public_id = ?", id).Scan(ctx, &k); err != nil {
				t.Fatal(err)
			}
			return k
		}
		insert := func(day, daySlot, week, weekSlot int, image string) error {
			return dbtest.InsertVerification(ctx, bdb, dbtest.Verification{MissionKey: f.key, MemberKey: member,
				ImageKey: imageKey(image), Day: day, DaySlot: daySlot, Week: week, WeekSlot: weekSlot,
				CreatedAt: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)})
		}
		// Day 4 holds one photo in slot 1: the count says 1, so the next
		// post wants slot 1 too.
		if err := insert(4, 1, 1, 50, f.photo(t, f.member)); err != nil {
			t.Fatal(err)
		}
		// Week 2 holds one photo (day 9) in week slot 1.
		if err := insert(9, 0, 2, 1, f.photo(t, f.member)); err != nil {
			t.Fatal(err)
		}
		for _, now := range []time.Time{f.at(4, 7, 0, 0), f.at(8, 7, 0, 0)} {
			_, err := f.post(now, f.member, f.photo(t, f.member))
			dbtest.CheckCode(t, err, domain.EQUOTAREACHED, "")
			if !errors.Is(err, missiondb.ErrVerifySlotTaken) {
				t.Errorf("post at %v: %v, want ErrVerifySlotTaken as the cause", now, err)
			}
		}
		if n := f.stored(t); n != 2 {
			t.Errorf("%d rows, want the 2 written around Verify", n)
		}
		img := f.photo(t, f.member)
		if err := insert(10, 0, 2, 2, img); err != nil {
			t.Fatal(err)
		}
		err := insert(11, 0, 2, 3, img)
		if err == nil {
			t.Fatal("a second row of one image was stored")
		}
		dbtest.CheckCode(t, missiondb.VerifyInsertError(err), domain.EIMAGEUSED, "image_id")
	})
}
