package gc

// Setting is one GOGC/GOMEMLIMIT pair for a what-if question.
type Setting struct {
	GOGC     int   `json:"gogc"`
	MemLimit int64 `json:"gomemlimit_bytes"`
}

// Report is everything the CLI and the collector show for one program:
// the summary (flattened into the JSON object), the advice, the model's
// answers to what-if questions, the empirical fit, and per-cycle points
// for plots.
type Report struct {
	Summary
	Advice []Advice     `json:"advice"`
	WhatIf []Prediction `json:"what_if,omitempty"`
	Model  *ModelReport `json:"model,omitempty"`
	Fit    *PowerFit    `json:"fit,omitempty"`
	Points []CyclePoint `json:"cycles_detail,omitempty"`
	Parse  *TraceStats  `json:"parse,omitempty"`
}

// ModelReport is the calibrated model, or why there is none.
type ModelReport struct {
	OK                  bool    `json:"ok"`
	Refusal             string  `json:"refusal,omitempty"`
	LiveHeapBytes       float64 `json:"live_heap_bytes,omitempty"`
	AllocBytesPerSecond float64 `json:"alloc_bytes_per_second,omitempty"`
	CostPerCycleSeconds float64 `json:"cost_per_cycle_cpu_seconds,omitempty"`
	RunwayEfficiency    float64 `json:"runway_efficiency,omitempty"`
	Overshoot           float64 `json:"overshoot,omitempty"`
	NonHeapBytes        float64 `json:"non_heap_bytes,omitempty"`
	NonHeapFraction     float64 `json:"non_heap_fraction_of_goal,omitempty"`
	MarkWallSeconds     float64 `json:"mark_wall_seconds,omitempty"`
	NonHeapEstimated    bool    `json:"non_heap_estimated,omitempty"`
	CalibrationCycles   int     `json:"calibration_cycles,omitempty"`
	// CPUBound: no P was idle while marking, so predictions take the GC's
	// CPU out of the program's allocation rate (see Model).
	CPUBound bool `json:"cpu_bound,omitempty"`
}

// CyclePoint is one GC cycle for plotting. Zero fields are unknown.
type CyclePoint struct {
	T             float64 `json:"t_seconds"` // from the first cycle
	N             int64   `json:"n"`
	PauseSeconds  float64 `json:"pause_seconds"`
	HeapLiveBytes uint64  `json:"heap_live_bytes,omitempty"`
	HeapGoalBytes uint64  `json:"heap_goal_bytes,omitempty"`
	HeapPeakBytes uint64  `json:"heap_peak_bytes,omitempty"`
	// GCCPUFraction of this cycle's interval (to the next cycle).
	GCCPUFraction float64 `json:"gc_cpu_fraction,omitempty"`
	Forced        bool    `json:"forced,omitempty"`
}

// Analyze builds the Report for d: summary, advice, what-ifs (the default
// set when whatIf is nil: GOGC 50…400 at the current limit), the model,
// the empirical fit over windows of 5 cycles, and plot points.
func Analyze(d *Data, o AdviceOptions, whatIf []Setting) Report {
	r := Report{Summary: Summarize(d)}
	r.Advice = Advise(d, r.Summary, o)
	m, err := Calibrate(d)
	if err != nil {
		r.Model = &ModelReport{Refusal: err.Error()}
	} else {
		r.Model = &ModelReport{OK: true, LiveHeapBytes: m.LiveHeap, AllocBytesPerSecond: m.AllocRate,
			CostPerCycleSeconds: m.FixedCost + m.MarkPerByte*(m.LiveHeap+m.Roots), RunwayEfficiency: m.Runway,
			Overshoot: m.Overshoot, NonHeapBytes: m.NonHeap, NonHeapFraction: m.NonHeapFrac, MarkWallSeconds: m.MarkWall.Seconds(), NonHeapEstimated: m.NonHeapEst, CalibrationCycles: m.Cycles, CPUBound: m.CPUBound}
		if whatIf == nil {
			lim := m.MemLimit
			for _, g := range []int{50, 100, 200, 400} {
				whatIf = append(whatIf, Setting{GOGC: g, MemLimit: lim})
			}
		}
		for _, s := range whatIf {
			r.WhatIf = append(r.WhatIf, m.Predict(s.GOGC, s.MemLimit))
		}
	}
	if d.Source == "gctrace" {
		fit := FitPower(WindowPoints(d, 5))
		r.Fit = &fit
	}
	r.Points = cyclePoints(d)
	return r
}

func cyclePoints(d *Data) []CyclePoint {
	cs := d.Cycles
	if len(cs) == 0 {
		return nil
	}
	out := make([]CyclePoint, 0, len(cs))
	t0 := cs[0].Start
	e0 := cs[0].End
	for i, c := range cs {
		p := CyclePoint{N: c.N, PauseSeconds: c.Pause.Seconds(), HeapLiveBytes: c.HeapLive,
			HeapGoalBytes: c.HeapGoal, HeapPeakBytes: max(c.HeapEnd, c.HeapStart), Forced: c.Forced}
		switch {
		case d.Source == "gctrace":
			p.T = (c.Start - t0).Seconds()
			if i+1 < len(cs) && c.Procs > 0 {
				if span := cs[i+1].Start - c.Start; span > 0 {
					p.GCCPUFraction = float64(c.GCCPU()) / float64(span) / float64(c.Procs)
				}
			}
		case !c.End.IsZero() && !e0.IsZero():
			p.T = c.End.Sub(e0).Seconds()
		default:
			p.T = float64(i)
		}
		out = append(out, p)
	}
	return out
}
