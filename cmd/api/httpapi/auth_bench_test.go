package httpapi_test

import (
	"net/http"
	"testing"
	"time"
)

// BenchmarkLogin measures whole logins over HTTP with the default argon2id
// parameters, as many at once as the hasher allows: the rate one API
// process can sustain, dominated by argon2 on purpose.
func BenchmarkLogin(b *testing.B) {
	s, _ := newRealPasswordsServer(b)
	body := `{"email":"mina@example.com","password":"correct horse battery"}`
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, _ := s.do(b, request{method: http.MethodPost, path: "/v1/auth/login", body: body})
			if resp.StatusCode != http.StatusOK {
				b.Errorf("login status = %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "logins/s")
}
