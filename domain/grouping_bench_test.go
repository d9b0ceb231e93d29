package domain_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/moim/moim/domain"
)

// BenchmarkGroupCandidates100k groups a large pool with random non-empty
// masks over three places and three ways, and random ages within a day.
func BenchmarkGroupCandidates100k(b *testing.B) {
	const n = 100_000
	rng := rand.New(rand.NewPCG(1, 2))
	cands := make([]domain.Candidate, n)
	for i := range cands {
		cands[i] = domain.Candidate{
			Key:      int64(i + 1),
			MemberID: fmt.Sprintf("member-%d", i),
			Conditions: domain.Conditions{
				Places: domain.Mask(1 + rng.IntN(7)),
				Second: domain.Mask(1 + rng.IntN(7)),
			},
			CreatedAt: t0.Add(time.Duration(rng.Int64N(int64(24 * time.Hour)))),
		}
	}
	for _, size := range []int{2, 3} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			b.ReportAllocs()
			var groups []domain.Group
			for b.Loop() {
				groups = domain.GroupCandidates(cands, size)
			}
			b.ReportMetric(float64(len(groups)), "groups")
		})
	}
}
