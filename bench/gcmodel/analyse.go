package main

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/gopulse/gopulse/analyze/gc"
)

const noLimit = gc.NoLimit

// calibrate fits the model from a baseline run's gctrace alone, as
// `gopulse gc` would from the target's log.
func calibrate(r runRec) (gc.Model, error) {
	tr, err := gc.ParseTrace(strings.NewReader(r.Trace), nil)
	if err != nil {
		return gc.Model{}, err
	}
	d, err := gc.FromTrace(tr, gc.Settings{GOGC: r.GOGC, GOGCKnown: true, MemLimit: r.Limit, MemLimitKnown: true})
	if err != nil {
		return gc.Model{}, err
	}
	return gc.Calibrate(d)
}

// cpuShare is the CPU the OS gave the process over the P time the runtime
// counted busy (1 = nothing else ran on its CPUs; 0.5 = its threads ran
// half the time they held a P). The runtime's CPU classes are a snapshot
// at each GC's mark termination, so they cover a slightly different window
// than process CPU; the busy share of capacity is taken from the classes
// and applied to the window the process CPU was read over. Not capped:
// above 1 means threads outside the Ps (sysmon, an exiting thread) or a
// window mismatch, worth seeing.
func cpuShare(m measured) float64 {
	if m.TotalCPU <= 0 || m.ProcessCPU <= 0 || m.Seconds <= 0 || m.Procs <= 0 {
		return 0
	}
	busy := (m.TotalCPU - m.IdleP) / m.TotalCPU * m.Seconds * float64(m.Procs)
	if busy <= 0 {
		return 0
	}
	return m.ProcessCPU / busy
}

// obs is one run reduced to the quantities the table compares.
type obs struct {
	cps   float64 // GC cycles/s
	rt    float64 // runtime's GC CPU fraction: (gc − idle mark) ÷ capacity, P time
	rtOS  float64 // the same, scaled to the CPU the OS gave (rt × share)
	work  float64 // all GC CPU, idle marking included, OS-scaled, ÷ capacity
	peak  float64
	share float64
	util  float64 // live ÷ goal at the end
}

func observe(m measured) obs {
	o := obs{rt: m.GCFraction, peak: m.Peak, share: cpuShare(m)}
	switch {
	case m.CycleEnds >= 3 && m.CycleSpan > 0:
		// From the cycles' own end times: no ±1-cycle counting error.
		o.cps = float64(m.CycleEnds-1) / m.CycleSpan
	case m.Seconds > 0:
		o.cps = float64(m.Cycles) / m.Seconds
	}
	o.rtOS = o.rt * min(o.share, 1)
	o.work = m.WithIdleFrac * min(o.share, 1)
	if m.Goal > 0 {
		o.util = m.Live / m.Goal
	}
	return o
}

// stat is a median and a spread over repeats.
type stat struct{ med, lo, hi float64 }

func stats(xs []float64) stat {
	if len(xs) == 0 {
		return stat{math.NaN(), math.NaN(), math.NaN()}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{med, s[0], s[len(s)-1]}
}

func (s stat) pct() string {
	return fmt.Sprintf("%.1f%% (%.1f–%.1f)", s.med*100, s.lo*100, s.hi*100)
}

type cfgKey struct {
	wl
	gogc  int
	limit int64
}

// wl identifies a workload in the runs.
type wl struct {
	rate, live float64
	work       int
}

func (w wl) label() string {
	if w.rate == 0 {
		return fmt.Sprintf("%dk | %.0f", w.work/1000, w.live)
	}
	return fmt.Sprintf("%.0f | %.0f", w.rate, w.live)
}

// cleanShare is the CPU share (process CPU ÷ busy P time) from which a
// run counts as clean: P time is then (within 10%) CPU time.
const cleanShare = 0.9

// within is the validation criterion: a median within 20% of the prediction.
func within(pred, meas float64) (float64, bool) {
	e := pred/meas - 1
	return e, math.Abs(e) <= 0.2
}

func mark(ok bool) string {
	if ok {
		return ""
	}
	return " ✗"
}

type tally struct{ ok, n int }

func (t *tally) add(ok bool) {
	t.n++
	if ok {
		t.ok++
	}
}

func (t tally) String() string {
	if t.n == 0 {
		return "–"
	}
	return fmt.Sprintf("%d/%d (%.0f%%)", t.ok, t.n, 100*float64(t.ok)/float64(t.n))
}

func analyse(rf rawFile) string {
	var md strings.Builder
	pinned := "not pinned"
	if rf.Mode != "" && rf.ChildCPU >= 0 {
		pinned = fmt.Sprintf("pinned to CPU %d (taskset), harness on CPU %d", rf.ChildCPU, rf.HarnessCPU)
	}
	mode := "allocation paced on the wall clock (mostly idle program)"
	if rf.Mode == "cpu" {
		mode = "CPU-bound (gcchurn -rate 0 -work N: never idle, no idle-priority marking)"
	}
	fmt.Fprintf(&md, "Runs: %s %s, %s, GOMAXPROCS=%d, children %s, %s per run after %s warm-up (baselines 2×), %d repeats per configuration in alternating order; started %s, took %s.\n\n",
		rf.Go, rf.Platform, mode, rf.Procs, pinned, rf.Duration, rf.Warm, rf.Repeat, rf.Started, rf.Took)
	var loads, shares []float64
	var dirty []string
	for _, r := range rf.Runs {
		loads = append(loads, r.Load1)
		sh := cpuShare(r.M)
		shares = append(shares, sh)
		if sh < cleanShare {
			dirty = append(dirty, fmt.Sprintf("%s GOGC=%d limit %s pass %d: %.2f", wl{r.Rate, r.Live, r.Work}.label(), r.GOGC, limitText(r.Limit), r.Pass, sh))
		}
	}
	ls, ss := stats(loads), stats(shares)
	fmt.Fprintf(&md, "Machine: 1-minute load %.1f (%.1f–%.1f) at run starts; CPU share (process CPU ÷ P time the runtime counted busy) median %.2f (%.2f–%.2f); %d of %d runs clean (share ≥ %.1f).\n\n",
		ls.med, ls.lo, ls.hi, ss.med, ss.lo, ss.hi, len(rf.Runs)-len(dirty), len(rf.Runs), cleanShare)
	if len(dirty) > 0 {
		fmt.Fprintf(&md, "**%d runs not clean** (CPU share < %.1f: something else ran on the CPU, so P time overstates CPU time): %s.\n\n", len(dirty), cleanShare, strings.Join(dirty, "; "))
	}

	var wls []wl
	bases := map[wl][]runRec{}
	groups := map[cfgKey][]runRec{}
	var keys []cfgKey
	for _, r := range rf.Runs {
		w := wl{r.Rate, r.Live, r.Work}
		if _, ok := bases[w]; !ok {
			wls = append(wls, w)
			bases[w] = nil
		}
		if r.Baseline {
			bases[w] = append(bases[w], r)
			continue
		}
		k := cfgKey{w, r.GOGC, r.Limit}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}

	md.WriteString("Calibration (per workload, from the least contended of its baseline runs, GOGC=100 and no limit, gctrace only). *Workload* is gcchurn's -work (thousands) | -live MiB when CPU-bound, -rate MiB/s | -live MiB when paced; *CPU-bound* is what calibration concluded from the trace (no idle-priority marking).\n\n")
	md.WriteString("| workload | baseline CPU share | CPU-bound | alloc MiB/s | marked heap MiB | mark wall ms | background util | assist ms/cycle | GC CPU ms/cycle (idle out) | work ms/cycle (idle in) | GC CPU | κ | overshoot |\n|---|---:|:-:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	models := map[wl]gc.Model{}
	scale := map[wl]float64{}
	for _, w := range wls {
		bs := bases[w]
		if len(bs) == 0 {
			continue
		}
		best := slices.MaxFunc(bs, func(a, b runRec) int { return cmpF(-math.Abs(1-cpuShare(a.M)), -math.Abs(1-cpuShare(b.M))) })
		m, err := calibrate(best)
		if err != nil {
			fmt.Fprintf(&md, "| %s | calibration refused: %v |\n", w.label(), err)
			continue
		}
		models[w], scale[w] = m, min(cpuShare(best.M), 1)
		sc := m.LiveHeap + m.Roots
		fmt.Fprintf(&md, "| %s | %.2f | %s | %.0f | %.1f | %.0f | %.2f | %.1f | %.0f | %.0f | %.1f%% | %.2f | %.3f |\n",
			w.label(), cpuShare(best.M), yes(m.CPUBound), m.AllocRate/(1<<20), m.LiveHeap/(1<<20), m.MarkWall.Seconds()*1e3, m.BackgroundUtil, m.AssistPerCycle*1e3,
			(m.FixedCost+m.MarkPerByte*sc)*1e3, (m.FixedCost+m.WorkPerByte*sc)*1e3, m.GCCPUFraction*100, m.Runway, m.Overshoot)
	}

	md.WriteString("\nPredicted vs measured: medians over the repeats, (min–max) spread. *GC CPU* is the runtime's GCCPUFraction definition ((gc − idle mark) ÷ GOMAXPROCS×wall, P time) — what `gopulse gc` reports as `gc_cpu_fraction`. *pred* is the model as calibrated (closed loop when the baseline was CPU-bound: the GC's CPU comes out of the allocation rate); *open loop* is the same calibration holding the allocation rate fixed, for comparison. *GC work* is all GC CPU, idle marking included, × CPU share (equal to GC CPU when CPU-bound). *CPU share* ⚠ marks a configuration with a run below 0.9.\n\n")
	md.WriteString("| workload | GOGC | limit MiB | cycles/s pred | cycles/s meas | GC CPU pred | GC CPU meas | err | open loop | err | GC work pred | GC work meas | err | peak MiB pred | peak MiB meas | err | CPU share |\n")
	md.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var tCps, tGC, tOpen, tWork, tPeak, tBoth, cGC, cCps, cPeak, tCpuS tally
	var spreads []float64
	for _, k := range keys {
		m, ok := models[k.wl]
		if !ok {
			continue
		}
		sh := scale[k.wl]
		p := m.Predict(k.gogc, k.limit)
		om := m
		om.CPUBound = false
		open := om.Predict(k.gogc, k.limit).GCCPUFraction
		workPred := p.GCWorkFraction * sh
		var cps, rt, work, peak, share, cpuS []float64
		for _, r := range groups[k] {
			o := observe(r.M)
			cps, rt, work, peak, share = append(cps, o.cps), append(rt, o.rt), append(work, o.work), append(peak, o.peak), append(share, o.share)
			if o.share > 0 {
				cpuS = append(cpuS, o.cps/o.share)
			}
		}
		// Cycles per second of CPU received, both sides: a CPU-bound
		// program's cycles/s scale with the CPU the OS gives it.
		if len(cpuS) > 0 && scale[k.wl] > 0 {
			_, ok := within(p.CyclesPerSecond/scale[k.wl], stats(cpuS).med)
			tCpuS.add(ok)
		}
		sc, sr, sw, sp, ssh := stats(cps), stats(rt), stats(work), stats(peak), stats(share)
		if sr.med > 0 {
			spreads = append(spreads, (sr.hi-sr.lo)/sr.med)
		}
		_, okC := within(p.CyclesPerSecond, sc.med)
		e2, ok2 := within(p.GCCPUFraction, sr.med)
		eO, okO := within(open, sr.med)
		eW, okW := within(workPred, sw.med)
		eP, okP := within(p.PeakHeap, sp.med)
		tCps.add(okC)
		tGC.add(ok2)
		tOpen.add(okO)
		tWork.add(okW)
		tPeak.add(okP)
		tBoth.add(ok2 && okP)
		clean := ssh.lo >= cleanShare
		if clean {
			cGC.add(ok2)
			cCps.add(okC)
			cPeak.add(okP)
		}
		warn := ""
		if !clean {
			warn = " ⚠"
		}
		fmt.Fprintf(&md, "| %s | %d | %s | %.2f | %.2f (%.2f–%.2f)%s | %.1f%% | %s | %+.0f%%%s | %.1f%% | %+.0f%%%s | %.1f%% | %s | %+.0f%%%s | %.0f | %.0f (%.0f–%.0f) | %+.0f%%%s | %.2f (%.2f–%.2f)%s |\n",
			k.wl.label(), k.gogc, limitText(k.limit), p.CyclesPerSecond, sc.med, sc.lo, sc.hi, mark(okC), p.GCCPUFraction*100, sr.pct(), e2*100, mark(ok2), open*100, eO*100, mark(okO),
			workPred*100, sw.pct(), eW*100, mark(okW), p.PeakHeap/(1<<20), sp.med/(1<<20), sp.lo/(1<<20), sp.hi/(1<<20), eP*100, mark(okP), ssh.med, ssh.lo, ssh.hi, warn)
	}
	sp := stats(spreads)
	fmt.Fprintf(&md, "\nWithin 20%% (medians): **GC CPU %s**; cycles/s %s (per CPU-second received, both sides ÷ CPU share: %s); peak heap %s; GC CPU and peak both %s; GC work %s; GC CPU by the open-loop model %s. Configurations whose every run was clean (CPU share ≥ %.1f): GC CPU %s, cycles/s %s, peak %s. GC CPU spread over repeats, (max − min) ÷ median: median %.0f%%, worst %.0f%%.\n",
		tGC, tCps, tCpuS, tPeak, tBoth, tWork, tOpen, cleanShare, cGC, cCps, cPeak, sp.med*100, sp.hi*100)

	// The empirical relation: within each workload (live heap and rate
	// fixed, so GC frequency moves with GOGC and the limit only), and
	// over every run pooled. Repeats are separate points.
	for _, w := range wls {
		var rt, work []gc.FreqPoint
		for _, r := range rf.Runs {
			o := observe(r.M)
			if (wl{r.Rate, r.Live, r.Work}) != w || o.cps <= 0 || o.util <= 0 {
				continue
			}
			rt = append(rt, gc.FreqPoint{Freq: o.cps, CPU: o.rt, HeapUtil: o.util})
			work = append(work, gc.FreqPoint{Freq: o.cps, CPU: o.work, HeapUtil: o.util})
		}
		fmt.Fprintf(&md, "\nβ within workload %s: α·f^β + γ·heap_util on GC CPU %s; on GC work %s; pure power law (log-log slope) on GC CPU %s, on GC work %s.",
			w.label(), fitText(gc.FitPower(rt)), fitText(gc.FitPower(work)), slopeText(rt), slopeText(work))
	}
	md.WriteString("\n")
	// The empirical relation over every run (repeats are separate points).
	var ptsRT, ptsWork []gc.FreqPoint
	for _, r := range rf.Runs {
		o := observe(r.M)
		if o.cps <= 0 || o.util <= 0 {
			continue
		}
		ptsRT = append(ptsRT, gc.FreqPoint{Freq: o.cps, CPU: o.rt, HeapUtil: o.util})
		ptsWork = append(ptsWork, gc.FreqPoint{Freq: o.cps, CPU: o.work, HeapUtil: o.util})
	}
	for _, f := range []struct {
		name string
		pts  []gc.FreqPoint
	}{{"GC CPU (runtime definition)", ptsRT}, {"GC work (OS CPU, idle marking in)", ptsWork}} {
		fit := gc.FitPower(f.pts)
		if fit.OK {
			fmt.Fprintf(&md, "\nEmpirical fit, %s, over %d runs: CPU = %.4f·f^β + %.4f·heap_util, β = %.2f (95%% profile interval %.2f–%.2f), weighted R² %.2f.", f.name, fit.N, fit.Alpha, fit.Gamma, fit.Beta, fit.BetaLow, fit.BetaHigh, fit.R2)
		} else {
			fmt.Fprintf(&md, "\nEmpirical fit, %s, over %d runs: refused (%s); best β %.2f, interval %.2f–%.2f, R² %.2f.", f.name, fit.N, fit.Reason, fit.Beta, fit.BetaLow, fit.BetaHigh, fit.R2)
		}
	}
	md.WriteString("\n")
	return md.String()
}

func limitText(l int64) string {
	if l == noLimit {
		return "none"
	}
	return fmt.Sprintf("%.0f", float64(l)/(1<<20))
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func fitText(f gc.PowerFit) string {
	if f.OK {
		return fmt.Sprintf("β = %.2f (95%% interval %.2f–%.2f, n %d, R² %.2f)", f.Beta, f.BetaLow, f.BetaHigh, f.N, f.R2)
	}
	return fmt.Sprintf("refused (%s; best β %.2f, interval %.2f–%.2f, R² %.2f)", f.Reason, f.Beta, f.BetaLow, f.BetaHigh, f.R2)
}

// slopeText fits log CPU = log α + β·log f by least squares and gives β
// with its 95% confidence interval (t quantile for n − 2 degrees of
// freedom, normal above 30).
func slopeText(pts []gc.FreqPoint) string {
	var xs, ys []float64
	for _, p := range pts {
		if p.Freq > 0 && p.CPU > 0 {
			xs, ys = append(xs, math.Log(p.Freq)), append(ys, math.Log(p.CPU))
		}
	}
	n := float64(len(xs))
	if n < 5 {
		return fmt.Sprintf("refused (%d points)", len(xs))
	}
	var mx, my float64
	for i := range xs {
		mx, my = mx+xs[i], my+ys[i]
	}
	mx, my = mx/n, my/n
	var sxx, sxy, syy float64
	for i := range xs {
		sxx += (xs[i] - mx) * (xs[i] - mx)
		sxy += (xs[i] - mx) * (ys[i] - my)
		syy += (ys[i] - my) * (ys[i] - my)
	}
	if sxx == 0 {
		return "refused (one frequency)"
	}
	b := sxy / sxx
	rss := syy - b*sxy
	se := math.Sqrt(rss / (n - 2) / sxx)
	tq := 1.96
	if df := n - 2; df < 30 {
		tq = 2.04 + 0.3*(30-df)/df // close to Student's t₀.₉₇₅ for small samples
	}
	return fmt.Sprintf("β = %.2f ± %.2f (n %d, R² %.2f)", b, tq*se, len(xs), 1-rss/syy)
}
