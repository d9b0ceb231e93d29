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
//   - unique violation → ECONFLICT;
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
		return &domain.Error{Code: domain.ECONFLICT, Message: "Already exists.", Err: err}
	case kindForeignKey:
		return &domain.Error{Code: domain.EINVALID, Message: "Refers to something that does not exist.", Err: err}
	case kindRetryable:
		return &domain.Error{Code: domain.EUNAVAILABLE, Message: "The database is busy; try again.", Err: err}
	}
	return err
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
