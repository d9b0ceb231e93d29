// Package clocktest gives tests the instant they treat as "now", so the
// suite can be run at a chosen instant: the one in MOIM_TEST_NOW (RFC 3339)
// when it is set, else the wall clock. Tests whose outcome rests on the
// time of day, the date or a zone take their base from Now and hand it to
// the code under test through its NowFunc or now argument; `make
// test-clocks` runs them at awkward instants in awkward zones.
package clocktest

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// Env is the variable holding the instant a test run starts at.
const Env = "MOIM_TEST_NOW"

var (
	once  sync.Once
	base  time.Time // the instant in Env; zero when unset
	start time.Time // when Now was first called
)

// Now returns the instant in MOIM_TEST_NOW moved on by the time since the
// first call, so successive calls still advance, or time.Now() when the
// variable is unset. Like time.Now, it is in time.Local. A malformed value
// panics: a run meant to be pinned must not quietly use the wall clock.
func Now() time.Time {
	once.Do(func() {
		start = time.Now()
		if v := os.Getenv(Env); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				panic(fmt.Sprintf("clocktest: %s=%q is not RFC 3339: %v", Env, v, err))
			}
			base = t
		}
	})
	if base.IsZero() {
		return time.Now()
	}
	return base.Add(time.Since(start)).Local()
}
