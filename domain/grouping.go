package domain

import (
	"cmp"
	"hash/maphash"
	"slices"
	"strings"
	"time"
)

// Candidate is one waiting application as the grouping sees it.
type Candidate struct {
	Key        int64 // the application row id; breaks ties of equal CreatedAt
	MemberID   string
	Conditions Conditions // masks as stored: never zero ("any" is stored as the full mask)
	CreatedAt  time.Time
}

// Group is one match to make: indexes into the candidates slice, oldest
// first, and what they share.
type Group struct {
	Members []int
	Common  Conditions // the intersection of every member's masks; both parts non-zero
}

// GroupCandidates groups waiting applications into groups of size members.
//
// Candidates are taken by age (CreatedAt, then Key; the input order does not
// matter). The oldest candidate not yet grouped anchors a group and takes,
// one at a time, the oldest candidate still compatible with the group so
// far: for every dimension the intersection of all the group's masks stays
// non-empty, so the group shares a place and a way of eating (or a type of
// study). Only age decides, never the order of condition values, so no
// combination of conditions jumps the queue (42Partner walked the values in
// enum order and so favoured SEOCHO/DELIVERY). If the group cannot
// reach size members the anchor stays ungrouped, does not block younger
// candidates, and may still join a younger anchor's group. A member is in at
// most one group: further candidates of a grouped member are skipped, and a
// group never holds one member twice.
//
// The choice is greedy. For size 2 that is exactly the rule: the oldest
// applicant with its oldest compatible partner, and afterwards no two
// candidates of different ungrouped members are compatible. For larger groups an
// early partner can narrow the intersection so much that no group forms
// where a search over partners would have found one.
//
// Groups are returned in the age order of their anchors; the result is nil
// when no group forms, and always when size < 2.
//
// Cost: O(n log n + n·size·P) for n candidates and P distinct (places,
// second) mask pairs, at most 7×7 = 49 for today's dimensions.
func GroupCandidates(cands []Candidate, size int) []Group {
	n := len(cands)
	if size < 2 || n < size {
		return nil
	}
	// From here on a candidate is named by its position in age order
	// (0 = oldest): comparing two positions is comparing two ages. Positions
	// fit int32 because a pool never holds 2^31 applications.
	ages := ageOrder(cands)
	conds := make([]Conditions, n)
	for pos, a := range ages {
		conds[pos] = cands[a.idx].Conditions
	}
	g := grouper{
		q:     newPairQueues(conds),
		ring:  memberRings(cands, ages),
		state: make([]int32, n),
	}

	var (
		flat    = make([]int32, 0, n/size*size) // members of every group, size at a time
		commons = make([]Conditions, 0, n/size)
	)
	for anchor := range int32(n) {
		if g.state[anchor] == grouped {
			continue
		}
		g.attempt++
		g.setMember(anchor, g.attempt)
		group := append(flat, anchor)
		common := conds[anchor]
		for len(group)-len(flat) < size {
			next := g.oldest(common)
			if next < 0 {
				break
			}
			g.setMember(next, g.attempt)
			group = append(group, next)
			common = common.Intersect(conds[next])
		}
		if len(group)-len(flat) < size {
			continue
		}
		members := group[len(flat):]
		for _, pos := range members {
			g.setMember(pos, grouped)
		}
		// A failed older anchor may have joined as a partner, so the anchor
		// is not necessarily the oldest member.
		slices.Sort(members)
		flat = group
		commons = append(commons, common)
	}

	if len(commons) == 0 {
		return nil
	}
	out := make([]Group, len(commons))
	backing := make([]int, len(flat))
	for i := range out {
		ms := backing[i*size : (i+1)*size : (i+1)*size]
		for j, pos := range flat[i*size : (i+1)*size] {
			ms[j] = int(ages[pos].idx)
		}
		out[i] = Group{Members: ms, Common: commons[i]}
	}
	return out
}

// ageKey is a candidate's place in the age order, with the time split into
// integers so sorting 10⁵ candidates does not go through time.Time.Compare.
type ageKey struct {
	sec    int64
	key    int64
	member uint64 // hash of MemberID, computed here while cands is read in order
	nsec   int32
	idx    int32 // index into the candidates
}

// ageOrder sorts the candidates by CreatedAt, then Key.
func ageOrder(cands []Candidate) []ageKey {
	seed := maphash.MakeSeed()
	ages := make([]ageKey, len(cands))
	for i, c := range cands {
		ages[i] = ageKey{
			sec:    c.CreatedAt.Unix(),
			key:    c.Key,
			member: maphash.String(seed, c.MemberID),
			nsec:   int32(c.CreatedAt.Nanosecond()),
			idx:    int32(i),
		}
	}
	slices.SortFunc(ages, func(a, b ageKey) int {
		if c := cmp.Compare(a.sec, b.sec); c != 0 {
			return c
		}
		if c := cmp.Compare(a.nsec, b.nsec); c != 0 {
			return c
		}
		if c := cmp.Compare(a.key, b.key); c != 0 {
			return c
		}
		// Row ids are unique within a pool; should a caller repeat one, the
		// content settles the order so the input order still does not.
		ca, cb := &cands[a.idx], &cands[b.idx]
		if c := strings.Compare(ca.MemberID, cb.MemberID); c != 0 {
			return c
		}
		if c := cmp.Compare(ca.Conditions.Places, cb.Conditions.Places); c != 0 {
			return c
		}
		if c := cmp.Compare(ca.Conditions.Second, cb.Conditions.Second); c != 0 {
			return c
		}
		// Identical candidates are interchangeable; keep the sort total.
		return cmp.Compare(a.idx, b.idx)
	})
	return ages
}

// memberRings links the positions of each member's candidates into a ring
// in age order (a member with one candidate points at itself), so taking a
// member touches all of its candidates without a per-candidate lookup. An
// open-addressing table on the member hashes finds the rings: a few
// allocations where a map of 10⁵ strings would need hundreds. The hash only
// narrows the search; the IDs decide.
func memberRings(cands []Candidate, ages []ageKey) []int32 {
	ring := make([]int32, len(ages))
	tableLen := 1
	for tableLen < 2*len(ages) {
		tableLen <<= 1
	}
	mask := uint64(tableLen - 1)
	youngest := make([]int32, tableLen) // 1 + the member's youngest position so far; 0 = empty slot
	for pos, a := range ages {
		p := int32(pos)
		ring[p] = p
		for slot := a.member & mask; ; slot = (slot + 1) & mask {
			y := youngest[slot] - 1
			if y < 0 {
				youngest[slot] = p + 1
				break
			}
			if ages[y].member == a.member && cands[ages[y].idx].MemberID == cands[a.idx].MemberID {
				// Insert after the youngest, which points back at the oldest.
				ring[p], ring[y] = ring[y], p
				youngest[slot] = p + 1
				break
			}
		}
	}
	return ring
}

// pairQueues holds, for each distinct (places, second) mask pair, the
// candidates with exactly those masks in age order. Compatibility depends
// only on the masks, so the oldest compatible candidate is the oldest of the
// heads of the compatible pairs: a step looks at P heads, not n candidates.
type pairQueues struct {
	pairs []Conditions
	start []int32 // queue of pair b is order[start[b]:start[b+1]]
	head  []int32 // entries of pair b before head[b] are grouped
	order []int32 // positions
}

func newPairQueues(conds []Conditions) pairQueues {
	var q pairQueues
	ids := make(map[Conditions]int32)
	pairOf := make([]int32, len(conds))
	for pos, c := range conds {
		id, ok := ids[c]
		if !ok {
			id = int32(len(q.pairs))
			ids[c] = id
			q.pairs = append(q.pairs, c)
		}
		pairOf[pos] = id
	}
	// Counting sort by pair; walking positions in order keeps each queue in
	// age order.
	q.start = make([]int32, len(q.pairs)+1)
	for _, id := range pairOf {
		q.start[id+1]++
	}
	for b := range q.pairs {
		q.start[b+1] += q.start[b]
	}
	q.head = make([]int32, len(q.pairs))
	copy(q.head, q.start)
	q.order = make([]int32, len(conds))
	for pos, id := range pairOf {
		q.order[q.head[id]] = int32(pos)
		q.head[id]++
	}
	copy(q.head, q.start)
	return q
}

// grouped is the state of a candidate whose member is in a group.
const grouped = -1

// grouper is the state of one run.
type grouper struct {
	q    pairQueues
	ring []int32 // position → the next position of the same member
	// state[pos] is grouped, the attempt currently building a group with
	// the member, or anything else (zero, an attempt that failed) when the
	// member is free. Numbering attempts means a failed one needs no
	// clean-up.
	state   []int32
	attempt int32
}

// setMember sets the state of every candidate of pos's member.
func (g *grouper) setMember(pos, state int32) {
	p := pos
	for {
		g.state[p] = state
		if p = g.ring[p]; p == pos {
			return
		}
	}
}

// oldest returns the oldest free position whose masks meet common in both
// dimensions, or -1. Grouped entries never become usable again, so they are
// dropped from the heads for good; entries taken by the group being built
// are only stepped over, as that group may yet fail.
func (g *grouper) oldest(common Conditions) int32 {
	q := &g.q
	best := int32(-1)
	for b, pc := range q.pairs {
		if pc.Places&common.Places == 0 || pc.Second&common.Second == 0 {
			continue
		}
		h, end := q.head[b], q.start[b+1]
		for h < end && g.state[q.order[h]] == grouped {
			h++
		}
		q.head[b] = h
		for ; h < end; h++ {
			pos := q.order[h]
			if best >= 0 && pos > best {
				break
			}
			if st := g.state[pos]; st != grouped && st != g.attempt {
				best = pos
				break
			}
		}
	}
	return best
}
