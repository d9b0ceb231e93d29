package main

import (
	"bufio"
	"bytes"
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
}{
	{"domain", nil},
	{"templates/...", nil},
	{"config", []string{"domain"}},
	{"db/...", []string{"domain", "db/..."}},
	{"jobs/...", []string{"domain", "db/...", "templates/...", "jobs/..."}},
	{"cmd/api/auth/...", []string{"domain"}},
	{"cmd/api/httpapi/...", []string{"domain", "db/...", "jobs/...", "cmd/api/auth/...", "cmd/api/httpapi/..."}},
	{"cmd/scheduler/cronrun/...", []string{"domain", "jobs/..."}},
}

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

func TestDependencyDirection(t *testing.T) {
	t.Parallel()
	modDir, module := moduleRoot(t)
	// Test imports count too (a test helper must not drag a forbidden
	// package in), and domain is checked against all it depends on.
	cmd := exec.Command("go", "list", "-f",
		`{{.ImportPath}}:{{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}:{{join .Deps " "}}`, "./...")
	cmd.Dir = modDir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	checked := 0
	for sc.Scan() {
		pkgPath, rest, _ := strings.Cut(sc.Text(), ":")
		imports, deps, _ := strings.Cut(rest, ":")
		rel := strings.TrimPrefix(strings.TrimPrefix(pkgPath, module), "/")
		for _, rule := range allowedImports {
			if !match(rule.pkg, rel) {
				continue
			}
			checked++
			if rel == "domain" {
				for _, dep := range strings.Fields(deps) {
					for _, bad := range domainForbidden {
						if strings.HasPrefix(dep, bad) {
							t.Errorf("domain depends on %s: domain must stay free of I/O and frameworks", dep)
						}
					}
				}
			}
			for _, imp := range strings.Fields(imports) {
				if !strings.HasPrefix(imp, module+"/") {
					continue
				}
				impRel := strings.TrimPrefix(imp, module+"/")
				if impRel == rel {
					continue // an external test package importing the package it tests
				}
				ok := false
				for _, a := range rule.allowed {
					if match(a, impRel) {
						ok = true
					}
				}
				if !ok {
					t.Errorf("%s imports %s: not allowed by the dependency direction (DESIGN.md section 4)", rel, impRel)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no package matched the rules: the check would pass vacuously")
	}
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
