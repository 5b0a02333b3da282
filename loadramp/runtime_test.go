package loadramp

import (
	"context"
	"expvar"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseVarsFromExpvar(t *testing.T) {
	runtime.GC()
	rec := httptest.NewRecorder()
	expvar.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/debug/vars", nil))
	ms, err := ParseVars(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ms.NumGC == 0 || ms.HeapAlloc == 0 || ms.NextGC == 0 || ms.LastGC == 0 {
		t.Errorf("memstats not filled: %+v", ms)
	}
	if ms.PauseNs[(ms.NumGC+255)%256] == 0 {
		t.Error("last pause is 0")
	}
	if _, err := ParseVars(strings.NewReader(`{"cmdline":["x"]}`)); err == nil || !strings.Contains(err.Error(), "expvar") {
		t.Errorf("vars without memstats: %v", err)
	}
}

func TestParseGoroutineTotal(t *testing.T) {
	rec := httptest.NewRecorder()
	pprof.Handler("goroutine").ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pprof/goroutine?debug=1", nil))
	n, err := ParseGoroutineTotal(rec.Body)
	if err != nil || n < 1 {
		t.Fatalf("total %d, %v", n, err)
	}
	for _, bad := range []string{"", "goroutine 1 [running]:\n", "goroutine profile: total x\n"} {
		if _, err := ParseGoroutineTotal(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestParseProcStat(t *testing.T) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skip("no /proc")
	}
	st, err := parseProcStat(b)
	if err != nil || st.threads < 1 || st.starttime == 0 {
		t.Fatalf("%+v %v", st, err)
	}
	weird := []byte("42 (a) b (c)) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21")
	st, err = parseProcStat(weird)
	if err != nil || st.utime != 11 || st.stime != 12 || st.starttime != 19 {
		t.Errorf("command with parentheses: %+v %v", st, err)
	}
}

func TestRuntimeReaderLocalTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process")
	}
	url, pid := startCapacity(t, []string{"GOGC=10"}, "-workers", "8", "-service", "1ms", "-alloc", "65536")
	rr, err := NewRuntimeReader(url)
	if err != nil {
		t.Fatal(err)
	}
	if rr.PID() != pid {
		t.Fatalf("found pid %d, want %d", rr.PID(), pid)
	}
	g, err := NewGenerator(Target{URL: url}, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	var a, b RuntimeSample
	_, err = g.Step(context.Background(), StepSpec{Rate: 500, Warmup: 100 * time.Millisecond, Duration: time.Second,
		AtWindow: func(start bool) {
			if start {
				a = rr.Sample(context.Background())
			} else {
				b = rr.Sample(context.Background())
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	d := RuntimeDelta(a, b)
	t.Logf("%+v", d)
	if !b.HasVars || b.Goroutines < 1 || b.PID != pid || b.ProcStart.IsZero() {
		t.Errorf("sample incomplete: vars %v goroutines %d pid %d start %v", b.HasVars, b.Goroutines, b.PID, b.ProcStart)
	}
	// 500 req/s × 64 KiB = 32 MB/s against a tiny heap at GOGC=10: many cycles.
	if d.GCPerSecond < 5 || d.GCCPUFraction <= 0 || d.GCCPUFraction > 1 || d.PauseMax <= 0 {
		t.Errorf("GC not seen: %+v", d)
	}
	if d.TCP["LISTEN"] < 1 || d.TCP["ESTABLISHED"] < 1 {
		t.Errorf("target sockets not seen: %v", d.TCP)
	}
	if d.ProcessCPUCores <= 0 || d.FDs < 3 {
		t.Errorf("process not seen: %+v", d)
	}
}

func TestRuntimeReaderWithoutEndpoints(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	rr, err := NewRuntimeReader(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	s := rr.Sample(context.Background())
	if s.HasVars || s.Goroutines != -1 {
		t.Errorf("sample from a server without endpoints: %+v", s)
	}
	if src := describeRuntimeSource(&RuntimeReader{}, RuntimeSample{Goroutines: -1}); !strings.HasPrefix(src, "none") {
		t.Errorf("source %q", src)
	}
	d := RuntimeDelta(s, s)
	if d.GCCPUFraction != -1 || d.ProcessCPUCores != -1 {
		t.Errorf("delta of nothing: %+v", d)
	}
}

func TestCountTCP(t *testing.T) {
	const procNetTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1 0 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 112 1 0 20 4 30 10 -1
   2: 0100007F:1F90 0100007F:C351 06 00000000:00000000 03:00000A5B 00000000     0        0 0 3 0
   3: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 113 1 0 20 4 30 10 -1
`
	got := map[string]int{}
	countTCP([]byte(procNetTCP), 8080, got)
	want := map[string]int{"LISTEN": 1, "ESTABLISHED": 1, "TIME_WAIT": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// agentJSON has the shape of agent.Status (the contract is the JSON names;
// cmd/gopulse's tests check it against the real agent).
const agentJSON = `{"service":"s","instance_id":"i","sampled_at":"2026-11-24T00:00:00Z","goroutines":42,
"heap_live_bytes":1000,"heap_goal_bytes":2000,"rss_bytes":3000,"open_fds":17,"fd_limit":1024,
"sched_latency_p99":"12ms","sched_latency_p99_seconds":0.012,"rule_levels":{},"events":[]}`

func TestRuntimeReaderReadsAgent(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/gopulse/", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, agentJSON) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	rr, err := NewRuntimeReader(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rr.pid = 0 // the test process itself listens here; read only HTTP
	a := rr.Sample(context.Background())
	b := a
	b.At = a.At.Add(time.Second)
	d := RuntimeDelta(a, b)
	if a.Agent == nil || a.Goroutines != 42 || d.SchedLatencyP99 != 0.012 || d.HeapLive != 1000 || d.FDs != 17 {
		t.Errorf("agent not read: %+v / %+v", a.Agent, d)
	}
	if _, err := ParseAgentStatus(strings.NewReader(`{"goroutines":1}`)); err == nil {
		t.Error("JSON without the agent's keys taken for an agent status")
	}
}

func TestParseCPULine(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		busy, tot  time.Duration
		wantErrSub string
	}{
		// user nice system idle iowait irq softirq steal guest guest_nice
		{"linux", "cpu  100 0 50 800 50 0 0 0 30 0\ncpu0 1 2 3\n", 1500 * time.Millisecond, 10 * time.Second, ""},
		{"old kernel, four fields", "cpu 10 0 10 80\n", 200 * time.Millisecond, time.Second, ""},
		{"not the cpu line", "intr 1 2 3 4 5\n", 0, 0, "not the cpu line"},
		{"bad number", "cpu 1 x 3 4 5\n", 0, 0, "field 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			busy, tot, err := parseCPULine([]byte(tc.in))
			if tc.wantErrSub != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrSub) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErrSub)
				}
				return
			}
			if err != nil || busy != tc.busy || tot != tc.tot {
				t.Fatalf("got %v / %v, %v; want %v / %v", busy, tot, err, tc.busy, tc.tot)
			}
		})
	}
}

func TestEnvProcs(t *testing.T) {
	tests := []struct {
		env  string
		want int
	}{
		{"HOME=/root\x00GOMAXPROCS=1\x00PATH=/bin\x00", 1},
		{"GOMAXPROCS=8", 8},
		{"GOMAXPROCS=\x00", 0},
		{"GOMAXPROCS=-2\x00", 0},
		{"XGOMAXPROCS=3\x00", 0},
		{"", 0},
	}
	for _, tc := range tests {
		if got := envProcs([]byte(tc.env)); got != tc.want {
			t.Errorf("envProcs(%q) = %d, want %d", tc.env, got, tc.want)
		}
	}
}
