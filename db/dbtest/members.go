package dbtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/moim/moim/db"
	"github.com/moim/moim/domain"
)

// The member fixtures and checks the store tests of db and of its
// sub-packages share.

// MemberEpoch is a whole-microsecond time, which every dialect keeps exactly.
var MemberEpoch = time.Date(2026, 11, 25, 9, 30, 15, 123456000, time.UTC)

// NewMember returns a member ready for Create, as sign-up would build it.
func NewMember(email, nickname string) *domain.Member {
	return &domain.Member{
		Email:        email,
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=2$c2FsdA$aGFzaA",
		Nickname:     nickname,
		Prefs:        domain.DefaultNotificationPrefs(),
		Role:         domain.RoleMember,
		CreatedAt:    MemberEpoch,
		UpdatedAt:    MemberEpoch,
	}
}

// MustCreateMember creates m and fails the test if that does not work.
func MustCreateMember(tb testing.TB, bdb bun.IDB, m *domain.Member) *domain.Member {
	tb.Helper()
	if err := (db.Members{}).Create(context.Background(), bdb, m); err != nil {
		tb.Fatalf("Create(%q, %q): %v", m.Email, m.Nickname, err)
	}
	return m
}

// CheckCode fails unless err is a *domain.Error with the given code and, if
// wantField is not "", field.
func CheckCode(tb testing.TB, err error, wantCode, wantField string) {
	tb.Helper()
	var de *domain.Error
	if !errors.As(err, &de) {
		tb.Fatalf("err = %v, want a *domain.Error with code %q", err, wantCode)
	}
	if de.Code != wantCode {
		tb.Errorf("code = %q (%v), want %q", de.Code, err, wantCode)
	}
	if wantField != "" && de.Field != wantField {
		tb.Errorf("field = %q, want %q", de.Field, wantField)
	}
}

// CountRows returns the number of rows in table.
func CountRows(tb testing.TB, bdb *bun.DB, table string) int {
	tb.Helper()
	n, err := bdb.NewSelect().Table(table).Count(context.Background())
	if err != nil {
		tb.Fatalf("count %s: %v", table, err)
	}
	return int(n)
}
