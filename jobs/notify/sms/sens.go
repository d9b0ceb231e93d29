// Package sms sends text messages through Naver Cloud SENS (Simple & Easy
// Notification Service), SMS API v2. It knows the protocol only: what to
// send and when is decided by the notification handlers.
package sms

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/moim/moim/jobs/notify"
)

// DefaultBaseURL is the SENS API gateway.
const DefaultBaseURL = "https://sens.apigw.ntruss.com"

// DefaultTimeout bounds one request when Config.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Errors for a message that cannot be sent whatever the provider says. They
// come wrapped with notify.Permanent.
var (
	ErrInvalidNumber      = errors.New("invalid phone number")
	ErrUnsupportedCountry = errors.New("unsupported country")
	ErrEmptyText          = errors.New("empty text")
)

// Config is what the client needs to reach SENS.
type Config struct {
	BaseURL    string           // default DefaultBaseURL; scheme and host only
	ServiceID  string           // the SMS project's service id (ncp:sms:kr:…)
	AccessKey  string           // API access key id
	SecretKey  string           // secret: never in errors or logs
	From       string           // the registered sender number, digits only (e.g. 0212345678)
	Timeout    time.Duration    // per request; 0 means DefaultTimeout
	HTTPClient *http.Client     // optional
	NowFunc    func() time.Time // optional, for the signature timestamp
}

// Validate reports every problem with c, one line each. It never quotes the
// keys.
func (c Config) Validate() error {
	var errs []error
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		switch {
		case err != nil:
			errs = append(errs, errors.New("sms: base url is not a url"))
		case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
			errs = append(errs, errors.New("sms: base url must be an absolute http(s) url"))
		// The signature covers the path from /sms/v2 on; a prefix in front
		// of it would be sent but not signed.
		case strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
			errs = append(errs, errors.New("sms: base url must have no path, query or user info"))
		}
	}
	if c.ServiceID == "" {
		errs = append(errs, errors.New("sms: service id is required"))
	} else if strings.ContainsFunc(c.ServiceID, notPrintable) {
		errs = append(errs, errors.New("sms: service id must be printable with no spaces"))
	}
	if c.AccessKey == "" {
		errs = append(errs, errors.New("sms: access key is required"))
	} else if strings.ContainsFunc(c.AccessKey, notPrintable) {
		errs = append(errs, errors.New("sms: access key must be printable with no spaces"))
	}
	if c.SecretKey == "" {
		errs = append(errs, errors.New("sms: secret key is required"))
	}
	if !isDigits(c.From) || len(c.From) < 8 || len(c.From) > 12 {
		errs = append(errs, errors.New("sms: from must be the registered sender number, 8 to 12 digits"))
	}
	if c.Timeout < 0 {
		errs = append(errs, errors.New("sms: timeout must not be negative"))
	}
	return errors.Join(errs...)
}

// notPrintable rejects what cannot go into a header or URL path as is.
func notPrintable(r rune) bool { return r > unicode.MaxASCII || !unicode.IsGraphic(r) || r == ' ' }

// Client sends SMS and LMS through SENS. It is safe for concurrent use.
type Client struct {
	endpoint  string // full URL of the send endpoint
	path      string // the part of endpoint that is signed
	accessKey string
	secretKey []byte
	from      string
	timeout   time.Duration
	http      *http.Client
	now       func() time.Time
}

var _ notify.SMSSender = (*Client)(nil)

// New returns a client for cfg, or the errors of cfg.Validate.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	c := &Client{
		path:      "/sms/v2/services/" + url.PathEscape(cfg.ServiceID) + "/messages",
		accessKey: cfg.AccessKey,
		secretKey: []byte(cfg.SecretKey),
		from:      cfg.From,
		timeout:   cfg.Timeout,
		http:      cfg.HTTPClient,
		now:       cfg.NowFunc,
	}
	c.endpoint = base + c.path
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.http == nil {
		c.http = &http.Client{}
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// sendRequest is the body of POST /sms/v2/services/{serviceId}/messages.
type sendRequest struct {
	Type        string      `json:"type"`
	ContentType string      `json:"contentType"`
	CountryCode string      `json:"countryCode"`
	From        string      `json:"from"`
	Subject     string      `json:"subject,omitempty"`
	Content     string      `json:"content"`
	Messages    []recipient `json:"messages"`
}

type recipient struct {
	To string `json:"to"`
}

// sendResponse is SENS's answer to an accepted send.
type sendResponse struct {
	RequestID   string `json:"requestId"`
	RequestTime string `json:"requestTime"`
	StatusCode  string `json:"statusCode"`
	StatusName  string `json:"statusName"`
}

// SendSMS sends m as an SMS or, when it is longer than 90 EUC-KR bytes, as
// an LMS (see Prepare). It returns the SENS request id and the type sent.
// SENS answers 202; any 2xx with a request id counts as accepted. Errors
// are marked notify.Permanent for a bad number (ErrInvalidNumber,
// ErrUnsupportedCountry), an empty text (ErrEmptyText) and 4xx answers, and
// notify.Temporary for 408, 429 (with its Retry-After), 5xx, a 2xx without
// a request id, network errors, timeouts and a cancelled ctx.
func (c *Client) SendSMS(ctx context.Context, m notify.SMS) (notify.SMSResult, error) {
	country, to, err := splitNumber(m.To)
	if err != nil {
		return notify.SMSResult{}, notify.Permanent(fmt.Errorf("sens send: %w", err))
	}
	typ, subject, content := Prepare(m.Subject, m.Text)
	if content == "" {
		return notify.SMSResult{}, notify.Permanent(fmt.Errorf("sens send: %w", ErrEmptyText))
	}
	req := sendRequest{
		Type:        "SMS",
		ContentType: "COMM",
		CountryCode: country,
		From:        c.from,
		Content:     content,
		Messages:    []recipient{{To: to}},
	}
	if typ == notify.SMSLong {
		req.Type, req.Subject = "LMS", subject
	}
	body, err := json.Marshal(req)
	if err != nil {
		return notify.SMSResult{}, notify.Permanent(fmt.Errorf("sens send: encode request: %w", err))
	}

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return notify.SMSResult{}, notify.Permanent(fmt.Errorf("sens send: build request: %w", err))
	}
	c.sign(hreq)

	resp, err := c.http.Do(hreq)
	if err != nil {
		// A timeout after the request went out may mean SENS accepted it;
		// retrying is still the better failure than never sending.
		return notify.SMSResult{}, notify.Temporary(fmt.Errorf("sens send: %w", err), 0)
	}
	defer resp.Body.Close()
	// The answers are small; a cap keeps a misbehaving peer from making us
	// read without end.
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil && resp.StatusCode/100 != 2 {
		raw = nil // the status alone classifies the failure
	} else if err != nil {
		return notify.SMSResult{}, notify.Temporary(fmt.Errorf("sens send: read response: %w", err), 0)
	}
	return c.result(resp, raw, typ)
}

// sign sets the headers SENS authenticates: the signature covers the
// method, the signed path, the timestamp and the access key.
func (c *Client) sign(r *http.Request) {
	ts := strconv.FormatInt(c.now().UnixMilli(), 10)
	mac := hmac.New(sha256.New, c.secretKey)
	mac.Write([]byte(r.Method + " " + c.path + "\n" + ts + "\n" + c.accessKey))
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	r.Header.Set("Accept", "application/json")
	r.Header.Set("x-ncp-apigw-timestamp", ts)
	r.Header.Set("x-ncp-iam-access-key", c.accessKey)
	r.Header.Set("x-ncp-apigw-signature-v2", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
}

// result turns an answer into a result or a classified error.
func (c *Client) result(resp *http.Response, raw []byte, typ notify.SMSType) (notify.SMSResult, error) {
	code := resp.StatusCode
	switch {
	case code/100 == 2:
		var r sendResponse
		if err := json.Unmarshal(raw, &r); err != nil || r.RequestID == "" {
			// Probably accepted, but without an id nothing can be traced;
			// a retry may duplicate the message, which beats losing it.
			return notify.SMSResult{}, notify.Temporary(fmt.Errorf("sens send: status %d without a request id", code), 0)
		}
		return notify.SMSResult{ProviderID: r.RequestID, Type: typ}, nil
	case code == http.StatusTooManyRequests:
		err := fmt.Errorf("sens send: status %d: %s", code, c.providerMessage(code, raw))
		return notify.SMSResult{}, notify.Temporary(err, retryAfter(resp.Header.Get("Retry-After"), c.now()))
	// 408 says the request never reached processing, so it is as safe to
	// retry as a 5xx although it is a 4xx.
	case code/100 == 4 && code != http.StatusRequestTimeout:
		return notify.SMSResult{}, notify.Permanent(fmt.Errorf("sens send: status %d: %s", code, c.providerMessage(code, raw)))
	default:
		return notify.SMSResult{}, notify.Temporary(fmt.Errorf("sens send: status %d: %s", code, c.providerMessage(code, raw)), 0)
	}
}

// maxMessage caps the provider's text in our errors, which end up in the
// delivery row and the logs.
const maxMessage = 200

// providerMessage extracts the reason from an error answer: the API
// gateway's {"error":{"message","details"}} or SENS's own fields, else the
// body itself, else the status text. It is cut to maxMessage bytes, kept to one line, and scrubbed
// of the keys in case a peer echoes the request headers.
func (c *Client) providerMessage(code int, raw []byte) string {
	var body struct {
		Error *struct {
			ErrorCode string `json:"errorCode"`
			Message   string `json:"message"`
			Details   string `json:"details"`
		} `json:"error"`
		ErrorMessage string `json:"errorMessage"`
		Message      string `json:"message"`
		StatusName   string `json:"statusName"`
	}
	var msg string
	if json.Unmarshal(raw, &body) == nil {
		switch {
		case body.Error != nil:
			msg = strings.TrimSpace(body.Error.Message + ": " + body.Error.Details)
			msg = strings.Trim(msg, ": ")
		case body.ErrorMessage != "":
			msg = body.ErrorMessage
		case body.Message != "":
			msg = body.Message
		case body.StatusName != "":
			msg = body.StatusName
		}
	}
	if msg == "" {
		msg = string(raw)
	}
	if strings.TrimSpace(msg) == "" {
		msg = http.StatusText(code)
	}
	msg = strings.ToValidUTF8(msg, "?")
	msg = strings.Join(strings.Fields(msg), " ")
	for _, secret := range []string{string(c.secretKey), c.accessKey} {
		msg = strings.ReplaceAll(msg, secret, "[redacted]")
	}
	if len(msg) > maxMessage {
		cut := maxMessage
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	return msg
}

// retryAfter reads a Retry-After header, in seconds or as an HTTP date; 0
// when absent, unreadable or already past.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		// Cap before multiplying so an absurd value cannot overflow.
		return time.Duration(min(secs, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// splitNumber turns an E.164 number into SENS's country code and the
// number as dialled inside that country: +821012345678 → "82",
// "01012345678"; +14155552671 → "1", "4155552671".
func splitNumber(e164 string) (country, number string, err error) {
	digits, ok := strings.CutPrefix(e164, "+")
	// E.164 allows at most 15 digits; 8 is the shortest real one.
	if !ok || !isDigits(digits) || len(digits) < 8 || len(digits) > 15 || digits[0] == '0' {
		return "", "", ErrInvalidNumber
	}
	switch {
	case strings.HasPrefix(digits, "82"):
		national := digits[2:]
		// Tolerate a trunk zero written after the country code: it is a
		// common slip and the domestic form is then already there.
		if national[0] != '0' {
			national = "0" + national
		}
		if len(national) < 9 || len(national) > 11 {
			return "", "", ErrInvalidNumber
		}
		return "82", national, nil
	case digits[0] == '1':
		// North American numbers are always ten digits after the 1.
		if len(digits) != 11 {
			return "", "", ErrInvalidNumber
		}
		return "1", digits[1:], nil
	}
	return "", "", ErrUnsupportedCountry
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
