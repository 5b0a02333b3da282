package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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
		{"bad arrivals", []string{"http://127.0.0.1:1/", "--arrivals", "bursty"}, "--arrivals"},
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
	if s.Agent == nil || s.Agent.Goroutines == 0 || s.Agent.HeapGoalBytes == 0 || s.Agent.CPUSeconds == nil {
		t.Fatalf("agent status not read (or without cpu_seconds): %+v", s.Agent)
	}
}

// startAgentDemo builds examples/agentdemo and starts it on 127.0.0.1 with
// one P (so it saturates well before the generator on a small machine) and
// the agent sampling four times a second (so its scheduling latency follows
// short steps). It returns the service's base URL.
func startAgentDemo(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "agentdemo")
	if out, err := exec.Command("go", "build", "-o", bin, "../../examples/agentdemo").CombinedOutput(); err != nil {
		t.Fatalf("build examples/agentdemo: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1", "GOPULSE_SAMPLE_INTERVAL=250ms", "GOPULSE_BATCH_INTERVAL=1s",
		"GOPULSE_FLIGHT_RECORDER=off", "GOPULSE_SPOOL_DIR="+t.TempDir(), "GOPULSE_COLLECTOR=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("agentdemo: read its address: %v", err)
	}
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "agentdemo listening on ")
	if !ok {
		t.Fatalf("agentdemo printed %q", line)
	}
	// The agent's first sample comes after one interval.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/debug/gopulse/")
		if err == nil {
			var st struct {
				Goroutines int `json:"goroutines"`
			}
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if st.Goroutines > 0 {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return url
}

// TestRampAgentDemo is the acceptance check in small: gopulse ramp
// against the example service (a real child process running the gopulse
// agent, no /debug/vars or /debug/pprof) finds a limit and names what
// saturated, argued from the runtime signals the agent serves. The plan is
// short and the whole run bounded by --max-time; nothing depends on how
// fast this machine is, except that a machine too busy for the generator
// to keep its schedule makes the ramp stop and say so, and the test skip.
func TestRampAgentDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and loads a child process")
	}
	base := startAgentDemo(t)
	var stdout, stderr bytes.Buffer
	err := runRamp(context.Background(), []string{base + "/", "--start", "500", "--max-rate", "64000", "--resolution", "0.5",
		"--step", "500ms", "--warmup", "200ms", "--slo", "p99<100ms,errors<1%", "--max-time", "25s", "--max-steps", "16",
		"--format", "json"}, nil, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var got struct {
		Max        float64 `json:"max_sustainable_rps"`
		FirstFail  float64 `json:"first_failing_rps"`
		Stop       string  `json:"stop_reason"`
		Saturation string  `json:"saturation"`
		Evidence   []string
		Source     string `json:"runtime_source"`
		Steps      []struct {
			Offered float64 `json:"offered_rps"`
			Runtime *struct {
				Sched float64 `json:"sched_latency_p99_seconds"`
				CPU   float64 `json:"process_cpu_cores"`
				Procs int     `json:"procs"`
			} `json:"runtime"`
		} `json:"steps"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	t.Logf("progress:\n%s", stderr.String())
	t.Logf("max %.0f req/s, first fail %.0f; %s\nsaturated: %s", got.Max, got.FirstFail, got.Stop, got.Saturation)
	if !strings.Contains(got.Source, "agent") || strings.Contains(got.Source, "/debug/vars") || strings.Contains(got.Source, "/debug/pprof") {
		t.Errorf("runtime source %q: want the agent only (agentdemo serves neither /debug/vars nor /debug/pprof)", got.Source)
	}
	read := false
	for _, s := range got.Steps {
		if r := s.Runtime; r != nil && r.Sched >= 0 && r.CPU >= 0 && r.Procs == 1 {
			read = true
		}
	}
	if !read {
		t.Errorf("no step read the agent's scheduling latency and the process's CPU with GOMAXPROCS=1: %s", stdout.String())
	}
	if got.FirstFail == 0 && strings.Contains(got.Stop, "generator could not keep up") {
		t.Skipf("this machine is too busy for the generator to keep its schedule: %s", got.Stop)
	}
	if got.FirstFail == 0 {
		t.Fatalf("no limit found up to 64000 req/s against a one-P service: %s", got.Stop)
	}
	if got.Max <= 0 || got.Max >= got.FirstFail {
		t.Errorf("max sustainable %v, first failing %v", got.Max, got.FirstFail)
	}
	cause, _, _ := strings.Cut(got.Saturation, ":")
	switch cause {
	case loadramp.CauseCPU, loadramp.CauseGC, loadramp.CauseConcurrency, loadramp.CauseErrors:
	default:
		t.Fatalf("saturation %q does not name a cause in the target", got.Saturation)
	}
	if cause != loadramp.CauseErrors && !strings.Contains(strings.Join(got.Evidence, "\n"), "scheduling latency p99") {
		t.Errorf("evidence does not cite the agent's scheduling latency: %q", got.Evidence)
	}
}

func TestRampPoisson(t *testing.T) {
	url := rampServer(t, 200)
	var stdout, stderr bytes.Buffer
	err := runRamp(context.Background(), []string{url, "--rates", "100", "--step", "300ms", "--warmup", "100ms",
		"-H", "X-Test: 1", "--arrivals", "poisson", "--format", "json", "-q"}, nil, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var got struct {
		Arrivals string `json:"arrivals"`
		Steps    []struct {
			Requests int64 `json:"requests"`
			Dropped  int64 `json:"dropped"`
		} `json:"steps"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	// 30 arrivals expected in 300 ms; a Poisson count that far off is a
	// bug. Arrivals a loaded machine could not send on time are dropped
	// and counted, so they still count as scheduled.
	if got.Arrivals != "poisson" || len(got.Steps) != 1 {
		t.Fatalf("report %s", stdout.String())
	}
	if n := got.Steps[0].Requests + got.Steps[0].Dropped; n < 10 || n > 60 {
		t.Fatalf("report %s", stdout.String())
	}
}

func TestRampTargetsFile(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen[r.Method+" "+r.URL.Path+" "+r.Header.Get("X-Test")+" "+r.Header.Get("Content-Type")+" "+string(b)]++
		mu.Unlock()
	}))
	defer srv.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "new.json"), []byte(`{"n":1}`), 0o600)
	targets := filepath.Join(dir, "targets.txt")
	os.WriteFile(targets, []byte("GET "+srv.URL+"/read\n\nPOST "+srv.URL+"/write\nContent-Type: application/json\n@new.json\n"), 0o600)
	var stdout, stderr bytes.Buffer
	err := runRamp(context.Background(), []string{"--targets", targets, "-H", "X-Test: 1", "--rates", "100", "--step", "300ms",
		"--warmup", "100ms", "--slo", "p99<1s", "--runtime", "off", "--format", "json", "-q"}, nil, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	mu.Lock()
	defer mu.Unlock()
	r, w := seen["GET /read 1  "], seen[`POST /write 1 application/json {"n":1}`]
	if len(seen) != 2 || r == 0 || r-w > 1 || w-r > 1 {
		t.Fatalf("server saw %v; want the two targets in turn, each with -H's header", seen)
	}
	err = runRamp(context.Background(), []string{"--targets", targets, "-X", "PUT"}, nil, new(bytes.Buffer), new(bytes.Buffer))
	if _, ok := err.(usageError); !ok {
		t.Errorf("--targets with -X: %v, want a usage error", err)
	}
	os.WriteFile(targets, []byte("GET "+srv.URL+"/\nnot a header\n"), 0o600)
	err = runRamp(context.Background(), []string{"--targets", targets}, nil, new(bytes.Buffer), new(bytes.Buffer))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad targets file: %v, want the line named", err)
	}
}
