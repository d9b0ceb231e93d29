package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
)

// DefaultRoomLocation names the zone a room's date and start time are read
// and shown in when Deps.RoomLocation is nil.
const DefaultRoomLocation = "Asia/Seoul"

// roomWriteAttempts bounds the tries of a host's version-checked change
// that keeps losing to joins and leaves before it answers a conflict.
const roomWriteAttempts = 5

// Wire formats of a room's local date and start time.
const (
	roomDateLayout = "2006-01-02"
	roomTimeLayout = "15:04"
)

// defaultRoomLocation is Asia/Seoul, or its fixed offset when the zone
// database is missing: Korea has kept UTC+9 without daylight saving since
// 1988, so the two agree for every room.
func defaultRoomLocation() *time.Location {
	if loc, err := time.LoadLocation(DefaultRoomLocation); err == nil {
		return loc
	}
	return time.FixedZone("KST", 9*60*60)
}

// registerRoomRoutes mounts rooms and their join and leave requests.
func (s *server) registerRoomRoutes(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate)
		r.Post("/v1/rooms", s.handleRoomCreate)
		r.Get("/v1/rooms", s.handleRoomList)
		r.Get("/v1/rooms/{id}", s.handleRoomGet)
		r.Patch("/v1/rooms/{id}", s.handleRoomUpdate)
		r.Delete("/v1/rooms/{id}", s.handleRoomDelete)
		r.Post("/v1/rooms/{id}/participations", s.handleRoomJoin)
		r.Delete("/v1/rooms/{id}/participations/mine", s.handleRoomLeave)
		r.Post("/v1/rooms/{id}/complete", s.handleRoomComplete)
		r.Get("/v1/participations/{id}", s.handleParticipationGet)
	})
}

// parseRoomDate reads a "YYYY-MM-DD" date; the result is that day at
// midnight UTC, a carrier for the calendar date only.
func parseRoomDate(field, v string) (time.Time, error) {
	d, err := time.Parse(roomDateLayout, v)
	if err != nil || len(v) != len(roomDateLayout) {
		return time.Time{}, domain.FieldErrorf(domain.EINVALID, field, "Field %q must be a date as YYYY-MM-DD.", field)
	}
	return d, nil
}

// parseRoomClock reads an "HH:MM" time of day (00:00–23:59). The length
// check refuses "9:30", which time.Parse would take.
func parseRoomClock(field, v string) (time.Time, error) {
	c, err := time.Parse(roomTimeLayout, v)
	if err != nil || len(v) != len(roomTimeLayout) {
		return time.Time{}, domain.FieldErrorf(domain.EINVALID, field, "Field %q must be a time of day as HH:MM.", field)
	}
	return c, nil
}

// localTime is the instant of calendar date day at clock in loc.
func localTime(day, clock time.Time, loc *time.Location) time.Time {
	return time.Date(day.Year(), day.Month(), day.Day(), clock.Hour(), clock.Minute(), 0, 0, loc).UTC()
}

// roomCreateRequest is the body of POST /v1/rooms. Texts, capacity and
// start are checked by domain.Room.Validate once the start is placed in
// the room location.
type roomCreateRequest struct {
	Category      domain.Category `json:"category"`
	Title         string          `json:"title"`
	Body          string          `json:"body"`
	Date          string          `json:"date"`
	StartTime     string          `json:"start_time"`
	Place         string          `json:"place"`
	Capacity      int             `json:"capacity"`
	Places        []string        `json:"places"`
	TimesOfEating []string        `json:"times_of_eating"`
	WaysOfEating  []string        `json:"ways_of_eating"`
	StudyTypes    []string        `json:"study_types"`
	Anonymous     bool            `json:"anonymous"`
	ImageIDs      []string        `json:"image_ids"`

	day, clock time.Time
	conditions domain.RoomConditions
}

func (req *roomCreateRequest) Validate() error {
	if !req.Category.Valid() {
		return domain.FieldErrorf(domain.EINVALID, "category", "Field \"category\" must be MEAL, STUDY or RUN.")
	}
	var err error
	if req.day, err = parseRoomDate("date", req.Date); err != nil {
		return err
	}
	if req.clock, err = parseRoomClock("start_time", req.StartTime); err != nil {
		return err
	}
	req.conditions, err = domain.ParseRoomConditions(req.Category, req.Places, req.TimesOfEating, req.WaysOfEating, req.StudyTypes)
	if err != nil {
		return err
	}
	return validateImageIDs(req.ImageIDs)
}

// validateImageIDs checks a room's photo list: up to RoomImagesMax
// distinct ids.
func validateImageIDs(ids []string) error {
	if len(ids) > domain.RoomImagesMax {
		return domain.FieldErrorf(domain.EINVALID, "image_ids", "A room has at most %d images.", domain.RoomImagesMax)
	}
	for i, id := range ids {
		if id == "" {
			return domain.FieldErrorf(domain.EINVALID, "image_ids", "Field \"image_ids\" must not hold an empty id.")
		}
		for _, prev := range ids[:i] {
			if prev == id {
				return domain.FieldErrorf(domain.EINVALID, "image_ids", "Image %s is listed twice.", id)
			}
		}
	}
	return nil
}

// dropRoomImages detaches every photo of a cancelled room and enqueues
// their deletion.
func dropRoomImages(ctx context.Context, tx bun.Tx, room *domain.Room) error {
	dropped, err := (db.Images{}).SetRoomImages(ctx, tx, room.Key, nil)
	if err != nil {
		return err
	}
	return jobs.EnqueueImageDeletes(ctx, tx, dropped...)
}

// attachRoomImages makes ids the photos of room, hosted by me, after
// checking each one, and enqueues the deletion of those it drops.
func attachRoomImages(ctx context.Context, tx bun.Tx, room *domain.Room, me string, ids []string) error {
	imgs := make([]domain.Image, 0, len(ids))
	for _, id := range ids {
		img, err := attachableImage(ctx, tx, id, me, domain.ImagePurposeRoom, "image_ids")
		if err != nil {
			return err
		}
		imgs = append(imgs, *img)
	}
	dropped, err := (db.Images{}).SetRoomImages(ctx, tx, room.Key, ids)
	if err != nil {
		return err
	}
	room.Images = imgs
	return jobs.EnqueueImageDeletes(ctx, tx, dropped...)
}

// roomUpdateRequest is the body of PATCH /v1/rooms/{id}: what is given
// changes. date and start_time come together; each condition list given
// replaces that dimension ([] clears it).
type roomUpdateRequest struct {
	Title         *string   `json:"title"`
	Body          *string   `json:"body"`
	Date          *string   `json:"date"`
	StartTime     *string   `json:"start_time"`
	Place         *string   `json:"place"`
	Capacity      *int      `json:"capacity"`
	Places        *[]string `json:"places"`
	TimesOfEating *[]string `json:"times_of_eating"`
	WaysOfEating  *[]string `json:"ways_of_eating"`
	StudyTypes    *[]string `json:"study_types"`
	Anonymous     *bool     `json:"anonymous"`
	ImageIDs      *[]string `json:"image_ids"`

	day, clock time.Time
}

func (req *roomUpdateRequest) conditionsGiven() bool {
	return req.Places != nil || req.TimesOfEating != nil || req.WaysOfEating != nil || req.StudyTypes != nil
}

func (req *roomUpdateRequest) Validate() error {
	if req.Title == nil && req.Body == nil && req.Date == nil && req.StartTime == nil && req.Place == nil &&
		req.Capacity == nil && !req.conditionsGiven() && req.Anonymous == nil && req.ImageIDs == nil {
		return domain.Errorf(domain.EINVALID, "Nothing to change: give at least one field.")
	}
	if req.ImageIDs != nil {
		if err := validateImageIDs(*req.ImageIDs); err != nil {
			return err
		}
	}
	switch {
	case req.Date != nil && req.StartTime == nil:
		return domain.FieldErrorf(domain.EINVALID, "start_time", "Fields \"date\" and \"start_time\" change together.")
	case req.Date == nil && req.StartTime != nil:
		return domain.FieldErrorf(domain.EINVALID, "date", "Fields \"date\" and \"start_time\" change together.")
	case req.Date != nil:
		var err error
		if req.day, err = parseRoomDate("date", *req.Date); err != nil {
			return err
		}
		if req.clock, err = parseRoomClock("start_time", *req.StartTime); err != nil {
			return err
		}
	}
	return nil
}

// update turns the request into a change of room r, whose category decides
// which condition lists apply.
func (req *roomUpdateRequest) update(r *domain.Room, loc *time.Location) (domain.RoomUpdate, error) {
	u := domain.RoomUpdate{Title: req.Title, Body: req.Body, Place: req.Place, Capacity: req.Capacity, Anonymous: req.Anonymous}
	if req.Date != nil {
		at := localTime(req.day, req.clock, loc)
		u.StartsAt = &at
	}
	if req.conditionsGiven() {
		deref := func(p *[]string) []string {
			if p == nil {
				return nil
			}
			return *p
		}
		given, err := domain.ParseRoomConditions(r.Category, deref(req.Places), deref(req.TimesOfEating), deref(req.WaysOfEating), deref(req.StudyTypes))
		if err != nil {
			return u, err
		}
		c := r.Conditions
		if req.Places != nil {
			c.Places = given.Places
		}
		if req.TimesOfEating != nil {
			c.TimesOfEating = given.TimesOfEating
		}
		if req.WaysOfEating != nil {
			c.WaysOfEating = given.WaysOfEating
		}
		if req.StudyTypes != nil {
			c.StudyTypes = given.StudyTypes
		}
		u.Conditions = &c
	}
	return u, nil
}

// roomConditionsResponse lists a room's conditions by name; a dimension the
// room does not state is [].
type roomConditionsResponse struct {
	Places        []string `json:"places"`
	TimesOfEating []string `json:"times_of_eating"`
	WaysOfEating  []string `json:"ways_of_eating"`
	StudyTypes    []string `json:"study_types"`
}

type roomHostResponse struct {
	ID       string `json:"id"`
	Nickname string `json:"nickname"`
}

// roomResponse is a room on the wire.
type roomResponse struct {
	ID               string                  `json:"id"`
	Category         domain.Category         `json:"category"`
	Title            string                  `json:"title"`
	Body             string                  `json:"body"`
	Date             string                  `json:"date"`
	StartTime        string                  `json:"start_time"`
	StartsAt         time.Time               `json:"starts_at"`
	Place            string                  `json:"place"`
	Capacity         int                     `json:"capacity"`
	ParticipantCount int                     `json:"participant_count"`
	Conditions       roomConditionsResponse  `json:"conditions"`
	Anonymous        bool                    `json:"anonymous"`
	Host             *roomHostResponse       `json:"host"`
	Completed        bool                    `json:"completed"`
	MatchID          *string                 `json:"match_id"`
	Images           []attachedImageResponse `json:"images"`
	CreatedAt        time.Time               `json:"created_at"`
	UpdatedAt        time.Time               `json:"updated_at"`
}

// participantResponse is one member of a room; id and nickname are null
// when the room is anonymous to the viewer.
type participantResponse struct {
	ID       *string `json:"id"`
	Nickname *string `json:"nickname"`
	Host     bool    `json:"host"`
	Me       bool    `json:"me"`
}

// roomDetailResponse is GET /v1/rooms/{id}: the room and who is in it.
type roomDetailResponse struct {
	roomResponse
	Participants []participantResponse `json:"participants"`
}

// revealed reports whether viewer may see who is in r: always unless r is
// anonymous, then only its participants. An empty viewer is anyone (the
// shared list).
func revealed(r *domain.Room, viewer string) bool {
	return !r.Anonymous || (viewer != "" && r.Has(viewer))
}

func (s *server) newRoomResponse(ctx context.Context, r *domain.Room, viewer string) (roomResponse, error) {
	local := r.StartsAt.In(s.roomLocation)
	resp := roomResponse{
		ID: r.ID, Category: r.Category, Title: r.Title, Body: r.Body,
		Date: local.Format(roomDateLayout), StartTime: local.Format(roomTimeLayout), StartsAt: r.StartsAt.UTC(),
		Place: r.Place, Capacity: r.Capacity, ParticipantCount: r.ParticipantCount,
		Conditions: roomConditionsResponse{
			Places:        domain.Places.Names(r.Conditions.Places),
			TimesOfEating: domain.TimesOfEating.Names(r.Conditions.TimesOfEating),
			WaysOfEating:  domain.WaysOfEating.Names(r.Conditions.WaysOfEating),
			StudyTypes:    domain.StudyTypes.Names(r.Conditions.StudyTypes),
		},
		Anonymous: r.Anonymous, Completed: r.Completed(), MatchID: nullable(r.MatchID),
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
	if revealed(r, viewer) {
		resp.Host = &roomHostResponse{ID: r.HostID, Nickname: r.Host}
	}
	resp.Images = make([]attachedImageResponse, len(r.Images))
	for i := range r.Images {
		img, err := s.newAttachedImageResponse(ctx, &r.Images[i])
		if err != nil {
			return roomResponse{}, err
		}
		resp.Images[i] = img
	}
	return resp, nil
}

func (s *server) newRoomDetailResponse(ctx context.Context, r *domain.Room, viewer string) (roomDetailResponse, error) {
	room, err := s.newRoomResponse(ctx, r, viewer)
	if err != nil {
		return roomDetailResponse{}, err
	}
	resp := roomDetailResponse{roomResponse: room,
		Participants: make([]participantResponse, 0, len(r.Participants))}
	show := revealed(r, viewer)
	for _, p := range r.Participants {
		pr := participantResponse{Host: p.Host, Me: p.MemberID == viewer}
		if show || pr.Me {
			pr.ID, pr.Nickname = &p.MemberID, &p.Nickname
		}
		resp.Participants = append(resp.Participants, pr)
	}
	return resp, nil
}

// participationResponse is a join or leave request on the wire.
type participationResponse struct {
	ID        string                     `json:"id"`
	RoomID    string                     `json:"room_id"`
	Kind      domain.ParticipationKind   `json:"kind"`
	Status    domain.ParticipationStatus `json:"status"`
	CreatedAt time.Time                  `json:"created_at"`
	DecidedAt *time.Time                 `json:"decided_at"`
}

func newParticipationResponse(p *domain.Participation) participationResponse {
	resp := participationResponse{ID: p.ID, RoomID: p.RoomID, Kind: p.Kind, Status: p.Status, CreatedAt: p.CreatedAt.UTC()}
	if !p.DecidedAt.IsZero() {
		at := p.DecidedAt.UTC()
		resp.DecidedAt = &at
	}
	return resp
}

// handleRoomCreate opens a room with its host as the first participant.
func (s *server) handleRoomCreate(w http.ResponseWriter, r *http.Request) {
	var req roomCreateRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	me := mustClaims(r).MemberID
	room := domain.Room{
		HostID: me, Category: req.Category, Title: req.Title, Body: req.Body,
		StartsAt: localTime(req.day, req.clock, s.roomLocation), Place: req.Place, Capacity: req.Capacity,
		Conditions: req.conditions, Anonymous: req.Anonymous, CreatedAt: now,
	}
	if err := room.Validate(now, s.roomRules); err != nil {
		s.writeError(w, r, err)
		return
	}
	err := db.RunInTx(r.Context(), s.db, func(ctx context.Context, tx bun.Tx) error {
		if err := (db.Rooms{}).Create(ctx, tx, &room); err != nil {
			if domain.ErrorCode(err) == domain.ENOTFOUND {
				return domain.Errorf(domain.ETOKENREVOKED, "The account no longer exists.")
			}
			return err
		}
		// A new room drops nothing, so no task is enqueued.
		return attachRoomImages(ctx, tx, &room, me, req.ImageIDs)
	})
	if err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	resp, err := s.newRoomResponse(r.Context(), &room, me)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/rooms/"+room.ID)
	s.writeJSON(w, r, http.StatusCreated, resp)
}

// errRoomNotFound is what a missing or cancelled room answers.
func errRoomNotFound() error { return domain.Errorf(domain.ENOTFOUND, "Room not found.") }

// findLiveRoom reads room id; a cancelled room does not exist for the API.
func findLiveRoom(ctx context.Context, idb bun.IDB, id string) (*domain.Room, error) {
	room, err := (db.Rooms{}).FindByID(ctx, idb, id)
	if domain.ErrorCode(err) == domain.ENOTFOUND || (err == nil && room.Deleted()) {
		return nil, errRoomNotFound()
	}
	return room, err
}

// handleRoomGet answers one room with its participants.
func (s *server) handleRoomGet(w http.ResponseWriter, r *http.Request) {
	room, err := findLiveRoom(r.Context(), s.db, chi.URLParam(r, "id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp, err := s.newRoomDetailResponse(r.Context(), room, mustClaims(r).MemberID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, resp)
}

type roomList struct {
	Rooms      []roomResponse `json:"rooms"`
	NextCursor *string        `json:"next_cursor"`
}

// roomFilter reads the list's query into a filter and the cache key of
// its normalized form, so equivalent queries share one entry.
func (s *server) roomFilter(r *http.Request) (db.RoomFilter, string, error) {
	q := r.URL.Query()
	limit, err := queryLimit(r)
	if err != nil {
		return db.RoomFilter{}, "", err
	}
	f := db.RoomFilter{Cursor: q.Get("cursor"), Limit: limit}
	if v := q.Get("category"); v != "" {
		c, err := domain.ParseCategory(v)
		if err != nil {
			return f, "", err
		}
		f.Category = c
	}
	completed := q.Get("completed")
	switch completed {
	case "":
	case "true", "false":
		b := completed == "true"
		f.Completed = &b
	default:
		return f, "", domain.FieldErrorf(domain.EINVALID, "completed", "Query parameter \"completed\" must be true or false.")
	}
	var from, to time.Time
	if v := q.Get("from"); v != "" {
		d, err := parseRoomDate("from", v)
		if err != nil {
			return f, "", err
		}
		from = d
		f.From = time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, s.roomLocation)
	}
	if v := q.Get("to"); v != "" {
		d, err := parseRoomDate("to", v)
		if err != nil {
			return f, "", err
		}
		if !from.IsZero() && d.Before(from) {
			return f, "", domain.FieldErrorf(domain.EINVALID, "to", "Query parameter \"to\" must not be before \"from\".")
		}
		to = d
		// The day is inclusive: up to the next local midnight.
		f.To = time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, s.roomLocation)
	}
	place := q.Get("place")
	if place != "" {
		for i, name := range domain.Places.Values {
			if name == place {
				f.Place = domain.Mask(1 << i)
			}
		}
		if f.Place == 0 {
			return f, "", domain.FieldErrorf(domain.EINVALID, "place", "Query parameter \"place\" must be one of SEOCHO, GAEPO, OUT_OF_CLUSTER.")
		}
	}
	key := url.Values{"limit": {strconv.Itoa(f.Limit)}, "cursor": {f.Cursor}, "completed": {completed}, "place": {place}}
	if f.Category != 0 {
		key.Set("category", f.Category.String())
	}
	if !from.IsZero() {
		key.Set("from", from.Format(roomDateLayout))
	}
	if !to.IsZero() {
		key.Set("to", to.Format(roomDateLayout))
	}
	// Encode sorts the keys.
	return f, "moim:rooms:list:" + key.Encode(), nil
}

// handleRoomList answers a page of rooms, newest first. The page does not
// depend on the viewer, so it is cached as JSON in Redis for
// Deps.RoomListCacheTTL (cache-aside; writes go around it and show once the
// entry expires). A Redis failure only costs the cache.
func (s *server) handleRoomList(w http.ResponseWriter, r *http.Request) {
	f, key, err := s.roomFilter(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	if s.roomListTTL > 0 {
		b, err := s.redis.Get(ctx, key).Bytes()
		if err == nil {
			w.Header().Set("X-Cache", "hit")
			s.writeJSONBytes(w, http.StatusOK, b)
			return
		}
		if !errors.Is(err, redis.Nil) {
			s.logger.WarnContext(ctx, "room list cache unavailable", slog.Any("err", err))
		}
	}
	page, err := (db.Rooms{}).List(ctx, s.db, f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := roomList{Rooms: make([]roomResponse, 0, len(page.Rooms))}
	for i := range page.Rooms {
		room, err := s.newRoomResponse(ctx, &page.Rooms[i], "")
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		resp.Rooms = append(resp.Rooms, room)
	}
	resp.NextCursor = nullable(page.Next)
	b, err := json.Marshal(resp)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("encode room list: %w", err))
		return
	}
	if s.roomListTTL > 0 {
		if err := s.redis.Set(ctx, key, b, s.roomListTTL).Err(); err != nil {
			s.logger.WarnContext(ctx, "room list cache not written", slog.Any("err", err))
		}
	}
	w.Header().Set("X-Cache", "miss")
	s.writeJSONBytes(w, http.StatusOK, b)
}

// writeJSONBytes is writeJSON for a body already encoded.
func (s *server) writeJSONBytes(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// changeRoom runs fn, a version-checked change of a room, in a transaction
// whose outbox rows are relayed once it commits. When the room changed
// between fn's read and its write (db.ErrStale) it runs fn again, in a new
// transaction, a few times before answering a conflict.
func (s *server) changeRoom(ctx context.Context, fn func(ctx context.Context, tx bun.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := s.relay.RunInTx(ctx, fn)
		if !errors.Is(err, db.ErrStale) {
			return err
		}
		if attempt == roomWriteAttempts {
			return &domain.Error{Code: domain.ECONFLICT, Message: "The room kept changing; try again.", Err: err}
		}
		// Joins decided meanwhile are short: a jittered pause of a few
		// milliseconds lets them finish without meeting them again in step.
		base := time.Duration(attempt) * 5 * time.Millisecond
		t := time.NewTimer(base + rand.N(base))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("change room: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// guests are the member ids of r's participants but the host.
func guests(r *domain.Room) []string {
	var out []string
	for _, p := range r.Participants {
		if !p.Host {
			out = append(out, p.MemberID)
		}
	}
	return out
}

// notifyGuests notifies r's participants but the host, if any.
func notifyGuests(ctx context.Context, tx bun.Tx, t domain.NotificationType, r *domain.Room, now time.Time) error {
	ids := guests(r)
	if len(ids) == 0 {
		return nil
	}
	_, err := jobs.Notify(ctx, tx, t, jobs.RoomArgs(r), now, ids...)
	return err
}

// hostedRoom reads room id for a change by member me: missing or cancelled
// is not found, someone else's is forbidden.
func hostedRoom(ctx context.Context, tx bun.Tx, id, me string) (*domain.Room, error) {
	room, err := findLiveRoom(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	if room.HostID != me {
		return nil, domain.Errorf(domain.EFORBIDDEN, "Only the room's host may do this.")
	}
	return room, nil
}

// handleRoomUpdate changes a room for its host and tells the other
// participants.
func (s *server) handleRoomUpdate(w http.ResponseWriter, r *http.Request) {
	var req roomUpdateRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	me := mustClaims(r).MemberID
	var updated domain.Room
	err := s.changeRoom(r.Context(), func(ctx context.Context, tx bun.Tx) error {
		now := s.now().UTC().Truncate(time.Microsecond)
		room, err := hostedRoom(ctx, tx, chi.URLParam(r, "id"), me)
		if err != nil {
			return err
		}
		u, err := req.update(room, s.roomLocation)
		if err != nil {
			return err
		}
		if updated, err = room.Apply(u, now, s.roomRules); err != nil {
			return err
		}
		if err := (db.Rooms{}).Update(ctx, tx, &updated, now); err != nil {
			return err
		}
		if req.ImageIDs != nil {
			if err := attachRoomImages(ctx, tx, &updated, me, *req.ImageIDs); err != nil {
				return err
			}
		}
		return notifyGuests(ctx, tx, domain.NotifyRoomUpdated, &updated, now)
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp, err := s.newRoomResponse(r.Context(), &updated, me)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, resp)
}

// handleRoomDelete cancels a room for its host and tells the other
// participants. A completed room stays: it is a match now.
func (s *server) handleRoomDelete(w http.ResponseWriter, r *http.Request) {
	me := mustClaims(r).MemberID
	err := s.changeRoom(r.Context(), func(ctx context.Context, tx bun.Tx) error {
		now := s.now().UTC().Truncate(time.Microsecond)
		room, err := hostedRoom(ctx, tx, chi.URLParam(r, "id"), me)
		if err != nil {
			return err
		}
		// Once it has started the room happened: cancelling it then would
		// only take the guests' evaluations away.
		if !room.Open(now) {
			return domain.ErrRoomClosed(room, now)
		}
		if err := (db.Rooms{}).Delete(ctx, tx, room, now); err != nil {
			return err
		}
		if err := dropRoomImages(ctx, tx, room); err != nil {
			return err
		}
		return notifyGuests(ctx, tx, domain.NotifyRoomCancelled, room, now)
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleRoomJoin records a request to join and its task in one
// transaction and answers 202: a worker admits it or finds the room full.
func (s *server) handleRoomJoin(w http.ResponseWriter, r *http.Request) {
	s.requestParticipation(w, r, domain.ParticipationJoin)
}

// handleRoomLeave records a request to leave, decided like a join.
func (s *server) handleRoomLeave(w http.ResponseWriter, r *http.Request) {
	s.requestParticipation(w, r, domain.ParticipationLeave)
}

// requestParticipation refuses what can already be told (a closed room,
// joining twice, leaving a room one is not in, the host leaving) and
// records the rest for the worker, which decides against the room as it
// is then.
func (s *server) requestParticipation(w http.ResponseWriter, r *http.Request, kind domain.ParticipationKind) {
	me := mustClaims(r).MemberID
	now := s.now().UTC().Truncate(time.Microsecond)
	p := domain.Participation{MemberID: me, Kind: kind, CreatedAt: now}
	err := s.relay.RunInTx(r.Context(), func(ctx context.Context, tx bun.Tx) error {
		room, err := findLiveRoom(ctx, tx, chi.URLParam(r, "id"))
		if err != nil {
			return err
		}
		if !room.Open(now) {
			return domain.ErrRoomClosed(room, now)
		}
		in := room.Participant(me)
		switch {
		case kind == domain.ParticipationJoin && in != nil:
			return domain.Errorf(domain.EALREADYJOINED, "You are already in the room.")
		case kind == domain.ParticipationLeave && in == nil:
			return domain.Errorf(domain.ENOTPARTICIPATING, "You are not in the room.")
		case kind == domain.ParticipationLeave && in.Host:
			return domain.Errorf(domain.EHOSTCANNOTLEAVE, "The host cannot leave the room; cancel it instead.")
		case kind == domain.ParticipationLeave && in.Attended:
			return domain.Errorf(domain.EROOMCLOSED, "The host has taken your attendance; you can no longer leave.")
		}
		if err := (db.Participations{}).Create(ctx, tx, room, &p); err != nil {
			if domain.ErrorCode(err) == domain.ENOTFOUND {
				return domain.Errorf(domain.ETOKENREVOKED, "The account no longer exists.")
			}
			return err
		}
		task, err := jobs.NewParticipationTask(p.Key)
		if err != nil {
			return err
		}
		return jobs.Enqueue(ctx, tx, task)
	})
	if err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/participations/"+p.ID)
	s.writeJSON(w, r, http.StatusAccepted, newParticipationResponse(&p))
}

// handleParticipationGet answers the member's own request; anyone else's
// does not exist.
func (s *server) handleParticipationGet(w http.ResponseWriter, r *http.Request) {
	p, err := (db.Participations{}).FindByID(r.Context(), s.db, chi.URLParam(r, "id"))
	if err == nil && p.MemberID != mustClaims(r).MemberID {
		err = domain.Errorf(domain.ENOTFOUND, "Request not found.")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, newParticipationResponse(p))
}

// handleRoomComplete turns a room into a match of its participants, for its
// host or an admin, and notifies them all as one group.
func (s *server) handleRoomComplete(w http.ResponseWriter, r *http.Request) {
	c := mustClaims(r)
	var match *domain.Match
	err := s.changeRoom(r.Context(), func(ctx context.Context, tx bun.Tx) error {
		now := s.now().UTC().Truncate(time.Microsecond)
		room, err := findLiveRoom(ctx, tx, chi.URLParam(r, "id"))
		if err != nil {
			return err
		}
		if room.HostID != c.MemberID {
			// The role as it is now, not as the token says.
			role, err := currentRole(ctx, tx, c.MemberID)
			if err != nil {
				return err
			}
			if role != domain.RoleAdmin {
				return domain.Errorf(domain.EFORBIDDEN, "Only the room's host or an admin may complete it.")
			}
		}
		if room.Completed() {
			return domain.ErrRoomClosed(room, now)
		}
		if match, err = (db.Rooms{}).Complete(ctx, tx, room, now); err != nil {
			return err
		}
		ids := make([]string, 0, len(match.Members))
		nicknames := make([]string, 0, len(match.Members))
		for _, m := range match.Members {
			ids = append(ids, m.MemberID)
			nicknames = append(nicknames, m.Nickname)
		}
		args := jobs.RoomArgs(room)
		args.MatchID, args.Members, args.Link = match.ID, nicknames, "/matches/"+match.ID
		_, err = jobs.Notify(ctx, tx, domain.NotifyMatchConfirmed, args, now, ids...)
		return err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, newMatchResponse(match, c.MemberID))
}
