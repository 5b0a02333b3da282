// Command dumpcost measures what taking a goroutine dump costs the process
// being dumped: the request's wall time and the stop-the-world pauses the
// target itself records, for each way of taking the dump and several
// goroutine counts.
//
//	go run ./bench/dumpcost                      # 1k, 10k, 100k goroutines
//	go run ./bench/dumpcost -sizes 1000,10000 -reps 5
//
// The target is internal/testprog/manygoroutines -serve, built three ways:
// with the current toolchain (debug=2, debug=1, debug=0), with
// GOEXPERIMENT=goroutineleakprofile (Go 1.26's experimental goroutine leak
// profile) and with GOTOOLCHAIN=go1.27.3 (where the leak profile is
// general; the go command downloads that toolchain through the module proxy).
// A build that fails is reported and skipped.
//
// Around every dump request the bench reads the target's /stw endpoint,
// the cumulative runtime/metrics histograms /sched/pauses/total/other:seconds
// (non-GC stops: a debug=2 dump shows here) and
// /sched/pauses/total/gc:seconds; the difference is the pauses the request
// caused (plus any GC that happened to run meanwhile). Histogram buckets are
// ranges, so a pause is reported by its bucket's upper bound and totals sum
// bucket midpoints; at the sizes that matter the buckets are about 1/8 of
// their value wide.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "dumpcost:", err)
		os.Exit(1)
	}
}

// mode is one way to take a dump.
type mode struct {
	name, path string
	// builds names the target builds that serve it.
	builds []string
}

var modes = []mode{
	{"debug=2", "/debug/pprof/goroutine?debug=2", []string{"go"}},
	{"debug=1", "/debug/pprof/goroutine?debug=1", []string{"go"}},
	{"debug=0 (proto)", "/debug/pprof/goroutine?debug=0", []string{"go"}},
	// debug=1 so the response states how many goroutines it found leaked.
	{"goroutineleak", "/debug/pprof/goroutineleak?debug=1", []string{"go+goroutineleakprofile", "go1.27.3"}},
}

// build is one way to compile the target.
type build struct {
	name string
	env  []string
	bin  string
	err  error
}

const targetPkg = "github.com/gopulse/gopulse/internal/testprog/manygoroutines"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dumpcost", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizesFlag := fs.String("sizes", "1000,10000,100000", "comma-separated goroutine counts")
	reps := fs.Int("reps", 3, "requests per mode and size")
	timeout := fs.Duration("timeout", 5*time.Minute, "limit for one dump request")
	workdir := fs.String("workdir", "", "where to build the targets (default: a temporary directory)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var sizes []int
	for _, s := range strings.Split(*sizesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-sizes: %q is not a positive count", s)
		}
		sizes = append(sizes, n)
	}
	dir := *workdir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "dumpcost-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	builds := []*build{
		{name: "go"},
		{name: "go+goroutineleakprofile", env: []string{"GOEXPERIMENT=goroutineleakprofile"}},
		{name: "go1.27.3", env: []string{"GOTOOLCHAIN=go1.27.3"}},
	}
	for _, b := range builds {
		b.bin = filepath.Join(dir, "target-"+strings.NewReplacer("+", "-", ".", "_").Replace(b.name))
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.bin, targetPkg)
		cmd.Env = append(os.Environ(), b.env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("%s: %w", strings.TrimSpace(string(out)), err)
			fmt.Fprintf(stderr, "build %s failed, its modes are skipped: %v\n", b.name, b.err)
			continue
		}
		v, _ := exec.Command("go", "version", b.bin).Output()
		fmt.Fprintf(stderr, "built %s: %s", b.name, v)
	}

	var rows []row
	for _, n := range sizes {
		for _, b := range builds {
			if b.err != nil {
				for _, m := range modes {
					if slices.Contains(m.builds, b.name) {
						rows = append(rows, row{mode: m.name, build: b.name, n: n, err: "build failed: " + firstLine(b.err.Error())})
					}
				}
				continue
			}
			var ms []mode
			for _, m := range modes {
				if slices.Contains(m.builds, b.name) {
					ms = append(ms, m)
				}
			}
			if len(ms) == 0 {
				continue
			}
			rs, err := measureTarget(ctx, b, n, ms, *reps, *timeout, stderr)
			if err != nil {
				return err
			}
			rows = append(rows, rs...)
		}
	}
	printTable(stdout, rows, *reps)
	return nil
}

// loadAvg is the 1-minute load average: the machine may be shared, and
// stop-the-world pauses stretch when other processes hold the CPUs.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// sample is one dump request.
type sample struct {
	wall                 time.Duration
	bytes                int64
	otherMax, otherTotal float64 // seconds
	otherCount           uint64
	gcMax, gcTotal       float64
	gcCount              uint64
	reported             int // "total N" in debug=1 output, -1 when absent
}

type row struct {
	mode, build string
	n           int // goroutines asked for
	goroutines  int // goroutines the target ran
	leaked      int // goroutines the target made unreachable on purpose
	load        string
	samples     []sample
	err         string
}

var readyRE = regexp.MustCompile(`^ready goroutines=(\d+) leaked=(\d+) addr=(\S+)`)

// measureTarget starts the target with n goroutines and takes reps dumps in
// each mode, interleaving the modes.
func measureTarget(ctx context.Context, b *build, n int, ms []mode, reps int, timeout time.Duration, stderr io.Writer) ([]row, error) {
	cmd := exec.CommandContext(ctx, b.bin, "-n", strconv.Itoa(n), "-serve")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start target %s: %w", b.name, err)
	}
	ready := make(chan []string, 1)
	readerDone := make(chan struct{})
	// The target is our child: stop it by its own PID, whatever happens.
	// Its stdout reaches EOF when it exits; only then may Wait close it.
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-readerDone:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-readerDone
		}
		_ = cmd.Wait()
	}()
	go func() { // reads the target's stdout until it closes (the target exits)
		defer close(readerDone)
		sc := bufio.NewScanner(out)
		sent := false
		for sc.Scan() {
			if m := readyRE.FindStringSubmatch(sc.Text()); m != nil && !sent {
				ready <- m
				sent = true
			}
		}
		if !sent {
			close(ready)
		}
	}()
	var m []string
	select {
	case m = <-ready:
	case <-time.After(5 * time.Minute):
	}
	if m == nil {
		return nil, fmt.Errorf("target %s with %d goroutines never printed its ready line", b.name, n)
	}
	goroutines, _ := strconv.Atoi(m[1])
	leaked, _ := strconv.Atoi(m[2])
	base := m[3]
	client := &http.Client{Timeout: timeout}

	rows := make([]row, len(ms))
	for i, md := range ms {
		rows[i] = row{mode: md.name, build: b.name, n: n, goroutines: goroutines, leaked: leaked}
	}

	for r := range reps {
		for i, md := range ms {
			s, err := dumpOnce(ctx, client, base, md.path)
			if err != nil {
				rows[i].err = err.Error()
				continue
			}
			fmt.Fprintf(stderr, "%-16s %-24s n=%-7d rep %d: wall %v, %d bytes, STW other max %s total %s (%d), gc max %s total %s (%d), reported %d\n",
				md.name, b.name, n, r+1, s.wall.Round(time.Millisecond), s.bytes, secs(s.otherMax), secs(s.otherTotal), s.otherCount,
				secs(s.gcMax), secs(s.gcTotal), s.gcCount, s.reported)
			rows[i].samples = append(rows[i].samples, s)
			// Let the target settle (background sweeping after the dump's
			// garbage) so one request's cost does not spill into the next.
			time.Sleep(200 * time.Millisecond)
		}
	}
	load := loadAvg()
	for i := range rows {
		rows[i].load = load
	}
	return rows, nil
}

var totalRE = regexp.MustCompile(`^\S+ profile: total (\d+)`)

func dumpOnce(ctx context.Context, c *http.Client, base, path string) (sample, error) {
	before, err := readSTW(ctx, c, base)
	if err != nil {
		return sample{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return sample{}, err
	}
	t0 := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return sample{}, fmt.Errorf("GET %s: %w", path, err)
	}
	br := bufio.NewReaderSize(resp.Body, 1<<16)
	first, _ := br.ReadString('\n')
	rest, err := io.Copy(io.Discard, br)
	resp.Body.Close()
	wall := time.Since(t0)
	if err != nil {
		return sample{}, fmt.Errorf("read %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return sample{}, fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(first))
	}
	after, err := readSTW(ctx, c, base)
	if err != nil {
		return sample{}, err
	}
	s := sample{wall: wall, bytes: int64(len(first)) + rest, reported: -1}
	if m := totalRE.FindStringSubmatch(first); m != nil {
		s.reported, _ = strconv.Atoi(m[1])
	}
	s.otherMax, s.otherTotal, s.otherCount = delta(before.Other, after.Other)
	s.gcMax, s.gcTotal, s.gcCount = delta(before.GC, after.GC)
	return s, nil
}

// stwHistogram and stwReport mirror the target's /stw body.
type stwHistogram struct {
	Buckets []string `json:"buckets"`
	Counts  []uint64 `json:"counts"`
}

type stwReport struct {
	Other      stwHistogram `json:"other"`
	GC         stwHistogram `json:"gc"`
	Goroutines int          `json:"goroutines"`
}

func readSTW(ctx context.Context, c *http.Client, base string) (*stwReport, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/stw", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read target pauses: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("read target pauses: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var r stwReport
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("decode target pauses: %w", err)
	}
	return &r, nil
}

// delta returns the pauses recorded between two readings of a cumulative
// histogram: the largest one (its bucket's upper bound), the sum of bucket
// midpoints, and the count.
func delta(a, b stwHistogram) (maxPause, total float64, count uint64) {
	if len(a.Counts) != len(b.Counts) || len(b.Buckets) != len(b.Counts)+1 {
		return math.NaN(), math.NaN(), 0
	}
	for i := range b.Counts {
		d := b.Counts[i] - a.Counts[i]
		if d == 0 {
			continue
		}
		lo, _ := strconv.ParseFloat(b.Buckets[i], 64)
		hi, _ := strconv.ParseFloat(b.Buckets[i+1], 64)
		if math.IsInf(lo, -1) {
			lo = 0
		}
		if math.IsInf(hi, 1) {
			hi = lo
		}
		count += d
		total += float64(d) * (lo + hi) / 2
		maxPause = hi
	}
	return maxPause, total, count
}

func secs(s float64) string {
	switch {
	case math.IsNaN(s):
		return "?"
	case s == 0:
		return "0"
	case s >= 1:
		return fmt.Sprintf("%.2f s", s)
	case s >= 1e-3:
		return fmt.Sprintf("%.1f ms", s*1e3)
	default:
		return fmt.Sprintf("%.0f µs", s*1e6)
	}
}

func median[T int64 | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

func printTable(w io.Writer, rows []row, reps int) {
	fmt.Fprintf(w, "\nTarget: internal/testprog/manygoroutines -serve; %d requests per cell, medians (max: largest over requests); bench built with %s, GOMAXPROCS=%d.\n\n",
		reps, runtime.Version(), runtime.GOMAXPROCS(0))
	fmt.Fprintln(w, "| mode | target build | goroutines | response | request wall | max STW (non-GC) | STW non-GC per request (stops) | max STW (GC) | STW GC per request (stops) | reported | load |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		if len(r.samples) == 0 {
			msg := r.err
			if msg == "" {
				msg = "no sample"
			}
			fmt.Fprintf(w, "| %s | %s | %d | – | %s | | | | | | |\n", r.mode, r.build, r.n, strings.ReplaceAll(msg, "|", "/"))
			continue
		}
		var walls []time.Duration
		var sizes []int64
		var otherTot, gcTot []float64
		var otherN, gcN []int64
		var otherMax, gcMax float64
		rep := r.samples[0].reported
		for _, s := range r.samples {
			walls = append(walls, s.wall)
			sizes = append(sizes, s.bytes)
			otherTot = append(otherTot, s.otherTotal)
			gcTot = append(gcTot, s.gcTotal)
			otherN = append(otherN, int64(s.otherCount))
			gcN = append(gcN, int64(s.gcCount))
			otherMax = max(otherMax, s.otherMax)
			gcMax = max(gcMax, s.gcMax)
		}
		reported := ""
		if rep >= 0 {
			reported = strconv.Itoa(rep)
			if strings.HasPrefix(r.mode, "goroutineleak") {
				reported += fmt.Sprintf(" of %d leaked", r.leaked)
			}
		}
		resp := size(median(sizes))
		if median(sizes) == 64<<20 && r.mode == "debug=2" {
			resp += " (cut at 64 MiB)"
		}
		if r.err != "" {
			reported += " (some requests failed: " + strings.ReplaceAll(r.err, "|", "/") + ")"
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %s (%d) | %s | %s (%d) | %s | %s |\n",
			r.mode, r.build, r.goroutines, resp, dur(median(walls)),
			secs(otherMax), secs(median(otherTot)), median(otherN), secs(gcMax), secs(median(gcTot)), median(gcN), reported, r.load)
	}
}

func size(b int64) string {
	switch {
	case b >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(b)/1e6)
	case b >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(b)/1e3)
	}
	return fmt.Sprintf("%d B", b)
}

func dur(d time.Duration) string { return secs(d.Seconds()) }
