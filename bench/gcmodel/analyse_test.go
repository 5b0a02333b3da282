package main

import (
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/gopulse/gopulse/analyze/gc"
)

func TestStats(t *testing.T) {
	tests := []struct {
		in          []float64
		med, lo, hi float64
	}{
		{[]float64{3, 1, 2}, 2, 1, 3},
		{[]float64{4, 1, 2, 3}, 2.5, 1, 4},
		{[]float64{7}, 7, 7, 7},
	}
	for _, tt := range tests {
		s := stats(tt.in)
		if s.med != tt.med || s.lo != tt.lo || s.hi != tt.hi {
			t.Errorf("stats(%v) = %+v, want %v %v %v", tt.in, s, tt.med, tt.lo, tt.hi)
		}
	}
	if s := stats(nil); !math.IsNaN(s.med) {
		t.Errorf("stats(nil) = %+v, want NaN", s)
	}
}

func TestCPUShare(t *testing.T) {
	tests := []struct {
		name string
		m    measured
		want float64
	}{
		{"clean, one busy P", measured{Seconds: 5, Procs: 1, TotalCPU: 5, ProcessCPU: 5}, 1},
		{"half the CPU", measured{Seconds: 5, Procs: 1, TotalCPU: 5, ProcessCPU: 2.5}, 0.5},
		// Classes snapshot at the last GC: 4.2 s of capacity, 40% busy,
		// applied to the 5 s read window: 2 P-seconds busy.
		{"snapshot window", measured{Seconds: 5, Procs: 1, TotalCPU: 4.2, IdleP: 2.52, ProcessCPU: 1}, 0.5},
		{"two Ps, one idle", measured{Seconds: 10, Procs: 2, TotalCPU: 20, IdleP: 10, ProcessCPU: 9}, 0.9},
		{"not capped", measured{Seconds: 1, Procs: 1, TotalCPU: 1, ProcessCPU: 1.05}, 1.05},
		{"all idle", measured{Seconds: 10, Procs: 1, TotalCPU: 10, IdleP: 10, ProcessCPU: 1}, 0},
		{"no OS figure", measured{Seconds: 10, Procs: 1, TotalCPU: 10}, 0},
	}
	for _, tt := range tests {
		if got := cpuShare(tt.m); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%s: cpuShare = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestObserveCycles(t *testing.T) {
	tests := []struct {
		name string
		m    measured
		want float64
	}{
		// Five ends span four intervals: 4 ÷ 3.2 s, not 5 ÷ 5 s.
		{"from cycle ends", measured{Seconds: 5, Cycles: 5, CycleEnds: 5, CycleSpan: 3.2}, 1.25},
		{"too few ends", measured{Seconds: 5, Cycles: 2, CycleEnds: 2, CycleSpan: 2}, 0.4},
		{"older gcchurn", measured{Seconds: 4, Cycles: 10}, 2.5},
	}
	for _, tt := range tests {
		if got := observe(tt.m).cps; math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%s: cycles/s %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestSlopeText(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var pts []gc.FreqPoint
	for i := 0; i < 27; i++ {
		f := 0.5 * math.Pow(20, float64(i)/26)
		pts = append(pts, gc.FreqPoint{Freq: f, CPU: 0.01 * math.Pow(f, 1.38) * math.Exp(0.05*rng.NormFloat64())})
	}
	got := slopeText(pts)
	var b, ci float64
	if _, err := fmtSscanf(got, &b, &ci); err != nil || math.Abs(b-1.38) > ci || ci > 0.1 {
		t.Errorf("slopeText = %q, want β ≈ 1.38 within a tight interval", got)
	}
	if got := slopeText(pts[:4]); !strings.HasPrefix(got, "refused") {
		t.Errorf("4 points: %q, want refused", got)
	}
}

func fmtSscanf(s string, b, ci *float64) (int, error) {
	return fmt.Sscanf(s, "β = %f ± %f", b, ci)
}
