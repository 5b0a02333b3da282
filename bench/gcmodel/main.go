// Command gcmodel validates analyze/gc's model against real runs of
// internal/testprog/gcchurn. For each workload (allocation rate × live
// heap) it runs a baseline at GOGC=100 without a memory limit, calibrates
// the model from that run's gctrace output alone, then predicts GC CPU and
// peak heap for GOGC 50/100/200/400 under two memory limits and runs each
// configuration to measure them (gcchurn reports the runtime's own
// runtime/metrics totals). Nothing of a validation run feeds the model.
// It prints the markdown table and the share of
// configurations within 20%, and fits CPU = α·f^β + γ·heap_util over all
// runs.
//
//	go run ./bench/gcmodel            # full run, ~8 minutes on 2 cores
//	go run ./bench/gcmodel -quick     # one workload, for a smoke test
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/gopulse/gopulse/analyze/gc"
)

type measured struct {
	Seconds    float64 `json:"seconds"`
	Cycles     int     `json:"gc_cycles"`
	GCCPU      float64 `json:"gc_cpu_seconds"`
	GCFraction float64 `json:"gc_cpu_fraction"`
	TotalCPU   float64 `json:"total_cpu_seconds"`
	Procs      int     `json:"gomaxprocs"`
	Peak       float64 `json:"peak_heap_bytes"`
	Live       float64 `json:"live_heap_bytes"`
	Goal       float64 `json:"heap_goal_bytes"`
	Alloc      float64 `json:"alloc_bytes"`
	NonHeap    float64 `json:"non_heap_bytes"`
	Limiter    int     `json:"limiter_last"`
}

type row struct {
	rate, live    float64
	gogc          int
	limit         int64
	pred          gc.Prediction
	meas          measured
	cpuErr, pkErr float64
	cpuOK, peakOK bool
}

func main() {
	quick := flag.Bool("quick", false, "one workload only")
	dur := flag.Duration("duration", 6*time.Second, "measured time per run")
	warm := flag.Duration("warmup", 1500*time.Millisecond, "unmeasured start of each run")
	out := flag.String("o", "", "also write the markdown to this file")
	flag.Parse()

	dir, err := os.MkdirTemp("", "gcmodel")
	check(err)
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "gcchurn")
	if b, err := exec.Command("go", "build", "-o", bin, "./internal/testprog/gcchurn").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build gcchurn (run from the module root): %v\n%s", err, b)
		os.Exit(1)
	}
	type workload struct{ rate, live float64 }
	// Rates and live heaps chosen so that even GOGC=400 runs complete
	// several cycles per measured window.
	wls := []workload{{60, 16}, {150, 16}, {60, 48}, {150, 48}}
	if *quick {
		wls = wls[1:2]
	}
	start := time.Now()
	var rows []row
	var pts []gc.FreqPoint
	for _, w := range wls {
		args := []string{"-rate", fmt.Sprint(w.rate), "-live", fmt.Sprint(w.live), "-duration", (*dur + *warm).String(), "-warmup", warm.String()}
		// The baseline runs twice as long: it is the only calibration.
		baseArgs := []string{"-rate", fmt.Sprint(w.rate), "-live", fmt.Sprint(w.live), "-duration", (2**dur + *warm).String(), "-warmup", warm.String()}
		trace, base := run(bin, baseArgs, "GOGC=100")
		tr, err := gc.ParseTrace(bytes.NewReader(trace), nil)
		check(err)
		d, err := gc.FromTrace(tr, gc.Settings{GOGC: 100, GOGCKnown: true, MemLimit: gc.NoLimit, MemLimitKnown: true})
		check(err)
		m, err := gc.Calibrate(d)
		if err != nil {
			fmt.Fprintf(os.Stderr, "workload %v: %v\n", w, err)
			continue
		}
		fmt.Fprintf(os.Stderr, "workload rate=%.0fMiB/s live=%.0fMiB: model live %.1f MiB, alloc %.1f MiB/s, %.3f CPU-s/cycle, κ %.2f, overshoot %.3f; baseline measured GC CPU %.3f peak %.1f MiB non-heap %.1f MiB\n",
			w.rate, w.live, m.LiveHeap/(1<<20), m.AllocRate/(1<<20), m.FixedCost+m.MarkPerByte*(m.LiveHeap+m.Roots), m.Runway, m.Overshoot, base.GCFraction, base.Peak/(1<<20), base.NonHeap/(1<<20))
		fmt.Fprintf(os.Stderr, "  model non-heap at the baseline goal: %.1f MiB; mark %.0f ms\n", m.NonHeapAt(base.Goal)/(1<<20), m.MarkWall.Seconds()*1e3)
		// Two limits sized from the calibrated live heap: a loose one that
		// binds only at high GOGC, and a tight one that binds from GOGC=100.
		limits := []int64{int64(m.LiveHeap*3.5 + m.NonHeapAt(m.LiveHeap*3.5)), int64(m.LiveHeap*2.2 + m.NonHeapAt(m.LiveHeap*2.2))}
		for _, lim := range limits {
			for _, g := range []int{50, 100, 200, 400} {
				_, me := run(bin, args, fmt.Sprintf("GOGC=%d", g), fmt.Sprintf("GOMEMLIMIT=%d", lim))
				p := m.Predict(g, lim)
				r := row{rate: w.rate, live: w.live, gogc: g, limit: lim, pred: p, meas: me}
				r.cpuErr = p.GCCPUFraction/me.GCFraction - 1
				r.pkErr = p.PeakHeap/me.Peak - 1
				r.cpuOK, r.peakOK = math.Abs(r.cpuErr) <= 0.2, math.Abs(r.pkErr) <= 0.2
				rows = append(rows, r)
				if me.Cycles > 0 && me.Seconds > 0 {
					pts = append(pts, gc.FreqPoint{Freq: float64(me.Cycles) / me.Seconds, CPU: me.GCFraction, HeapUtil: me.Live / me.Goal})
				}
				fmt.Fprintf(os.Stderr, "  GOGC=%d GOMEMLIMIT=%.0fMiB: GC CPU pred %.3f meas %.3f (%+.0f%%), peak pred %.1f meas %.1f MiB (%+.0f%%)\n",
					g, float64(lim)/(1<<20), p.GCCPUFraction, me.GCFraction, r.cpuErr*100, p.PeakHeap/(1<<20), me.Peak/(1<<20), r.pkErr*100)
			}
		}
	}
	var md strings.Builder
	fmt.Fprintf(&md, "Model validation: %s, %s, GOMAXPROCS=2, %v per run after %v warm-up; %d configurations; total %v.\n\n",
		runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH, *dur, *warm, len(rows), time.Since(start).Round(time.Second))
	md.WriteString("| alloc MiB/s | live MiB | GOGC | GOMEMLIMIT MiB | cycles/s pred | cycles/s meas | GC CPU pred | GC CPU meas | err | peak MiB pred | peak MiB meas | err |\n")
	md.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var cpuOK, peakOK, both int
	for _, r := range rows {
		mark := func(ok bool) string {
			if ok {
				return ""
			}
			return " ✗"
		}
		cps := 0.0
		if r.meas.Seconds > 0 {
			cps = float64(r.meas.Cycles) / r.meas.Seconds
		}
		fmt.Fprintf(&md, "| %.0f | %.0f | %d | %.0f | %.2f | %.2f | %.1f%% | %.1f%% | %+.0f%%%s | %.0f | %.0f | %+.0f%%%s |\n",
			r.rate, r.live, r.gogc, float64(r.limit)/(1<<20), r.pred.CyclesPerSecond, cps,
			r.pred.GCCPUFraction*100, r.meas.GCFraction*100, r.cpuErr*100, mark(r.cpuOK),
			r.pred.PeakHeap/(1<<20), r.meas.Peak/(1<<20), r.pkErr*100, mark(r.peakOK))
		if r.cpuOK {
			cpuOK++
		}
		if r.peakOK {
			peakOK++
		}
		if r.cpuOK && r.peakOK {
			both++
		}
	}
	n := max(len(rows), 1)
	fmt.Fprintf(&md, "\nWithin 20%%: GC CPU %d/%d (%.0f%%), peak heap %d/%d (%.0f%%), both %d/%d (%.0f%%).\n",
		cpuOK, len(rows), 100*float64(cpuOK)/float64(n), peakOK, len(rows), 100*float64(peakOK)/float64(n), both, len(rows), 100*float64(both)/float64(n))
	f := gc.FitPower(pts)
	if f.OK {
		fmt.Fprintf(&md, "\nEmpirical fit over the %d runs: CPU = %.4f·f^β + %.4f·heap_util with β = %.2f (95%% profile interval %.2f–%.2f), weighted R² %.2f.\n", f.N, f.Alpha, f.Gamma, f.Beta, f.BetaLow, f.BetaHigh, f.R2)
	} else {
		fmt.Fprintf(&md, "\nEmpirical fit CPU = α·f^β + γ·heap_util over the %d runs: refused (%s).\n", f.N, f.Reason)
	}
	fmt.Print(md.String())
	if *out != "" {
		check(os.WriteFile(*out, []byte(md.String()), 0o644))
	}
}

// run executes gcchurn with gctrace on and returns its stderr and the
// runtime/metrics totals it prints.
func run(bin string, args []string, env ...string) ([]byte, measured) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), "GODEBUG=gctrace=1", "GOMAXPROCS=2"), env...)
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

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "gcmodel:", err)
		os.Exit(1)
	}
}
