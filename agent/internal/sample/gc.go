package sample

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// Cycle is one completed GC cycle (see wire.GCCycle).
type Cycle struct {
	N         uint32
	End       time.Time
	Pause     time.Duration
	HeapKnown bool
	Live      uint64
	Goal      uint64
	GCCPU     float64
	TotalCPU  float64
	Forced    bool
}

// Gap is a range of cycles, first..last inclusive, that happened but could
// not be reported one by one.
type Gap struct{ First, Last uint32 }

type obs struct {
	cycle       uint32
	live, goal  uint64
	gcCPU, busy float64
	forced      bool
	valid       bool
}

const obsRing = 1024

// GCTracker turns the runtime's GC history into per-cycle records. Pauses
// and end times come from debug.ReadGCStats (the last 256 cycles, no
// stop-the-world). Heap live/goal and GC CPU at the end of each cycle come
// from a finalizer that re-arms itself every cycle, the only hook the
// runtime offers that runs after every GC; it reads seven runtime/metrics.
type GCTracker struct {
	stopped atomic.Bool

	mu      sync.Mutex
	ring    [obsRing]obs
	hook    []metrics.Sample // owned by the finalizer goroutine
	prevGC  float64
	prevBsy float64
	prevFrc uint64

	stats debug.GCStats
	last  uint32
}

type sentinel struct{ p *int } // a pointer keeps it out of the tiny allocator, whose finalizers may never run

// NewGCTracker starts tracking from the current cycle; earlier cycles are
// not reported.
func NewGCTracker() *GCTracker {
	t := &GCTracker{hook: []metrics.Sample{
		{Name: NameGCCycles}, {Name: NameHeapLive}, {Name: NameHeapGoal},
		{Name: NameGCCPU}, {Name: NameTotalCPU}, {Name: NameIdleCPU}, {Name: NameGCForced},
	}}
	t.stats.Pause = make([]time.Duration, 0, 2*256+3)
	t.stats.PauseEnd = make([]time.Time, 0, 256)
	debug.ReadGCStats(&t.stats)
	t.last = uint32(t.stats.NumGC)
	metrics.Read(t.hook)
	t.prevGC, t.prevBsy, t.prevFrc = f64(t.hook[3]), f64(t.hook[4])-f64(t.hook[5]), u64(t.hook[6])
	t.arm()
	return t
}

func u64(s metrics.Sample) uint64 {
	if s.Value.Kind() == metrics.KindUint64 {
		return s.Value.Uint64()
	}
	return 0
}

func f64(s metrics.Sample) float64 {
	if s.Value.Kind() == metrics.KindFloat64 {
		return s.Value.Float64()
	}
	return 0
}

func (t *GCTracker) arm() {
	runtime.SetFinalizer(&sentinel{}, func(*sentinel) {
		if t.stopped.Load() {
			return
		}
		t.observe()
		t.arm()
	})
}

// Stop ends the re-arming; the last finalizer runs (and does nothing) at
// the next GC.
func (t *GCTracker) Stop() { t.stopped.Store(true) }

func (t *GCTracker) observe() {
	metrics.Read(t.hook)
	c := uint32(u64(t.hook[0]))
	gc, busy, frc := f64(t.hook[3]), f64(t.hook[4])-f64(t.hook[5]), u64(t.hook[6])
	t.mu.Lock()
	t.ring[c%obsRing] = obs{
		cycle: c, live: u64(t.hook[1]), goal: u64(t.hook[2]),
		gcCPU: gc - t.prevGC, busy: busy - t.prevBsy, forced: frc > t.prevFrc, valid: true,
	}
	t.prevGC, t.prevBsy, t.prevFrc = gc, busy, frc
	t.mu.Unlock()
}

// Collect appends the cycles completed since the previous call to cycles,
// and the ranges it could not report one by one to gaps. It allocates
// nothing once the slices have grown.
func (t *GCTracker) Collect(cycles []Cycle, gaps []Gap) ([]Cycle, []Gap) {
	debug.ReadGCStats(&t.stats)
	n := uint32(t.stats.NumGC)
	if n == t.last {
		return cycles, gaps
	}
	first := t.last + 1
	avail := uint32(len(t.stats.Pause))
	if n-t.last > avail {
		// More cycles than the runtime remembers: say so rather than
		// pretend the reported ones were all.
		gaps = append(gaps, Gap{First: first, Last: n - avail})
		first = n - avail + 1
	}
	t.mu.Lock()
	for c := first; c <= n; c++ {
		i := n - c // Pause[0] is the most recent
		cy := Cycle{N: c, Pause: t.stats.Pause[i], End: t.stats.PauseEnd[i]}
		if o := t.ring[c%obsRing]; o.valid && o.cycle == c {
			cy.HeapKnown, cy.Live, cy.Goal, cy.GCCPU, cy.TotalCPU, cy.Forced = true, o.live, o.goal, o.gcCPU, o.busy, o.forced
		}
		cycles = append(cycles, cy)
	}
	t.mu.Unlock()
	t.last = n
	return cycles, gaps
}
