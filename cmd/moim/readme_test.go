package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moim/moim/jobs"
)

// walkthroughMarker is the HTML comment that marks a README block as part
// of the walkthrough; it sits on the line right before the block's fence.
const walkthroughMarker = "<!-- walkthrough:"

// The script prints a line starting with markRS before each block and in
// place of each expected-output comment, so the output can be cut into the
// parts each expectation is checked against.
const markRS = "\x1e"

// failedAt finds what the ERR trap and bash itself say of a failure.
var failedAt = regexp.MustCompile(`(?m)^README\.md:(?: line )?[0-9]+: .*$`)

// TestREADMEWalkthrough runs the README's walkthrough — every marked shell
// block, in order, in one bash process, word for word — against the
// all-in-one process as `make run` starts it, with the admin password it
// generated and printed. A command that fails or answers a non-2xx status
// fails the test at its README line, and so does an answer that does not
// match the `# {…}` line the README shows under the command.
func TestREADMEWalkthrough(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	wt, err := parseWalkthrough(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"bash", "curl", "grep", "sed", "date", "base64"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README walkthrough needs %s on PATH: %v", tool, err)
		}
	}

	banner, _ := startMoim(t, map[string]string{
		"MOIM_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "moim.db"),
		"MOIM_HTTP_ADDR":    "127.0.0.1:0",
		"MOIM_LOG_LEVEL":    "warn",
		// argon2id at its default cost takes seconds a hash under the race
		// detector; the walkthrough hashes six passwords.
		"MOIM_AUTH_PASSWORD_MEMORY_KIB": "1024",
		"MOIM_AUTH_PASSWORD_ITERATIONS": "1",
		// The walkthrough waits for a mission to start and for helpers to
		// be invited: the README says within a minute and 15 s, the test
		// need not wait that long.
		"MOIM_SCHEDULER_TICKS": "mission-transitions=@every 1s,task-invitations=@every 1s",
	})
	// "admin / <password>  (generated for this run)": what a reader copies.
	admin := strings.Fields(banner["Admin"])
	if len(admin) < 3 || admin[1] != "/" {
		t.Fatalf("banner shows no generated admin password: %q", banner)
	}

	dir := t.TempDir()
	curlrc := "fail-with-body\n"
	if help, err := exec.Command("curl", "--help", "all").Output(); err != nil || !bytes.Contains(help, []byte("--fail-with-body")) {
		curlrc = "fail\n" // curl before 7.76
	}
	// The README's curl -s stays readable for people; here every curl
	// fails on a 4xx or 5xx, says why, and never hangs.
	curlrc += "show-error\nmax-time = 20\n"
	if err := os.WriteFile(filepath.Join(dir, ".curlrc"), []byte(curlrc), 0o600); err != nil {
		t.Fatal(err)
	}
	// Named README.md so that bash's messages point at README lines.
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte(wt.script), 0o600); err != nil {
		t.Fatal(err)
	}
	// A clean environment: no proxy, no curlrc or shell settings of the
	// machine, only what the README tells a reader to set.
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"CURL_HOME=" + dir,
		"MOIM=" + banner["API"],
		"MOIM_ADMIN_PASSWORD=" + admin[2],
	}

	// The strict curl is what makes a wrong status fail: prove it holds.
	probe := exec.Command("curl", "-s", banner["API"]+"/v1/no-such-route")
	probe.Env, probe.Dir = env, dir
	if out, err := probe.CombinedOutput(); err == nil {
		t.Fatalf("curl with the test's .curlrc succeeded on a 404 (output %q): non-2xx answers would go unnoticed", out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "README.md")
	cmd.Env, cmd.Dir = env, dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out // one stream, in order
	cmd.WaitDelay = 5 * time.Second     // a killed bash's curl or sleep may hold the pipe
	start := time.Now()
	runErr := cmd.Run()
	problems := wt.check(out.String())
	if runErr != nil {
		// The ERR trap names the README line of the command that failed.
		failed := failedAt.FindAllString(out.String(), -1)
		if len(failed) == 0 {
			failed = []string{fmt.Sprintf("bash README.md: %v (context: %v)", runErr, ctx.Err())}
		}
		problems = append(failed, problems...)
	}
	if len(problems) > 0 {
		t.Errorf("README walkthrough (%d blocks, %d expected outputs) failed:\n%s\n\noutput:\n%s",
			wt.blocks, len(wt.expects), strings.Join(problems, "\n"), printable(out.String()))
	}
	t.Logf("README walkthrough: %d blocks, %d expected outputs, %s", wt.blocks, len(wt.expects), time.Since(start).Round(time.Millisecond))
}

// walkthrough is the README's walkthrough as one bash script.
type walkthrough struct {
	// script has the README's line numbers: line n of the script is line n
	// of the README when it is in a walkthrough block, else blank.
	script  string
	blocks  int
	expects map[int]expectation // by README line
}

// expectation is an answer the README shows, "…" standing for anything.
type expectation struct {
	text string
	re   *regexp.Regexp
}

// parseWalkthrough builds the walkthrough from the README. Every fenced
// block that runs curl must be marked: an example nobody runs goes stale.
// In a block, a comment line starting with "# {" or "# [" (continued by
// lines starting with "#  ") shows a line of the answer of the command
// above it, "…" standing for anything.
func parseWalkthrough(readme string) (walkthrough, error) {
	lines := strings.Split(readme, "\n")
	script := make([]string, len(lines)+1)
	wt := walkthrough{expects: map[int]expectation{}}
	for i := 0; i < len(lines); i++ {
		fence := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(fence, "```") {
			continue
		}
		end := i + 1
		for end < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[end]), "```") {
			end++
		}
		if end == len(lines) {
			return wt, fmt.Errorf("README.md:%d: the block never closes", i+1)
		}
		body := lines[i+1 : end]
		marked := i > 0 && strings.HasPrefix(lines[i-1], walkthroughMarker)
		switch {
		case marked && fence != "```sh":
			return wt, fmt.Errorf("README.md:%d: a walkthrough block must be a ```sh block, not %s", i+1, fence)
		case !marked && strings.Contains(strings.Join(body, "\n"), "curl "):
			return wt, fmt.Errorf("README.md:%d: a block with curl commands is not marked %q: mark it so the test runs it", i+1, walkthroughMarker+" … -->")
		}
		if marked {
			wt.blocks++
			script[i] = fmt.Sprintf(`printf '\n\036block %d\n'`, i+1)
			for j := i + 1; j < end; j++ {
				text, ok := strings.CutPrefix(lines[j], "# ")
				if !ok || !(strings.HasPrefix(text, "{") || strings.HasPrefix(text, "[")) {
					script[j] = lines[j]
					continue
				}
				first := j
				for j+1 < end && strings.HasPrefix(lines[j+1], "#  ") {
					text += strings.TrimSpace(strings.TrimPrefix(lines[j+1], "#"))
					script[j+1] = lines[j+1]
					j++
				}
				line := first + 1
				wt.expects[line] = expect(text)
				script[first] = fmt.Sprintf(`printf '\n\036%d\n'`, line)
			}
		}
		i = end
	}
	if wt.blocks == 0 {
		return wt, fmt.Errorf("README.md has no block marked %q", walkthroughMarker+" … -->")
	}
	if script[0] != "" {
		return wt, fmt.Errorf("README.md:1 is in a walkthrough block; the script needs line 1")
	}
	// Line 1 of the README is a heading, so line 1 of the script is free.
	script[0] = `set -euo pipefail; trap 'echo "README.md:$LINENO: exit status $? (a command failed or answered an error status)" >&2' ERR`
	script[len(lines)] = `printf '\n\036end\n'`
	wt.script = strings.Join(script, "\n") + "\n"
	return wt, nil
}

// expect matches a whole output line like text, "…" matching anything.
func expect(text string) expectation {
	parts := strings.Split(text, "…")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return expectation{text: text, re: regexp.MustCompile("^" + strings.Join(parts, ".*") + "$")}
}

// check cuts the script's output at its marks and returns a line per
// expectation that no output line since the mark before it matches, or
// that the script never reached.
func (wt walkthrough) check(out string) []string {
	var problems []string
	seen := map[int]bool{}
	var since []string
	ended := false
	for _, line := range strings.Split(out, "\n") {
		mark, ok := strings.CutPrefix(line, markRS)
		if !ok {
			since = append(since, strings.TrimRight(line, "\r"))
			continue
		}
		if mark == "end" {
			ended = true
		}
		if n, err := strconv.Atoi(mark); err == nil {
			if want, ok := wt.expects[n]; ok {
				seen[n] = true
				if !slices.ContainsFunc(since, want.re.MatchString) {
					problems = append(problems, fmt.Sprintf("README.md:%d: the command above answered no line like %s", n, want.text))
				}
			}
		}
		since = since[:0]
	}
	var missed []int
	for n := range wt.expects {
		if !seen[n] {
			missed = append(missed, n)
		}
	}
	slices.Sort(missed)
	if len(missed) > 0 {
		problems = append(problems, fmt.Sprintf("%d expected outputs not reached, from README.md:%d on", len(missed), missed[0]))
	}
	if !ended && len(problems) == 0 {
		problems = append(problems, "the walkthrough did not run to its end")
	}
	return problems
}

// printable shows the marks in the output as README positions.
func printable(out string) string {
	return strings.NewReplacer(markRS+"block ", "## block at README.md:", markRS, "## README.md:").Replace(out)
}

// TestWalkthroughScript runs the script made of small READMEs with bash and
// checks what the test would report.
func TestWalkthroughScript(t *testing.T) {
	t.Parallel()
	const mark = walkthroughMarker + " run -->\n"
	tests := []struct {
		name, readme string
		wantErr      string   // from parseWalkthrough
		wantFail     bool     // bash exits non-zero
		wantProblems []string // one substring per problem
	}{
		{name: "unmarked curl block", readme: "# t\n\n```sh\ncurl -s $MOIM/healthz\n```\n",
			wantErr: "README.md:3: a block with curl commands is not marked"},
		{name: "marked block in another language", readme: "# t\n" + mark + "```bash\necho hi\n```\n",
			wantErr: "README.md:3: a walkthrough block must be a ```sh block"},
		{name: "no walkthrough", readme: "# t\n\n```sh\nmake run\n```\n", wantErr: "no block marked"},
		{name: "unclosed block", readme: "# t\n" + mark + "```sh\necho hi\n", wantErr: "README.md:3: the block never closes"},
		{name: "answers as shown", readme: "# t\n" + mark + "```sh\necho '{\"status\":\"ok\"}'\n# {\"status\":\"…\"}\n" +
			"X=$(echo '{\"a\":1,\"b\":[2]}')\necho \"$X\"\n# {\"a\":1,\n#  \"b\":[…]}\n```\n\ntext\n" +
			mark + "```sh\necho \"$X\" >&2   # variables carry over\n# {\"a\":1,…}\n```\n"},
		{name: "another answer", readme: "# t\n" + mark + "```sh\necho '{\"status\":\"down\"}'\n# {\"status\":\"ok\"}\n```\n",
			wantProblems: []string{`README.md:5: the command above answered no line like {"status":"ok"}`}},
		{name: "the answer of an earlier command", readme: "# t\n" + mark + "```sh\necho '{\"a\":1}'\n# {\"a\":1}\n" +
			"echo '{\"a\":2}'\n# {\"a\":1}\n```\n",
			wantProblems: []string{`README.md:7: the command above answered no line like {"a":1}`}},
		{name: "a failing command", readme: "# t\n" + mark + "```sh\necho '{}'\nfalse\n# {}\n```\n",
			wantFail: true, wantProblems: []string{"README.md:5: exit status 1", "1 expected outputs not reached, from README.md:6 on"}},
		{name: "an unset variable", readme: "# t\n" + mark + "```sh\necho $NOPE\n```\n",
			wantFail: true, wantProblems: []string{"README.md: line 4: NOPE: unbound variable", "did not run to its end"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wt, err := parseWalkthrough(tc.readme)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseWalkthrough error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte(wt.script), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("bash", "README.md")
			cmd.Dir, cmd.Env = dir, []string{"PATH=" + os.Getenv("PATH")}
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			runErr := cmd.Run()
			problems := append(failedAt.FindAllString(out.String(), -1), wt.check(out.String())...)
			if (runErr != nil) != tc.wantFail {
				t.Errorf("bash: %v, want failure %v", runErr, tc.wantFail)
			}
			if len(problems) != len(tc.wantProblems) {
				t.Fatalf("problems = %q, want %q\noutput:\n%s", problems, tc.wantProblems, printable(out.String()))
			}
			for i, want := range tc.wantProblems {
				if !strings.Contains(problems[i], want) {
					t.Errorf("problem %d = %q, want it to contain %q", i, problems[i], want)
				}
			}
		})
	}
}

// TestREADMETicks checks the README's tick table against the catalogue:
// every tick with its default spec, and no tick that is gone.
func TestREADMETicks(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z-]+)` \\| `([^`]+)` \\| `tick:")
	listed := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		listed[m[1]] = m[2]
	}
	for _, tick := range jobs.Ticks() {
		spec, ok := listed[tick.Name]
		switch {
		case !ok:
			t.Errorf("README's tick table lacks %s (%s)", tick.Name, tick.Spec)
		case spec != tick.Spec:
			t.Errorf("README gives %s the spec %q; jobs/ticks.go says %q", tick.Name, spec, tick.Spec)
		}
		delete(listed, tick.Name)
	}
	for name := range listed {
		t.Errorf("README lists a tick %s that jobs.Ticks() does not have", name)
	}
}
