package gc_test

import (
	"fmt"
	"strings"

	"github.com/gopulse/gopulse/analyze/gc"
)

// A gctrace log, mixed with application output, to a summary and a
// what-if answer.
func Example() {
	log := `server listening on :8080
gc 1 @0.100s 2%: 0.05+20+0.05 ms clock, 0.1+5/10/2+0.1 ms cpu, 60->62->30 MB, 61 MB goal, 0 MB stacks, 0 MB globals, 2 P
gc 2 @0.600s 2%: 0.05+20+0.05 ms clock, 0.1+5/10/2+0.1 ms cpu, 60->62->30 MB, 61 MB goal, 0 MB stacks, 0 MB globals, 2 P
gc 3 @1.100s 2%: 0.05+20+0.05 ms clock, 0.1+5/10/2+0.1 ms cpu, 60->62->30 MB, 61 MB goal, 0 MB stacks, 0 MB globals, 2 P
gc 4 @1.600s 2%: 0.05+20+0.05 ms clock, 0.1+5/10/2+0.1 ms cpu, 60->62->30 MB, 61 MB goal, 0 MB stacks, 0 MB globals, 2 P
gc 5 @2.100s 2%: 0.05+20+0.05 ms clock, 0.1+5/10/2+0.1 ms cpu, 60->62->30 MB, 61 MB goal, 0 MB stacks, 0 MB globals, 2 P
gc 6 @2.600s 2%: 0.05+20+0.05 ms clock, 0.1+5/10/2+0.1 ms cpu, 60->62->30 MB, 61 MB goal, 0 MB stacks, 0 MB globals, 2 P
gc 7 @3.100s 2%: 0.05+20+0.05 ms clock, 0.1+5/10/2+0.1 ms cpu, 60->62->30 MB, 61 MB goal, 0 MB stacks, 0 MB globals, 2 P
request served
`
	var app strings.Builder
	tr, err := gc.ParseTrace(strings.NewReader(log), &app)
	if err != nil {
		panic(err)
	}
	d, err := gc.FromTrace(tr, gc.Settings{GOGC: 100, GOGCKnown: true})
	if err != nil {
		panic(err)
	}
	s := gc.Summarize(d)
	fmt.Printf("passed through: %q\n", app.String())
	fmt.Printf("%.1f cycles/s, GC CPU %.2f%%, pause p99 %.0f µs, live %s\n",
		s.CyclesPerSecond, s.GCCPUFraction*100, s.PauseP99Seconds*1e6, gc.FormatBytes(float64(s.LiveHeapBytes)))
	m, err := gc.Calibrate(d)
	if err != nil {
		panic(err)
	}
	p := m.Predict(200, gc.NoLimit)
	fmt.Printf("GOGC=200: %.1f cycles/s, GC CPU %.2f%%, peak %s\n", p.CyclesPerSecond, p.GCCPUFraction*100, gc.FormatBytes(p.PeakHeap))
	// Output:
	// passed through: "server listening on :8080\nrequest served\n"
	// 2.0 cycles/s, GC CPU 1.52%, pause p99 100 µs, live 30.0 MiB
	// GOGC=200: 1.0 cycles/s, GC CPU 0.79%, peak 91.5 MiB
}
