package jobs

import (
	"github.com/moim/moim/domain"
)

// TaskArgs are the notification arguments of a task: its id, title, a
// short excerpt of its details and its page in the app.
func TaskArgs(t *domain.Task) domain.NotificationArgs {
	return domain.NotificationArgs{TaskID: t.ID, Title: t.Title, Excerpt: excerpt(t.Details, taskExcerptRunes),
		Link: "/tasks/" + t.ID}
}

// taskExcerptRunes bounds the details an invitation mail quotes.
const taskExcerptRunes = 200

// excerpt is s cut to at most n runes, with an ellipsis when cut.
func excerpt(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
