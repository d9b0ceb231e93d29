// Command loadnotify measures notification fan-out end to end: it runs the
// outbox relay and a worker in process (on MOIM_DATABASE_URL and
// MOIM_REDIS_URL when set, else a temporary SQLite file and the in-memory
// Redis) with the real SMTP sender pointed at an SMTP sink in the same
// process, records -n notifications (in-app + mail) through the producer,
// and prints deliveries per second from the first commit to the last mail
// accepted, and the number of mails the sink received, which must equal
// the deliveries.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/uptrace/bun"

	"github.com/moim/moim/cmd/internal/loadenv"
	"github.com/moim/moim/domain"
	"github.com/moim/moim/jobs"
	"github.com/moim/moim/jobs/notify/mail"
	"github.com/moim/moim/templates"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadnotify:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("n", 10000, "notifications to send (each in-app + one mail)")
	members := flag.Int("members", 100, "members they are spread over")
	concurrency := flag.Int("c", 20, "worker concurrency")
	batch := flag.Int("batch", 100, "notifications recorded per transaction")
	flag.Parse()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

	sink, err := startSink()
	if err != nil {
		return err
	}
	defer sink.srv.Close()

	env, err := loadenv.Open(ctx, "loadnotify")
	if err != nil {
		return err
	}
	defer env.Close()
	bdb, redisOpt, rdb := env.DB, env.RedisOpt, env.Redis

	relay, err := jobs.NewRelay(bdb, jobs.RelayParams{Redis: redisOpt, Logger: logger})
	if err != nil {
		return err
	}
	defer relay.Close()
	go relay.Run(ctx)

	host, port, _ := net.SplitHostPort(sink.addr)
	var p int
	fmt.Sscan(port, &p)
	sender, err := mail.New(mail.Config{Host: host, Port: p, TLS: mail.TLSNone, From: "moim <no-reply@moim.localhost>", HeloName: "loadnotify"})
	if err != nil {
		return err
	}
	renderer, err := templates.New(time.UTC)
	if err != nil {
		return err
	}
	mux, err := jobs.NewMux(jobs.Deps{DB: bdb, Logger: logger, Relay: relay, Publisher: jobs.NewPublisher(rdb),
		Renderer: renderer, Mail: sender})
	if err != nil {
		return err
	}
	worker := jobs.NewServer(jobs.ServerParams{Redis: redisOpt, Concurrency: *concurrency,
		Queues: jobs.DefaultQueues(), TaskCheckInterval: 10 * time.Millisecond, Logger: logger})
	if err := worker.Start(mux); err != nil {
		return err
	}
	defer worker.Shutdown()

	ids, err := loadenv.Members(ctx, bdb, *members, "load")
	if err != nil {
		return err
	}
	start := time.Now()
	for i := 0; i < *n; i += *batch {
		err := relay.RunInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			for j := i; j < min(i+*batch, *n); j++ {
				args := domain.NotificationArgs{Title: fmt.Sprintf("업무 %d", j), Link: "/tasks/" + fmt.Sprint(j)}
				if _, err := jobs.Notify(ctx, tx, domain.NotifyTaskDone, args, time.Now(), ids[j%len(ids)]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	recorded := time.Since(start)
	deadline := time.Now().Add(10 * time.Minute)
	var sent, failed int
	for {
		sent, err = countDeliveries(ctx, bdb, domain.DeliverySent)
		if err != nil {
			return err
		}
		failed, err = countDeliveries(ctx, bdb, domain.DeliveryFailed)
		if err != nil {
			return err
		}
		if sent+failed >= *n {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d deliveries done after 10 minutes", sent+failed, *n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(start)
	fmt.Printf("notifications=%d database=%s worker concurrency=%d recorded in %v; all mails sent in %v: %.0f deliveries/s\n",
		*n, env.Backend, *concurrency, recorded.Round(time.Millisecond), elapsed.Round(time.Millisecond),
		float64(sent)/elapsed.Seconds())
	fmt.Printf("deliveries sent=%d failed=%d; mails the SMTP sink received=%d (must equal sent)\n", sent, failed, sink.received.Load())
	if int(sink.received.Load()) != sent {
		return errors.New("provider calls differ from deliveries")
	}
	return nil
}

func countDeliveries(ctx context.Context, bdb *bun.DB, s domain.DeliveryStatus) (int, error) {
	n, err := bdb.NewSelect().Table("deliveries").Where("status = ?", int(s)).Count(ctx)
	return int(n), err
}

// sink is an SMTP server that accepts and counts every message.
type sink struct {
	srv      *smtp.Server
	addr     string
	received atomic.Int64
}

func startSink() (*sink, error) {
	s := &sink{}
	srv := smtp.NewServer(backend{s})
	srv.Domain = "sink.localhost"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.srv, s.addr = srv, ln.Addr().String()
	go srv.Serve(ln)
	return s, nil
}

type backend struct{ s *sink }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: b.s}, nil }

type session struct{ s *sink }

func (*session) Mail(string, *smtp.MailOptions) error { return nil }
func (*session) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *session) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.s.received.Add(1)
	return nil
}
func (*session) Reset()        {}
func (*session) Logout() error { return nil }
