// Package templates will hold every user-facing text (mail, SMS, Slack,
// in-app), embedded and parsed once at startup so a broken template stops the
// process rather than the first send. It imports nothing of ours. The
// notification channels add the texts and the renderer with them.
package templates
