package loadramp

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes the result as indented JSON.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the human-readable report: a table of steps, then the
// verdict.
func (r *Result) WriteText(w io.Writer) error {
	bw := &errWriter{w: w}
	fmt.Fprintf(bw, "ramp %s  SLO %s  (%d steps, %.1fs)\n\n", r.Target, r.SLO, len(r.Steps), r.DurationSeconds)
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "offered/s\tachieved/s\tp50\tp90\tp99\tp99.9\tp99 uncorr.\terrors\tconns\tGC CPU\tassists\tgoroutines\t  verdict")
	for _, s := range r.Steps {
		gc, as, gr := "-", "-", "-"
		if s.Runtime != nil {
			if s.Runtime.GCCPUFraction >= 0 {
				gc = fmt.Sprintf("%.0f%%", s.Runtime.GCCPUFraction*100)
			}
			// The part of the GC's CPU that requests paid in mark assists:
			// GC cost that lands inside request latency, not beside it.
			if s.Runtime.GCAssistShare >= 0 {
				as = fmt.Sprintf("%.0f%%", s.Runtime.GCAssistShare*100)
			}
			if s.Runtime.Goroutines >= 0 {
				gr = fmt.Sprint(s.Runtime.Goroutines)
			}
		}
		v := "ok"
		switch {
		case s.GeneratorLimited:
			v = "generator-limited: " + s.GeneratorLimitedCause
			if s.Superseded {
				v = "generator-limited, repeated: " + s.GeneratorLimitedCause
			}
		case s.Superseded && !s.Pass:
			v = "fail, repeated: " + strings.Join(s.Failures, "; ")
		case !s.Pass:
			v = "FAIL " + strings.Join(s.Failures, "; ")
		}
		fmt.Fprintf(tw, "%.0f\t%.0f\t%s\t%s\t%s\t%s\t%s\t%.2f%%\t%d\t%s\t%s\t%s\t  %s\n", s.OfferedRPS, s.AchievedRPS,
			fmtSec(s.P50), fmtSec(s.P90), fmtSec(s.P99), fmtSec(s.P999), fmtSec(s.P99Uncorrected), s.ErrorRate*100, s.Conns, gc, as, gr, v)
	}
	tw.Flush()
	fmt.Fprintln(bw)
	bound := ""
	if r.LowerBound {
		bound = " (lower bound: no step failed)"
	}
	fmt.Fprintf(bw, "max sustainable: %.0f req/s%s\n", r.MaxSustainableRPS, bound)
	fmt.Fprintf(bw, "stopped: %s\n", r.StopReason)
	if r.Knee != nil {
		fmt.Fprintf(bw, "knee: %.0f req/s (p99 %s)\n", r.Knee.OfferedRPS, fmtSec(r.Knee.P99Seconds))
	}
	if u := r.USL; u != nil {
		fmt.Fprintf(bw, "USL: σ=%.4f κ=%.6f λ=%.0f/s peak %.0f req/s, R²=%.3f over %d points\n", u.Sigma, u.Kappa, u.Lambda, u.PeakRPS, u.R2, u.Points)
	}
	fmt.Fprintf(bw, "saturated first: %s\n", r.Saturation)
	for _, e := range r.Evidence {
		fmt.Fprintf(bw, "  - %s\n", e)
	}
	fmt.Fprintf(bw, "runtime read from: %s\n", r.RuntimeRead)
	for _, c := range r.Captures {
		fmt.Fprintf(bw, "captured at %.0f req/s: %s\n", r.FirstFailRPS, c)
	}
	return bw.err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

//go:embed report.html
var reportHTML string

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"sec":    fmtSec,
	"bytes":  fmtBytes,
	"heap":   heapBytes,
	"pct":    func(f float64) string { return fmt.Sprintf("%.2f%%", f*100) },
	"pct100": func(f float64) float64 { return f * 100 },
	"f0":     func(f float64) string { return fmt.Sprintf("%.0f", f) },
}).Parse(reportHTML))

// heapBytes is the heap a step ended with: allocated from /debug/vars,
// else live from the agent; 0 when neither was read.
func heapBytes(rt *RuntimeStep) uint64 {
	if rt.HeapAlloc > 0 {
		return rt.HeapAlloc
	}
	return rt.HeapLive
}

// WriteHTML writes a self-contained HTML report with inline SVG plots:
// offered vs achieved rate, latency percentiles vs rate (both ways), and
// GC CPU and heap vs rate.
func (r *Result) WriteHTML(w io.Writer) error {
	steps := slices.Clone(r.Steps)
	slices.SortStableFunc(steps, func(a, b StepReport) int {
		switch {
		case a.OfferedRPS < b.OfferedRPS:
			return -1
		case a.OfferedRPS > b.OfferedRPS:
			return 1
		}
		return 0
	})
	var off, ach, p50, p99, p999, p99u, gc, cpu, machine, heap, goal, sched []float64
	nan := math.NaN()
	for _, s := range steps {
		if s.GeneratorLimited || s.Superseded { // the generator's numbers, or repeated
			continue
		}
		off = append(off, s.OfferedRPS)
		ach = append(ach, s.AchievedRPS)
		p50 = append(p50, s.P50*1000)
		p99 = append(p99, s.P99*1000)
		p999 = append(p999, s.P999*1000)
		p99u = append(p99u, s.P99Uncorrected*1000)
		g, c, m, h, hg, sl := nan, nan, nan, nan, nan, nan
		if rt := s.Runtime; rt != nil {
			if rt.GCCPUFraction >= 0 {
				g = rt.GCCPUFraction * 100
			} else if rt.GCCPUSinceStart >= 0 {
				g = rt.GCCPUSinceStart * 100
			}
			if rt.ProcessCPUCores >= 0 && rt.Procs > 0 {
				c = rt.ProcessCPUCores / float64(rt.Procs) * 100
			}
			if rt.MachineCPUBusy >= 0 {
				m = rt.MachineCPUBusy * 100
			}
			if hb := heapBytes(rt); hb > 0 {
				h = float64(hb) / (1 << 20)
			}
			if rt.HeapGoal > 0 {
				hg = float64(rt.HeapGoal) / (1 << 20)
			}
			if rt.SchedLatencyP99 >= 0 {
				sl = rt.SchedLatencyP99 * 1000
			}
		}
		gc, cpu, machine = append(gc, g), append(cpu, c), append(machine, m)
		heap, goal, sched = append(heap, h), append(goal, hg), append(sched, sl)
	}
	var marks []mark
	if r.MaxSustainableRPS > 0 {
		marks = append(marks, mark{r.MaxSustainableRPS, "max sustainable"})
	}
	if r.Knee != nil {
		if len(marks) > 0 && math.Abs(marks[0].x-r.Knee.OfferedRPS) < 0.03*marks[0].x {
			marks[0].label += " = knee"
		} else {
			marks = append(marks, mark{r.Knee.OfferedRPS, "knee"})
		}
	}
	data := struct {
		*Result
		Sorted                   []StepReport
		Throughput, Latency, CPU template.HTML
		Heap, Sched              template.HTML
	}{
		Result: r, Sorted: steps,
		Throughput: svgPlot("req/s achieved vs offered", off, []series{{"offered", off, "#999"}, {"achieved", ach, "#1f77b4"}}, marks, false),
		Latency: svgPlotH("latency (ms) vs offered req/s, log scale", off, []series{
			{"p50", p50, "#2ca02c"}, {"p99", p99, "#d62728"}, {"p99.9", p999, "#9467bd"}, {"p99 uncorrected", p99u, "#ff7f0e"},
		}, marks, sloLines(r.SLO), true),
		CPU: svgPlot("target CPU (%) vs offered req/s", off, []series{
			{"process, % of its cores", cpu, "#1f77b4"}, {"GC, % of its CPU", gc, "#d62728"}, {"machine busy %", machine, "#999"},
		}, marks, false),
		Heap:  svgPlot("target heap (MiB) vs offered req/s", off, []series{{"heap", heap, "#1f77b4"}, {"heap goal", goal, "#999"}}, marks, false),
		Sched: svgPlot("target scheduling latency p99 (ms, agent's trailing window) vs offered req/s", off, []series{{"runnable wait p99", sched, "#9467bd"}}, marks, false),
	}
	// A plot of signals the target did not serve would be empty axes.
	if !anyNum(cpu, gc, machine) {
		data.CPU = ""
	}
	if !anyNum(heap, goal) {
		data.Heap = ""
	}
	if !anyNum(sched) {
		data.Sched = ""
	}
	return reportTmpl.Execute(w, data)
}

func anyNum(ys ...[]float64) bool {
	for _, y := range ys {
		for _, v := range y {
			if !math.IsNaN(v) {
				return true
			}
		}
	}
	return false
}

type series struct {
	name  string
	y     []float64
	color string
}

type mark struct {
	x     float64
	label string
}

// sloLines are the latency objectives in ms, drawn across the latency plot.
func sloLines(slo string) []mark {
	s, err := ParseSLO(slo)
	if err != nil {
		return nil
	}
	var out []mark
	for _, q := range sortedKeys(s.Latency) {
		out = append(out, mark{float64(s.Latency[q]) / 1e6, fmt.Sprintf("SLO p%g", q*100)})
	}
	return out
}

// svgPlot draws a small line chart. NaN values are skipped.
func svgPlot(title string, x []float64, ss []series, marks []mark, logY bool) template.HTML {
	return svgPlotH(title, x, ss, marks, nil, logY)
}

// svgPlotH is svgPlot with horizontal reference lines at the y values of
// hlines.
func svgPlotH(title string, x []float64, ss []series, marks, hlines []mark, logY bool) template.HTML {
	const w, h, l, rgt, top, bot = 640.0, 300.0, 60.0, 150.0, 30.0, 40.0
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="11">`, w, h, w, h)
	fmt.Fprintf(&b, `<text x="%.0f" y="16" font-size="13">%s</text>`, l, template.HTMLEscapeString(title))
	if len(x) == 0 {
		b.WriteString(`<text x="60" y="150">no steps</text></svg>`)
		return template.HTML(b.String())
	}
	xmin := 0.0
	xstep := niceStep(slices.Max(x) / 4)
	xmax := math.Ceil(slices.Max(x)*1.02/xstep) * xstep
	ymin, ymax := math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for _, v := range s.y {
			if !math.IsNaN(v) && (!logY || v > 0) {
				ymin, ymax = math.Min(ymin, v), math.Max(ymax, v)
			}
		}
	}
	if math.IsInf(ymin, 0) {
		ymin, ymax = 0, 1
	}
	for _, hl := range hlines {
		ymin, ymax = math.Min(ymin, hl.x), math.Max(ymax, hl.x)
	}
	ty := func(v float64) float64 { return v }
	if logY {
		ymin, ymax = math.Pow(10, math.Floor(math.Log10(ymin))), math.Pow(10, math.Ceil(math.Log10(ymax)))
		ty = math.Log10
	} else {
		ymin = 0
		if ymax <= 0 {
			ymax = 1
		}
		ystep := niceStep(ymax / 4)
		ymax = math.Ceil(ymax*(1-1e-9)/ystep) * ystep
	}
	px := func(v float64) float64 { return l + (v-xmin)/(xmax-xmin)*(w-l-rgt) }
	py := func(v float64) float64 { return h - bot - (ty(v)-ty(ymin))/(ty(ymax)-ty(ymin))*(h-top-bot) }
	fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#ccc"/>`, l, top, w-l-rgt, h-top-bot)
	for xv := xmin; xv <= xmax*(1+1e-9); xv += xstep { // ticks at round values
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`, px(xv), h-bot+14, fmtTick(xv))
	}
	var yticks []float64
	if logY {
		for v := ymin; v <= ymax*(1+1e-9); v *= 10 {
			yticks = append(yticks, v)
		}
	} else {
		ystep := niceStep(ymax / 4)
		for v := 0.0; v <= ymax*(1+1e-9); v += ystep {
			yticks = append(yticks, v)
		}
	}
	for _, yv := range yticks {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`, l-4, py(yv)+4, fmtTick(yv))
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#eee"/>`, l, w-rgt, py(yv), py(yv))
	}
	for i, m := range marks {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.0f" y2="%.0f" stroke="#888" stroke-dasharray="4 3"/><text x="%.1f" y="%.0f" fill="#555">%s</text>`,
			px(m.x), px(m.x), top, h-bot, px(m.x)+3, top+12+float64(i)*13, template.HTMLEscapeString(m.label))
	}
	for _, hl := range hlines {
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#d62728" stroke-dasharray="6 3" opacity="0.6"/><text x="%.0f" y="%.1f" fill="#d62728">%s</text>`,
			l, w-rgt, py(hl.x), py(hl.x), l+4, py(hl.x)-3, template.HTMLEscapeString(hl.label))
	}
	legend := 0
	for _, s := range ss {
		var pts []string
		for j, v := range s.y {
			if j < len(x) && !math.IsNaN(v) && (!logY || v > 0) {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(x[j]), py(v)))
			}
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, s.color, strings.Join(pts, " "))
		for _, p := range pts {
			xy := strings.Split(p, ",")
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="2.5" fill="%s"/>`, xy[0], xy[1], s.color)
		}
		if len(pts) == 0 { // a signal the target did not serve: no legend entry either
			continue
		}
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="10" height="10" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`,
			w-rgt+10, top+float64(legend)*16, s.color, w-rgt+24, top+float64(legend)*16+9, template.HTMLEscapeString(s.name))
		legend++
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// niceStep rounds a tick spacing up to 1, 2, 2.5 or 5 × 10^k.
func niceStep(raw float64) float64 {
	if !(raw > 0) || math.IsInf(raw, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// fmtTick prints an axis value without exponents.
func fmtTick(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100 || a == 0:
		return fmt.Sprintf("%.0f", v)
	case a >= 1:
		return fmt.Sprintf("%.3g", v)
	}
	return fmt.Sprintf("%.2g", v)
}
