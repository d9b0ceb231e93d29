package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// monitoringDir holds the Grafana dashboard and the Prometheus rules.
var monitoringDir = filepath.Join("..", "..", "config", "monitoring")

// metricName finds the moim metrics an expression names.
var metricName = regexp.MustCompile(`\bmoim_[a-z0-9_]+`)

// TestMonitoringNamesServedMetrics fails when the dashboard or an alert rule
// names a metric the all-in-one process does not serve at /metrics (a
// renamed metric would leave a panel empty and an alert silent), or when an
// alert's runbook link has no section in the README.
func TestMonitoringNamesServedMetrics(t *testing.T) {
	t.Parallel()
	vars := map[string]string{
		"MOIM_DATABASE_URL":   "sqlite:" + filepath.Join(t.TempDir(), "moim.db"),
		"MOIM_HTTP_ADDR":      "127.0.0.1:0",
		"MOIM_ADMIN_PASSWORD": "monitoring-admin-password",
		"MOIM_LOG_LEVEL":      "warn",
	}
	banner, _ := startMoim(t, vars)
	base := banner["API"]
	// One API request, so the HTTP series exist.
	do(t, http.MethodGet, base+"/v1/random-matches/count?category=MEAL", "", nil).Body.Close()
	served := scrapeNames(t, base+"/metrics")

	rules, err := os.ReadFile(filepath.Join(monitoringDir, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]string{} // metric → where
	for _, m := range metricName.FindAllString(string(rules), -1) {
		named[m] = "alerts.yml"
	}
	for _, expr := range dashboardExprs(t) {
		for _, m := range metricName.FindAllString(expr, -1) {
			named[m] = "dashboard.json"
		}
	}
	if len(named) < 10 {
		t.Fatalf("only %d metrics named by the dashboard and rules: %v", len(named), named)
	}
	for m, where := range named {
		if !served[m] {
			t.Errorf("%s names %s, which /metrics does not serve", where, m)
		}
	}

	// Every alert links a README section by its anchor.
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(readme), "\n") {
		if h, ok := strings.CutPrefix(line, "#### "); ok {
			anchors[strings.ToLower(h)] = true
		}
	}
	alerts := regexp.MustCompile(`(?m)^\s*- alert: (\S+)$`).FindAllStringSubmatch(string(rules), -1)
	links := regexp.MustCompile(`runbook: "README\.md#([a-z0-9-]+)"`).FindAllStringSubmatch(string(rules), -1)
	if len(alerts) == 0 || len(alerts) != len(links) {
		t.Fatalf("%d alerts, %d runbook links: want one each", len(alerts), len(links))
	}
	for i, a := range alerts {
		if want := strings.ToLower(a[1]); links[i][1] != want || !anchors[want] {
			t.Errorf("alert %s: runbook #%s, README section %q present: %v", a[1], links[i][1], a[1], anchors[want])
		}
	}
}

// scrapeNames returns the metric names /metrics serves, histogram series
// (_bucket, _sum, _count) under their family name too.
func scrapeNames(t *testing.T, url string) map[string]bool {
	t.Helper()
	resp := do(t, http.MethodGet, url, "", nil)
	defer resp.Body.Close()
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			names[strings.Fields(f)[0]] = true
			continue
		}
		if name, _, _ := strings.Cut(strings.SplitN(line, " ", 2)[0], "{"); name != "" && !strings.HasPrefix(line, "#") {
			names[name] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// dashboardExprs returns every query of the dashboard's panels.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(monitoringDir, "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	var out []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			out = append(out, q.Expr)
		}
	}
	return out
}

// TestAlertRules checks the rules with promtool, Prometheus's own tool:
// their syntax, then alerts_test.yml, which feeds each alert the series
// that should raise it and healthy ones that should not.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not on PATH (Debian package prometheus): the alert rules are not checked")
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = monitoringDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
