package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	gcpkg "github.com/gopulse/gopulse/analyze/gc"
	"github.com/gopulse/gopulse/store"
)

// Thresholds past which GC health becomes a finding. They are deliberately
// far from normal: a finding should mean "clearly unhealthy".
const (
	gcPauseP99Limit   = 50 * time.Millisecond
	gcPauseMaxLimit   = 100 * time.Millisecond
	gcPauseMinCycles  = 5
	gcCPULimit        = 0.25
	heapLimitFraction = 0.90
)

// GCHealth is the GC health of one instance over a window.
type GCHealth struct {
	WindowSeconds float64 `json:"window_seconds"`
	Cycles        int     `json:"cycles"`
	CyclesPerSec  float64 `json:"cycles_per_second"`
	PauseP50Ms    float64 `json:"pause_p50_ms"`
	PauseP99Ms    float64 `json:"pause_p99_ms"`
	PauseMaxMs    float64 `json:"pause_max_ms"`
	// GCCPUFraction is GC CPU with idle-priority marking left out over
	// CPU capacity (GOMAXPROCS × window): the runtime's GCCPUFraction, the
	// figure `gopulse gc` prints and analyze/gc's model predicts
	// (gcCPUFraction); -1 when unknown.
	GCCPUFraction float64 `json:"gc_cpu_fraction"`
	// GCCPUSource says where the fraction came from.
	GCCPUSource string  `json:"gc_cpu_source,omitempty"`
	HeapBytes   float64 `json:"heap_bytes"`
	// LimitBytes is the tighter of GOMEMLIMIT and the cgroup limit; 0 = none.
	LimitBytes   float64  `json:"limit_bytes"`
	LimitSource  string   `json:"limit_source,omitempty"`
	HeapFraction float64  `json:"heap_fraction"`
	Problems     []string `json:"problems,omitempty"`
}

func quantile(sorted []int64, q float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// minuteMs is one minute in Unix ms, the store's rollup resolution.
const minuteMs = 60 * 1000

// floorMinute is the minute boundary at or before t (Unix ms).
func floorMinute(t int64) int64 { return t - ((t%minuteMs)+minuteMs)%minuteMs }

// ceilMinute is the minute boundary at or after t (Unix ms).
func ceilMinute(t int64) int64 {
	if f := floorMinute(t); f != t {
		return f + minuteMs
	}
	return t
}

// rolledEnd is the last minute boundary before the minute the store may
// still be rolling up at t (maintenance runs every minute): a window
// ending there is answered from the 1-minute rollups, not by decoding raw
// samples. Figures read up to it lag by one to two minutes.
func rolledEnd(t int64) int64 { return floorMinute(t) - minuteMs }

// minuteSpan narrows [start, end) to a minute-aligned start (the next
// minute boundary) and a step that covers the rest in one bucket: the store
// then answers the minutes it has rolled up from the 1-minute rollups and
// decodes raw samples only for the newest minutes. Background analysis of
// every instance every 30 s would otherwise decode every raw sample of
// every window again. A span shorter than that is left as it is.
func minuteSpan(start, end int64) (alignedStart, step int64) {
	alignedStart = ceilMinute(start)
	if end-alignedStart < minuteMs {
		return start, max(end-start, 1)
	}
	return alignedStart, ceilMinute(end - alignedStart)
}

// counterDelta is max − min of a cumulative counter over [start, end)
// from its first minute boundary on (minuteSpan), and whether it had two
// samples.
func (c *Collector) counterDelta(ctx context.Context, key store.InstanceKey, name string, start, end int64) (float64, bool, error) {
	s, step := minuteSpan(start, end)
	pts, err := c.st.QuerySeries(ctx, store.SeriesQuery{Instance: key, Name: name, Start: s, End: end, Step: step})
	if err != nil || len(pts) == 0 || pts[0].Count < 2 {
		return 0, false, err
	}
	return pts[0].Max - pts[0].Min, true, nil
}

// latest is the newest value of a series in [start, end) (minuteSpan).
func (c *Collector) latest(ctx context.Context, key store.InstanceKey, name string, start, end int64) (float64, bool, error) {
	s, step := minuteSpan(start, end)
	pts, err := c.st.QuerySeries(ctx, store.SeriesQuery{Instance: key, Name: name, Start: s, End: end, Step: step})
	if err != nil || len(pts) == 0 {
		return 0, false, err
	}
	return pts[len(pts)-1].Value, true, nil
}

// gcCPUClassNames are the counters gcCPUFraction takes, in its order.
var gcCPUClassNames = [3]string{"/cpu/classes/gc/total:cpu-seconds", "/cpu/classes/gc/mark/idle:cpu-seconds", "/cpu/classes/total:cpu-seconds"}

// gcCPUFraction is the product's one GC CPU fraction from the deltas of
// the runtime's CPU classes over a window: (gc/total − gc/mark/idle) ÷
// total, as analyze/gc's Summary and `gopulse gc` compute it (its package
// doc says why idle marking is left out and capacity, not busy time, is
// the denominator). ok is false when the counters did not move.
func gcCPUFraction(gc, idleMark, total float64) (f float64, ok bool) {
	g := gc - idleMark
	if total <= 0 || g < 0 {
		return 0, false
	}
	return min(g/total, 1), true
}

// cycleStats summarises the GC cycles of a window.
type cycleStats struct {
	n                   int
	perSec              float64 // cycles per second between the first and last end
	p50Ms, p99Ms, maxMs float64
	gcCPU, totCPU       float64 // per-cycle CPU sums of the cycles that have them
}

func summarizeCycles(cycles []store.GCCycle) cycleStats {
	st := cycleStats{n: len(cycles)}
	pauses := make([]int64, 0, len(cycles))
	for _, cy := range cycles {
		pauses = append(pauses, cy.PauseNs)
		if cy.HeapKnown {
			st.gcCPU += cy.GCCPUSeconds
			st.totCPU += cy.TotalCPUSeconds
		}
	}
	slices.Sort(pauses)
	if len(cycles) > 1 {
		if span := float64(cycles[len(cycles)-1].EndTime-cycles[0].EndTime) / 1000; span > 0 {
			st.perSec = float64(len(cycles)-1) / span
		}
	}
	st.p50Ms = float64(quantile(pauses, 0.5)) / 1e6
	st.p99Ms = float64(quantile(pauses, 0.99)) / 1e6
	if len(pauses) > 0 {
		st.maxMs = float64(pauses[len(pauses)-1]) / 1e6
	}
	return st
}

// gcCPUFrom says which input gave the GC CPU fraction.
type gcCPUFrom int

const (
	gcCPUUnknown  gcCPUFrom = iota
	gcCPUClasses            // runtime/metrics CPU classes (the agent)
	gcCPUCycles             // the agent's per-cycle records
	gcCPUMemstats           // scraped memstats GCCPUFraction, since process start
)

// gcCPUIn is the one GC CPU fraction of an instance (gcCPUFraction): from
// the runtime/metrics CPU classes over [start, classEnd) when the agent
// sends them, else from the cycles' per-cycle figures, else the scraped
// memstats GCCPUFraction (a lifetime average) newest in [start, end).
// It is −1 with gcCPUUnknown when none is there.
func (c *Collector) gcCPUIn(ctx context.Context, key store.InstanceKey, start, classEnd, end int64, cs cycleStats) (float64, gcCPUFrom, error) {
	var cls [3]float64
	ok := true
	for i, n := range gcCPUClassNames {
		v, got, err := c.counterDelta(ctx, key, n, start, classEnd)
		if err != nil {
			return -1, gcCPUUnknown, err
		}
		if cls[i], ok = v, got; !ok {
			break
		}
	}
	if f, fok := gcCPUFraction(cls[0], cls[1], cls[2]); ok && fok {
		return f, gcCPUClasses, nil
	}
	if cs.totCPU > 0 {
		return min(cs.gcCPU/cs.totCPU, 1), gcCPUCycles, nil
	}
	v, ok, err := c.latest(ctx, key, nameMSGCCPUFraction, start, end)
	if err != nil || !ok {
		return -1, gcCPUUnknown, err
	}
	return v, gcCPUMemstats, nil
}

// GCHealthOf computes the GC health of an instance over the window ending
// at now, from its stored GC cycles and samples.
func (c *Collector) GCHealthOf(ctx context.Context, key store.InstanceKey, window time.Duration, now time.Time) (GCHealth, error) {
	end := now.UnixMilli() + 1
	start := now.Add(-window).UnixMilli()
	h := GCHealth{WindowSeconds: window.Seconds(), GCCPUFraction: -1}
	cycles, _, err := c.st.GCCycles(ctx, key, start, end)
	if err != nil {
		return h, fmt.Errorf("gc cycles: %w", err)
	}
	cs := summarizeCycles(cycles)
	h.Cycles, h.CyclesPerSec = cs.n, cs.perSec
	h.PauseP50Ms, h.PauseP99Ms, h.PauseMaxMs = cs.p50Ms, cs.p99Ms, cs.maxMs

	f, from, err := c.gcCPUIn(ctx, key, start, end, end, cs)
	if err != nil {
		return h, err
	}
	h.GCCPUFraction = f
	h.GCCPUSource = map[gcCPUFrom]string{
		gcCPUClasses:  "runtime/metrics cpu classes",
		gcCPUCycles:   "gc cycles",
		gcCPUMemstats: "memstats GCCPUFraction (since process start)",
	}[from]

	// Heap against its limit.
	for _, n := range []string{nameHeapLive, nameMSHeapAlloc} {
		v, ok, err := c.latest(ctx, key, n, start, end)
		if err != nil {
			return h, err
		}
		if ok {
			h.HeapBytes = v
			break
		}
	}
	if v, ok, err := c.latest(ctx, key, nameMemLimit, start, end); err != nil {
		return h, err
	} else if ok && v > 0 && v < math.MaxInt64/2 {
		h.LimitBytes, h.LimitSource = v, "GOMEMLIMIT"
	}
	if v, ok, err := c.latest(ctx, key, nameCgMemLimit, start, end); err != nil {
		return h, err
	} else if ok && v > 0 && (h.LimitBytes == 0 || v < h.LimitBytes) {
		h.LimitBytes, h.LimitSource = v, "cgroup memory limit"
	}
	if h.LimitBytes > 0 {
		h.HeapFraction = h.HeapBytes / h.LimitBytes
	}
	return h, nil
}

// analyzeGC turns clearly unhealthy GC into findings and resolves them
// when the condition clears.
func (c *Collector) analyzeGC(ctx context.Context, key store.InstanceKey, now time.Time) error {
	// The window ends where the rollups do (rolledEnd), so its minutes are
	// not decoded from raw samples of every instance every 30 s.
	asOf := time.UnixMilli(rolledEnd(now.UnixMilli()))
	h, err := c.GCHealthOf(ctx, key, c.cfg.GCWindow, asOf)
	if err != nil {
		return err
	}
	// The model needs every GC series of the window: run it only where
	// strong advice is possible (GCCPUFraction is what the model's
	// Summary computes, so the same gate) or a memory limit is in sight.
	var adv GCAdvice
	if h.GCCPUFraction >= gcAdviceMinCPU || (h.LimitBytes > 0 && h.HeapFraction >= 0.5) {
		if adv, err = c.gcAdvice(ctx, key, c.cfg.GCWindow, asOf, true); err != nil {
			return fmt.Errorf("gc advice: %w", err)
		}
	}
	// A GC finding carries the health and the model's advice, so its page
	// says what to change, not only what is wrong.
	det, _ := json.Marshal(gcFindingDetails{GCHealth: h, Advice: adv.Advice, Summary: adv.Summary})
	type cond struct {
		kind, title, summary string
		on                   bool
	}
	conds := []cond{
		{KindGCPause, fmt.Sprintf("GC pauses up to %.1f ms (p99 %.1f ms)", h.PauseMaxMs, h.PauseP99Ms),
			fmt.Sprintf("%d GC cycles in the last %v: pause p50 %.2f ms, p99 %.2f ms, max %.2f ms; limits: p99 %v, max %v.",
				h.Cycles, c.cfg.GCWindow, h.PauseP50Ms, h.PauseP99Ms, h.PauseMaxMs, gcPauseP99Limit, gcPauseMaxLimit),
			h.Cycles >= gcPauseMinCycles && (h.PauseP99Ms >= ms(gcPauseP99Limit) || h.PauseMaxMs >= ms(gcPauseMaxLimit))},
		{KindGCCPU, fmt.Sprintf("GC uses %.0f%% of CPU capacity", 100*h.GCCPUFraction),
			fmt.Sprintf("GC CPU fraction %.1f%% of the process's CPU capacity (GOMAXPROCS × time, idle-priority marking left out; %s) over the last %v, limit %.0f%%; %.2f cycles/s.", 100*h.GCCPUFraction, h.GCCPUSource, c.cfg.GCWindow, 100*gcCPULimit, h.CyclesPerSec),
			h.GCCPUFraction >= gcCPULimit && h.Cycles >= gcPauseMinCycles},
		{KindHeapLimit, fmt.Sprintf("heap at %.0f%% of its %s", 100*h.HeapFraction, h.LimitSource),
			fmt.Sprintf("heap %.0f MiB of a %.0f MiB %s (%.0f%%), limit %.0f%%.", h.HeapBytes/(1<<20), h.LimitBytes/(1<<20), h.LimitSource, 100*h.HeapFraction, 100*heapLimitFraction),
			h.LimitBytes > 0 && h.HeapFraction >= heapLimitFraction},
		{KindGCAdvice, adviceTitle(adv.Strong), strongText(adv.Strong), adv.Strong != nil},
	}
	for _, cd := range conds {
		observed := map[string]bool{}
		if cd.on {
			observed["gc"] = true
			if _, err := c.st.Observe(ctx, store.Observation{Instance: key, Kind: cd.kind, Key: "gc", Severity: "warning",
				Title: cd.title, Summary: cd.summary, Details: det, At: now}); err != nil {
				return fmt.Errorf("observe %s: %w", cd.kind, err)
			}
			c.m.findings.WithLabelValues(cd.kind, "observed").Inc()
		}
		if err := c.resolveCleared(ctx, key, cd.kind, observed, now, "back within limits"); err != nil {
			return err
		}
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// gcFindingDetails is the JSON stored with a GC finding: the health
// fields at the top level (as before advice existed) plus the advice.
type gcFindingDetails struct {
	GCHealth
	Advice  []gcpkg.Advice `json:"advice,omitempty"`
	Summary *gcpkg.Summary `json:"gc_summary,omitempty"`
}

func adviceTitle(a *gcpkg.Advice) string {
	switch {
	case a == nil:
		return ""
	case a.Kind == "warning":
		return "GC near the death spiral: raise GOMEMLIMIT or cut the live heap"
	case a.GOGC != nil && a.GOMEMLIMITBytes != nil:
		return fmt.Sprintf("GC tuning: GOGC=%d GOMEMLIMIT=%s predicted to cut GC CPU to %.1f%%", *a.GOGC, mib(*a.GOMEMLIMITBytes), 100*deref(a.GCCPUFraction))
	case a.GOMEMLIMITBytes != nil:
		return fmt.Sprintf("GC tuning: GOMEMLIMIT=%s predicted to cut GC CPU to %.1f%%", mib(*a.GOMEMLIMITBytes), 100*deref(a.GCCPUFraction))
	case a.GOGC != nil:
		return fmt.Sprintf("GC tuning: GOGC=%d predicted to cut GC CPU to %.1f%%", *a.GOGC, 100*deref(a.GCCPUFraction))
	}
	return "GC tuning advised"
}

func strongText(a *gcpkg.Advice) string {
	if a == nil {
		return ""
	}
	return a.Text
}

func mib(b int64) string { return fmt.Sprintf("%dMiB", b>>20) }

func deref(f *float64) float64 {
	if f == nil {
		return 0
	}
	return *f
}

// KindGCAdvice is the finding raised when analyze/gc's model advises a
// setting change with a large predicted gain, or warns of the death
// spiral.
const KindGCAdvice = "gc-advice"

// A "tune" advice becomes a finding only when GC costs at least
// gcAdviceMinCPU of the CPU capacity and the model predicts at most
// gcAdviceGain of today's cost: small wins are shown on the instance page,
// not raised.
const (
	gcAdviceMinCPU = 0.10
	gcAdviceGain   = 0.5
)

// GCAdvice is analyze/gc's reading of one instance over a window: the
// summary of its runtime/metrics samples and the advice from the
// calibrated model (the same as `gopulse gc` prints for a samples file).
type GCAdvice struct {
	// Samples counts the runtime/metrics readings the window held.
	Samples int            `json:"samples"`
	Summary *gcpkg.Summary `json:"summary,omitempty"`
	Advice  []gcpkg.Advice `json:"advice"`
	// Strong is the advice item that makes a gc-advice finding, if any.
	Strong *gcpkg.Advice `json:"strong,omitempty"`
}

// adviceMinuteWindow is the shortest window the background analysis reads
// at one reading per minute rather than every raw sample.
const adviceMinuteWindow = 5 * time.Minute

// gcAdviceNames are the series analyze/gc reads.
var gcAdviceNames = append(append([]string(nil), gcpkg.MetricNames...),
	gcpkg.CgroupMemoryLimit, gcpkg.CgroupMemoryUsage, gcpkg.CgroupMemoryInactiveFile)

// GCAdviceOf rebuilds the instance's runtime/metrics readings over the
// window from the stored series and runs analyze/gc on them. Scraped
// instances have no runtime/metrics series: their advice is one "refused"
// item that says so.
func (c *Collector) GCAdviceOf(ctx context.Context, key store.InstanceKey, window time.Duration, now time.Time) (GCAdvice, error) {
	return c.gcAdvice(ctx, key, window, now, false)
}

// gcAdvice is GCAdviceOf; with perMinute (the background analysis of every
// instance) and a window of several minutes it reads one reading per
// minute — enough for analyze/gc, whose figures are differences of
// cumulative counters and histograms, and levels — from the rollups for
// the minutes already rolled up, instead of decoding every raw sample.
func (c *Collector) gcAdvice(ctx context.Context, key store.InstanceKey, window time.Duration, now time.Time, perMinute bool) (GCAdvice, error) {
	end := now.UnixMilli() + 1
	start := now.Add(-window).UnixMilli()
	var step int64
	if perMinute && window >= adviceMinuteWindow {
		start, step = ceilMinute(start), minuteMs
	}
	byT := map[int64]gcpkg.MetricSample{}
	for _, name := range gcAdviceNames {
		pts, err := c.st.QuerySeries(ctx, store.SeriesQuery{Instance: key, Name: name, Start: start, End: end, Step: step})
		if err != nil {
			return GCAdvice{}, fmt.Errorf("series %s: %w", name, err)
		}
		for _, p := range pts {
			t := p.LastT // a bucket's value is its newest sample
			s, ok := byT[t]
			if !ok {
				s = gcpkg.MetricSample{Time: time.UnixMilli(t), Values: map[string]gcpkg.Value{}}
				byT[t] = s
			}
			if p.Hist != nil {
				s.Values[name] = gcpkg.Value{Histogram: &gcpkg.Histogram{Counts: p.Hist.Counts, Buckets: p.Hist.Boundaries}}
			} else {
				v := p.Value
				s.Values[name] = gcpkg.Value{Float64: &v}
			}
		}
	}
	out := GCAdvice{Samples: len(byT), Advice: []gcpkg.Advice{}}
	samples := make([]gcpkg.MetricSample, 0, len(byT))
	for _, s := range byT {
		samples = append(samples, s)
	}
	d, err := gcpkg.FromMetrics(samples, gcpkg.Settings{})
	if errors.Is(err, gcpkg.ErrNoSamples) {
		out.Advice = append(out.Advice, gcpkg.Advice{Kind: "refused",
			Text: fmt.Sprintf("No GOGC/GOMEMLIMIT advice: %d runtime/metrics readings in the last %v (need two; scraped instances report memstats only — run the gopulse agent for advice).", len(byT), window)})
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("gc data: %w", err)
	}
	sum := gcpkg.Summarize(d)
	out.Summary = &sum
	out.Advice = gcpkg.Advise(d, sum, gcpkg.AdviceOptions{})
	for i, a := range out.Advice {
		if strongAdvice(a, sum) {
			out.Strong = &out.Advice[i]
			break
		}
	}
	return out, nil
}

// strongAdvice reports whether one advice item deserves a finding: a
// death-spiral warning, or a tuning that at least halves a GC cost of 10%
// or more of the CPU capacity.
func strongAdvice(a gcpkg.Advice, s gcpkg.Summary) bool {
	switch a.Kind {
	case "warning":
		return true
	case "tune":
		return a.GCCPUFraction != nil && s.GCCPUFraction >= gcAdviceMinCPU && *a.GCCPUFraction <= gcAdviceGain*s.GCCPUFraction
	}
	return false
}
