package gc

import (
	"math"
	"slices"
)

// Summary is the GC health of one program over a window. JSON names carry
// units; a name listed in Unknown was not measurable from the source and
// its value is zero.
type Summary struct {
	Source        string   `json:"source"`
	Partial       bool     `json:"partial"`
	Notes         []string `json:"notes,omitempty"`
	Unknown       []string `json:"unknown,omitempty"`
	WindowSeconds float64  `json:"window_seconds"`

	Cycles          int     `json:"cycles"`
	ForcedCycles    int     `json:"forced_cycles"`
	CyclesPerSecond float64 `json:"cycles_per_second"`

	PauseP50Seconds float64 `json:"pause_p50_seconds"`
	PauseP99Seconds float64 `json:"pause_p99_seconds"`
	PauseMaxSeconds float64 `json:"pause_max_seconds"`
	// PausesExact: per-cycle pauses; otherwise bucket upper bounds.
	PausesExact bool `json:"pauses_exact"`

	// GCCPUFraction is GC CPU ÷ CPU capacity (GOMAXPROCS × window),
	// idle-priority marking left out: the runtime's GCCPUFraction over the
	// window (the package doc says why this definition). Its GC CPU
	// limiter caps a related figure near 50%: the same over capacity less
	// idle time, equal to this one when no P is idle.
	GCCPUFraction float64 `json:"gc_cpu_fraction"`
	// AssistFraction is mark assist CPU ÷ capacity: GC work charged to
	// the goroutines that allocate, i.e. to request latency.
	AssistFraction float64 `json:"assist_fraction"`
	// IdleMarkFraction is idle-priority marking ÷ capacity (CPU that
	// would otherwise be idle).
	IdleMarkFraction float64 `json:"idle_mark_fraction"`

	AllocBytesPerSecond float64 `json:"alloc_bytes_per_second"`
	LiveHeapBytes       uint64  `json:"live_heap_bytes"`
	HeapGoalBytes       uint64  `json:"heap_goal_bytes"`
	PeakHeapBytes       uint64  `json:"peak_heap_bytes"`

	GOGC            int    `json:"gogc"` // -1 = off
	GOGCSource      string `json:"gogc_source"`
	GOMEMLIMITBytes int64  `json:"gomemlimit_bytes"` // math.MaxInt64 = none
	GOMEMLIMITSrc   string `json:"gomemlimit_source"`
	GOMAXPROCS      int    `json:"gomaxprocs"`

	// MemoryLimitedCycles had a heap goal below what GOGC alone gives:
	// GOMEMLIMIT drove them (gctrace with GOGC known only).
	MemoryLimitedCycles int `json:"memory_limited_cycles"`
	// LimiterEngagements counts sampling intervals in which the GC CPU
	// limiter fired (-1 unknown).
	LimiterEngagements int `json:"limiter_engagements"`

	ContainerLimitBytes uint64 `json:"container_limit_bytes,omitempty"`
	// HeadroomBytes is container limit − memory the runtime holds (or −
	// cgroup usage when known, which also counts page cache and cgo).
	HeadroomBytes         int64  `json:"headroom_bytes,omitempty"`
	RuntimeBytes          uint64 `json:"runtime_bytes,omitempty"`
	CgroupUsageBytes      uint64 `json:"cgroup_usage_bytes,omitempty"`
	CgroupWorkingSetBytes uint64 `json:"cgroup_working_set_bytes,omitempty"`
	// CgroupAccountingGapBytes is the cgroup's working set minus what the
	// Go runtime accounts for: page cache still active, cgo/C
	// allocations, other processes in the cgroup.
	CgroupAccountingGapBytes int64 `json:"cgroup_accounting_gap_bytes,omitempty"`
}

// Summarize computes the health summary of d.
func Summarize(d *Data) Summary {
	s := Summary{
		Source: d.Source, Partial: d.Partial, Notes: d.Notes,
		WindowSeconds: d.Window.Seconds(), Cycles: d.NumCycles, ForcedCycles: d.ForcedCycles,
		LiveHeapBytes: d.LiveHeap, HeapGoalBytes: d.HeapGoal, PeakHeapBytes: d.PeakHeap,
		GOGC: d.Settings.GOGC, GOGCSource: d.GOGCSource,
		GOMEMLIMITBytes: d.Settings.MemLimit, GOMEMLIMITSrc: d.MemLimitSource,
		GOMAXPROCS: d.Procs, LimiterEngagements: d.LimiterEngagements,
	}
	if !d.Settings.MemLimitKnown {
		s.GOMEMLIMITBytes = 0
	}
	if !d.Settings.GOGCKnown {
		s.GOGC = 0
	}
	unknown := map[string]bool{}
	for _, u := range d.Unknown {
		unknown[u] = true
	}
	if d.Window > 0 {
		w := d.Window.Seconds()
		s.CyclesPerSecond = float64(d.NumCycles) / w
		if !unknown["alloc_bytes_per_second"] {
			s.AllocBytesPerSecond = d.AllocBytes / w
		}
	}
	switch {
	case d.Capacity > 0:
		c := float64(d.Capacity)
		s.GCCPUFraction = float64(d.GCCPU) / c
		s.AssistFraction = float64(d.AssistCPU) / c
		s.IdleMarkFraction = float64(d.IdleCPU) / c
	case d.CPUFractionSinceStart > 0:
		s.GCCPUFraction = d.CPUFractionSinceStart
	}
	var pauses []float64
	for _, c := range d.Cycles {
		if c.Pause > 0 || d.Source == "gctrace" {
			pauses = append(pauses, c.Pause.Seconds())
		}
	}
	switch {
	case len(pauses) > 0:
		s.PausesExact = true
		s.PauseP50Seconds = quantile(pauses, 0.5)
		s.PauseP99Seconds = quantile(pauses, 0.99)
		s.PauseMaxSeconds = slices.Max(pauses)
	case d.Pauses != nil:
		s.PauseP50Seconds, _ = histQuantile(d.Pauses, 0.5)
		s.PauseP99Seconds, _ = histQuantile(d.Pauses, 0.99)
		s.PauseMaxSeconds, _ = histQuantile(d.Pauses, 1)
		s.Notes = append(s.Notes, "pauses from the runtime's histogram: upper bounds of buckets, not per cycle")
	}
	if d.Source == "gctrace" && d.Settings.GOGCKnown && d.Settings.GOGC > 0 {
		for i := 1; i < len(d.Cycles); i++ {
			p, c := d.Cycles[i-1], d.Cycles[i]
			want := float64(p.HeapLive) + float64(p.HeapLive+p.Stacks+p.Globals)*float64(d.Settings.GOGC)/100
			// MiB rounding in gctrace: allow 2 MiB + 5%.
			if !c.Forced && float64(c.HeapGoal) < want*0.95-2<<20 {
				s.MemoryLimitedCycles++
			}
		}
	}
	s.RuntimeBytes = d.RuntimeBytes
	if d.CgroupUsage > 0 {
		s.CgroupUsageBytes = d.CgroupUsage
		ws := d.CgroupUsage - min(d.CgroupInactiveFile, d.CgroupUsage)
		s.CgroupWorkingSetBytes = ws
		if d.RuntimeBytes > 0 {
			s.CgroupAccountingGapBytes = int64(ws) - int64(d.RuntimeBytes)
		}
	}
	if lim := d.Settings.ContainerLimit; lim > 0 {
		s.ContainerLimitBytes = lim
		used := d.RuntimeBytes
		if s.CgroupWorkingSetBytes > 0 {
			used = s.CgroupWorkingSetBytes
		}
		if used == 0 {
			used = d.PeakHeap
		}
		s.HeadroomBytes = int64(lim) - int64(used)
	}
	s.Unknown = dedup(d.Unknown)
	if s.GCCPUFraction > 1 || math.IsNaN(s.GCCPUFraction) {
		s.Notes = append(s.Notes, "GC CPU fraction above 1: the source's clock or GOMAXPROCS is inconsistent")
	}
	return s
}

func dedup(v []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, x := range v {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
