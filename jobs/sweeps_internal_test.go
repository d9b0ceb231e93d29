package jobs

import (
	"fmt"
	"testing"
	"time"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

func TestProducerCalls(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	row := func(key int64, typ domain.NotificationType, args string) db.Unfanned {
		return db.Unfanned{Key: key, ID: fmt.Sprint("n", key), Type: typ, Args: args, CreatedAt: at}
	}
	match, room := domain.NotifyMatchConfirmed, domain.NotifyJoinAccepted
	// A match's three members, a room notification interleaved, and the
	// start of another match at the end.
	rows := []db.Unfanned{row(11, match, "m1"), row(12, room, "r1"), row(13, match, "m1"), row(14, match, "m1"), row(15, match, "m2")}
	for _, c := range []struct {
		name  string
		full  bool
		after int64
		want  string
		next  int64
	}{
		{"last read", false, 10, "[[n11 n13 n14] [n12] [n15]]", 15},
		// More may follow: the last call may go on, so it waits for the
		// next read, which starts just before it.
		{"full read", true, 10, "[[n11 n13 n14] [n12]]", 14},
	} {
		got, next := producerCalls(rows, c.full, c.after)
		if fmt.Sprint(got) != c.want || next != c.next {
			t.Errorf("%s: producerCalls = %v, %d; want %s, %d", c.name, got, next, c.want, c.next)
		}
	}
	// A full read of one call is done whole: leaving it would never end.
	one := []db.Unfanned{row(11, match, "m1"), row(12, match, "m1")}
	if got, next := producerCalls(one, true, 10); fmt.Sprint(got) != "[[n11 n12]]" || next != 12 {
		t.Errorf("one call = %v, %d", got, next)
	}
	// So is a full read whose last call began it.
	mixed := []db.Unfanned{row(11, match, "m1"), row(12, room, "r1"), row(13, match, "m1")}
	if got, next := producerCalls(mixed, true, 10); fmt.Sprint(got) != "[[n11 n13] [n12]]" || next != 13 {
		t.Errorf("last call first = %v, %d", got, next)
	}
}
