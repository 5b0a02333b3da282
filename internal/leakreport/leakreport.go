// Package leakreport renders a leak investigation for people (text for a
// terminal, one self-contained HTML file) and for programs (JSON with stable
// field names).
package leakreport

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"

	"github.com/gopulse/gopulse/analyze/goroutine"
	"github.com/gopulse/gopulse/internal/leakcheck"
)

// Report is the JSON document of `gopulse leaks --format json`. The fields
// snapshots, goroutines, groups (id, verdict, state, count, counts, wait,
// frames, created_by, evidence) and errors are stable; others may be added.
type Report struct {
	Target                string   `json:"target"`
	Mode                  string   `json:"mode"`
	Snapshots             int      `json:"snapshots"`
	Goroutines            int      `json:"goroutines"`
	GoroutinesPerSnapshot []int    `json:"goroutines_per_snapshot"`
	WindowSeconds         float64  `json:"window_seconds"`
	Leaks                 int      `json:"leaks"`
	Suspects              int      `json:"suspects"`
	Groups                []Group  `json:"groups"`
	Notes                 []string `json:"notes"`
	Errors                []string `json:"errors"`
}

// Group is one goroutine group in the JSON document.
type Group struct {
	ID              string            `json:"id"`
	Verdict         string            `json:"verdict"`
	State           string            `json:"state"`
	Count           int               `json:"count"`
	Counts          []int             `json:"counts"`
	Wait            string            `json:"wait"`
	Frames          []goroutine.Frame `json:"frames"`
	CreatedBy       goroutine.Frame   `json:"created_by"`
	Evidence        []string          `json:"evidence"`
	Blocking        goroutine.Frame   `json:"blocking"`
	GrowthPerMinute float64           `json:"growth_per_minute"`
	R2              float64           `json:"r2"`
	Stuck           int               `json:"stuck"`
	IDs             []int64           `json:"ids,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
}

// maxIDs bounds the goroutine IDs listed per group: enough to find them in
// a dump, not a megabyte of numbers.
const maxIDs = 20

// Build turns an investigation into the JSON document.
func Build(res *leakcheck.Result) *Report {
	r := res.Report
	out := &Report{
		Target:                res.Target,
		Mode:                  res.Mode,
		Snapshots:             r.Snapshots,
		GoroutinesPerSnapshot: r.Goroutines,
		WindowSeconds:         r.Window.Seconds(),
		Groups:                []Group{},
		Notes:                 append([]string{}, r.Notes...),
		Errors:                append([]string{}, res.Errors...),
	}
	if n := len(r.Goroutines); n > 0 {
		out.Goroutines = r.Goroutines[n-1]
	}
	for _, g := range r.Groups {
		jg := Group{
			ID:              g.Key,
			Verdict:         string(g.Verdict),
			State:           g.State,
			Count:           g.Count,
			Counts:          g.Counts,
			Wait:            waitRange(g.Group),
			Frames:          g.Frames,
			CreatedBy:       g.CreatedBy,
			Evidence:        g.Evidence,
			Blocking:        g.Blocking,
			GrowthPerMinute: g.GrowthPerMinute,
			R2:              g.R2,
			Stuck:           g.Stuck,
			Labels:          g.Labels,
		}
		if jg.Frames == nil {
			jg.Frames = []goroutine.Frame{}
		}
		if len(g.IDs) > maxIDs {
			jg.IDs = g.IDs[:maxIDs]
		} else {
			jg.IDs = g.IDs
		}
		switch g.Verdict {
		case goroutine.VerdictLeak:
			out.Leaks++
		case goroutine.VerdictSuspect:
			out.Suspects++
		}
		out.Groups = append(out.Groups, jg)
	}
	return out
}

func waitRange(g *goroutine.Group) string {
	if g.WaitKnown == 0 {
		return ""
	}
	lo, hi := int(g.WaitMin.Minutes()), int(g.WaitMax.Minutes())
	if lo == hi {
		return fmt.Sprintf("%d minutes", hi)
	}
	return fmt.Sprintf("%d-%d minutes", lo, hi)
}

// JSON writes the document, indented.
func JSON(w io.Writer, res *leakcheck.Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(Build(res))
}

// maxOKShown bounds the healthy groups listed in text: they are context,
// not findings.
const maxOKShown = 12

// Text writes the terminal report: leaks first with their evidence and the
// interesting part of the stack, then suspects, then a line per healthy group.
func Text(w io.Writer, res *leakcheck.Result) error {
	rep := Build(res)
	var b bytes.Buffer
	fmt.Fprintf(&b, "gopulse leaks %s\n", rep.Target)
	fmt.Fprintf(&b, "%d snapshot(s)", rep.Snapshots)
	if rep.WindowSeconds > 0 {
		fmt.Fprintf(&b, " over %.0fs", rep.WindowSeconds)
	}
	fmt.Fprintf(&b, " as %s\ngoroutines: %s in %d groups\n", rep.Mode, joinInts(rep.GoroutinesPerSnapshot), len(rep.Groups))
	fmt.Fprintf(&b, "verdict: %d leak(s), %d suspect(s)\n", rep.Leaks, rep.Suspects)
	ok := 0
	for _, g := range rep.Groups {
		if g.Verdict == string(goroutine.VerdictOK) {
			if ok == 0 {
				b.WriteString("\nhealthy groups:\n")
			}
			ok++
			if ok <= maxOKShown {
				fmt.Fprintf(&b, "  ok    %5d  %-16s %s (%s:%d)\n", g.Count, trimState(g.State), g.Blocking.Func, goroutine.ShortPath(g.Blocking.File), g.Blocking.Line)
			}
			continue
		}
		fmt.Fprintf(&b, "\n%s  %d goroutines  [%s]  %s\n", strings.ToUpper(g.Verdict), g.Count, g.State, g.Blocking.Func)
		for _, e := range g.Evidence {
			fmt.Fprintf(&b, "  - %s\n", e)
		}
		b.WriteString("  stack:\n")
		for _, f := range interesting(g.Frames) {
			fmt.Fprintf(&b, "    %-60s %s:%d\n", f.Func, goroutine.ShortPath(f.File), f.Line)
		}
		if g.CreatedBy.Func != "" {
			fmt.Fprintf(&b, "  created by %s %s:%d\n", g.CreatedBy.Func, goroutine.ShortPath(g.CreatedBy.File), g.CreatedBy.Line)
		}
	}
	if ok > maxOKShown {
		fmt.Fprintf(&b, "  … and %d more healthy groups (--format json lists all)\n", ok-maxOKShown)
	}
	if len(rep.Notes) > 0 {
		b.WriteString("\nnotes:\n")
		for _, n := range rep.Notes {
			fmt.Fprintf(&b, "  %s\n", n)
		}
	}
	if len(rep.Errors) > 0 {
		b.WriteString("\nincomplete evidence:\n")
		for _, e := range rep.Errors {
			fmt.Fprintf(&b, "  %s\n", e)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

func trimState(s string) string {
	if len(s) > 16 {
		return s[:15] + "…"
	}
	return s
}

// maxStackShown bounds the frames printed per group in text and HTML.
const maxStackShown = 12

// interesting drops the scheduler frames on top and runtime.goexit at the
// bottom, and keeps at most maxStackShown frames.
func interesting(frames []goroutine.Frame) []goroutine.Frame {
	i := 0
	for i < len(frames)-1 && strings.HasPrefix(frames[i].Func, "runtime.") {
		i++
	}
	out := frames[i:]
	if n := len(out); n > 0 && out[n-1].Func == "runtime.goexit" {
		out = out[:n-1]
	}
	if len(out) > maxStackShown {
		out = out[:maxStackShown]
	}
	return out
}

func joinInts(c []int) string {
	parts := make([]string, len(c))
	for i, v := range c {
		parts[i] = fmt.Sprint(v)
	}
	return strings.Join(parts, " → ")
}

//go:embed report.html.tmpl
var htmlSource string

var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"short":       goroutine.ShortPath,
	"interesting": interesting,
	"joinInts":    joinInts,
	"upper":       strings.ToUpper,
	"sparkline":   sparkline,
}).Parse(htmlSource))

// HTML writes one self-contained HTML page: no script or style from
// elsewhere, so it can be attached to a ticket.
func HTML(w io.Writer, res *leakcheck.Result) error {
	return htmlTemplate.Execute(w, Build(res))
}

// sparkline draws counts as an inline SVG polyline.
func sparkline(c []int) template.HTML {
	if len(c) < 2 {
		return ""
	}
	const w, h = 120.0, 24.0
	hi := 1
	for _, v := range c {
		hi = max(hi, v)
	}
	var pts []string
	for i, v := range c {
		x := w * float64(i) / float64(len(c)-1)
		y := h - 2 - (h-4)*float64(v)/float64(hi)
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
	}
	return template.HTML(fmt.Sprintf(`<svg class="spark" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f"><polyline fill="none" stroke="currentColor" stroke-width="1.5" points="%s"/></svg>`, w, h, w, h, strings.Join(pts, " ")))
}
