package domain

import (
	"fmt"
	"strings"
	"time"
)

// NotificationType is what a notification is about. Stored as a small
// integer, shown by name.
type NotificationType int

// The notification types (DESIGN.md "Notifications"). The numbers are
// stored: never renumber, only append.
const (
	NotifyParticipationOnMyRoom NotificationType = iota + 1
	NotifyParticipationCancelled
	NotifyJoinAccepted
	NotifyJoinRejectedFull
	NotifyMatchConfirmed
	NotifyNoMatchFound
	NotifyReplyOnMyComment
	NotifyCommentOnMyRoom
	NotifyRoomUpdated
	NotifyRoomCancelled
	NotifyRunDDay
	NotifyRunStartsSoon
	NotifyRunEnded
	NotifyMissionStarted
	NotifyMissionClosed
	NotifyTaskMatchingStarted
	NotifyTaskInvitation
	NotifyTaskMatched
	NotifyTaskDone
	NotifyMissionCancelled
	NotifyMissionVerifyReminder
	NotifyTaskShortOfHelpers
)

// Channel is a way a notification reaches a member besides the in-app list,
// which every notification is on.
type Channel int

// The delivery channels. Stored numbers.
const (
	ChannelMail Channel = iota + 1
	ChannelSMS
	ChannelSlack
)

// notificationTypes holds each type's wire name and default channels.
var notificationTypes = map[NotificationType]struct {
	name     string
	channels []Channel
}{
	NotifyParticipationOnMyRoom:  {"PARTICIPATION_ON_MY_ROOM", nil},
	NotifyParticipationCancelled: {"PARTICIPATION_CANCELLED", nil},
	NotifyJoinAccepted:           {"JOIN_ACCEPTED", []Channel{ChannelMail}},
	NotifyJoinRejectedFull:       {"JOIN_REJECTED_FULL", nil},
	// One Slack group DM per match (42Partner), plus a mail to each member.
	NotifyMatchConfirmed:      {"MATCH_CONFIRMED", []Channel{ChannelMail, ChannelSlack}},
	NotifyNoMatchFound:        {"NO_MATCH_FOUND", []Channel{ChannelMail}},
	NotifyReplyOnMyComment:    {"REPLY_ON_MY_COMMENT", nil},
	NotifyCommentOnMyRoom:     {"COMMENT_ON_MY_ROOM", nil},
	NotifyRoomUpdated:         {"ROOM_UPDATED", nil},
	NotifyRoomCancelled:       {"ROOM_CANCELLED", []Channel{ChannelMail, ChannelSMS}},
	NotifyRunDDay:             {"RUN_DDAY", []Channel{ChannelSMS}},
	NotifyRunStartsSoon:       {"RUN_STARTS_SOON", []Channel{ChannelSMS}},
	NotifyRunEnded:            {"RUN_ENDED", []Channel{ChannelSMS}},
	NotifyMissionStarted:      {"MISSION_STARTED", []Channel{ChannelMail}},
	NotifyMissionClosed:       {"MISSION_CLOSED", []Channel{ChannelMail}},
	NotifyTaskMatchingStarted: {"TASK_MATCHING_STARTED", []Channel{ChannelMail}},
	NotifyTaskInvitation:      {"TASK_INVITATION", []Channel{ChannelMail}},
	NotifyTaskMatched:         {"TASK_MATCHED", []Channel{ChannelMail}},
	NotifyTaskDone:            {"TASK_DONE", []Channel{ChannelMail}},
	// Amount is the refunded stake.
	NotifyMissionCancelled: {"MISSION_CANCELLED", []Channel{ChannelMail}},
	// In-app only: a nudge every window would be mail spam.
	NotifyMissionVerifyReminder: {"MISSION_VERIFY_REMINDER", nil},
	// To the customer, once per matching: every qualified helper was
	// invited and the task is still short; it keeps waiting for new ones.
	NotifyTaskShortOfHelpers: {"TASK_SHORT_OF_HELPERS", []Channel{ChannelMail}},
}

// NotificationTypes returns every type, in stored order.
func NotificationTypes() []NotificationType {
	out := make([]NotificationType, 0, len(notificationTypes))
	for t := NotifyParticipationOnMyRoom; t.Valid(); t++ {
		out = append(out, t)
	}
	return out
}

// Valid reports whether t is a known type.
func (t NotificationType) Valid() bool { _, ok := notificationTypes[t]; return ok }

// String returns the type's wire name.
func (t NotificationType) String() string {
	if d, ok := notificationTypes[t]; ok {
		return d.name
	}
	return fmt.Sprintf("NotificationType(%d)", int(t))
}

// MarshalText writes the wire name.
func (t NotificationType) MarshalText() ([]byte, error) {
	if !t.Valid() {
		return nil, fmt.Errorf("invalid notification type %d", int(t))
	}
	return []byte(t.String()), nil
}

// ParseNotificationType returns the type with the given wire name.
func ParseNotificationType(name string) (NotificationType, error) {
	for t, d := range notificationTypes {
		if d.name == name {
			return t, nil
		}
	}
	return 0, FieldErrorf(EINVALID, "type", "Unknown notification type %q.", name)
}

// UnmarshalText reads a wire name.
func (t *NotificationType) UnmarshalText(b []byte) error {
	v, err := ParseNotificationType(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// DefaultChannels are the channels a type goes to when the member allows.
func (t NotificationType) DefaultChannels() []Channel {
	return append([]Channel(nil), notificationTypes[t].channels...)
}

// String returns the channel's wire name.
func (c Channel) String() string {
	switch c {
	case ChannelMail:
		return "MAIL"
	case ChannelSMS:
		return "SMS"
	case ChannelSlack:
		return "SLACK"
	}
	return fmt.Sprintf("Channel(%d)", int(c))
}

// MarshalText writes the wire name.
func (c Channel) MarshalText() ([]byte, error) {
	if c < ChannelMail || c > ChannelSlack {
		return nil, fmt.Errorf("invalid channel %d", int(c))
	}
	return []byte(c.String()), nil
}

// Reaches reports whether m can and wants to be reached on c: mail needs
// the mail preference; SMS a verified phone, consent and the preference
// (a number nobody proved to hold may be a stranger's, and SMS costs
// money); Slack a Slack e-mail and the preference.
func (m *Member) Reaches(c Channel) bool {
	switch c {
	case ChannelMail:
		return m.Prefs.Mail && m.Email != ""
	case ChannelSMS:
		return m.Prefs.SMS && m.SMSConsent && m.Phone != "" && m.PhoneVerifiedAt != nil
	case ChannelSlack:
		return m.Prefs.Slack && m.SlackEmail != ""
	}
	return false
}

// ChannelsFor returns the channels of type t that reach m.
func ChannelsFor(t NotificationType, m *Member) []Channel {
	var out []Channel
	for _, c := range notificationTypes[t].channels {
		if m.Reaches(c) {
			out = append(out, c)
		}
	}
	return out
}

// NotificationArgs is what a notification refers to. Every field is
// optional; texts show what is there.
type NotificationArgs struct {
	ActorID   string    `json:"actor_id,omitempty"` // member who caused it
	Actor     string    `json:"actor,omitempty"`    // their nickname then
	RoomID    string    `json:"room_id,omitempty"`
	MatchID   string    `json:"match_id,omitempty"`
	CommentID string    `json:"comment_id,omitempty"`
	MissionID string    `json:"mission_id,omitempty"`
	TaskID    string    `json:"task_id,omitempty"`
	Title     string    `json:"title,omitempty"`
	Category  string    `json:"category,omitempty"`
	Place     string    `json:"place,omitempty"`
	StartsAt  time.Time `json:"starts_at,omitzero"`
	Members   []string  `json:"members,omitempty"` // nicknames of a match
	Amount    int64     `json:"amount,omitempty"`
	Excerpt   string    `json:"excerpt,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Link      string    `json:"link,omitempty"` // path in the client app
	// RateBP is a mission member's rate at the close, in basis points
	// (10,000 = 100 %); a pointer, so a rate of 0 is still shown.
	RateBP *int `json:"rate_bp,omitempty"`
}

// notificationNeeds lists, per type, the arguments its texts cannot do
// without: the room or task a member is told about by its title, the time
// of a run reminder, the people of a match. Every other argument is shown
// when given. A type not listed needs nothing.
var notificationNeeds = map[NotificationType][]string{
	NotifyParticipationOnMyRoom:  {"title"},
	NotifyParticipationCancelled: {"title"},
	NotifyJoinAccepted:           {"title"},
	NotifyJoinRejectedFull:       {"title"},
	NotifyMatchConfirmed:         {"members"},
	NotifyNoMatchFound:           {"category"},
	NotifyReplyOnMyComment:       {"excerpt"},
	NotifyCommentOnMyRoom:        {"excerpt"},
	NotifyRoomUpdated:            {"title"},
	NotifyRoomCancelled:          {"title"},
	NotifyRunDDay:                {"title", "starts_at"},
	NotifyRunStartsSoon:          {"title", "starts_at"},
	NotifyRunEnded:               {"title"},
	NotifyMissionStarted:         {"title"},
	NotifyMissionClosed:          {"title"},
	NotifyTaskMatchingStarted:    {"title"},
	NotifyTaskInvitation:         {"title"},
	NotifyTaskMatched:            {"title"},
	NotifyTaskDone:               {"title"},
	NotifyMissionCancelled:       {"title"},
	NotifyMissionVerifyReminder:  {"title"},
	NotifyTaskShortOfHelpers:     {"title"},
}

// CheckFor reports the first argument type t's texts need that a lacks, as
// EINVALID naming the field "args.<name>". Producers in the code fill what
// they need; this guards arguments written by hand (an operator's test
// notification).
func (a *NotificationArgs) CheckFor(t NotificationType) error {
	for _, name := range notificationNeeds[t] {
		var has bool
		switch name {
		case "title":
			has = strings.TrimSpace(a.Title) != ""
		case "category":
			has = strings.TrimSpace(a.Category) != ""
		case "excerpt":
			has = strings.TrimSpace(a.Excerpt) != ""
		case "starts_at":
			has = !a.StartsAt.IsZero()
		case "members":
			has = len(a.Members) > 0
		}
		if !has {
			return FieldErrorf(EINVALID, "args."+name, "A %s notification needs \"args.%s\".", t, name)
		}
	}
	return nil
}

// Notification is one entry of a member's in-app list.
type Notification struct {
	ID        string // opaque public id
	MemberID  string // public id of the recipient
	Type      NotificationType
	Args      NotificationArgs
	ReadAt    *time.Time
	CreatedAt time.Time
}

// DeliveryStatus is where a delivery stands.
type DeliveryStatus int

// The delivery states. A delivery is claimed (SENDING) before the provider
// is called, so a crash in between leaves it SENDING; such a delivery is
// later marked UNKNOWN for a person to look at, never sent again blindly.
const (
	DeliveryPending DeliveryStatus = iota + 1 // waiting for its first or next attempt
	DeliverySending                           // claimed by a worker calling the provider
	DeliverySent                              // the provider accepted it
	DeliveryFailed                            // given up: permanent error or out of retries
	DeliveryUnknown                           // found claimed after a crash: maybe sent
)

func (s DeliveryStatus) String() string {
	switch s {
	case DeliveryPending:
		return "PENDING"
	case DeliverySending:
		return "SENDING"
	case DeliverySent:
		return "SENT"
	case DeliveryFailed:
		return "FAILED"
	case DeliveryUnknown:
		return "UNKNOWN"
	}
	return fmt.Sprintf("DeliveryStatus(%d)", int(s))
}

// MarshalText writes the wire name.
func (s DeliveryStatus) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Delivery is one notification sent on one channel. For a group message
// (one Slack DM per match) the delivery hangs on one member's notification
// and names the whole group.
type Delivery struct {
	ID             int64
	NotificationID string // public id
	Channel        Channel
	Status         DeliveryStatus
	Attempts       int
	LastError      string
	ProviderID     string
	SMSType        int      // 0 none, 1 SMS, 2 LMS (ErunJrun's send log)
	Recipients     []string // member ids of a group message; empty for one member
	ClaimedAt      *time.Time
	SentAt         *time.Time
	CreatedAt      time.Time
}
