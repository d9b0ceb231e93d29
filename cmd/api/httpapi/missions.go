package httpapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/missiondb"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
)

// registerMissionRoutes mounts missions and their members.
func (s *server) registerMissionRoutes(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate)
		r.Post("/v1/missions", s.handleMissionCreate)
		r.Get("/v1/missions", s.handleMissionList)
		r.Get("/v1/missions/mine", s.handleMissionMine)
		r.Post("/v1/missions/join", s.handleMissionJoinByCode)
		r.Get("/v1/missions/{id}", s.handleMissionGet)
		r.Put("/v1/missions/{id}/schedule", s.handleMissionSchedule)
		r.Put("/v1/missions/{id}/windows", s.handleMissionWindows)
		r.Post("/v1/missions/{id}/members", s.handleMissionJoin)
		r.Delete("/v1/missions/{id}/members/mine", s.handleMissionLeave)
		r.Delete("/v1/missions/{id}/members/{member_id}", s.handleMissionRemove)
		r.Post("/v1/missions/{id}/cancel", s.handleMissionCancel)
	})
}

// missionWindowBody is a daily window on the wire, times of day in the
// missions' zone.
type missionWindowBody struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// parseMissionWindows reads and checks windows: "HH:MM" each, "24:00"
// only as an end, start < end, none overlapping. They come back sorted.
func parseMissionWindows(in []missionWindowBody) ([]domain.MissionWindow, error) {
	ws := make([]domain.MissionWindow, len(in))
	for i, w := range in {
		var err error
		if ws[i].Start, err = domain.ParseMissionClock("windows", w.Start, false); err != nil {
			return nil, err
		}
		if ws[i].End, err = domain.ParseMissionClock("windows", w.End, true); err != nil {
			return nil, err
		}
	}
	return domain.ValidateWindows(ws)
}

// missionScheduleBody is a schedule on the wire; on creation every part
// is optional, but given one, all are needed.
type missionScheduleBody struct {
	StartsAt    *string `json:"starts_at"`
	Weeks       *int    `json:"weeks"`
	DaysPerWeek *int    `json:"days_per_week"`
	PerDay      *int    `json:"per_day"`
}

func (b *missionScheduleBody) given() bool {
	return b.StartsAt != nil || b.Weeks != nil || b.DaysPerWeek != nil || b.PerDay != nil
}

// schedule reads the whole schedule; its rules (a future start, weeks,
// days, per day) are checked by domain.MissionSchedule.Validate.
func (b *missionScheduleBody) schedule() (domain.MissionSchedule, error) {
	var s domain.MissionSchedule
	for _, f := range []struct {
		name string
		v    *int
		dst  *int
	}{{"weeks", b.Weeks, &s.Weeks}, {"days_per_week", b.DaysPerWeek, &s.DaysPerWeek}, {"per_day", b.PerDay, &s.PerDay}} {
		if f.v == nil {
			return s, domain.FieldErrorf(domain.EINVALID, f.name, "Field %q is required with a schedule.", f.name)
		}
		*f.dst = *f.v
	}
	if b.StartsAt == nil {
		return s, domain.FieldErrorf(domain.EINVALID, "starts_at", "Field \"starts_at\" is required with a schedule.")
	}
	at, err := time.Parse(time.RFC3339, *b.StartsAt)
	if err != nil {
		return s, domain.FieldErrorf(domain.EINVALID, "starts_at", "Field \"starts_at\" must be an RFC 3339 time.")
	}
	s.StartsAt = at.UTC().Truncate(time.Microsecond)
	return s, nil
}

// missionCreateRequest is the body of POST /v1/missions. The schedule and
// the windows may come later (PUT …/schedule, …/windows): until both are
// set the mission is UNACTIVATED.
type missionCreateRequest struct {
	Title       string             `json:"title"`
	Type        domain.MissionType `json:"type"`
	Description string             `json:"description"`
	Stake       int64              `json:"stake"`
	Capacity    int                `json:"capacity"`
	Private     bool               `json:"private"`
	missionScheduleBody
	Windows []missionWindowBody `json:"windows"`

	schedule *domain.MissionSchedule
	windows  []domain.MissionWindow
}

func (req *missionCreateRequest) Validate() error {
	m := domain.Mission{Title: req.Title, Type: req.Type, Description: req.Description, Stake: req.Stake, Capacity: req.Capacity}
	if err := m.Validate(); err != nil {
		return err
	}
	req.Title, req.Description = m.Title, m.Description
	if req.given() {
		s, err := req.missionScheduleBody.schedule()
		if err != nil {
			return err
		}
		req.schedule = &s
	}
	if req.Windows != nil {
		ws, err := parseMissionWindows(req.Windows)
		if err != nil {
			return err
		}
		req.windows = ws
	}
	return nil
}

// missionScheduleRequest is the body of PUT /v1/missions/{id}/schedule.
type missionScheduleRequest struct {
	missionScheduleBody
	schedule domain.MissionSchedule
}

func (req *missionScheduleRequest) Validate() error {
	var err error
	req.schedule, err = req.missionScheduleBody.schedule()
	return err
}

// missionWindowsRequest is the body of PUT /v1/missions/{id}/windows: the
// windows replace all the mission had.
type missionWindowsRequest struct {
	Windows []missionWindowBody `json:"windows"`
	windows []domain.MissionWindow
}

func (req *missionWindowsRequest) Validate() error {
	var err error
	req.windows, err = parseMissionWindows(req.Windows)
	return err
}

// missionJoinRequest is the body of a join: the code, required for a
// private mission and for a join by code.
type missionJoinRequest struct {
	Code string `json:"code"`
}

type missionHostResponse struct {
	ID       string `json:"id"`
	Nickname string `json:"nickname"`
}

// missionResponse is a mission on the wire. code is null for whoever may
// not see it (a private mission's non-members); the schedule's parts are
// null until set.
type missionResponse struct {
	ID          string               `json:"id"`
	Code        *string              `json:"code"`
	Title       string               `json:"title"`
	Type        domain.MissionType   `json:"type"`
	Description string               `json:"description"`
	Stake       int64                `json:"stake"`
	Capacity    int                  `json:"capacity"`
	MemberCount int                  `json:"member_count"`
	SeatsLeft   int                  `json:"seats_left"`
	Private     bool                 `json:"private"`
	Status      domain.MissionStatus `json:"status"`
	StartsAt    *time.Time           `json:"starts_at"`
	EndsAt      *time.Time           `json:"ends_at"`
	Weeks       *int                 `json:"weeks"`
	DaysPerWeek *int                 `json:"days_per_week"`
	PerDay      *int                 `json:"per_day"`
	Required    *int                 `json:"required"`
	Windows     []missionWindowBody  `json:"windows"`
	Host        missionHostResponse  `json:"host"`
	ClosedAt    *time.Time           `json:"closed_at"`
	CreatedAt   time.Time            `json:"created_at"`
	UpdatedAt   time.Time            `json:"updated_at"`
}

func timeOrNull(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func intOrNull(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}

// newMissionResponse shows m; showCode says the viewer may see its code
// (public missions always).
func newMissionResponse(m *domain.Mission, showCode bool) missionResponse {
	resp := missionResponse{
		ID: m.ID, Title: m.Title, Type: m.Type, Description: m.Description, Stake: m.Stake,
		Capacity: m.Capacity, MemberCount: m.MemberCount, SeatsLeft: m.SeatsLeft(), Private: m.Private,
		Status: m.Status, StartsAt: timeOrNull(m.Schedule.StartsAt), EndsAt: timeOrNull(m.EndsAt),
		Weeks: intOrNull(m.Schedule.Weeks), DaysPerWeek: intOrNull(m.Schedule.DaysPerWeek),
		PerDay: intOrNull(m.Schedule.PerDay), Required: intOrNull(m.Schedule.Required()),
		Windows: make([]missionWindowBody, len(m.Windows)), Host: missionHostResponse{ID: m.HostID, Nickname: m.Host},
		ClosedAt: timeOrNull(m.ClosedAt), CreatedAt: m.CreatedAt.UTC(), UpdatedAt: m.UpdatedAt.UTC(),
	}
	if showCode || !m.Private {
		resp.Code = &m.Code
	}
	for i, w := range m.Windows {
		resp.Windows[i] = missionWindowBody{Start: domain.MissionClock(w.Start), End: domain.MissionClock(w.End)}
	}
	return resp
}

// missionMemberResponse is one member of a mission.
type missionMemberResponse struct {
	ID       string                     `json:"id"`
	Nickname string                     `json:"nickname"`
	Host     bool                       `json:"host"`
	Status   domain.MissionMemberStatus `json:"status"`
	Stake    int64                      `json:"stake"`
	JoinedAt time.Time                  `json:"joined_at"`
	LeftAt   *time.Time                 `json:"left_at"`
}

func newMissionMemberResponse(mm *domain.MissionMember) missionMemberResponse {
	return missionMemberResponse{ID: mm.MemberID, Nickname: mm.Nickname, Host: mm.Host, Status: mm.Status,
		Stake: mm.Stake, JoinedAt: mm.JoinedAt.UTC(), LeftAt: timeOrNull(mm.LeftAt)}
}

// missionDetailResponse is GET /v1/missions/{id}: the mission, its members
// and the viewer's own membership (null when they are not in it).
type missionDetailResponse struct {
	missionResponse
	Members []missionMemberResponse `json:"members"`
	Me      *missionMemberResponse  `json:"me"`
}

// missionJoinResponse answers a join: the mission as it is now, the
// caller's membership and their balance after the stake.
type missionJoinResponse struct {
	Mission    missionResponse       `json:"mission"`
	Membership missionMemberResponse `json:"membership"`
	Balance    int64                 `json:"balance"`
}

// missionLeaveResponse answers a leave: the stake given back (0 after the
// start: it is forfeit) and the caller's balance.
type missionLeaveResponse struct {
	Refund  int64 `json:"refund"`
	Balance int64 `json:"balance"`
}

type missionList struct {
	Missions   []missionResponse `json:"missions"`
	NextCursor *string           `json:"next_cursor"`
}

// missionNow is the handlers' instant at the stores' precision.
func (s *server) missionNow() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// handleMissionCreate opens a mission with its host as the first member,
// staking the host's points.
func (s *server) handleMissionCreate(w http.ResponseWriter, r *http.Request) {
	var req missionCreateRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.missionNow()
	m := domain.Mission{
		HostID: mustClaims(r).MemberID, Title: req.Title, Type: req.Type, Description: req.Description,
		Stake: req.Stake, Capacity: req.Capacity, Private: req.Private, Windows: req.windows, CreatedAt: now,
	}
	if req.schedule != nil {
		if err := req.schedule.Validate(now, s.missionAhead); err != nil {
			s.writeError(w, r, err)
			return
		}
		m.Schedule, m.EndsAt = *req.schedule, req.schedule.EndsAt(s.missionLoc)
	}
	err := db.RunInTx(r.Context(), s.db, func(ctx context.Context, tx bun.Tx) error {
		return tokenRevokedIfGone((missiondb.Missions{}).Create(ctx, tx, &m))
	})
	if err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/missions/"+m.ID)
	s.writeJSON(w, r, http.StatusCreated, newMissionResponse(&m, true))
}

// handleMissionGet answers a mission with its members.
func (s *server) handleMissionGet(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	m, err := (missiondb.Missions{}).FindByID(ctx, s.db, chi.URLParam(r, "id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	members, err := (missiondb.Missions{}).Members(ctx, s.db, m)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	me := mustClaims(r).MemberID
	resp := missionDetailResponse{Members: make([]missionMemberResponse, len(members))}
	for i := range members {
		resp.Members[i] = newMissionMemberResponse(&members[i])
		if members[i].MemberID == me {
			resp.Me = &resp.Members[i]
		}
	}
	resp.missionResponse = newMissionResponse(m, resp.Me != nil)
	s.writeJSON(w, r, http.StatusOK, resp)
}

// handleMissionList answers a page of the missions one can join (sort=new,
// the default, or sort=hot), or with code= the one mission with that code.
func (s *server) handleMissionList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := queryLimit(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	f := missiondb.MissionFilter{Q: q.Get("q"), Code: domain.NormalizeMissionCode(q.Get("code")), Cursor: q.Get("cursor"), Limit: limit, Now: s.missionNow()}
	switch q.Get("sort") {
	case "", "new":
	case "hot":
		f.Sort = missiondb.MissionSortHot
	default:
		s.writeError(w, r, domain.FieldErrorf(domain.EINVALID, "sort", "Query parameter \"sort\" must be new or hot."))
		return
	}
	if v := q.Get("type"); v != "" {
		if f.Type, err = domain.ParseMissionType(v); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	page, err := (missiondb.Missions{}).List(r.Context(), s.db, f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// Whoever searched by code knows it.
	s.writeMissionPage(w, r, page, f.Code != "")
}

func (s *server) writeMissionPage(w http.ResponseWriter, r *http.Request, page missiondb.MissionPage, showCode bool) {
	resp := missionList{Missions: make([]missionResponse, len(page.Missions)), NextCursor: nullable(page.Next)}
	for i := range page.Missions {
		resp.Missions[i] = newMissionResponse(&page.Missions[i], showCode)
	}
	s.writeJSON(w, r, http.StatusOK, resp)
}

// handleMissionMine answers a page of the caller's missions: role=hosting
// (the default), joined or finished.
func (s *server) handleMissionMine(w http.ResponseWriter, r *http.Request) {
	limit, err := queryLimit(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var role missiondb.MissionRole
	switch r.URL.Query().Get("role") {
	case "", "hosting":
		role = missiondb.MissionRoleHosting
	case "joined":
		role = missiondb.MissionRoleJoined
	case "finished":
		role = missiondb.MissionRoleFinished
	default:
		s.writeError(w, r, domain.FieldErrorf(domain.EINVALID, "role", "Query parameter \"role\" must be hosting, joined or finished."))
		return
	}
	page, err := (missiondb.Missions{}).Mine(r.Context(), s.db, mustClaims(r).MemberID, role, r.URL.Query().Get("cursor"), limit)
	if err != nil {
		s.writeAuthError(w, r, tokenRevokedIfGone(err))
		return
	}
	s.writeMissionPage(w, r, page, true)
}

// tokenRevokedIfGone answers for a caller whose account was deleted while
// their token lives on.
func tokenRevokedIfGone(err error) error {
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return domain.Errorf(domain.ETOKENREVOKED, "The account no longer exists.")
	}
	return err
}

// changeMission runs fn, a read of a mission and a version-checked change
// of it, in a transaction whose outbox rows are relayed once it commits,
// again while the mission changed in between (missiondb.RetryStale).
func (s *server) changeMission(ctx context.Context, fn func(ctx context.Context, tx bun.Tx) error) error {
	return missiondb.RetryStale(ctx, func(ctx context.Context) error { return s.relay.RunInTx(ctx, fn) })
}

// hostedMission reads mission id for a change by member me: someone
// else's is forbidden.
func hostedMission(ctx context.Context, tx bun.Tx, id, me string) (*domain.Mission, error) {
	m, err := (missiondb.Missions{}).FindByID(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	if m.HostID != me {
		return nil, domain.Errorf(domain.EFORBIDDEN, "Only the mission's host may do this.")
	}
	return m, nil
}

// hostChange runs change, a host's change of mission {id} read in the
// transaction, and answers the mission as it left it.
func (s *server) hostChange(w http.ResponseWriter, r *http.Request, change func(ctx context.Context, tx bun.Tx, m *domain.Mission, now time.Time) error) {
	me := mustClaims(r).MemberID
	var m *domain.Mission
	err := s.changeMission(r.Context(), func(ctx context.Context, tx bun.Tx) error {
		var err error
		if m, err = hostedMission(ctx, tx, chi.URLParam(r, "id"), me); err != nil {
			return err
		}
		return change(ctx, tx, m, s.missionNow())
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, newMissionResponse(m, true))
}

// editMission decodes req and runs edit, a host's change of the schedule
// or the windows, while the mission is Editable.
func (s *server) editMission(w http.ResponseWriter, r *http.Request, req any, edit func(ctx context.Context, tx bun.Tx, m *domain.Mission, now time.Time) error) {
	if err := s.decode(w, r, req); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.hostChange(w, r, func(ctx context.Context, tx bun.Tx, m *domain.Mission, now time.Time) error {
		if err := m.Editable(now); err != nil {
			return err
		}
		return edit(ctx, tx, m, now)
	})
}

// handleMissionSchedule sets a mission's schedule (host, before anyone
// else joined); with windows set it opens.
func (s *server) handleMissionSchedule(w http.ResponseWriter, r *http.Request) {
	var req missionScheduleRequest
	s.editMission(w, r, &req, func(ctx context.Context, tx bun.Tx, m *domain.Mission, now time.Time) error {
		if err := req.schedule.Validate(now, s.missionAhead); err != nil {
			return err
		}
		return (missiondb.Missions{}).SetSchedule(ctx, tx, m, req.schedule, req.schedule.EndsAt(s.missionLoc), now)
	})
}

// handleMissionWindows replaces a mission's windows (host, before anyone
// else joined); with the schedule set it opens.
func (s *server) handleMissionWindows(w http.ResponseWriter, r *http.Request) {
	var req missionWindowsRequest
	s.editMission(w, r, &req, func(ctx context.Context, tx bun.Tx, m *domain.Mission, now time.Time) error {
		return (missiondb.Missions{}).SetWindows(ctx, tx, m, req.windows, now)
	})
}

// handleMissionJoin joins mission {id}; a private one wants its code.
func (s *server) handleMissionJoin(w http.ResponseWriter, r *http.Request) {
	var req missionJoinRequest
	if err := s.decodeOptional(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.joinMission(w, r, missiondb.MissionJoin{MissionID: chi.URLParam(r, "id"), Code: req.Code})
}

// handleMissionJoinByCode joins the mission with the given code.
func (s *server) handleMissionJoinByCode(w http.ResponseWriter, r *http.Request) {
	var req missionJoinRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(domain.NormalizeMissionCode(req.Code)) != domain.MissionCodeLen {
		s.writeError(w, r, domain.FieldErrorf(domain.EWRONGCODE, "code", "Wrong or missing join code."))
		return
	}
	s.joinMission(w, r, missiondb.MissionJoin{ByCode: true, Code: req.Code})
}

// joinMission takes a seat and stakes the caller's points in one
// transaction, retried while the mission changes under it, and answers 201
// with the membership and the new balance.
func (s *server) joinMission(w http.ResponseWriter, r *http.Request, j missiondb.MissionJoin) {
	j.MemberID = mustClaims(r).MemberID
	res, err := (missiondb.Missions{}).JoinRetrying(r.Context(), s.db, j, s.missionNow)
	if errors.Is(err, missiondb.ErrMemberGone) {
		err = domain.Errorf(domain.ETOKENREVOKED, "The account no longer exists.")
	}
	if err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/missions/"+res.Mission.ID)
	s.writeJSON(w, r, http.StatusCreated, missionJoinResponse{
		Mission: newMissionResponse(res.Mission, true), Membership: newMissionMemberResponse(res.Membership), Balance: res.Balance,
	})
}

// handleMissionLeave takes the caller out of a mission: before the start
// with the stake back, after it without.
func (s *server) handleMissionLeave(w http.ResponseWriter, r *http.Request) {
	me := mustClaims(r).MemberID
	var resp missionLeaveResponse
	err := s.changeMission(r.Context(), func(ctx context.Context, tx bun.Tx) error {
		m, err := (missiondb.Missions{}).FindByID(ctx, tx, chi.URLParam(r, "id"))
		if err != nil {
			return err
		}
		resp.Refund, resp.Balance, err = (missiondb.Missions{}).Leave(ctx, tx, m, me, s.missionNow())
		return err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, resp)
}

// handleMissionRemove is the host's removal of a member before the start;
// their stake goes back to them.
func (s *server) handleMissionRemove(w http.ResponseWriter, r *http.Request) {
	me := mustClaims(r).MemberID
	err := s.changeMission(r.Context(), func(ctx context.Context, tx bun.Tx) error {
		m, err := hostedMission(ctx, tx, chi.URLParam(r, "id"), me)
		if err != nil {
			return err
		}
		_, err = (missiondb.Missions{}).Remove(ctx, tx, m, chi.URLParam(r, "member_id"), s.missionNow())
		return err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// missionCancelledReason is the notification's reason when the host
// cancels.
const missionCancelledReason = "호스트가 미션을 취소했어요"

// handleMissionCancel is the host's cancellation before the start: every
// stake goes back, and the other members are told with their refund.
func (s *server) handleMissionCancel(w http.ResponseWriter, r *http.Request) {
	s.hostChange(w, r, func(ctx context.Context, tx bun.Tx, m *domain.Mission, now time.Time) error {
		refunded, err := (missiondb.Missions{}).Cancel(ctx, tx, m, now)
		if err != nil {
			return err
		}
		for _, mm := range refunded {
			if mm.Host {
				continue // the host knows
			}
			args := domain.NotificationArgs{MissionID: m.ID, Title: m.Title, Amount: mm.Stake,
				Reason: missionCancelledReason, Link: "/missions/" + m.ID}
			if _, err := jobs.Notify(ctx, tx, domain.NotifyMissionCancelled, args, now, mm.MemberID); err != nil {
				return err
			}
		}
		return nil
	})
}
