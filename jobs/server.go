package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs/notify"
)

// ServerParams configure the worker's asynq server. Zero values take
// asynq's defaults, except Logger (nil discards).
type ServerParams struct {
	Redis asynq.RedisConnOpt
	// Concurrency is how many tasks run at once; <= 0 means one per CPU.
	Concurrency int
	// Queues weights the queues (nil means QueueCritical 6, QueueDefault 3,
	// QueueLow 1).
	Queues map[string]int
	// ShutdownTimeout is how long Shutdown waits for running tasks before
	// they are handed back to Redis for another worker.
	ShutdownTimeout time.Duration
	// TaskCheckInterval is how often empty queues are polled.
	TaskCheckInterval time.Duration
	Logger            *slog.Logger
}

// Retry delays: the n-th retry waits about RetryBaseDelay·2ⁿ, at most
// RetryMaxDelay.
const (
	RetryBaseDelay = 5 * time.Second
	RetryMaxDelay  = 10 * time.Minute
)

// DefaultQueues returns the queue weights used when ServerParams.Queues is
// nil: critical work is picked six times as often as low.
func DefaultQueues() map[string]int {
	return map[string]int{QueueCritical: 6, QueueDefault: 3, QueueLow: 1}
}

// WithTickQueue returns weights (DefaultQueues when empty) with QueueTicks
// added when weights does not name it, at the highest weight given: a
// worker that did not serve the ticks would leave every sweep undone. The
// argument is not changed.
func WithTickQueue(weights map[string]int) map[string]int {
	if len(weights) == 0 {
		weights = DefaultQueues()
	}
	out := make(map[string]int, len(weights)+1)
	top := 1
	for q, w := range weights {
		out[q] = w
		top = max(top, w)
	}
	if _, ok := out[QueueTicks]; !ok {
		out[QueueTicks] = top
	}
	return out
}

// NewServer returns an asynq server for the worker. asynq's own logging goes
// through p.Logger at warn and above; a task that asynq gives up on (archived
// after SkipRetry or its last retry) is logged at error by the error handler,
// which also sees failures the middleware cannot, such as a task that ran
// past its deadline.
func NewServer(p ServerParams) *asynq.Server {
	logger := p.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	queues := WithTickQueue(p.Queues)
	return asynq.NewServer(p.Redis, asynq.Config{
		Concurrency:       p.Concurrency,
		Queues:            queues,
		ShutdownTimeout:   p.ShutdownTimeout,
		TaskCheckInterval: p.TaskCheckInterval,
		RetryDelayFunc:    RetryDelay,
		IsFailure:         isFailure,
		ErrorHandler:      asynq.ErrorHandlerFunc(errorLogger(logger)),
		Logger:            asynqLogger{logger: logger},
		LogLevel:          asynq.WarnLevel,
	})
}

// RetryDelay is the wait before retry n+1 of a task (n is how many retries
// were already made): exponential from RetryBaseDelay, capped at
// RetryMaxDelay, with "equal jitter" — a random point in the upper half of
// the step — so tasks that failed together (a provider outage) do not come
// back together, yet no retry comes sooner than half its step. A send that
// failed with a provider's Retry-After waits that long instead.
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	if after, ok := notify.RetryAfter(err); ok {
		// The provider said when (HTTP 429 Retry-After); a little jitter
		// keeps a burst of throttled sends from returning as one.
		return after + rand.N(after/10+1)
	}
	d := RetryMaxDelay
	// Past 2^20 the cap has long been reached; the bound also keeps the shift
	// from overflowing.
	if n >= 0 && n < 20 {
		d = min(RetryBaseDelay<<n, RetryMaxDelay)
	}
	half := d / 2
	return half + rand.N(half+1)
}

// isFailure is asynq's default (any error) except that SkipRetry does not
// count, so a stream of rejected payloads does not read as an outage in the
// queue failure rate. asynq archives SkipRetry tasks before asking, so today
// this only matters if that changes; it states the intent.
func isFailure(err error) bool {
	return err != nil && !errors.Is(err, asynq.SkipRetry) && !errors.Is(err, ErrDeferred)
}

// ErrDeferred marks an error that only postpones a task because another
// worker holds what it needs (a matcher run in progress, a delivery being
// sent). It is retried like any error but is not a failure: logged at
// debug, not counted as failed, not in the queue's failure rate.
var ErrDeferred = errors.New("deferred")

// errorLogger logs what asynq does with a failed attempt once it is final:
// archived (no more retries) at error, revoked at warn. Each failed attempt
// is already logged at warn by the Logging middleware.
func errorLogger(logger *slog.Logger) func(ctx context.Context, t *asynq.Task, err error) {
	return func(ctx context.Context, t *asynq.Task, err error) {
		if errors.Is(err, asynq.RevokeTask) {
			logger.LogAttrs(ctx, slog.LevelWarn, "task revoked", outcomeAttrs(ctx, t, err)...)
			return
		}
		if willRetry(ctx, err) {
			return
		}
		logger.LogAttrs(ctx, slog.LevelError, "task archived", outcomeAttrs(ctx, t, err)...)
	}
}

// outcomeAttrs are taskAttrs plus the error; the request id comes from the
// header because this context did not pass through the middleware.
func outcomeAttrs(ctx context.Context, t *asynq.Task, err error) []slog.Attr {
	if domain.RequestID(ctx) == "" {
		if id := t.Headers()[HeaderRequestID]; id != "" {
			ctx = domain.WithRequestID(ctx, id)
		}
	}
	return append(taskAttrs(ctx, t), slog.Any("err", err))
}

// asynqLogger adapts slog to asynq.Logger, so asynq's own messages are
// structured lines like ours.
type asynqLogger struct {
	logger *slog.Logger
}

func (l asynqLogger) log(level slog.Level, args []any) {
	ctx := context.Background()
	if !l.logger.Enabled(ctx, level) {
		return
	}
	l.logger.LogAttrs(ctx, level, "asynq", slog.String("detail", fmt.Sprint(args...)))
}

// Debug implements asynq.Logger.
func (l asynqLogger) Debug(args ...any) { l.log(slog.LevelDebug, args) }

// Info implements asynq.Logger.
func (l asynqLogger) Info(args ...any) { l.log(slog.LevelInfo, args) }

// Warn implements asynq.Logger.
func (l asynqLogger) Warn(args ...any) { l.log(slog.LevelWarn, args) }

// Error implements asynq.Logger.
func (l asynqLogger) Error(args ...any) { l.log(slog.LevelError, args) }

// Fatal implements asynq.Logger. It logs at error and does not exit: only
// main ends the process, after shutting down cleanly (asynq itself never
// calls Fatal).
func (l asynqLogger) Fatal(args ...any) {
	l.log(slog.LevelError, append([]any{"fatal: "}, args...))
}
