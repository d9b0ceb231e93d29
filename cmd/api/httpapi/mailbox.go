package httpapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs/notify"
)

// registerMailboxRoutes mounts what the local log senders kept, for an
// admin to read what would have been sent.
func (s *server) registerMailboxRoutes(r chi.Router) {
	r.With(s.requireAdmin).Get("/admin/mailbox", s.handleMailbox)
}

type mailboxResponse struct {
	Messages []notify.MailboxEntry `json:"messages"`
}

// handleMailbox answers the kept mail and SMS, newest first. Only a process
// that sends through the log providers has a mailbox.
func (s *server) handleMailbox(w http.ResponseWriter, r *http.Request) {
	if s.mailbox == nil {
		s.writeError(w, r, domain.Errorf(domain.ENOTFOUND, "No mailbox: this process sends through real providers, or does not send at all."))
		return
	}
	s.writeJSON(w, r, http.StatusOK, mailboxResponse{Messages: s.mailbox.List()})
}
