//go:build unix

package httpapi_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moim/moim/cmd/api/httpapi"
	"github.com/moim/moim/domain"
)

// browserWait bounds each step of the browser test: a reconnect takes the
// stream's retry (3 s) plus Chromium's start.
const browserWait = 30 * time.Second

// browserPage opens the live stream the way a web client does: a ticket
// in the URL, EventSource with credentials (the page and the API are
// different origins), and nothing else: reconnecting is EventSource's own.
// It reports what it sees to /report on its own origin.
const browserPage = `<!doctype html>
<meta charset="utf-8">
<title>moim live events</title>
<script>
const q = new URLSearchParams(location.search);
let seq = 0, sent = Promise.resolve();
function report(o) { // one at a time, so they arrive in order
  o.seq = seq++;
  const body = JSON.stringify(o);
  sent = sent.then(() => fetch("/report", {method: "POST", body: body})).catch(() => {});
}
const es = new EventSource(q.get("api") + "/v1/events?ticket=" + encodeURIComponent(q.get("ticket")), {withCredentials: true});
es.onopen = () => report({kind: "open"});
es.onerror = () => report({kind: "error", state: es.readyState});
for (const name of ["connected", "notification", "reset"]) {
  es.addEventListener(name, e => report({kind: name, id: e.lastEventId, data: e.data}));
}
</script>`

// pageReport is one thing the page saw.
type pageReport struct {
	Seq   int    `json:"seq"`
	Kind  string `json:"kind"`
	ID    string `json:"id"`
	Data  string `json:"data"`
	State int    `json:"state"`
}

// dropProxy forwards TCP connections to the API. drop cuts every open
// connection, as a lost network or a restarted load balancer does; while
// held, new connections wait, so the test decides when a reconnect gets
// through.
type dropProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	gate  chan struct{} // closed while connections may pass
}

func newDropProxy(t *testing.T, target string) *dropProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{ln: ln, target: target, conns: make(map[net.Conn]struct{}), gate: make(chan struct{})}
	close(p.gate)
	t.Cleanup(func() {
		_ = ln.Close()
		p.release()
		p.drop()
	})
	go p.serve()
	return p
}

func (p *dropProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.forward(c)
	}
}

func (p *dropProxy) forward(c net.Conn) {
	p.track(c)
	p.mu.Lock()
	gate := p.gate
	p.mu.Unlock()
	<-gate
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.track(up)
	go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
	_, _ = io.Copy(c, up)
	_ = c.Close()
}

func (p *dropProxy) track(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns[c] = struct{}{}
}

// drop closes every connection open through the proxy.
func (p *dropProxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

// hold makes new connections wait until release.
func (p *dropProxy) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gate = make(chan struct{})
}

func (p *dropProxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
}

// findChromium returns Debian's chromium on PATH, or skips the test.
func findChromium(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not on PATH (Debian package chromium): the browser reconnect test does not run")
	}
	return path
}

// startChromium runs headless Chromium on url until the test ends.
func startChromium(t *testing.T, bin, url string) {
	t.Helper()
	profile, err := os.MkdirTemp("", "moim-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
		"--user-data-dir="+profile, url)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its helpers end with it
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		_ = os.RemoveAll(profile)
	})
}

// TestBrowserReconnect: in a real browser, a page opens the live stream
// with a ticket; the connection drops; EventSource reconnects by itself to
// the same URL (its ticket spent, the stream cookie presented) with
// Last-Event-ID, and receives the notification it missed meanwhile.
func TestBrowserReconnect(t *testing.T) {
	t.Parallel()
	bin := findChromium(t)

	reports := make(chan pageReport, 256)
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/page":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = io.WriteString(w, browserPage)
		case "/report":
			var rep pageReport
			if err := json.NewDecoder(r.Body).Decode(&rep); err == nil {
				reports <- rep
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(page.Close)
	// Both on localhost: a secure context, so the Secure cookie is kept
	// over plain HTTP; two ports, so two origins and CORS applies.
	pageOrigin := "http://localhost:" + port(t, page.URL)

	bdb, e, s, mina := newStreamFixture(t, func(d *httpapi.Deps) { d.CORSOrigins = []string{pageOrigin} })
	proxy := newDropProxy(t, hostPort(t, s.url))
	api := "http://localhost:" + port(t, "http://"+proxy.ln.Addr().String())
	ticket := newTicket(t, s, mina.token)

	startChromium(t, bin, pageOrigin+"/page?"+url.Values{"api": {api}, "ticket": {ticket}}.Encode())
	var seen []pageReport
	await := func(kind, id string) pageReport {
		t.Helper()
		timer := time.NewTimer(browserWait)
		defer timer.Stop()
		for {
			select {
			case r := <-reports:
				seen = append(seen, r)
				if r.Seq != len(seen)-1 {
					t.Fatalf("report %d came as the %d.; the page reported %+v", r.Seq, len(seen)-1, seen)
				}
				if r.Kind == kind && (id == "" || r.ID == id) {
					return r
				}
				if r.Kind == "error" && r.State == 2 { // EventSource.CLOSED
					t.Fatalf("EventSource gave up instead of reconnecting; the page reported %+v", seen)
				}
			case <-timer.C:
				t.Fatalf("the page did not report %s %s within %s; it reported %+v", kind, id, browserWait, seen)
			}
		}
	}

	await("open", "")
	if c := await("connected", ""); c.ID != "0" {
		t.Errorf("connected id = %q, want 0 (no notifications yet)", c.ID)
	}
	live := notifyMember(t, bdb, mina.id, domain.NotifyJoinAccepted, domain.NotificationArgs{Title: "live"}, notificationsClock)
	publish(t, e, live)
	await("notification", live.ID)

	// The connection drops; what is recorded before the browser gets
	// through again reaches it only by replay.
	proxy.hold()
	proxy.drop()
	await("error", "")
	missed := notifyMember(t, bdb, mina.id, domain.NotifyJoinAccepted, domain.NotificationArgs{Title: "missed"}, notificationsClock.Add(time.Minute))
	publish(t, e, missed)
	proxy.release()

	await("open", "")
	await("connected", "")
	await("notification", missed.ID)
	count := 0
	for _, r := range seen {
		if r.Kind == "notification" {
			count++
		}
		if r.Kind == "reset" {
			t.Errorf("the page was told to reset: %+v", r)
		}
	}
	if count != 2 {
		t.Errorf("the page got %d notification events, want 2 (%+v)", count, seen)
	}
	t.Logf("the page reported: %+v", seen)
	// The reconnect resumed from the id the page last saw.
	waitMetrics(t, s, []string{`moim_sse_reconnects_total 1`, `moim_sse_streams_open 1`})
}

// hostPort is the host:port of an http:// URL.
func hostPort(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// port is the port of an http:// URL.
func port(t *testing.T, raw string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(hostPort(t, raw))
	if err != nil {
		t.Fatalf("port of %s: %v", raw, err)
	}
	return p
}
