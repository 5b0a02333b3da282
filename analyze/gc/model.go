package gc

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Model is the GC pacer's arithmetic (https://go.dev/doc/gc-guide),
// calibrated on one program's data:
//
//	goal      = live + (live + roots)·GOGC/100, at least 4 MiB·GOGC/100,
//	            capped by (GOMEMLIMIT − non-heap memory)·0.97
//	cycles/s  = alloc rate ÷ (κ·(goal − live))
//	GC CPU    = cycles/s · cost per cycle
//	peak heap = goal · overshoot
//
// κ ("runway efficiency": bytes allocated per cycle over goal − live) and
// the overshoot are measured, not assumed: the trigger sits below the goal
// and allocation continues during marking.
//
// Cost per cycle, where the source has per-cycle phases (gctrace), follows
// how the runtime schedules marking rather than one constant:
//
//	GC CPU per cycle = STW + u·GOMAXPROCS·T + assists      (runtime's GCCPUFraction: idle marking out)
//	GC work per cycle = STW + w·(live + roots)             (all GC CPU, idle marking in)
//	assists           = baseline assists + max(0, W·(1 − Tₐ/T))
//	Tₐ                = 0.3·(goal − live) ÷ alloc rate
//
// T is the mark phase's wall time and u the background workers' share of
// each P during it (25% by the runtime's design; both measured); idle
// Ps mark the rest for free. The trigger sits at least 70% of the way from
// the marked heap to the goal (the runtime's minTriggerRatio 45/64), so
// marking has at most Tₐ of allocation to finish in: when the allocation
// rate outruns that (a low GOGC, or a memory limit pinning the goal near
// the live heap), mutator assists do the missing share of the mark work W
// — work that idle Ps would otherwise have done unaccounted.
//
// A CPU-bound program (no idle P while marking, so no idle-priority
// marking in the calibration: a batch job, a saturated service) is a
// closed loop instead: every P-second the GC takes is a P-second the
// program does not compute or allocate in. Then all mark work is
// accounted, the cost per cycle is c = STW + W whichever worker does it,
// and with a the bytes allocated per second of mutator P time,
//
//	rate     = a·GOMAXPROCS·(1 − f)
//	f        = cycles/s · c ÷ GOMAXPROCS = k ÷ (1 + k),   k = a·c ÷ (κ·(goal − live))
//
// This holds for GOMAXPROCS=1 too, where the runtime's 25% background goal
// is met by a fractional worker (a quarter of the one P, mgcpacer.go's
// fractionalUtilizationGoal) rather than a dedicated one: the split of W
// between that worker and assists changes, its total does not.
type Model struct {
	LiveHeap    float64 // bytes marked per cycle
	Roots       float64 // stack and globals bytes scanned per cycle
	AllocRate   float64 // bytes/s
	Procs       int
	FixedCost   float64 // CPU-seconds per cycle, independent of the heap
	MarkPerByte float64 // CPU-seconds per byte scanned, idle marking out
	// WorkPerByte is mark CPU per byte scanned with idle marking in:
	// the whole mark work W = WorkPerByte·(live + roots). 0 when the
	// source does not split idle marking out.
	WorkPerByte float64
	// BackgroundUtil is the background mark workers' CPU per P per
	// second of marking (the runtime aims at 0.25); AssistPerCycle the
	// assist CPU per cycle in the calibration data. Both are 0 without
	// per-cycle phases, and the model falls back to MarkPerByte.
	BackgroundUtil float64
	AssistPerCycle float64
	// CPUBound: the calibration showed no idle-priority marking (at most
	// 2% of mark CPU), so no P was idle while marking and the GC's CPU
	// comes out of the program's throughput: Predict solves the closed
	// loop above instead of holding AllocRate fixed.
	CPUBound bool
	// MutatorAllocRate is bytes allocated per second of P time left to
	// the program (capacity less all GC CPU) in the calibration: a above.
	MutatorAllocRate float64
	// CalibGap is goal − live in the calibration data, where the
	// measured assists already include any runway shortage.
	CalibGap  float64
	Runway    float64 // κ
	Overshoot float64 // peak heap ÷ goal
	// Memory GOMEMLIMIT counts besides heap objects (stacks, GC
	// metadata, fragmentation): NonHeap + NonHeapFrac × heap goal.
	NonHeap     float64
	NonHeapFrac float64
	NonHeapEst  bool // a default, not measured
	// MarkWall is the mean wall time of a mark phase: cycles cannot come
	// faster than one per MarkWall.
	MarkWall time.Duration
	// Calibration: the settings and measurements it came from.
	GOGC            int
	MemLimit        int64
	CyclesPerSecond float64
	GCCPUFraction   float64
	Cycles          int
	Window          time.Duration
}

// Prediction is the model's answer for one GOGC/GOMEMLIMIT setting.
type Prediction struct {
	GOGC            int     `json:"gogc"`
	MemLimit        int64   `json:"gomemlimit_bytes"`
	HeapGoal        float64 `json:"heap_goal_bytes"`
	PeakHeap        float64 `json:"peak_heap_bytes"`
	CyclesPerSecond float64 `json:"cycles_per_second"`
	GCCPUFraction   float64 `json:"gc_cpu_fraction"`
	// AssistFraction is the part of GCCPUFraction done by mutator assists:
	// the latency tax on the program's own goroutines.
	AssistFraction float64 `json:"gc_assist_fraction"`
	// GCWorkFraction is all GC CPU, idle-priority marking included, over
	// CPU capacity: what the GC burns (idle marking still counts against a
	// CPU quota). 0 when the calibration source does not show idle marking.
	GCWorkFraction float64 `json:"gc_work_fraction,omitempty"`
	// MemoryLimited: GOMEMLIMIT, not GOGC, sets the goal.
	MemoryLimited bool `json:"memory_limited"`
	// DeathSpiral: the limit leaves the GC so little runway that it would
	// need more than half the CPU; the runtime's limiter then caps GC CPU
	// near 50% and lets the heap exceed the limit.
	DeathSpiral bool `json:"death_spiral"`
	// Saturated: the GC would need more than half the CPU. Assists and
	// the limiter then slow the program's allocation instead, so the
	// prediction is the work the GC would need, not what it will get.
	Saturated bool `json:"saturated"`
}

// ErrCannotModel wraps the reasons data cannot calibrate the model.
var ErrCannotModel = errors.New("the data cannot support a GC model")

// Minimums below which calibration refuses.
const (
	minModelCycles = 5
	minModelWindow = 2 * time.Second
	minModelLive   = 4 << 20 // gctrace's MiB rounding swamps smaller heaps
	limitHeadroom  = 0.97    // the runtime leaves 3% of the limit-based goal as headroom
	// Non-heap memory when the source does not show it: 4.5 MiB + 5.5%
	// of the heap goal, measured with gcchurn at live heaps of 16, 64 and
	// 160 MiB (7.3, 13.1 and 23.5 MiB) — not at the validated 32/96 MiB.
	defaultNonHeap     = 4.5 * (1 << 20)
	defaultNonHeapFrac = 0.055
)

// steady returns the cycles past start-up: from the first whose live heap
// reaches 80% of the median live heap of the later half.
func steady(cs []Cycle) []Cycle {
	if len(cs) < 4 {
		return cs
	}
	var later []float64
	for _, c := range cs[len(cs)/2:] {
		later = append(later, float64(c.HeapLive))
	}
	med := quantile(later, 0.5)
	for i, c := range cs {
		if float64(c.HeapLive) >= 0.8*med {
			return cs[i:]
		}
	}
	return cs
}

// Calibrate fits the model to d. It refuses (ErrCannotModel) when there
// are too few cycles, too short a window, a tiny heap, no allocation rate,
// or mostly forced cycles, and says which.
func Calibrate(d *Data) (Model, error) {
	m := Model{Procs: d.Procs, GOGC: d.Settings.GOGC, MemLimit: d.Settings.MemLimit, NonHeap: defaultNonHeap, NonHeapFrac: defaultNonHeapFrac, NonHeapEst: true}
	if !d.Settings.MemLimitKnown {
		m.MemLimit = NoLimit
	}
	if m.Procs <= 0 {
		return m, fmt.Errorf("%w: GOMAXPROCS unknown", ErrCannotModel)
	}
	var goal, peak float64
	switch {
	case d.Source == "gctrace" && len(d.Cycles) >= 2:
		cs := steady(d.Cycles)
		var n int
		var cpu, stw, alloc, lives, roots, goals, mark, idle, assist, bg float64
		for i := 0; i+1 < len(cs); i++ {
			c, next := cs[i], cs[i+1]
			if c.Forced || next.Forced || next.N != c.N+1 {
				continue
			}
			n++
			cpu += c.GCCPU().Seconds()
			stw += c.STWCPU.Seconds()
			mark += c.Mark.Seconds()
			idle += c.IdleCPU.Seconds()
			assist += c.AssistCPU.Seconds()
			bg += c.BackgroundCPU.Seconds()
			lives += float64(c.HeapLive)
			roots += float64(c.Stacks + c.Globals)
			goals += float64(next.HeapGoal)
			// allocated from c's start to next's start (see FromTrace).
			alloc += float64(c.HeapEnd) - float64(c.HeapStart) + float64(next.HeapStart) - float64(c.HeapLive)
			peak = max(peak, float64(next.HeapEnd), float64(next.HeapStart))
		}
		if n < minModelCycles {
			return m, fmt.Errorf("%w: %d steady, unforced GC cycles (need %d; run longer)", ErrCannotModel, n, minModelCycles)
		}
		m.Cycles = n
		m.Window = cs[len(cs)-1].Start - cs[0].Start
		if m.Window < minModelWindow {
			return m, fmt.Errorf("%w: %v of steady GC activity (need %v)", ErrCannotModel, m.Window.Round(time.Millisecond), minModelWindow)
		}
		// Rates over the unforced cycles' share of the window.
		m.LiveHeap, m.Roots, goal = lives/float64(n), roots/float64(n), goals/float64(n)
		m.FixedCost = stw / float64(n)
		m.MarkWall = time.Duration(mark / float64(n) * 1e9)
		m.MarkPerByte = (cpu - stw) / float64(n) / (m.LiveHeap + m.Roots)
		m.WorkPerByte = (cpu + idle - stw) / float64(n) / (m.LiveHeap + m.Roots)
		m.AssistPerCycle = assist / float64(n)
		m.CalibGap = goal - m.LiveHeap
		if mark > 0 {
			m.BackgroundUtil = bg / mark / float64(m.Procs)
		}
		perCycleAlloc := alloc / float64(n)
		m.CyclesPerSecond = float64(len(cs)-1) / m.Window.Seconds()
		m.AllocRate = perCycleAlloc * m.CyclesPerSecond
		m.GCCPUFraction = cpu / float64(n) * m.CyclesPerSecond / float64(m.Procs)
		m.Runway = perCycleAlloc / (goal - m.LiveHeap)
		m.setCPUBound(cpu, idle, (cpu+idle)/float64(n)*m.CyclesPerSecond/float64(m.Procs))
	default:
		if d.NumCycles < minModelCycles {
			return m, fmt.Errorf("%w: %d GC cycles in the window (need %d)", ErrCannotModel, d.NumCycles, minModelCycles)
		}
		if d.Window < minModelWindow {
			return m, fmt.Errorf("%w: window of %v (need %v)", ErrCannotModel, d.Window, minModelWindow)
		}
		if d.AllocBytes <= 0 || d.GCCPU <= 0 {
			return m, fmt.Errorf("%w: %s gives no allocation rate or GC CPU over a window (sample it twice, or use gctrace or runtime/metrics)", ErrCannotModel, d.Source)
		}
		w := d.Window.Seconds()
		m.Cycles, m.Window = d.NumCycles, d.Window
		m.LiveHeap, m.Roots, goal = float64(d.LiveHeap), float64(d.Roots), float64(d.HeapGoal)
		m.CyclesPerSecond = float64(d.NumCycles) / w
		m.AllocRate = d.AllocBytes / w
		perCycle := d.GCCPU.Seconds() / float64(d.NumCycles)
		// Without per-cycle phases, take the STW share as negligible.
		m.MarkPerByte = perCycle / (m.LiveHeap + m.Roots)
		m.GCCPUFraction = d.GCCPU.Seconds() / d.Capacity.Seconds()
		m.Runway = (m.AllocRate / m.CyclesPerSecond) / (goal - m.LiveHeap)
		peak = float64(d.PeakHeap)
		if d.Source == "runtime/metrics" && !slices.Contains(d.Unknown, "idle_mark_fraction") {
			gc, idle := d.GCCPU.Seconds(), d.IdleCPU.Seconds()
			m.setCPUBound(gc, idle, (gc+idle)/d.Capacity.Seconds())
		}
		if d.RuntimeBytes > 0 && d.PeakHeap > 0 && d.RuntimeBytes > d.PeakHeap {
			m.NonHeap, m.NonHeapFrac, m.NonHeapEst = float64(d.RuntimeBytes-d.PeakHeap), 0, false
		}
	}
	if d.ForcedCycles*2 > d.NumCycles {
		return m, fmt.Errorf("%w: %d of %d cycles were forced (runtime.GC): the pacer does not drive this program's GC", ErrCannotModel, d.ForcedCycles, d.NumCycles)
	}
	if m.LiveHeap < minModelLive {
		return m, fmt.Errorf("%w: live heap %s is below %s, where gctrace's MiB rounding and the runtime's 4 MiB minimum heap dominate", ErrCannotModel, fmtBytes(m.LiveHeap), fmtBytes(minModelLive))
	}
	if goal <= m.LiveHeap || m.AllocRate <= 0 || math.IsNaN(m.Runway) || m.Runway <= 0 {
		return m, fmt.Errorf("%w: heap goal %s not above live heap %s, or no allocation", ErrCannotModel, fmtBytes(goal), fmtBytes(m.LiveHeap))
	}
	m.Overshoot = max(peak/goal, 1)
	// A goal pinned by a known limit tells the non-heap overhead exactly.
	if m.NonHeapEst && m.MemLimit != NoLimit && m.MemLimit > 0 {
		gogcGoal := m.goalGOGC(m.GOGC)
		if d.Settings.GOGCKnown && goal < 0.95*gogcGoal {
			m.NonHeap, m.NonHeapFrac, m.NonHeapEst = max(float64(m.MemLimit)-goal/limitHeadroom, 0), 0, false
		}
	}
	return m, nil
}

// cpuBoundIdleShare is the largest share of mark CPU done by idle-priority
// workers for which calibration treats the program as CPU-bound: a few
// idle moments (a timer, a blocking syscall) do not make a program
// demand-bound.
const cpuBoundIdleShare = 0.02

// setCPUBound marks the model CPU-bound when idle marking was at most
// cpuBoundIdleShare of the GC's CPU, and derives the mutator's allocation
// rate per P-second from frac, all GC CPU over capacity.
func (m *Model) setCPUBound(gcCPU, idleCPU, frac float64) {
	if gcCPU <= 0 || idleCPU > cpuBoundIdleShare*(gcCPU+idleCPU) || frac >= 1 || m.Procs <= 0 {
		return
	}
	m.CPUBound = true
	m.MutatorAllocRate = m.AllocRate / (float64(m.Procs) * (1 - frac))
}

// LimitGoal is the heap goal the runtime derives from a memory limit:
// (limit − non-heap memory) less 3% headroom, where non-heap memory may
// grow with the heap: g = 0.97·(limit − NonHeap − NonHeapFrac·g).
func (m Model) LimitGoal(limit int64) float64 {
	return limitHeadroom * (float64(limit) - m.NonHeap) / (1 + limitHeadroom*m.NonHeapFrac)
}

// NonHeapAt is the non-heap memory the model assumes at a heap goal.
func (m Model) NonHeapAt(goal float64) float64 { return m.NonHeap + m.NonHeapFrac*goal }

func (m Model) goalGOGC(gogc int) float64 {
	if gogc < 0 {
		return math.Inf(1)
	}
	g := m.LiveHeap + (m.LiveHeap+m.Roots)*float64(gogc)/100
	return max(g, 4<<20*float64(gogc)/100)
}

// Predict answers "what if GOGC=gogc and GOMEMLIMIT=limit" (NoLimit for
// none; gogc −1 for off).
func (m Model) Predict(gogc int, limit int64) Prediction {
	p := Prediction{GOGC: gogc, MemLimit: limit}
	goal := m.goalGOGC(gogc)
	if limit != NoLimit && limit > 0 {
		lg := m.LimitGoal(limit)
		if lg < goal {
			goal, p.MemoryLimited = lg, true
		}
	}
	p.HeapGoal = goal
	// The runtime never sets the goal below the marked heap; at the limit
	// the runway shrinks to allocation during the cycle itself.
	runway := m.Runway * (goal - m.LiveHeap)
	floor := 0.01 * m.LiveHeap
	if runway < floor {
		runway = floor
	}
	rate := m.AllocRate
	if m.CPUBound && m.MutatorAllocRate > 0 {
		// The closed loop: the GC's share of the CPU is taken from the
		// allocation that drives it (see Model). The cost per cycle does
		// not depend on the rate, so the loop solves in closed form.
		c := m.FixedCost + m.markWork()
		k := m.MutatorAllocRate * c / runway
		rate = m.MutatorAllocRate * float64(m.Procs) / (1 + k)
	}
	p.CyclesPerSecond = rate / runway
	if !m.CPUBound && m.MarkWall > 0 && p.CyclesPerSecond > 1/m.MarkWall.Seconds() {
		// Back-to-back cycles: the GC is always on.
		p.CyclesPerSecond = 1 / m.MarkWall.Seconds()
		p.Saturated = true
	}
	cost, assist, work := m.cycleCost(max(goal-m.LiveHeap, floor), rate)
	p.GCCPUFraction = p.CyclesPerSecond * cost / float64(m.Procs)
	p.AssistFraction = p.CyclesPerSecond * assist / float64(m.Procs)
	if work > 0 {
		p.GCWorkFraction = p.CyclesPerSecond * work / float64(m.Procs)
	}
	// Under GOGC the heap overshoots its goal by what is allocated while
	// marking; under a memory limit the pacer holds the goal itself.
	p.PeakHeap = max(goal*m.Overshoot, m.LiveHeap)
	if p.MemoryLimited {
		p.PeakHeap = max(goal, m.LiveHeap)
	}
	// Past 50% the limiter would cap the GC (idle marking aside) and let
	// the heap exceed the limit: the death spiral. The fraction is left
	// uncapped: it is the work the GC would need.
	p.Saturated = p.Saturated || p.GCCPUFraction > 0.5
	p.DeathSpiral = p.MemoryLimited && p.Saturated
	return p
}

// minTriggerRatio is how far from the marked heap to the goal the
// runtime's trigger sits at least (mgcpacer.go: minTriggerRatioNum/
// triggerRatioDen = 45/64): marking gets at most the rest of the runway.
const minTriggerRatio = 45.0 / 64

// cycleCost is the CPU per cycle the runtime accounts to the GC (idle
// marking out), its assist part, and the whole GC work (idle marking in;
// 0 when the calibration could not split it), for a heap goal dist bytes
// above the marked heap.
func (m Model) cycleCost(dist, rate float64) (cost, assist, work float64) {
	scanned := m.LiveHeap + m.Roots
	if m.MarkWall <= 0 || m.WorkPerByte <= 0 || m.BackgroundUtil <= 0 {
		// No per-cycle phases: one calibrated cost per byte.
		c := m.FixedCost + m.MarkPerByte*scanned
		if m.CPUBound {
			return c, 0, c
		}
		return c, 0, 0
	}
	w := m.WorkPerByte * scanned
	t := m.MarkWall.Seconds()
	// short is the share of the mark work the background and idle
	// workers cannot finish before the heap reaches the goal: marking may
	// take (1 − minTriggerRatio)·gap of allocation.
	short := func(gap, r float64) float64 {
		if gap <= 0 || r <= 0 {
			return 0
		}
		return max(0, 1-(1-minTriggerRatio)*gap/r/t)
	}
	// Only the shortage beyond the calibration's is new: its assists
	// are already in AssistPerCycle.
	sh := short(dist, rate) - short(m.CalibGap, m.AllocRate)
	assist = max(m.AssistPerCycle+w*sh, 0)
	if m.CPUBound {
		// No idle P: whatever the background worker does not mark,
		// assists do, and all of it is accounted.
		return m.FixedCost + w, min(assist, w), m.FixedCost + w
	}
	bg := m.BackgroundUtil * float64(m.Procs) * t * (1 - short(dist, rate))
	assist = min(assist, max(w-bg, 0))
	return m.FixedCost + bg + assist, assist, m.FixedCost + w
}

// markWork is the whole mark work per cycle, idle marking included where
// the calibration split it out.
func (m Model) markWork() float64 {
	if m.WorkPerByte > 0 {
		return m.WorkPerByte * (m.LiveHeap + m.Roots)
	}
	return m.MarkPerByte * (m.LiveHeap + m.Roots)
}

// FreqPoint is GC frequency, GC CPU and heap utilisation over one window.
type FreqPoint struct {
	Freq     float64 // cycles/s
	CPU      float64 // GC CPU fraction (0..1)
	HeapUtil float64 // live heap ÷ heap goal (0..1)
}

// WindowPoints cuts per-cycle data into windows of k cycles (forced
// cycles skipped) and returns one point per window.
func WindowPoints(d *Data, k int) []FreqPoint {
	cs := steady(d.Cycles)
	var out []FreqPoint
	for i := 0; i+k < len(cs); i += k {
		w := cs[i : i+k+1]
		span := (w[k].Start - w[0].Start).Seconds()
		if span <= 0 || w[0].Procs <= 0 {
			continue
		}
		var cpu, util float64
		forced := false
		for _, c := range w[:k] {
			cpu += c.GCCPU().Seconds()
			forced = forced || c.Forced
			if c.HeapGoal > 0 {
				util += float64(c.HeapLive) / float64(c.HeapGoal)
			}
		}
		if forced {
			continue
		}
		out = append(out, FreqPoint{Freq: float64(k) / span, CPU: cpu / span / float64(w[0].Procs), HeapUtil: util / float64(k)})
	}
	return out
}

// PowerFit is the empirical relation CPU = α·f^β + γ·heap_util, fitted by
// weighted least squares (β by profile search, α and γ linear for each
// β; relative errors), with a
// 95% profile-likelihood interval for β.
type PowerFit struct {
	Alpha, Beta, Gamma float64
	BetaLow, BetaHigh  float64
	R2                 float64
	N                  int
	// OK is false when the data cannot support the fit; Reason says why
	// and the numbers above must not be used.
	OK     bool
	Reason string
}

// FitPower fits CPU = α·f^β + γ·heap_util. It refuses with fewer than 8
// points, a frequency range under 2×, or an interval for β that is not
// bounded inside [0.2, 4].
func FitPower(pts []FreqPoint) PowerFit {
	f := PowerFit{N: len(pts)}
	if len(pts) < 8 {
		f.Reason = fmt.Sprintf("%d windows; need at least 8", len(pts))
		return f
	}
	lo, hi := math.Inf(1), 0.0
	for _, p := range pts {
		if p.Freq <= 0 {
			f.Reason = "a window with no GC cycles"
			return f
		}
		lo, hi = min(lo, p.Freq), max(hi, p.Freq)
	}
	if hi/lo < 2 {
		f.Reason = fmt.Sprintf("GC frequency varies only %.2f× (%.3g–%.3g/s); β needs at least 2× (runs at several GOGC values)", hi/lo, lo, hi)
		return f
	}
	var tss, mean, wsum float64
	for _, p := range pts {
		mean += weight(p) * p.CPU
		wsum += weight(p)
	}
	mean /= wsum
	for _, p := range pts {
		tss += weight(p) * (p.CPU - mean) * (p.CPU - mean)
	}
	type res struct{ beta, a, g, rss float64 }
	var grid []res
	// An integer grid: a float accumulator would end at 3.9999… and
	// hide an interval that reaches the bound.
	for i := 20; i <= 400; i++ {
		b := float64(i) / 100
		a, g, rss := linFit2(pts, b)
		grid = append(grid, res{b, a, g, rss})
	}
	best := slices.MinFunc(grid, func(x, y res) int {
		switch {
		case x.rss < y.rss:
			return -1
		case x.rss > y.rss:
			return 1
		}
		return 0
	})
	f.Alpha, f.Beta, f.Gamma = best.a, best.beta, best.g
	if tss > 0 {
		f.R2 = 1 - best.rss/tss
	}
	// Profile likelihood: RSS(β) ≤ RSS_min·(1 + χ²₁(0.95)/(n−3)).
	cut := best.rss * (1 + 3.84/float64(len(pts)-3))
	f.BetaLow, f.BetaHigh = best.beta, best.beta
	for _, r := range grid {
		if r.rss <= cut {
			f.BetaLow, f.BetaHigh = min(f.BetaLow, r.beta), max(f.BetaHigh, r.beta)
		}
	}
	switch {
	case f.BetaLow <= 0.2+1e-9 || f.BetaHigh >= 4-1e-9:
		f.Reason = fmt.Sprintf("β's 95%% interval [%.2f, %.2f] reaches the search bounds: the data do not pin β down", f.BetaLow, f.BetaHigh)
	case f.R2 < 0.5:
		f.Reason = fmt.Sprintf("the relation explains only %.0f%% of the variance", f.R2*100)
	default:
		f.OK = true
	}
	return f
}

// linFit2 solves CPU ≈ a·f^b + g·u by least squares for a fixed b,
// weighting each point by 1/CPU²: GC CPU noise is relative (a busy
// machine stretches every cycle alike), so relative errors are minimised.
func linFit2(pts []FreqPoint, b float64) (a, g, rss float64) {
	var sxx, sxu, suu, sxy, suy float64
	for _, p := range pts {
		w := weight(p)
		x := math.Pow(p.Freq, b)
		sxx += w * x * x
		sxu += w * x * p.HeapUtil
		suu += w * p.HeapUtil * p.HeapUtil
		sxy += w * x * p.CPU
		suy += w * p.HeapUtil * p.CPU
	}
	det := sxx*suu - sxu*sxu
	if math.Abs(det) < 1e-300 {
		if sxx > 0 {
			a = sxy / sxx
		}
	} else {
		a = (sxy*suu - suy*sxu) / det
		g = (sxx*suy - sxu*sxy) / det
	}
	for _, p := range pts {
		r := p.CPU - a*math.Pow(p.Freq, b) - g*p.HeapUtil
		rss += weight(p) * r * r
	}
	return a, g, rss
}

func weight(p FreqPoint) float64 {
	c := math.Max(math.Abs(p.CPU), 1e-4)
	return 1 / (c * c)
}
