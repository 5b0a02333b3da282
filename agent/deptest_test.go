package agent

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportClosure keeps what a user's binary gets from importing the
// agent to the standard library, our wire package and the protobuf
// runtime: no SQLite, no database drivers, no web framework, no CLI
// library, and not our own collector-side packages.
func TestImportClosure(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found:", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", "github.com/gopulse/gopulse/agent", "github.com/gopulse/gopulse/agent/autostart").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowed := []string{
		"github.com/gopulse/gopulse/agent",
		"github.com/gopulse/gopulse/wire",
		"google.golang.org/protobuf/",
	}
	forbidden := []string{"database/sql", "modernc.org/sqlite", "mattn/go-sqlite3", "github.com/gin-gonic", "github.com/labstack/echo",
		"github.com/gofiber", "github.com/go-chi", "github.com/gorilla", "github.com/spf13/cobra", "github.com/urfave/cli", "github.com/alecthomas/kong",
		"github.com/prometheus", "github.com/google/pprof", "golang.org/x/exp", "connectrpc.com", "google.golang.org/grpc",
		"github.com/gopulse/gopulse/wire/wiretest", "github.com/gopulse/gopulse/analyze", "github.com/gopulse/gopulse/cmd"}
	var n int
	for _, pkg := range strings.Fields(string(out)) {
		n++
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f) {
				t.Errorf("agent imports forbidden package %s", pkg)
			}
		}
		first, _, _ := strings.Cut(pkg, "/")
		if !strings.Contains(first, ".") {
			continue // standard library
		}
		ok := false
		for _, a := range allowed {
			if pkg == strings.TrimSuffix(a, "/") || strings.HasPrefix(pkg, a) || strings.HasPrefix(pkg, a+"/") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("agent's import closure includes %s: only the standard library, our wire package and google.golang.org/protobuf are allowed", pkg)
		}
	}
	if n < 10 {
		t.Fatalf("go list returned only %d packages: %s", n, out)
	}
}
