package domain_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/moim/moim/domain"
)

func TestNotificationTypes(t *testing.T) {
	t.Parallel()
	types := domain.NotificationTypes()
	if len(types) != 22 {
		t.Fatalf("%d types, want 22", len(types))
	}
	names := map[string]bool{}
	for i, typ := range types {
		if int(typ) != i+1 {
			t.Errorf("type %v has number %d, want %d: stored numbers never change", typ, int(typ), i+1)
		}
		b, err := typ.MarshalText()
		if err != nil || names[string(b)] {
			t.Errorf("type %d: name %q, err %v (names must be unique)", int(typ), b, err)
		}
		names[string(b)] = true
	}
	if _, err := domain.NotificationType(0).MarshalText(); err == nil {
		t.Error("type 0 marshals")
	}
	b, _ := json.Marshal(struct{ T domain.NotificationType }{domain.NotifyMatchConfirmed})
	if string(b) != `{"T":"MATCH_CONFIRMED"}` {
		t.Errorf("json = %s", b)
	}
}

func TestChannelsFor(t *testing.T) {
	t.Parallel()
	verified := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	all := domain.Member{Email: "a@example.com", Phone: "+821012345678", SMSConsent: true, PhoneVerifiedAt: &verified,
		SlackEmail: "a@slack.example", Prefs: domain.DefaultNotificationPrefs()}
	tests := []struct {
		name   string
		typ    domain.NotificationType
		adjust func(*domain.Member)
		want   []domain.Channel
	}{
		{"match: mail and slack", domain.NotifyMatchConfirmed, nil, []domain.Channel{domain.ChannelMail, domain.ChannelSlack}},
		{"match without slack account", domain.NotifyMatchConfirmed, func(m *domain.Member) { m.SlackEmail = "" }, []domain.Channel{domain.ChannelMail}},
		{"match with slack off", domain.NotifyMatchConfirmed, func(m *domain.Member) { m.Prefs.Slack = false }, []domain.Channel{domain.ChannelMail}},
		{"mail off", domain.NotifyTaskDone, func(m *domain.Member) { m.Prefs.Mail = false }, nil},
		{"run reminder: sms", domain.NotifyRunStartsSoon, nil, []domain.Channel{domain.ChannelSMS}},
		{"sms without consent", domain.NotifyRunStartsSoon, func(m *domain.Member) { m.SMSConsent = false }, nil},
		{"sms without phone", domain.NotifyRunDDay, func(m *domain.Member) { m.Phone = "" }, nil},
		{"sms to an unverified number", domain.NotifyRunDDay, func(m *domain.Member) { m.PhoneVerifiedAt = nil }, nil},
		{"sms preference off", domain.NotifyRunEnded, func(m *domain.Member) { m.Prefs.SMS = false }, nil},
		{"in-app only", domain.NotifyCommentOnMyRoom, nil, nil},
		{"room cancelled: mail and sms", domain.NotifyRoomCancelled, nil, []domain.Channel{domain.ChannelMail, domain.ChannelSMS}},
	}
	for _, tt := range tests {
		m := all
		if tt.adjust != nil {
			tt.adjust(&m)
		}
		if got := domain.ChannelsFor(tt.typ, &m); !slices.Equal(got, tt.want) {
			t.Errorf("%s: channels %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestNotificationArgsCheckFor(t *testing.T) {
	t.Parallel()
	full := domain.NotificationArgs{Title: "Han river", Category: "RUN", Excerpt: "me too",
		StartsAt: time.Date(2026, 5, 2, 19, 0, 0, 0, time.UTC), Members: []string{"mina"}}
	for _, typ := range domain.NotificationTypes() {
		if err := full.CheckFor(typ); err != nil {
			t.Errorf("%s with every argument: %v", typ, err)
		}
	}
	for _, tt := range []struct {
		typ       domain.NotificationType
		args      domain.NotificationArgs
		wantField string
	}{
		{domain.NotifyRunDDay, domain.NotificationArgs{Title: "Han river"}, "args.starts_at"},
		{domain.NotifyRunStartsSoon, domain.NotificationArgs{StartsAt: full.StartsAt}, "args.title"},
		{domain.NotifyMatchConfirmed, domain.NotificationArgs{Title: "x"}, "args.members"},
		{domain.NotifyNoMatchFound, domain.NotificationArgs{Category: " "}, "args.category"},
		{domain.NotifyCommentOnMyRoom, domain.NotificationArgs{}, "args.excerpt"},
		{domain.NotifyTaskDone, domain.NotificationArgs{Title: "\t"}, "args.title"},
	} {
		err := tt.args.CheckFor(tt.typ)
		var de *domain.Error
		if !errors.As(err, &de) || de.Code != domain.EINVALID || de.Field != tt.wantField {
			t.Errorf("%s with %+v: %v, want invalid %s", tt.typ, tt.args, err, tt.wantField)
		}
	}
}
