package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopulse/gopulse/agent"
	"github.com/gopulse/gopulse/loadramp"
)

// rampServer is a trivial target that also serves /debug/vars and
// /debug/pprof the way a real service would.
func rampServer(t *testing.T, status int) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Test") != "1" {
			w.WriteHeader(400)
			return
		}
		w.WriteHeader(status)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

func TestRampFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no url", nil, "give one target URL"},
		{"bad slo", []string{"http://127.0.0.1:1/", "--slo", "p99=1"}, "--slo"},
		{"bad rates", []string{"http://127.0.0.1:1/", "--rates", "10,x"}, "--rates"},
		{"bad format", []string{"http://127.0.0.1:1/", "--format", "xml"}, "--format"},
		{"bad header", []string{"http://127.0.0.1:1/", "-H", "novalue"}, "Name: value"},
		{"bad engine", []string{"http://127.0.0.1:1/", "--engine", "curl"}, "--engine"},
		{"two bodies", []string{"http://127.0.0.1:1/", "--body", "a", "--body-file", "f"}, "not both"},
		{"remote without --yes", []string{"http://192.0.2.1/", "--rates", "1000"}, "--yes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := runRamp(context.Background(), tc.args, nil, new(bytes.Buffer), &stderr)
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want a usage error containing %q", err, tc.want)
			}
		})
	}
}

func TestRampJSON(t *testing.T) {
	url := rampServer(t, 200)
	var stdout, stderr bytes.Buffer
	err := runRamp(context.Background(), []string{url, "--rates", "100,200", "--step", "300ms", "--warmup", "100ms",
		"-H", "X-Test: 1", "--slo", "p99<500ms,errors<1%", "--format", "json"}, nil, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var got struct {
		Max   *float64 `json:"max_sustainable_rps"`
		Steps []struct {
			Offered  float64          `json:"offered_rps"`
			Achieved float64          `json:"achieved_rps"`
			P99      *float64         `json:"p99_seconds"`
			P99U     *float64         `json:"p99_uncorrected_seconds"`
			Errors   *int64           `json:"errors"`
			Kinds    map[string]int64 `json:"error_kinds"`
		} `json:"steps"`
		Saturation string `json:"saturation"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	if len(got.Steps) != 2 || got.Max == nil || got.Saturation == "" {
		t.Fatalf("report %s", stdout.String())
	}
	for _, s := range got.Steps {
		if s.P99 == nil || s.P99U == nil || s.Errors == nil || *s.Errors != 0 || s.Achieved == 0 {
			t.Errorf("step %+v", s)
		}
	}
	if *got.Max != 200 && !strings.Contains(stderr.String(), "generator-limited") {
		t.Errorf("max sustainable %v on a trivial server (progress: %s)", *got.Max, stderr.String())
	}
	if !strings.Contains(stderr.String(), "ramp:") {
		t.Errorf("no progress lines: %q", stderr.String())
	}
}

func TestRampTextAndHTML(t *testing.T) {
	url := rampServer(t, 503)
	dir := t.TempDir()
	html := filepath.Join(dir, "r.html")
	args := []string{url, "--rates", "50,100", "--step", "200ms", "--warmup", "50ms", "-H", "X-Test: 1", "-q"}
	var stdout bytes.Buffer
	if err := runRamp(context.Background(), args, nil, &stdout, new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	text := stdout.String()
	for _, want := range []string{"max sustainable: 0 req/s", "saturated first: errors:", "http_5xx"} {
		if !strings.Contains(text, want) {
			t.Errorf("text report lacks %q:\n%s", want, text)
		}
	}
	if err := runRamp(context.Background(), append(args, "--format", "html", "-o", html), nil, new(bytes.Buffer), new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "<svg"); n != 3 || !strings.Contains(string(b), "Saturated first") {
		t.Errorf("HTML report has %d plots", n)
	}
}

func TestRampUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/"
	ln.Close()
	var stdout bytes.Buffer
	err = runRamp(context.Background(), []string{url, "--rates", "50", "--step", "200ms", "--warmup", "0s", "-q", "--runtime", "off"}, nil, &stdout, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "connect_refused") {
		t.Errorf("refused connections not classified:\n%s", stdout.String())
	}
}

// TestRampReadsTheRealAgent checks loadramp's reading of the agent's
// handler against the real agent: loadramp may not import agent, so the
// JSON names are the contract and this test guards it.
func TestRampReadsTheRealAgent(t *testing.T) {
	a, err := agent.Start(context.Background(), agent.Options{SpoolDir: t.TempDir(), SampleInterval: 20 * time.Millisecond,
		BatchInterval: 100 * time.Millisecond, FlightRecorder: agent.FlightRecorderOff})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop(context.Background())
	deadline := time.Now().Add(5 * time.Second)
	for a.Status().SampledAt.IsZero() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	mux := http.NewServeMux()
	mux.Handle("/debug/gopulse/", a.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	rr, err := loadramp.NewRuntimeReader(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	s := rr.Sample(context.Background())
	if s.Agent == nil || s.Agent.Goroutines == 0 || s.Agent.HeapGoalBytes == 0 {
		t.Fatalf("agent status not read: %+v", s.Agent)
	}
}
