package goroutine

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"runtime/pprof"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestSniff(t *testing.T) {
	gz := func(b []byte) []byte {
		var w bytes.Buffer
		zw := gzip.NewWriter(&w)
		zw.Write(b)
		zw.Close()
		return w.Bytes()
	}
	text := mustRead(t, "testdata/real/goroutine.debug2.txt")
	for _, tc := range []struct {
		name string
		in   []byte
		want Format
	}{
		{"debug2", text, FormatText},
		{"debug2 gzipped", gz(text), FormatText},
		{"debug1", mustRead(t, "testdata/real/goroutine.debug1.txt"), FormatDebug1},
		{"leak debug1", mustRead(t, "testdata/real/goroutineleak.debug1.txt"), FormatDebug1},
		{"proto gz", mustRead(t, "testdata/real/goroutine.pb.gz"), FormatProto},
		{"proto raw", mustRead(t, "testdata/real/goroutine.pb"), FormatProto},
		{"panic", mustRead(t, "testdata/real/panic.txt"), FormatText},
		{"sigquit", mustRead(t, "testdata/real/sigquit.txt"), FormatText},
		{"prefixed log", mustRead(t, "testdata/real/log-prefixed.txt"), FormatText},
		{"empty", nil, FormatUnknown},
		{"plain text", []byte("hello world\nno dump here\n"), FormatUnknown},
		{"binary", []byte{0xff, 0xfe, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05}, FormatUnknown},
		{"header mention", []byte("the goroutine 5 is fine\n"), FormatUnknown},
	} {
		if got := Sniff(tc.in[:min(len(tc.in), 4096)]); got != tc.want {
			t.Errorf("%s: Sniff = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestParseTextEdges covers syntax the fixture program cannot produce on
// demand: wait durations, synctest annotations, cut dumps, CRLF, prefixes.
func TestParseTextEdges(t *testing.T) {
	const frame = "main.f(0x1)\n\t/src/main.go:10 +0x1d\n"
	for _, tc := range []struct {
		name      string
		in        string
		opts      Options
		n, groups int
		state     string
		wait      time.Duration
		locked    int
		frames    int
		truncated string // substring of the reason
		skipped   int
		labels    map[string]string
	}{
		{name: "wait and lock", in: "goroutine 7 [chan receive, 12 minutes, locked to thread]:\n" + frame,
			n: 1, groups: 1, state: "chan receive", wait: 12 * time.Minute, locked: 1, frames: 1},
		{name: "nil chan", in: "goroutine 7 [chan receive (nil chan), 3 minutes]:\n" + frame,
			n: 1, groups: 1, state: "chan receive (nil chan)", wait: 3 * time.Minute, frames: 1},
		{name: "durable bubble", in: "goroutine 9 [chan receive (durable), synctest bubble 4]:\n" + frame,
			n: 1, groups: 1, state: "chan receive (durable)", frames: 1},
		{name: "leaked scan", in: "goroutine 9 [select (leaked) (scan), 2 minutes]:\n" + frame,
			n: 1, groups: 1, state: "select", wait: 2 * time.Minute, frames: 1},
		{name: "gp fields", in: "goroutine 1 gp=0xc000002380 m=0 mp=0x5f3b20 [running]:\nmain.main()\n\t/src/main.go:5 +0x1d fp=0xc000 sp=0xc000 pc=0x4\n",
			n: 1, groups: 1, state: "running", frames: 1},
		{name: "m=nil", in: "goroutine 2 gp=0xc000002380 m=nil [force gc (idle)]:\n" + frame,
			n: 1, groups: 1, state: "force gc (idle)", frames: 1},
		{name: "header labels", in: "goroutine 3 [select labels:{\"a\": \"x]:y\", \"b\": \"\\u00e9\"}]:\n" + frame,
			n: 1, groups: 1, state: "select", frames: 1, labels: map[string]string{"a": "x]:y", "b": "é"}},
		{name: "CRLF", in: strings.ReplaceAll("goroutine 1 [sleep]:\n"+frame+"\ngoroutine 2 [sleep]:\n"+frame, "\n", "\r\n"),
			n: 2, groups: 1, state: "sleep", frames: 1},
		{name: "no offset", in: "goroutine 1 [sleep]:\nmain.f(...)\n\t/src/main.go:10\nmain.g()\n\t/src/main.go:20 +0x1\n",
			n: 1, groups: 1, state: "sleep", frames: 2},
		{name: "other thread", in: "goroutine 5 [running]:\n\tgoroutine running on other thread; stack unavailable\ncreated by main.main in goroutine 1\n\t/src/main.go:3 +0x1\n",
			n: 1, groups: 1, state: "running", frames: 0},
		{name: "ancestors", in: "goroutine 5 [sleep]:\n" + frame + "[originating from goroutine 1]:\nmain.main(...)\n\t/src/main.go:3\n\ngoroutine 6 [sleep]:\n" + frame,
			n: 2, groups: 1, state: "sleep", frames: 1},
		{name: "exit status after", in: "panic: boom\n\ngoroutine 1 [running]:\n" + frame + "exit status 2\n",
			n: 1, groups: 1, state: "running", frames: 1, skipped: 2},
		{name: "goroutine 0 skipped", in: "SIGQUIT: quit\nPC=0x1 m=0 sigcode=0\n\ngoroutine 0 gp=0x1 m=0 mp=0x2 [idle]:\nruntime.futex()\n\t/a.s:1 +0x1\n\ngoroutine 1 [sleep]:\n" + frame + "\nrax    0x0\nrbx    0x1\n",
			n: 1, groups: 1, state: "sleep", frames: 1, skipped: 4},
		{name: "constant prefix", in: "app | starting\napp | goroutine 1 [sleep]:\napp | " + strings.ReplaceAll(frame, "\n\t", "\napp | \t") + "app | \napp | goroutine 2 [sleep]:\napp | " + strings.ReplaceAll(frame, "\n\t", "\napp | \t") + "app | done\n",
			n: 2, groups: 1, state: "sleep", frames: 1, skipped: 2},
		{name: "cut in header", in: "goroutine 1 [sleep]:\n" + frame + "\ngoroutine 2 [sle",
			n: 1, groups: 1, state: "sleep", frames: 1, truncated: "inside a goroutine header"},
		{name: "cut after func line", in: "goroutine 1 [sleep]:\n" + frame + "\ngoroutine 2 [sleep]:\nmain.f(0x1)\n",
			n: 1, groups: 1, state: "sleep", frames: 1, truncated: "no file:line"},
		{name: "cut in file line", in: "goroutine 1 [sleep]:\n" + frame + "\ngoroutine 2 [sleep]:\nmain.f(0x1)\n\t/src/ma",
			n: 1, groups: 1, state: "sleep", frames: 1, truncated: "last line is cut"},
		{name: "cut after header", in: "goroutine 1 [sleep]:\n" + frame + "\ngoroutine 2 [sleep]:\n",
			n: 1, groups: 1, state: "sleep", frames: 1, truncated: "no stack"},
		{name: "no trailing newline: kept, flagged as possibly cut", in: "goroutine 1 [sleep]:\nmain.f(0x1)\n\t/src/main.go:10 +0x1d",
			n: 1, groups: 1, state: "sleep", frames: 1, truncated: "does not end with a newline"},
		{name: "huge line skipped", in: "goroutine 1 [sleep]:\n" + frame + "\n" + strings.Repeat("x", 3<<20) + "\ngoroutine 2 [sleep]:\n" + frame,
			n: 2, groups: 1, state: "sleep", frames: 1, skipped: 1},
		{name: "elided", in: "goroutine 1 [sleep]:\n" + frame + "...53 frames elided...\n" + frame,
			n: 1, groups: 1, state: "sleep", frames: 2},
		{name: "keep ids", in: "goroutine 3 [sleep]:\n" + frame + "\ngoroutine 1 [sleep]:\n" + frame + "\ngoroutine 2 [sleep]:\n" + frame, opts: Options{KeepIDs: 2},
			n: 3, groups: 1, state: "sleep", frames: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(strings.NewReader(tc.in), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, s)
			if s.Goroutines != tc.n || len(s.Groups) != tc.groups {
				t.Fatalf("goroutines=%d groups=%d, want %d %d\n%s", s.Goroutines, len(s.Groups), tc.n, tc.groups, renderSnapshot(s))
			}
			g := s.Groups[0]
			if g.State != tc.state || g.WaitMax != tc.wait || g.Locked != tc.locked || len(g.Frames) != tc.frames {
				t.Fatalf("got %s", renderSnapshot(s))
			}
			if tc.truncated == "" && s.Truncated || tc.truncated != "" && !strings.Contains(s.TruncatedReason, tc.truncated) {
				t.Fatalf("truncated=%v reason %q, want %q", s.Truncated, s.TruncatedReason, tc.truncated)
			}
			if s.Skipped != tc.skipped {
				t.Fatalf("skipped %d, want %d", s.Skipped, tc.skipped)
			}
			for k, v := range tc.labels {
				if g.Labels[k] != v {
					t.Fatalf("labels %v, want %v", g.Labels, tc.labels)
				}
			}
			if tc.opts.KeepIDs > 0 && (len(g.IDs) != 2 || g.IDs[0] != 1 || g.IDs[1] != 2) {
				t.Fatalf("IDs %v, want [1 2]", g.IDs)
			}
		})
	}
}

func TestSimilarity(t *testing.T) {
	in := "goroutine 1 [sleep]:\nmain.f(0x1)\n\t/src/main.go:10 +0x1\n\n" +
		"goroutine 2 [sleep]:\nmain.f(0x2)\n\t/src/main.go:10 +0x1\n\n" +
		"goroutine 3 [sleep]:\nmain.f(0x1)\n\t/src/main.go:11 +0x1\n\n" +
		"goroutine 4 [select]:\nmain.f(0x1)\n\t/src/main.go:10 +0x1\n"
	for _, tc := range []struct {
		sim    Similarity
		groups int
	}{{SameLines, 3}, {SameFuncs, 2}, {ExactArgs, 4}} {
		s, err := Parse(strings.NewReader(in), Options{Similarity: tc.sim})
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, s)
		if len(s.Groups) != tc.groups {
			t.Errorf("similarity %d: %d groups, want %d\n%s", tc.sim, len(s.Groups), tc.groups, renderSnapshot(s))
		}
	}
	// Keys are a function of content: the same stack in another dump, at
	// another position and with other IDs, has the same key.
	a, _ := Parse(strings.NewReader(in), Options{})
	b, _ := Parse(strings.NewReader("log line\ngoroutine 99 [select]:\nmain.f(0xdead)\n\t/src/main.go:10 +0x5\n"), Options{})
	if b.Groups[0].Key != keyOf(a, "select") {
		t.Errorf("key of the same stack differs across dumps: %s vs %s", b.Groups[0].Key, keyOf(a, "select"))
	}
}

func keyOf(s *Snapshot, state string) string {
	for _, g := range s.Groups {
		if g.State == state {
			return g.Key
		}
	}
	return ""
}

// TestFormatsAgree parses the same process's goroutines from debug=2 text
// and from the protobuf profile: states and frames of the stacks must match
// (the runtime's elision of deep stacks aside).
func TestFormatsAgree(t *testing.T) {
	text, err := Parse(bytes.NewReader(mustRead(t, "testdata/real/goroutine.debug2.txt")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	proto, err := Parse(bytes.NewReader(mustRead(t, "testdata/real/goroutine.pb.gz")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	sig := func(g *Group) string {
		var b strings.Builder
		b.WriteString(g.State)
		for _, f := range g.Frames {
			b.WriteString("|" + f.Func + ":" + f.File)
		}
		return b.String()
	}
	counts := map[string]int{}
	for _, g := range proto.Groups {
		counts[sig(g)] += g.Count
	}
	matched := 0
	for _, g := range text.Groups {
		if g.Elided || g.State == "running" {
			continue
		}
		if counts[sig(g)] == 0 {
			t.Errorf("text group not in proto: %s", sig(g))
			continue
		}
		matched++
	}
	if matched < 15 {
		t.Errorf("only %d groups matched", matched)
	}
}

func TestStateFromFrames(t *testing.T) {
	f := func(names ...string) []Frame {
		var fr []Frame
		for _, n := range names {
			fr = append(fr, Frame{Func: n})
		}
		return fr
	}
	for _, tc := range []struct {
		frames []Frame
		want   string
	}{
		{f("runtime.gopark", "runtime.chanrecv", "runtime.chanrecv1", "main.f"), "chan receive"},
		{f("runtime.gopark", "runtime.chansend", "runtime.chansend1", "main.f"), "chan send"},
		{f("runtime.gopark", "runtime.selectgo", "main.f"), "select"},
		{f("runtime.gopark", "runtime.block", "main.f"), "select (no cases)"},
		{f("runtime.gopark", "runtime.goparkunlock", "runtime.semacquire1", "internal/sync.runtime_SemacquireMutex", "internal/sync.(*Mutex).lockSlow"), "sync.Mutex.Lock"},
		{f("runtime.gopark", "runtime.goparkunlock", "runtime.semacquire1", "sync.runtime_SemacquireRWMutexR"), "sync.RWMutex.RLock"},
		{f("runtime.gopark", "runtime.goparkunlock", "runtime.semacquire1", "sync.runtime_SemacquireRWMutex"), "sync.RWMutex.Lock"},
		{f("runtime.gopark", "runtime.goparkunlock", "runtime.semacquire1", "sync.runtime_SemacquireWaitGroup"), "sync.WaitGroup.Wait"},
		{f("runtime.gopark", "runtime.goparkunlock", "sync.runtime_notifyListWait", "sync.(*Cond).Wait"), "sync.Cond.Wait"},
		{f("runtime.gopark", "runtime.netpollblock", "internal/poll.runtime_pollWait"), "IO wait"},
		{f("runtime.gopark", "time.Sleep", "main.f"), "sleep"},
		{f("sync.runtime_notifyListWait", "sync.(*Cond).Wait"), "sync.Cond.Wait"}, // debug=1 hides the runtime frames
		{f("internal/poll.runtime_pollWait", "internal/poll.(*pollDesc).wait"), "IO wait"},
		{f("runtime.gopark", "main.f"), "waiting"},
		{f("main.f"), ""},
		{nil, ""},
	} {
		if got := StateFromFrames(tc.frames); got != tc.want {
			t.Errorf("StateFromFrames(%v) = %q, want %q", tc.frames, got, tc.want)
		}
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   io.Reader
		opts Options
		want error
		msg  string
	}{
		{"empty", strings.NewReader(""), Options{}, ErrNotDump, ""},
		{"log only", strings.NewReader("just\nsome log\n"), Options{}, ErrNotDump, ""},
		{"binary", bytes.NewReader(bytes.Repeat([]byte{0, 0xff, 0x13, 0x80}, 100000)), Options{}, ErrNotDump, ""},
		{"too large", io.LimitReader(zeroReader{}, 2<<30), Options{MaxBytes: 1 << 20}, ErrTooLarge, "MaxBytes"},
		{"too many stacks", strings.NewReader("goroutine 1 [sleep]:\nmain.a()\n\t/a.go:1 +0x1\n\ngoroutine 2 [sleep]:\nmain.b()\n\t/a.go:1 +0x1\n"), Options{MaxGroups: 1}, ErrTooManyStacks, "line 7"},
		{"bad debug1 count", strings.NewReader("goroutine profile: total 1\nx1 @ 0x1\n#\t0x1\tmain.f+0x1\t/a.go:1\n"), Options{}, nil, ""},
		{"bad debug1 frame", strings.NewReader("goroutine profile: total 1\n1 @ 0x1\n#\tzz\tmain.f+0x1\t/a.go:1\n"), Options{}, nil, "line 3"},
		{"truncated proto", bytes.NewReader(mustRead(t, "testdata/real/goroutine.pb")[:3000]), Options{}, nil, "protobuf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.in, tc.opts)
			if tc.want == nil && tc.msg == "" {
				return // only: must not panic
			}
			if err == nil {
				t.Fatal("no error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestStackCap builds a dump of exactly 64 MiB the way runtime/pprof cuts
// it and checks the reason names the cap.
func TestStackCap(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 64 MiB")
	}
	const g = "goroutine 12345 [chan receive]:\nmain.worker(0xc000123456)\n\t/src/app/worker.go:42 +0x1d\ncreated by main.start in goroutine 1\n\t/src/app/main.go:9 +0x7c\n\n"
	var b bytes.Buffer
	for b.Len()+len(g) <= stackCap {
		b.WriteString(g)
	}
	b.WriteString(g[:stackCap-b.Len()])
	s, err := Parse(bytes.NewReader(b.Bytes()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Truncated || !strings.Contains(s.TruncatedReason, "64 MB cap") {
		t.Fatalf("truncated=%v reason %q", s.Truncated, s.TruncatedReason)
	}
	checkInvariants(t, s)
}

// TestSynctestDump captures real output of a goroutine inside a synctest
// bubble: the header carries "(durable)" and ", synctest bubble N".
func TestSynctestDump(t *testing.T) {
	defer goleak.VerifyNone(t)
	var dump []byte
	synctest.Test(t, func(t *testing.T) {
		ch := make(chan int)
		done := make(chan struct{})
		go func() { <-ch; close(done) }()
		synctest.Wait()
		buf := make([]byte, 1<<20)
		dump = buf[:runtimeStack(buf)]
		close(ch)
		<-done
	})
	if !bytes.Contains(dump, []byte("synctest bubble")) {
		t.Fatalf("no bubble annotation in:\n%s", dump)
	}
	s, err := Parse(bytes.NewReader(dump), Options{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, g := range s.Groups {
		if strings.Contains(g.State, "bubble") || strings.Contains(g.State, ",") {
			t.Errorf("state %q carries an annotation", g.State)
		}
		if g.State == "chan receive (durable)" {
			found = true
		}
	}
	if !found {
		t.Errorf("no \"chan receive (durable)\" group in\n%s", renderSnapshot(s))
	}
}

func gzipBytes(b []byte) []byte {
	var w bytes.Buffer
	zw := gzip.NewWriter(&w)
	zw.Write(b)
	zw.Close()
	return w.Bytes()
}

// TestGzippedText: a debug=2 dump saved with gzip parses like the plain one.
func TestGzippedText(t *testing.T) {
	plain := mustRead(t, "testdata/real/goroutine.debug2.txt")
	a, err := Parse(bytes.NewReader(plain), Options{})
	if err != nil {
		t.Fatal(err)
	}
	z := gzipBytes(plain)
	b, err := Parse(bytes.NewReader(z), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if b.Format != FormatText || b.Bytes != int64(len(z)) {
		t.Fatalf("format %v bytes %d, want text %d", b.Format, b.Bytes, len(z))
	}
	b.Bytes = a.Bytes
	if renderSnapshot(a) != renderSnapshot(b) {
		t.Fatal("gzipped text parsed differently")
	}
}

// TestGzipBomb: MaxBytes bounds the decompressed size as well.
func TestGzipBomb(t *testing.T) {
	z := gzipBytes(bytes.Repeat([]byte("goroutine 1 [sleep]:\nmain.f()\n\t/a.go:1 +0x1\n\n"), 1<<17))
	_, err := Parse(bytes.NewReader(z), Options{MaxBytes: 1 << 20})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge (compressed %d bytes)", err, len(z))
	}
}

// TestNotGoroutineProfile: a real heap profile is a protobuf profile but
// not a goroutine dump.
func TestNotGoroutineProfile(t *testing.T) {
	var b bytes.Buffer
	if err := pprof.Lookup("heap").WriteTo(&b, 0); err != nil {
		t.Fatal(err)
	}
	_, err := Parse(&b, Options{})
	if !errors.Is(err, ErrNotDump) || !strings.Contains(err.Error(), "alloc_objects") {
		t.Fatalf("err = %v, want ErrNotDump naming the heap profile", err)
	}
}

// TestDebug1InLog: a debug=1 profile pasted into a log behind a prefix.
func TestDebug1InLog(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("2026/11/24 02:07:00 collecting\n")
	for _, l := range strings.SplitAfter(string(mustRead(t, "testdata/real/goroutine.debug1.txt")), "\n") {
		if l != "" {
			b.WriteString("web-1  | " + l)
		}
	}
	b.WriteString("2026/11/24 02:07:01 done\n")
	s, err := Parse(&b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	direct, _ := Parse(bytes.NewReader(mustRead(t, "testdata/real/goroutine.debug1.txt")), Options{})
	if s.Format != FormatDebug1 || s.Goroutines != direct.Goroutines || len(s.Groups) != len(direct.Groups) || s.Skipped != 2 {
		t.Fatalf("format %v goroutines %d groups %d skipped %d; direct: %d %d", s.Format, s.Goroutines, len(s.Groups), s.Skipped, direct.Goroutines, len(direct.Groups))
	}
}

// TestScanReuse: Scan hands out one reused Goroutine, and an error from fn
// stops the scan and comes back wrapped with the line.
func TestScanReuse(t *testing.T) {
	data := mustRead(t, "testdata/real/goroutine.debug2.txt")
	var first *Goroutine
	calls := 0
	stop := errors.New("stop here")
	info, err := Scan(bytes.NewReader(data), Options{}, func(g *Goroutine) error {
		calls++
		if first == nil {
			first = g
		} else if g != first {
			t.Fatal("Goroutine not reused")
		}
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || !strings.Contains(err.Error(), "line ") {
		t.Fatalf("err = %v", err)
	}
	if info.Format != FormatText || calls != 3 {
		t.Fatalf("info %+v calls %d", info, calls)
	}
}

// TestLeakedMark: goroutines the goroutineleak profile proved unreachable
// carry "(leaked)" in later dumps; the mark is counted, not kept in State.
func TestLeakedMark(t *testing.T) {
	s, err := Parse(bytes.NewReader(mustRead(t, "testdata/real/goroutine.afterleak.debug2.txt")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	leaked := 0
	for _, g := range s.Groups {
		leaked += g.Leaked
		if strings.Contains(g.State, "leaked") {
			t.Fatalf("state %q keeps the mark", g.State)
		}
	}
	lp, err := Parse(bytes.NewReader(mustRead(t, "testdata/real/goroutineleak.pb.gz")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if leaked == 0 || leaked != lp.Goroutines {
		t.Fatalf("%d goroutines marked leaked, the leak profile has %d", leaked, lp.Goroutines)
	}
}

func TestMatchPrefix(t *testing.T) {
	for _, tc := range []struct {
		p, line string
		n       int
		ok      bool
	}{
		{"app | ", "app | goroutine 1", 6, true},
		{"app | ", "db  | goroutine 1", 0, false},
		{"2026-11-24T02:07:00.000137Z ", "2026-11-24T02:07:00.0001Z \tmain.go:1", 26, true},
		{"2026-11-24T02:07:00.5Z ", "2026-11-24T02:07:01.123456789Z x", 31, true},
		{"[pid 12] ", "[pid 12345] x", 12, true},
		{"t=12", "t=9934 @ 0x1", 4, true}, // a final digit run keeps its width
		{"t=12", "t=9", 0, false},
		{"t=12 ", "t=x ", 0, false},
	} {
		n, ok := matchPrefix([]byte(tc.p), []byte(tc.line))
		if n != tc.n || ok != tc.ok {
			t.Errorf("matchPrefix(%q, %q) = %d %v, want %d %v", tc.p, tc.line, n, ok, tc.n, tc.ok)
		}
	}
}
