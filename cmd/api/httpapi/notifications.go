package httpapi

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
)

// Notification list limits.
const (
	defaultPageSize = 20
	maxPageSize     = 100
	maxReadIDs      = 100
)

// registerNotificationRoutes mounts the member's in-app notifications.
func (s *server) registerNotificationRoutes(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate)
		r.Get("/v1/notifications", s.handleNotificationList)
		r.Post("/v1/notifications/read", s.handleNotificationRead)
	})
	r.With(s.requireAdmin).Post("/v1/admin/notifications", s.handleAdminNotify)
}

// notificationResponse is a notification on the wire, in the list and in
// the event stream alike.
type notificationResponse struct {
	ID        string                  `json:"id"`
	Type      domain.NotificationType `json:"type"`
	Args      domain.NotificationArgs `json:"args"`
	Read      bool                    `json:"read"`
	ReadAt    *time.Time              `json:"read_at"`
	CreatedAt time.Time               `json:"created_at"`
}

func newNotificationResponse(n *domain.Notification) notificationResponse {
	resp := notificationResponse{ID: n.ID, Type: n.Type, Args: n.Args, CreatedAt: n.CreatedAt.UTC(), Read: n.ReadAt != nil}
	if n.ReadAt != nil {
		t := n.ReadAt.UTC()
		resp.ReadAt = &t
	}
	return resp
}

// eventNotificationResponse is the same shape for a notification that came
// over pub/sub (new, so unread).
func eventNotificationResponse(e jobs.EventNotification) notificationResponse {
	return notificationResponse{ID: e.ID, Type: e.Type, Args: e.Args, CreatedAt: e.CreatedAt.UTC()}
}

type notificationList struct {
	Notifications []notificationResponse `json:"notifications"`
	NextCursor    *string                `json:"next_cursor"`
	UnreadCount   int                    `json:"unread_count"`
}

// handleNotificationList answers a page of the member's notifications,
// newest first: ?limit= (1–100, default 20) and ?cursor= from the previous
// page's next_cursor.
func (s *server) handleNotificationList(w http.ResponseWriter, r *http.Request) {
	limit, err := queryLimit(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	me := mustClaims(r).MemberID
	page, err := (db.Notifications{}).List(ctx, s.db, me, r.URL.Query().Get("cursor"), limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	unread, err := (db.Notifications{}).UnreadCount(ctx, s.db, me)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := notificationList{Notifications: make([]notificationResponse, 0, len(page.Notifications)), UnreadCount: unread}
	for i := range page.Notifications {
		resp.Notifications = append(resp.Notifications, newNotificationResponse(&page.Notifications[i]))
	}
	if page.Next != "" {
		resp.NextCursor = &page.Next
	}
	s.writeJSON(w, r, http.StatusOK, resp)
}

// readRequest marks notifications read: the listed ids, or all.
type readRequest struct {
	IDs []string `json:"ids"`
	All bool     `json:"all"`
}

func (req *readRequest) Validate() error {
	switch {
	case req.All && req.IDs != nil:
		return domain.FieldErrorf(domain.EINVALID, "ids", "Send either \"ids\" or \"all\", not both.")
	case !req.All && len(req.IDs) == 0:
		return domain.FieldErrorf(domain.EINVALID, "ids", "Field \"ids\" must list at least one id (or send \"all\": true).")
	case len(req.IDs) > maxReadIDs:
		return domain.FieldErrorf(domain.EINVALID, "ids", "Field \"ids\" must list at most %d ids.", maxReadIDs)
	}
	return nil
}

type readResponse struct {
	Updated     int `json:"updated"`
	UnreadCount int `json:"unread_count"`
}

// handleNotificationRead marks notifications read. Ids that are unknown or
// someone else's are passed over without an error, so the answer never
// tells whether they exist; "updated" counts what changed.
func (s *server) handleNotificationRead(w http.ResponseWriter, r *http.Request) {
	var req readRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	me := mustClaims(r).MemberID
	ids := req.IDs
	if req.All {
		ids = nil
	}
	n, err := (db.Notifications{}).MarkRead(ctx, s.db, me, ids, s.now())
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		err = domain.Errorf(domain.ETOKENREVOKED, "The account no longer exists.")
	}
	if err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	unread, err := (db.Notifications{}).UnreadCount(ctx, s.db, me)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, readResponse{Updated: n, UnreadCount: unread})
}

// adminNotifyRequest sends a notification by hand: an operator's check
// that a member's channels (mail, SMS, Slack, the live stream) work.
type adminNotifyRequest struct {
	MemberIDs []string                `json:"member_ids"`
	Type      domain.NotificationType `json:"type"`
	Args      domain.NotificationArgs `json:"args"`
}

func (req *adminNotifyRequest) Validate() error {
	switch {
	case len(req.MemberIDs) == 0:
		return domain.FieldErrorf(domain.EINVALID, "member_ids", "Field \"member_ids\" must name at least one member.")
	case len(req.MemberIDs) > maxReadIDs:
		return domain.FieldErrorf(domain.EINVALID, "member_ids", "Field \"member_ids\" must name at most %d members.", maxReadIDs)
	case !req.Type.Valid():
		return domain.FieldErrorf(domain.EINVALID, "type", "Field \"type\" is required.")
	}
	return req.Args.CheckFor(req.Type)
}

type adminNotifyResponse struct {
	Notifications []notificationResponse `json:"notifications"`
}

// handleAdminNotify records a notification for the members through the
// same producer every feature uses (several members make a group: one
// Slack message). An unknown or deleted member among them is a 404 naming
// the ids, with nothing stored: the producer passes such members over,
// which an operator checking a channel would take for a send.
func (s *server) handleAdminNotify(w http.ResponseWriter, r *http.Request) {
	var req adminNotifyRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	var created []domain.Notification
	err := s.relay.RunInTx(r.Context(), func(ctx context.Context, tx bun.Tx) (err error) {
		created, err = jobs.Notify(ctx, tx, req.Type, req.Args, s.now(), req.MemberIDs...)
		if err != nil {
			return err
		}
		return unknownMembers(req.MemberIDs, created)
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := adminNotifyResponse{Notifications: make([]notificationResponse, 0, len(created))}
	for i := range created {
		resp.Notifications = append(resp.Notifications, newNotificationResponse(&created[i]))
	}
	s.writeJSON(w, r, http.StatusAccepted, resp)
}

// unknownMembers is ENOTFOUND naming the ids of asked that got no
// notification, or nil when every one did.
func unknownMembers(asked []string, created []domain.Notification) error {
	got := make(map[string]bool, len(created))
	for i := range created {
		got[created[i].MemberID] = true
	}
	var missing []string
	for _, id := range asked {
		if !got[id] && !slices.Contains(missing, id) {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return domain.FieldErrorf(domain.ENOTFOUND, "member_ids", "No such members: %s.", strings.Join(missing, ", "))
}

// queryLimit reads ?limit= of a list: defaultPageSize when absent.
func queryLimit(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return defaultPageSize, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxPageSize {
		return 0, domain.FieldErrorf(domain.EINVALID, "limit", "Query parameter \"limit\" must be 1 to %d.", maxPageSize)
	}
	return n, nil
}
