// Package leakscore measures gopulse's goroutine-leak verdicts against the
// corpus of internal/testprog/leakcorpus: it runs each pattern as a child
// process, scrapes its goroutine dumps like an agentless collector would,
// runs goroutine.Analyze, and scores the verdicts group by group against the
// ground truth the corpus declares.
//
// Scoring rules, per group of the report:
//   - verdict leak and the stack holds one of the pattern's LeakFuncs: true
//     positive;
//   - verdict leak otherwise (also on healthy patterns): false positive;
//   - the stack holds a LeakFunc and the verdict is not leak: false negative.
//     Suspect counts as a miss for recall and as not-a-leak for precision;
//     suspects are also counted on their own;
//   - a LeakFunc that no group holds is a false negative too (the leak did
//     not show, or the parser lost it).
//
// A group holding a LeakFunc that is only a transient of the leaking code path
// is not ground truth and is not scored unless it was called a leak: a group
// in a state nothing is stuck in (running, runnable, syscall, sleep — say a
// worker sleeping before it blocks; requests every 200 ms and snapshots every
// 2 s are phase-locked, so such a group can show in most snapshots), or one
// seen in fewer than half of the snapshots, or never more than one goroutine.
package leakscore

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gopulse/gopulse/analyze/goroutine"
	"github.com/gopulse/gopulse/internal/testprog/leakcorpus/patterns"
)

// Score is the result of a run over the corpus.
type Score struct {
	// Config is the configuration the run used, defaults filled in.
	Config Config
	// Rows has one entry per pattern, in corpus order.
	Rows []*Row
	// TP, FP and FN count groups over all patterns; Suspects counts groups
	// with verdict suspect (on any pattern).
	TP, FP, FN, Suspects int
	// Precision is TP/(TP+FP), 1 when nothing was flagged; Recall is
	// TP/(TP+FN), 1 when nothing was expected.
	Precision, Recall float64
	// Elapsed is the wall time of the run, build included.
	Elapsed time.Duration
}

// Row is the score of one pattern.
type Row struct {
	Pattern  string
	Leaks    bool
	Category string
	// Expected is the number of ground-truth leaking groups (TP + FN).
	Expected int
	TP       int
	FP       int
	FN       int
	// Leak, Suspect and OK count the report's groups by verdict.
	Leak, Suspect, OK int
	// Transient counts groups holding a LeakFunc that were not scored.
	Transient int
	// Goroutines is the goroutine count of each snapshot.
	Goroutines []int
	// Truth is, for each LeakFunc, the number of goroutines holding it in
	// each snapshot, whatever the verdicts: it checks the corpus itself (a
	// leaking pattern whose ground truth does not grow is broken).
	Truth []Truth
	// Misses are the false negatives (suspects among them), FalseAlarms the
	// false positives, and Suspects the groups with verdict suspect that are
	// not ground truth, each with its evidence.
	Misses      []Finding
	FalseAlarms []Finding
	Suspects    []Finding
	// Err is set when the pattern could not be run or scraped; its expected
	// groups then count as false negatives.
	Err string
}

// Truth follows one ground-truth function across the snapshots.
type Truth struct {
	Func   string
	Counts []int
}

// Finding is one group worth a reader's attention.
type Finding struct {
	// Marker is the ground-truth function the group holds, "" for none.
	Marker string
	// Verdict is the analyzer's verdict, "" when no group held Marker.
	Verdict goroutine.Verdict
	// State is the group's wait reason.
	State string
	// Where is the blocking frame (or the top frame) as func file:line.
	Where string
	// Counts is the group's size in each snapshot.
	Counts []int
	// Evidence is the analyzer's justification.
	Evidence []string
}

// stackHas reports the first of funcs that appears in the group's frames.
func stackHas(g *goroutine.GroupReport, funcs []string) string {
	if g.Group == nil {
		return ""
	}
	for _, f := range g.Frames {
		for _, m := range funcs {
			if f.Func == m {
				return m
			}
		}
	}
	return ""
}

// passingStates are states a goroutine is never stuck in for good: a group of
// the leaking code path in one of them is on its way to the blocking point.
var passingStates = map[string]bool{"running": true, "runnable": true, "syscall": true, "sleep": true, "preempted": true}

// transientGroup reports whether a group holding a ground-truth function is a
// passing state of the leaking code path rather than goroutines parked there.
func transientGroup(g *goroutine.GroupReport) bool {
	return (g.Group != nil && passingStates[g.State]) || transient(g.Counts)
}

// transient reports whether counts look like goroutines passing by: seen in
// fewer than half of the snapshots, or never more than one at a time.
func transient(counts []int) bool {
	present, maxc := 0, 0
	for _, c := range counts {
		if c > 0 {
			present++
		}
		maxc = max(maxc, c)
	}
	return maxc <= 1 || 2*present < len(counts)
}

func finding(marker string, g *goroutine.GroupReport) Finding {
	f := Finding{Marker: marker, Verdict: g.Verdict, Counts: g.Counts, Evidence: g.Evidence}
	if g.Group != nil {
		f.State = g.State
		where := g.Blocking
		if where.Func == "" && len(g.Frames) > 0 {
			where = g.Frames[0]
		}
		f.Where = frameString(where)
	}
	return f
}

func frameString(f goroutine.Frame) string {
	if f.File == "" {
		return f.Func
	}
	return fmt.Sprintf("%s %s:%d", f.Func, goroutine.ShortPath(f.File), f.Line)
}

// scoreReport scores one pattern's report. It is pure, so the rules can be
// tested on synthetic reports.
func scoreReport(p *patterns.Pattern, rep *goroutine.Report) *Row {
	row := &Row{Pattern: p.Name, Leaks: p.Leaks, Category: p.Category, Goroutines: rep.Goroutines}
	var markers []string
	if p.Leaks {
		markers = p.LeakFuncs
	}
	seen := map[string]bool{}
	truth := map[string][]int{}
	for _, m := range markers {
		truth[m] = make([]int, rep.Snapshots)
	}
	for _, g := range rep.Groups {
		for _, m := range markers {
			if stackHas(g, []string{m}) != "" {
				for i, c := range g.Counts {
					if i < len(truth[m]) {
						truth[m][i] += c
					}
				}
			}
		}
		switch g.Verdict {
		case goroutine.VerdictLeak:
			row.Leak++
		case goroutine.VerdictSuspect:
			row.Suspect++
		default:
			row.OK++
		}
		m := stackHas(g, markers)
		if g.Verdict == goroutine.VerdictSuspect && m == "" {
			row.Suspects = append(row.Suspects, finding(m, g))
		}
		switch {
		case g.Verdict == goroutine.VerdictLeak && m != "":
			row.TP++
			seen[m] = true
		case g.Verdict == goroutine.VerdictLeak:
			row.FP++
			row.FalseAlarms = append(row.FalseAlarms, finding("", g))
		case m != "" && transientGroup(g):
			row.Transient++
		case m != "":
			row.FN++
			seen[m] = true
			row.Misses = append(row.Misses, finding(m, g))
		}
	}
	for _, m := range markers {
		if !seen[m] {
			row.FN++
			row.Misses = append(row.Misses, Finding{Marker: m,
				Evidence: []string{"no group held this function in a steady state: the leak did not show in the dumps, or the parser lost its frames"}})
		}
	}
	for _, m := range markers {
		row.Truth = append(row.Truth, Truth{Func: m, Counts: truth[m]})
	}
	row.Expected = row.TP + row.FN
	return row
}

// failedRow is the row of a pattern that could not be run: its ground truth
// counts as missed.
func failedRow(p *patterns.Pattern, err error) *Row {
	row := &Row{Pattern: p.Name, Leaks: p.Leaks, Category: p.Category, Err: err.Error()}
	if p.Leaks {
		row.FN = len(p.LeakFuncs)
		row.Expected = row.FN
	}
	return row
}

func (s *Score) total() {
	s.TP, s.FP, s.FN, s.Suspects = 0, 0, 0, 0
	for _, r := range s.Rows {
		s.TP += r.TP
		s.FP += r.FP
		s.FN += r.FN
		s.Suspects += r.Suspect
	}
	s.Precision, s.Recall = 1, 1
	if s.TP+s.FP > 0 {
		s.Precision = float64(s.TP) / float64(s.TP+s.FP)
	}
	if s.TP+s.FN > 0 {
		s.Recall = float64(s.TP) / float64(s.TP+s.FN)
	}
}

// Failed lists the patterns that could not be run.
func (s *Score) Failed() []*Row {
	var out []*Row
	for _, r := range s.Rows {
		if r.Err != "" {
			out = append(out, r)
		}
	}
	return out
}

// WriteTable renders the per-pattern table, the details of every miss, false
// alarm and suspect, and the totals.
func (s *Score) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PATTERN\tLEAKS\tCATEGORY\tEXPECT\tTP\tFP\tFN\tLEAK/SUSP/OK\tGOROUTINES\tRESULT")
	for _, r := range s.Rows {
		result := "ok"
		switch {
		case r.Err != "":
			result = "ERROR"
		case r.FN > 0 && r.FP > 0:
			result = "MISS+FALSE-ALARM"
		case r.FN > 0:
			result = "MISS"
		case r.FP > 0:
			result = "FALSE-ALARM"
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%d\t%d\t%d\t%d\t%d/%d/%d\t%s\t%s\n", r.Pattern, r.Leaks, r.Category,
			r.Expected, r.TP, r.FP, r.FN, r.Leak, r.Suspect, r.OK, joinInts(r.Goroutines), result)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	for _, r := range s.Rows {
		if r.Err != "" {
			fmt.Fprintf(&b, "\n%s: ERROR %s\n", r.Pattern, r.Err)
		}
		writeFindings(&b, r.Pattern, "miss", r.Misses)
		writeFindings(&b, r.Pattern, "false alarm", r.FalseAlarms)
		writeFindings(&b, r.Pattern, "suspect", r.Suspects)
	}
	fmt.Fprintf(&b, "\nprecision %.3f (TP %d, FP %d)  recall %.3f (TP %d, FN %d)  suspects %d  patterns %d  elapsed %s\n",
		s.Precision, s.TP, s.FP, s.Recall, s.TP, s.FN, s.Suspects, len(s.Rows), s.Elapsed.Round(time.Second))
	_, err := io.WriteString(w, b.String())
	return err
}

func writeFindings(b *strings.Builder, pattern, kind string, fs []Finding) {
	for _, f := range fs {
		fmt.Fprintf(b, "\n%s: %s", pattern, kind)
		if f.Verdict != "" {
			fmt.Fprintf(b, " [%s]", f.Verdict)
		}
		if f.State != "" {
			fmt.Fprintf(b, " %s at %s", f.State, f.Where)
		}
		if len(f.Counts) > 0 {
			fmt.Fprintf(b, " counts %s", joinInts(f.Counts))
		}
		if f.Marker != "" {
			fmt.Fprintf(b, "\n    ground truth: %s", f.Marker)
		}
		b.WriteString("\n")
		for _, e := range f.Evidence {
			fmt.Fprintf(b, "    - %s\n", e)
		}
	}
}

func joinInts(c []int) string {
	s := make([]string, len(c))
	for i, v := range c {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, ",")
}

// sortRows puts rows in corpus order: leaking patterns first, then by name.
func sortRows(rows []*Row) {
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].Leaks != rows[j].Leaks {
			return rows[i].Leaks
		}
		return rows[i].Pattern < rows[j].Pattern
	})
}
