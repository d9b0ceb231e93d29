package jobs

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/hibiken/asynq"

	"github.com/moim/moim/db/missiondb"
)

// writeResult stores v as t's JSON result: the queue UI shows it beside
// the payload, and Inspector.GetTaskInfo returns it, for as long as asynq
// keeps the task (its retention). It is a courtesy to the operator, so a
// handler never fails for it: a task built outside a server (a test
// calling ProcessTask) has no writer and a failed write is only logged.
func writeResult(ctx context.Context, logger *slog.Logger, t *asynq.Task, v any) {
	w := t.ResultWriter()
	if w == nil {
		return
	}
	b, err := json.Marshal(v)
	if err == nil {
		_, err = w.Write(b)
	}
	if err != nil && logger != nil {
		logger.WarnContext(ctx, "task result not written", slog.String("type", t.Type()), slog.Any("err", err))
	}
}

// MatchRunResult is a matcher run's task result.
type MatchRunResult struct {
	Category  string `json:"category"`
	Waiting   int    `json:"waiting"`   // applications read
	Matches   int    `json:"matches"`   // groups committed
	Conflicts int    `json:"conflicts"` // groups rolled back because a version moved
}

// DeliverResult is a sent delivery's task result.
type DeliverResult struct {
	DeliveryID int64  `json:"delivery_id"`
	Channel    string `json:"channel"`
	Status     string `json:"status"`
	ProviderID string `json:"provider_id,omitempty"`
}

// MissionTransitionResult is a mission transition's task result: the
// steps it made, in order ("OPEN→ONGOING"), none when nothing was due.
type MissionTransitionResult struct {
	Mission int64    `json:"mission"` // as in the payload
	Steps   []string `json:"steps"`
}

func newMissionTransitionResult(key int64, done []missiondb.MissionTransition) MissionTransitionResult {
	steps := make([]string, len(done))
	for i, tr := range done {
		steps[i] = tr.Mission.Status.String() + "→" + tr.To.String()
	}
	return MissionTransitionResult{Mission: key, Steps: steps}
}
