package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/moim/moim/db/missiondb"
	"github.com/moim/moim/domain"
)

// registerMissionVerifyRoutes mounts a mission's photos and its calendar.
func (s *server) registerMissionVerifyRoutes(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate)
		r.Post("/v1/missions/{id}/verifications", s.handleMissionVerify)
		r.Get("/v1/missions/{id}/verifications", s.handleMissionVerifications)
		r.Get("/v1/missions/{id}/calendar", s.handleMissionCalendar)
	})
}

// missionVerifyRequest is the body of POST /v1/missions/{id}/verifications.
type missionVerifyRequest struct {
	ImageID string `json:"image_id"`
}

func (req *missionVerifyRequest) Validate() error {
	if req.ImageID == "" {
		return domain.FieldErrorf(domain.EINVALID, "image_id", "Field \"image_id\" is required: the id of a photo uploaded for verification.")
	}
	return nil
}

// verificationResponse is a photo of a mission on the wire. Day and week
// count from 1 (day 1 is the start's local date, week 1 its first seven
// days); date is the local date.
type verificationResponse struct {
	ID        string                `json:"id"`
	MissionID string                `json:"mission_id"`
	MemberID  string                `json:"member_id"`
	Nickname  string                `json:"nickname"`
	Image     attachedImageResponse `json:"image"`
	Day       int                   `json:"day"`
	Week      int                   `json:"week"`
	Date      string                `json:"date"`
	Window    string                `json:"window"`
	CreatedAt time.Time             `json:"created_at"`
}

func (s *server) newVerificationResponse(ctx context.Context, m *domain.Mission, v *domain.MissionVerification) (verificationResponse, error) {
	img, err := s.newAttachedImageResponse(ctx, &v.Image)
	return verificationResponse{
		ID: v.ID, MissionID: v.MissionID, MemberID: v.MemberID, Nickname: v.Nickname, Image: img,
		Day: v.Day + 1, Week: v.Week, Date: m.Schedule.DayDate(v.Day, s.missionLoc),
		Window: domain.VerifyWindowText(v.Window), CreatedAt: v.CreatedAt.UTC(),
	}, err
}

// verifyQuotaResponse is what the caller may still post: how many photos
// today and this week, and until when (the end of the current window, or
// of the next one today; null when nothing more can be posted today).
type verifyQuotaResponse struct {
	RemainingToday    int        `json:"remaining_today"`
	RemainingThisWeek int        `json:"remaining_this_week"`
	Until             *time.Time `json:"until"`
}

// verifyQuota is the quota of a member of m who posted dayCount photos
// today and weekCount this week, at now. Outside the mission's days, and
// for a member who left, everything is 0.
func (s *server) verifyQuota(m *domain.Mission, active bool, dayCount, weekCount int, now time.Time) verifyQuotaResponse {
	var q verifyQuotaResponse
	if _, ok := m.VerifyDay(now, s.missionLoc); !ok || !active || m.Status != domain.MissionOngoing {
		return q
	}
	q.RemainingToday, q.RemainingThisWeek = m.Schedule.Remaining(dayCount, weekCount)
	until, ok := m.PostableUntil(now, s.missionLoc)
	if !ok {
		q.RemainingToday = 0
	}
	if q.RemainingToday > 0 {
		q.Until = &until
	}
	return q
}

type missionVerifyResponse struct {
	Verification verificationResponse `json:"verification"`
	Me           verifyQuotaResponse  `json:"me"`
}

// handleMissionVerify posts a photo for a mission: the caller's own image
// uploaded for verification, while the mission is ONGOING, inside one of
// today's windows, within the day's and the week's quota.
func (s *server) handleMissionVerify(w http.ResponseWriter, r *http.Request) {
	var req missionVerifyRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	v, err := (missiondb.Missions{}).Verify(r.Context(), s.db, missiondb.VerifyParams{
		MissionID: chi.URLParam(r, "id"), MemberID: mustClaims(r).MemberID, ImageID: req.ImageID,
		Now: now, Loc: s.missionLoc,
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := missionVerifyResponse{Me: s.verifyQuota(v.Mission, true, v.DayCount, v.WeekCount, now)}
	if resp.Verification, err = s.newVerificationResponse(r.Context(), v.Mission, &v.Verification); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusCreated, resp)
}

// missionForViewer loads the mission of the request with its members and
// the caller's membership (nil when not a member). A private mission is
// shown to its members only (ACTIVE or LEFT); to anyone else it is not
// found.
func (s *server) missionForViewer(r *http.Request) (*domain.Mission, []domain.MissionMember, *domain.MissionMember, error) {
	ctx := r.Context()
	m, err := (missiondb.Missions{}).FindByID(ctx, s.db, chi.URLParam(r, "id"))
	if err != nil {
		return nil, nil, nil, err
	}
	members, err := (missiondb.Missions{}).Members(ctx, s.db, m)
	if err != nil {
		return nil, nil, nil, err
	}
	me := mustClaims(r).MemberID
	var mine *domain.MissionMember
	for i := range members {
		if members[i].MemberID == me {
			mine = &members[i]
		}
	}
	if m.Private && mine == nil {
		return nil, nil, nil, domain.Errorf(domain.ENOTFOUND, "Mission not found.")
	}
	return m, members, mine, nil
}

type verificationList struct {
	Verifications []verificationResponse `json:"verifications"`
	NextCursor    *string                `json:"next_cursor"`
}

// handleMissionVerifications answers a page of a mission's photos, newest
// first: ?limit= (1–100, default 20), ?cursor= from the previous page's
// next_cursor, and ?member_id= for one member's photos.
func (s *server) handleMissionVerifications(w http.ResponseWriter, r *http.Request) {
	limit, err := queryLimit(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	m, _, _, err := s.missionForViewer(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	page, err := (missiondb.Missions{}).Verifications(r.Context(), s.db, m, q.Get("member_id"), q.Get("cursor"), limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := verificationList{Verifications: make([]verificationResponse, 0, len(page.Verifications))}
	for i := range page.Verifications {
		v, err := s.newVerificationResponse(r.Context(), m, &page.Verifications[i])
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		resp.Verifications = append(resp.Verifications, v)
	}
	if page.Next != "" {
		resp.NextCursor = &page.Next
	}
	s.writeJSON(w, r, http.StatusOK, resp)
}

// calendarDay is one member's photo count on one mission day.
type calendarDay struct {
	Date  string `json:"date"`
	Count int    `json:"count"`
}

// calendarMember is one member's row of the calendar. Rate is photos /
// required, a number from 0 to 1 (4 decimals), capped at 1.
type calendarMember struct {
	MemberID string        `json:"member_id"`
	Nickname string        `json:"nickname"`
	Host     bool          `json:"host"`
	Status   string        `json:"status"`
	Days     []calendarDay `json:"days"`
	Count    int           `json:"count"`
	Rate     float64       `json:"rate"`
}

// calendarResponse is GET /v1/missions/{id}/calendar. current_day and
// current_week (from 1) are null outside the mission's days; starts_at and
// ends_at are null until the schedule is set; me is null for a viewer who
// is not a member.
type calendarResponse struct {
	MissionID   string               `json:"mission_id"`
	Status      domain.MissionStatus `json:"status"`
	Timezone    string               `json:"timezone"`
	StartsAt    *time.Time           `json:"starts_at"`
	EndsAt      *time.Time           `json:"ends_at"`
	CurrentDay  *int                 `json:"current_day"`
	CurrentWeek *int                 `json:"current_week"`
	Required    int                  `json:"required"`
	Members     []calendarMember     `json:"members"`
	TeamRate    float64              `json:"team_rate"`
	Me          *verifyQuotaResponse `json:"me"`
}

// calendarMemberStatus is a member's standing on the wire.
func calendarMemberStatus(st domain.MissionMemberStatus) string {
	if st == domain.MissionMemberLeft {
		return "LEFT"
	}
	return "ACTIVE"
}

// rateOf turns basis points into the wire's 0–1 number.
func rateOf(bp int) float64 { return float64(bp) / 10_000 }

// handleMissionCalendar answers every member's photos per day and rate,
// the team's rate (the average of the ACTIVE members' rates), the current
// day and week, and what the caller may still post. It works in every
// status: before the start every count is 0.
func (s *server) handleMissionCalendar(w http.ResponseWriter, r *http.Request) {
	m, members, mine, err := s.missionForViewer(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	counts, err := (missiondb.Missions{}).VerificationDayCounts(r.Context(), s.db, m.Key)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	perDay := make(map[int64]map[int]int, len(members))
	for _, c := range counts {
		if perDay[c.MemberKey] == nil {
			perDay[c.MemberKey] = map[int]int{}
		}
		perDay[c.MemberKey][c.Day] = c.Count
	}
	now := s.now()
	sched := m.Schedule
	resp := calendarResponse{
		MissionID: m.ID, Status: m.Status, Timezone: s.missionLoc.String(), Required: sched.Required(),
		Members: make([]calendarMember, 0, len(members)),
	}
	if sched.Set() {
		start, end := sched.StartsAt.UTC(), m.EndsAt.UTC()
		if m.EndsAt.IsZero() {
			end = sched.EndsAt(s.missionLoc)
		}
		resp.StartsAt, resp.EndsAt = &start, &end
	}
	today, running := m.VerifyDay(now, s.missionLoc)
	if running {
		day, week := today+1, domain.Week(today)
		resp.CurrentDay, resp.CurrentWeek = &day, &week
	}
	var activeRates []int
	for _, mm := range members {
		row := calendarMember{MemberID: mm.MemberID, Nickname: mm.Nickname, Host: mm.Host,
			Status: calendarMemberStatus(mm.Status), Days: make([]calendarDay, 0, sched.MissionDays())}
		for d := range sched.MissionDays() {
			n := perDay[mm.Key][d]
			row.Days = append(row.Days, calendarDay{Date: sched.DayDate(d, s.missionLoc), Count: n})
			row.Count += n
		}
		bp := domain.RateBP(row.Count, sched.Required())
		row.Rate = rateOf(bp)
		if mm.Status == domain.MissionMemberActive {
			activeRates = append(activeRates, bp)
		}
		resp.Members = append(resp.Members, row)
	}
	resp.TeamRate = rateOf(domain.AverageRateBP(activeRates))
	if mine != nil {
		weekCount := 0
		if running {
			for d := (domain.Week(today) - 1) * 7; d < domain.Week(today)*7; d++ {
				weekCount += perDay[mine.Key][d]
			}
		}
		q := s.verifyQuota(m, mine.Status == domain.MissionMemberActive, perDay[mine.Key][today], weekCount, now)
		resp.Me = &q
	}
	s.writeJSON(w, r, http.StatusOK, resp)
}
