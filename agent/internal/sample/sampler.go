package sample

import (
	"math"
	"runtime/metrics"
	"time"
)

// Slot holds one sample. Its slices are allocated on first use and reused,
// so a Sampler filling a ring of Slots allocates nothing in steady state.
type Slot struct {
	Time time.Time
	// Vals[i] is descriptor i's uint64 value or float64 bits; Hists[i] its
	// histogram counts (nil for scalars).
	Vals   []uint64
	Hists  [][]uint64
	Proc   ProcFacts
	Cg     CgroupFacts
	Point  Point
	Cycles []Cycle
	Gaps   []Gap
}

// Sampler reads everything for one sample.
type Sampler struct {
	RT   *Runtime
	Proc *Proc
	Cg   *Cgroup
	GC   *GCTracker

	iGor, iGC, iTot, iIdle, iAssist, iIdleMark, iLive, iGoal, iLimit, iLimiter, iCycles, iLat int

	latRing [][]uint64
	latPos  int
	latN    int
	limitAt int
}

// Config is how a Sampler is built.
type Config struct {
	ProcRoot string // "/proc"
	FSRoot   string // ""
	// SchedWindow and Interval size the scheduling-latency window.
	SchedWindow, Interval time.Duration
	Keep                  func(metrics.Description) bool
}

// New builds a Sampler. Cgroup discovery errors are returned alongside a
// working Sampler (facts are best effort).
func New(c Config) (*Sampler, error) {
	if c.ProcRoot == "" {
		c.ProcRoot = "/proc"
	}
	s := &Sampler{RT: NewRuntime(c.Keep), Proc: OpenProc(c.ProcRoot), GC: NewGCTracker()}
	cg, err := DiscoverCgroup(c.ProcRoot, c.FSRoot)
	s.Cg = cg
	r := s.RT
	s.iGor, s.iGC, s.iTot, s.iIdle = r.Index(NameGoroutines), r.Index(NameGCCPU), r.Index(NameTotalCPU), r.Index(NameIdleCPU)
	s.iAssist, s.iIdleMark = r.Index(NameGCAssistCPU), r.Index(NameGCIdleMarkCPU)
	s.iLive, s.iGoal, s.iLimit = r.Index(NameHeapLive), r.Index(NameHeapGoal), r.Index(NameGOMEMLIMIT)
	s.iLimiter, s.iCycles, s.iLat = r.Index(NameLimiterLast), r.Index(NameGCCycles), r.Index(NameSchedLatencies)
	n := 2
	if c.Interval > 0 && c.SchedWindow > 0 {
		n = int(c.SchedWindow/c.Interval) + 1
	}
	if n < 2 {
		n = 2
	}
	s.latRing = make([][]uint64, n)
	return s, err
}

// Close stops the GC hook and closes files.
func (s *Sampler) Close() {
	s.GC.Stop()
	s.Proc.Close()
	s.Cg.Close()
}

// Sample reads one sample into slot.
func (s *Sampler) Sample(now time.Time, slot *Slot) {
	r := s.RT
	r.Read()
	slot.Time = now
	if len(slot.Vals) != len(r.Samples) {
		slot.Vals = make([]uint64, len(r.Samples))
		slot.Hists = make([][]uint64, len(r.Samples))
	}
	for i := range r.Samples {
		v := r.Samples[i].Value
		switch v.Kind() {
		case metrics.KindUint64:
			slot.Vals[i] = v.Uint64()
		case metrics.KindFloat64:
			slot.Vals[i] = math.Float64bits(v.Float64())
		case metrics.KindFloat64Histogram:
			h := v.Float64Histogram()
			slot.Hists[i] = append(slot.Hists[i][:0], h.Counts...)
		}
	}
	s.Proc.Read(&slot.Proc)
	s.limitAt++
	if s.limitAt%60 == 0 {
		s.Cg.Refresh() // limits can be changed on a live container
	}
	s.Cg.Read(&slot.Cg)
	slot.Cycles, slot.Gaps = s.GC.Collect(slot.Cycles[:0], slot.Gaps[:0])

	p := &slot.Point
	*p = Point{
		Time: now, Goroutines: r.Uint(s.iGor),
		GCCPU: r.Float(s.iGC), TotalCPU: r.Float(s.iTot), IdleCPU: r.Float(s.iIdle),
		GCAssistCPU: r.Float(s.iAssist), GCIdleMarkCPU: r.Float(s.iIdleMark),
		HeapLive: r.Uint(s.iLive), HeapGoal: r.Uint(s.iGoal),
		MemLimit: int64(r.Uint(s.iLimit)), CgroupLimit: slot.Cg.MemLimit,
		FDs: slot.Proc.FDs, FDLimit: slot.Proc.FDLimit,
		LimiterLast: r.Uint(s.iLimiter), GCCycles: r.Uint(s.iCycles),
	}
	for _, c := range slot.Cycles {
		if c.Pause > p.MaxPause {
			p.MaxPause = c.Pause
		}
	}
	if h := r.Hist(s.iLat); h != nil {
		cur := s.latRing[s.latPos]
		s.latRing[s.latPos] = append(cur[:0], h.Counts...)
		oldest := s.latRing[(s.latPos+1)%len(s.latRing)]
		if s.latN < len(s.latRing) {
			s.latN++
			oldest = s.latRing[0]
			if s.latN == 1 {
				oldest = nil
			}
		}
		p.SchedP99 = time.Duration(Quantile(oldest, h.Counts, h.Buckets, 0.99) * float64(time.Second))
		s.latPos = (s.latPos + 1) % len(s.latRing)
	}
}
