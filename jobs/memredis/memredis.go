// Package memredis runs an in-memory Redis server (miniredis) for the
// all-in-one local runner and for tests when no Redis URL is configured.
//
// miniredis only ages keys when told to, so a Server advances its clock with
// the wall clock on a ticker: TTLs expire in real time, which caches, locks
// and deny-lists rely on. Expiry is accurate to one tick (TickInterval) either
// way, which is fine for local use and tests and is why this is not a
// production Redis.
package memredis

import (
	"fmt"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// TickInterval is how often a Server advances its TTLs by the real time that
// has passed. Each tick walks every key, so it is not much shorter.
const TickInterval = 100 * time.Millisecond

// Server is a running in-memory Redis. Close it to free its port and stop its
// clock.
type Server struct {
	mr   *miniredis.Miniredis
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Start listens on addr ("127.0.0.1:0" for a free port, or a fixed one so a
// test can close a server and start another on the same address) and starts
// the clock that expires keys in real time.
func Start(addr string) (*Server, error) {
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr(addr); err != nil {
		return nil, fmt.Errorf("start in-memory redis on %s: %w", addr, err)
	}
	s := &Server{
		mr:   mr,
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go s.tick()
	return s, nil
}

// tick advances TTLs by the measured elapsed time rather than by
// TickInterval, so a late tick (a busy machine) still keeps TTLs in step with
// the wall clock. TIME and EXPIREAT need no help: miniredis reads the wall
// clock for them as long as SetTime is never called, and calling it here
// would freeze TIME between ticks.
func (s *Server) tick() {
	defer close(s.done)
	t := time.NewTicker(TickInterval)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			// now carries a monotonic reading, so wall-clock jumps do not
			// expire or revive keys.
			if elapsed := now.Sub(last); elapsed > 0 {
				s.mr.FastForward(elapsed)
				last = now
			}
		}
	}
}

// Addr returns the host:port the server listens on.
func (s *Server) Addr() string { return s.mr.Addr() }

// URL returns a redis:// URL for the server (database 0), understood by
// asynq.ParseRedisURI and redis.ParseURL.
func (s *Server) URL() string { return "redis://" + s.mr.Addr() + "/0" }

// Close stops the clock and the server; its data is gone. Calling it more than
// once is harmless.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.stop)
		<-s.done
		s.mr.Close()
	})
}
