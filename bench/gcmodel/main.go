// Command gcmodel validates analyze/gc's model against real runs of
// internal/testprog/gcchurn. For each workload (allocation rate × live
// heap) it runs a baseline at GOGC=100 without a memory limit, calibrates
// the model from that run's gctrace output alone, then predicts GC CPU and
// peak heap for GOGC 50/100/200/400 under two memory limits and runs each
// configuration to measure them (gcchurn reports the runtime's own
// runtime/metrics totals and the OS's view of its CPU). Nothing of a
// validation run feeds the model.
//
// Every configuration, the baseline included, runs -repeat times in
// alternating order (forward, reverse, forward…), so slow drift in the
// machine's load does not line up with one end of the list; the table
// shows medians and spreads. Every child runs with GOMAXPROCS pinned
// (-procs, default 2).
//
//	go run ./bench/gcmodel -raw runs.json   # full run, ~12 minutes on 2 cores
//	go run ./bench/gcmodel -from runs.json  # re-analyse saved runs, no new runs
//	go run ./bench/gcmodel -quick           # one workload, one repeat: a smoke test
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
	Rate, Live float64 // gcchurn's -rate MiB/s and -live MiB
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
	Duration, Warm string
	Repeat         int
	Started, Took  string
	Runs           []runRec
}

func main() {
	quick := flag.Bool("quick", false, "one workload, one repeat: a smoke test")
	dur := flag.Duration("duration", 5*time.Second, "measured time per run (baselines run twice as long)")
	warm := flag.Duration("warmup", time.Second, "unmeasured start of each run")
	repeat := flag.Int("repeat", 3, "runs per configuration, in alternating order")
	procs := flag.Int("procs", 2, "GOMAXPROCS for every child run")
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
		if *quick {
			*repeat = 1
		}
		rf = collect(*quick, *dur, *warm, *repeat, *procs)
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

type workload struct{ rate, live float64 }

// Rates and live heaps chosen so that even GOGC=400 runs complete
// several cycles per measured window.
var workloads = []workload{{60, 16}, {150, 16}, {60, 48}, {150, 48}}

var gogcs = []int{50, 100, 200, 400}

func collect(quick bool, dur, warm time.Duration, repeat, procs int) rawFile {
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
	wls := workloads
	if quick {
		wls = wls[1:2]
	}
	start := time.Now()
	for _, w := range wls {
		// The first baseline sizes the two limits, so they are fixed
		// before any validation run: a loose one (3.5× live) that binds
		// only at high GOGC and a tight one (2.2× live) that binds from
		// GOGC ≈ 100.
		base := runOne(bin, procs, w, 100, noLimit, true, 0, dur, warm)
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
				rf.Runs = append(rf.Runs, runOne(bin, procs, w, c.gogc, c.limit, c.base, pass, dur, warm))
			}
		}
	}
	rf.Took = time.Since(start).Round(time.Second).String()
	return rf
}

func runOne(bin string, procs int, w workload, gogc int, limit int64, base bool, pass int, dur, warm time.Duration) runRec {
	d := dur
	if base {
		d = 2 * dur // the baseline is the only calibration
	}
	args := []string{"-rate", fmt.Sprint(w.rate), "-live", fmt.Sprint(w.live), "-duration", (d + warm).String(), "-warmup", warm.String()}
	env := []string{fmt.Sprintf("GOGC=%d", gogc)}
	if limit != noLimit {
		env = append(env, fmt.Sprintf("GOMEMLIMIT=%d", limit))
	}
	r := runRec{Rate: w.rate, Live: w.live, GOGC: gogc, Limit: limit, Baseline: base, Pass: pass, Load1: load1()}
	tr, me := run(bin, procs, args, env...)
	r.Trace, r.M = string(tr), me
	lim := "none"
	if limit != noLimit {
		lim = fmt.Sprintf("%.0fMiB", float64(limit)/(1<<20))
	}
	fmt.Fprintf(os.Stderr, "pass %d rate=%.0f live=%.0f GOGC=%d limit=%s base=%v load %.1f: GC CPU %.3f (with idle %.3f, assist %.2fs) cycles %d peak %.1f MiB; CPU got/busy %.2f run delay %.2fs\n",
		pass, w.rate, w.live, gogc, lim, base, r.Load1, me.GCFraction, me.WithIdleFrac, me.Assist, me.Cycles, me.Peak/(1<<20), cpuShare(me), me.RunDelay)
	return r
}

// run executes gcchurn with gctrace on and returns its stderr and the
// totals it prints.
func run(bin string, procs int, args []string, env ...string) ([]byte, measured) {
	cmd := exec.Command(bin, args...)
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
