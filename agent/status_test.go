package agent

import (
	"context"
	"encoding/json"
	"math"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/gopulse/gopulse/agent/internal/sample"
)

func TestGCCPUUpdate(t *testing.T) {
	t0 := time.Unix(1000, 0)
	pt := func(sec int, total, idle, gc, idleMark, assist float64) sample.Point {
		return sample.Point{Time: t0.Add(time.Duration(sec) * time.Second), TotalCPU: total, IdleCPU: idle, GCCPU: gc, GCIdleMarkCPU: idleMark, GCAssistCPU: assist}
	}
	tests := []struct {
		name                   string
		points                 []sample.Point
		fraction, busy, assist float64
		since                  time.Time
	}{
		{"nothing yet", nil, -1, -1, -1, time.Time{}},
		{"one sample is no interval", []sample.Point{pt(1, 10, 2, 1, 0, 0.5)}, -1, -1, -1, time.Time{}},
		{"two samples", []sample.Point{pt(1, 10, 2, 1, 0, 0.5), pt(2, 20, 4, 5, 0, 2.5)},
			// capacity 10 s, busy 16−8 = 8 s, GC 4 s, assists 2 of those 4
			0.4, 0.5, 0.5, t0.Add(time.Second)},
		// The same deltas as every surface's test (sample.gcCPUCases):
		// 20% busy, GC mostly idle marking — 2.5% of capacity, where GC ÷
		// busy read 37.5%.
		{"20% busy with idle marking", []sample.Point{pt(1, 100, 50, 7, 3, 1), pt(11, 140, 82, 10, 5, 1.5)},
			0.025, 0.125, 0.5, t0.Add(time.Second)},
		{"cpu-bound, no idle marking", []sample.Point{pt(1, 100, 50, 7, 3, 1), pt(11, 140, 50, 17, 3, 5)},
			0.25, 0.25, 0.4, t0.Add(time.Second)},
		{"no cycle ended between samples: unchanged counters are skipped",
			[]sample.Point{pt(1, 10, 2, 1, 0, 0.5), pt(2, 10, 2, 1, 0, 0.5), pt(3, 20, 4, 5, 0, 2.5)},
			0.4, 0.5, 0.5, t0.Add(time.Second)},
		{"the latest interval wins",
			[]sample.Point{pt(1, 10, 2, 1, 0, 0.5), pt(2, 20, 4, 5, 0, 2.5), pt(3, 30, 4, 6, 0, 2.5)},
			0.1, 0.1, 0, t0.Add(2 * time.Second)},
		{"no GC CPU: no assist share to divide, zero",
			[]sample.Point{pt(1, 10, 2, 1, 0, 0.5), pt(2, 20, 2, 1, 0, 0.5)}, 0, 0, 0, t0.Add(time.Second)},
		{"all idle: no GC of capacity, busy share unknown", []sample.Point{pt(1, 10, 2, 1, 0, 0), pt(2, 20, 12, 1, 0, 0)}, 0, -1, 0, t0.Add(time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGCCPU()
			for _, p := range tt.points {
				g.update(p)
			}
			if math.Abs(g.fraction-tt.fraction) > 1e-9 || math.Abs(g.busy-tt.busy) > 1e-9 || math.Abs(g.assist-tt.assist) > 1e-9 || !g.since.Equal(tt.since) {
				t.Fatalf("fraction %v busy share %v assist %v since %v; want %v %v %v %v", g.fraction, g.busy, g.assist, g.since, tt.fraction, tt.busy, tt.assist, tt.since)
			}
		})
	}
}

// TestStatusGCCPU runs a real agent while this process collects garbage
// and checks the handler's JSON carries the GC's CPU figures.
func TestStatusGCCPU(t *testing.T) {
	a, err := Start(context.Background(), Options{SpoolDir: "-", SampleInterval: 10 * time.Millisecond, FlightRecorder: FlightRecorderOff,
		Triggers: Triggers{GCPause: -1, GCCPUFraction: -1, GoroutineGrowthFraction: -1, HeapLimitFraction: -1, SchedLatencyP99: -1, FDFraction: -1, DisableGCLimiter: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop(context.Background())
	var keep [][]byte
	waitFor(t, "a GC CPU fraction", func() bool {
		// Garbage and a collection between samples, so that cycles end
		// inside the agent's sampling intervals.
		for range 64 {
			keep = append(keep, make([]byte, 16<<10))
		}
		keep = keep[:0]
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
		return a.Status().GCCPUFraction >= 0
	})
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/debug/gopulse/", nil))
	var st struct {
		Fraction *float64    `json:"gc_cpu_fraction"`
		Busy     *float64    `json:"gc_busy_share"`
		Assist   *float64    `json:"gc_mark_assist_share"`
		CPU      *CPUSeconds `json:"cpu_seconds"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Fraction == nil || !(*st.Fraction > 0 && *st.Fraction <= 1) {
		t.Errorf("gc_cpu_fraction %v: want in (0, 1] after forced collections\n%s", st.Fraction, rec.Body)
	}
	// Busy time is capacity less idle Ps, so the GC's share of it is
	// never below its share of capacity.
	if st.Busy == nil || st.Fraction == nil || *st.Fraction > *st.Busy || *st.Busy > 1 {
		t.Errorf("gc_busy_share %v: want in [gc_cpu_fraction %v, 1]", st.Busy, st.Fraction)
	}
	if st.Assist == nil || *st.Assist < 0 || *st.Assist > 1 {
		t.Errorf("gc_mark_assist_share %v: want in [0, 1]", st.Assist)
	}
	if st.CPU == nil || st.CPU.GCTotal <= 0 || st.CPU.Total <= st.CPU.GCTotal || st.CPU.GCMarkAssist > st.CPU.GCTotal || st.CPU.Idle >= st.CPU.Total {
		t.Errorf("cpu_seconds %+v: want 0 < gc_total < total, gc_mark_assist ≤ gc_total, idle < total", st.CPU)
	}
}
