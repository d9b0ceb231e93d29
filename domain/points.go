package domain

import (
	"fmt"
	"time"
)

// PointKind is why a member's points changed. Stored as a small integer.
type PointKind int

// The kinds. Stored numbers: only append.
const (
	// PointCharge: points bought (a verified payment webhook).
	PointCharge PointKind = iota + 1
	// PointStake: a mission's stake, taken on creating or joining it.
	PointStake
	// PointRefund: a stake given back, whole (leaving before the start, a
	// cancelled mission) or in part (a closed mission's payout).
	PointRefund
	// PointBonus: the 5 % a closed mission adds when the team reached 100 %.
	PointBonus
	// PointAdjustment: an admin's correction, with a reason.
	PointAdjustment
)

var pointKindNames = map[PointKind]string{
	PointCharge: "CHARGE", PointStake: "STAKE", PointRefund: "REFUND",
	PointBonus: "BONUS", PointAdjustment: "ADJUSTMENT",
}

func (k PointKind) String() string {
	if n, ok := pointKindNames[k]; ok {
		return n
	}
	return fmt.Sprintf("PointKind(%d)", int(k))
}

// Valid reports whether k is one of the kinds.
func (k PointKind) Valid() bool { _, ok := pointKindNames[k]; return ok }

// MarshalText writes the wire name.
func (k PointKind) MarshalText() ([]byte, error) {
	if !k.Valid() {
		return nil, fmt.Errorf("invalid point kind %d", int(k))
	}
	return []byte(k.String()), nil
}

// Point limits.
const (
	// PointAmountMax bounds one entry either way: far above any stake or
	// charge, far below where sums could overflow.
	PointAmountMax int64 = 1_000_000_000
	// PointReasonMax is the longest reason an adjustment may give.
	PointReasonMax = 255
	// PointKeyMax is the longest idempotency key.
	PointKeyMax = 128
)

// PointEntry is one line of the ledger.
type PointEntry struct {
	ID        string // opaque public id
	MemberID  string // the member's public id
	Amount    int64  // signed: credits positive, stakes negative
	Kind      PointKind
	MissionID string // the mission's public id, for stakes, refunds and bonuses
	// Key makes the entry idempotent: a second entry with the same key is
	// not written ("payment:<id>", "mission-stake:<membership>", …).
	Key       string
	Reason    string
	CreatedAt time.Time
}

// ErrInsufficientPoints is the error of a debit the balance cannot cover.
func ErrInsufficientPoints() *Error {
	return Errorf(EINSUFFICIENTPOINTS, "Not enough points: the balance would go below zero.")
}

// NormalizePointReason trims an adjustment's reason and checks it: 1 to
// PointReasonMax characters on one line, no hidden characters (the room
// texts' rules), so the ledger reads as what it says.
func NormalizePointReason(s string) (string, error) {
	return normalizeRoomText("reason", s, PointReasonMax, false)
}
