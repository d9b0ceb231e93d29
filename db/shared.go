package db

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/domain"
)

// The helpers below are what the feature stores in db's sub-packages
// (missiondb, taskdb) share with the core stores. They wrap the unexported
// originals rather than replace them, so code in package db keeps calling
// those.

// Translate turns a driver error into a domain error (see translate); every
// store passes its query errors through it.
func Translate(err error) error { return translate(err) }

// UniqueViolation reports whether err is a unique violation and names the
// constraint (see uniqueViolation).
func UniqueViolation(err error) (constraintOrColumns string, ok bool) {
	return uniqueViolation(err)
}

// DBTime is t as every dialect stores it: UTC, whole microseconds.
func DBTime(t time.Time) time.Time { return dbTime(t) }

// UTCOrZero is t in UTC, or the zero time for a NULL column.
func UTCOrZero(t time.Time) time.Time { return utcOrZero(t) }

// NullIfEmpty turns "" into SQL NULL for an optional column.
func NullIfEmpty(s string) any { return nullIfEmpty(s) }

// CheckLimit rejects a page size below 1 (see checkLimit).
func CheckLimit(limit int) error { return checkLimit(limit) }

// ErrMemberNotFound is the error for an unknown or deleted member.
func ErrMemberNotFound() error { return errMemberNotFound() }

// MemberKey returns the internal id of a live member. Errors: ENOTFOUND.
func MemberKey(ctx context.Context, idb bun.IDB, publicID string) (int64, error) {
	return memberKey(ctx, idb, publicID)
}

// MemberRow is a row of the members table, for stores that read a member's
// id and nickname in their own query.
type MemberRow = memberRow

// ExecBumped runs a version-checked update and returns ErrStale when no row
// matched.
func ExecBumped(ctx context.Context, q *bun.UpdateQuery, what string) error {
	return execBumped(ctx, q, what)
}

// ImageRow is a row of the images table with its owner's public id joined
// in; SelectImages fills it.
type ImageRow = imageRow

// Image converts the row.
func (r *imageRow) Image() (*domain.Image, error) { return r.toDomain() }

// SelectImages starts a query over images with the owner's public id joined
// in.
func SelectImages(idb bun.IDB, dest any) *bun.SelectQuery { return selectImages(idb, dest) }

// ImageKeys maps the public ids of images to row ids. Errors: ENOTFOUND.
func ImageKeys(ctx context.Context, idb bun.IDB, ids []string) (map[string]int64, error) {
	return imageKeys(ctx, idb, ids)
}
