package loadramp

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// fixedResult is a ramp against a 2000 req/s server, as Run would report
// it, with fixed numbers so the reports are reproducible.
func fixedResult() *Result {
	rt := func(gc, cores float64, g int, heap uint64) *RuntimeStep {
		return &RuntimeStep{GCCPUFraction: gc, GCCPUSinceStart: gc, GCSource: "/debug/vars", GCBusyShare: -1, GCAssistShare: -1, GCPerSecond: 2, PauseP50: 50 * time.Microsecond,
			PauseP99: 90 * time.Microsecond, PauseMax: 90 * time.Microsecond, HeapAlloc: heap, HeapGoal: 4 << 20,
			Goroutines: g, ProcessCPUCores: cores, FDs: 20, Threads: 8, SchedLatencyP99: -1, Procs: 4, MachineCPUBusy: cores / 2}
	}
	st := func(off, ach, p99, p99u float64, pass bool, r *RuntimeStep, fails ...string) StepReport {
		return StepReport{OfferedRPS: off, AchievedRPS: ach, P50: p99 / 3, P90: p99 / 1.5, P99: p99, P999: p99 * 1.2,
			P50Uncorrected: p99u / 3, P90Uncorrected: p99u / 1.5, P99Uncorrected: p99u, P999Uncorrected: p99u * 1.2,
			MeanUncorrected: p99u / 3, Requests: int64(off), Conns: 8, Pass: pass, Failures: fails, Runtime: r}
	}
	res := &Result{
		Target: "http://127.0.0.1:8080/", SLO: "p99<100ms,errors<0.1%", Started: time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC),
		DurationSeconds: 21.5, RuntimeRead: "/debug/vars, /debug/pprof, /proc/42",
		Steps: []StepReport{
			st(250, 250, 0.005, 0.004, true, rt(0.01, 0.05, 13, 1<<20)),
			st(500, 500, 0.005, 0.003, true, rt(0.01, 0.08, 19, 1<<20)),
			st(1000, 1000, 0.019, 0.011, true, rt(0.01, 0.12, 32, 2<<20)),
			st(2000, 1990, 0.046, 0.044, true, rt(0.02, 0.21, 193, 2<<20)),
			st(4000, 2000, 1.07, 0.10, false, rt(0.02, 0.22, 260, 3<<20), "p99 1.07s > 100ms", "achieved 2000 req/s < 98% of offered 4000"),
			st(3000, 2000, 0.75, 0.086, false, rt(0.02, 0.22, 260, 3<<20), "p99 749ms > 100ms"),
			st(2500, 1972, 0.39, 0.13, false, rt(0.02, 0.22, 260, 3<<20), "p99 389ms > 100ms"),
			st(2250, 2001, 0.2, 0.096, false, rt(0.02, 0.22, 259, 3<<20), "p99 199ms > 100ms"),
			st(2125, 2008, 0.099, 0.075, false, rt(0.02, 0.22, 260, 3<<20), "achieved 2008 req/s < 98% of offered 2125"),
		},
		MaxSustainableRPS: 2000, FirstFailRPS: 2125, StopReason: "search converged: passes at 2000 req/s, fails at 2125 req/s",
	}
	verdict(res, Config{})
	return res
}

func TestReportsGolden(t *testing.T) {
	res := fixedResult()
	if res.Knee == nil || res.USL == nil {
		t.Fatalf("knee %v usl %v: the fixture should allow both", res.Knee, res.USL)
	}
	for _, tc := range []struct {
		file  string
		write func(*Result, *bytes.Buffer) error
	}{
		{"report.txt", func(r *Result, b *bytes.Buffer) error { return r.WriteText(b) }},
		{"report.json", func(r *Result, b *bytes.Buffer) error { return r.WriteJSON(b) }},
		{"report.html", func(r *Result, b *bytes.Buffer) error { return r.WriteHTML(b) }},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(res, &b); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.file)
			if *update {
				if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(b.Bytes(), want) {
				t.Errorf("%s differs from the golden file; run go test -run TestReportsGolden -update and review the diff", tc.file)
			}
		})
	}
}

// TestReportsAssistShare: where the agent reports the mark-assist share of
// the GC's CPU, both human reports show it beside the GC CPU.
func TestReportsAssistShare(t *testing.T) {
	res := fixedResult()
	for i := range res.Steps {
		res.Steps[i].Runtime.GCSource = "gopulse agent"
		res.Steps[i].Runtime.GCAssistShare = 0.63
	}
	for _, tc := range []struct {
		name  string
		write func(*Result, *bytes.Buffer) error
		want  string
	}{
		{"text", func(r *Result, b *bytes.Buffer) error { return r.WriteText(b) }, "  2%      63%  "},
		{"html", func(r *Result, b *bytes.Buffer) error { return r.WriteHTML(b) }, "<td>2.00%</td><td>63.00%</td>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(res, &b); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), tc.want) {
				t.Errorf("report lacks %q", tc.want)
			}
		})
	}
}
