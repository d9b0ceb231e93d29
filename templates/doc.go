// Package templates holds every user-facing notification text: the in-app
// title and body, the mail subject with its HTML and plain-text bodies, the
// SMS (and LMS subject), and the Slack message, for each notification type.
//
// The texts are embedded and parsed once by New, which also renders each of
// them on sample data, so a broken text stops the process at start rather
// than failing the first send (miniflux's template engine does the same).
// Sending and looking data up belong to the callers: Render only turns a
// Data into a Message.
//
// Layout of the embedded files:
//
//	text/base.tmpl   shared text/template blocks (greeting, details, the
//	                 plain-text mail frame, the default SMS and Slack shape)
//	text/<type>.tmpl one file per type, lower-case wire name, defining
//	                 inapp.title, inapp.body, mail.subject, mail.body,
//	                 link.label, sms.subject, sms and slack
//	html/layout.html the html/template mail frame and its shared blocks
//	html/<type>.html one file per type defining the mail's "content"
//
// Mail HTML goes through html/template so member-supplied text (nicknames,
// titles, comments) is escaped there; every other channel is plain text and
// shows it verbatim. The texts are Korean and written in 해요체.
//
// The package imports nothing of moim's own: jobs maps a notification's
// arguments into a Data.
package templates
