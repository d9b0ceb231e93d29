package config

import (
	"log/slog"
	"maps"
	"net/url"
	"strings"
	"time"
)

// mask replaces a secret that is set; an empty one stays empty so the log
// shows it is missing.
const mask = "****"

// LogValue renders the effective configuration for slog, one group per
// section, with secrets masked ("****" when set, "" when not) and the
// passwords in database and Redis URLs masked. database.url is the URL that
// will be opened (DatabaseURL). It makes slog.Any("config", cfg) safe; the
// value receiver keeps it safe when a Config rather than a *Config is logged.
func (c Config) LogValue() slog.Value {
	var top []slog.Attr
	groups := map[string][]slog.Attr{}
	var order []string
	for _, kv := range c.masked() {
		section, name, ok := strings.Cut(kv.key, ".")
		if !ok {
			top = append(top, slog.Any(kv.key, kv.value))
			continue
		}
		if _, seen := groups[section]; !seen {
			order = append(order, section)
		}
		groups[section] = append(groups[section], slog.Any(name, kv.value))
	}
	for _, section := range order {
		top = append(top, slog.Attr{Key: section, Value: slog.GroupValue(groups[section]...)})
	}
	return slog.GroupValue(top...)
}

// Masked returns the effective configuration as a flat map from key
// (http.addr) to value, masked like LogValue. Durations are strings ("5s").
func (c *Config) Masked() map[string]any {
	out := map[string]any{}
	for _, kv := range c.masked() {
		out[kv.key] = kv.value
	}
	return out
}

type keyValue struct {
	key   string
	value any
}

func (c *Config) masked() []keyValue {
	var out []keyValue
	for _, l := range leaves(c) {
		if l.key == providersKey {
			out = append(out, maskedProviders(c.Auth.Providers)...)
			continue
		}
		val := l.value.Interface()
		if l.key == "database.url" {
			val = c.DatabaseURL()
		}
		switch l.secret {
		case "value":
			if val.(string) != "" {
				val = mask
			}
		case "url":
			val = maskURL(val.(string))
		}
		switch v := val.(type) {
		case time.Duration:
			val = formatDuration(v)
		case []string:
			val = append([]string{}, v...)
		case map[string]int:
			val = maps.Clone(v)
		case map[string]string:
			val = maps.Clone(v)
		}
		out = append(out, keyValue{l.key, val})
	}
	return out
}

// maskURL hides the password of a URL (user:****@host) and the values of
// query parameters that look like credentials. What cannot be parsed is
// masked whole: the password could be anywhere in it.
func maskURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return mask
	}
	changed := false
	if u.RawQuery != "" {
		parts := strings.Split(u.RawQuery, "&")
		for i, p := range parts {
			name, _, _ := strings.Cut(p, "=")
			if sensitiveParam(name) {
				parts[i] = name + "=" + mask
				changed = true
			}
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	if u.User == nil {
		if changed {
			return u.String()
		}
		return s
	}
	if _, ok := u.User.Password(); !ok {
		if changed {
			return u.String()
		}
		return s
	}
	// url.UserPassword would percent-encode the asterisks, so the mask is
	// spliced in after the user name instead.
	u.User = url.User(u.User.Username())
	head := u.Scheme + "://" + u.User.String()
	out := u.String()
	if !strings.HasPrefix(out, head+"@") {
		return mask
	}
	return head + ":" + mask + out[len(head):]
}

func sensitiveParam(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"pass", "pwd", "secret", "token", "key"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// formatDuration writes d as a person would: "30m" rather than "30m0s", and
// a string rather than JSON's nanoseconds.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
