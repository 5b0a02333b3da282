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
"sched_latency_p99":"12ms","sched_latency_p99_seconds":0.012,"gc_cpu_fraction":0.3,"gc_busy_share":0.4,"gc_mark_assist_share":0.6,
"cpu_seconds":{"gc_total":3,"gc_mark_assist":1.5,"gc_mark_idle":0.1,"total":20,"idle":5},"rule_levels":{},"events":[]}`

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
	if a.Agent.GCCPUFraction != 0.3 || a.Agent.GCBusyShare != 0.4 || a.Agent.GCMarkAssistShare != 0.6 || a.Agent.CPUSeconds == nil || a.Agent.CPUSeconds.GCMarkAssist != 1.5 {
		t.Errorf("agent GC CPU not read: %+v", a.Agent)
	}
	old, err := ParseAgentStatus(strings.NewReader(`{"goroutines":1,"sched_latency_p99_seconds":0}`))
	if err != nil || old.GCCPUFraction != -1 || old.GCBusyShare != -1 || old.GCMarkAssistShare != -1 || old.CPUSeconds != nil {
		t.Errorf("an agent without GC CPU fields read as %+v, %v; want -1, -1, -1, nil", old, err)
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

// TestRuntimeDeltaGCSource checks which source the step's GC CPU comes
// from: the agent's CPU classes when they moved during the step, else
// memstats from /debug/vars.
func TestRuntimeDeltaGCSource(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	start := t0.Add(-100 * time.Second)
	// memstats: 10% of available CPU since start at t0−1s, 10.2% at t0+1s
	// → the step's own fraction over 98..102 s after start.
	vars := func(at time.Time, frac float64, numGC uint32) RuntimeSample {
		return RuntimeSample{At: at, HasVars: true, ProcStart: start, PID: 7,
			MemStats: MemStats{NumGC: numGC, LastGC: uint64(at.Add(-time.Second).UnixNano()), GCCPUFraction: frac, HeapAlloc: 1, NextGC: 2}}
	}
	cpu := func(total, gc, assist, idleMark float64) *AgentStatus {
		return &AgentStatus{GCCPUFraction: -1, GCBusyShare: -1, GCMarkAssistShare: -1,
			CPUSeconds: &AgentCPUSeconds{Total: total, GCTotal: gc, GCMarkAssist: assist, GCMarkIdle: idleMark}}
	}
	withAgent := func(s RuntimeSample, a *AgentStatus) RuntimeSample { s.Agent = a; return s }
	varsFrac := (0.102*101 - 0.10*99) / 2
	tests := []struct {
		name     string
		a, b     RuntimeSample
		source   string
		fraction float64
		assist   float64
	}{
		{"vars only", vars(t0, 0.10, 5), vars(t0.Add(2*time.Second), 0.102, 9), "/debug/vars", varsFrac, -1},
		{"agent counters moved: agent wins, idle marking excluded",
			withAgent(vars(t0, 0.10, 5), cpu(10, 1, 0.2, 0.1)), withAgent(vars(t0.Add(2*time.Second), 0.102, 9), cpu(14, 2.5, 0.8, 0.3)),
			// (1.5 − 0.2) / 4 available; assists 0.6 of those 1.3
			"agent", 1.3 / 4, 0.6 / 1.3},
		{"agent counters did not move (no cycle ended): vars",
			withAgent(vars(t0, 0.10, 5), cpu(10, 1, 0.2, 0)), withAgent(vars(t0.Add(2*time.Second), 0.102, 9), cpu(10, 1, 0.2, 0)),
			"/debug/vars", varsFrac, -1},
		{"older agent without cpu_seconds: vars",
			withAgent(vars(t0, 0.10, 5), &AgentStatus{GCCPUFraction: -1}), withAgent(vars(t0.Add(2*time.Second), 0.102, 9), &AgentStatus{GCCPUFraction: -1}),
			"/debug/vars", varsFrac, -1},
		{"agent without /debug/vars (remote target)",
			RuntimeSample{At: t0, Agent: cpu(10, 1, 0, 0)}, RuntimeSample{At: t0.Add(2 * time.Second), Agent: cpu(12, 1.5, 0, 0)},
			"agent", 0.25, 0},
		{"nothing", RuntimeSample{At: t0}, RuntimeSample{At: t0.Add(time.Second)}, "", -1, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := RuntimeDelta(tc.a, tc.b)
			if d.GCSource != tc.source || !near(d.GCCPUFraction, tc.fraction) || !near(d.GCAssistShare, tc.assist) {
				t.Fatalf("source %q fraction %v assist %v; want %q %v %v", d.GCSource, d.GCCPUFraction, d.GCAssistShare, tc.source, tc.fraction, tc.assist)
			}
		})
	}
}

// TestRuntimeDeltaGCCPUDefinition feeds the agent's cumulative counters
// with the cpu-class deltas every surface's test uses (agent rules and
// Status, collector) and checks the step's gc_cpu_fraction is the
// product's one definition, (gc/total − gc/mark/idle) ÷ total, with the
// busy-time figure apart as gc_busy_share.
func TestRuntimeDeltaGCCPUDefinition(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name                              string
		total, idle, gc, idleMark, assist float64
		fraction, busy, assistShare       float64
	}{
		// The discriminating case: 20% busy, GC mostly idle marking;
		// GC ÷ busy read 37.5% here.
		{"20% busy with idle marking", 40, 32, 3, 2, 0.5, 0.025, 0.125, 0.5},
		{"cpu-bound, no idle marking", 40, 0, 10, 0, 4, 0.25, 0.25, 0.4},
		{"no GC", 40, 20, 0, 0, 0, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ca := &AgentCPUSeconds{Total: 100, Idle: 50, GCTotal: 7, GCMarkIdle: 3, GCMarkAssist: 1}
			cb := &AgentCPUSeconds{Total: 100 + tc.total, Idle: 50 + tc.idle, GCTotal: 7 + tc.gc, GCMarkIdle: 3 + tc.idleMark, GCMarkAssist: 1 + tc.assist}
			d := RuntimeDelta(RuntimeSample{At: t0, Agent: &AgentStatus{CPUSeconds: ca}},
				RuntimeSample{At: t0.Add(10 * time.Second), Agent: &AgentStatus{CPUSeconds: cb}})
			if d.GCSource != "agent" || !near(d.GCCPUFraction, tc.fraction) || !near(d.GCBusyShare, tc.busy) || !near(d.GCAssistShare, tc.assistShare) {
				t.Fatalf("source %q fraction %v busy share %v assist %v; want agent %v %v %v",
					d.GCSource, d.GCCPUFraction, d.GCBusyShare, d.GCAssistShare, tc.fraction, tc.busy, tc.assistShare)
			}
		})
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

// TestRuntimeReaderAgentGC reads GC CPU from the real agent inside the
// capacity server while it collects garbage under load.
func TestRuntimeReaderAgentGC(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process")
	}
	url, _ := startCapacity(t, []string{"GOGC=10"}, "-workers", "8", "-service", "1ms", "-alloc", "65536", "-agent")
	rr, err := NewRuntimeReader(url)
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGenerator(Target{URL: url}, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	var a, b RuntimeSample
	// The agent samples once a second: a 2.5 s window spans at least two
	// of its samples with GC cycles ending between them.
	_, err = g.Step(context.Background(), StepSpec{Rate: 400, Warmup: 1200 * time.Millisecond, Duration: 2500 * time.Millisecond,
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
	if b.Agent == nil || b.Agent.CPUSeconds == nil {
		t.Fatalf("agent status not read or without cpu_seconds: %+v", b.Agent)
	}
	d := RuntimeDelta(a, b)
	withoutAgent := a
	withoutAgent.Agent = nil
	t.Logf("agent: GC CPU %.3f assists %.3f; /debug/vars alone: %.3f", d.GCCPUFraction, d.GCAssistShare, RuntimeDelta(withoutAgent, b).GCCPUFraction)
	if d.GCSource != "agent" || !(d.GCCPUFraction > 0 && d.GCCPUFraction <= 1) || d.GCAssistShare < 0 || d.GCAssistShare > 1 {
		t.Errorf("GC from the agent: source %q fraction %v assists %v", d.GCSource, d.GCCPUFraction, d.GCAssistShare)
	}
	if d.GCBusyShare < d.GCCPUFraction || d.GCBusyShare > 1 {
		t.Errorf("gc_busy_share %v: want in [gc_cpu_fraction %v, 1]", d.GCBusyShare, d.GCCPUFraction)
	}
	if b.Agent.GCCPUFraction < 0 || b.Agent.GCBusyShare < b.Agent.GCCPUFraction || b.Agent.GCMarkAssistShare < 0 {
		t.Errorf("the agent's own interval figures are missing: %+v", b.Agent)
	}
}
