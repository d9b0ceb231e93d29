package httpapi

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/db/missiondb"
	"github.com/moim/moim/domain"
)

// PaymentParams configure the payment webhook.
type PaymentParams struct {
	// WebhookSecret is the HMAC-SHA256 key the provider signs with; empty
	// turns the webhook off (it answers 503).
	WebhookSecret []byte
	// WebhookTolerance bounds how far a signature's timestamp may be from
	// now; 0 means DefaultWebhookTolerance.
	WebhookTolerance time.Duration
}

// DefaultWebhookTolerance is Stripe's: long enough for clock skew and the
// provider's own retries to arrive, short enough that a captured call
// cannot be replayed later.
const DefaultWebhookTolerance = 5 * time.Minute

// Limits of the wallet routes.
const (
	// signatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256 of
	// "<t>.<raw body>">", as Stripe-Signature does.
	signatureHeader = "X-Moim-Signature"
	// webhookBodyMax caps a webhook body below the general limit: a
	// payment event is a few hundred bytes, and the body is read whole
	// before its signature can be checked.
	webhookBodyMax = 16 << 10
	// paymentStatusPaid is the one status that credits points.
	paymentStatusPaid = "PAID"
	// Keys are namespaced by who posts them, so an admin's key can never
	// collide with a payment's or a mission's.
	paymentKeyPrefix    = "payment:"
	adjustmentKeyPrefix = "admin:"
	// adjustmentKeyMax leaves room for the prefix in the stored key.
	adjustmentKeyMax = domain.PointKeyMax - len(adjustmentKeyPrefix)
	// paymentIDMax leaves room for the prefix in the stored key.
	paymentIDMax = domain.PointKeyMax - len(paymentKeyPrefix)
	// memberIDMax is far above a public id's 26 characters; a longer one
	// cannot name a member.
	memberIDMax = 64
)

// registerPointRoutes mounts the point wallet: the member's own ledger,
// the admin's adjustments and the payment provider's webhook.
func (s *server) registerPointRoutes(r chi.Router) {
	r.With(noStore, s.authenticate).Get("/v1/me/points", s.handleMyPoints)
	r.With(s.requireAdmin).Post("/v1/admin/points/adjustments", s.handlePointAdjustment)
	r.Post("/v1/payments/webhook", s.handlePaymentWebhook)
}

// pointEntryResponse is a ledger entry on the wire.
type pointEntryResponse struct {
	ID        string           `json:"id"`
	Amount    int64            `json:"amount"`
	Kind      domain.PointKind `json:"kind"`
	MissionID string           `json:"mission_id,omitempty"`
	Reason    string           `json:"reason,omitempty"`
	CreatedAt time.Time        `json:"created_at"`
}

func newPointEntryResponse(e *domain.PointEntry) pointEntryResponse {
	return pointEntryResponse{ID: e.ID, Amount: e.Amount, Kind: e.Kind, MissionID: e.MissionID,
		Reason: e.Reason, CreatedAt: e.CreatedAt.UTC()}
}

type myPointsResponse struct {
	Balance    int64                `json:"balance"`
	Entries    []pointEntryResponse `json:"entries"`
	NextCursor *string              `json:"next_cursor"`
}

// handleMyPoints answers the member's balance and a page of their entries,
// newest first: ?limit= (1–100, default 20) and ?cursor= from the previous
// page's next_cursor, as the notification list.
func (s *server) handleMyPoints(w http.ResponseWriter, r *http.Request) {
	limit, err := queryLimit(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page, err := (missiondb.Points{}).List(r.Context(), s.db, mustClaims(r).MemberID, r.URL.Query().Get("cursor"), limit)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		err = domain.Errorf(domain.ETOKENREVOKED, "The account no longer exists.")
	}
	if err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	resp := myPointsResponse{Balance: page.Balance, Entries: make([]pointEntryResponse, 0, len(page.Entries))}
	for i := range page.Entries {
		resp.Entries = append(resp.Entries, newPointEntryResponse(&page.Entries[i]))
	}
	if page.Next != "" {
		resp.NextCursor = &page.Next
	}
	s.writeJSON(w, r, http.StatusOK, resp)
}

// adjustmentRequest is an admin's correction of a member's points.
type adjustmentRequest struct {
	MemberID string `json:"member_id"`
	Amount   int64  `json:"amount"`
	Reason   string `json:"reason"`
	// IdempotencyKey makes a retried request one adjustment; without it
	// every request is its own.
	IdempotencyKey string `json:"idempotency_key"`
}

func (req *adjustmentRequest) Validate() error {
	if err := checkMemberID(req.MemberID); err != nil {
		return err
	}
	if err := checkPointAmount(req.Amount, true); err != nil {
		return err
	}
	reason, err := domain.NormalizePointReason(req.Reason)
	if err != nil {
		return err
	}
	req.Reason = reason
	if k := req.IdempotencyKey; k != "" && (len(k) > adjustmentKeyMax || !visibleASCII(k)) {
		return domain.FieldErrorf(domain.EINVALID, "idempotency_key",
			"Field \"idempotency_key\" must be 1 to %d visible ASCII characters.", adjustmentKeyMax)
	}
	return nil
}

// checkMemberID rejects a member id that cannot be one before it reaches
// the database (PostgreSQL refuses some characters outright).
func checkMemberID(id string) error {
	if id == "" || len(id) > memberIDMax || !visibleASCII(id) {
		return domain.FieldErrorf(domain.EINVALID, "member_id", "Field \"member_id\" must be a member id.")
	}
	return nil
}

// checkPointAmount bounds one entry's amount: 1..PointAmountMax, or either
// sign when signed.
func checkPointAmount(n int64, signed bool) error {
	switch {
	case signed && (n == 0 || n > domain.PointAmountMax || n < -domain.PointAmountMax):
		return domain.FieldErrorf(domain.EINVALID, "amount",
			"Field \"amount\" must be non-zero and between -%d and %d.", domain.PointAmountMax, domain.PointAmountMax)
	case !signed && (n < 1 || n > domain.PointAmountMax):
		return domain.FieldErrorf(domain.EINVALID, "amount", "Field \"amount\" must be 1 to %d.", domain.PointAmountMax)
	}
	return nil
}

// visibleASCII reports whether s is printable ASCII without spaces: what
// machine-made ids and keys are, with no look-alikes.
func visibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

type adjustmentResponse struct {
	MemberID string             `json:"member_id"`
	Entry    pointEntryResponse `json:"entry"`
	Balance  int64              `json:"balance"`
}

// handlePointAdjustment posts an ADJUSTMENT entry: 201 with the entry and
// the new balance. A repeated idempotency_key answers 200 with the entry
// it made, changing nothing; the same key with another member, amount or
// reason is a conflict. A debit below zero is 409 insufficient_points.
func (s *server) handlePointAdjustment(w http.ResponseWriter, r *http.Request) {
	var req adjustmentRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	key := adjustmentKeyPrefix + req.IdempotencyKey
	if req.IdempotencyKey == "" {
		key = adjustmentKeyPrefix + db.NewPublicID()
	}
	var res missiondb.PointResult
	err := db.RunInTx(r.Context(), s.db, func(ctx context.Context, tx bun.Tx) (err error) {
		res, err = (missiondb.Points{}).PostFor(ctx, tx, req.MemberID, missiondb.PointPost{
			Amount: req.Amount, Kind: domain.PointAdjustment, Key: key, Reason: req.Reason, Now: s.now(),
		})
		return err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusCreated
	if res.Posted {
		// Who changed a balance by hand: the admin member behind a token, or
		// the operator's Basic credentials.
		by := "operator"
		if c, ok := claimsFrom(r.Context()); ok {
			by = c.MemberID
		}
		s.logger.InfoContext(r.Context(), "points adjusted", slog.String("request_id", domain.RequestID(r.Context())),
			slog.String("member_id", req.MemberID), slog.Int64("amount", req.Amount),
			slog.String("entry_id", res.Entry.ID), slog.String("by", by))
	} else {
		e, err := (missiondb.Points{}).FindByKey(r.Context(), s.db, key)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if e.MemberID != req.MemberID || e.Amount != req.Amount || e.Reason != req.Reason {
			s.writeError(w, r, domain.FieldErrorf(domain.ECONFLICT, "idempotency_key",
				"This idempotency_key was used for a different adjustment."))
			return
		}
		res.Entry, status = *e, http.StatusOK
	}
	s.writeJSON(w, r, status, adjustmentResponse{MemberID: req.MemberID, Entry: newPointEntryResponse(&res.Entry), Balance: res.Balance})
}

// paymentEvent is the provider's webhook body. Unknown fields are allowed:
// a provider adds fields to its events without notice, and the signature,
// not the shape, is what authenticates the call.
type paymentEvent struct {
	PaymentID string `json:"payment_id"`
	MemberID  string `json:"member_id"`
	Amount    int64  `json:"amount"`
	Status    string `json:"status"`
}

func (ev *paymentEvent) Validate() error {
	if ev.PaymentID == "" || len(ev.PaymentID) > paymentIDMax || !visibleASCII(ev.PaymentID) {
		return domain.FieldErrorf(domain.EINVALID, "payment_id",
			"Field \"payment_id\" must be 1 to %d visible ASCII characters.", paymentIDMax)
	}
	if err := checkMemberID(ev.MemberID); err != nil {
		return err
	}
	return checkPointAmount(ev.Amount, false)
}

type webhookResponse struct {
	Credited bool                `json:"credited"`
	MemberID string              `json:"member_id,omitempty"`
	Entry    *pointEntryResponse `json:"entry,omitempty"`
	Balance  *int64              `json:"balance,omitempty"`
}

// handlePaymentWebhook credits a PAID payment as one CHARGE entry keyed by
// its payment id, once: a replay answers {"credited": false}. Any other
// status is acknowledged and ignored. Nothing is read before the signature
// checks out.
func (s *server) handlePaymentWebhook(w http.ResponseWriter, r *http.Request) {
	// Off without a secret: 503 rather than 404, because a provider
	// retries a 503 for days, so payments made while the secret is missing
	// are credited once it is set; a 404 would read as a wrong URL.
	if len(s.payments.WebhookSecret) == 0 {
		s.writeError(w, r, domain.Errorf(domain.EUNAVAILABLE, "The payment webhook is not configured."))
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, webhookBodyMax))
	if err != nil {
		s.writeError(w, r, s.decodeError(err, true))
		return
	}
	if err := verifySignature(s.payments, r.Header.Get(signatureHeader), raw, s.now()); err != nil {
		s.logger.WarnContext(r.Context(), "payment webhook refused",
			slog.String("request_id", domain.RequestID(r.Context())), slog.String("reason", domain.ErrorMessage(err)))
		s.writeError(w, r, err)
		return
	}
	var ev paymentEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		s.writeError(w, r, s.decodeError(err, false))
		return
	}
	if ev.Status != paymentStatusPaid {
		s.writeJSON(w, r, http.StatusOK, webhookResponse{})
		return
	}
	if err := ev.Validate(); err != nil {
		s.writeError(w, r, err)
		return
	}
	var res missiondb.PointResult
	err = db.RunInTx(r.Context(), s.db, func(ctx context.Context, tx bun.Tx) (err error) {
		res, err = (missiondb.Points{}).PostFor(ctx, tx, ev.MemberID, missiondb.PointPost{
			Amount: ev.Amount, Kind: domain.PointCharge, Key: paymentKeyPrefix + ev.PaymentID, Now: s.now(),
		})
		return err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !res.Posted {
		s.writeJSON(w, r, http.StatusOK, webhookResponse{})
		return
	}
	s.logger.InfoContext(r.Context(), "payment credited", slog.String("request_id", domain.RequestID(r.Context())),
		slog.String("payment_id", ev.PaymentID), slog.String("member_id", ev.MemberID), slog.Int64("amount", ev.Amount))
	entry := newPointEntryResponse(&res.Entry)
	s.writeJSON(w, r, http.StatusOK, webhookResponse{Credited: true, MemberID: ev.MemberID, Entry: &entry, Balance: &res.Balance})
}

// verifySignature checks header against body: some v1 signature must be
// the HMAC-SHA256 of "<t>.<body>" under the secret (compared in constant
// time; several v1 values let the provider roll its secret), and t must be
// within the tolerance of now. Every failure is EINVALIDSIGNATURE.
func verifySignature(p PaymentParams, header string, body []byte, now time.Time) error {
	if header == "" {
		return domain.Errorf(domain.EINVALIDSIGNATURE, "Missing %s header.", signatureHeader)
	}
	var (
		ts   string
		sigs [][]byte
	)
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil && len(b) == sha256.Size {
				sigs = append(sigs, b)
			}
		}
	}
	at, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return domain.Errorf(domain.EINVALIDSIGNATURE, "Malformed %s header: want t=<unix seconds>,v1=<hex HMAC-SHA256>.", signatureHeader)
	}
	mac := hmac.New(sha256.New, p.WebhookSecret)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	ok := false
	for _, sig := range sigs {
		ok = hmac.Equal(sig, want) || ok
	}
	if !ok {
		return domain.Errorf(domain.EINVALIDSIGNATURE, "Signature does not match.")
	}
	tolerance := p.WebhookTolerance
	if tolerance <= 0 {
		tolerance = DefaultWebhookTolerance
	}
	if d := now.Sub(time.Unix(at, 0)); d > tolerance || d < -tolerance {
		return domain.Errorf(domain.EINVALIDSIGNATURE, "Signature timestamp is outside the tolerance; sign the call when sending it.")
	}
	return nil
}
