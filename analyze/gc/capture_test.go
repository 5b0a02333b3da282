package gc

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Regenerate the real captures (run from analyze/gc):
//
//	go test -run TestCapture -capture
//	go test -run 'TestGolden|TestRealMetrics' -update
//
// testdata/real/go127.txt comes from the Go 1.27.3 toolchain (format check
// across versions), made from the module root with:
//
//	GOTOOLCHAIN=go1.27.3 go build -o /tmp/gcchurn127 ./internal/testprog/gcchurn
//	(echo "# captured: …"; GODEBUG=gctrace=1 /tmp/gcchurn127 -live 24 -rate 80 -duration 3s -force 1s 2>&1 >/dev/null) > analyze/gc/testdata/real/go127.txt
var capture = flag.Bool("capture", false, "re-capture testdata/real from internal/testprog/gcchurn")

// buildGCChurn compiles internal/testprog/gcchurn into dir.
func buildGCChurn(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "gcchurn")
	out, err := exec.Command("go", "build", "-o", bin, "../../internal/testprog/gcchurn").CombinedOutput()
	if err != nil {
		t.Fatalf("build gcchurn: %v\n%s", err, out)
	}
	return bin
}

var captures = []struct {
	name string
	env  []string
	args []string
	both bool // capture stdout and stderr interleaved
}{
	{"steady", nil, []string{"-live", "32", "-rate", "100", "-duration", "3s"}, false},
	{"forced", nil, []string{"-live", "16", "-rate", "40", "-force", "250ms", "-duration", "2s"}, false},
	{"memlimit", []string{"GOMEMLIMIT=72MiB", "GOGC=400"}, []string{"-live", "40", "-rate", "150", "-duration", "3s"}, false},
	{"gogc50", []string{"GOGC=50"}, []string{"-live", "24", "-rate", "80", "-duration", "2s"}, false},
	{"interleaved", nil, []string{"-live", "16", "-rate", "60", "-duration", "2s", "-http", "127.0.0.1:0"}, true},
	// CPU-bound on one P: no idle Ps, so no idle-priority marking.
	{"cpubound", []string{"GOMAXPROCS=1"}, []string{"-live", "16", "-rate", "0", "-work", "100000", "-duration", "4s"}, false},
}

func TestCapture(t *testing.T) {
	if !*capture {
		t.Skip("pass -capture to re-capture testdata/real")
	}
	bin := buildGCChurn(t, t.TempDir())
	for _, c := range captures {
		cmd := exec.Command(bin, c.args...)
		cmd.Env = append(append(os.Environ(), "GODEBUG=gctrace=1"), c.env...)
		var buf bytes.Buffer
		cmd.Stderr = &buf
		if c.both {
			cmd.Stdout = &buf
		}
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		hdr := "# captured: GODEBUG=gctrace=1 " + strings.Join(c.env, " ") + " gcchurn " + strings.Join(c.args, " ") + "\n"
		if err := os.WriteFile(filepath.Join("testdata/real", c.name+".txt"), append([]byte(hdr), buf.Bytes()...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Two /debug/vars snapshots 1 s apart from a running gcchurn.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-live", "24", "-rate", "80", "-duration", "4s", "-http", "127.0.0.1:0")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	sc := bufio.NewScanner(out)
	var base string
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "gcchurn: serving "); ok {
			base = u
			break
		}
	}
	go io.Copy(io.Discard, out)
	if base == "" {
		t.Fatal("gcchurn did not print its address")
	}
	for i, wait := range []time.Duration{1500 * time.Millisecond, time.Second} {
		time.Sleep(wait)
		resp, err := http.Get(base + "/debug/vars")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		name := filepath.Join("testdata/real", "vars"+string(rune('1'+i))+".json")
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
