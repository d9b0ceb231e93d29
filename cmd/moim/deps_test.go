package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The dependency direction of DESIGN.md section 4: for each of our packages,
// the only packages of ours it may import. A wrong arrow fails here, not in
// review.
var allowedImports = []struct {
	pkg     string // package path relative to the module, "/..." = with sub-packages
	allowed []string
	tests   []string // what its tests may import besides allowed and testHelpers
}{
	{pkg: "domain", allowed: nil},
	{pkg: "templates/...", allowed: nil},
	{pkg: "config", allowed: []string{"domain"}},
	{pkg: "db/...", allowed: []string{"domain", "db/..."}},
	{pkg: "jobs/...", allowed: []string{"domain", "db/...", "templates/...", "jobs/..."}},
	// Sessions are tested on the SQL store they run on in production,
	// which auth itself knows only as an interface.
	{pkg: "cmd/api/auth/...", allowed: []string{"domain"}, tests: []string{"db"}},
	{pkg: "cmd/api/httpapi/...", allowed: []string{"domain", "db/...", "jobs/...", "cmd/api/auth/...", "cmd/api/httpapi/..."}},
	{pkg: "cmd/scheduler/cronrun/...", allowed: []string{"domain", "jobs/..."}},
	{pkg: "internal/clocktest", allowed: nil},
}

// Test helper packages. Any package's tests may import them (a per-test
// database or Redis, the instant a run treats as now); production code
// keeps to allowedImports.
var testHelpers = []string{"db/dbtest", "jobs/jobstest", "internal/clocktest"}

// Third-party packages that must never reach domain: it is pure Go, no I/O.
var domainForbidden = []string{
	"github.com/uptrace/bun", "github.com/hibiken/asynq", "github.com/go-chi/",
	"github.com/redis/go-redis", "net/http", "database/sql", "github.com/spf13/viper",
}

func match(pattern, path string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == base || strings.HasPrefix(path, base+"/")
	}
	return path == pattern
}

// listedPackage is one package as go list describes it.
type listedPackage struct {
	path        string   // import path
	imports     []string // of its non-test files
	testImports []string // of its _test.go files, internal and external
	deps        []string // everything its non-test files depend on
}

// listFormat prints a listedPackage per line, fields separated by tabs.
const listFormat = "{{.ImportPath}}\t{{join .Imports \" \"}}\t" +
	"{{join .TestImports \" \"}} {{join .XTestImports \" \"}}\t{{join .Deps \" \"}}"

func TestDependencyDirection(t *testing.T) {
	t.Parallel()
	modDir, module := moduleRoot(t)
	cmd := exec.Command("go", "list", "-f", listFormat, "./...")
	cmd.Dir = modDir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []listedPackage
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20) // a Deps line can pass the 64 KiB default
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 4 {
			t.Fatalf("go list line %q: want 4 tab-separated fields, got %d", sc.Text(), len(f))
		}
		pkgs = append(pkgs, listedPackage{
			path:        f[0],
			imports:     strings.Fields(f[1]),
			testImports: strings.Fields(f[2]),
			deps:        strings.Fields(f[3]),
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read go list output: %v", err)
	}
	problems, checked := checkImports(module, pkgs)
	for _, p := range problems {
		t.Error(p)
	}
	if checked == 0 {
		t.Fatal("no package matched the rules: the check would pass vacuously")
	}
}

// TestCheckImports feeds checkImports made-up packages, so a check that
// stopped failing would be noticed here.
func TestCheckImports(t *testing.T) {
	t.Parallel()
	const mod = "example.com/m"
	tests := []struct {
		name string
		pkg  listedPackage
		want int // problems
	}{
		{"allowed import", listedPackage{path: mod + "/cmd/api/auth", imports: []string{mod + "/domain", "fmt"}}, 0},
		{"wrong import", listedPackage{path: mod + "/cmd/api/auth", imports: []string{mod + "/db"}}, 1},
		{"test helper in production", listedPackage{path: mod + "/cmd/api/auth", imports: []string{mod + "/jobs/jobstest"}}, 1},
		{"test helpers in tests", listedPackage{path: mod + "/cmd/api/auth", testImports: []string{mod + "/jobs/jobstest", mod + "/db/dbtest"}}, 0},
		{"clock helper in domain tests", listedPackage{path: mod + "/domain", testImports: []string{mod + "/internal/clocktest"}}, 0},
		{"clock helper in production", listedPackage{path: mod + "/jobs", imports: []string{mod + "/internal/clocktest"}}, 1},
		{"wrong test import", listedPackage{path: mod + "/cmd/api/auth", testImports: []string{mod + "/jobs"}}, 1},
		{"test-only import in tests", listedPackage{path: mod + "/cmd/api/auth", testImports: []string{mod + "/db"}}, 0},
		{"test-only import in production", listedPackage{path: mod + "/cmd/api/auth", imports: []string{mod + "/db"}}, 1},
		{"external test of itself", listedPackage{path: mod + "/cmd/api/auth", testImports: []string{mod + "/cmd/api/auth"}}, 0},
		{"domain importing anything", listedPackage{path: mod + "/domain", imports: []string{mod + "/config"}}, 1},
		{"domain reaching redis", listedPackage{path: mod + "/domain", deps: []string{"github.com/redis/go-redis/v9"}}, 1},
		{"package without a rule", listedPackage{path: mod + "/cmd/worker", imports: []string{mod + "/config"}}, 0},
	}
	for _, tt := range tests {
		problems, _ := checkImports(mod, []listedPackage{tt.pkg})
		if len(problems) != tt.want {
			t.Errorf("%s: problems = %q, want %d", tt.name, problems, tt.want)
		}
	}
}

// checkImports returns one line per import against the rules and how many
// packages had a rule.
func checkImports(module string, pkgs []listedPackage) (problems []string, checked int) {
	for _, pkg := range pkgs {
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg.path, module), "/")
		for _, rule := range allowedImports {
			if !match(rule.pkg, rel) {
				continue
			}
			checked++
			if rel == "domain" {
				for _, dep := range pkg.deps {
					for _, bad := range domainForbidden {
						if strings.HasPrefix(dep, bad) {
							problems = append(problems, fmt.Sprintf("domain depends on %s: domain must stay free of I/O and frameworks", dep))
						}
					}
				}
			}
			for _, imp := range pkg.imports {
				if impRel, ours := ownImport(module, imp); ours && impRel != rel && !allowed(rule.allowed, impRel) {
					problems = append(problems, fmt.Sprintf("%s imports %s: not allowed by the dependency direction (DESIGN.md section 4)", rel, impRel))
				}
			}
			for _, imp := range pkg.testImports {
				// impRel == rel: an external test package importing the package it tests.
				if impRel, ours := ownImport(module, imp); ours && impRel != rel &&
					!allowed(rule.allowed, impRel) && !allowed(testHelpers, impRel) && !allowed(rule.tests, impRel) {
					problems = append(problems, fmt.Sprintf("tests of %s import %s: not allowed by the dependency direction (DESIGN.md section 4)", rel, impRel))
				}
			}
		}
	}
	return problems, checked
}

// ownImport returns imp relative to the module, and whether it is ours.
func ownImport(module, imp string) (string, bool) {
	return strings.CutPrefix(imp, module+"/")
}

func allowed(patterns []string, path string) bool {
	for _, p := range patterns {
		if match(p, path) {
			return true
		}
	}
	return false
}

func TestMatchRule(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, path string
		want          bool
	}{
		{"db/...", "db", true},
		{"db/...", "db/dbtest", true},
		{"db/...", "dbx", false},
		{"domain", "domain", true},
		{"domain", "domain/x", false},
	}
	for _, tt := range tests {
		if got := match(tt.pattern, tt.path); got != tt.want {
			t.Errorf("match(%q, %q) = %v, want %v", tt.pattern, tt.path, got, tt.want)
		}
	}
}

func moduleRoot(t *testing.T) (dir, module string) {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	out, err = exec.Command("go", "list", "-m").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return filepath.Dir(gomod), strings.TrimSpace(string(out))
}
