package httpapi

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestEveryDomainCodeHasAStatus reads domain's error codes from its source,
// so a code added there without a row in statusOf fails here instead of
// answering 500 to a client.
func TestEveryDomainCodeHasAStatus(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "../../../domain/error.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	ast.Inspect(f, func(node ast.Node) bool {
		spec, ok := node.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range spec.Names {
			if !strings.HasPrefix(name.Name, "E") || i >= len(spec.Values) {
				continue
			}
			lit, ok := spec.Values[i].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				continue
			}
			code, _ := strconv.Unquote(lit.Value)
			n++
			if got := statusOf(code); got == http.StatusInternalServerError && name.Name != "EINTERNAL" {
				t.Errorf("domain.%s (%q) answers 500: give it a status in statusOf", name.Name, code)
			}
		}
		return false
	})
	if n < 20 {
		t.Fatalf("found %d codes in domain/error.go; the parse missed them", n)
	}
}
