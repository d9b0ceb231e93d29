package config

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// Rate is a request limit: at most Requests in any Window. The zero Rate
// means no limit.
type Rate struct {
	Requests int
	Window   time.Duration
}

// Off reports whether r sets no limit.
func (r Rate) Off() bool { return r.Requests == 0 }

// ParseRate reads "requests/window" (10/1h, 30/1m) or "off".
func ParseRate(s string) (Rate, error) {
	if s == "off" {
		return Rate{}, nil
	}
	n, w, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, errors.New(`must be requests/window such as 10/1h, or off`)
	}
	requests, err := strconv.Atoi(n)
	if err != nil || requests < 1 {
		return Rate{}, errors.New("requests must be a positive whole number")
	}
	window, err := time.ParseDuration(w)
	if err != nil || window < time.Second {
		return Rate{}, errors.New("window must be a duration of at least 1s, such as 1m or 1h")
	}
	return Rate{Requests: requests, Window: window}, nil
}
