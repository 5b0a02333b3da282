package main

import (
	"os"
	"testing"
	"time"
)

func openTestdata(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestSummarize(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name         string
		runs         []result
		best, median time.Duration
		n            int
		timedOut     bool
		overHeap     bool
	}{
		{name: "odd count", runs: []result{{Wall: 30 * ms}, {Wall: 10 * ms}, {Wall: 20 * ms}}, best: 10 * ms, median: 20 * ms, n: 3},
		{name: "even count takes lower median", runs: []result{{Wall: 40 * ms}, {Wall: 10 * ms}, {Wall: 30 * ms}, {Wall: 20 * ms}},
			best: 10 * ms, median: 20 * ms, n: 4},
		{name: "timed out run is not a time", runs: []result{{Wall: 10 * ms}, {Wall: time.Minute, TimedOut: true}},
			best: 10 * ms, median: 10 * ms, n: 1, timedOut: true},
		{name: "only over heap", runs: []result{{Wall: time.Second, OverHeap: true}}, n: 0, overHeap: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := summarize(&series{runs: tc.runs})
			if st.best != tc.best || st.median != tc.median || st.n != tc.n || st.timedOut != tc.timedOut || st.overHeap != tc.overHeap {
				t.Errorf("summarize = best %v median %v n %d timedOut %v overHeap %v; want %v %v %d %v %v",
					st.best, st.median, st.n, st.timedOut, st.overHeap, tc.best, tc.median, tc.n, tc.timedOut, tc.overHeap)
			}
		})
	}
}

// TestWorkers runs each parser's worker path in-process on a tiny real
// dump, so a broken parser wiring fails here rather than mid-benchmark.
func TestWorkers(t *testing.T) {
	for name, parse := range parsers {
		t.Run(name, func(t *testing.T) {
			f := openTestdata(t, "testdata/small.txt")
			groups, gs, err := parse(f)
			if err != nil {
				t.Fatal(err)
			}
			// small.txt is manygoroutines -n 100: 100 goroutines plus main
			// and the accept loop.
			if gs != 102 || groups < 2 || groups > gs {
				t.Errorf("%s: %d groups of %d goroutines, want 102 goroutines in 2..102 groups", name, groups, gs)
			}
		})
	}
}
