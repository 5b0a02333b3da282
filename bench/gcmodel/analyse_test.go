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
		m    measured
		want float64
	}{
		{measured{TotalCPU: 10, IdleP: 6, ProcessCPU: 2}, 0.5},
		{measured{TotalCPU: 10, IdleP: 6, ProcessCPU: 5}, 1}, // capped: sysmon and exiting threads
		{measured{TotalCPU: 10, IdleP: 10, ProcessCPU: 1}, 0},
		{measured{TotalCPU: 10, IdleP: 2}, 0}, // no OS figure
	}
	for _, tt := range tests {
		if got := cpuShare(tt.m); got != tt.want {
			t.Errorf("cpuShare(%+v) = %v, want %v", tt.m, got, tt.want)
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
