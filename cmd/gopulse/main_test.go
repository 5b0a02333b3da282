package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gopulse/gopulse/internal/leakreport"
)

// binary is the real gopulse, built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gopulse-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	binary = filepath.Join(dir, "gopulse")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build gopulse: %v\n%s", err, out)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// runBinary runs the built gopulse and returns stdout, stderr and the exit code.
func runBinary(t *testing.T, timeout time.Duration, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run gopulse %v: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("gopulse %v did not finish within %s; stderr:\n%s", args, timeout, stderr.String())
	}
	return stdout.String(), stderr.String(), code
}

func TestLeaksDemoEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the demo and samples it for several seconds")
	}
	tests := []struct {
		name      string
		args      []string
		wantCode  int
		wantLeaks []string // substrings of blocking functions that must be leaks
	}{
		{"leaky", []string{"leaks", "--demo", "--interval", "2s", "--trace", "1s", "--format", "json", "--quiet"}, 1, []string{"(*service).quote.func1"}},
		{"healthy", []string{"leaks", "--demo", "--demo-healthy", "--interval", "2s", "--trace", "1s", "--format", "json", "--quiet"}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := runBinary(t, 90*time.Second, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit status %d, want %d; stderr:\n%s\nstdout:\n%s", code, tt.wantCode, stderr, stdout)
			}
			var rep leakreport.Report
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
				t.Fatalf("output is not the JSON report: %v\n%s", err, stdout)
			}
			if rep.Snapshots != 4 || len(rep.Groups) == 0 {
				t.Fatalf("report has %d snapshots and %d groups", rep.Snapshots, len(rep.Groups))
			}
			for _, want := range tt.wantLeaks {
				found := false
				for _, g := range rep.Groups {
					if g.Verdict == "leak" && strings.Contains(g.Blocking.Func, want) {
						found = true
						if len(g.Evidence) == 0 || g.CreatedBy.Func == "" || len(g.Frames) == 0 {
							t.Errorf("leak group %s lacks evidence, created-by or frames: %+v", want, g)
						}
					}
				}
				if !found {
					t.Errorf("no leak group blocked in %s; groups:\n%s", want, describe(rep))
				}
			}
			// The healthy parts of the demo must never be called leaks.
			for _, g := range rep.Groups {
				for _, healthy := range []string{"(*service).worker", "(*service).flusher", "(*service).load", "net/http.(*Server).Serve", "signal"} {
					if g.Verdict == "leak" && strings.Contains(g.Blocking.Func, healthy) {
						t.Errorf("healthy waiter %s called a leak: %v", g.Blocking.Func, g.Evidence)
					}
				}
			}
		})
	}
}

func describe(rep leakreport.Report) string {
	var b strings.Builder
	for _, g := range rep.Groups {
		fmt.Fprintf(&b, "  %s %d %s %v\n", g.Verdict, g.Count, g.Blocking.Func, g.Evidence)
	}
	return b.String()
}

// TestLeaksBadTargets checks that every broken target ends in one line on
// stderr and exit status 2, within the configured time limits.
func TestLeaksBadTargets(t *testing.T) {
	notPprof := httptest.NewServer(http.NotFoundHandler())
	defer notPprof.Close()
	htmlPage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<html><body>hello</body></html>")
	}))
	defer htmlPage.Close()
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(release)
	drop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer drop.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()

	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.bin")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef, 0x00}, 4096), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"404 is not pprof", []string{"leaks", notPprof.URL}, "does not serve net/http/pprof"},
		{"html is not a dump", []string{"leaks", htmlPage.URL}, "not with a goroutine dump"},
		{"hanging target", []string{"leaks", "--timeout", "1s", hang.URL}, "did not answer within 1s"},
		{"dropped connection", []string{"leaks", drop.URL}, "debug/pprof/goroutine"},
		{"connection refused", []string{"leaks", refused}, "connection refused"},
		{"binary garbage", []string{"leaks", garbage}, "no goroutine dump found"},
		{"missing file", []string{"leaks", filepath.Join(dir, "nope.txt")}, "no such file"},
		{"no target", []string{"leaks"}, "no TARGET given"},
		{"bad format", []string{"leaks", "--format", "xml", garbage}, "--format"},
		{"unknown command", []string{"frobnicate"}, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := runBinary(t, 30*time.Second, tt.args...)
			if code != 2 {
				t.Errorf("exit status %d, want 2; stderr: %s", code, stderr)
			}
			last := lastLine(stderr)
			if !strings.HasPrefix(last, "gopulse: ") || !strings.Contains(last, tt.want) {
				t.Errorf("last stderr line %q: want a 'gopulse: …' line containing %q", last, tt.want)
			}
			if strings.Contains(stderr, "panic") {
				t.Errorf("panic in stderr:\n%s", stderr)
			}
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestLeaksFilesInProcess drives run() directly with dump files taken from
// the real demo, and checks all three output formats.
func TestLeaksFilesInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the demo")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "demo", "leaky", "--listen", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	base, err := readAnnounce(stdout, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for i := 0; i < 3; i++ {
		if i > 0 {
			time.Sleep(1500 * time.Millisecond)
		}
		resp, err := http.Get(base + "goroutine?debug=2")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, fmt.Sprintf("dump%d.txt", i))
		if err := os.WriteFile(f, body, 0o644); err != nil {
			t.Fatal(err)
		}
		// Stamp the capture time: the analysis uses increasing mtimes.
		mt := time.Now()
		if err := os.Chtimes(f, mt, mt); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	for _, format := range []string{"text", "json", "html"} {
		t.Run(format, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(context.Background(), append([]string{"leaks", "--format", format}, files...), strings.NewReader(""), &out, &errb)
			if !errors.Is(err, errLeaksFound) {
				t.Fatalf("run = %v, want errLeaksFound; stderr: %s", err, errb.String())
			}
			want := map[string]string{"text": "LEAK ", "json": `"verdict": "leak"`, "html": `<span class="v leak">leak</span>`}[format]
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s output lacks %q:\n%.2000s", format, want, out.String())
			}
			if !strings.Contains(out.String(), "quote.func1") {
				t.Errorf("%s output does not name the leaking function", format)
			}
		})
	}
}
