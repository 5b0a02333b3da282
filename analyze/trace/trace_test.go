package trace

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	xtrace "golang.org/x/exp/trace"
)

var update = flag.Bool("update", false, "rewrite golden files and fuzz seeds in testdata")

// fixtures are traces written by internal/testprog/traced (see go:generate
// in trace.go), each with the goroutine dump taken during the window and the
// IDs of the goroutines the program parked.
var fixtures = []string{"start", "flight"}

func readFixture(t testing.TB, name string) *Activity {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name+".trace"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	act, err := Goroutines(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return act
}

func TestGolden(t *testing.T) {
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			act := readFixture(t, name)
			got := render(act)
			path := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (go test -update rewrites it):\n%s", path, lineDiff(want, got))
			}
		})
	}
}

// render prints everything Goroutines returns, one goroutine a line, so a
// change in any field shows in the golden diff.
func render(a *Activity) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "version %s duration %v generations %d truncated %v %q wall %s\n",
		a.Version, a.Duration, a.Generations, a.Truncated, a.Problem, a.WallStart.UTC().Format(time.RFC3339Nano))
	fmt.Fprintf(&b, "gc cycles %d stw %+v other %+v\n", a.GC.Cycles, a.GC.STW, a.GC.OtherSTW)
	for _, g := range a.Goroutines {
		fmt.Fprintf(&b, "g%d ran=%v created=%v ended=%v %s->%s run=%v runnable=%v wait=%v syscall=%v blocks=%d reason=%q stack(%s):\n",
			g.ID, g.Ran, g.Created, g.Ended, g.StartState, g.EndState, g.Running, g.Runnable, g.Waiting, g.Syscall,
			g.Blocks, g.LastReason, g.StackSource)
		for _, f := range g.Stack {
			fmt.Fprintf(&b, "\t%s %s:%d\n", f.Func, filepath.Base(f.File), f.Line)
		}
	}
	fmt.Fprintf(&b, "longest waiting:")
	for _, g := range a.LongestWaiting(5) {
		fmt.Fprintf(&b, " g%d=%v", g.ID, g.Waiting)
	}
	b.WriteString("\n")
	return b.Bytes()
}

func lineDiff(want, got []byte) string {
	w, g := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 20; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n-%s\n+%s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}

type parked struct {
	id   int64
	kind string
}

func readParked(t *testing.T, r *bytes.Reader) []parked {
	t.Helper()
	var out []parked
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var p parked
		if _, err := fmt.Sscanf(sc.Text(), "parked %d %s", &p.id, &p.kind); err != nil {
			t.Fatalf("parked line %q: %v", sc.Text(), err)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		t.Fatal("no parked goroutines listed")
	}
	return out
}

var dumpHeader = regexp.MustCompile(`(?m)^goroutine (\d+) \[([^\],]+)`)

// readDump returns goroutine ID → wait reason from a runtime.Stack(all)
// dump, the format /debug/pprof/goroutine?debug=2 serves.
func readDump(t *testing.T, dump []byte) map[int64]string {
	t.Helper()
	out := make(map[int64]string)
	for _, m := range dumpHeader.FindAllSubmatch(dump, -1) {
		id, err := strconv.ParseInt(string(m[1]), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		out[id] = string(m[2])
	}
	if len(out) == 0 {
		t.Fatal("no goroutines in dump")
	}
	return out
}

// Where each kind of parked goroutine waits, as the dump names it and as a
// function on its stack.
var parkedKinds = map[string]struct{ dumpReason, stackFunc string }{
	"chan":   {"chan receive", "runtime.chanrecv1"},
	"select": {"select", "runtime.selectgo"},
	"mutex":  {"sync.Mutex.Lock", "sync.(*Mutex).Lock"},
}

// checkJoin checks what the lead relies on: the trace's goroutine IDs are
// the dump's, and parked goroutines show as never having run.
func checkJoin(t *testing.T, act *Activity, parkedOut, dump []byte) {
	t.Helper()
	dumped := readDump(t, dump)
	for id, reason := range dumped {
		g, ok := act.Goroutine(id)
		if !ok {
			t.Errorf("goroutine %d [%s] is in the dump taken during the window but not in the trace", id, reason)
			continue
		}
		if reason == "running" && !g.Ran {
			t.Errorf("goroutine %d was running in the dump but the trace says it never ran", id)
		}
	}
	for _, p := range readParked(t, bytes.NewReader(parkedOut)) {
		kind, ok := parkedKinds[p.kind]
		if !ok {
			t.Fatalf("unknown parked kind %q", p.kind)
		}
		if got := dumped[p.id]; got != kind.dumpReason {
			t.Errorf("dump shows parked goroutine %d as [%s], want [%s]", p.id, got, kind.dumpReason)
		}
		g, ok := act.Goroutine(p.id)
		if !ok {
			t.Errorf("parked goroutine %d (%s) missing from trace", p.id, p.kind)
			continue
		}
		if g.Ran || g.Created || g.Ended || g.StartState != "waiting" || g.EndState != "waiting" || g.Blocks != 0 {
			t.Errorf("parked goroutine %d: got %+v, want waiting throughout, never ran", p.id, g)
		}
		if g.Waiting != act.Duration {
			t.Errorf("parked goroutine %d waited %v of a %v window, want all of it", p.id, g.Waiting, act.Duration)
		}
		if g.StackSource != StackStatus || !hasFunc(g.Stack, kind.stackFunc) || !hasFunc(g.Stack, "main.run.func") {
			t.Errorf("parked goroutine %d: stack (%s) %v, want a status stack through %s and main.run", p.id, g.StackSource, g.Stack, kind.stackFunc)
		}
	}
}

func hasFunc(stack []Frame, prefix string) bool {
	for _, f := range stack {
		if strings.HasPrefix(f.Func, prefix) {
			return true
		}
	}
	return false
}

func TestFixtureIDsMatchDump(t *testing.T) {
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			act := readFixture(t, name)
			parkedOut, err := os.ReadFile(filepath.Join("testdata", name+".parked"))
			if err != nil {
				t.Fatal(err)
			}
			dump, err := os.ReadFile(filepath.Join("testdata", name+".dump"))
			if err != nil {
				t.Fatal(err)
			}
			checkJoin(t, act, parkedOut, dump)
		})
	}
}

// TestLiveProgram runs the fixture program with the Go under test, so a
// runtime that changes its trace format or ID scheme fails here even while
// the committed fixtures still pass.
func TestLiveProgram(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs internal/testprog/traced")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "traced")
	build := exec.Command("go", "build", "-o", bin, "../../internal/testprog/traced")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build testprog: %v\n%s", err, out)
	}
	for _, mode := range []string{"start", "flight"} {
		t.Run(mode, func(t *testing.T) {
			tr, dump := filepath.Join(dir, mode+".trace"), filepath.Join(dir, mode+".dump")
			cmd := exec.Command(bin, "-mode", mode, "-d", "500ms", "-trace", tr, "-dump", dump)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			parkedOut, err := cmd.Output()
			if err != nil {
				t.Fatalf("run testprog: %v\n%s", err, stderr.Bytes())
			}
			f, err := os.Open(tr)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			act, err := Goroutines(f)
			if err != nil {
				t.Fatal(err)
			}
			if act.Truncated {
				t.Errorf("complete trace reported truncated: %s", act.Problem)
			}
			dumpText, err := os.ReadFile(dump)
			if err != nil {
				t.Fatal(err)
			}
			checkJoin(t, act, parkedOut, dumpText)
			checkWorkers(t, act)
		})
	}
}

// checkWorkers checks the goroutines that did run: the busy workers ran and
// the short-lived ones were created and ended in the window.
func checkWorkers(t *testing.T, act *Activity) {
	t.Helper()
	var busy, short, pingers int
	for _, g := range act.Goroutines {
		switch {
		case hasFunc(g.Stack, "main.busy"):
			busy++
			if !g.Ran || g.Running < act.Duration/10 {
				t.Errorf("busy worker g%d ran %v of %v", g.ID, g.Running, act.Duration)
			}
		case hasFunc(g.Stack, "main.run.func10.1"):
			short++
			if !g.Created || !g.Ended || !g.Ran {
				t.Errorf("short-lived g%d: %+v, want created, ran and ended", g.ID, g)
			}
		case hasFunc(g.Stack, "main.run.func8") || hasFunc(g.Stack, "main.run.func9"):
			pingers++
			if g.Blocks < 2 || g.LastReason == "" {
				t.Errorf("ping-pong g%d: blocks=%d reason=%q, want repeated blocking", g.ID, g.Blocks, g.LastReason)
			}
		}
	}
	if busy != 2 || short == 0 || pingers != 2 {
		t.Errorf("found %d busy workers, %d short-lived, %d ping-pong goroutines; want 2, >0, 2", busy, short, pingers)
	}
	if act.GC.Cycles < 1 || act.GC.STW.Count < 2 || act.GC.STW.Max <= 0 || act.GC.STW.Max > act.GC.STW.Total {
		t.Errorf("GC summary %+v, want the forced cycle's two stops", act.GC)
	}
}

func TestInvariants(t *testing.T) {
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			act := readFixture(t, name)
			if act.Truncated || act.Generations < 1 || act.Version == "" || act.WallStart.IsZero() {
				t.Errorf("header fields: %+v", act)
			}
			if err := checkInvariants(act); err != nil {
				t.Error(err)
			}
			checkWorkers(t, act)
		})
	}
}

// checkInvariants holds for every Activity, from any input.
func checkInvariants(a *Activity) error {
	if a.Duration < 0 || a.End < a.Start {
		return fmt.Errorf("window %d..%d, duration %v", a.Start, a.End, a.Duration)
	}
	if a.Truncated != (a.Problem != "") {
		return fmt.Errorf("truncated=%v but problem=%q", a.Truncated, a.Problem)
	}
	for i, g := range a.Goroutines {
		if i > 0 && a.Goroutines[i-1].ID >= g.ID {
			return fmt.Errorf("goroutines not sorted by unique ID at %d: %d, %d", i, a.Goroutines[i-1].ID, g.ID)
		}
		sum := g.Running + g.Runnable + g.Waiting + g.Syscall
		if g.Running < 0 || g.Runnable < 0 || g.Waiting < 0 || g.Syscall < 0 || sum > a.Duration {
			return fmt.Errorf("g%d: state times %v+%v+%v+%v exceed the %v window", g.ID, g.Running, g.Runnable, g.Waiting, g.Syscall, a.Duration)
		}
		if (g.StackSource == StackNone) != (len(g.Stack) == 0) {
			return fmt.Errorf("g%d: stack source %q with %d frames", g.ID, g.StackSource, len(g.Stack))
		}
		if g.Ended != (g.EndState == "") {
			return fmt.Errorf("g%d: ended=%v end state %q", g.ID, g.Ended, g.EndState)
		}
	}
	for _, p := range []Pauses{a.GC.STW, a.GC.OtherSTW} {
		if p.Count < 0 || p.Total < 0 || p.Max > p.Total || p.Count == 0 && p.Total != 0 {
			return fmt.Errorf("pauses %+v", p)
		}
	}
	return nil
}

func TestErrors(t *testing.T) {
	start, err := os.ReadFile("testdata/start.trace")
	if err != nil {
		t.Fatal(err)
	}
	header := func(v string) []byte { return []byte("go 1." + v + " trace\x00\x00\x00") }
	tests := []struct {
		name string
		in   []byte
		want error
		text string
	}{
		{"empty", nil, ErrNotTrace, "empty"},
		{"text", []byte("goroutine 1 [running]:\nmain.main()\n"), ErrNotTrace, `"goroutine 1 [run"`},
		{"pprof-gzip", []byte("\x1f\x8b\x08\x00\x00\x00\x00\x00"), ErrNotTrace, "not \"go 1.N trace\""},
		{"go1.5", header("5"), ErrUnsupportedVersion, "written by Go 1.5"},
		{"go1.10", header("10"), ErrUnsupportedVersion, "from Go 1.11 on"},
		{"go1.27", header("27"), ErrUnsupportedVersion, "newer than this gopulse reads"},
		{"go1.24-no-such-format", header("24"), ErrNotTrace, "no Go release writes"},
		{"header-cut", []byte("go 1.2"), ErrTruncated, "inside the trace header"},
		{"header-only", header("26"), ErrTruncated, "no events"},
		{"cut-in-first-generation", start[:len(start)/3], ErrTruncated, "before its first complete generation"},
		{"garbage-after-header", append(header("26"), bytes.Repeat([]byte{0xff}, 64)...), ErrCorrupt, "x/exp/trace rejects"},
		{"v1-garbage", append(header("21"), bytes.Repeat([]byte{0x07}, 64)...), nil, "Go 1.21"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			act, err := Goroutines(bytes.NewReader(tt.in))
			if err == nil {
				t.Fatalf("no error; got %+v", act)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %q does not wrap %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not mention %q", err, tt.text)
			}
		})
	}
}

// TestTruncated cuts a fixture at many points: every cut either fails with
// ErrTruncated (nothing complete yet) or returns the complete generations
// with Truncated set, and the whole file is not truncated.
func TestTruncated(t *testing.T) {
	data, err := os.ReadFile("testdata/start.trace")
	if err != nil {
		t.Fatal(err)
	}
	full := readFixture(t, "start")
	var partial int
	for n := headerLen; n <= len(data); n += 97 {
		act, err := Goroutines(bytes.NewReader(data[:n]))
		if err != nil {
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("cut at %d: %v, want ErrTruncated", n, err)
			}
			continue
		}
		partial++
		if !act.Truncated || act.Generations < 1 || act.Generations >= full.Generations {
			t.Fatalf("cut at %d of %d: truncated=%v generations=%d (full trace %d)", n, len(data), act.Truncated, act.Generations, full.Generations)
		}
		if err := checkInvariants(act); err != nil {
			t.Fatalf("cut at %d: %v", n, err)
		}
		if len(act.Goroutines) == 0 || act.Duration <= 0 || act.Duration > full.Duration {
			t.Fatalf("cut at %d: %d goroutines over %v", n, len(act.Goroutines), act.Duration)
		}
	}
	if partial == 0 {
		t.Error("no cut returned a partial result; the fixture needs two generations")
	}
	if full.Truncated {
		t.Errorf("full trace reported truncated: %s", full.Problem)
	}
}

func TestLongestWaiting(t *testing.T) {
	a := &Activity{Goroutines: []Goroutine{
		{ID: 1, Waiting: 5}, {ID: 2, Waiting: 9}, {ID: 3}, {ID: 4, Waiting: 9}, {ID: 5, Waiting: 1},
	}}
	var got []int64
	for _, g := range a.LongestWaiting(3) {
		got = append(got, g.ID)
	}
	if fmt.Sprint(got) != "[2 4 1]" {
		t.Errorf("LongestWaiting(3) = %v, want [2 4 1]", got)
	}
	if n := len(a.LongestWaiting(10)); n != 4 {
		t.Errorf("LongestWaiting(10) returned %d, want the 4 that waited", n)
	}
	if _, ok := a.Goroutine(3); !ok {
		t.Error("Goroutine(3) not found")
	}
	if _, ok := a.Goroutine(6); ok {
		t.Error("Goroutine(6) found")
	}
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func BenchmarkGoroutines(b *testing.B) {
	data, err := os.ReadFile("testdata/start.trace")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Goroutines(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkXTraceOnly reads the same trace with golang.org/x/exp/trace
// alone, discarding events: the floor BenchmarkGoroutines is compared with.
func BenchmarkXTraceOnly(b *testing.B) {
	data, err := os.ReadFile("testdata/start.trace")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r, err := xtrace.NewReader(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := r.ReadEvent(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}
