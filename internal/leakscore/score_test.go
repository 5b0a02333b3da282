package leakscore

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gopulse/gopulse/analyze/goroutine"
	"github.com/gopulse/gopulse/internal/testprog/leakcorpus/patterns"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

const (
	markA = patterns.Pkg + ".leakyA"
	markB = patterns.Pkg + ".leakyB"
)

var (
	leaky   = &patterns.Pattern{Name: "leaky", Leaks: true, Category: "chan", LeakFuncs: []string{markA, markB}}
	healthy = &patterns.Pattern{Name: "ok-healthy", Category: "chan"}
)

// group builds a report group whose stack holds funcs, top first.
func group(v goroutine.Verdict, counts []int, funcs ...string) *goroutine.GroupReport {
	g := &goroutine.Group{State: "chan send", Count: counts[len(counts)-1]}
	for i, f := range funcs {
		g.Frames = append(g.Frames, goroutine.Frame{Func: f, File: "/src/x.go", Line: 10 + i})
	}
	return &goroutine.GroupReport{Group: g, Verdict: v, Counts: counts, Evidence: []string{"because " + string(v)}}
}

func sleeping(g *goroutine.GroupReport) *goroutine.GroupReport {
	g.State = "sleep"
	return g
}

func report(gs ...*goroutine.GroupReport) *goroutine.Report {
	return &goroutine.Report{Snapshots: 4, Goroutines: []int{10, 20, 30, 40}, Groups: gs}
}

func TestScoreReport(t *testing.T) {
	grow := []int{5, 10, 15, 20}
	flat := []int{8, 8, 8, 8}
	tests := []struct {
		name                  string
		p                     *patterns.Pattern
		rep                   *goroutine.Report
		tp, fp, fn, susp, trn int
		missMarkers           []string
	}{
		{name: "both groups caught", p: leaky,
			rep: report(group(goroutine.VerdictLeak, grow, "runtime.gopark", markA), group(goroutine.VerdictLeak, grow, markB, "main.main"),
				group(goroutine.VerdictOK, flat, "net/http.(*Server).Serve")),
			tp: 2},
		{name: "suspect is a miss and counted", p: leaky,
			rep: report(group(goroutine.VerdictLeak, grow, markA), group(goroutine.VerdictSuspect, grow, markB)),
			tp:  1, fn: 1, susp: 1, missMarkers: []string{markB}},
		{name: "absent ground truth is a miss", p: leaky,
			rep: report(group(goroutine.VerdictLeak, grow, markA)),
			tp:  1, fn: 1, missMarkers: []string{markB}},
		{name: "leak verdict off the ground truth is a false alarm", p: leaky,
			rep: report(group(goroutine.VerdictLeak, grow, markA), group(goroutine.VerdictLeak, grow, markB), group(goroutine.VerdictLeak, flat, "main.pool")),
			tp:  2, fp: 1},
		{name: "ground truth split in two groups counts twice", p: leaky,
			rep: report(group(goroutine.VerdictLeak, grow, markA), group(goroutine.VerdictOK, grow, "x.y", markA), group(goroutine.VerdictLeak, grow, markB)),
			tp:  2, fn: 1, missMarkers: []string{markA}},
		{name: "transient of the leaking path is not scored", p: leaky,
			rep: report(group(goroutine.VerdictLeak, grow, markA), group(goroutine.VerdictLeak, grow, markB),
				group(goroutine.VerdictOK, []int{0, 3, 0, 0}, "time.Sleep", markA), group(goroutine.VerdictOK, []int{1, 1, 1, 1}, "time.Sleep", markB)),
			tp: 2, trn: 2},
		{name: "sleeping group of the leaking path is not scored", p: leaky,
			rep: report(group(goroutine.VerdictLeak, grow, markA), group(goroutine.VerdictLeak, grow, markB), sleeping(group(goroutine.VerdictOK, []int{4, 4, 0, 4}, "time.Sleep", markA))),
			tp:  2, trn: 1},
		{name: "transient called leak still counts as caught", p: leaky,
			rep: report(group(goroutine.VerdictLeak, []int{0, 0, 1, 1}, markA), group(goroutine.VerdictLeak, grow, markB)),
			tp:  2},
		{name: "healthy pattern has no ground truth", p: healthy,
			rep: report(group(goroutine.VerdictLeak, grow, markA), group(goroutine.VerdictSuspect, grow, "main.pool"), group(goroutine.VerdictOK, flat, "main.idle")),
			fp:  1, susp: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := scoreReport(tt.p, tt.rep)
			if r.TP != tt.tp || r.FP != tt.fp || r.FN != tt.fn || r.Suspect != tt.susp || r.Transient != tt.trn {
				t.Errorf("TP/FP/FN/suspect/transient = %d/%d/%d/%d/%d, want %d/%d/%d/%d/%d",
					r.TP, r.FP, r.FN, r.Suspect, r.Transient, tt.tp, tt.fp, tt.fn, tt.susp, tt.trn)
			}
			if r.Expected != r.TP+r.FN {
				t.Errorf("Expected = %d, want TP+FN = %d", r.Expected, r.TP+r.FN)
			}
			var got []string
			for _, m := range r.Misses {
				got = append(got, m.Marker)
			}
			if !reflect.DeepEqual(got, tt.missMarkers) {
				t.Errorf("misses = %q, want %q", got, tt.missMarkers)
			}
			if len(r.FalseAlarms) != r.FP {
				t.Errorf("%d false alarms listed for FP %d", len(r.FalseAlarms), r.FP)
			}
		})
	}
}

func TestTruthCounts(t *testing.T) {
	r := scoreReport(leaky, report(
		group(goroutine.VerdictLeak, []int{1, 2, 3, 4}, markA),
		group(goroutine.VerdictOK, []int{0, 1, 0, 1}, "time.Sleep", markA),
		group(goroutine.VerdictOK, []int{7, 7, 7, 7}, "main.other")))
	want := []Truth{{Func: markA, Counts: []int{1, 3, 3, 5}}, {Func: markB, Counts: []int{0, 0, 0, 0}}}
	if !reflect.DeepEqual(r.Truth, want) {
		t.Errorf("Truth = %+v, want %+v", r.Truth, want)
	}
}

func TestTransient(t *testing.T) {
	tests := []struct {
		counts []int
		want   bool
	}{
		{[]int{0, 0, 0, 3}, true},
		{[]int{1, 1, 1, 1}, true},
		{[]int{0, 2, 2, 0}, false},
		{[]int{2, 0, 0, 0}, true},
		{[]int{3, 5, 8, 12}, false},
		{[]int{0, 4, 9}, false},
	}
	for _, tt := range tests {
		if got := transient(tt.counts); got != tt.want {
			t.Errorf("transient(%v) = %v, want %v", tt.counts, got, tt.want)
		}
	}
}

func TestScoreTotals(t *testing.T) {
	tests := []struct {
		name      string
		rows      []*Row
		prec, rec float64
	}{
		{"nothing flagged nor expected", []*Row{{Pattern: "ok-a"}}, 1, 1},
		{"mixed", []*Row{{TP: 3, FN: 1}, {FP: 1}, {TP: 1}}, 0.8, 0.8},
		{"all missed", []*Row{{FN: 2}}, 1, 0},
	}
	for _, tt := range tests {
		s := &Score{Rows: tt.rows}
		s.total()
		if s.Precision != tt.prec || s.Recall != tt.rec {
			t.Errorf("%s: precision %v recall %v, want %v %v", tt.name, s.Precision, s.Recall, tt.prec, tt.rec)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Samples: 1}, "Samples"},
		{Config{Interval: -time.Second}, "Interval"},
		{Config{Settle: -time.Second}, "Settle"},
		{Config{Format: "debug=1"}, "Format"},
		{Config{Parallel: -2}, "Parallel"},
	}
	for _, tt := range tests {
		err := tt.cfg.fill()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("fill(%+v) = %v, want an error naming %s", tt.cfg, err, tt.want)
		}
	}
	if _, err := selectPatterns([]string{"no-such-pattern"}); err == nil || !strings.Contains(err.Error(), "-list") {
		t.Errorf("unknown pattern: err = %v, want a hint to -list", err)
	}
	var c Config
	if err := c.fill(); err != nil || c.Samples != 4 || c.Interval != 2*time.Second || c.Format != FormatDebug2 || c.Parallel != 8 {
		t.Errorf("zero Config filled to %+v, %v", c, err)
	}
}

func TestWriteTableGolden(t *testing.T) {
	s := &Score{Rows: []*Row{
		scoreReport(leaky, report(group(goroutine.VerdictLeak, []int{5, 10, 15, 20}, markA),
			group(goroutine.VerdictSuspect, []int{2, 4, 6, 8}, markB))),
		scoreReport(healthy, report(group(goroutine.VerdictLeak, []int{26, 64, 64, 64}, "main.(*pool).work"),
			group(goroutine.VerdictSuspect, []int{0, 0, 0, 3}, "main.contend"))),
		failedRow(&patterns.Pattern{Name: "broken", Leaks: true, Category: "io", LeakFuncs: []string{markA}}, os.ErrNotExist),
	}, Elapsed: 9 * time.Second}
	s.total()
	var buf bytes.Buffer
	if err := s.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "table.golden")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("table differs from %s (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, buf.String(), want)
	}
}
