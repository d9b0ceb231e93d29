package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

// PingHandler processes TypePing: it marks the ping row processed, proving
// the loop from the API to the worker. It is idempotent: the first run sets
// processed_at, later runs (a redelivery, a retry after a lost ack) leave it.
type PingHandler struct {
	DB      *bun.DB
	Pings   db.Pings
	Logger  *slog.Logger // nil discards
	NowFunc func() time.Time
}

// ProcessTask marks the ping named by the payload processed. A malformed
// payload or an unknown ping can never succeed, so those errors wrap
// asynq.SkipRetry; database errors are plain and retried.
func (h *PingHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p PingPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("decode %s payload: %v: %w", TypePing, err, asynq.SkipRetry)
	}
	if p.PingID == "" {
		return fmt.Errorf("decode %s payload: empty ping_id: %w", TypePing, asynq.SkipRetry)
	}
	now := time.Now
	if h.NowFunc != nil {
		now = h.NowFunc
	}
	logger := h.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	// MarkProcessed sets processed_at only while it is NULL, in one
	// statement, so concurrent deliveries cannot both win.
	changed, err := h.Pings.MarkProcessed(ctx, h.DB, p.PingID, now().UTC())
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		// The outbox writes a ping's task in the row's own transaction, so a
		// missing row is gone for good: retrying cannot help.
		return fmt.Errorf("process ping: %w: %w", err, asynq.SkipRetry)
	}
	if err != nil {
		return fmt.Errorf("process ping: %w", err)
	}
	if !changed {
		// A redelivery or a retry after a lost ack: the work is done.
		logger.DebugContext(ctx, "ping already processed",
			slog.String("ping_id", p.PingID),
			slog.String("request_id", domain.RequestID(ctx)))
		return nil
	}
	logger.InfoContext(ctx, "ping processed",
		slog.String("ping_id", p.PingID),
		slog.String("request_id", domain.RequestID(ctx)))
	return nil
}
