package domain

import (
	"strings"
	"time"
	"unicode/utf8"
)

// CommentMax is the longest comment, in characters (42Partner's opinion).
const CommentMax = 1000

// Comment is a member's comment on a room, or a reply to one: replies go
// one level deep.
type Comment struct {
	ID        string
	RoomID    string
	AuthorID  string
	Author    string // the author's nickname
	ParentID  string // "" for a comment on the room itself
	Body      string // "" once deleted
	CreatedAt time.Time
	UpdatedAt time.Time
	DeletedAt time.Time
	Replies   []Comment // a top-level comment's replies, oldest first
}

// Deleted reports whether the author deleted the comment.
func (c *Comment) Deleted() bool { return !c.DeletedAt.IsZero() }

// NormalizeCommentBody trims a comment and checks it is 1–1,000 characters
// of text (line breaks and tabs allowed, other control characters not).
func NormalizeCommentBody(s string) (string, error) {
	return normalizeRoomText("body", s, CommentMax, true)
}

// Excerpt returns the first n characters of s on one line, for a
// notification.
func Excerpt(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}
