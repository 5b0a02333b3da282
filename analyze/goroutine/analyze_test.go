package goroutine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// series builds snapshots of one process from per-snapshot group specs.
type gspec struct {
	key   string
	state string
	fn    string
	ids   []int64 // nil for formats without IDs
	count int     // used when ids is nil
	wait  time.Duration
}

func snapsOf(t0 time.Time, step time.Duration, format Format, specs ...[]gspec) []*Snapshot {
	var out []*Snapshot
	for i, groups := range specs {
		s := &Snapshot{Time: t0.Add(time.Duration(i) * step), Format: format}
		for _, sp := range groups {
			c := sp.count
			if sp.ids != nil {
				c = len(sp.ids)
			}
			g := &Group{
				Key:       sp.key,
				State:     sp.state,
				Frames:    []Frame{{Func: "runtime.gopark", File: "/usr/local/go/src/runtime/proc.go", Line: 435}, {Func: sp.fn, File: "/src/app/app.go", Line: 88}, {Func: "runtime.goexit", File: "/usr/local/go/src/runtime/asm_amd64.s", Line: 1700}},
				CreatedBy: Frame{Func: "main.serve", File: "/src/app/main.go", Line: 40},
				Count:     c,
				IDs:       sp.ids,
			}
			if sp.wait > 0 {
				g.WaitMin, g.WaitMax, g.WaitKnown = sp.wait, sp.wait, c
			}
			s.Groups = append(s.Groups, g)
			s.Goroutines += c
		}
		out = append(out, s)
	}
	return out
}

func idRange(from, n int64) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = from + int64(i)
	}
	return out
}

func TestAnalyzeVerdicts(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	step := 10 * time.Second
	tests := []struct {
		name     string
		format   Format
		snaps    [][]gspec
		want     Verdict
		evidence string // a substring expected in the evidence
	}{
		{
			name:   "growing and persistent by ID is a leak",
			format: FormatText,
			snaps: [][]gspec{
				{{key: "a", state: "chan send", fn: "main.handler.func1", ids: idRange(100, 40)}},
				{{key: "a", state: "chan send", fn: "main.handler.func1", ids: idRange(100, 50)}},
				{{key: "a", state: "chan send", fn: "main.handler.func1", ids: idRange(100, 60)}},
				{{key: "a", state: "chan send", fn: "main.handler.func1", ids: idRange(100, 70)}},
			},
			want:     VerdictLeak,
			evidence: "grew 40 → 70",
		},
		{
			name:   "growing without IDs (protobuf) is a leak when monotone",
			format: FormatProto,
			snaps: [][]gspec{
				{{key: "a", state: "chan send", fn: "main.handler.func1", count: 5}},
				{{key: "a", state: "chan send", fn: "main.handler.func1", count: 9}},
				{{key: "a", state: "chan send", fn: "main.handler.func1", count: 14}},
				{{key: "a", state: "chan send", fn: "main.handler.func1", count: 20}},
			},
			want:     VerdictLeak,
			evidence: "+30.0/min, r²=0.99",
		},
		{
			name:   "idle worker pool stays ok",
			format: FormatText,
			snaps: [][]gspec{
				{{key: "w", state: "chan receive", fn: "main.worker", ids: idRange(10, 8)}},
				{{key: "w", state: "chan receive", fn: "main.worker", ids: idRange(10, 8)}},
				{{key: "w", state: "chan receive", fn: "main.worker", ids: idRange(10, 8)}},
				{{key: "w", state: "chan receive", fn: "main.worker", ids: idRange(10, 8)}},
			},
			want:     VerdictOK,
			evidence: "steady at 8",
		},
		{
			name:   "growing group whose goroutines turn over is not a leak",
			format: FormatText,
			snaps: [][]gspec{
				{{key: "h", state: "IO wait", fn: "main.handle", ids: idRange(100, 10)}},
				{{key: "h", state: "IO wait", fn: "main.handle", ids: idRange(200, 14)}},
				{{key: "h", state: "IO wait", fn: "main.handle", ids: idRange(300, 18)}},
				{{key: "h", state: "IO wait", fn: "main.handle", ids: idRange(400, 22)}},
			},
			want:     VerdictOK,
			evidence: "turn over",
		},
		{
			name:   "fluctuating load is not a leak",
			format: FormatProto,
			snaps: [][]gspec{
				{{key: "h", state: "select", fn: "main.handle", count: 10}},
				{{key: "h", state: "select", fn: "main.handle", count: 30}},
				{{key: "h", state: "select", fn: "main.handle", count: 5}},
				{{key: "h", state: "select", fn: "main.handle", count: 16}},
			},
			want:     VerdictOK,
			evidence: "not the steady growth",
		},
		{
			name:   "nil channel convicts from one snapshot",
			format: FormatText,
			snaps: [][]gspec{
				{{key: "n", state: "chan receive (nil chan)", fn: "main.wait", ids: idRange(5, 1)}},
			},
			want:     VerdictLeak,
			evidence: "nil channel",
		},
		{
			name:   "one snapshot of a chan send is not enough",
			format: FormatText,
			snaps: [][]gspec{
				{{key: "s", state: "chan send", fn: "main.send", ids: idRange(5, 100)}},
			},
			want:     VerdictOK,
			evidence: "one snapshot",
		},
		{
			name:   "many senders blocked for minutes are suspect from one snapshot",
			format: FormatText,
			snaps: [][]gspec{
				{{key: "s", state: "chan send", fn: "main.send", ids: idRange(5, 100), wait: 12 * time.Minute}},
			},
			want:     VerdictSuspect,
			evidence: "12 minutes",
		},
		{
			name:   "a leak mixed with short waits at the same line is still a leak",
			format: FormatText,
			snaps: [][]gspec{
				{{key: "g", state: "chan receive", fn: "main.sub", ids: idRange(100, 10)}},
				{{key: "g", state: "chan receive", fn: "main.sub", ids: append(idRange(103, 7), idRange(200, 8)...)}},
				{{key: "g", state: "chan receive", fn: "main.sub", ids: append(idRange(103, 7), idRange(200, 12)...)}},
				{{key: "g", state: "chan receive", fn: "main.sub", ids: append(idRange(103, 7), idRange(200, 16)...)}},
			},
			want:     VerdictLeak,
			evidence: "7 of the 10 goroutines here in snapshot 1 were still blocked here at the end",
		},
		{
			name:   "growth whose early goroutines mostly left is suspect",
			format: FormatText,
			snaps: [][]gspec{
				{{key: "g", state: "chan receive", fn: "main.sub", ids: idRange(100, 10)}},
				{{key: "g", state: "chan receive", fn: "main.sub", ids: append(idRange(106, 4), idRange(200, 11)...)}},
				{{key: "g", state: "chan receive", fn: "main.sub", ids: append(idRange(106, 4), idRange(200, 15)...)}},
				{{key: "g", state: "chan receive", fn: "main.sub", ids: append(idRange(106, 4), idRange(200, 19)...)}},
			},
			want:     VerdictSuspect,
			evidence: "only 4 of the 10 goroutines of snapshot 1 were still here at the end",
		},
		{
			name:   "a pool growing to its cap is not a leak",
			format: FormatText,
			snaps: [][]gspec{
				{{key: "p", state: "chan receive", fn: "main.pool", ids: idRange(100, 13)}},
				{{key: "p", state: "chan receive", fn: "main.pool", ids: idRange(100, 58)}},
				{{key: "p", state: "chan receive", fn: "main.pool", ids: idRange(100, 64)}},
				{{key: "p", state: "chan receive", fn: "main.pool", ids: idRange(100, 64)}},
			},
			want:     VerdictSuspect,
			evidence: "the growth stopped",
		},
		{
			name:   "busy goroutines are load, not a leak",
			format: FormatProto,
			snaps: [][]gspec{
				{{key: "r", state: "runnable", fn: "main.compute", count: 2}},
				{{key: "r", state: "runnable", fn: "main.compute", count: 6}},
				{{key: "r", state: "runnable", fn: "main.compute", count: 9}},
				{{key: "r", state: "runnable", fn: "main.compute", count: 14}},
			},
			want:     VerdictSuspect,
			evidence: "busy, not blocked",
		},
		{
			name:   "two snapshots never convict on growth",
			format: FormatText,
			snaps: [][]gspec{
				{{key: "a", state: "chan send", fn: "main.send", ids: idRange(100, 20)}},
				{{key: "a", state: "chan send", fn: "main.send", ids: idRange(100, 60)}},
			},
			want:     VerdictSuspect,
			evidence: "from only two snapshots",
		},
		{
			name:   "slow steady growth with every goroutine stuck is suspect",
			format: FormatText,
			snaps: [][]gspec{
				{{key: "d", state: "IO wait", fn: "main.dial", ids: idRange(100, 2)}},
				{{key: "d", state: "IO wait", fn: "main.dial", ids: idRange(100, 3)}},
				{{key: "d", state: "IO wait", fn: "main.dial", ids: idRange(100, 4)}},
			},
			want:     VerdictSuspect,
			evidence: "all 2 goroutines here in snapshot 1",
		},
		{
			name:   "two small steps are not enough",
			format: FormatProto,
			snaps: [][]gspec{
				{{key: "p", state: "chan receive", fn: "main.pool", count: 4}},
				{{key: "p", state: "chan receive", fn: "main.pool", count: 5}},
				{{key: "p", state: "chan receive", fn: "main.pool", count: 5}},
				{{key: "p", state: "chan receive", fn: "main.pool", count: 5}},
			},
			want:     VerdictOK,
			evidence: "changed 4, 5, 5, 5",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := Analyze(snapsOf(t0, step, tt.format, tt.snaps...), AnalyzeOptions{})
			if len(rep.Groups) != 1 {
				t.Fatalf("got %d groups, want 1", len(rep.Groups))
			}
			g := rep.Groups[0]
			ev := strings.Join(g.Evidence, " | ")
			if g.Verdict != tt.want {
				t.Errorf("verdict = %s, want %s; evidence: %s", g.Verdict, tt.want, ev)
			}
			if !strings.Contains(ev, tt.evidence) {
				t.Errorf("evidence %q lacks %q", ev, tt.evidence)
			}
		})
	}
}

func TestAnalyzeCrossChecks(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	snaps := snapsOf(t0, time.Second, FormatText,
		[]gspec{{key: "a", state: "chan receive", fn: "main.waitForever", ids: idRange(100, 3)}},
		[]gspec{{key: "a", state: "chan receive", fn: "main.waitForever", ids: idRange(100, 3)}},
	)
	leakProfile := &Snapshot{Format: FormatProto, Goroutines: 3, Groups: []*Group{{
		Count: 3, State: "chan receive",
		Frames: []Frame{{Func: "runtime.gopark", Line: 435}, {Func: "runtime.chanrecv1", Line: 10}, {Func: "main.waitForever", Line: 88}, {Func: "runtime.goexit", Line: 1700}},
	}}}
	tv := &TraceView{Window: 5 * time.Second, Goroutines: map[int64]TraceGoroutine{100: {}, 101: {}, 102: {}}}
	rep := Analyze(snaps, AnalyzeOptions{LeakProfile: leakProfile, Trace: tv})
	g := rep.Groups[0]
	ev := strings.Join(g.Evidence, " | ")
	if g.Verdict != VerdictLeak {
		t.Fatalf("verdict = %s, want leak; evidence: %s", g.Verdict, ev)
	}
	for _, want := range []string{"goroutine leak profile reports 3", "none of the 3 that existed when the 5s execution trace began ran", "all 3 goroutines here in snapshot 1 were still blocked here at the end"} {
		if !strings.Contains(ev, want) {
			t.Errorf("evidence %q lacks %q", ev, want)
		}
	}
}

func TestAnalyzeOSLink(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	snaps := snapsOf(t0, time.Second, FormatText,
		[]gspec{{key: "r", state: "select", fn: "net/http.(*persistConn).readLoop", ids: idRange(100, 40)}},
	)
	rep := Analyze(snaps, AnalyzeOptions{OS: &OSView{PID: 7, FDs: 50, FDLimit: 1024, TCP: map[string]int{"CLOSE_WAIT": 40, "LISTEN": 1}}})
	ev := strings.Join(rep.Groups[0].Evidence, " | ")
	if !strings.Contains(ev, "40 CLOSE_WAIT sockets") {
		t.Errorf("evidence %q does not link the CLOSE_WAIT sockets", ev)
	}
	if !strings.Contains(strings.Join(rep.Notes, "|"), "50 open file descriptors of a limit of 1024") {
		t.Errorf("notes %q lack the fd count", rep.Notes)
	}
}

func TestBlockingFrame(t *testing.T) {
	tests := []struct {
		frames []string
		want   string
	}{
		{[]string{"runtime.gopark", "runtime.chansend1", "main.handler.func1", "runtime.goexit"}, "main.handler.func1"},
		{[]string{"runtime.gopark", "internal/poll.(*FD).Accept", "net.(*TCPListener).Accept", "net/http.(*Server).Serve", "github.com/acme/api.Run"}, "github.com/acme/api.Run"},
		{[]string{"runtime.gopark", "runtime.netpollblock", "internal/poll.(*FD).Read", "net.(*conn).Read", "net/http.(*persistConn).readLoop", "runtime.goexit"}, "net/http.(*persistConn).readLoop"},
		{[]string{"runtime.gopark", "runtime.goexit"}, "runtime.gopark"},
	}
	for _, tt := range tests {
		var fr []Frame
		for _, f := range tt.frames {
			fr = append(fr, Frame{Func: f})
		}
		got, _ := BlockingFrame(fr)
		if got.Func != tt.want {
			t.Errorf("BlockingFrame(%v) = %s, want %s", tt.frames, got.Func, tt.want)
		}
	}
}

func TestIsStdlib(t *testing.T) {
	tests := map[string]bool{
		"net/http.(*conn).serve":                       true,
		"runtime.gopark":                               true,
		"internal/poll.(*FD).Read":                     true,
		"vendor/golang.org/x/net/http2.(*Framer).Read": true,
		"main.main":                                    false,
		"main.(*srv).loop.func1":                       false,
		"github.com/gopulse/gopulse/agent.Start":       false,
		"golang.org/x/sync/errgroup.(*Group).Wait":     false,
		"example.com/m.F[...]":                         false,
	}
	for fn, want := range tests {
		if got := IsStdlib(fn); got != want {
			t.Errorf("IsStdlib(%q) = %v, want %v", fn, got, want)
		}
	}
}

func TestShortPath(t *testing.T) {
	tests := map[string]string{
		"/usr/local/go/src/net/http/server.go":                  "net/http/server.go",
		"/root/go/pkg/mod/github.com/a/b@v1.2.0/c/d.go":         "github.com/a/b@v1.2.0/c/d.go",
		"/home/u/src/github.com/acme/api/internal/handler/h.go": "handler/h.go",
		"main.go": "main.go",
	}
	for in, want := range tests {
		if got := ShortPath(in); got != want {
			t.Errorf("ShortPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAnalyzeRealLeakProfile joins real dumps of the fixture program with
// the runtime's own leak detector: the goroutineleak profile, and the
// "(leaked)" mark debug=2 prints after it ran.
func TestAnalyzeRealLeakProfile(t *testing.T) {
	open := func(name string) *Snapshot {
		t.Helper()
		f, err := os.Open(filepath.Join("testdata", "real", name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		s, err := Parse(f, Options{})
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		return s
	}
	leakProfile := open("goroutineleak.pb.gz")
	if leakProfile.Goroutines == 0 {
		t.Fatal("fixture leak profile is empty")
	}
	for _, tc := range []struct {
		dump string
		opts AnalyzeOptions
		want string
	}{
		{"goroutine.pb.gz", AnalyzeOptions{LeakProfile: leakProfile}, "goroutine leak profile reports"},
		{"goroutine.afterleak.debug2.txt", AnalyzeOptions{}, `marked`},
	} {
		t.Run(tc.dump, func(t *testing.T) {
			rep := Analyze([]*Snapshot{open(tc.dump)}, tc.opts)
			leaked := 0
			for _, g := range rep.Groups {
				if g.Verdict != VerdictLeak {
					continue
				}
				leaked += g.Count
				if !strings.Contains(strings.Join(g.Evidence, "|"), tc.want) {
					t.Errorf("leak group %s: evidence %q lacks %q", g.Blocking.Func, g.Evidence, tc.want)
				}
			}
			if leaked < leakProfile.Goroutines {
				t.Errorf("%d goroutines in leak groups, want at least the %d the runtime reported", leaked, leakProfile.Goroutines)
			}
			for _, g := range rep.Groups {
				if g.Verdict == VerdictLeak && strings.Contains(g.Blocking.Func, "main.main") {
					t.Errorf("main goroutine called a leak")
				}
			}
		})
	}
}
