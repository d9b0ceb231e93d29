// Package domain holds moim's entities, status codes, errors and pure rules.
// It imports nothing of ours and does no I/O.
package domain

import (
	"errors"
	"fmt"
)

// Stable error codes. Clients branch on these, so they are never renamed; the
// HTTP layer maps each to a status in one table.
const (
	ECONFLICT     = "conflict"
	EFORBIDDEN    = "forbidden"
	EINTERNAL     = "internal"
	EINVALID      = "invalid"
	EINVALIDJSON  = "invalid_json"
	ENOTFOUND     = "not_found"
	ETOOLARGE     = "too_large"
	EUNAUTHORIZED = "unauthorized"
	EUNAVAILABLE  = "unavailable"

	// Sign-up and profile conflicts, so a client can point at the field.
	EEMAILTAKEN    = "email_taken"
	ENICKNAMETAKEN = "nickname_taken"

	// EALREADYWAITING: a member applied for random matching in a category
	// where they are already waiting.
	EALREADYWAITING = "already_waiting"

	// Room conflicts: the room no longer takes joins, leaves or changes
	// (cancelled, completed, started); the capacity asked for is below the
	// members already in; the member is already in, not in, or the host
	// (who cannot leave); a request of theirs for the room is still pending.
	EROOMCLOSED         = "room_closed"
	ECAPACITYBELOWCOUNT = "capacity_below_count"
	EALREADYJOINED      = "already_joined"
	ENOTPARTICIPATING   = "not_participating"
	EHOSTCANNOTLEAVE    = "host_cannot_leave"
	EREQUESTPENDING     = "request_pending"
	// EALREADYEVALUATED: a guest evaluates a room's host once.
	EALREADYEVALUATED = "already_evaluated"
	// ENOTOPENYET: attendance or evaluation of a room is asked for before
	// its time.
	ENOTOPENYET = "not_open_yet"

	// Image upload refusals: the bytes are not an accepted image type (415),
	// they disagree with the declared type (400), the image has more pixels
	// than allowed, a decompression bomb (413), it is smaller than its
	// purpose needs (400), or its header is truncated or invalid (400).
	EUNSUPPORTEDTYPE = "unsupported_type"
	ETYPEMISMATCH    = "type_mismatch"
	ETOOMANYPIXELS   = "too_many_pixels"
	EIMAGETOOSMALL   = "image_too_small"
	ECORRUPTIMAGE    = "corrupt_image"

	// Pre-signed upload conflicts (409): the upload URL was used already,
	// a completion came before the object was uploaded, or the image was
	// completed already.
	EALREADYUPLOADED  = "already_uploaded"
	EUPLOADMISSING    = "upload_missing"
	EALREADYCOMPLETED = "already_completed"
	// EUPLOADEXPIRED: an upload completed too long after its URL expired;
	// it is left to be deleted.
	EUPLOADEXPIRED = "upload_expired"

	// Point wallet and mission refusals (409 unless said): a debit the
	// balance cannot cover; a mission that takes no joins or leaves now
	// (not OPEN, or started); one with every seat taken; a private
	// mission's code that does not match (403); a verification while the
	// mission is not ONGOING, outside every window of the day, over the
	// day's or the week's quota, or with an image used before; a payment
	// webhook whose signature does not verify (401).
	EINSUFFICIENTPOINTS = "insufficient_points"
	EMISSIONNOTOPEN     = "mission_not_open"
	EMISSIONFULL        = "mission_full"
	EWRONGCODE          = "wrong_code"
	EMISSIONNOTONGOING  = "mission_not_ongoing"
	EOUTSIDEWINDOW      = "outside_window"
	EQUOTAREACHED       = "quota_reached"
	EIMAGEUSED          = "image_used"
	EINVALIDSIGNATURE   = "invalid_signature"

	// Helper request refusals (409): a task changed, deleted or started
	// while not in STANDBY; matching asked for a task still missing what
	// matching needs (the field names it); matching stopped while the task
	// is not MATCHING.
	ETASKNOTSTANDBY  = "task_not_standby"
	ETASKINCOMPLETE  = "task_incomplete"
	ETASKNOTMATCHING = "task_not_matching"
	// Invitation answers: no invitation to this task (403); one answered
	// already or expired, or a task whose helpers are all found (409).
	ENOTINVITED        = "not_invited"
	EALREADYANSWERED   = "already_answered"
	EINVITATIONEXPIRED = "invitation_expired"
	ETASKFULL          = "task_full"
	// Progress of a matched helper: not a helper of the task (403); DOING
	// while the task still looks for helpers, DOING again, DONE before
	// DOING, DONE again (409).
	ENOTTASKHELPER  = "not_task_helper"
	ETASKNOTMATCHED = "task_not_matched"
	EALREADYSTARTED = "already_started"
	EHELPERNOTDOING = "helper_not_doing"
	EALREADYDONE    = "already_done"
	// Reviews: a helper's review asked for before the task is DONE; a
	// helper reviewed for a task, or a member for a match, already; a match
	// review after domain.ReviewClosesAfter (409).
	ETASKNOTDONE     = "task_not_done"
	EALREADYREVIEWED = "already_reviewed"
	EREVIEWCLOSED    = "review_closed"

	// Social login: the state of a callback is missing, forged, expired or
	// from another browser (400); the member refused at the provider (403);
	// the provider refused the code, used or expired (400); its ID token
	// did not verify, by signature, audience, expiry or nonce (401); it
	// failed or answered what cannot be read (502); its account's e-mail
	// belongs to a member but the provider does not vouch for it, so the
	// member must log in and link it (409); the account is linked to
	// another member, the member has an account of that provider linked
	// already, or unlinking would leave no way to log in (409).
	EOAUTHSTATE      = "invalid_oauth_state"
	EOAUTHDENIED     = "oauth_denied"
	EOAUTHCODE       = "oauth_code_rejected"
	EINVALIDIDTOKEN  = "invalid_id_token"
	EPROVIDERFAILED  = "provider_failed"
	ELINKREQUIRED    = "identity_link_required"
	EIDENTITYTAKEN   = "identity_taken"
	EPROVIDERLINKED  = "provider_already_linked"
	ELASTLOGINMETHOD = "last_login_method"

	// Access and refresh token failures, kept apart so a client knows
	// whether refreshing can help (expired) or it must log in again.
	ETOKENEXPIRED = "token_expired"
	ETOKENREVOKED = "token_revoked"
	EINVALIDTOKEN = "invalid_token"

	// One-time codes and reset tokens (account verification): a wrong
	// code (400, the attempt counts); none pending, or expired (400: ask
	// for a new one); already used (409); its attempts spent (429: ask for
	// a new one); too many sends in the window (429); the address or
	// number is verified already (409); a feature that needs a verified
	// e-mail address (403).
	ECODEWRONG       = "code_wrong"
	ECODEEXPIRED     = "code_expired"
	ECODEUSED        = "code_used"
	ETOOMANYATTEMPTS = "too_many_attempts"
	ESENDLIMIT       = "send_limit"
	EALREADYVERIFIED = "already_verified"
	EEMAILUNVERIFIED = "email_unverified"
)

// Error is an error a client may see: a stable code and a message meant for
// people. Anything that is not an *Error is reported as "internal" and its
// text is logged, never shown.
type Error struct {
	Code    string
	Message string
	// Field names the offending input field, when there is one.
	Field string
	// Err is the cause, kept for logs and errors.Is; never shown to clients.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap exposes the cause to errors.Is and errors.As.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an *Error about one input field.
func FieldErrorf(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, "" for nil and
// EINTERNAL for anything else.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of err. Errors that are not an
// *Error get a generic text so internals never leak.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}

// Sentinels the stores return (wrapped in an *Error with a specific message).
var (
	// ErrNotFound reports a row that does not exist (or is not the caller's).
	ErrNotFound = &Error{Code: ENOTFOUND, Message: "Not found."}
	// ErrConflict reports a unique-key violation or a lost optimistic update.
	ErrConflict = &Error{Code: ECONFLICT, Message: "Conflict."}
)
