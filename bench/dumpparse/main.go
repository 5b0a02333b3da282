// Command dumpparse measures goroutine-dump parsing and grouping: gopulse's
// analyze/goroutine.Parse against panicparse v2 (ScanSnapshot with
// DefaultOpts, then Aggregate(AnyPointer)), in one run, on the same file.
//
//	go run ./bench/dumpparse                  # generates a 100k-goroutine dump first
//	go run ./bench/dumpparse -n 1000000 -pp-timeout 5m
//	go run ./bench/dumpparse -file dump.txt -proto dump.pb.gz
//
// Every measured parse runs in a fresh child process (this binary re-executed
// with -worker), so one parser's heap never inflates the other's, and a
// panicparse run past -pp-timeout can be killed and reported as "> T".
// Runs of the two parsers alternate. Per run the child reports wall time,
// bytes allocated (/gc/heap/allocs:bytes delta), peak heap (the maximum of
// /memory/classes/heap/objects:bytes sampled every millisecond, minus the
// value after a forced GC before the parse) and the number of groups.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "dumpparse:", err)
		os.Exit(1)
	}
}

// parsers are the measured parsers by worker name. Each parses the file
// completely (grouping included) and returns the groups and goroutines found.
// gopulse.go adds "gopulse".
var parsers = map[string]func(f *os.File) (groups, goroutines int, err error){
	"panicparse": parsePanicparse,
}

type config struct {
	n          int
	file       string
	proto      string
	debug1     string
	dir        string
	runs       int
	ppRuns     int
	ppTimeout  time.Duration
	runTimeout time.Duration
	profileDir string
	ppMaxHeap  uint64
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dumpparse", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	fs.IntVar(&c.n, "n", 100000, "goroutines in the generated dump (ignored with -file)")
	fs.StringVar(&c.file, "file", "", "debug=2 text dump to parse (default: generate one with internal/testprog/manygoroutines)")
	fs.StringVar(&c.proto, "proto", "", "pprof goroutine profile for our parser (default: the generated one beside -file's dump)")
	fs.StringVar(&c.debug1, "debug1", "", "debug=1 text dump for our parser (default: the generated one)")
	fs.StringVar(&c.dir, "dir", filepath.Join(os.TempDir(), "gopulse-dumps"), "where generated dumps are cached")
	fs.IntVar(&c.runs, "runs", 5, "runs of our parser per input")
	fs.IntVar(&c.ppRuns, "pp-runs", 3, "runs of panicparse (0 skips it)")
	fs.DurationVar(&c.ppTimeout, "pp-timeout", 10*time.Minute, "kill a panicparse run after this long and report > timeout")
	fs.DurationVar(&c.runTimeout, "timeout", 10*time.Minute, "kill one of our runs after this long")
	ppMaxHeapMB := fs.Uint64("pp-max-heap", 6000, "stop a panicparse run whose heap passes this many MB (it needs ~25× the file size)")
	fs.StringVar(&c.profileDir, "profile", "", "write CPU and allocation profiles of one extra run of our parser into this directory")
	worker := fs.String("worker", "", "internal: parse -file once with this parser and print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c.ppMaxHeap = *ppMaxHeapMB * 1e6
	if *worker != "" {
		return runWorker(*worker, c.file, c.profileDir, c.ppMaxHeap, stdout)
	}
	if c.file == "" {
		var err error
		if c.file, c.proto, c.debug1, err = generate(ctx, c.n, c.dir, stderr); err != nil {
			return err
		}
	}
	return compare(ctx, c, stdout, stderr)
}

// generate returns the dumps of internal/testprog/manygoroutines for n
// goroutines, running it when dir holds none yet.
func generate(ctx context.Context, n int, dir string, stderr io.Writer) (text, proto, debug1 string, err error) {
	base := filepath.Join(dir, "goroutines-"+strconv.Itoa(n))
	text, proto, debug1 = base+".txt", base+".pb.gz", base+".debug1.txt"
	_, err1 := os.Stat(text)
	_, err2 := os.Stat(proto)
	_, err3 := os.Stat(debug1)
	if err1 == nil && err2 == nil && err3 == nil {
		fmt.Fprintf(stderr, "using cached dumps %s{.txt,.pb.gz,.debug1.txt}\n", base)
		return text, proto, debug1, nil
	}
	fmt.Fprintf(stderr, "generating a %d-goroutine dump into %s\n", n, dir)
	cmd := exec.CommandContext(ctx, "go", "run", "github.com/gopulse/gopulse/internal/testprog/manygoroutines",
		"-n", strconv.Itoa(n), "-out", dir)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return "", "", "", fmt.Errorf("generate dump (run from the gopulse module, or pass -file): %w", err)
	}
	return text, proto, debug1, nil
}

// result is what a worker reports for one parse.
type result struct {
	Parser string        `json:"parser"`
	Wall   time.Duration `json:"wall_ns"`
	// CPU is the worker process's user+system time, start-up and exit
	// included, filled in by the parent: on a loaded machine it varies less
	// than Wall.
	CPU        time.Duration `json:"cpu_ns"`
	Alloc      uint64        `json:"alloc_bytes"`
	PeakHeap   uint64        `json:"peak_heap_bytes"`
	Groups     int           `json:"groups"`
	Goroutines int           `json:"goroutines"`
	TimedOut   bool          `json:"timed_out,omitempty"`
	// OverHeap is set when the worker stopped itself because its heap
	// passed the -pp-max-heap cap; Wall and PeakHeap are then lower bounds.
	OverHeap bool `json:"over_heap,omitempty"`
}

// series collects the runs of one parser on one input.
type series struct {
	parser, input, path string
	size                int64
	runs                []result
	timeout             time.Duration
	maxHeap             uint64 // 0: none
}

func compare(ctx context.Context, c config, stdout, stderr io.Writer) error {
	var inputs []*series
	add := func(parser, input, path string, timeout time.Duration) error {
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("input for %s: %w", parser, err)
		}
		s := &series{parser: parser, input: input, path: path, size: fi.Size(), timeout: timeout}
		if parser == "panicparse" {
			s.maxHeap = c.ppMaxHeap
		}
		inputs = append(inputs, s)
		return nil
	}
	_, haveOurs := parsers["gopulse"]
	if !haveOurs {
		fmt.Fprintln(stderr, "warning: this build has no gopulse parser (analyze/goroutine.Parse); measuring panicparse only")
	}
	if haveOurs {
		if err := add("gopulse", "text", c.file, c.runTimeout); err != nil {
			return err
		}
	}
	if c.ppRuns > 0 {
		if err := add("panicparse", "text", c.file, c.ppTimeout); err != nil {
			return err
		}
	}
	if haveOurs && c.proto != "" {
		if err := add("gopulse", "proto", c.proto, c.runTimeout); err != nil {
			return err
		}
	}
	if haveOurs && c.debug1 != "" {
		if err := add("gopulse", "debug1", c.debug1, c.runTimeout); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable to start workers: %w", err)
	}
	// Alternate: round r runs every series that still wants a run, so
	// machine noise spreads over all of them.
	for r := 0; ; r++ {
		ran := false
		for _, s := range inputs {
			want := c.runs
			if s.parser == "panicparse" {
				want = c.ppRuns
			}
			if r >= want || (len(s.runs) > 0 && (s.runs[len(s.runs)-1].TimedOut || s.runs[len(s.runs)-1].OverHeap)) {
				continue
			}
			ran = true
			res, err := runOnce(ctx, self, s.parser, s.path, "", s.timeout, s.maxHeap)
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "run %d %-10s %-6s %v\n", r+1, s.parser, s.input, fmtRun(res, s.timeout))
			s.runs = append(s.runs, res)
		}
		if !ran {
			break
		}
	}
	if c.profileDir != "" && haveOurs {
		if err := os.MkdirAll(c.profileDir, 0o755); err != nil {
			return fmt.Errorf("create profile directory: %w", err)
		}
		if _, err := runOnce(ctx, self, "gopulse", c.file, c.profileDir, c.runTimeout, 0); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "profiles of one gopulse parse written to %s (cpu.pprof, allocs.pprof)\n", c.profileDir)
	}
	report(stdout, c, inputs)
	return nil
}

func fmtRun(r result, timeout time.Duration) string {
	if r.TimedOut {
		return "> " + timeout.String() + " (killed)"
	}
	if r.OverHeap {
		return fmt.Sprintf("stopped after %v: heap passed %s", r.Wall.Round(time.Millisecond), mb(r.PeakHeap))
	}
	return fmt.Sprintf("%v (process CPU %v), alloc %s, peak heap %s, %d groups, %d goroutines",
		r.Wall.Round(time.Millisecond), r.CPU.Round(time.Millisecond), mb(r.Alloc), mb(r.PeakHeap), r.Groups, r.Goroutines)
}

// runOnce starts one worker process and decodes its result.
func runOnce(ctx context.Context, self, parser, path, profileDir string, timeout time.Duration, maxHeap uint64) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := []string{"-worker", parser, "-file", path, "-pp-max-heap", strconv.FormatUint(maxHeap/1e6, 10)}
	if profileDir != "" {
		args = append(args, "-profile", profileDir)
	}
	cmd := exec.CommandContext(ctx, self, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return result{Parser: parser, TimedOut: true, Wall: timeout}, nil
	}
	if err != nil {
		return result{}, fmt.Errorf("%s worker on %s: %w: %s", parser, path, err, strings.TrimSpace(errb.String()))
	}
	var res result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return result{}, fmt.Errorf("decode %s worker result %q: %w", parser, out.String(), err)
	}
	res.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return res, nil
}

// runWorker parses path once with the named parser, measuring it from
// inside the process.
// A heap past maxHeap (0: no limit) ends the process at once with a result
// marked OverHeap: the machine is shared, and panicparse's heap grows with
// the dump.
func runWorker(name, path, profileDir string, maxHeap uint64, stdout io.Writer) error {
	parse, ok := parsers[name]
	if !ok {
		return fmt.Errorf("-worker %q: unknown parser", name)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open dump: %w", err)
	}
	defer f.Close()
	var cpu *os.File
	if profileDir != "" {
		runtime.MemProfileRate = 64 << 10
		if cpu, err = os.Create(filepath.Join(profileDir, "cpu.pprof")); err != nil {
			return err
		}
		defer cpu.Close()
	}
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/heap/allocs:bytes"},
	}
	runtime.GC()
	runtime.GC()
	metrics.Read(samples)
	base, alloc0 := samples[0].Value.Uint64(), samples[1].Value.Uint64()

	peak := base
	if cpu != nil {
		if err := pprof.StartCPUProfile(cpu); err != nil {
			return err
		}
	}
	t0 := time.Now()
	overHeap := func(heap uint64) {
		s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
		metrics.Read(s)
		_ = json.NewEncoder(stdout).Encode(result{Parser: name, Wall: time.Since(t0), PeakHeap: heap - base,
			Alloc: s[0].Value.Uint64() - alloc0, OverHeap: true})
		os.Exit(0)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the sampler; stopped by close(stop) below
		defer wg.Done()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			if maxHeap > 0 && peak-base > maxHeap {
				overHeap(peak)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	groups, gs, err := parse(f)
	wall := time.Since(t0)
	if cpu != nil {
		pprof.StopCPUProfile()
	}
	close(stop)
	wg.Wait()
	metrics.Read(samples)
	peak = max(peak, samples[0].Value.Uint64())
	if err != nil {
		return fmt.Errorf("%s: parse %s: %w", name, path, err)
	}
	if profileDir != "" {
		if err := writeHeapProfile(filepath.Join(profileDir, "allocs.pprof")); err != nil {
			return err
		}
	}
	return json.NewEncoder(stdout).Encode(result{
		Parser:     name,
		Wall:       wall,
		Alloc:      samples[1].Value.Uint64() - alloc0,
		PeakHeap:   peak - base,
		Groups:     groups,
		Goroutines: gs,
	})
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("write allocation profile: %w", err)
	}
	return f.Close()
}

type stats struct {
	best, median time.Duration
	cpuBest      time.Duration
	cpuMedian    time.Duration
	alloc, peak  uint64 // medians
	groups, gs   int
	timedOut     bool // a run passed the time limit
	overHeap     bool // a run passed the heap cap
	stoppedAfter time.Duration
	stoppedHeap  uint64
	n            int
}

func summarize(s *series) stats {
	var st stats
	var walls, cpus []time.Duration
	var allocs, peaks []uint64
	for _, r := range s.runs {
		if r.TimedOut {
			st.timedOut = true
			continue
		}
		if r.OverHeap {
			st.overHeap, st.stoppedAfter, st.stoppedHeap = true, r.Wall, r.PeakHeap
			continue
		}
		walls = append(walls, r.Wall)
		cpus = append(cpus, r.CPU)
		allocs = append(allocs, r.Alloc)
		peaks = append(peaks, r.PeakHeap)
		st.groups, st.gs = r.Groups, r.Goroutines
	}
	st.n = len(walls)
	if st.n == 0 {
		return st
	}
	slices.Sort(walls)
	slices.Sort(cpus)
	st.cpuBest, st.cpuMedian = cpus[0], cpus[(len(cpus)-1)/2]
	slices.Sort(allocs)
	slices.Sort(peaks)
	st.best, st.median = walls[0], walls[(len(walls)-1)/2]
	st.alloc, st.peak = allocs[(len(allocs)-1)/2], peaks[(len(peaks)-1)/2]
	return st
}

func report(w io.Writer, c config, inputs []*series) {
	fmt.Fprintf(w, "\n%s, GOMAXPROCS=%d, %s/%s\n\n", runtime.Version(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintln(w, "| parser | input | file | runs | best | median | CPU best | CPU median | allocated | peak heap | peak ÷ file | groups | goroutines |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	all := map[string]stats{}
	for _, s := range inputs {
		st := summarize(s)
		all[s.parser+"/"+s.input] = st
		if st.n == 0 && st.overHeap {
			fmt.Fprintf(w, "| %s | %s | %s | 0 of %d | stopped: heap > %s after %s | | | | | > %s | | | |\n",
				s.parser, s.input, mb(uint64(s.size)), len(s.runs), mb(s.maxHeap), dur(st.stoppedAfter), mb(st.stoppedHeap))
			continue
		}
		if st.n == 0 {
			fmt.Fprintf(w, "| %s | %s | %s | 0 of %d | > %v | > %v | | | – | – | – | – | – |\n",
				s.parser, s.input, mb(uint64(s.size)), len(s.runs), s.timeout, s.timeout)
			continue
		}
		runs := strconv.Itoa(st.n)
		if st.timedOut {
			runs += fmt.Sprintf(" (+%d > %v)", len(s.runs)-st.n, s.timeout)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.3f | %d | %d |\n",
			s.parser, s.input, mb(uint64(s.size)), runs, dur(st.best), dur(st.median), dur(st.cpuBest), dur(st.cpuMedian),
			mb(st.alloc), mb(st.peak), float64(st.peak)/float64(s.size), st.groups, st.gs)
	}
	fmt.Fprintln(w)
	ours, okO := all["gopulse/text"]
	pp, okP := all["panicparse/text"]
	var size int64
	for _, s := range inputs {
		if s.input == "text" {
			size = s.size
		}
	}
	if okO && ours.n > 0 {
		verdict := pass(ours.best <= time.Second)
		if ours.gs < 90000 || ours.gs > 110000 {
			verdict = "n/a: not a 100k dump"
		}
		fmt.Fprintf(w, "target: gopulse text parse ≤ 1 s at 100k goroutines: best %s, median %s (%d goroutines) → %s\n",
			dur(ours.best), dur(ours.median), ours.gs, verdict)
		fmt.Fprintf(w, "target: peak heap ≤ 1/4 of the file: %s ÷ %s = %.3f → %s\n",
			mb(ours.peak), mb(uint64(size)), float64(ours.peak)/float64(size), pass(float64(ours.peak) <= float64(size)/4))
	}
	if okO && okP && ours.n > 0 {
		switch {
		case pp.n > 0:
			rb := float64(pp.best) / float64(ours.best)
			rm := float64(pp.median) / float64(ours.median)
			fmt.Fprintf(w, "target: ≥ 20× faster than panicparse: panicparse ÷ gopulse = %.1f× (best), %.1f× (median) → %s\n",
				rb, rm, pass(rb >= 20))
		case pp.overHeap:
			fmt.Fprintf(w, "target: ≥ 20× faster than panicparse: panicparse stopped when its heap passed %s after %s, no ratio\n",
				mb(c.ppMaxHeap), dur(pp.stoppedAfter))
		case pp.timedOut:
			fmt.Fprintf(w, "target: ≥ 20× faster than panicparse: panicparse > %v (killed), so ratio > %.1f× → %s\n",
				c.ppTimeout, float64(c.ppTimeout)/float64(ours.best), pass(float64(c.ppTimeout)/float64(ours.best) >= 20))
		}
	}
}

func pass(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func mb(b uint64) string {
	switch {
	case b >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(b)/1e9)
	case b >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(b)/1e6)
	case b >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(b)/1e3)
	}
	return fmt.Sprintf("%d B", b)
}

func dur(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
}

var errNoDump = errors.New("no goroutine dump found")
