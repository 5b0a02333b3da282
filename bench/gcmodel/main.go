// Command gcmodel validates analyze/gc's model against real runs of
// internal/testprog/gcchurn. For each workload it runs a baseline at
// GOGC=100 without a memory limit, calibrates the model from that run's
// gctrace output alone, then predicts GC CPU, cycles/s and peak heap for
// GOGC 50/100/200/400 under two memory limits and runs each configuration
// to measure them (gcchurn reports the runtime's own runtime/metrics
// totals and the OS's view of its CPU). Nothing of a validation run feeds
// the model.
//
// The default mode (-mode cpu) measures where the runtime's P time equals
// CPU time: gcchurn runs CPU-bound (-rate 0 -work N: it computes and
// allocates as fast as it can, so no P is ever idle and there is no
// idle-priority marking) with GOMAXPROCS=1, pinned to one CPU (-cpu 1,
// through taskset) while this harness pins itself to another
// (-harness-cpu 0). -mode paced is the earlier bench: allocation paced on
// the wall clock (a mostly idle program), meant with -procs 2.
//
// Every configuration, the baseline included, runs -repeat times in
// alternating order (forward, reverse, forward…), so slow drift in the
// machine's load does not line up with one end of the list; the table
// shows medians and spreads, and every run's CPU share (process CPU ÷ the
// P time the runtime counted busy; 1.0 when nothing else ran on its CPU).
//
//	go run ./bench/gcmodel -raw runs.json -o table.md   # full run, ~20 minutes
//	go run ./bench/gcmodel -from runs.json              # re-analyse saved runs, no new runs
//	go run ./bench/gcmodel -quick                       # one workload, one repeat: a smoke test
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// measured is gcchurn's closing report (its runtime/metrics and OS totals
// over the measured window).
type measured struct {
	Seconds      float64 `json:"seconds"`
	Cycles       int     `json:"gc_cycles"`
	GCCPU        float64 `json:"gc_cpu_seconds"` // idle marking included
	Assist       float64 `json:"gc_assist_seconds"`
	IdleMark     float64 `json:"gc_idle_seconds"`
	Dedicated    float64 `json:"gc_dedicated_seconds"`
	Pause        float64 `json:"gc_pause_seconds"`
	GCFraction   float64 `json:"gc_cpu_fraction"` // (gc − idle mark) ÷ capacity
	WithIdleFrac float64 `json:"gc_cpu_fraction_with_idle"`
	TotalCPU     float64 `json:"total_cpu_seconds"` // capacity: GOMAXPROCS × wall
	IdleP        float64 `json:"idle_p_seconds"`
	ProcessCPU   float64 `json:"process_cpu_seconds"`
	RunDelay     float64 `json:"run_delay_seconds"`
	Procs        int     `json:"gomaxprocs"`
	CycleEnds    int     `json:"cycle_ends"`              // GC cycles that ended in the window
	CycleSpan    float64 `json:"cycle_ends_span_seconds"` // first to last of those ends
	Peak         float64 `json:"peak_heap_bytes"`
	Live         float64 `json:"live_heap_bytes"`
	Goal         float64 `json:"heap_goal_bytes"`
	Alloc        float64 `json:"alloc_bytes"`
	NonHeap      float64 `json:"non_heap_bytes"`
	Limiter      int     `json:"limiter_last"`
}

// runRec is one child run, kept whole so the analysis can be redone
// (-from) after a model change without running anything again.
type runRec struct {
	Rate, Live float64 // gcchurn's -rate MiB/s (0: CPU-bound) and -live MiB
	Work       int     `json:",omitempty"` // gcchurn's -work: CPU per 64 KiB allocated
	GOGC       int
	Limit      int64 // gc.NoLimit for none
	Baseline   bool
	Pass       int
	Load1      float64 // 1-minute load average when the run started
	Trace      string  // the child's stderr: its gctrace
	M          measured
}

// rawFile is everything one bench run measured.
type rawFile struct {
	Go, Platform   string
	Procs          int
	Mode           string `json:",omitempty"` // "cpu" or "paced" (empty: paced, before modes existed)
	ChildCPU       int    `json:",omitempty"` // CPU the children were pinned to, −1 none
	HarnessCPU     int    `json:",omitempty"`
	Duration, Warm string
	Repeat         int
	Started, Took  string
	Runs           []runRec
}

func main() {
	quick := flag.Bool("quick", false, "one workload, one repeat: a smoke test")
	mode := flag.String("mode", "cpu", "cpu: CPU-bound gcchurn, P time = CPU time; paced: allocation paced on the wall clock (mostly idle)")
	dur := flag.Duration("duration", 6*time.Second, "measured time per run (baselines run twice as long)")
	warm := flag.Duration("warmup", time.Second, "unmeasured start of each run")
	repeat := flag.Int("repeat", 3, "runs per configuration, in alternating order")
	procs := flag.Int("procs", 1, "GOMAXPROCS for every child run")
	childCPU := flag.Int("cpu", 1, "pin every child to this CPU with taskset (-1: no pinning)")
	harnessCPU := flag.Int("harness-cpu", 0, "pin this harness to this CPU (-1: no pinning)")
	out := flag.String("o", "", "also write the markdown to this file")
	raw := flag.String("raw", "", "write every run (measurements and gctrace) as JSON to this file")
	from := flag.String("from", "", "analyse the runs in this JSON file (from -raw) instead of running")
	flag.Parse()

	var rf rawFile
	if *from != "" {
		b, err := os.ReadFile(*from)
		check(err)
		check(json.Unmarshal(b, &rf))
	} else {
		wls, ok := modes[*mode]
		if !ok {
			fmt.Fprintf(os.Stderr, "gcmodel: -mode %q: want cpu or paced\n", *mode)
			os.Exit(2)
		}
		if *childCPU >= 0 && *procs > 1 {
			fmt.Fprintf(os.Stderr, "gcmodel: -procs %d on the one CPU of -cpu %d: pass -cpu -1 to run unpinned\n", *procs, *childCPU)
			os.Exit(2)
		}
		var pin []string
		if *childCPU >= 0 {
			ts, err := exec.LookPath("taskset")
			if err != nil {
				fmt.Fprintln(os.Stderr, "gcmodel: -cpu needs taskset (util-linux); install it or pass -cpu -1")
				os.Exit(2)
			}
			pin = []string{ts, "-c", fmt.Sprint(*childCPU)}
		}
		if *harnessCPU >= 0 {
			if *harnessCPU == *childCPU {
				fmt.Fprintln(os.Stderr, "gcmodel: -harness-cpu and -cpu are the same CPU: the harness would take the child's CPU")
				os.Exit(2)
			}
			check(pinProcess(*harnessCPU))
		}
		if *quick {
			*repeat = 1
			wls = wls[1:2]
		}
		rf = collect(wls, pin, *dur, *warm, *repeat, *procs)
		rf.Mode, rf.ChildCPU, rf.HarnessCPU = *mode, *childCPU, *harnessCPU
		if *raw != "" {
			b, err := json.Marshal(rf)
			check(err)
			check(os.WriteFile(*raw, b, 0o644))
		}
	}
	md := analyse(rf)
	fmt.Print(md)
	if *out != "" {
		check(os.WriteFile(*out, []byte(md), 0o644))
	}
}

// workload is gcchurn's -rate MiB/s (0: as fast as the CPU allows), -work
// (CPU per 64 KiB allocated) and -live MiB.
type workload struct {
	rate, live float64
	work       int
}

// modes are the workloads of each mode. CPU-bound: two compute
// intensities (-work 150000 ≈ 110 MiB/s and 400000 ≈ 55 MiB/s per CPU on
// this machine at GOGC=100) × two live heaps (≈ 10 and 22 MiB marked),
// chosen so the GC stays under the 50% where its CPU limiter would take
// over (GOGC=50 at the higher rate predicts ≈ 45%) and even GOGC=400 ends
// several cycles per measured window. Paced: the earlier bench's rates and
// heaps, where even GOGC=400 runs several cycles.
var modes = map[string][]workload{
	"cpu":   {{0, 8, 400000}, {0, 8, 150000}, {0, 16, 400000}, {0, 16, 150000}},
	"paced": {{60, 16, 0}, {150, 16, 0}, {60, 48, 0}, {150, 48, 0}},
}

var gogcs = []int{50, 100, 200, 400}

func collect(wls []workload, pin []string, dur, warm time.Duration, repeat, procs int) rawFile {
	dir, err := os.MkdirTemp("", "gcmodel")
	check(err)
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "gcchurn")
	if b, err := exec.Command("go", "build", "-o", bin, "./internal/testprog/gcchurn").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build gcchurn (run from the module root): %v\n%s", err, b)
		os.Exit(1)
	}
	rf := rawFile{Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH, Procs: procs,
		Duration: dur.String(), Warm: warm.String(), Repeat: repeat, Started: time.Now().Format(time.RFC3339)}
	start := time.Now()
	for _, w := range wls {
		// The first baseline sizes the two limits, so they are fixed
		// before any validation run: a loose one (3.5× live) that binds
		// only at high GOGC and a tight one (2.2× live) that binds from
		// GOGC ≈ 100.
		base := runOne(bin, pin, procs, w, 100, noLimit, true, 0, dur, warm)
		rf.Runs = append(rf.Runs, base)
		m, err := calibrate(base)
		if err != nil {
			fmt.Fprintf(os.Stderr, "workload %v: %v\n", w, err)
			continue
		}
		limits := []int64{int64(m.LiveHeap*3.5 + m.NonHeapAt(m.LiveHeap*3.5)), int64(m.LiveHeap*2.2 + m.NonHeapAt(m.LiveHeap*2.2))}
		type cfg struct {
			gogc  int
			limit int64
			base  bool
		}
		var cfgs []cfg
		for _, lim := range limits {
			for _, g := range gogcs {
				cfgs = append(cfgs, cfg{g, lim, false})
			}
		}
		for pass := 0; pass < repeat; pass++ {
			order := append([]cfg(nil), cfgs...)
			if pass > 0 {
				order = append([]cfg{{100, noLimit, true}}, order...)
			}
			if pass%2 == 1 {
				for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
					order[i], order[j] = order[j], order[i]
				}
			}
			for _, c := range order {
				rf.Runs = append(rf.Runs, runOne(bin, pin, procs, w, c.gogc, c.limit, c.base, pass, dur, warm))
			}
		}
	}
	rf.Took = time.Since(start).Round(time.Second).String()
	return rf
}

func runOne(bin string, pin []string, procs int, w workload, gogc int, limit int64, base bool, pass int, dur, warm time.Duration) runRec {
	d := dur
	if base {
		d = 2 * dur // the baseline is the only calibration
	}
	args := []string{"-rate", fmt.Sprint(w.rate), "-live", fmt.Sprint(w.live), "-duration", (d + warm).String(), "-warmup", warm.String()}
	if w.work > 0 {
		args = append(args, "-work", fmt.Sprint(w.work))
	}
	env := []string{fmt.Sprintf("GOGC=%d", gogc)}
	if limit != noLimit {
		env = append(env, fmt.Sprintf("GOMEMLIMIT=%d", limit))
	}
	r := runRec{Rate: w.rate, Live: w.live, Work: w.work, GOGC: gogc, Limit: limit, Baseline: base, Pass: pass, Load1: load1()}
	tr, me := run(bin, pin, procs, args, env...)
	r.Trace, r.M = string(tr), me
	lim := "none"
	if limit != noLimit {
		lim = fmt.Sprintf("%.0fMiB", float64(limit)/(1<<20))
	}
	fmt.Fprintf(os.Stderr, "pass %d %s GOGC=%d limit=%s base=%v load %.1f: GC CPU %.3f (with idle %.3f, assist %.2fs) cycles %d peak %.1f MiB; CPU share %.2f run delay %.2fs\n",
		pass, w, gogc, lim, base, r.Load1, me.GCFraction, me.WithIdleFrac, me.Assist, me.Cycles, me.Peak/(1<<20), cpuShare(me), me.RunDelay)
	return r
}

func (w workload) String() string {
	if w.rate == 0 {
		return fmt.Sprintf("work=%d live=%.0f", w.work, w.live)
	}
	return fmt.Sprintf("rate=%.0f live=%.0f", w.rate, w.live)
}

// run executes gcchurn with gctrace on and returns its stderr and the
// totals it prints.
func run(bin string, pin []string, procs int, args []string, env ...string) ([]byte, measured) {
	argv := append(append(append([]string(nil), pin...), bin), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), "GODEBUG=gctrace=1", fmt.Sprintf("GOMAXPROCS=%d", procs)), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "gcchurn %v %v: %v\n%s", env, args, err, stderr.Bytes())
		os.Exit(1)
	}
	var m measured
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		if j, ok := strings.CutPrefix(sc.Text(), "gcchurn: {"); ok {
			check(json.Unmarshal([]byte("{"+j), &m))
		}
	}
	return stderr.Bytes(), m
}

// load1 is the 1-minute load average (Linux), or −1.
func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	var l float64
	if _, err := fmt.Sscan(string(b), &l); err != nil {
		return -1
	}
	return l
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "gcmodel:", err)
		os.Exit(1)
	}
}
