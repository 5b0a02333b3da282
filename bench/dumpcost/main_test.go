package main

import (
	"math"
	"testing"
)

func TestDelta(t *testing.T) {
	buckets := []string{"-Inf", "0", "0.001", "0.01", "0.1", "+Inf"}
	tests := []struct {
		name          string
		a, b          []uint64
		max, total    float64
		count         uint64
		mismatchedLen bool
	}{
		{name: "no pauses", a: []uint64{0, 1, 2, 3, 0}, b: []uint64{0, 1, 2, 3, 0}},
		{name: "one mid pause", a: []uint64{0, 1, 2, 3, 0}, b: []uint64{0, 1, 3, 3, 0},
			max: 0.01, total: 0.0055, count: 1},
		{name: "largest bucket wins", a: []uint64{0, 0, 0, 0, 0}, b: []uint64{0, 2, 0, 1, 0},
			max: 0.1, total: 2*0.0005 + 0.055, count: 3},
		{name: "open top bucket uses its lower bound", a: []uint64{0, 0, 0, 0, 0}, b: []uint64{0, 0, 0, 0, 1},
			max: 0.1, total: 0.1, count: 1},
		{name: "different shapes", a: []uint64{0}, b: []uint64{0, 0, 0, 0, 1}, mismatchedLen: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mx, tot, n := delta(stwHistogram{Buckets: buckets, Counts: tc.a}, stwHistogram{Buckets: buckets, Counts: tc.b})
			if tc.mismatchedLen {
				if !math.IsNaN(mx) || !math.IsNaN(tot) || n != 0 {
					t.Errorf("got %v %v %d, want NaN NaN 0", mx, tot, n)
				}
				return
			}
			if math.Abs(mx-tc.max) > 1e-12 || math.Abs(tot-tc.total) > 1e-12 || n != tc.count {
				t.Errorf("delta = max %v total %v count %d, want %v %v %d", mx, tot, n, tc.max, tc.total, tc.count)
			}
		})
	}
}

func TestTotalRE(t *testing.T) {
	for line, want := range map[string]string{
		"goroutine profile: total 100007\n":   "100007",
		"goroutineleak profile: total 465\n":  "465",
		"goroutine 1 [running]:\n":            "",
		"\x1f\x8b\x08\x00 binary proto bytes": "",
	} {
		m := totalRE.FindStringSubmatch(line)
		got := ""
		if m != nil {
			got = m[1]
		}
		if got != want {
			t.Errorf("totalRE on %q = %q, want %q", line, got, want)
		}
	}
}
