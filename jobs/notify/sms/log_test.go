package sms_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/moim/moim/jobs/jobstest"
	"github.com/moim/moim/jobs/notify"
	"github.com/moim/moim/jobs/notify/sms"
)

func TestLogSender(t *testing.T) {
	t.Parallel()
	rdb := jobstest.RedisOpt(t).MakeRedisClient().(redis.UniversalClient)
	t.Cleanup(func() { _ = rdb.Close() })
	box := notify.NewMailbox(rdb, 2)
	l := &sms.LogSender{Logger: slog.New(slog.DiscardHandler), Mailbox: box, NowFunc: time.Now}
	ctx := context.Background()
	short, err := l.SendSMS(ctx, notify.SMS{To: "+821012345678", Text: "곧 러닝이 시작돼요"})
	if err != nil || short.Type != notify.SMSShort || short.ProviderID == "" {
		t.Fatalf("short: %+v, %v", short, err)
	}
	long, err := l.SendSMS(ctx, notify.SMS{To: "+821012345678", Subject: "안내", Text: strings.Repeat("가", 60) + "😀"})
	if err != nil || long.Type != notify.SMSLong {
		t.Fatalf("long: %+v, %v", long, err)
	}
	if _, err := l.SendSMS(ctx, notify.SMS{To: "010-1234", Text: "x"}); !notify.IsPermanent(err) {
		t.Errorf("bad number: err = %v, want permanent", err)
	}
	got, err := box.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != long.ProviderID || got[1].ID != short.ProviderID {
		t.Fatalf("mailbox = %+v, want the two messages newest first", got)
	}
	if strings.Contains(got[0].Text, "😀") || got[0].Subject != "안내" || got[0].SMSType != notify.SMSLong {
		t.Errorf("kept %+v, want the prepared LMS", got[0])
	}
	// The mailbox keeps only its size: a third message pushes the oldest out.
	third, _ := l.SendSMS(ctx, notify.SMS{To: "+821012345678", Text: "셋"})
	if got, _ := box.List(ctx); len(got) != 2 || got[0].ID != third.ProviderID || got[1].ID != long.ProviderID {
		t.Errorf("after overflow: %+v", got)
	}
}
