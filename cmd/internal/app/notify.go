package app

import (
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/moim/moim/config"
	"github.com/moim/moim/jobs/notify"
	notifymail "github.com/moim/moim/jobs/notify/mail"
	"github.com/moim/moim/jobs/notify/slack"
	"github.com/moim/moim/jobs/notify/sms"
)

// senders are the worker's delivery channels.
type senders struct {
	mail  notify.MailSender
	sms   notify.SMSSender
	slack notify.SlackSender // nil when Slack is not configured
}

// newSenders builds the channels the configuration names; the log
// providers keep their messages in mailbox. A channel set to none is left
// nil: the worker then fails its deliveries at once as not configured.
func newSenders(cfg *config.Config, logger *slog.Logger, rdb redis.UniversalClient, mailbox *notify.Mailbox) (senders, error) {
	var out senders
	switch cfg.Mail.Provider {
	case config.ProviderSMTP:
		s, err := notifymail.New(notifymail.Config{
			Host:     cfg.Mail.Host,
			Port:     cfg.Mail.Port,
			TLS:      notifymail.TLSPolicy(cfg.Mail.TLS),
			Username: cfg.Mail.Username,
			Password: cfg.Mail.Password,
			From:     cfg.Mail.From,
			Timeout:  cfg.Mail.Timeout,
		})
		if err != nil {
			return out, fmt.Errorf("mail: %w", err)
		}
		out.mail = s
	case config.ProviderNone:
	default:
		out.mail = &notify.LogMail{Logger: logger, Mailbox: mailbox, NowFunc: time.Now}
	}
	switch cfg.SMS.Provider {
	case config.ProviderSENS:
		c, err := sms.New(sms.Config{
			BaseURL:   cfg.SMS.BaseURL,
			ServiceID: cfg.SMS.ServiceID,
			AccessKey: cfg.SMS.AccessKey,
			SecretKey: cfg.SMS.SecretKey,
			From:      cfg.SMS.From,
			Timeout:   cfg.SMS.Timeout,
		})
		if err != nil {
			return out, fmt.Errorf("sms: %w", err)
		}
		out.sms = c
	case config.ProviderNone:
	default:
		out.sms = &sms.LogSender{Logger: logger, Mailbox: mailbox, NowFunc: time.Now}
	}
	if cfg.Slack.Token != "" {
		c, err := slack.New(slack.Config{
			Token:   cfg.Slack.Token,
			BaseURL: cfg.Slack.BaseURL,
			Timeout: cfg.Slack.Timeout,
			Redis:   rdb,
		})
		if err != nil {
			return out, fmt.Errorf("slack: %w", err)
		}
		out.slack = c
	}
	return out, nil
}

// messageIDHost is the domain of the sender address, for Message-IDs.
func messageIDHost(from string) string {
	if a, err := mail.ParseAddress(from); err == nil {
		if _, host, ok := strings.Cut(a.Address, "@"); ok && host != "" {
			return host
		}
	}
	return "moim.localhost"
}
