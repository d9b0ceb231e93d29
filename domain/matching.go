package domain

import (
	"fmt"
	"math/bits"
	"strings"
	"time"
)

// Category is what a match or a room is for. Stored as a small integer.
type Category int

// The categories. Random matching takes MEAL and STUDY; rooms add RUN.
const (
	CategoryMeal Category = iota + 1
	CategoryStudy
	CategoryRun
)

var categoryNames = map[Category]string{CategoryMeal: "MEAL", CategoryStudy: "STUDY", CategoryRun: "RUN"}

func (c Category) String() string {
	if n, ok := categoryNames[c]; ok {
		return n
	}
	return fmt.Sprintf("Category(%d)", int(c))
}

// Valid reports whether c is a category.
func (c Category) Valid() bool { _, ok := categoryNames[c]; return ok }

// MarshalText writes the wire name.
func (c Category) MarshalText() ([]byte, error) {
	if !c.Valid() {
		return nil, fmt.Errorf("invalid category %d", int(c))
	}
	return []byte(c.String()), nil
}

// UnmarshalText reads a wire name.
func (c *Category) UnmarshalText(b []byte) error {
	v, err := ParseCategory(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// ParseCategory returns the category with the given wire name.
func ParseCategory(s string) (Category, error) {
	for c, n := range categoryNames {
		if n == s {
			return c, nil
		}
	}
	return 0, FieldErrorf(EINVALID, "category", "Unknown category %q; categories are MEAL, STUDY and RUN.", s)
}

// RandomCategory reports whether members can apply for random matching in c.
func (c Category) RandomCategory() bool { return c == CategoryMeal || c == CategoryStudy }

// Mask is a set of values of one condition dimension, one bit each. The
// zero Mask stands for "any" when a member states conditions; Full turns it
// into the set of every value.
type Mask uint8

// Dimension is one kind of condition with its values in bit order.
type Dimension struct {
	Field  string   // the JSON field naming the list
	Values []string // wire names; value i is bit 1<<i
}

// The condition dimensions. Bit positions are stored: only append values.
var (
	Places       = Dimension{Field: "places", Values: []string{"SEOCHO", "GAEPO", "OUT_OF_CLUSTER"}}
	WaysOfEating = Dimension{Field: "ways_of_eating", Values: []string{"DELIVERY", "EATOUT", "TAKEOUT"}}
	StudyTypes   = Dimension{Field: "study_types", Values: []string{"INNER_CIRCLE", "NOT_INNER_CIRCLE"}}
)

// Full is the mask of every value of d.
func (d Dimension) Full() Mask { return Mask(1<<len(d.Values) - 1) }

// Parse turns a list of wire names into a mask. An empty list means any
// (the full mask). Unknown or repeated values are errors naming d.Field.
func (d Dimension) Parse(values []string) (Mask, error) {
	if len(values) == 0 {
		return d.Full(), nil
	}
	var m Mask
	for _, v := range values {
		i := -1
		for j, name := range d.Values {
			if name == v {
				i = j
				break
			}
		}
		if i < 0 {
			return 0, FieldErrorf(EINVALID, d.Field, "Unknown value %q in %q; allowed: %s.", v, d.Field, strings.Join(d.Values, ", "))
		}
		if m&(1<<i) != 0 {
			return 0, FieldErrorf(EINVALID, d.Field, "Value %q appears twice in %q.", v, d.Field)
		}
		m |= 1 << i
	}
	return m, nil
}

// Names lists the wire names in m, in bit order.
func (d Dimension) Names(m Mask) []string {
	out := make([]string, 0, bits.OnesCount8(uint8(m)))
	for i, name := range d.Values {
		if m&(1<<i) != 0 {
			out = append(out, name)
		}
	}
	return out
}

// Conditions are what a random-match applicant accepts: a place, and a way
// of eating (MEAL) or a type of study (STUDY). Second is the mask of the
// category's second dimension.
type Conditions struct {
	Places Mask
	Second Mask
}

// SecondDimension is the category's second condition dimension.
func (c Category) SecondDimension() Dimension {
	if c == CategoryStudy {
		return StudyTypes
	}
	return WaysOfEating
}

// Compatible reports whether a and b share a place and a second value.
func (a Conditions) Compatible(b Conditions) bool {
	return a.Places&b.Places != 0 && a.Second&b.Second != 0
}

// Intersect returns what a and b have in common.
func (a Conditions) Intersect(b Conditions) Conditions {
	return Conditions{Places: a.Places & b.Places, Second: a.Second & b.Second}
}

// ApplicationStatus is where a random-match application stands.
type ApplicationStatus int

// The application states. Stored numbers.
const (
	ApplicationWaiting ApplicationStatus = iota + 1
	ApplicationMatched
	ApplicationCancelled
	ApplicationExpired
)

func (s ApplicationStatus) String() string {
	switch s {
	case ApplicationWaiting:
		return "WAITING"
	case ApplicationMatched:
		return "MATCHED"
	case ApplicationCancelled:
		return "CANCELLED"
	case ApplicationExpired:
		return "EXPIRED"
	}
	return fmt.Sprintf("ApplicationStatus(%d)", int(s))
}

// MarshalText writes the wire name.
func (s ApplicationStatus) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Application is a member's wish to be matched at random in a category.
type Application struct {
	ID         string // opaque public id
	Key        int64  // the row id: the matcher's handle and the order of equal times
	MemberID   string
	Category   Category
	Conditions Conditions
	Status     ApplicationStatus
	Version    int64 // bumped by every change; the matcher's optimistic check
	MatchID    string
	CreatedAt  time.Time
	ExpiresAt  time.Time
}

// MatchMethod is how a match came about.
type MatchMethod int

// The match methods. Stored numbers.
const (
	MatchRandom MatchMethod = iota + 1
	MatchRoom
)

func (m MatchMethod) String() string {
	switch m {
	case MatchRandom:
		return "RANDOM"
	case MatchRoom:
		return "ROOM"
	}
	return fmt.Sprintf("MatchMethod(%d)", int(m))
}

// MarshalText writes the wire name.
func (m MatchMethod) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// Match is a group of members put together, at random or by a room.
type Match struct {
	ID         string
	Category   Category
	Method     MatchMethod
	Conditions Conditions // what the members have in common (random matches)
	RoomID     string     // the room it came from (room matches)
	Members    []MatchMember
	CreatedAt  time.Time
}

// MatchMember is one member of a match as the history shows them.
type MatchMember struct {
	MemberID string
	Nickname string
}
