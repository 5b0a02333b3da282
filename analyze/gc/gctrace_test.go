package gc

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func TestParseGCLine(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    Cycle
		wantErr string
	}{
		{
			name: "go1.19+",
			line: "gc 4 @0.563s 48%: 0.37+303+0.10 ms clock, 0.75+191/68/121+0.20 ms cpu, 54->61->38 MB, 64 MB goal, 1 MB stacks, 2 MB globals, 2 P",
			want: Cycle{N: 4, Start: 563 * time.Millisecond, CumulativeCPUPercent: 48,
				Pause: 470 * time.Microsecond, Mark: 303 * time.Millisecond,
				STWCPU: 950 * time.Microsecond, AssistCPU: 191 * time.Millisecond, BackgroundCPU: 68 * time.Millisecond, IdleCPU: 121 * time.Millisecond,
				HeapStart: 54 << 20, HeapEnd: 61 << 20, HeapLive: 38 << 20, HeapGoal: 64 << 20, Stacks: 1 << 20, Globals: 2 << 20, Procs: 2},
		},
		{
			name: "forced",
			line: "gc 12 @10.001s 0%: 0.011+1.2+0.003 ms clock, 0.09+0/0.5/0.1+0.02 ms cpu, 4->4->0 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 8 P (forced)",
			want: Cycle{N: 12, Start: 10001 * time.Millisecond, Pause: 14 * time.Microsecond, Mark: 1200 * time.Microsecond,
				STWCPU: 110 * time.Microsecond, BackgroundCPU: 500 * time.Microsecond, IdleCPU: 100 * time.Microsecond,
				HeapStart: 4 << 20, HeapEnd: 4 << 20, HeapGoal: 4 << 20, Procs: 8, Forced: true},
		},
		{
			name: "go1.18 and earlier: no stacks and globals",
			line: "gc 1 @0.004s 3%: 0.010+0.52+0.002 ms clock, 0.040+0.11/0.27/0.59+0.010 ms cpu, 4->4->0 MB, 5 MB goal, 4 P",
			want: Cycle{N: 1, Start: 4 * time.Millisecond, CumulativeCPUPercent: 3, Pause: 12 * time.Microsecond, Mark: 520 * time.Microsecond,
				STWCPU: 50 * time.Microsecond, AssistCPU: 110 * time.Microsecond, BackgroundCPU: 270 * time.Microsecond, IdleCPU: 590 * time.Microsecond,
				HeapStart: 4 << 20, HeapEnd: 4 << 20, HeapGoal: 5 << 20, Procs: 4},
		},
		{
			name: "go1.26 goroutine leak check",
			line: "gc 3 @1.000s 1% (checking for goroutine leaks): 0.1+2+0.1 ms clock, 0.2+0/1/0+0.2 ms cpu, 8->8->2 MB, 9 MB goal, 0 MB stacks, 0 MB globals, 2 P (forced)",
			want: Cycle{N: 3, Start: time.Second, CumulativeCPUPercent: 1, LeakCheck: true, Forced: true, Pause: 200 * time.Microsecond, Mark: 2 * time.Millisecond,
				STWCPU: 400 * time.Microsecond, BackgroundCPU: time.Millisecond, HeapStart: 8 << 20, HeapEnd: 8 << 20, HeapLive: 2 << 20, HeapGoal: 9 << 20, Procs: 2},
		},
		{name: "truncated", line: "gc 4 @0.563s 48%: 0.37+303+0.10 ms clock, 0.75+191/68/1", wantErr: "truncated"},
		{name: "truncated in a literal", line: "gc 4 @0.563s 48%: 0.37+303+0.10 ms clo", wantErr: "truncated"},
		{name: "unknown trailer", line: "gc 4 @0.563s 48%: 0.37+303+0.10 ms clock, 0.75+191/68/121+0.20 ms cpu, 54->61->38 MB, 64 MB goal, 0 MB stacks, 0 MB globals, 2 P (why)", wantErr: "unknown format"},
		{name: "unknown field", line: "gc 4 @0.563s 48%: 0.37+303+0.10 ms clock, 0.75+191/68/121+0.20 ms cpu, 54->61->38 MB, 64 MB goal, 0 MB stacks, 0 MB globals, 0 MB arenas, 2 P", wantErr: "unknown format"},
		{name: "zero P", line: "gc 1 @0.004s 3%: 0.010+0.52+0.002 ms clock, 0.040+0.11/0.27/0.59+0.010 ms cpu, 4->4->0 MB, 5 MB goal, 0 P", wantErr: "GOMAXPROCS is 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseGCLine([]byte(tt.line))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

const realLine = "gc 5 @0.917s 47%: 0.41+234+0.008 ms clock, 0.83+124/121/133+0.016 ms cpu, 66->79->44 MB, 77 MB goal, 0 MB stacks, 0 MB globals, 2 P"

func TestScanTrace(t *testing.T) {
	tests := []struct {
		name                    string
		in                      string
		cycles, app, problems   int
		pass                    string
		periodic, forcedGCLines int
	}{
		{name: "plain", in: realLine + "\n", cycles: 1},
		{name: "no final newline", in: realLine, cycles: 1},
		{name: "CRLF", in: realLine + "\r\n", cycles: 1},
		{name: "app output passes through", in: "hello\n" + realLine + "\nworld\n", cycles: 1, app: 2, pass: "hello\nworld\n"},
		{name: "log prefix", in: "2026-11-24T02:00:00Z stderr F " + realLine + "\n", cycles: 1},
		{name: "app text without newline before", in: "partial output" + realLine + "\n", cycles: 1},
		{
			name:     "interleaved mid-line",
			in:       realLine[:40] + "app says hi\n" + "more app " + realLine[40:] + "\n",
			problems: 2,
		},
		{name: "truncated last line", in: realLine + "\n" + realLine[:70], cycles: 1, problems: 1},
		{name: "sysmon forced GC", in: "GC forced\n" + realLine + "\n", cycles: 1, periodic: 1, forcedGCLines: 1},
		{name: "scavenger lines are recognised", in: "scav 0 KiB work (bg), 0 KiB work (eager), 1024 KiB now, 99% util\n" + realLine + "\n", cycles: 1},
		{name: "gc word in app text", in: "gc is fine\ngc 5 @ not a line\n", app: 1, problems: 1, pass: "gc is fine\n"},
		{name: "long app line", in: strings.Repeat("x", 200<<10) + "\n" + realLine + "\n", cycles: 1, app: 1, pass: strings.Repeat("x", 200<<10) + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pass bytes.Buffer
			var got []Cycle
			st, err := ScanTrace(strings.NewReader(tt.in), &pass, func(c Cycle) { got = append(got, c) })
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.cycles || st.AppLines != tt.app || len(st.Problems) != tt.problems {
				t.Fatalf("cycles %d app %d problems %v; want %d %d %d", len(got), st.AppLines, st.Problems, tt.cycles, tt.app, tt.problems)
			}
			if pass.String() != tt.pass {
				t.Errorf("passed through %q, want %q", pass.String(), tt.pass)
			}
			if tt.cycles > 0 && got[0].N != 5 {
				t.Errorf("cycle N = %d", got[0].N)
			}
			periodic := 0
			for _, c := range got {
				if c.Periodic {
					periodic++
				}
			}
			if periodic != tt.periodic || st.ForcedGC != tt.forcedGCLines {
				t.Errorf("periodic %d, GC forced lines %d", periodic, st.ForcedGC)
			}
			// Every line is accounted for exactly once.
			if acc := st.Cycles + st.AppLines + st.ScavLines + st.ForcedGC + len(st.Problems); acc != st.Lines {
				t.Errorf("lines %d, accounted %d (%+v)", st.Lines, acc, st)
			}
		})
	}
}

func TestParseTraceEmpty(t *testing.T) {
	_, err := ParseTrace(strings.NewReader("just an app\n"), nil)
	if err != ErrNoCycles {
		t.Fatalf("err = %v, want ErrNoCycles", err)
	}
	_, err = ParseTrace(strings.NewReader(realLine[:50]+"\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("err = %v, want the truncated line quoted", err)
	}
}

// TestGolden parses the real captures of internal/testprog/gcchurn and
// compares parse statistics and the summary with the golden files.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/real/*.txt")
	if len(files) == 0 {
		t.Fatal("no captures in testdata/real")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var pass bytes.Buffer
			tr, err := ParseTrace(bytes.NewReader(in), &pass)
			if err != nil {
				t.Fatal(err)
			}
			// Every line of a real log is parsed or reported.
			st := tr.Stats
			if len(st.Problems) != 0 {
				t.Errorf("real capture has unparsed lines: %v", st.Problems)
			}
			if n := bytes.Count(in, []byte("\n")); st.Lines != n {
				t.Errorf("saw %d lines, file has %d", st.Lines, n)
			}
			set := Settings{}
			d, err := FromTrace(tr, set)
			if err != nil {
				t.Fatal(err)
			}
			out := struct {
				Stats   TraceStats
				Passed  string
				Summary Summary
			}{st, pass.String(), Summarize(d)}
			got, _ := json.MarshalIndent(out, "", "  ")
			checkGolden(t, strings.TrimSuffix(f, ".txt")+".golden", got)
		})
	}
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update if intended)\n got: %s\nwant: %s", path, got, want)
	}
}

func BenchmarkScanTrace(b *testing.B) {
	// Real lines of a capture, repeated to ~4 MiB, with a little app output.
	in, err := os.ReadFile("testdata/real/steady.txt")
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	for buf.Len() < 4<<20 {
		buf.Write(in)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	n := 0
	cpu0 := cpuTime()
	for b.Loop() {
		st, err := ScanTrace(bytes.NewReader(data), nil, func(Cycle) { n++ })
		if err != nil || st.Cycles == 0 {
			b.Fatal(err, st.Cycles)
		}
	}
	// On a shared machine wall time undercounts; CPU time does not.
	if cpu := (cpuTime() - cpu0).Seconds(); cpu > 0 {
		b.ReportMetric(float64(b.N)*float64(len(data))/1e6/cpu, "MB/cpu-s")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
