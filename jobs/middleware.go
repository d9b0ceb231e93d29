package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/hibiken/asynq"

	"github.com/moim/moim/domain"
)

// Logging returns middleware that carries the request id from the task's
// HeaderRequestID header into the context (domain.WithRequestID), so every
// log line a handler writes names the HTTP request that caused it, and logs
// each attempt: start and success at debug, failure at warn with will_retry.
// A failure is an error-level event only once asynq gives up on the task;
// the server's error handler logs that (see NewServer), so an alert on error
// lines fires for dead tasks and panics, not for every transient retry.
func Logging(logger *slog.Logger) asynq.MiddlewareFunc {
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			reqID := t.Headers()[HeaderRequestID]
			if reqID != "" {
				ctx = domain.WithRequestID(ctx, reqID)
			}
			attrs := taskAttrs(ctx, t)
			logger.LogAttrs(ctx, slog.LevelDebug, "task started", attrs...)

			start := time.Now()
			err := next.ProcessTask(ctx, t)
			attrs = append(attrs, slog.Duration("duration", time.Since(start)))
			if err == nil {
				logger.LogAttrs(ctx, slog.LevelDebug, "task finished", attrs...)
				return nil
			}
			attrs = append(attrs, slog.Bool("will_retry", willRetry(ctx, err)), slog.Any("err", err))
			if errors.Is(err, ErrDeferred) {
				logger.LogAttrs(ctx, slog.LevelDebug, "task deferred", attrs...)
				return err
			}
			logger.LogAttrs(ctx, slog.LevelWarn, "task failed", attrs...)
			return err
		})
	}
}

// taskAttrs describes the task being processed; asynq puts its id, queue and
// retry count in the context.
func taskAttrs(ctx context.Context, t *asynq.Task) []slog.Attr {
	id, _ := asynq.GetTaskID(ctx)
	queue, _ := asynq.GetQueueName(ctx)
	retried, _ := asynq.GetRetryCount(ctx)
	return []slog.Attr{
		slog.String("task_id", id),
		slog.String("type", t.Type()),
		slog.String("queue", queue),
		slog.Int("retry", retried),
		slog.String("request_id", domain.RequestID(ctx)),
	}
}

// willRetry reports whether asynq will run the task again after err: not
// for SkipRetry or RevokeTask, nor once the retries are used up.
func willRetry(ctx context.Context, err error) bool {
	if errors.Is(err, asynq.SkipRetry) || errors.Is(err, asynq.RevokeTask) {
		return false
	}
	retried, ok1 := asynq.GetRetryCount(ctx)
	maxRetry, ok2 := asynq.GetMaxRetry(ctx)
	if !ok1 || !ok2 {
		// Outside a server (a test calling the handler directly) nothing
		// retries.
		return false
	}
	return retried < maxRetry
}

// Recover returns middleware that turns a handler's panic into an error, so
// asynq retries or archives the task like any other failure and the worker
// goes on with other tasks. The stack is logged at error level because the
// returned error cannot carry it usefully.
func Recover(logger *slog.Logger) asynq.MiddlewareFunc {
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) (err error) {
			defer func() {
				if v := recover(); v != nil {
					attrs := append(taskAttrs(ctx, t),
						slog.Any("panic", v),
						slog.String("stack", string(debug.Stack())))
					logger.LogAttrs(ctx, slog.LevelError, "task panicked", attrs...)
					err = fmt.Errorf("%s handler panicked: %v", t.Type(), v)
				}
			}()
			return next.ProcessTask(ctx, t)
		})
	}
}

// Instrument returns middleware that counts finished and failed attempts and
// observes their duration, by task type.
func Instrument(m *Metrics) asynq.MiddlewareFunc {
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			start := time.Now()
			err := next.ProcessTask(ctx, t)
			typ := t.Type()
			m.Duration.WithLabelValues(typ).Observe(time.Since(start).Seconds())
			m.Processed.WithLabelValues(typ).Inc()
			if err != nil && !errors.Is(err, ErrDeferred) {
				m.Failed.WithLabelValues(typ).Inc()
			}
			return err
		})
	}
}
