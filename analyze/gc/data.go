package gc

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// NoLimit is GOMEMLIMIT's "no limit" value (math.MaxInt64), as the runtime
// reports it in /gc/gomemlimit:bytes.
const NoLimit = math.MaxInt64

// Settings are what the caller knows about the program's GC settings from
// outside (its environment, flags). Zero value: nothing known.
type Settings struct {
	// GOGC percent; -1 is "off". Meaningful when GOGCKnown.
	GOGC      int
	GOGCKnown bool
	// GOMEMLIMIT in bytes; NoLimit is "none". Meaningful when MemLimitKnown.
	MemLimit      int64
	MemLimitKnown bool
	// ContainerLimit is the container's memory limit in bytes (0 unknown).
	ContainerLimit uint64
}

// SettingsFromEnv reads GOGC and GOMEMLIMIT as the runtime would from an
// environment (os.Getenv, or a lookup over a child's env). Unset variables
// mean the runtime defaults (GOGC=100, no limit), which are known too.
func SettingsFromEnv(getenv func(string) string) (Settings, error) {
	s := Settings{GOGC: 100, GOGCKnown: true, MemLimit: NoLimit, MemLimitKnown: true}
	if v := getenv("GOGC"); v != "" {
		if strings.EqualFold(v, "off") {
			s.GOGC = -1
		} else {
			n, err := strconv.Atoi(v)
			if err != nil {
				return s, fmt.Errorf("GOGC=%q: want a percentage or \"off\"", v)
			}
			s.GOGC = n
		}
	}
	if v := getenv("GOMEMLIMIT"); v != "" {
		n, err := ParseBytes(v)
		if err != nil {
			return s, fmt.Errorf("GOMEMLIMIT=%q: %w", v, err)
		}
		s.MemLimit = n
	}
	return s, nil
}

// EnvSettings is SettingsFromEnv(os.Getenv).
func EnvSettings() (Settings, error) { return SettingsFromEnv(os.Getenv) }

// ParseBytes parses a byte count the way GOMEMLIMIT is written: a number
// with an optional B, KiB, MiB, GiB or TiB suffix, or "off"/"max".
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "off" || t == "max" {
		return NoLimit, nil
	}
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(t, u.suf) {
			t, mult = strings.TrimSuffix(t, u.suf), u.m
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("want a byte count like 512MiB or 2GiB, got %q", s)
	}
	if n > math.MaxInt64/mult {
		return NoLimit, nil
	}
	return n * mult, nil
}

// Data is GC behaviour over a window, from any source, in one shape.
// Summarize and Fit read it. Fields the source could not fill are zero
// and their names are listed in Unknown.
type Data struct {
	Source string // "gctrace", "memstats" or "runtime/metrics"
	// Cycles are per-cycle records, in order (gctrace, memstats ring).
	Cycles []Cycle
	// Window is the time span the totals below cover.
	Window time.Duration
	// NumCycles and ForcedCycles completed within Window.
	NumCycles, ForcedCycles int
	// CPU totals within Window. GCCPU leaves idle-priority marking out
	// (that is IdleCPU); Capacity is GOMAXPROCS × Window.
	GCCPU, AssistCPU, IdleCPU, Capacity time.Duration
	// CPUFractionSinceStart is the runtime's GCCPUFraction (idle
	// marking excluded, whole process life), when only that is known.
	CPUFractionSinceStart float64
	// AllocBytes allocated on the heap within Window.
	AllocBytes float64
	// Pauses is the pause distribution when not per cycle
	// (runtime/metrics histograms).
	Pauses *Histogram
	// Latest heap sizes.
	LiveHeap, HeapGoal, PeakHeap, Roots uint64
	Procs                               int
	Settings                            Settings
	// GOGCSource and MemLimitSource say where Settings came from.
	GOGCSource, MemLimitSource string
	// LimiterEngagements counts windows in which the GC CPU limiter
	// fired (-1 unknown).
	LimiterEngagements int
	// Memory the runtime holds from the OS (mapped, not released), and
	// the cgroup's view (0 unknown).
	RuntimeBytes, CgroupUsage, CgroupInactiveFile uint64
	// Unknown lists Summary JSON names the source cannot provide.
	Unknown []string
	// Notes explain partial or estimated results.
	Notes []string
	// Partial is set when part of the input was unusable.
	Partial bool
}

func (d *Data) note(format string, a ...any) { d.Notes = append(d.Notes, fmt.Sprintf(format, a...)) }

// FromTrace turns a parsed gctrace log into Data. set says what is known
// about GOGC/GOMEMLIMIT from outside; when GOGC is not known it is
// inferred from the heap goals. A log with several process runs (the cycle
// number restarts) is cut to the last run.
func FromTrace(t *Trace, set Settings) (*Data, error) {
	cs := t.Cycles
	if len(cs) == 0 {
		return nil, ErrNoCycles
	}
	runs, cut := 1, 0
	for i := len(cs) - 1; i > 0; i-- {
		if cs[i].N <= cs[i-1].N || cs[i].Start < cs[i-1].Start {
			runs++
			if runs == 2 {
				cut = i
			}
		}
	}
	cs = cs[cut:]
	d := &Data{Source: "gctrace", Settings: set, LimiterEngagements: -1}
	if runs > 1 {
		d.note("the log holds %d runs of a program (GC cycle numbers restart); analysed the last one (%d cycles)", runs, len(cs))
	}
	d.Cycles = cs
	if n := len(t.Stats.Problems); n > 0 {
		d.Partial = true
		d.note("%d gc-like lines could not be parsed (first: %s)", n, t.Stats.Problems[0])
	}
	for i := 1; i < len(cs); i++ {
		if cs[i].N != cs[i-1].N+1 {
			d.Partial = true
			d.note("cycles %d..%d are missing from the log", cs[i-1].N+1, cs[i].N-1)
			break
		}
	}
	last := cs[len(cs)-1]
	d.Procs = last.Procs
	d.LiveHeap, d.HeapGoal, d.Roots = last.HeapLive, last.HeapGoal, last.Stacks+last.Globals
	for _, c := range cs {
		d.PeakHeap = max(d.PeakHeap, c.HeapEnd, c.HeapStart)
		if c.Forced {
			d.ForcedCycles++
		}
	}
	d.NumCycles = len(cs)
	if len(cs) >= 2 {
		// The window runs from the first cycle's start to the last's;
		// it holds cycles 0..n-2 completely, and the allocation between.
		d.Window = last.Start - cs[0].Start
		d.NumCycles = len(cs) - 1
		d.ForcedCycles = 0
		var alloc float64
		for i, c := range cs[:len(cs)-1] {
			if c.Forced {
				d.ForcedCycles++
			}
			d.GCCPU += c.GCCPU()
			d.AssistCPU += c.AssistCPU
			d.IdleCPU += c.IdleCPU
			d.Capacity += time.Duration(float64(cs[i+1].Start-c.Start) * float64(c.Procs))
			alloc += float64(c.HeapEnd) - float64(c.HeapStart)
			alloc += float64(cs[i+1].HeapStart) - float64(c.HeapLive)
		}
		d.AllocBytes = max(alloc, 0)
	} else {
		d.Partial = true
		d.note("only one GC cycle: no rates")
		d.Unknown = append(d.Unknown, "cycles_per_second", "gc_cpu_fraction", "alloc_bytes_per_second")
	}
	d.GOGCSource, d.MemLimitSource = "given", "given"
	if !set.GOGCKnown {
		if g, ok, pinned := inferGOGC(cs); ok {
			d.Settings.GOGC, d.Settings.GOGCKnown = g, true
			d.GOGCSource = "inferred from heap goals"
		} else if pinned {
			d.Unknown = append(d.Unknown, "gogc")
			d.GOGCSource = "unknown: the heap goal stays at " + fmtBytes(float64(last.HeapGoal)) + " while the live heap moves, so a memory limit (GOMEMLIMIT) drives the GC"
		} else {
			d.Unknown = append(d.Unknown, "gogc")
			d.GOGCSource = "unknown"
		}
	}
	if !set.MemLimitKnown {
		d.Unknown = append(d.Unknown, "gomemlimit_bytes")
		d.MemLimitSource = "unknown (gctrace does not show it)"
	}
	d.Unknown = append(d.Unknown, "limiter_engagements", "cgroup_accounting_gap_bytes")
	return d, nil
}

// inferGOGC estimates GOGC from consecutive cycles: the goal of cycle n is
// live(n-1) + (live(n-1)+stacks+globals)×GOGC/100 unless the memory limit
// lowered it. A memory limit only lowers goals, so the median of the
// per-cycle estimates is taken; when the goal stays pinned while the live
// heap moves, the limit drives every cycle and GOGC cannot be seen.
func inferGOGC(cs []Cycle) (gogc int, ok bool, pinned bool) {
	var est []float64
	var goals, lives []float64
	for i := 1; i < len(cs); i++ {
		p := cs[i-1]
		if p.HeapLive < 8<<20 || cs[i].Forced || p.Forced {
			continue
		}
		scan := float64(p.HeapLive + p.Stacks + p.Globals)
		est = append(est, (float64(cs[i].HeapGoal)-float64(p.HeapLive))/scan*100)
		goals = append(goals, float64(cs[i].HeapGoal))
		lives = append(lives, float64(p.HeapLive))
	}
	if len(est) < 3 {
		return 0, false, false
	}
	// Past the start-up cycles, under GOGC the goal follows the live heap
	// with slope 1+GOGC/100; pinned by a limit, it does not follow at all.
	// (gctrace rounds to MiB, so one MiB of live-heap spread is noise.)
	k := len(goals) / 3
	gs, ls := goals[k:], lives[k:]
	if len(gs) >= 4 && spread(ls) >= 1<<20 && spread(gs) <= 2<<20 && slope(ls, gs) < 0.5 {
		return 0, false, true
	}
	m := quantile(est, 0.5)
	// Round to what people set: multiples of 10 (or 5 below 100).
	step := 10.0
	if m < 100 {
		step = 5
	}
	return int(math.Round(m/step) * step), true, false
}

func spread(v []float64) float64 {
	lo, hi := v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	return hi - lo
}

// slope of the least-squares line y = a + b·x.
func slope(x, y []float64) float64 {
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx /= float64(len(x))
	my /= float64(len(y))
	var sxy, sxx float64
	for i := range x {
		sxy += (x[i] - mx) * (y[i] - my)
		sxx += (x[i] - mx) * (x[i] - mx)
	}
	if sxx == 0 {
		return math.NaN()
	}
	return sxy / sxx
}
