// Package sample reads runtime/metrics, process and cgroup facts and per-GC
// cycle records into caller-owned buffers, so steady-state sampling does not
// allocate.
package sample

import (
	"math"
	"runtime/metrics"
	"strings"
	"time"
)

// Names the agent's rules and summaries read. They are looked up in
// metrics.All() at start; a name missing from this Go version is skipped.
const (
	NameGoroutines      = "/sched/goroutines:goroutines"
	NameGCCPU           = "/cpu/classes/gc/total:cpu-seconds"
	NameTotalCPU        = "/cpu/classes/total:cpu-seconds"
	NameIdleCPU         = "/cpu/classes/idle:cpu-seconds"
	NameGCAssistCPU     = "/cpu/classes/gc/mark/assist:cpu-seconds"
	NameGCIdleMarkCPU   = "/cpu/classes/gc/mark/idle:cpu-seconds"
	NameHeapLive        = "/gc/heap/live:bytes"
	NameHeapGoal        = "/gc/heap/goal:bytes"
	NameGOGC            = "/gc/gogc:percent"
	NameGOMEMLIMIT      = "/gc/gomemlimit:bytes"
	NameGOMAXPROCS      = "/sched/gomaxprocs:threads"
	NameLimiterLast     = "/gc/limiter/last-enabled:gc-cycle"
	NameGCCycles        = "/gc/cycles/total:gc-cycles"
	NameGCForced        = "/gc/cycles/forced:gc-cycles"
	NameSchedLatencies  = "/sched/latencies:seconds"
	NamePausesOther     = "/sched/pauses/total/other:seconds"
	NamePausesGC        = "/sched/pauses/total/gc:seconds"
	NameTotalHeapMemory = "/memory/classes/total:bytes"
)

// Selected reports whether a runtime metric is shipped. The prefixes cover
// the GC, heap, scheduler and CPU classes; everything in them is taken, so a
// metric added by a new Go version is shipped with no code change.
func Selected(d metrics.Description) bool {
	for _, p := range []string{"/gc/", "/sched/", "/cpu/classes/", "/memory/classes/", "/sync/mutex/wait/total"} {
		if strings.HasPrefix(d.Name, p) {
			return true
		}
	}
	return false
}

// Runtime owns the []metrics.Sample buffer for the selected metrics.
type Runtime struct {
	Descs   []metrics.Description
	Samples []metrics.Sample
	index   map[string]int
}

// NewRuntime selects metrics from metrics.All() with keep (Selected if nil).
func NewRuntime(keep func(metrics.Description) bool) *Runtime {
	if keep == nil {
		keep = Selected
	}
	r := &Runtime{index: map[string]int{}}
	for _, d := range metrics.All() {
		if d.Kind == metrics.KindBad || !keep(d) {
			continue
		}
		r.index[d.Name] = len(r.Descs)
		r.Descs = append(r.Descs, d)
		r.Samples = append(r.Samples, metrics.Sample{Name: d.Name})
	}
	return r
}

// Read refreshes every sample in place. After the first call, histograms
// reuse their slices, so Read allocates nothing.
func (r *Runtime) Read() { metrics.Read(r.Samples) }

// Index returns the position of name, or -1 when this Go version lacks it.
func (r *Runtime) Index(name string) int {
	if i, ok := r.index[name]; ok {
		return i
	}
	return -1
}

// Uint returns a uint64 metric by index (0 when absent).
func (r *Runtime) Uint(i int) uint64 {
	if i < 0 || r.Samples[i].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return r.Samples[i].Value.Uint64()
}

// Float returns a float64 metric by index (0 when absent).
func (r *Runtime) Float(i int) float64 {
	if i < 0 || r.Samples[i].Value.Kind() != metrics.KindFloat64 {
		return 0
	}
	return r.Samples[i].Value.Float64()
}

// Hist returns a histogram metric by index (nil when absent). The result
// aliases the runtime's buffer until the next Read.
func (r *Runtime) Hist(i int) *metrics.Float64Histogram {
	if i < 0 || r.Samples[i].Value.Kind() != metrics.KindFloat64Histogram {
		return nil
	}
	return r.Samples[i].Value.Float64Histogram()
}

// HistSum estimates the total of a histogram's observations from bucket
// midpoints (upper bound for the last finite bucket), in the metric's unit.
func HistSum(h *metrics.Float64Histogram) float64 {
	if h == nil {
		return 0
	}
	var s float64
	for i, c := range h.Counts {
		if c == 0 {
			continue
		}
		lo, hi := h.Buckets[i], h.Buckets[i+1]
		v := (lo + hi) / 2
		if math.IsInf(hi, 1) {
			v = lo
		}
		if math.IsInf(lo, -1) {
			v = hi
		}
		s += float64(c) * v
	}
	return s
}

// Quantile returns the q-quantile of the difference cur − prev of two
// cumulative histograms with the same buckets (prev may be nil), as the
// upper bound of the bucket holding it, so "p99 ≥ threshold" is never
// claimed below the threshold. It returns 0 when there are no observations.
func Quantile(prev, cur []uint64, buckets []float64, q float64) float64 {
	var total uint64
	for i, c := range cur {
		if prev != nil && i < len(prev) {
			c -= prev[i]
		}
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	if rank == 0 {
		rank = 1
	}
	var acc uint64
	for i, c := range cur {
		if prev != nil && i < len(prev) {
			c -= prev[i]
		}
		acc += c
		if acc >= rank {
			hi := buckets[i+1]
			if math.IsInf(hi, 1) {
				return buckets[i]
			}
			return hi
		}
	}
	return buckets[len(buckets)-1]
}

// Point is the compact per-sample summary the trigger rules evaluate. It
// holds no slices so a window of Points is a plain ring.
type Point struct {
	Time       time.Time
	Goroutines uint64
	// Cumulative CPU seconds from /cpu/classes. The runtime updates them
	// only at the end of each GC cycle, so a difference between two Points
	// covers the span between the last cycle ends before each.
	GCCPU, TotalCPU, IdleCPU float64
	// GCAssistCPU is the part of GCCPU that goroutines paid in mark assists
	// (time taken from requests); GCIdleMarkCPU the part done by otherwise
	// idle Ps (nearly free).
	GCAssistCPU, GCIdleMarkCPU float64
	HeapLive, HeapGoal         uint64
	// GOMEMLIMIT (math.MaxInt64 = none) and the cgroup memory limit (0 = none).
	MemLimit    int64
	CgroupLimit uint64
	FDs         uint64
	FDLimit     uint64
	// /gc/limiter/last-enabled:gc-cycle, and the GC cycle count.
	LimiterLast uint64
	GCCycles    uint64
	// Longest GC pause among cycles completed since the previous Point.
	MaxPause time.Duration
	// Scheduling latency p99 over the rule's window, computed by the sampler.
	SchedP99 time.Duration
}
