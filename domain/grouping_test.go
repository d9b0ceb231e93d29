package domain_test

import (
	"cmp"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/moim/moim/domain"
)

// Mask bits in the order of domain.Places and domain.WaysOfEating.
const (
	seocho domain.Mask = 1 << iota
	gaepo
	outOfCluster
)

const (
	delivery domain.Mask = 1 << iota
	eatout
	takeout
)

const anyMask = domain.Mask(7) // "any" as stored: the full mask of a 3-value dimension

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// cand builds a candidate created minute minutes after t0.
func cand(key int64, member string, places, second domain.Mask, minute int) domain.Candidate {
	return domain.Candidate{
		Key:        key,
		MemberID:   member,
		Conditions: domain.Conditions{Places: places, Second: second},
		CreatedAt:  t0.Add(time.Duration(minute) * time.Minute),
	}
}

// keyGroup is a group named by its members' keys, so expectations do not
// depend on where a candidate sits in the input.
type keyGroup struct {
	Keys   []int64
	Common domain.Conditions
}

func byKeys(cands []domain.Candidate, groups []domain.Group) []keyGroup {
	if groups == nil {
		return nil
	}
	out := make([]keyGroup, len(groups))
	for i, g := range groups {
		keys := make([]int64, len(g.Members))
		for j, m := range g.Members {
			keys[j] = cands[m].Key
		}
		out[i] = keyGroup{Keys: keys, Common: g.Common}
	}
	return out
}

func TestGroupCandidates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		cands []domain.Candidate
		size  int
		want  []keyGroup
	}{
		{
			name: "pairs by age, input order aside",
			cands: []domain.Candidate{
				cand(3, "c", anyMask, anyMask, 2),
				cand(5, "e", anyMask, anyMask, 4),
				cand(1, "a", anyMask, anyMask, 0),
				cand(4, "d", anyMask, anyMask, 3),
				cand(2, "b", anyMask, anyMask, 1),
			},
			size: 2,
			want: []keyGroup{
				{Keys: []int64{1, 2}, Common: domain.Conditions{Places: anyMask, Second: anyMask}},
				{Keys: []int64{3, 4}, Common: domain.Conditions{Places: anyMask, Second: anyMask}},
			},
		},
		{
			name: "oldest compatible partner, not the next in line",
			cands: []domain.Candidate{
				cand(1, "a", seocho, delivery, 0),
				cand(2, "b", gaepo, delivery, 1),
				cand(3, "c", seocho|gaepo, eatout, 2),
				cand(4, "d", seocho, delivery|eatout, 3),
				cand(5, "e", gaepo, anyMask, 4),
			},
			size: 2,
			want: []keyGroup{
				{Keys: []int64{1, 4}, Common: domain.Conditions{Places: seocho, Second: delivery}},
				{Keys: []int64{2, 5}, Common: domain.Conditions{Places: gaepo, Second: delivery}},
			},
		},
		{
			name: "incompatible places never grouped",
			cands: []domain.Candidate{
				cand(1, "a", seocho, anyMask, 0),
				cand(2, "b", gaepo, anyMask, 1),
				cand(3, "c", outOfCluster, anyMask, 2),
			},
			size: 2,
		},
		{
			name: "incompatible ways never grouped",
			cands: []domain.Candidate{
				cand(1, "a", anyMask, delivery, 0),
				cand(2, "b", anyMask, eatout|takeout, 1),
			},
			size: 2,
		},
		{
			name: "group of three shares a place and a way",
			// a+b narrow the places to GAEPO, so c (SEOCHO only) cannot
			// join; d shares GAEPO and DELIVERY and completes the group.
			cands: []domain.Candidate{
				cand(1, "a", seocho|gaepo, delivery, 0),
				cand(2, "b", gaepo, delivery|eatout, 1),
				cand(3, "c", seocho, delivery, 2),
				cand(4, "d", gaepo|outOfCluster, anyMask, 3),
			},
			size: 3,
			want: []keyGroup{
				{Keys: []int64{1, 2, 4}, Common: domain.Conditions{Places: gaepo, Second: delivery}},
			},
		},
		{
			name: "pairwise compatible is not enough for three",
			// a~b on GAEPO, a~c on SEOCHO, b~c share nothing.
			cands: []domain.Candidate{
				cand(1, "a", seocho|gaepo, delivery, 0),
				cand(2, "b", gaepo, delivery|eatout, 1),
				cand(3, "c", seocho, delivery, 2),
			},
			size: 3,
		},
		{
			name: "failed anchor joins a younger group",
			// a takes b first and then finds nobody on GAEPO; b fails the
			// same way; c, on SEOCHO, takes a and d.
			cands: []domain.Candidate{
				cand(1, "a", seocho|gaepo, delivery, 0),
				cand(2, "b", gaepo, delivery, 1),
				cand(3, "c", seocho, delivery, 2),
				cand(4, "d", seocho, delivery, 3),
			},
			size: 3,
			want: []keyGroup{
				{Keys: []int64{1, 3, 4}, Common: domain.Conditions{Places: seocho, Second: delivery}},
			},
		},
		{
			name: "greedy can miss a grouping for size three",
			// {a,c,f} on SEOCHO and {b,d,e} on GAEPO would match all six;
			// greedy gives a the oldest partners b and c and strands d, e, f.
			cands: []domain.Candidate{
				cand(1, "a", seocho|gaepo, anyMask, 0),
				cand(2, "b", seocho|gaepo, anyMask, 1),
				cand(3, "c", seocho, anyMask, 2),
				cand(4, "d", gaepo, anyMask, 3),
				cand(5, "e", gaepo, anyMask, 4),
				cand(6, "f", seocho, anyMask, 5),
			},
			size: 3,
			want: []keyGroup{
				{Keys: []int64{1, 2, 3}, Common: domain.Conditions{Places: seocho, Second: anyMask}},
			},
		},
		{
			name: "any matches everything",
			cands: []domain.Candidate{
				cand(1, "a", anyMask, anyMask, 0),
				cand(2, "b", outOfCluster, takeout, 1),
				cand(3, "c", anyMask, anyMask, 2),
				cand(4, "d", anyMask, anyMask, 3),
			},
			size: 2,
			want: []keyGroup{
				{Keys: []int64{1, 2}, Common: domain.Conditions{Places: outOfCluster, Second: takeout}},
				{Keys: []int64{3, 4}, Common: domain.Conditions{Places: anyMask, Second: anyMask}},
			},
		},
		{
			name: "old incompatible applicant does not block younger ones",
			cands: []domain.Candidate{
				cand(1, "x", outOfCluster, takeout, 0),
				cand(2, "a", seocho, delivery, 1),
				cand(3, "b", seocho|gaepo, delivery, 2),
			},
			size: 2,
			want: []keyGroup{
				{Keys: []int64{2, 3}, Common: domain.Conditions{Places: seocho, Second: delivery}},
			},
		},
		{
			name: "same member is not grouped with itself",
			cands: []domain.Candidate{
				cand(1, "m", seocho, delivery, 0),
				cand(2, "m", seocho, delivery, 1),
			},
			size: 2,
		},
		{
			name: "same member is in at most one group",
			cands: []domain.Candidate{
				cand(1, "m", seocho, delivery, 0),
				cand(2, "m", seocho, delivery, 1),
				cand(3, "n", seocho, delivery, 2),
				cand(4, "p", seocho, delivery, 3),
			},
			size: 2,
			want: []keyGroup{
				{Keys: []int64{1, 3}, Common: domain.Conditions{Places: seocho, Second: delivery}},
			},
		},
		{
			name: "same member is in at most one group of three",
			cands: []domain.Candidate{
				cand(1, "m", seocho, delivery, 0),
				cand(2, "m", seocho, delivery, 1),
				cand(3, "n", seocho, delivery, 2),
				cand(4, "p", seocho, delivery, 3),
				cand(5, "q", seocho, delivery, 4),
			},
			size: 3,
			want: []keyGroup{
				{Keys: []int64{1, 3, 4}, Common: domain.Conditions{Places: seocho, Second: delivery}},
			},
		},
		{
			name: "member's younger application matches when the older cannot",
			cands: []domain.Candidate{
				cand(1, "m", seocho, delivery, 0),
				cand(2, "m", gaepo, eatout, 1),
				cand(3, "p", gaepo, eatout, 2),
			},
			size: 2,
			want: []keyGroup{
				{Keys: []int64{2, 3}, Common: domain.Conditions{Places: gaepo, Second: eatout}},
			},
		},
		{
			name: "equal times are ordered by key",
			cands: []domain.Candidate{
				cand(30, "c", anyMask, anyMask, 0),
				cand(10, "a", anyMask, anyMask, 0),
				cand(20, "b", anyMask, anyMask, 0),
			},
			size: 2,
			want: []keyGroup{
				{Keys: []int64{10, 20}, Common: domain.Conditions{Places: anyMask, Second: anyMask}},
			},
		},
		{
			name: "common is the intersection",
			cands: []domain.Candidate{
				cand(1, "a", seocho|gaepo, delivery|eatout, 0),
				cand(2, "b", gaepo|outOfCluster, anyMask, 1),
				cand(3, "c", anyMask, eatout|takeout, 2),
			},
			size: 3,
			want: []keyGroup{
				{Keys: []int64{1, 2, 3}, Common: domain.Conditions{Places: gaepo, Second: eatout}},
			},
		},
		{
			name:  "size one",
			cands: []domain.Candidate{cand(1, "a", anyMask, anyMask, 0), cand(2, "b", anyMask, anyMask, 1)},
			size:  1,
		},
		{
			name:  "size zero",
			cands: []domain.Candidate{cand(1, "a", anyMask, anyMask, 0), cand(2, "b", anyMask, anyMask, 1)},
			size:  0,
		},
		{
			name:  "fewer candidates than size",
			cands: []domain.Candidate{cand(1, "a", anyMask, anyMask, 0), cand(2, "b", anyMask, anyMask, 1)},
			size:  3,
		},
		{
			name: "no candidates",
			size: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := domain.GroupCandidates(tt.cands, tt.size)
			if diff := gocmp.Diff(tt.want, byKeys(tt.cands, got)); diff != "" {
				t.Errorf("groups mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestGroupCandidatesFairness checks that age alone decides: 42Partner
// walked condition values in enum order, so SEOCHO/DELIVERY applicants were
// served before an older OUT_OF_CLUSTER/TAKEOUT one.
func TestGroupCandidatesFairness(t *testing.T) {
	t.Parallel()
	cands := []domain.Candidate{cand(1, "x", outOfCluster, takeout, 0)}
	for i := range 11 {
		cands = append(cands, cand(int64(10+i), fmt.Sprintf("s%d", i), seocho, delivery, 1+i))
	}
	// The youngest accepts anything, so every SEOCHO/DELIVERY applicant
	// competes with x for them.
	cands = append(cands, cand(99, "y", anyMask, anyMask, 60))

	got := byKeys(cands, domain.GroupCandidates(cands, 2))
	want := keyGroup{Keys: []int64{1, 99}, Common: domain.Conditions{Places: outOfCluster, Second: takeout}}
	if len(got) != 6 {
		t.Fatalf("len(groups) = %d, want 6", len(got))
	}
	if diff := gocmp.Diff(want, got[0]); diff != "" {
		t.Errorf("first group mismatch (-want +got):\n%s", diff)
	}
}

func TestGroupCandidatesInputOrder(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 7))
	cands := randomCandidates(rng, 60)
	want := byKeys(cands, domain.GroupCandidates(cands, 3))
	if len(want) == 0 {
		t.Fatal("no groups formed; the test would prove nothing")
	}
	for i := range 20 {
		shuffled := slices.Clone(cands)
		rng.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		got := byKeys(shuffled, domain.GroupCandidates(shuffled, 3))
		if diff := gocmp.Diff(want, got); diff != "" {
			t.Fatalf("shuffle %d: groups mismatch (-want +got):\n%s", i, diff)
		}
	}
}

// randomCandidates draws n candidates with unique keys, a few members
// applying twice, non-empty masks and ages with ties.
func randomCandidates(rng *rand.Rand, n int) []domain.Candidate {
	cands := make([]domain.Candidate, n)
	keys := rng.Perm(n)
	members := max(1, n*3/4)
	for i := range cands {
		second := domain.Mask(1 + rng.IntN(7))
		if rng.IntN(4) == 0 { // STUDY has two types of study
			second = domain.Mask(1 + rng.IntN(3))
		}
		cands[i] = domain.Candidate{
			Key:        int64(keys[i] + 1),
			MemberID:   fmt.Sprintf("m%d", rng.IntN(members)),
			Conditions: domain.Conditions{Places: domain.Mask(1 + rng.IntN(7)), Second: second},
			CreatedAt:  t0.Add(time.Duration(rng.IntN(n+1)) * time.Second),
		}
	}
	return cands
}

// referenceGroups is the rule written down as plainly as possible, in
// quadratic time: anchors by age, each taking the oldest free candidate
// that keeps the group's intersection non-empty.
func referenceGroups(cands []domain.Candidate, size int) []keyGroup {
	if size < 2 {
		return nil
	}
	order := make([]int, len(cands))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		if c := cands[a].CreatedAt.Compare(cands[b].CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(cands[a].Key, cands[b].Key)
	})
	grouped := map[string]bool{}
	var out []keyGroup
	// Members are ranks in order, so sorting them sorts by age.
	for a := range order {
		anchor := cands[order[a]]
		if grouped[anchor.MemberID] {
			continue
		}
		in := map[string]bool{anchor.MemberID: true}
		members := []int{a}
		common := anchor.Conditions
		for len(members) < size {
			next := slices.IndexFunc(order, func(i int) bool {
				c := cands[i]
				return !grouped[c.MemberID] && !in[c.MemberID] && common.Compatible(c.Conditions)
			})
			if next < 0 {
				break
			}
			in[cands[order[next]].MemberID] = true
			members = append(members, next)
			common = common.Intersect(cands[order[next]].Conditions)
		}
		if len(members) < size {
			continue
		}
		for m := range in {
			grouped[m] = true
		}
		slices.Sort(members)
		keys := make([]int64, len(members))
		for i, r := range members {
			keys[i] = cands[order[r]].Key
		}
		out = append(out, keyGroup{Keys: keys, Common: common})
	}
	return out
}

func TestGroupCandidatesProperties(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(42, 2024))
	for tc := range 200 {
		cands := randomCandidates(rng, rng.IntN(61))
		size := 2 + rng.IntN(3)
		t.Run(fmt.Sprintf("case%d_n%d_size%d", tc, len(cands), size), func(t *testing.T) {
			t.Parallel()
			groups := domain.GroupCandidates(cands, size)
			checkGroups(t, cands, size, groups)
			if diff := gocmp.Diff(referenceGroups(cands, size), byKeys(cands, groups)); diff != "" {
				t.Errorf("differs from the reference rule (-want +got):\n%s", diff)
			}
		})
	}
}

// checkGroups asserts what must hold of any grouping, whichever rule
// picked the partners.
func checkGroups(t *testing.T, cands []domain.Candidate, size int, groups []domain.Group) {
	t.Helper()
	seen := map[int]bool{}
	groupedMembers := map[string]bool{}
	for gi, g := range groups {
		if len(g.Members) != size {
			t.Errorf("group %d has %d members, want %d", gi, len(g.Members), size)
		}
		members := map[string]bool{}
		inter := domain.Conditions{Places: ^domain.Mask(0), Second: ^domain.Mask(0)}
		for j, m := range g.Members {
			if seen[m] {
				t.Errorf("candidate %d is in two groups", m)
			}
			seen[m] = true
			c := cands[m]
			if members[c.MemberID] {
				t.Errorf("group %d holds member %q twice", gi, c.MemberID)
			}
			if groupedMembers[c.MemberID] && !members[c.MemberID] {
				t.Errorf("member %q is in two groups", c.MemberID)
			}
			members[c.MemberID] = true
			inter = inter.Intersect(c.Conditions)
			if j > 0 {
				p := cands[g.Members[j-1]]
				if c.CreatedAt.Before(p.CreatedAt) || c.CreatedAt.Equal(p.CreatedAt) && c.Key < p.Key {
					t.Errorf("group %d is not oldest first: key %d before key %d", gi, p.Key, c.Key)
				}
			}
		}
		for m := range members {
			groupedMembers[m] = true
		}
		if bits.OnesCount8(uint8(inter.Places)) == 0 || bits.OnesCount8(uint8(inter.Second)) == 0 {
			t.Errorf("group %d shares nothing: intersection %+v", gi, inter)
		}
		if g.Common != inter {
			t.Errorf("group %d: Common = %+v, want the intersection %+v", gi, g.Common, inter)
		}
	}
	if size != 2 {
		return
	}
	// Greedy pairing is maximal: no two candidates of ungrouped members
	// are left that could have been paired.
	var left []domain.Candidate
	for i, c := range cands {
		if !seen[i] && !groupedMembers[c.MemberID] {
			left = append(left, c)
		}
	}
	for i, a := range left {
		for _, b := range left[i+1:] {
			if a.MemberID != b.MemberID && a.Conditions.Compatible(b.Conditions) {
				t.Errorf("keys %d and %d are compatible and both left ungrouped", a.Key, b.Key)
			}
		}
	}
}
