package gc

import (
	"errors"
	"fmt"
	"math"
)

// Advice is one recommendation or warning, with the model's numbers where
// it makes a prediction.
type Advice struct {
	// Kind: "tune" (a setting to change), "warning" (a risk, e.g. the
	// death spiral), "info" (healthy, or an observation), "refused" (the
	// data cannot support advice; Text says why).
	Kind string `json:"kind"`
	Text string `json:"text"`
	// The suggested settings and the predicted outcome, when Kind is "tune".
	GOGC            *int     `json:"gogc,omitempty"`
	GOMEMLIMITBytes *int64   `json:"gomemlimit_bytes,omitempty"`
	GCCPUFraction   *float64 `json:"gc_cpu_fraction,omitempty"`
	PeakHeapBytes   *float64 `json:"peak_heap_bytes,omitempty"`
}

// AdviceOptions tune Advise. The zero value works.
type AdviceOptions struct {
	// TargetGCCPU is the GC CPU fraction worth paying (default 0.05).
	TargetGCCPU float64
	// MaxGOGC bounds suggestions (default 1600).
	MaxGOGC int
}

// Advise turns a summary and the calibrated model into advice. Every
// "tune" item carries the model's predicted GC CPU and peak heap; when the
// model cannot be calibrated the only tuning item is a refusal that says
// why.
func Advise(d *Data, s Summary, o AdviceOptions) []Advice {
	if o.TargetGCCPU <= 0 {
		o.TargetGCCPU = 0.05
	}
	if o.MaxGOGC <= 0 {
		o.MaxGOGC = 1600
	}
	var out []Advice
	add := func(kind, format string, a ...any) *Advice {
		out = append(out, Advice{Kind: kind, Text: fmt.Sprintf(format, a...)})
		return &out[len(out)-1]
	}
	if s.PauseP99Seconds > 0.010 && s.PausesExact {
		add("info", "GC stop-the-world pauses reach %s at p99 (max %s): GOGC and GOMEMLIMIT do not shorten pauses; look for many goroutines, huge stacks or long non-preemptible loops",
			fmtSec(s.PauseP99Seconds), fmtSec(s.PauseMaxSeconds))
	}
	m, err := Calibrate(d)
	if err != nil {
		reason := err.Error()
		if errors.Is(err, ErrCannotModel) {
			reason = err.Error()
		}
		add("refused", "No GOGC/GOMEMLIMIT advice: %s.", reason)
		if s.LimiterEngagements > 0 {
			add("warning", "The GC CPU limiter engaged %d times: the heap is at the memory limit and the GC is capped near 50%% CPU (the death-spiral zone). Raise GOMEMLIMIT or reduce the live heap.", s.LimiterEngagements)
		}
		return out
	}
	limit := m.MemLimit
	cur := m.Predict(m.GOGC, limit)
	gogcName := "GOGC=" + gogcStr(m.GOGC)
	if !d.Settings.GOGCKnown {
		gogcName = "the current GOGC"
	}
	head := fmt.Sprintf("GC runs %.1f×/s with %s live heap; %s costs %.1f%% CPU (assist %.1f%%)",
		s.CyclesPerSecond, fmtBytes(m.LiveHeap), gogcName, s.GCCPUFraction*100, s.AssistFraction*100)

	// Death spiral: the memory limit leaves little room above live heap.
	if limit != NoLimit && limit > 0 {
		room := m.LimitGoal(limit) - m.LiveHeap
		zone := ""
		switch {
		case cur.DeathSpiral || room < 0.25*m.LiveHeap || s.LimiterEngagements > 0:
			zone = "Death-spiral zone"
		case cur.MemoryLimited && m.GCCPUFraction > 0.25:
			zone = "Approaching the death-spiral zone"
		}
		if zone != "" {
			need := roundMiB(m.LiveHeap*1.5/limitHeadroom + m.NonHeapAt(m.LiveHeap*1.5))
			a := add("warning", zone+": GOMEMLIMIT=%s leaves %s above the %s live heap (%.0f%%); the GC runs %.1f×/s at ~%.0f%% CPU (model); past 50%% the runtime's GC CPU limiter lets the heap exceed the limit and the service crawls. Raise GOMEMLIMIT to at least %s or cut the live heap.",
				fmtBytes(float64(limit)), fmtBytes(max(room, 0)), fmtBytes(m.LiveHeap), 100*max(room, 0)/m.LiveHeap,
				cur.CyclesPerSecond, cur.GCCPUFraction*100, fmtBytes(float64(need)))
			p := m.Predict(m.GOGC, need)
			a.GOMEMLIMITBytes, a.GCCPUFraction, a.PeakHeapBytes = &need, &p.GCCPUFraction, &p.PeakHeap
		}
	}

	container := d.Settings.ContainerLimit
	switch {
	case m.GCCPUFraction > o.TargetGCCPU && cur.MemoryLimited:
		// The limit, not GOGC, sets the goal: a higher GOGC changes
		// nothing until the limit moves.
		gg := m.goalGOGC(m.GOGC)
		want := int64(gg/limitHeadroom + m.NonHeapAt(gg))
		if container > 0 && float64(want) > float64(container)*0.9 {
			want = int64(float64(container) * 0.9)
		}
		want = roundMiB(float64(want))
		if want <= limit {
			add("info", "%s. GOMEMLIMIT=%s sets the heap goal, not GOGC, and the container leaves no room to raise it: reduce allocation or live heap.", head, fmtBytes(float64(limit)))
			break
		}
		p := m.Predict(m.GOGC, want)
		a := add("tune", "%s. GOMEMLIMIT=%s sets the heap goal (%s), not GOGC; raising it to %s would cost ~%.1f%% and peak at ~%s (model).",
			head, fmtBytes(float64(limit)), fmtBytes(cur.HeapGoal), fmtBytes(float64(want)), p.GCCPUFraction*100, fmtBytes(p.PeakHeap))
		a.GOMEMLIMITBytes, a.GCCPUFraction, a.PeakHeapBytes = &want, &p.GCCPUFraction, &p.PeakHeap
	case m.GCCPUFraction > o.TargetGCCPU:
		// Find the smallest GOGC meeting the target; pair it with a
		// memory limit as the safety net a high GOGC needs: the user's
		// own, else 90% of the container's, else twice the peak.
		safety := int64(NoLimit)
		switch {
		case limit != NoLimit && limit > 0:
			safety = limit
		case container > 0:
			safety = int64(float64(container) * 0.9)
		}
		var pick *Prediction
		for _, g := range []int{150, 200, 300, 400, 600, 800, 1200, 1600} {
			if g <= m.GOGC || g > o.MaxGOGC {
				continue
			}
			lim := safety
			if lim == NoLimit {
				lim = roundMiB(2 * m.Predict(g, NoLimit).PeakHeap)
			}
			p := m.Predict(g, lim)
			if p.DeathSpiral || p.MemoryLimited && pick != nil {
				break
			}
			pick = &p
			if p.GCCPUFraction <= o.TargetGCCPU || p.MemoryLimited {
				break
			}
		}
		if pick == nil {
			add("info", "%s. A higher GOGC would not help: the memory limit %s would bind first. Reduce allocation or live heap instead.", head, fmtBytes(float64(safety)))
			break
		}
		why := "(model)"
		if pick.GCCPUFraction > o.TargetGCCPU {
			why = fmt.Sprintf("(model; the %.0f%% target is out of reach within the memory bounds)", o.TargetGCCPU*100)
		}
		a := add("tune", "%s. GOGC=%d with GOMEMLIMIT=%s would cost ~%.1f%% and peak at ~%s %s.",
			head, pick.GOGC, fmtBytes(float64(pick.MemLimit)), pick.GCCPUFraction*100, fmtBytes(pick.PeakHeap), why)
		g, l, c, pk := pick.GOGC, pick.MemLimit, pick.GCCPUFraction, pick.PeakHeap
		a.GOGC, a.GOMEMLIMITBytes, a.GCCPUFraction, a.PeakHeapBytes = &g, &l, &c, &pk
	case container > 0 && float64(container)*0.8 < cur.PeakHeap+m.NonHeapAt(cur.HeapGoal) && m.GCCPUFraction < o.TargetGCCPU/2 && m.GOGC > 50:
		g := max(m.GOGC/2, 25)
		p := m.Predict(g, limit)
		a := add("tune", "%s, and the heap peaks at %s of a %s container limit. GC is cheap here: GOGC=%d would peak at ~%s for ~%.1f%% CPU (model).",
			head, fmtBytes(cur.PeakHeap), fmtBytes(float64(container)), g, fmtBytes(p.PeakHeap), p.GCCPUFraction*100)
		a.GOGC, a.GCCPUFraction, a.PeakHeapBytes = &g, &p.GCCPUFraction, &p.PeakHeap
	default:
		add("info", "%s: at or under the %.0f%% target; no GOGC change advised.", head, o.TargetGCCPU*100)
	}
	if container > 0 && (limit == NoLimit || limit <= 0) && d.Settings.MemLimitKnown {
		l := int64(float64(container) * 0.9)
		p := m.Predict(m.GOGC, l)
		if !p.DeathSpiral {
			a := add("tune", "No GOMEMLIMIT is set in a %s container: GOMEMLIMIT=%s (90%%) makes the GC work harder near the limit instead of being OOM-killed; at today's load it changes nothing (predicted %.1f%% CPU, peak %s).",
				fmtBytes(float64(container)), fmtBytes(float64(l)), p.GCCPUFraction*100, fmtBytes(p.PeakHeap))
			a.GOMEMLIMITBytes, a.GCCPUFraction, a.PeakHeapBytes = &l, &p.GCCPUFraction, &p.PeakHeap
		}
	}
	if m.NonHeapEst && limit != NoLimit && limit > 0 {
		add("info", "Non-heap memory (stacks, runtime metadata) is not in this source; the model assumes %s + %.1f%% of the heap goal against GOMEMLIMIT.", fmtBytes(m.NonHeap), m.NonHeapFrac*100)
	}
	return out
}

func roundMiB(b float64) int64 { return int64(math.Ceil(b/(1<<20))) << 20 }

func gogcStr(g int) string {
	if g < 0 {
		return "off"
	}
	return fmt.Sprint(g)
}

func fmtSec(s float64) string {
	switch {
	case s >= 1:
		return fmt.Sprintf("%.2f s", s)
	case s >= 1e-3:
		return fmt.Sprintf("%.1f ms", s*1e3)
	}
	return fmt.Sprintf("%.0f µs", s*1e6)
}
