package db

import (
	"database/sql"
	"errors"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/uptrace/bun/driver/pgdriver"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/moim/moim/domain"
)

// errKind is what a driver error means to the stores, whatever the dialect.
type errKind int

const (
	kindOther errKind = iota
	kindUnique
	kindForeignKey
	kindRetryable
)

// translate turns a driver error into a domain error; every store passes its
// query errors through it, and nothing else inspects driver codes.
//
//   - sql.ErrNoRows → ENOTFOUND;
//   - unique violation → the error uniqueError gives for the constraint (a
//     taken e-mail address or nickname, say), else ECONFLICT;
//   - foreign-key violation → EINVALID: the stores check what they delete, so
//     a violation that reaches here means the input named a row that does not
//     exist (SQLite cannot tell that case from "still referenced", so all
//     dialects report the same code);
//   - deadlock, serialization failure, lock timeout, SQLITE_BUSY → EUNAVAILABLE,
//     and IsRetryable reports true (RunInTx retries these itself).
//
// The driver error stays the cause (domain.Error.Err), for logs and for
// IsRetryable. Anything else is returned unchanged.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var de *domain.Error
	if errors.As(err, &de) {
		return err // already translated
	}
	if errors.Is(err, sql.ErrNoRows) {
		return &domain.Error{Code: domain.ENOTFOUND, Message: domain.ErrNotFound.Message, Err: err}
	}
	switch classify(err) {
	case kindUnique:
		if name, ok := uniqueViolation(err); ok {
			if de := uniqueError(name); de != nil {
				de.Err = err
				return de
			}
		}
		return &domain.Error{Code: domain.ECONFLICT, Message: "Already exists.", Err: err}
	case kindForeignKey:
		return &domain.Error{Code: domain.EINVALID, Message: "Refers to something that does not exist.", Err: err}
	case kindRetryable:
		return &domain.Error{Code: domain.EUNAVAILABLE, Message: "The database is busy; try again.", Err: err}
	}
	return err
}

// uniqueError returns the error for a violation of the named unique
// constraint when a client can act on it, or nil for a plain conflict. Each
// constraint is listed under its name (PostgreSQL, MySQL) and its column list
// (SQLite, which reports no name).
func uniqueError(name string) *domain.Error {
	switch name {
	case "members_email_key", "members.email":
		return &domain.Error{Code: domain.EEMAILTAKEN, Field: "email", Message: "That e-mail address is already registered."}
	case "members_nickname_key", "members.nickname_key":
		return &domain.Error{Code: domain.ENICKNAMETAKEN, Field: "nickname", Message: "That nickname is taken."}
	case "random_applications_waiting_key", "random_applications.waiting_key":
		return &domain.Error{Code: domain.EALREADYWAITING, Field: "category", Message: "You are already waiting for a match in this category."}
	case "room_participations_pending_key", "room_participations.pending_key":
		return &domain.Error{Code: domain.EREQUESTPENDING, Message: "A request of yours for this room is still being processed."}
	case "room_participants_room_id_member_id_key", "room_participants.room_id, room_participants.member_id":
		return &domain.Error{Code: domain.EALREADYJOINED, Message: "You are already in this room."}
	case "member_identities_provider_subject_key", "member_identities.provider, member_identities.subject":
		return &domain.Error{Code: domain.EIDENTITYTAKEN, Message: "That account is already linked to a member."}
	case "member_identities_member_id_provider_key", "member_identities.member_id, member_identities.provider":
		return &domain.Error{Code: domain.EPROVIDERLINKED, Message: "You have an account of this provider linked already; unlink it first."}
	case "task_reviews_task_id_helper_id_key", "task_reviews.task_reviews_task_id_helper_id_key", "task_reviews.task_id, task_reviews.helper_id":
		return &domain.Error{Code: domain.EALREADYREVIEWED, Message: "You reviewed this helper for this task already."}
	}
	return nil
}

// uniqueViolation reports whether err is a unique violation and names what
// was violated: the constraint's name on PostgreSQL and MySQL/MariaDB, the
// "table.column, ..." list on SQLite. The name is "" when the driver did not
// say.
func uniqueViolation(err error) (constraintOrColumns string, ok bool) {
	if classify(err) != kindUnique {
		return "", false
	}
	var pgErr pgdriver.Error
	if errors.As(err, &pgErr) {
		return pgErr.Field('n'), true // constraint_name
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		// "Duplicate entry 'v' for key 'k'": MariaDB writes the index name,
		// MySQL 8 "table.index". The entry is not escaped and may contain
		// the same words, so the key is found from the end.
		const marker = " for key '"
		i := strings.LastIndex(myErr.Message, marker)
		if i < 0 {
			return "", true
		}
		key := strings.TrimSuffix(myErr.Message[i+len(marker):], "'")
		if j := strings.LastIndexByte(key, '.'); j >= 0 {
			key = key[j+1:]
		}
		return key, true
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		// "UNIQUE constraint failed: members.email (2067)"; the driver
		// appends the code in parentheses.
		const marker = "UNIQUE constraint failed: "
		msg := liteErr.Error()
		i := strings.Index(msg, marker)
		if i < 0 {
			return "", true
		}
		cols := msg[i+len(marker):]
		if j := strings.LastIndex(cols, " ("); j >= 0 {
			cols = cols[:j]
		}
		return cols, true
	}
	return "", true
}

// Retry reasons: why a transaction was run again (RetryReason).
const (
	RetryDeadlock      = "deadlock"
	RetrySerialization = "serialization"
	RetryLockTimeout   = "lock_timeout"
	RetryBusy          = "busy" // SQLite: the database or a table is locked
)

// RetryReasons are every reason RetryReason returns, for metrics that
// show each at zero before it first happens.
var RetryReasons = []string{RetryDeadlock, RetrySerialization, RetryLockTimeout, RetryBusy}

// RetryReason names the transient conflict err is (one of RetryReasons),
// or "" when IsRetryable(err) is false.
func RetryReason(err error) string {
	if !IsRetryable(err) {
		return ""
	}
	var pgErr pgdriver.Error
	if errors.As(err, &pgErr) {
		switch pgErr.Field('C') {
		case "40001":
			return RetrySerialization
		case "40P01":
			return RetryDeadlock
		}
		return RetryLockTimeout
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		if myErr.Number == 1213 {
			return RetryDeadlock
		}
		return RetryLockTimeout
	}
	return RetryBusy
}

// IsRetryable reports whether err (raw or translated) is a transient
// conflict between transactions — a deadlock, a serialization failure, a lock
// wait timeout or a busy SQLite database — after which running the whole
// transaction again can succeed.
func IsRetryable(err error) bool {
	return err != nil && classify(err) == kindRetryable
}

func classify(err error) errKind {
	var pgErr pgdriver.Error
	if errors.As(err, &pgErr) {
		switch pgErr.Field('C') {
		case "23505": // unique_violation
			return kindUnique
		case "23503": // foreign_key_violation
			return kindForeignKey
		case "40001", "40P01", "55P03": // serialization_failure, deadlock_detected, lock_not_available
			return kindRetryable
		}
		return kindOther
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		switch myErr.Number {
		case 1062: // ER_DUP_ENTRY
			return kindUnique
		case 1451, 1452: // ER_ROW_IS_REFERENCED_2, ER_NO_REFERENCED_ROW_2
			return kindForeignKey
		case 1213, 1205: // ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT
			return kindRetryable
		}
		return kindOther
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		code := liteErr.Code()
		switch code {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return kindUnique
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return kindForeignKey
		}
		switch code & 0xff { // the primary code of an extended one
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return kindRetryable
		case sqlite3.SQLITE_CONSTRAINT:
			// Only the primary code came back; the message still names it.
			msg := liteErr.Error()
			switch {
			case strings.Contains(msg, "UNIQUE constraint failed"):
				return kindUnique
			case strings.Contains(msg, "FOREIGN KEY constraint failed"):
				return kindForeignKey
			}
		}
	}
	return kindOther
}
