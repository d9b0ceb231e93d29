package image

import "context"

// DefaultConcurrentDecodes is the gate's size when none is configured. A
// decode at the pixel limit holds about 4 bytes a pixel (200 MB at 50
// megapixels, see Variants), so two at once stay within half a gigabyte
// however many uploads arrive together.
const DefaultConcurrentDecodes = 2

// Gate caps how many decodes run at once in a process, so that a burst of
// uploads waits instead of exhausting memory.
type Gate struct {
	slots chan struct{}
}

// NewGate returns a gate letting n decodes run at once; n < 1 means
// DefaultConcurrentDecodes.
func NewGate(n int) *Gate {
	if n < 1 {
		n = DefaultConcurrentDecodes
	}
	return &Gate{slots: make(chan struct{}, n)}
}

// Acquire waits for a free slot, or returns ctx's error when ctx ends first.
// Each successful Acquire is followed by one Release.
func (g *Gate) Acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Release frees the slot taken by Acquire.
func (g *Gate) Release() { <-g.slots }
