package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

// GroupRunRules time attendance and evaluation (ErunJrun).
type GroupRunRules struct {
	// AttendanceFrom: the host marks attendance from this long before the
	// start (when the starts-soon reminder links them to it).
	AttendanceFrom time.Duration
	// EndedAfter: guests evaluate the host from this long after the start.
	EndedAfter time.Duration
	// EvaluationMin and EvaluationMax bound one evaluation's change of the
	// host's manner points; 0 is not an evaluation.
	EvaluationMin, EvaluationMax int
}

// DefaultGroupRunRules are ErunJrun's: attendance from 30 minutes before,
// evaluation from an hour after the start, -5..+5 points.
var DefaultGroupRunRules = GroupRunRules{AttendanceFrom: 30 * time.Minute, EndedAfter: time.Hour, EvaluationMin: -5, EvaluationMax: 5}

// registerGroupRunRoutes mounts attendance and evaluation (authenticated).
func (s *server) registerGroupRunRoutes(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate)
		r.Put("/v1/rooms/{id}/attendance", s.handleAttendance)
		r.Post("/v1/rooms/{id}/evaluation", s.handleEvaluation)
	})
}

type attendanceRequest struct {
	MemberIDs []string `json:"member_ids"`
}

func (req *attendanceRequest) Validate() error {
	if len(req.MemberIDs) == 0 {
		return domain.FieldErrorf(domain.EINVALID, "member_ids", "Field \"member_ids\" must name at least one guest.")
	}
	if len(req.MemberIDs) > domain.RoomCapacityHi {
		return domain.FieldErrorf(domain.EINVALID, "member_ids", "A room has at most %d members.", domain.RoomCapacityHi)
	}
	return nil
}

type attendeeResponse struct {
	ID       string `json:"id"`
	Nickname string `json:"nickname"`
	Attended bool   `json:"attended"`
}

type attendanceResponse struct {
	// Marked are the guests this request marked (each got a manner point).
	Marked    []string           `json:"marked"`
	Attendees []attendeeResponse `json:"attendees"`
}

// handleAttendance lets the host mark which guests came, from
// AttendanceFrom before the start; each guest marked for the first time
// gets a manner point (ErunJrun).
func (s *server) handleAttendance(w http.ResponseWriter, r *http.Request) {
	var req attendanceRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	me := mustClaims(r).MemberID
	now := s.now().UTC()
	var (
		room   *domain.Room
		marked []string
	)
	// A guest leaving meanwhile changes the room: read it again.
	err := s.changeRoom(r.Context(), func(ctx context.Context, tx bun.Tx) error {
		var err error
		if room, err = findLiveRoom(ctx, tx, chi.URLParam(r, "id")); err != nil {
			return err
		}
		if room.HostID != me {
			return domain.Errorf(domain.EFORBIDDEN, "Only the host marks attendance.")
		}
		if opens := room.StartsAt.Add(-s.groupRuns.AttendanceFrom); now.Before(opens) {
			return domain.Errorf(domain.ENOTOPENYET, "Attendance opens at %s.", opens.Format(time.RFC3339))
		}
		marked, err = (db.Rooms{}).MarkAttendance(ctx, tx, room, req.MemberIDs)
		return err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := attendanceResponse{Marked: marked, Attendees: []attendeeResponse{}}
	if resp.Marked == nil {
		resp.Marked = []string{}
	}
	newly := map[string]bool{}
	for _, id := range marked {
		newly[id] = true
	}
	for _, p := range room.Participants {
		if !p.Host {
			resp.Attendees = append(resp.Attendees, attendeeResponse{ID: p.MemberID, Nickname: p.Nickname, Attended: p.Attended || newly[p.MemberID]})
		}
	}
	s.writeJSON(w, r, http.StatusOK, resp)
}

type evaluationRequest struct {
	Points *int `json:"points"`
}

type evaluationResponse struct {
	RoomID string `json:"room_id"`
	HostID string `json:"host_id"`
	Points int    `json:"points"`
}

// handleEvaluation lets a guest evaluate the host once, after the room is
// over: the points move the host's manner points.
func (s *server) handleEvaluation(w http.ResponseWriter, r *http.Request) {
	var req evaluationRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	lo, hi := s.groupRuns.EvaluationMin, s.groupRuns.EvaluationMax
	if req.Points == nil || *req.Points == 0 || *req.Points < lo || *req.Points > hi {
		s.writeError(w, r, domain.FieldErrorf(domain.EINVALID, "points", "Field \"points\" must be %d to %d, not 0.", lo, hi))
		return
	}
	me := mustClaims(r).MemberID
	now := s.now().UTC()
	var room *domain.Room
	err := db.RunInTx(r.Context(), s.db, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if room, err = findLiveRoom(ctx, tx, chi.URLParam(r, "id")); err != nil {
			return err
		}
		if room.HostID == me {
			return domain.Errorf(domain.EFORBIDDEN, "The host does not evaluate themselves.")
		}
		if opens := room.StartsAt.Add(s.groupRuns.EndedAfter); now.Before(opens) {
			return domain.Errorf(domain.ENOTOPENYET, "Evaluation opens at %s, after the room.", opens.Format(time.RFC3339))
		}
		return (db.Rooms{}).Evaluate(ctx, tx, room, me, *req.Points)
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusCreated, evaluationResponse{RoomID: room.ID, HostID: room.HostID, Points: *req.Points})
}
