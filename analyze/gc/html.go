package gc

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
)

//go:embed report.html.tmpl
var reportHTML string

var htmlTmpl = template.Must(template.New("gc").Funcs(template.FuncMap{
	"bytes": func(v any) string {
		switch x := v.(type) {
		case uint64:
			return fmtBytes(float64(x))
		case int64:
			if x == NoLimit {
				return "none"
			}
			return fmtBytes(float64(x))
		case float64:
			return fmtBytes(x)
		case *float64:
			if x == nil {
				return ""
			}
			return fmtBytes(*x)
		case *int64:
			if x == nil {
				return ""
			}
			if *x == NoLimit {
				return "none"
			}
			return fmtBytes(float64(*x))
		}
		return fmt.Sprint(v)
	},
	"pct": func(v any) string {
		switch x := v.(type) {
		case float64:
			return fmt.Sprintf("%.1f%%", x*100)
		case *float64:
			if x == nil {
				return ""
			}
			return fmt.Sprintf("%.1f%%", *x*100)
		}
		return ""
	},
	"sec":  fmtSec,
	"f2":   func(v float64) string { return fmt.Sprintf("%.2f", v) },
	"gogc": func(g int) string { return gogcStr(g) },
	"ptr": func(p *int) string {
		if p == nil {
			return ""
		}
		return gogcStr(*p)
	},
}).Parse(reportHTML))

// WriteHTML writes r as one self-contained HTML page (inline CSS and SVG
// plots, no scripts, nothing fetched).
func WriteHTML(w io.Writer, title string, r Report) error {
	data := struct {
		Title string
		R     Report
		Plots []template.HTML
	}{Title: title, R: r}
	if len(r.Points) >= 2 {
		var pause, live, goal, peak, cpu []xy
		for _, p := range r.Points {
			pause = append(pause, xy{p.T, p.PauseSeconds * 1e3})
			if p.HeapGoalBytes > 0 {
				live = append(live, xy{p.T, float64(p.HeapLiveBytes) / (1 << 20)})
				goal = append(goal, xy{p.T, float64(p.HeapGoalBytes) / (1 << 20)})
				peak = append(peak, xy{p.T, float64(p.HeapPeakBytes) / (1 << 20)})
			}
			if p.GCCPUFraction > 0 {
				cpu = append(cpu, xy{p.T, p.GCCPUFraction * 100})
			}
		}
		data.Plots = append(data.Plots, svgPlot("GC pause per cycle (ms)", []series{{"pause", "#c0392b", pause, true}}))
		if len(goal) >= 2 {
			data.Plots = append(data.Plots, svgPlot("Heap (MiB): live after GC, goal, peak", []series{
				{"live", "#2c7be5", live, false}, {"goal", "#27ae60", goal, false}, {"peak", "#e67e22", peak, false}}))
		}
		if len(cpu) >= 2 {
			data.Plots = append(data.Plots, svgPlot("GC CPU per cycle interval (% of GOMAXPROCS)", []series{{"GC CPU", "#8e44ad", cpu, false}}))
		}
	}
	return htmlTmpl.Execute(w, data)
}

type xy struct{ x, y float64 }

type series struct {
	name   string
	color  string
	pts    []xy
	points bool // draw dots, not a line
}

// svgPlot draws series on shared axes starting at zero.
func svgPlot(title string, ss []series) template.HTML {
	const W, H, L, B, T, R = 720.0, 220.0, 56.0, 28.0, 24.0, 12.0
	maxX, maxY := 0.0, 0.0
	for _, s := range ss {
		for _, p := range s.pts {
			maxX, maxY = math.Max(maxX, p.x), math.Max(maxY, p.y)
		}
	}
	if maxX == 0 {
		maxX = 1
	}
	if maxY == 0 {
		maxY = 1
	}
	maxY *= 1.1
	px := func(x float64) float64 { return L + x/maxX*(W-L-R) }
	py := func(y float64) float64 { return H - B - y/maxY*(H-B-T) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" role="img"><title>%s</title>`, W, H, W, H, template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<text x="%.0f" y="16" font-size="13" font-weight="bold">%s</text>`, L, template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#888"/><line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#888"/>`, L, H-B, W-R, H-B, L, T, L, H-B)
	for i := 0; i <= 4; i++ {
		y := maxY * float64(i) / 4
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" font-size="10" text-anchor="end">%.3g</text>`, L-4, py(y)+3, y)
		x := maxX * float64(i) / 4
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" font-size="10" text-anchor="middle">%.3gs</text>`, px(x), H-B+14, x)
	}
	for k, s := range ss {
		fmt.Fprintf(&b, `<text x="%.0f" y="16" font-size="11" fill="%s">■ %s</text>`, W-R-80*float64(len(ss)-k), s.color, template.HTMLEscapeString(s.name))
		if s.points {
			for _, p := range s.pts {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2" fill="%s"/>`, px(p.x), py(p.y), s.color)
			}
			continue
		}
		b.WriteString(`<polyline fill="none" stroke-width="1.5" stroke="` + s.color + `" points="`)
		for _, p := range s.pts {
			fmt.Fprintf(&b, "%.1f,%.1f ", px(p.x), py(p.y))
		}
		b.WriteString(`"/>`)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
