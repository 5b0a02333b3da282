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
// counted as busy (1 = uncontended; 0.5 = threads ran half the time they
// held a P).
func cpuShare(m measured) float64 {
	busy := m.TotalCPU - m.IdleP
	if busy <= 0 || m.ProcessCPU <= 0 {
		return 0
	}
	return min(m.ProcessCPU/busy, 1)
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
	if m.Seconds > 0 {
		o.cps = float64(m.Cycles) / m.Seconds
	}
	o.rtOS = o.rt * o.share
	o.work = m.WithIdleFrac * o.share
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
	rate, live float64
	gogc       int
	limit      int64
}

// quietShare is the CPU share (process CPU ÷ busy P time) above which a
// run counts as uncontended.
const quietShare = 0.7

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
	fmt.Fprintf(&md, "Runs: %s %s, GOMAXPROCS=%d pinned for every child, %s per run after %s warm-up (baselines 2×), %d repeats per configuration in alternating order; started %s, took %s.\n\n",
		rf.Go, rf.Platform, rf.Procs, rf.Duration, rf.Warm, rf.Repeat, rf.Started, rf.Took)
	var loads, shares []float64
	for _, r := range rf.Runs {
		loads = append(loads, r.Load1)
		shares = append(shares, cpuShare(r.M))
	}
	ls, ss := stats(loads), stats(shares)
	fmt.Fprintf(&md, "Machine: 1-minute load %.1f (%.1f–%.1f) at run starts; CPU share (process CPU ÷ P time the runtime counted busy) median %.2f (%.2f–%.2f); %d of %d runs quiet (share ≥ %.1f).\n\n",
		ls.med, ls.lo, ls.hi, ss.med, ss.lo, ss.hi, countQuiet(rf.Runs), len(rf.Runs), quietShare)

	type wl struct{ rate, live float64 }
	var wls []wl
	bases := map[wl][]runRec{}
	groups := map[cfgKey][]runRec{}
	var keys []cfgKey
	for _, r := range rf.Runs {
		w := wl{r.Rate, r.Live}
		if _, ok := bases[w]; !ok {
			wls = append(wls, w)
			bases[w] = nil
		}
		if r.Baseline {
			bases[w] = append(bases[w], r)
			continue
		}
		k := cfgKey{r.Rate, r.Live, r.GOGC, r.Limit}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}

	md.WriteString("Calibration (per workload, from the least contended of its baseline runs, GOGC=100 and no limit, gctrace only):\n\n")
	md.WriteString("| alloc MiB/s | live MiB | baseline CPU share | marked heap MiB | mark wall ms | background util | assist ms/cycle | work ms/cycle (idle in) | GC CPU ms/cycle (idle out) | κ | overshoot |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	models := map[wl]gc.Model{}
	scale := map[wl]float64{}
	for _, w := range wls {
		bs := bases[w]
		if len(bs) == 0 {
			continue
		}
		best := slices.MaxFunc(bs, func(a, b runRec) int { return cmpF(cpuShare(a.M), cpuShare(b.M)) })
		m, err := calibrate(best)
		if err != nil {
			fmt.Fprintf(&md, "| %.0f | %.0f | calibration refused: %v |\n", w.rate, w.live, err)
			continue
		}
		models[w], scale[w] = m, cpuShare(best.M)
		sc := m.LiveHeap + m.Roots
		fmt.Fprintf(&md, "| %.0f | %.0f | %.2f | %.1f | %.0f | %.2f | %.1f | %.0f | %.0f | %.2f | %.3f |\n",
			w.rate, w.live, scale[w], m.LiveHeap/(1<<20), m.MarkWall.Seconds()*1e3, m.BackgroundUtil, m.AssistPerCycle*1e3,
			(m.FixedCost+m.WorkPerByte*sc)*1e3, (m.FixedCost+m.MarkPerByte*sc)*1e3, m.Runway, m.Overshoot)
	}

	md.WriteString("\nPredicted vs measured: medians over the repeats, (min–max) spread. *GC CPU* is the runtime's GCCPUFraction definition ((gc − idle mark) ÷ GOMAXPROCS×wall, P time) — what `gopulse gc` reports; *v1* is the previous model (one calibrated cost per cycle), *v2* the current one (STW + background share of the mark phase + assists when the runway is short). *GC work* is all GC CPU, idle marking included, scaled to the CPU the OS actually gave the process (× CPU share), and predicted from the baseline scaled the same way.\n\n")
	md.WriteString("| alloc | live | GOGC | limit MiB | cycles/s pred | cycles/s meas | GC CPU v1 | GC CPU v2 | GC CPU meas | err v1 | err v2 | GC work pred | GC work meas | err | peak MiB pred | peak MiB meas | err | CPU share |\n")
	md.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var tCps, tV1, tV2, tWork, tPeak, tBoth, qV2, qWork, tOS, tOS1, qV1, qCps, qPeak tally
	var spreads []float64
	for _, k := range keys {
		m, ok := models[wl{k.rate, k.live}]
		if !ok {
			continue
		}
		sh := scale[wl{k.rate, k.live}]
		p := m.Predict(k.gogc, k.limit)
		v1 := p.CyclesPerSecond * (m.FixedCost + m.MarkPerByte*(m.LiveHeap+m.Roots)) / float64(m.Procs)
		workPred := p.GCWorkFraction * sh
		var cps, rt, work, peak, share, qrt, qwork, rtos, qcps, qpeak []float64
		for _, r := range groups[k] {
			o := observe(r.M)
			cps, rt, work, peak, share = append(cps, o.cps), append(rt, o.rt), append(work, o.work), append(peak, o.peak), append(share, o.share)
			rtos = append(rtos, o.rtOS)
			if o.share >= quietShare {
				qrt, qwork = append(qrt, o.rt), append(qwork, o.work)
				qcps, qpeak = append(qcps, o.cps), append(qpeak, o.peak)
			}
		}
		sc, sr, sw, sp, ssh := stats(cps), stats(rt), stats(work), stats(peak), stats(share)
		if sr.med > 0 {
			spreads = append(spreads, (sr.hi-sr.lo)/sr.med)
		}
		_, okC := within(p.CyclesPerSecond, sc.med)
		e1, ok1 := within(v1, sr.med)
		e2, ok2 := within(p.GCCPUFraction, sr.med)
		eW, okW := within(workPred, sw.med)
		eP, okP := within(p.PeakHeap, sp.med)
		tCps.add(okC)
		tV1.add(ok1)
		tV2.add(ok2)
		tWork.add(okW)
		tPeak.add(okP)
		tBoth.add(ok2 && okP)
		_, okO := within(p.GCCPUFraction*sh, stats(rtos).med)
		tOS.add(okO)
		_, okO1 := within(v1*sh, stats(rtos).med)
		tOS1.add(okO1)
		if len(qrt) > 0 {
			_, q2 := within(p.GCCPUFraction, stats(qrt).med)
			_, qw := within(workPred, stats(qwork).med)
			_, q1 := within(v1, stats(qrt).med)
			_, qc := within(p.CyclesPerSecond, stats(qcps).med)
			_, qp := within(p.PeakHeap, stats(qpeak).med)
			qV2.add(q2)
			qV1.add(q1)
			qWork.add(qw)
			qCps.add(qc)
			qPeak.add(qp)
		}
		lim := "none"
		if k.limit != noLimit {
			lim = fmt.Sprintf("%.0f", float64(k.limit)/(1<<20))
		}
		fmt.Fprintf(&md, "| %.0f | %.0f | %d | %s | %.2f | %.2f (%.2f–%.2f)%s | %.1f%% | %.1f%% | %s | %+.0f%%%s | %+.0f%%%s | %.1f%% | %s | %+.0f%%%s | %.0f | %.0f (%.0f–%.0f) | %+.0f%%%s | %.2f (%.2f–%.2f) |\n",
			k.rate, k.live, k.gogc, lim, p.CyclesPerSecond, sc.med, sc.lo, sc.hi, mark(okC), v1*100, p.GCCPUFraction*100, sr.pct(), e1*100, mark(ok1), e2*100, mark(ok2),
			workPred*100, sw.pct(), eW*100, mark(okW), p.PeakHeap/(1<<20), sp.med/(1<<20), sp.lo/(1<<20), sp.hi/(1<<20), eP*100, mark(okP), ssh.med, ssh.lo, ssh.hi)
	}
	sp := stats(spreads)
	fmt.Fprintf(&md, "\nWithin 20%% (medians): cycles/s %s; GC CPU v1 %s, v2 %s; GC work %s; peak heap %s; GC CPU v2 and peak both %s; GC CPU in OS CPU (prediction × baseline CPU share vs measured × run CPU share) v1 %s, v2 %s. Quiet runs only (CPU share ≥ %.1f; configurations with at least one): cycles/s %s, GC CPU v1 %s, v2 %s, GC work %s, peak %s. GC CPU spread over repeats, (max − min) ÷ median: median %.0f%%, worst %.0f%%.\n",
		tCps, tV1, tV2, tWork, tPeak, tBoth, tOS1, tOS, quietShare, qCps, qV1, qV2, qWork, qPeak, sp.med*100, sp.hi*100)

	// The empirical relation: within each workload (live heap and rate
	// fixed, so GC frequency moves with GOGC and the limit only), and
	// over every run pooled. Repeats are separate points.
	for _, w := range wls {
		var rt, work []gc.FreqPoint
		for _, r := range rf.Runs {
			o := observe(r.M)
			if r.Rate != w.rate || r.Live != w.live || o.cps <= 0 || o.util <= 0 {
				continue
			}
			rt = append(rt, gc.FreqPoint{Freq: o.cps, CPU: o.rt, HeapUtil: o.util})
			work = append(work, gc.FreqPoint{Freq: o.cps, CPU: o.work, HeapUtil: o.util})
		}
		fmt.Fprintf(&md, "\nβ within workload %.0f MiB/s × %.0f MiB: α·f^β + γ·heap_util on GC CPU %s; on GC work %s; pure power law (log-log slope) on GC CPU %s, on GC work %s.",
			w.rate, w.live, fitText(gc.FitPower(rt)), fitText(gc.FitPower(work)), slopeText(rt), slopeText(work))
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

func countQuiet(rs []runRec) int {
	n := 0
	for _, r := range rs {
		if cpuShare(r.M) >= quietShare {
			n++
		}
	}
	return n
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
