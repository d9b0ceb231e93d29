package sms_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/text/encoding/korean"

	"github.com/moim/moim/jobs/notify"
	"github.com/moim/moim/jobs/notify/sms"
)

const (
	testServiceID = "ncp:sms:kr:123456789012:moim"
	testAccessKey = "AKIDtestaccesskey0001"
	testSecretKey = "s3cr3t-test-secret-key-0001"
	testFrom      = "0212345678"
)

// sensRequest is a send request as the fake SENS decoded it. Subject is a
// pointer so a missing field can be told from an empty one.
type sensRequest struct {
	Type        string  `json:"type"`
	ContentType string  `json:"contentType"`
	CountryCode string  `json:"countryCode"`
	From        string  `json:"from"`
	Subject     *string `json:"subject"`
	Content     string  `json:"content"`
	Messages    []struct {
		To string `json:"to"`
	} `json:"messages"`
}

// reply is one scripted answer of the fake SENS.
type reply struct {
	status int
	header http.Header
	body   string
}

// fakeSENS implements the SENS v2 send endpoint: it checks the signature
// with its own copy of the secret, the timestamp, the headers and the body
// (including that the content is EUC-KR encodable and within the limits of
// its type), records what it accepted and answers 202 with a request id
// unless a reply was scripted.
type fakeSENS struct {
	t      *testing.T
	srv    *httptest.Server
	secret string
	hang   chan struct{} // when non-nil, requests wait on it or on their ctx

	mu         sync.Mutex
	calls      int // every request that reached the handler
	accepted   []sensRequest
	timestamps []string
	replies    []reply
}

func newFakeSENS(t *testing.T) *fakeSENS {
	t.Helper()
	f := &fakeSENS{t: t, secret: testSecretKey}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// script queues answers for the next requests, in order.
func (f *fakeSENS) script(rs ...reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replies = append(f.replies, rs...)
}

func (f *fakeSENS) requests() []sensRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sensRequest(nil), f.accepted...)
}

func (f *fakeSENS) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func authFailed(w http.ResponseWriter, details string) {
	writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]string{
		"errorCode": "200", "message": "Authentication Failed", "details": details,
	}})
}

func badRequest(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"status": 400, "errorMessage": msg})
}

func (f *fakeSENS) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls++
	hang := f.hang
	f.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
		return
	}

	if r.Method != http.MethodPost || r.URL.EscapedPath() != "/sms/v2/services/"+testServiceID+"/messages" {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]string{"errorCode": "300", "message": "Not Found Exception"}})
		return
	}
	if got := r.Header.Get("Content-Type"); got != "application/json; charset=utf-8" {
		badRequest(w, "content type "+got)
		return
	}

	// Authentication, as the API gateway does it.
	ts := r.Header.Get("x-ncp-apigw-timestamp")
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(ts) != 13 {
		authFailed(w, "timestamp is not in milliseconds")
		return
	}
	if d := time.Since(time.UnixMilli(ms)); d > time.Minute || d < -time.Minute {
		authFailed(w, "timestamp is too far from now")
		return
	}
	key := r.Header.Get("x-ncp-iam-access-key")
	mac := hmac.New(sha256.New, []byte(f.secret))
	mac.Write([]byte(r.Method + " " + r.URL.RequestURI() + "\n" + ts + "\n" + key))
	got, err := base64.StdEncoding.DecodeString(r.Header.Get("x-ncp-apigw-signature-v2"))
	if err != nil || key != testAccessKey || !hmac.Equal(got, mac.Sum(nil)) {
		authFailed(w, "Invalid authentication information.")
		return
	}

	var req sensRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		badRequest(w, "malformed body: "+err.Error())
		return
	}
	if msg := checkRequest(req); msg != "" {
		badRequest(w, msg)
		return
	}

	f.mu.Lock()
	f.accepted = append(f.accepted, req)
	f.timestamps = append(f.timestamps, ts)
	n := len(f.accepted)
	var rp *reply
	if len(f.replies) > 0 {
		rp = &f.replies[0]
		f.replies = f.replies[1:]
	}
	f.mu.Unlock()

	if rp != nil {
		for k, vs := range rp.header {
			w.Header()[k] = vs
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(rp.status)
		_, _ = w.Write([]byte(rp.body))
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{
		"requestId":   fmt.Sprintf("RSSA-%d", n),
		"requestTime": time.Now().Format("2006-01-02T15:04:05.000"),
		"statusCode":  "202",
		"statusName":  "success",
	})
}

// checkRequest applies SENS's and the carriers' rules; "" means valid.
func checkRequest(req sensRequest) string {
	switch {
	case req.ContentType != "COMM":
		return "contentType must be COMM"
	case req.CountryCode == "" || req.From == "" || req.Content == "":
		return "countryCode, from and content are required"
	case len(req.Messages) != 1 || req.Messages[0].To == "":
		return "one recipient expected"
	}
	// The carriers carry EUC-KR: what it cannot encode fails the message.
	enc, err := korean.EUCKR.NewEncoder().String(req.Content)
	if err != nil {
		return "content is not EUC-KR encodable"
	}
	switch req.Type {
	case "SMS":
		if req.Subject != nil {
			return "SMS has no subject"
		}
		if len(enc) > 90 {
			return "SMS content over 90 bytes"
		}
	case "LMS":
		if len(enc) > 2000 {
			return "LMS content over 2000 bytes"
		}
		if req.Subject != nil {
			s, err := korean.EUCKR.NewEncoder().String(*req.Subject)
			if err != nil || len(s) > 40 {
				return "subject not EUC-KR or over 40 bytes"
			}
		}
	default:
		return "type must be SMS or LMS"
	}
	return ""
}

func testConfig(f *fakeSENS) sms.Config {
	return sms.Config{
		BaseURL:    f.srv.URL,
		ServiceID:  testServiceID,
		AccessKey:  testAccessKey,
		SecretKey:  testSecretKey,
		From:       testFrom,
		HTTPClient: f.srv.Client(),
	}
}

// setup starts a fake SENS and a client for it; edit adjusts the config.
func setup(t *testing.T, edit func(*sms.Config)) (*fakeSENS, *sms.Client) {
	t.Helper()
	f := newFakeSENS(t)
	cfg := testConfig(f)
	if edit != nil {
		edit(&cfg)
	}
	c, err := sms.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return f, c
}

// isTemporary reports whether err was marked with notify.Temporary.
func isTemporary(err error) bool {
	return err != nil && !notify.IsPermanent(err) && strings.HasPrefix(err.Error(), "temporary")
}

func ptr[T any](v T) *T { return &v }

func TestSendSMSTypes(t *testing.T) {
	t.Parallel()
	hangul45 := strings.Repeat("가", 45)
	long := strings.Repeat("모임 알림입니다. ", 300) // 3,000 bytes in EUC-KR
	tests := []struct {
		name        string
		msg         notify.SMS
		wantType    notify.SMSType
		wantWire    string
		wantSubject *string
		check       func(t *testing.T, content string)
	}{
		{
			name:     "45 syllables go as SMS without subject",
			msg:      notify.SMS{To: "+821012345678", Subject: "제목", Text: hangul45},
			wantType: notify.SMSShort, wantWire: "SMS",
			check: func(t *testing.T, content string) {
				if content != hangul45 {
					t.Errorf("content = %q, want %q", content, hangul45)
				}
			},
		},
		{
			name:     "46 syllables go as LMS with subject",
			msg:      notify.SMS{To: "+821012345678", Subject: "모임 취소", Text: hangul45 + "나"},
			wantType: notify.SMSLong, wantWire: "LMS", wantSubject: ptr("모임 취소"),
			check: func(t *testing.T, content string) {
				if content != hangul45+"나" {
					t.Errorf("content = %q, want the text unchanged", content)
				}
			},
		},
		{
			name:     "LMS content is cut to 2000 bytes",
			msg:      notify.SMS{To: "+821012345678", Subject: "긴 글", Text: long},
			wantType: notify.SMSLong, wantWire: "LMS", wantSubject: ptr("긴 글"),
			check: func(t *testing.T, content string) {
				if !utf8.ValidString(content) {
					t.Errorf("content is not valid UTF-8")
				}
				if n := sms.Measure(content); n > 2000 || n < 1999 {
					t.Errorf("content is %d bytes, want 1999 or 2000", n)
				}
				if !strings.HasPrefix(long, content) {
					t.Errorf("content is not a prefix of the text")
				}
			},
		},
		{
			name:     "LMS without subject sends none",
			msg:      notify.SMS{To: "+821012345678", Text: strings.Repeat("x", 91)},
			wantType: notify.SMSLong, wantWire: "LMS",
		},
		{
			name:     "emoji is replaced",
			msg:      notify.SMS{To: "+821012345678", Text: "런닝 시작 😀 10분 전"},
			wantType: notify.SMSShort, wantWire: "SMS",
			check: func(t *testing.T, content string) {
				if want := "런닝 시작 ? 10분 전"; content != want {
					t.Errorf("content = %q, want %q", content, want)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, c := setup(t, nil)
			res, err := c.SendSMS(context.Background(), tt.msg)
			if err != nil {
				t.Fatalf("SendSMS: %v", err)
			}
			if want := (notify.SMSResult{ProviderID: "RSSA-1", Type: tt.wantType}); res != want {
				t.Errorf("result = %+v, want %+v", res, want)
			}
			reqs := f.requests()
			if len(reqs) != 1 {
				t.Fatalf("server got %d requests, want 1", len(reqs))
			}
			got := reqs[0]
			if got.Type != tt.wantWire {
				t.Errorf("type = %q, want %q", got.Type, tt.wantWire)
			}
			if diff := cmp.Diff(tt.wantSubject, got.Subject); diff != "" {
				t.Errorf("subject (-want +got):\n%s", diff)
			}
			if got.From != testFrom || got.CountryCode != "82" || got.Messages[0].To != "01012345678" {
				t.Errorf("from, country, to = %q, %q, %q; want %q, 82, 01012345678",
					got.From, got.CountryCode, got.Messages[0].To, testFrom)
			}
			if tt.check != nil {
				tt.check(t, got.Content)
			}
		})
	}
}

func TestSendSMSClassifiesAnswers(t *testing.T) {
	t.Parallel()
	f, c := setup(t, nil)
	f.script(
		reply{status: http.StatusAccepted, body: `{"requestId":"RSSA-abc","requestTime":"2026-11-25T10:00:00.000","statusCode":"202","statusName":"success"}`},
		reply{status: http.StatusBadRequest, body: `{"status":400,"errorMessage":"Invalid from number"}`},
		reply{status: http.StatusInternalServerError, body: `{"error":{"errorCode":"500","message":"Internal Server Error"}}`},
		reply{status: http.StatusTooManyRequests, header: http.Header{"Retry-After": {"7"}}, body: `{"error":{"errorCode":"400","message":"Too Many Requests"}}`},
	)
	send := func() (notify.SMSResult, error) {
		return c.SendSMS(context.Background(), notify.SMS{To: "+821012345678", Text: "hello"})
	}

	res, err := send()
	if err != nil {
		t.Fatalf("202: SendSMS: %v", err)
	}
	if want := (notify.SMSResult{ProviderID: "RSSA-abc", Type: notify.SMSShort}); res != want {
		t.Errorf("202: result = %+v, want %+v", res, want)
	}

	_, err = send()
	if !notify.IsPermanent(err) {
		t.Errorf("400: err = %v, want permanent", err)
	}
	if err != nil && !strings.Contains(err.Error(), "Invalid from number") {
		t.Errorf("400: err = %v, want the provider's message", err)
	}

	_, err = send()
	if !isTemporary(err) {
		t.Errorf("500: err = %v, want temporary", err)
	}
	if d, ok := notify.RetryAfter(err); ok {
		t.Errorf("500: retry after = %s, want none", d)
	}

	_, err = send()
	if !isTemporary(err) {
		t.Errorf("429: err = %v, want temporary", err)
	}
	if d, _ := notify.RetryAfter(err); d != 7*time.Second {
		t.Errorf("429: retry after = %s, want 7s", d)
	}
}

func TestSendSMSMoreAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		reply     reply
		permanent bool
		check     func(t *testing.T, err error)
	}{
		{
			name:  "202 without request id",
			reply: reply{status: http.StatusAccepted, body: `{"statusCode":"202","statusName":"success"}`},
		},
		{
			name:  "202 with a body that is not JSON",
			reply: reply{status: http.StatusAccepted, body: `accepted`},
		},
		{
			name:  "429 with an HTTP date",
			reply: reply{status: http.StatusTooManyRequests, header: http.Header{"Retry-After": {time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)}}},
			check: func(t *testing.T, err error) {
				if d, _ := notify.RetryAfter(err); d < 28*time.Second || d > 31*time.Second {
					t.Errorf("retry after = %s, want about 30s", d)
				}
			},
		},
		{
			name:  "429 without Retry-After",
			reply: reply{status: http.StatusTooManyRequests},
			check: func(t *testing.T, err error) {
				if d, ok := notify.RetryAfter(err); ok {
					t.Errorf("retry after = %s, want none", d)
				}
			},
		},
		{name: "403", reply: reply{status: http.StatusForbidden, body: `{"error":{"errorCode":"210","message":"Permission Denied"}}`}, permanent: true},
		{name: "404", reply: reply{status: http.StatusNotFound, body: `{"error":{"errorCode":"300","message":"Not Found Exception"}}`}, permanent: true},
		{name: "503", reply: reply{status: http.StatusServiceUnavailable, body: `<html>down</html>`}},
		{
			name:      "a long error body is cut",
			reply:     reply{status: http.StatusBadRequest, body: `{"errorMessage":"` + strings.Repeat("오류", 500) + `"}`},
			permanent: true,
			check: func(t *testing.T, err error) {
				if n := len(err.Error()); n > 300 {
					t.Errorf("error is %d bytes, want it cut", n)
				}
				if !utf8.ValidString(err.Error()) {
					t.Errorf("error is not valid UTF-8")
				}
			},
		},
		{
			name:      "keys echoed by the peer are scrubbed",
			reply:     reply{status: http.StatusBadRequest, body: `{"errorMessage":"bad key ` + testAccessKey + ` / ` + testSecretKey + `"}`},
			permanent: true,
			check: func(t *testing.T, err error) {
				if strings.Contains(err.Error(), testAccessKey) || strings.Contains(err.Error(), testSecretKey) {
					t.Errorf("error = %v, want no keys", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, c := setup(t, nil)
			f.script(tt.reply)
			_, err := c.SendSMS(context.Background(), notify.SMS{To: "+821012345678", Text: "hello"})
			if tt.permanent && !notify.IsPermanent(err) {
				t.Errorf("err = %v, want permanent", err)
			}
			if !tt.permanent && !isTemporary(err) {
				t.Errorf("err = %v, want temporary", err)
			}
			if tt.check != nil && err != nil {
				tt.check(t, err)
			}
		})
	}
}

func TestSendSMSWrongSecret(t *testing.T) {
	t.Parallel()
	const wrong = "not-the-secret-0002"
	f, c := setup(t, func(cfg *sms.Config) { cfg.SecretKey = wrong })
	_, err := c.SendSMS(context.Background(), notify.SMS{To: "+821012345678", Text: "hello"})
	if !notify.IsPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	if !strings.Contains(err.Error(), "401") {
		t.Errorf("err = %v, want it to name the status", err)
	}
	for _, s := range []string{wrong, testSecretKey, testAccessKey} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("err = %v, contains a key", err)
		}
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("server accepted %d requests, want 0", n)
	}
}

func TestSendSMSRecipients(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		to          string
		wantCountry string
		wantTo      string
		wantErr     error // permanent, and no request made
	}{
		{name: "Korean mobile", to: "+821012345678", wantCountry: "82", wantTo: "01012345678"},
		{name: "Korean with trunk zero", to: "+8201012345678", wantCountry: "82", wantTo: "01012345678"},
		{name: "North American", to: "+14155552671", wantCountry: "1", wantTo: "4155552671"},
		{name: "domestic form", to: "010-1234", wantErr: sms.ErrInvalidNumber},
		{name: "domestic digits", to: "01012345678", wantErr: sms.ErrInvalidNumber},
		{name: "empty", to: "", wantErr: sms.ErrInvalidNumber},
		{name: "plus only", to: "+", wantErr: sms.ErrInvalidNumber},
		{name: "too long", to: "+8210123456789012", wantErr: sms.ErrInvalidNumber},
		{name: "North American too short", to: "+1415555267", wantErr: sms.ErrInvalidNumber},
		{name: "other country", to: "+447911123456", wantErr: sms.ErrUnsupportedCountry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, c := setup(t, nil)
			_, err := c.SendSMS(context.Background(), notify.SMS{To: tt.to, Text: "hello"})
			if tt.wantErr != nil {
				if !notify.IsPermanent(err) || !errors.Is(err, tt.wantErr) {
					t.Errorf("err = %v, want permanent %v", err, tt.wantErr)
				}
				if n := f.callCount(); n != 0 {
					t.Errorf("server got %d requests, want 0", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("SendSMS: %v", err)
			}
			reqs := f.requests()
			if len(reqs) != 1 {
				t.Fatalf("server got %d requests, want 1", len(reqs))
			}
			if got := reqs[0]; got.CountryCode != tt.wantCountry || got.Messages[0].To != tt.wantTo {
				t.Errorf("country, to = %q, %q; want %q, %q", got.CountryCode, got.Messages[0].To, tt.wantCountry, tt.wantTo)
			}
		})
	}
}

func TestSendSMSEmptyText(t *testing.T) {
	t.Parallel()
	f, c := setup(t, nil)
	_, err := c.SendSMS(context.Background(), notify.SMS{To: "+821012345678", Subject: "제목"})
	if !notify.IsPermanent(err) || !errors.Is(err, sms.ErrEmptyText) {
		t.Errorf("err = %v, want permanent %v", err, sms.ErrEmptyText)
	}
	if n := f.callCount(); n != 0 {
		t.Errorf("server got %d requests, want 0", n)
	}
}

// hangingSENS returns a fake SENS that never answers until the test ends.
func hangingSENS(t *testing.T, edit func(*sms.Config)) *sms.Client {
	t.Helper()
	f, c := setup(t, edit)
	release := make(chan struct{})
	f.hang = release
	// Cleanups run last-in first-out: release the handlers before the
	// server's Close waits for them.
	t.Cleanup(func() { close(release) })
	return c
}

func TestSendSMSTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 200 * time.Millisecond
	c := hangingSENS(t, func(cfg *sms.Config) { cfg.Timeout = timeout })
	start := time.Now()
	_, err := c.SendSMS(context.Background(), notify.SMS{To: "+821012345678", Text: "hello"})
	if elapsed := time.Since(start); elapsed > timeout+2*time.Second {
		t.Errorf("returned after %s, want about %s", elapsed, timeout)
	}
	if !isTemporary(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want temporary deadline exceeded", err)
	}
}

func TestSendSMSContextCanceled(t *testing.T) {
	t.Parallel()
	c := hangingSENS(t, nil) // default timeout of 10s: the ctx must win
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := c.SendSMS(ctx, notify.SMS{To: "+821012345678", Text: "hello"})
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("returned after %s, want soon after the cancel", elapsed)
	}
	if !errors.Is(err, context.Canceled) || notify.IsPermanent(err) {
		t.Errorf("err = %v, want a retryable context.Canceled", err)
	}
}

func TestSendSMSNetworkError(t *testing.T) {
	t.Parallel()
	f := newFakeSENS(t)
	cfg := testConfig(f)
	f.srv.Close() // nothing listens there any more
	c, err := sms.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	_, err = c.SendSMS(context.Background(), notify.SMS{To: "+821012345678", Text: "hello"})
	if !isTemporary(err) {
		t.Errorf("err = %v, want temporary", err)
	}
}

func TestSendSMSNowFunc(t *testing.T) {
	t.Parallel()
	now := time.Now().Add(-10 * time.Second).Truncate(time.Millisecond)
	f, c := setup(t, func(cfg *sms.Config) { cfg.NowFunc = func() time.Time { return now } })
	if _, err := c.SendSMS(context.Background(), notify.SMS{To: "+821012345678", Text: "hello"}); err != nil {
		t.Fatalf("SendSMS: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if want := strconv.FormatInt(now.UnixMilli(), 10); len(f.timestamps) != 1 || f.timestamps[0] != want {
		t.Errorf("timestamps = %v, want [%s]", f.timestamps, want)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	valid := sms.Config{ServiceID: testServiceID, AccessKey: testAccessKey, SecretKey: testSecretKey, From: testFrom}
	tests := []struct {
		name    string
		edit    func(*sms.Config)
		wantErr string // a substring of the error; "" for valid
	}{
		{name: "valid with defaults", edit: func(*sms.Config) {}},
		{name: "valid with everything", edit: func(c *sms.Config) {
			c.BaseURL, c.Timeout, c.HTTPClient = "https://sens.apigw.ntruss.com/", 5*time.Second, http.DefaultClient
			c.NowFunc = time.Now
		}},
		{name: "valid plain http base", edit: func(c *sms.Config) { c.BaseURL = "http://127.0.0.1:8080" }},
		{name: "base url not absolute", edit: func(c *sms.Config) { c.BaseURL = "sens.apigw.ntruss.com" }, wantErr: "base url"},
		{name: "base url bad scheme", edit: func(c *sms.Config) { c.BaseURL = "ftp://sens.apigw.ntruss.com" }, wantErr: "base url"},
		{name: "base url with path", edit: func(c *sms.Config) { c.BaseURL = "https://proxy.example/sens" }, wantErr: "base url"},
		{name: "base url with query", edit: func(c *sms.Config) { c.BaseURL = "https://proxy.example?x=1" }, wantErr: "base url"},
		{name: "base url unparsable", edit: func(c *sms.Config) { c.BaseURL = "https://a b\x7f" }, wantErr: "base url"},
		{name: "no service id", edit: func(c *sms.Config) { c.ServiceID = "" }, wantErr: "service id"},
		{name: "service id with space", edit: func(c *sms.Config) { c.ServiceID = "ncp:sms kr" }, wantErr: "service id"},
		{name: "no access key", edit: func(c *sms.Config) { c.AccessKey = "" }, wantErr: "access key"},
		{name: "access key with newline", edit: func(c *sms.Config) { c.AccessKey = "abc\ndef" }, wantErr: "access key"},
		{name: "no secret key", edit: func(c *sms.Config) { c.SecretKey = "" }, wantErr: "secret key"},
		{name: "no from", edit: func(c *sms.Config) { c.From = "" }, wantErr: "from"},
		{name: "from with dashes", edit: func(c *sms.Config) { c.From = "02-1234-5678" }, wantErr: "from"},
		{name: "from in E.164", edit: func(c *sms.Config) { c.From = "+82212345678" }, wantErr: "from"},
		{name: "from too short", edit: func(c *sms.Config) { c.From = "1234567" }, wantErr: "from"},
		{name: "negative timeout", edit: func(c *sms.Config) { c.Timeout = -time.Second }, wantErr: "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid
			tt.edit(&cfg)
			err := cfg.Validate()
			_, newErr := sms.New(cfg)
			if tt.wantErr == "" {
				if err != nil || newErr != nil {
					t.Errorf("Validate = %v, New = %v; want nil", err, newErr)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate = %v, want an error about %q", err, tt.wantErr)
			}
			if newErr == nil {
				t.Errorf("New = nil error, want %v", err)
			}
			if err != nil && (strings.Contains(err.Error(), testSecretKey) || strings.Contains(err.Error(), testAccessKey)) {
				t.Errorf("Validate = %v, quotes a key", err)
			}
		})
	}

	t.Run("every problem is reported", func(t *testing.T) {
		t.Parallel()
		err := sms.Config{Timeout: -1}.Validate()
		for _, want := range []string{"service id", "access key", "secret key", "from", "timeout"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Validate = %v, want a line about %q", err, want)
			}
		}
	})
}
