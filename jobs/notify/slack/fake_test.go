package slack_test

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

const testToken = "xoxb-1234-5678-tEsTtOkEnVaLuE"

// fakeUser is a member of the fake workspace.
type fakeUser struct {
	ID      string
	Deleted bool // deactivated account
}

// call is one request as the fake Slack received it.
type call struct {
	Method      string
	ContentType string
	Params      map[string]string
}

// failure is a scripted answer: the HTTP status (0 means 200), the ok:false
// error code ("" sends a non-JSON body) and extra headers.
type failure struct {
	status int
	code   string
	header http.Header
}

// fakeSlack speaks the three Web API methods the client uses, under /api:
// it checks the bearer token, parses form and JSON bodies as Slack does,
// knows its users by e-mail, opens one conversation per set of users,
// records every call and answers with scripted failures when told to.
type fakeSlack struct {
	t     *testing.T
	srv   *httptest.Server
	token string
	users map[string]fakeUser // by lower-case e-mail

	mu       sync.Mutex
	hang     bool // requests wait until the client gives up
	calls    []call
	fails    map[string][]failure
	convs    map[string]string // sorted user ids → channel id
	channels map[string]bool
	posted   int
}

func newFakeSlack(t *testing.T, users map[string]fakeUser) *fakeSlack {
	t.Helper()
	f := &fakeSlack{
		t: t, token: testToken, users: users,
		fails: map[string][]failure{}, convs: map[string]string{}, channels: map[string]bool{},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// URL is the base URL of the API.
func (f *fakeSlack) URL() string { return f.srv.URL + "/api" }

// failNext makes the next call of method answer with fl.
func (f *fakeSlack) failNext(method string, fl failure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fails[method] = append(f.fails[method], fl)
}

func (f *fakeSlack) setHang() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hang = true
}

// callsOf returns the calls of method, in order.
func (f *fakeSlack) callsOf(method string) []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []call
	for _, c := range f.calls {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func slackError(w http.ResponseWriter, code string) {
	reply(w, http.StatusOK, map[string]any{"ok": false, "error": code})
}

func (f *fakeSlack) serve(w http.ResponseWriter, r *http.Request) {
	method, ok := strings.CutPrefix(r.URL.Path, "/api/")
	if !ok || !slices.Contains([]string{"users.lookupByEmail", "conversations.open", "chat.postMessage"}, method) {
		reply(w, http.StatusNotFound, map[string]any{"ok": false, "error": "unknown_method"})
		return
	}
	params, err := readParams(r)
	f.mu.Lock()
	f.calls = append(f.calls, call{Method: method, ContentType: r.Header.Get("Content-Type"), Params: params})
	hang := f.hang
	var fl *failure
	if q := f.fails[method]; len(q) > 0 {
		fl = &q[0]
		f.fails[method] = q[1:]
	}
	f.mu.Unlock()

	if hang {
		<-r.Context().Done()
		return
	}
	if err != nil {
		slackError(w, "invalid_form_data")
		return
	}
	switch auth := r.Header.Get("Authorization"); {
	case auth == "":
		slackError(w, "not_authed")
		return
	case auth != "Bearer "+f.token:
		slackError(w, "invalid_auth")
		return
	}
	if fl != nil {
		for k, vs := range fl.header {
			w.Header()[k] = vs
		}
		status := fl.status
		if status == 0 {
			status = http.StatusOK
		}
		if fl.code == "" {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(status)
			_, _ = fmt.Fprint(w, "<html>upstream error</html>")
			return
		}
		reply(w, status, map[string]any{"ok": false, "error": fl.code})
		return
	}

	switch method {
	case "users.lookupByEmail":
		f.lookup(w, params)
	case "conversations.open":
		f.open(w, params)
	case "chat.postMessage":
		f.post(w, params)
	}
}

// readParams reads the arguments from the query, a form body or a JSON
// body, the ways Slack accepts them.
func readParams(r *http.Request) (map[string]string, error) {
	out := map[string]string{}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if r.Method == http.MethodPost && ct == "application/json" {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			return nil, err
		}
		for k, v := range body {
			out[k] = fmt.Sprint(v)
		}
		return out, nil
	}
	if err := r.ParseForm(); err != nil {
		return nil, err
	}
	for k := range r.Form {
		out[k] = r.Form.Get(k)
	}
	return out, nil
}

func (f *fakeSlack) lookup(w http.ResponseWriter, p map[string]string) {
	email := p["email"]
	if email == "" {
		slackError(w, "invalid_arguments")
		return
	}
	u, ok := f.users[strings.ToLower(email)]
	if !ok {
		slackError(w, "users_not_found")
		return
	}
	reply(w, http.StatusOK, map[string]any{"ok": true, "user": map[string]any{
		"id": u.ID, "deleted": u.Deleted, "is_bot": false,
		"profile": map[string]any{"email": email},
	}})
}

func (f *fakeSlack) open(w http.ResponseWriter, p map[string]string) {
	if p["users"] == "" {
		slackError(w, "users_list_not_supplied")
		return
	}
	ids := strings.Split(p["users"], ",")
	if len(ids) > 8 {
		slackError(w, "too_many_users")
		return
	}
	for _, id := range ids {
		known := false
		for _, u := range f.users {
			if u.ID == id {
				if u.Deleted {
					slackError(w, "user_disabled")
					return
				}
				known = true
			}
		}
		if !known {
			slackError(w, "user_not_found")
			return
		}
	}
	key := slices.Clone(ids)
	slices.Sort(key)
	f.mu.Lock()
	ch, ok := f.convs[strings.Join(key, ",")]
	if !ok {
		prefix := "G"
		if len(ids) == 1 {
			prefix = "D"
		}
		ch = fmt.Sprintf("%s%04d", prefix, len(f.convs)+1)
		f.convs[strings.Join(key, ",")] = ch
		f.channels[ch] = true
	}
	f.mu.Unlock()
	reply(w, http.StatusOK, map[string]any{"ok": true, "channel": map[string]any{"id": ch}})
}

func (f *fakeSlack) post(w http.ResponseWriter, p map[string]string) {
	f.mu.Lock()
	known := f.channels[p["channel"]]
	f.posted++
	n := f.posted
	f.mu.Unlock()
	switch {
	case !known:
		slackError(w, "channel_not_found")
	case strings.TrimSpace(p["text"]) == "":
		slackError(w, "no_text")
	default:
		reply(w, http.StatusOK, map[string]any{
			"ok": true, "channel": p["channel"], "ts": fmt.Sprintf("1700000000.%06d", n),
			"message": map[string]any{"type": "message", "text": p["text"]},
		})
	}
}
