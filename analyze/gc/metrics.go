package gc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime/metrics"
	"sort"
	"strconv"
	"time"
)

// Histogram is a runtime/metrics Float64Histogram: Counts[i] values fell in
// [Buckets[i], Buckets[i+1]); the outer bounds may be ±Inf.
type Histogram struct {
	Counts  []uint64 `json:"counts"`
	Buckets Bounds   `json:"buckets"`
}

// Bounds are histogram bucket boundaries. JSON has no infinities, so
// ±Inf are written as the strings "-Inf" and "+Inf".
type Bounds []float64

// MarshalJSON implements json.Marshaler.
func (b Bounds) MarshalJSON() ([]byte, error) {
	out := []byte{'['}
	for i, v := range b {
		if i > 0 {
			out = append(out, ',')
		}
		switch {
		case math.IsInf(v, 1):
			out = append(out, `"+Inf"`...)
		case math.IsInf(v, -1):
			out = append(out, `"-Inf"`...)
		case math.IsNaN(v):
			return nil, errors.New("histogram bound is NaN")
		default:
			out = strconv.AppendFloat(out, v, 'g', -1, 64)
		}
	}
	return append(out, ']'), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (b *Bounds) UnmarshalJSON(data []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	out := make(Bounds, len(raw))
	for i, r := range raw {
		switch string(r) {
		case `"+Inf"`:
			out[i] = math.Inf(1)
		case `"-Inf"`:
			out[i] = math.Inf(-1)
		default:
			if err := json.Unmarshal(r, &out[i]); err != nil {
				return fmt.Errorf("bucket bound %d: %w", i, err)
			}
		}
	}
	*b = out
	return nil
}

// Value is one runtime/metrics value. Exactly one of the fields is used,
// chosen by the metric (runtime/metrics.Description.Kind).
type Value struct {
	Uint64    *uint64    `json:"u,omitempty"`
	Float64   *float64   `json:"f,omitempty"`
	Histogram *Histogram `json:"h,omitempty"`
}

// Number is the value as float64, whichever scalar kind it has.
func (v Value) Number() (float64, bool) {
	switch {
	case v.Uint64 != nil:
		return float64(*v.Uint64), true
	case v.Float64 != nil:
		return *v.Float64, true
	}
	return 0, false
}

// MetricSample is one reading of runtime/metrics at a time: the input the
// agent and the collector feed to FromMetrics. Names are runtime/metrics
// names; the cgroup names below carry container data alongside.
type MetricSample struct {
	Time   time.Time        `json:"t"`
	Values map[string]Value `json:"v"`
}

// Container values a caller may put in a MetricSample next to the
// runtime's own, in runtime/metrics naming style.
const (
	CgroupMemoryLimit        = "/cgroup/memory/limit:bytes"         // memory.max / memory.limit_in_bytes
	CgroupMemoryUsage        = "/cgroup/memory/usage:bytes"         // memory.current / memory.usage_in_bytes
	CgroupMemoryInactiveFile = "/cgroup/memory/inactive-file:bytes" // memory.stat inactive_file
)

// The runtime/metrics names FromMetrics reads.
const (
	mCycles      = "/gc/cycles/total:gc-cycles"
	mForced      = "/gc/cycles/forced:gc-cycles"
	mGCCPU       = "/cpu/classes/gc/total:cpu-seconds"
	mAssist      = "/cpu/classes/gc/mark/assist:cpu-seconds"
	mIdleMark    = "/cpu/classes/gc/mark/idle:cpu-seconds"
	mTotalCPU    = "/cpu/classes/total:cpu-seconds"
	mAllocs      = "/gc/heap/allocs:bytes"
	mLive        = "/gc/heap/live:bytes"
	mGoal        = "/gc/heap/goal:bytes"
	mGOGC        = "/gc/gogc:percent"
	mMemLimit    = "/gc/gomemlimit:bytes"
	mLimiter     = "/gc/limiter/last-enabled:gc-cycle"
	mPauses      = "/sched/pauses/total/gc:seconds"
	mPausesOld   = "/gc/pauses:seconds"
	mProcs       = "/sched/gomaxprocs:threads"
	mMapped      = "/memory/classes/total:bytes"
	mReleased    = "/memory/classes/heap/released:bytes"
	mHeapObjects = "/memory/classes/heap/objects:bytes"
	mStackScan   = "/gc/scan/stack:bytes"
	mGlobalsScan = "/gc/scan/globals:bytes"
)

// MetricNames are the runtime/metrics names FromMetrics uses; a collector
// samples at least these.
var MetricNames = []string{mCycles, mForced, mGCCPU, mAssist, mIdleMark, mTotalCPU, mAllocs, mLive, mGoal,
	mGOGC, mMemLimit, mLimiter, mPauses, mProcs, mMapped, mReleased, mHeapObjects, mStackScan, mGlobalsScan}

// SampleFromRuntime converts a runtime/metrics.Read result into a
// MetricSample (copying histograms, which the runtime may reuse).
func SampleFromRuntime(t time.Time, ss []metrics.Sample) MetricSample {
	m := MetricSample{Time: t, Values: make(map[string]Value, len(ss))}
	for _, s := range ss {
		switch s.Value.Kind() {
		case metrics.KindUint64:
			v := s.Value.Uint64()
			m.Values[s.Name] = Value{Uint64: &v}
		case metrics.KindFloat64:
			v := s.Value.Float64()
			m.Values[s.Name] = Value{Float64: &v}
		case metrics.KindFloat64Histogram:
			h := s.Value.Float64Histogram()
			m.Values[s.Name] = Value{Histogram: &Histogram{
				Counts: append([]uint64(nil), h.Counts...), Buckets: append([]float64(nil), h.Buckets...)}}
		}
	}
	return m
}

// ErrNoSamples: fewer than two usable metric samples.
var ErrNoSamples = errors.New("need at least two runtime/metrics samples at different times")

// DecodeMetricSamples reads MetricSamples as JSON, one object per line or
// concatenated. Malformed histograms are rejected, not repaired.
func DecodeMetricSamples(r io.Reader) ([]MetricSample, error) {
	dec := json.NewDecoder(r)
	var out []MetricSample
	for n := 1; ; n++ {
		var s MetricSample
		err := dec.Decode(&s)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("decode metric sample %d: %w", n, err)
		}
		for name, v := range s.Values {
			if h := v.Histogram; h != nil {
				if len(h.Buckets) != len(h.Counts)+1 {
					return out, fmt.Errorf("decode metric sample %d: histogram %s has %d buckets for %d counts (want counts+1)", n, name, len(h.Buckets), len(h.Counts))
				}
				if !sort.Float64sAreSorted(h.Buckets) {
					return out, fmt.Errorf("decode metric sample %d: histogram %s has unsorted bucket bounds", n, name)
				}
			}
		}
		out = append(out, s)
	}
}

// FromMetrics turns a series of runtime/metrics samples (in any order)
// into Data over the span from the first to the last sample. Counters are
// differenced; gauges come from the last sample; pauses come from the
// difference of the pause histograms (bucket precision, not per cycle).
func FromMetrics(samples []MetricSample, set Settings) (*Data, error) {
	ss := make([]MetricSample, 0, len(samples))
	for _, s := range samples {
		if len(s.Values) > 0 && !s.Time.IsZero() {
			ss = append(ss, s)
		}
	}
	sort.SliceStable(ss, func(i, j int) bool { return ss[i].Time.Before(ss[j].Time) })
	if len(ss) < 2 || !ss[len(ss)-1].Time.After(ss[0].Time) {
		return nil, ErrNoSamples
	}
	first, last := ss[0], ss[len(ss)-1]
	d := &Data{Source: "runtime/metrics", Settings: set, Window: last.Time.Sub(first.Time), LimiterEngagements: -1}
	num := func(s MetricSample, name string) (float64, bool) {
		v, ok := s.Values[name]
		if !ok {
			return 0, false
		}
		return v.Number()
	}
	delta := func(name, json string) (float64, bool) {
		a, ok1 := num(first, name)
		b, ok2 := num(last, name)
		if !ok1 || !ok2 {
			d.Unknown = append(d.Unknown, json)
			d.note("metric %s missing", name)
			return 0, false
		}
		if b < a {
			d.Partial = true
			d.note("counter %s went backwards (process restarted?); rates from it are not used", name)
			d.Unknown = append(d.Unknown, json)
			return 0, false
		}
		return b - a, true
	}
	if v, ok := delta(mCycles, "cycles_per_second"); ok {
		d.NumCycles = int(v)
	}
	if v, ok := delta(mForced, "forced_cycles"); ok {
		d.ForcedCycles = int(v)
	}
	sec := func(v float64) time.Duration { return time.Duration(v * 1e9) }
	if v, ok := delta(mAssist, "assist_fraction"); ok {
		d.AssistCPU = sec(v)
	}
	if v, ok := delta(mIdleMark, "idle_mark_fraction"); ok {
		d.IdleCPU = sec(v)
	}
	if v, ok := delta(mGCCPU, "gc_cpu_fraction"); ok {
		d.GCCPU = max(sec(v)-d.IdleCPU, 0)
	}
	if v, ok := delta(mTotalCPU, "gc_cpu_fraction"); ok {
		d.Capacity = sec(v)
	}
	if v, ok := delta(mAllocs, "alloc_bytes_per_second"); ok {
		d.AllocBytes = v
	}
	if v, ok := num(last, mProcs); ok {
		d.Procs = int(v)
	}
	if d.Capacity == 0 && d.Procs > 0 {
		d.Capacity = time.Duration(float64(d.Window) * float64(d.Procs))
	}
	if v, ok := num(last, mLive); ok {
		d.LiveHeap = uint64(v)
	} else {
		d.Unknown = append(d.Unknown, "live_heap_bytes")
	}
	if v, ok := num(last, mGoal); ok {
		d.HeapGoal = uint64(v)
	}
	a, _ := num(last, mStackScan)
	b, _ := num(last, mGlobalsScan)
	d.Roots = uint64(a + b)
	for _, s := range ss {
		if v, ok := num(s, mHeapObjects); ok {
			d.PeakHeap = max(d.PeakHeap, uint64(v))
		}
	}
	d.GOGCSource, d.MemLimitSource = "given", "given"
	if v, ok := num(last, mGOGC); ok {
		g := int(v)
		if v > 1e9 {
			g = -1
		}
		d.Settings.GOGC, d.Settings.GOGCKnown, d.GOGCSource = g, true, "runtime/metrics"
	}
	if v, ok := num(last, mMemLimit); ok {
		lim := int64(NoLimit)
		if v < float64(NoLimit) {
			lim = int64(v)
		}
		d.Settings.MemLimit, d.Settings.MemLimitKnown, d.MemLimitSource = lim, true, "runtime/metrics"
	}
	// The limiter's last-enabled cycle moving between samples means it
	// fired in that interval; several firings within one interval count
	// once, so this is a lower bound at the sampling resolution.
	if _, ok := num(first, mLimiter); ok {
		d.LimiterEngagements = 0
		prev, _ := num(first, mLimiter)
		for _, s := range ss[1:] {
			if v, ok := num(s, mLimiter); ok {
				if v > prev {
					d.LimiterEngagements++
				}
				prev = v
			}
		}
	}
	hname := mPauses
	if _, ok := last.Values[hname]; !ok {
		hname = mPausesOld
	}
	ha, hb := first.Values[hname].Histogram, last.Values[hname].Histogram
	if ha != nil && hb != nil && len(ha.Counts) == len(hb.Counts) && len(hb.Buckets) == len(hb.Counts)+1 {
		h := &Histogram{Counts: make([]uint64, len(hb.Counts)), Buckets: hb.Buckets}
		for i := range hb.Counts {
			if hb.Counts[i] >= ha.Counts[i] {
				h.Counts[i] = hb.Counts[i] - ha.Counts[i]
			}
		}
		d.Pauses = h
	} else {
		d.Unknown = append(d.Unknown, "pause_p99_seconds")
	}
	m, ok1 := num(last, mMapped)
	r, ok2 := num(last, mReleased)
	if ok1 && ok2 {
		d.RuntimeBytes = uint64(m - r)
	}
	if v, ok := num(last, CgroupMemoryUsage); ok {
		d.CgroupUsage = uint64(v)
		if f, ok := num(last, CgroupMemoryInactiveFile); ok {
			d.CgroupInactiveFile = uint64(f)
		}
	}
	if v, ok := num(last, CgroupMemoryLimit); ok && d.Settings.ContainerLimit == 0 && v > 0 && v < 1<<62 {
		d.Settings.ContainerLimit = uint64(v)
	}
	return d, nil
}

// quantile of unsorted values (copies), linear between order statistics.
func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	return s[i] + (s[i+1]-s[i])*(pos-float64(i))
}

// histQuantile returns the upper bound of the bucket holding quantile q
// (bucket precision; the runtime's pause buckets are ~12% wide near 50 ms).
func histQuantile(h *Histogram, q float64) (float64, bool) {
	var total uint64
	for _, c := range h.Counts {
		total += c
	}
	if total == 0 {
		return 0, false
	}
	rank := uint64(math.Ceil(q * float64(total)))
	if rank == 0 {
		rank = 1
	}
	var acc uint64
	for i, c := range h.Counts {
		acc += c
		if acc >= rank {
			ub := h.Buckets[i+1]
			if math.IsInf(ub, 1) {
				ub = h.Buckets[i]
			}
			return ub, true
		}
	}
	return h.Buckets[len(h.Buckets)-1], true
}
