package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const gcSteadyLog = "../../analyze/gc/testdata/real/steady.txt"

// gcJSON is the part of `gopulse gc --format json` the tests check.
type gcJSON struct {
	Source          string  `json:"source"`
	Partial         bool    `json:"partial"`
	GCCPUFraction   float64 `json:"gc_cpu_fraction"`
	CyclesPerSecond float64 `json:"cycles_per_second"`
	Cycles          int     `json:"cycles"`
	PauseP99        float64 `json:"pause_p99_seconds"`
	LiveHeapBytes   uint64  `json:"live_heap_bytes"`
	GOGC            int     `json:"gogc"`
	GOMEMLIMIT      int64   `json:"gomemlimit_bytes"`
	Advice          []struct {
		Kind          string   `json:"kind"`
		Text          string   `json:"text"`
		GOGC          *int     `json:"gogc"`
		GOMEMLIMIT    *int64   `json:"gomemlimit_bytes"`
		GCCPUFraction *float64 `json:"gc_cpu_fraction"`
	} `json:"advice"`
}

func runGCJSON(t *testing.T, args ...string) (gcJSON, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := runGC(ctx, append([]string{"--format", "json"}, args...), strings.NewReader(""), &stdout, &stderr); err != nil {
		t.Fatalf("gopulse gc %v: %v\nstderr:\n%s", args, err, stderr.String())
	}
	var r gcJSON
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("bad JSON: %v\n%s", err, stdout.String())
	}
	return r, stderr.String()
}

func TestGCLogFile(t *testing.T) {
	r, _ := runGCJSON(t, gcSteadyLog, "--gogc", "100")
	if r.Source != "gctrace" || r.Cycles < 5 || r.GCCPUFraction <= 0 || r.GCCPUFraction >= 1 || r.PauseP99 <= 0 || r.LiveHeapBytes < 30<<20 || r.GOGC != 100 {
		t.Errorf("report %+v", r)
	}
	if r.GOMEMLIMIT != 0 {
		t.Errorf("a log file does not show GOMEMLIMIT; got %d", r.GOMEMLIMIT)
	}
	if len(r.Advice) == 0 || r.Advice[0].Text == "" {
		t.Errorf("no advice")
	}
	// Text and HTML render the same report.
	for _, format := range []string{"text", "html"} {
		var out bytes.Buffer
		if err := runGC(context.Background(), []string{"--format", format, gcSteadyLog}, nil, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		s := out.String()
		switch format {
		case "text":
			if !strings.Contains(s, "GC CPU") || !strings.Contains(s, "What if (model)") {
				t.Errorf("text report:\n%s", s)
			}
		case "html":
			if !strings.Contains(s, "<svg") || strings.Contains(s, "<script") || strings.Contains(s, "src=\"http") {
				t.Errorf("HTML must be self-contained with inline SVG plots")
			}
		}
	}
	// stdin.
	f, err := os.Open(gcSteadyLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	if err := runGC(context.Background(), []string{"-", "--format", "json", "--what-if", "400,1GiB"}, f, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"what_if"`) || !strings.Contains(out.String(), `"gogc": 400`) {
		t.Errorf("what-if missing:\n%s", out.String())
	}
}

func TestGCBadInput(t *testing.T) {
	dir := t.TempDir()
	noGC := filepath.Join(dir, "app.log")
	os.WriteFile(noGC, []byte("hello\nworld\n"), 0o644)
	truncated := filepath.Join(dir, "trunc.log")
	os.WriteFile(truncated, []byte("gc 1 @0.004s 3%: 0.010+0.52+0.002 ms clock, 0.040+0.1\n"), 0o644)
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	noMemstats := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"cmdline":["svc"]}`)
	}))
	defer noMemstats.Close()
	tests := []struct {
		name  string
		args  []string
		usage bool
		want  string
	}{
		{"no target", nil, true, "want one TARGET"},
		{"two targets", []string{"a", "b"}, true, "want one TARGET"},
		{"bad format", []string{"--format", "xml", gcSteadyLog}, true, "--format"},
		{"bad gogc", []string{"--gogc", "lots", gcSteadyLog}, true, "--gogc"},
		{"bad what-if", []string{"--what-if", "x", gcSteadyLog}, true, "GOGC"},
		{"nothing after --", []string{"--"}, true, "nothing after --"},
		{"target and command", []string{"x.log", "--", "true"}, true, "not both"},
		{"missing file", []string{filepath.Join(dir, "nope.log")}, false, "no such file"},
		{"no gc lines", []string{noGC}, false, "no GC cycles"},
		{"truncated only", []string{truncated}, false, "truncated"},
		{"404", []string{notFound.URL, "--duration", "1s"}, false, "expvar"},
		{"no memstats", []string{noMemstats.URL, "--duration", "1s"}, false, "memstats"},
		{"refused", []string{"http://127.0.0.1:1", "--duration", "1s"}, false, "refused"},
		{"command exits at once", []string{"--", "true"}, false, "no GC cycle"},
		{"command not found", []string{"--", filepath.Join(dir, "no-such-program")}, false, "start"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := runGC(context.Background(), tt.args, strings.NewReader(""), io.Discard, &stderr)
			if err == nil {
				t.Fatal("no error")
			}
			var ue usageError
			if errors.As(err, &ue) != tt.usage {
				t.Errorf("usage error = %v, want %v (%v)", !tt.usage, tt.usage, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			var msg bytes.Buffer
			if code := exitStatus(err, &msg); code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
		})
	}
}

func buildGCChurn(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gcchurn")
	if out, err := exec.Command("go", "build", "-o", bin, "../../internal/testprog/gcchurn").CombinedOutput(); err != nil {
		t.Fatalf("build gcchurn: %v\n%s", err, out)
	}
	return bin
}

// TestGCCommandEndToEnd runs `gopulse gc -- gcchurn …` and checks the
// analysis against gcchurn's own runtime/metrics totals, which it prints
// at exit (passed through to stderr).
func TestGCCommandEndToEnd(t *testing.T) {
	bin := buildGCChurn(t)
	r, stderr := runGCJSON(t, "--", bin, "-live", "32", "-rate", "80", "-duration", "4s")
	var truth struct {
		Cycles  int     `json:"gc_cycles"`
		CPU     float64 `json:"gc_cpu_fraction"`
		Seconds float64 `json:"seconds"`
		Live    uint64  `json:"live_heap_bytes"`
	}
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		if j, ok := strings.CutPrefix(sc.Text(), "gcchurn: {"); ok {
			if err := json.Unmarshal([]byte("{"+j), &truth); err != nil {
				t.Fatal(err)
			}
		}
	}
	if truth.Cycles == 0 {
		t.Fatalf("gcchurn's output was not passed through:\n%s", stderr)
	}
	if strings.Contains(stderr, "ms clock") {
		t.Error("gc lines leaked into the passed-through output")
	}
	if r.Partial || r.GOGC != 100 || r.GOMEMLIMIT != math.MaxInt64 {
		t.Errorf("partial %v gogc %d gomemlimit %d", r.Partial, r.GOGC, r.GOMEMLIMIT)
	}
	// gctrace's window runs from the first to the last cycle; gcchurn's
	// own count covers its whole run: within a few cycles.
	if d := r.Cycles - truth.Cycles; d < -4 || d > 2 {
		t.Errorf("cycles %d, gcchurn counted %d", r.Cycles, truth.Cycles)
	}
	if r.GCCPUFraction <= 0 || r.GCCPUFraction >= 1 || r.CyclesPerSecond <= 0 || r.PauseP99 <= 0 {
		t.Errorf("report %+v", r)
	}
	// Same quantity, different windows: within a factor of 1.5.
	if ratio := r.GCCPUFraction / truth.CPU; ratio < 0.67 || ratio > 1.5 {
		t.Errorf("GC CPU %.3f, runtime/metrics says %.3f", r.GCCPUFraction, truth.CPU)
	}
	if lr := float64(r.LiveHeapBytes) / float64(truth.Live); lr < 0.7 || lr > 1.4 {
		t.Errorf("live heap %d, runtime/metrics says %d", r.LiveHeapBytes, truth.Live)
	}
	if len(r.Advice) == 0 {
		t.Fatal("no advice")
	}
	for _, a := range r.Advice {
		if a.Kind == "tune" && (a.GCCPUFraction == nil || *a.GCCPUFraction <= 0) {
			t.Errorf("tune advice without a prediction: %+v", a)
		}
	}
}

// TestGCCommandNeverExits: --duration stops a program that would run
// forever (SIGINT, as a user would) and still analyses what it saw.
func TestGCCommandNeverExits(t *testing.T) {
	bin := buildGCChurn(t)
	r, stderr := runGCJSON(t, "--duration", "3500ms", "--", bin, "-live", "16", "-rate", "60", "-duration", "0")
	if r.Cycles < 2 || r.CyclesPerSecond <= 0 {
		t.Errorf("report %+v", r)
	}
	if !strings.Contains(stderr, "gcchurn: {") {
		t.Errorf("gcchurn did not exit cleanly on SIGINT:\n%s", stderr)
	}
}

// TestGCURL samples a running gcchurn's /debug/vars.
func TestGCURL(t *testing.T) {
	bin := buildGCChurn(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-live", "16", "-rate", "60", "-duration", "20s", "-http", "127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cancel()
	sc := bufio.NewScanner(out)
	var base string
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "gcchurn: serving "); ok {
			base = u
			break
		}
	}
	if base == "" {
		t.Fatal("gcchurn did not announce its address")
	}
	go io.Copy(io.Discard, out)
	r, _ := runGCJSON(t, base, "--duration", "2500ms", "--interval", "500ms")
	if r.Source != "memstats" || r.Cycles < 2 || r.CyclesPerSecond <= 0 || r.PauseP99 <= 0 || r.LiveHeapBytes == 0 || r.GOGC != 100 {
		t.Errorf("report %+v", r)
	}
}
