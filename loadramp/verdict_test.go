package loadramp

import (
	"math"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseSLO(t *testing.T) {
	tests := []struct {
		in      string
		want    SLO
		wantErr string
	}{
		{in: "p99<50ms,errors<0.1%", want: SLO{Latency: map[float64]time.Duration{0.99: 50 * time.Millisecond}, MaxErrorRate: 0.001}},
		{in: " p50<5ms , p99.9<1s ", want: SLO{Latency: map[float64]time.Duration{0.5: 5 * time.Millisecond, 0.999: time.Second}, MaxErrorRate: -1}},
		{in: "errors<1%", want: SLO{Latency: map[float64]time.Duration{}, MaxErrorRate: 0.01}},
		{in: "", wantErr: "empty"},
		{in: "p99=50ms", wantErr: "NAME<VALUE"},
		{in: "p99<fast", wantErr: "bad duration"},
		{in: "p100<1s", wantErr: "bad percentile"},
		{in: "errors<0.1", wantErr: "percentage"},
		{in: "cpu<50%", wantErr: "unknown objective"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSLO(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.want.String() {
				t.Errorf("got %s, want %s", got, tc.want)
			}
			again, err := ParseSLO(got.String())
			if err != nil || again.String() != got.String() {
				t.Errorf("round trip %q → %q (%v)", got.String(), again.String(), err)
			}
		})
	}
}

func TestFindKnee(t *testing.T) {
	// A hockey stick: flat until 2000, steep after.
	x := []float64{250, 500, 1000, 1500, 2000, 2200, 2400}
	y := []float64{2, 2, 2.1, 2.3, 3, 40, 400}
	k := FindKnee(x, y)
	if k == nil || k.OfferedRPS < 1500 || k.OfferedRPS > 2200 {
		t.Fatalf("knee %+v, want near 2000", k)
	}
	if FindKnee(x[:2], y[:2]) != nil || FindKnee([]float64{1, 2, 3}, []float64{5, 5, 5}) != nil {
		t.Error("knee from too few points or a flat curve")
	}
}

func TestFitUSL(t *testing.T) {
	tests := []struct {
		name               string
		lambda, sigma, kap float64
	}{
		{"contention and coherency", 1000, 0.05, 0.002},
		{"contention only", 500, 0.1, 0},
		{"linear", 300, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ns, xs []float64
			for _, n := range []float64{1, 2, 4, 8, 16, 32, 64} {
				ns = append(ns, n)
				xs = append(xs, tc.lambda*n/(1+tc.sigma*(n-1)+tc.kap*n*(n-1)))
			}
			u := FitUSL(ns, xs)
			if u == nil {
				t.Fatal("no fit")
			}
			if math.Abs(u.Lambda-tc.lambda) > 0.01*tc.lambda || math.Abs(u.Sigma-tc.sigma) > 1e-3 || math.Abs(u.Kappa-tc.kap) > 1e-4 {
				t.Errorf("fit λ=%.1f σ=%.4f κ=%.5f, want %.1f %.4f %.5f", u.Lambda, u.Sigma, u.Kappa, tc.lambda, tc.sigma, tc.kap)
			}
			if u.R2 < 0.999 {
				t.Errorf("R² %.4f on exact data", u.R2)
			}
			if tc.kap > 0 {
				want := math.Sqrt((1 - tc.sigma) / tc.kap)
				if math.Abs(u.PeakConcurrency-want) > 0.05*want {
					t.Errorf("peak concurrency %.1f, want %.1f", u.PeakConcurrency, want)
				}
			}
		})
	}
	if FitUSL([]float64{1, 2, 3}, []float64{1, 2, 3}) != nil {
		t.Error("fit from three points")
	}
}

func step2(offered, achieved, p99 float64, pass bool, rt *RuntimeStep, fails ...string) StepReport {
	return StepReport{OfferedRPS: offered, AchievedRPS: achieved, P99: p99, Pass: pass, Failures: fails, Runtime: rt}
}

func TestSaturationNamesTheCause(t *testing.T) {
	quiet := &RuntimeStep{GCCPUFraction: 0.02, GCPerSecond: 1, ProcessCPUCores: 0.1, Goroutines: 20}
	tests := []struct {
		name  string
		steps []StepReport
		want  string
	}{
		{"gc", []StepReport{
			step2(1000, 1000, 0.01, true, &RuntimeStep{GCCPUFraction: 0.12, GCPerSecond: 5, ProcessCPUCores: 0.3}),
			step2(2000, 1700, 0.5, false, &RuntimeStep{GCCPUFraction: 0.35, GCPerSecond: 12, ProcessCPUCores: 0.6}, "p99 500ms > 50ms"),
		}, CauseGC},
		// No /debug/vars: GC CPU and assists from the gopulse agent.
		{"gc from the agent", []StepReport{
			step2(1000, 1000, 0.01, true, &RuntimeStep{GCCPUFraction: 0.12, GCAssistShare: 0.3, GCSource: "agent", GCCPUSinceStart: -1, GCPerSecond: -1, ProcessCPUCores: 0.3, SchedLatencyP99: 0.002, MachineCPUBusy: -1}),
			step2(2000, 1700, 0.5, false, &RuntimeStep{GCCPUFraction: 0.4, GCAssistShare: 0.55, GCSource: "agent", GCCPUSinceStart: -1, GCPerSecond: -1, ProcessCPUCores: 0.6, SchedLatencyP99: 0.004, MachineCPUBusy: -1}, "p99"),
		}, CauseGC},
		{"cpu", []StepReport{
			step2(1000, 1000, 0.01, true, quiet),
			step2(2000, 1500, 0.5, false, &RuntimeStep{GCCPUFraction: 0.02, ProcessCPUCores: float64(runtime.NumCPU())}, "p99"),
		}, CauseCPU},
		{"concurrency", []StepReport{
			step2(1000, 1000, 0.01, true, quiet),
			step2(2000, 1600, 0.5, false, &RuntimeStep{GCCPUFraction: 0.02, ProcessCPUCores: 0.1, Goroutines: 200}, "p99"),
		}, CauseConcurrency},
		{"errors", []StepReport{
			step2(1000, 1000, 0.01, true, quiet),
			{OfferedRPS: 2000, AchievedRPS: 2000, ErrorRate: 0.3, ErrorKinds: map[string]int64{ErrHTTP5xx: 600, "dropped": 2}, Failures: []string{"errors"}, Runtime: quiet},
		}, CauseErrors},
		// The agent's scheduling latency, no /debug/vars: GC unknown, CPU
		// argued from runnable goroutines waiting for a processor.
		{"cpu from scheduling latency", []StepReport{
			step2(1000, 1000, 0.01, true, &RuntimeStep{GCCPUFraction: -1, GCCPUSinceStart: -1, ProcessCPUCores: 0.3, SchedLatencyP99: 0.001, Procs: 4, MachineCPUBusy: -1}),
			step2(2000, 1900, 0.5, false, &RuntimeStep{GCCPUFraction: -1, GCCPUSinceStart: -1, ProcessCPUCores: 0.8, SchedLatencyP99: 0.030, Procs: 4, MachineCPUBusy: -1}, "p99"),
		}, CauseCPU},
		{"cpu at its GOMAXPROCS", []StepReport{
			step2(1000, 1000, 0.01, true, quiet),
			step2(2000, 1900, 0.5, false, &RuntimeStep{GCCPUFraction: 0.02, ProcessCPUCores: 0.97, Procs: 1, SchedLatencyP99: -1}, "p99"),
		}, CauseCPU},
		{"cpu: machine shared with the generator", []StepReport{
			step2(1000, 1000, 0.01, true, quiet),
			step2(2000, 1900, 0.5, false, &RuntimeStep{GCCPUFraction: 0.02, ProcessCPUCores: 0.3 * float64(runtime.NumCPU()), Procs: 4 * runtime.NumCPU(), SchedLatencyP99: -1, MachineCPUBusy: 0.99}, "p99"),
		}, CauseCPU},
		// Other processes filled the machine, but the target barely used
		// any of it: its limit is elsewhere.
		{"concurrency on a machine busy with others", []StepReport{
			step2(1000, 1000, 0.01, true, quiet),
			step2(2000, 1600, 0.5, false, &RuntimeStep{GCCPUFraction: 0.02, ProcessCPUCores: 0.05, Procs: runtime.NumCPU(), SchedLatencyP99: -1, MachineCPUBusy: 1}, "p99"),
		}, CauseConcurrency},
		{"concurrency with a quiet scheduler", []StepReport{
			step2(1000, 1000, 0.01, true, quiet),
			step2(2000, 1600, 0.5, false, &RuntimeStep{GCCPUFraction: 0.02, ProcessCPUCores: 0.1, Procs: 4, SchedLatencyP99: 0.0002, MachineCPUBusy: 0.3}, "p99"),
		}, CauseConcurrency},
		{"none failed", []StepReport{step2(1000, 1000, 0.01, true, quiet)}, CauseNone},
		{"generator", []StepReport{step2(1000, 1000, 0.01, true, quiet), {OfferedRPS: 2000, GeneratorLimited: true, GeneratorLimitedCause: "lag"}}, CauseGenerator},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ev := saturation(&Result{Steps: tc.steps})
			if !strings.HasPrefix(got, tc.want+":") {
				t.Errorf("saturation %q, want %q", got, tc.want)
			}
			if tc.want != CauseNone && len(ev) == 0 {
				t.Error("no evidence")
			}
		})
	}
}

func TestSaturationGCFromAgentNamesAssists(t *testing.T) {
	pass := &RuntimeStep{GCCPUFraction: 0.12, GCBusyShare: 0.4, GCAssistShare: 0.3, GCSource: "agent", GCCPUSinceStart: -1, GCPerSecond: -1, ProcessCPUCores: 0.3, SchedLatencyP99: 0.002, MachineCPUBusy: -1}
	fail := &RuntimeStep{GCCPUFraction: 0.4, GCBusyShare: 0.67, GCAssistShare: 0.55, GCSource: "agent", GCCPUSinceStart: -1, GCPerSecond: -1, ProcessCPUCores: 0.6, SchedLatencyP99: 0.004, MachineCPUBusy: -1}
	got, ev := saturation(&Result{Steps: []StepReport{step2(1000, 1000, 0.01, true, pass), step2(2000, 1700, 0.5, false, fail, "p99")}})
	for _, want := range []string{"GC CPU reached 40% of capacity (12% at 1000 req/s), 67% of the CPU the process was busy with", "55% of it in mark assists"} {
		if !strings.Contains(got, want) {
			t.Errorf("saturation %q does not say %q", got, want)
		}
	}
	if e := strings.Join(ev, "\n"); !strings.Contains(e, "GC CPU 12% of capacity (40% of busy CPU, 30% of it mark assists) from agent") {
		t.Errorf("evidence does not describe the agent's GC figures:\n%s", e)
	}
}
