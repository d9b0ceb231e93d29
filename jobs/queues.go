package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// asynqQueuesKey is the set in which asynq lists the queues that exist
// (internal/base.AllQueues). Its inspector refuses a queue missing from it
// ("queue not found"), and Queues lists only its members.
const asynqQueuesKey = "asynq:queues"

// DefaultQueueRegisterInterval is how often KeepQueuesRegistered adds the
// queue names again.
const DefaultQueueRegisterInterval = 5 * time.Second

// QueueNames returns moim's own queues and those of the worker's weights,
// sorted, each once: every queue a moim process may enqueue to or inspect.
func QueueNames(weights map[string]int) []string {
	names := []string{QueueCritical, QueueDefault, QueueLow, QueueTicks}
	for name := range weights {
		names = append(names, name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// RegisterQueues adds names to asynq's set of queues. Adding a name that is
// there already changes nothing.
func RegisterQueues(ctx context.Context, rdb redis.UniversalClient, names []string) error {
	if len(names) == 0 {
		return nil
	}
	members := make([]any, len(names))
	for i, n := range names {
		members[i] = n
	}
	if err := rdb.SAdd(ctx, asynqQueuesKey, members...).Err(); err != nil {
		return fmt.Errorf("register queues: %w", err)
	}
	return nil
}

// KeepQueuesRegistered registers names at once and then every interval
// (DefaultQueueRegisterInterval when not positive) until ctx is done, and
// returns nil then. An asynq client adds a queue to the set only on its
// first enqueue to it in the process, so after a FLUSHALL or a restart of
// Redis without persistence the set stays empty: inspections fail with
// "queue not found" (deduplicated enqueues among them) and /metrics loses
// every queue until some process restarts. This puts the names back within
// one interval. Failures (Redis down) are logged and retried at the next
// interval.
func KeepQueuesRegistered(ctx context.Context, rdb redis.UniversalClient, names []string, interval time.Duration, logger *slog.Logger) error {
	if interval <= 0 {
		interval = DefaultQueueRegisterInterval
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		err := RegisterQueues(ctx, rdb, names)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && !failing:
			logger.WarnContext(ctx, "queue registration failed; retrying", slog.Any("err", err))
		case err == nil && failing:
			logger.InfoContext(ctx, "queue registration recovered")
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
