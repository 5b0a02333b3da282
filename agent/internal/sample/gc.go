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
	// GCCPU is the GC's CPU seconds since the previous observed cycle with
	// idle-priority marking left out, and TotalCPU the CPU capacity
	// (GOMAXPROCS × wall, as the runtime counts /cpu/classes/total) over
	// the same span, so GCCPU/TotalCPU is GCCPUFraction's definition.
	GCCPU    float64
	TotalCPU float64
	Forced   bool
}

// GCCPU is the GC's CPU between two readings of the runtime's cumulative
// /cpu/classes counters. It is the agent's one definition of GC CPU,
// shared with analyze/gc and the collector: GC time with idle-priority
// marking left out, because idle marking only soaks up Ps the program
// left idle and grows with how long marking takes, not with how much
// there is to mark (analyze/gc's package doc has the measurements).
type GCCPU struct {
	// GC is (gc/total − gc/mark/idle) seconds; Assist the mark assists
	// among them (paid inside goroutines' own work).
	GC, Assist float64
	// Capacity is /cpu/classes/total: GOMAXPROCS × wall time. Busy is
	// capacity less idle Ps (it still counts idle marking).
	Capacity, Busy float64
}

// GCCPUBetween differences two Points' CPU counters (old before cur).
func GCCPUBetween(old, cur Point) GCCPU {
	return GCCPU{
		GC:       (cur.GCCPU - cur.GCIdleMarkCPU) - (old.GCCPU - old.GCIdleMarkCPU),
		Assist:   cur.GCAssistCPU - old.GCAssistCPU,
		Capacity: cur.TotalCPU - old.TotalCPU,
		Busy:     (cur.TotalCPU - cur.IdleCPU) - (old.TotalCPU - old.IdleCPU),
	}
}

// Fraction is the GC CPU fraction, GC ÷ capacity, the runtime's own
// GCCPUFraction over the span (gc_cpu_fraction everywhere in gopulse);
// ok is false when the counters did not move (no cycle ended) or went
// backwards.
func (g GCCPU) Fraction() (f float64, ok bool) {
	if g.Capacity <= 0 || g.GC < 0 {
		return 0, false
	}
	return min(g.GC/g.Capacity, 1), true
}

// BusyShare is GC ÷ busy CPU (gc_busy_share): the GC's share of what the
// process actually ran, which shows how much of a partly idle service's
// work the GC is even when its share of capacity is small.
func (g GCCPU) BusyShare() (f float64, ok bool) {
	if g.Busy <= 0 || g.GC < 0 {
		return 0, false
	}
	return min(g.GC/g.Busy, 1), true
}

// AssistShare is the part of GC that goroutines paid in mark assists.
func (g GCCPU) AssistShare() (f float64, ok bool) {
	if g.GC <= 0 {
		return 0, g.GC == 0
	}
	return min(max(g.Assist/g.GC, 0), 1), true
}

// Gap is a range of cycles, first..last inclusive, that happened but could
// not be reported one by one.
type Gap struct{ First, Last uint32 }

type obs struct {
	cycle        uint32
	live, goal   uint64
	gcCPU, total float64
	forced       bool
	valid        bool
}

const obsRing = 1024

// GCTracker turns the runtime's GC history into per-cycle records. Pauses
// and end times come from debug.ReadGCStats (the last 256 cycles, no
// stop-the-world). Heap live/goal and GC CPU at the end of each cycle come
// from a finalizer that re-arms itself every cycle, the only hook the
// runtime offers that runs after every GC; it reads seven runtime/metrics.
// GC CPU is recorded as GCCPUBetween defines it (idle marking left out,
// over capacity), so a collector summing cycles gets the same fraction as
// one differencing the CPU-class series.
type GCTracker struct {
	stopped atomic.Bool

	mu      sync.Mutex
	ring    [obsRing]obs
	hook    []metrics.Sample // owned by the finalizer goroutine
	prevCPU Point            // only the CPU counters are set
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
		{Name: NameGCCPU}, {Name: NameTotalCPU}, {Name: NameGCIdleMarkCPU}, {Name: NameGCForced},
	}}
	t.stats.Pause = make([]time.Duration, 0, 2*256+3)
	t.stats.PauseEnd = make([]time.Time, 0, 256)
	debug.ReadGCStats(&t.stats)
	t.last = uint32(t.stats.NumGC)
	metrics.Read(t.hook)
	t.prevCPU, t.prevFrc = t.hookCPU(), u64(t.hook[6])
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

// hookCPU is the CPU counters of the latest hook read, as a Point for
// GCCPUBetween.
func (t *GCTracker) hookCPU() Point {
	return Point{GCCPU: f64(t.hook[3]), TotalCPU: f64(t.hook[4]), GCIdleMarkCPU: f64(t.hook[5])}
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
	cpu, frc := t.hookCPU(), u64(t.hook[6])
	d := GCCPUBetween(t.prevCPU, cpu)
	t.mu.Lock()
	t.ring[c%obsRing] = obs{
		cycle: c, live: u64(t.hook[1]), goal: u64(t.hook[2]),
		gcCPU: d.GC, total: d.Capacity, forced: frc > t.prevFrc, valid: true,
	}
	t.prevCPU, t.prevFrc = cpu, frc
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
			cy.HeapKnown, cy.Live, cy.Goal, cy.GCCPU, cy.TotalCPU, cy.Forced = true, o.live, o.goal, o.gcCPU, o.total, o.forced
		}
		cycles = append(cycles, cy)
	}
	t.mu.Unlock()
	t.last = n
	return cycles, gaps
}
