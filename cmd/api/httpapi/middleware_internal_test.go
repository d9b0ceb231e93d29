package httpapi

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestRealClientIP(t *testing.T) {
	t.Parallel()
	proxies := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("fd00::/8"),
	}
	tests := []struct {
		name       string
		remoteAddr string
		xff        []string
		trusted    []netip.Prefix
		want       string
	}{
		{"no proxies configured ignores header", "10.0.0.1:4000", []string{"1.2.3.4"}, nil, "10.0.0.1"},
		{"untrusted peer ignores header", "192.0.2.7:4000", []string{"1.2.3.4"}, proxies, "192.0.2.7"},
		{"trusted peer without header", "10.0.0.1:4000", nil, proxies, "10.0.0.1"},
		{"trusted peer takes header", "10.0.0.1:4000", []string{"1.2.3.4"}, proxies, "1.2.3.4"},
		{"right-most untrusted wins over spoofed left", "10.0.0.1:4000", []string{"6.6.6.6, 1.2.3.4, 10.0.0.9"}, proxies, "1.2.3.4"},
		{"several headers are one chain", "10.0.0.1:4000", []string{"6.6.6.6", "1.2.3.4", "10.0.0.9"}, proxies, "1.2.3.4"},
		{"garbage stops at last vouched hop", "10.0.0.1:4000", []string{"1.2.3.4, not-an-ip, 10.0.0.9"}, proxies, "10.0.0.9"},
		{"all hops trusted", "10.0.0.1:4000", []string{"10.0.0.3, 10.0.0.2"}, proxies, "10.0.0.3"},
		{"entry with port", "10.0.0.1:4000", []string{"1.2.3.4:5555"}, proxies, "1.2.3.4"},
		{"mapped peer counts as trusted", "[::ffff:10.0.0.1]:4000", []string{"1.2.3.4"}, proxies, "1.2.3.4"},
		{"ipv6 peer and entry", "[fd00::1]:4000", []string{"2001:db8::5"}, proxies, "2001:db8::5"},
		{"mapped entry folds to ipv4", "10.0.0.1:4000", []string{"::ffff:1.2.3.4"}, proxies, "1.2.3.4"},
		{"empty entries skipped", "10.0.0.1:4000", []string{"1.2.3.4, ,"}, proxies, "1.2.3.4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := realClientIP(tt.remoteAddr, tt.xff, tt.trusted)
			if got.String() != tt.want {
				t.Errorf("realClientIP = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestValidRequestID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id   string
		want bool
	}{
		{"", false},
		{"a", true},
		{"Abc-123_x.y:z", true},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
		{"has space", false},
		{"semi;colon", false},
		{"new\nline", false},
		{"ünicode", false},
	}
	for _, tt := range tests {
		if got := validRequestID(tt.id); got != tt.want {
			t.Errorf("validRequestID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

// TestCrossSiteBehindProxy: the host a browser's Origin is matched against
// may come from X-Forwarded-Host, but only when a trusted proxy sent it.
func TestCrossSiteBehindProxy(t *testing.T) {
	t.Parallel()
	s := &server{trustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	for _, tt := range []struct {
		peer, host, forwarded, origin string
		want                          bool
	}{
		{"10.0.0.2:5000", "api:8080", "moim.example", "https://moim.example", false},
		{"10.0.0.2:5000", "api:8080", "moim.example, api:8080", "https://moim.example", false},
		{"10.0.0.2:5000", "api:8080", "moim.example", "https://evil.example", true},
		{"203.0.113.9:5000", "api:8080", "moim.example", "https://moim.example", true},
		{"203.0.113.9:5000", "moim.example", "", "https://moim.example", false},
		{"203.0.113.9:5000", "moim.example", "", "https://MOIM.example", false},
	} {
		r := httptest.NewRequest(http.MethodPost, "/admin/queues/api/queues/default:pause", nil)
		r.RemoteAddr, r.Host = tt.peer, tt.host
		r.Header.Set("Origin", tt.origin)
		if tt.forwarded != "" {
			r.Header.Set("X-Forwarded-Host", tt.forwarded)
		}
		if got := s.crossSite(r); got != tt.want {
			t.Errorf("%+v: crossSite = %v, want %v", tt, got, tt.want)
		}
	}
}
