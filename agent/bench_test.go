package agent

import (
	"testing"
	"time"

	"github.com/gopulse/gopulse/wire/wiretest"
)

// BenchmarkTick is one sampling tick: runtime/metrics, /proc, cgroup,
// GC records and rule evaluation. At the default 1 s interval its ns/op
// is the agent's steady sampling cost per second of wall time.
func BenchmarkTick(b *testing.B) {
	a, err := build(Options{SpoolDir: "-", FlightRecorder: FlightRecorderOff, BatchInterval: time.Hour}, noEnv)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Stop(b.Context())
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		a.tick(now)
		a.filled = 0
	}
}

// BenchmarkBatch builds and encodes one 10-sample batch (the every-10 s
// cost; delivery itself is excluded: the queue is drained by nobody).
func BenchmarkBatch(b *testing.B) {
	col, err := wiretest.New()
	if err != nil {
		b.Fatal(err)
	}
	defer col.Close()
	a, err := build(Options{SpoolDir: "-", Collector: col.URL, FlightRecorder: FlightRecorderOff, BatchInterval: time.Hour}, noEnv)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Stop(b.Context())
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		for i := 0; i < 10; i++ {
			now = now.Add(time.Second)
			a.tick(now)
		}
		a.sendBatch(now)
		a.shipper.DiscardQueue()
	}
}
