// Package rules decides when to capture evidence. Rules are pure functions
// of a window of sample.Points, so they are tested with synthetic series;
// the Limiter applies per-rule cooldowns and a global hourly cap.
package rules

import (
	"fmt"
	"time"

	"github.com/gopulse/gopulse/agent/internal/sample"
)

// Rule names, as shipped in BundleManifest.rule.
const (
	GCPause      = "gc_pause"
	GCCPU        = "gc_cpu"
	Goroutines   = "goroutine_growth"
	HeapLimit    = "heap_near_limit"
	SchedLatency = "sched_latency"
	FDs          = "fds_near_limit"
	GCLimiter    = "gc_cpu_limiter"
	Manual       = "manual"
)

// Thresholds configure the rules. A negative value disables its rule.
type Thresholds struct {
	GCPause            time.Duration
	GCCPUFraction      float64
	GCCPUWindow        time.Duration
	GoroutineGrowth    float64 // fraction, 0.5 = +50%
	GoroutineGrowthMin float64 // absolute
	GoroutineWindow    time.Duration
	HeapFraction       float64
	SchedP99           time.Duration
	FDFraction         float64
	GCLimiter          bool
}

// Defaults are the defaults.
func Defaults() Thresholds {
	return Thresholds{
		GCPause: 50 * time.Millisecond, GCCPUFraction: 0.25, GCCPUWindow: 30 * time.Second,
		GoroutineGrowth: 0.5, GoroutineGrowthMin: 1000, GoroutineWindow: 5 * time.Minute,
		HeapFraction: 0.85, SchedP99: 10 * time.Millisecond, FDFraction: 0.8, GCLimiter: true,
	}
}

// Value is one number a rule looked at.
type Value struct {
	Name      string
	Value     float64
	Threshold float64
	Unit      string
}

// Result is one rule's verdict on the latest point. It holds no pointers
// to fresh memory, so evaluating every second allocates nothing; Reason
// formats the text only when a bundle is made.
type Result struct {
	Rule string
	// Level is the signal as a fraction of its threshold: ≥ 1 fires. The
	// agent arms the flight recorder when any level passes its arm level.
	Level  float64
	Fired  bool
	Vals   [4]Value
	NVals  int
	window time.Duration
}

// Values returns the values the rule looked at.
func (r *Result) Values() []Value { return r.Vals[:r.NVals] }

func res(rule string, level float64, window time.Duration, vals ...Value) Result {
	r := Result{Rule: rule, Level: level, window: window}
	r.NVals = copy(r.Vals[:], vals)
	return r
}

// Reason says in words why the rule fired.
func (r *Result) Reason() string {
	v := r.Vals
	switch r.Rule {
	case GCPause:
		return fmt.Sprintf("GC stop-the-world pause of %v ≥ %v", secs(v[0].Value), secs(v[0].Threshold))
	case GCCPU:
		return fmt.Sprintf("GC used %.0f%% of the process's CPU capacity (GOMAXPROCS × time) over %v, idle-priority marking left out (threshold %.0f%%)", 100*v[0].Value, secs(v[1].Value).Round(time.Second), 100*v[0].Threshold)
	case Goroutines:
		return fmt.Sprintf("goroutines grew from %.0f to %.0f (+%.0f%%) within %v", v[1].Value, v[0].Value, 100*v[3].Value, r.window)
	case HeapLimit:
		return fmt.Sprintf("live heap %.0f B is %.0f%% of the effective memory limit %.0f B", v[0].Value, 100*v[0].Value/v[1].Value, v[1].Value)
	case SchedLatency:
		return fmt.Sprintf("scheduling latency p99 %v ≥ %v", secs(v[0].Value), secs(v[0].Threshold))
	case FDs:
		return fmt.Sprintf("%.0f open fds, %.0f%% of RLIMIT_NOFILE %.0f", v[0].Value, 100*v[0].Value/v[1].Value, v[1].Value)
	case GCLimiter:
		return fmt.Sprintf("the GC CPU limiter engaged in cycle %.0f: the heap is pressing against GOMEMLIMIT", v[0].Value)
	}
	return r.Rule
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// Evaluate runs every enabled rule on window (oldest first; the last point
// is "now") and appends their results to dst.
func Evaluate(dst []Result, th Thresholds, window []sample.Point) []Result {
	if len(window) == 0 {
		return dst
	}
	for _, f := range []func(Thresholds, []sample.Point) (Result, bool){
		gcPause, gcCPU, goroutines, heapLimit, schedLatency, fds, gcLimiter,
	} {
		if r, ok := f(th, window); ok {
			r.Fired = r.Level >= 1
			dst = append(dst, r)
		}
	}
	return dst
}

func gcPause(th Thresholds, w []sample.Point) (Result, bool) {
	if th.GCPause <= 0 {
		return Result{}, false
	}
	p := w[len(w)-1].MaxPause
	return res(GCPause, float64(p)/float64(th.GCPause), 0, Value{"gc_pause", p.Seconds(), th.GCPause.Seconds(), "seconds"}), true
}

// since returns the earliest point no older than d before the last one.
func since(w []sample.Point, d time.Duration) (sample.Point, bool) {
	now := w[len(w)-1].Time
	for _, p := range w[:len(w)-1] {
		if now.Sub(p.Time) <= d {
			return p, true
		}
	}
	return sample.Point{}, false
}

// gcCPU fires when the GC takes GCCPUFraction of the process's CPU
// capacity (GOMAXPROCS × time, idle marking left out: sample.GCCPU) over
// GCCPUWindow, the figure `gopulse gc` prints and the collector shows.
// 0.25 stays the default because the runtime's own goal for a mark phase
// is 25% of GOMAXPROCS in dedicated workers: averaging that over a whole
// window means marking never stops or assists pile on, a storm on any
// service, while a merely idle service no longer looks like one (over
// busy CPU its idle marking read as 30–90% GC).
func gcCPU(th Thresholds, w []sample.Point) (Result, bool) {
	if th.GCCPUFraction <= 0 || th.GCCPUWindow <= 0 {
		return Result{}, false
	}
	old, ok := since(w, th.GCCPUWindow)
	if !ok {
		return Result{}, false
	}
	cur := w[len(w)-1]
	if cur.Time.Sub(old.Time) < th.GCCPUWindow/2 {
		// Too little history: a fresh process's first cycles would
		// read as a storm.
		return Result{}, false
	}
	frac, ok := sample.GCCPUBetween(old, cur).Fraction()
	if !ok {
		return Result{Rule: GCCPU}, true
	}
	return res(GCCPU, frac/th.GCCPUFraction, 0, Value{"gc_cpu_fraction", frac, th.GCCPUFraction, "ratio"}, Value{"window", cur.Time.Sub(old.Time).Seconds(), th.GCCPUWindow.Seconds(), "seconds"}), true
}

func goroutines(th Thresholds, w []sample.Point) (Result, bool) {
	if th.GoroutineGrowth <= 0 || th.GoroutineGrowthMin <= 0 || th.GoroutineWindow <= 0 {
		return Result{}, false
	}
	now := w[len(w)-1]
	lo := float64(now.Goroutines)
	found := false
	for _, p := range w[:len(w)-1] {
		if now.Time.Sub(p.Time) <= th.GoroutineWindow {
			found = true
			if g := float64(p.Goroutines); g < lo {
				lo = g
			}
		}
	}
	if !found {
		return Result{}, false
	}
	cur := float64(now.Goroutines)
	growth := cur - lo
	rel := 0.0
	if lo > 0 {
		rel = growth / lo
	}
	// Both conditions must hold, so the level is the weaker of the two.
	level := min(growth/th.GoroutineGrowthMin, rel/th.GoroutineGrowth)
	if lo == 0 {
		level = growth / th.GoroutineGrowthMin
	}
	return res(Goroutines, level, th.GoroutineWindow, Value{"goroutines", cur, 0, "goroutines"}, Value{"goroutines_min_in_window", lo, 0, "goroutines"},
		Value{"growth", growth, th.GoroutineGrowthMin, "goroutines"}, Value{"growth_fraction", rel, th.GoroutineGrowth, "ratio"}), true
}

func heapLimit(th Thresholds, w []sample.Point) (Result, bool) {
	if th.HeapFraction <= 0 {
		return Result{}, false
	}
	p := w[len(w)-1]
	lim := sample.EffectiveMemLimit(p.MemLimit, p.CgroupLimit)
	if lim == 0 {
		return Result{}, false
	}
	frac := float64(p.HeapLive) / float64(lim)
	return res(HeapLimit, frac/th.HeapFraction, 0, Value{"heap_live", float64(p.HeapLive), th.HeapFraction * float64(lim), "bytes"}, Value{"effective_limit", float64(lim), 0, "bytes"}), true
}

func schedLatency(th Thresholds, w []sample.Point) (Result, bool) {
	if th.SchedP99 <= 0 {
		return Result{}, false
	}
	p := w[len(w)-1].SchedP99
	return res(SchedLatency, float64(p)/float64(th.SchedP99), 0, Value{"sched_latency_p99", p.Seconds(), th.SchedP99.Seconds(), "seconds"}), true
}

func fds(th Thresholds, w []sample.Point) (Result, bool) {
	p := w[len(w)-1]
	if th.FDFraction <= 0 || p.FDLimit == 0 {
		return Result{}, false
	}
	frac := float64(p.FDs) / float64(p.FDLimit)
	return res(FDs, frac/th.FDFraction, 0, Value{"open_fds", float64(p.FDs), th.FDFraction * float64(p.FDLimit), "fds"}, Value{"fd_limit", float64(p.FDLimit), 0, "fds"}), true
}

func gcLimiter(th Thresholds, w []sample.Point) (Result, bool) {
	if !th.GCLimiter || len(w) < 2 {
		return Result{}, false
	}
	prev, cur := w[len(w)-2], w[len(w)-1]
	level := 0.0
	if cur.LimiterLast > prev.LimiterLast {
		level = 1
	}
	return res(GCLimiter, level, 0, Value{"limiter_last_enabled_cycle", float64(cur.LimiterLast), float64(prev.LimiterLast) + 1, "gc-cycle"}), true
}

// Limiter enforces a cooldown per rule and a cap on bundles per hour.
type Limiter struct {
	Cooldown   time.Duration
	MaxPerHour int
	last       map[string]time.Time
	recent     []time.Time
	Suppressed uint64
}

// Allow reports whether a bundle for rule may be captured at now, and
// records it if so.
func (l *Limiter) Allow(rule string, now time.Time) bool {
	if l.last == nil {
		l.last = map[string]time.Time{}
	}
	if t, ok := l.last[rule]; ok && now.Sub(t) < l.Cooldown && now.Sub(t) >= 0 {
		l.Suppressed++
		return false
	}
	// Drop cap entries older than an hour (or in the future after a clock
	// jump back, so a jump cannot block triggers for an hour).
	kept := l.recent[:0]
	for _, t := range l.recent {
		if d := now.Sub(t); d < time.Hour && d >= 0 {
			kept = append(kept, t)
		}
	}
	l.recent = kept
	if l.MaxPerHour > 0 && len(l.recent) >= l.MaxPerHour {
		l.Suppressed++
		return false
	}
	l.last[rule] = now
	l.recent = append(l.recent, now)
	return true
}
