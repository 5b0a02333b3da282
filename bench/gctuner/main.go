// Command gctuner compares GC settings on internal/testprog/gcchurn under a
// simulated container limit (gcchurn exits with 137 when the memory the
// runtime holds exceeds it, as the OOM killer would):
//
//   - bursty load (rate ×4 for 2 s, ÷4 for 6 s): GOGC=100 with no limit,
//     a static GOMEMLIMIT of 90% (automemlimit's default), and gctuner;
//     GC CPU, p99 time of a 64 KiB allocation burst (assists land here),
//     allocation rate, peak heap, OOM kills;
//
//   - a slow leak: when does gctuner's give-up rule fire after GC CPU
//     at the limit goes above its threshold, against how long the static
//     limit crawls.
//
//     go run ./bench/gctuner    # ~3 minutes on 2 cores
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

	"github.com/gopulse/gopulse/analyze/gc"
)

type report struct {
	Seconds  float64   `json:"seconds"`
	GCFrac   float64   `json:"gc_cpu_fraction"`
	Alloc    float64   `json:"alloc_bytes"`
	Peak     float64   `json:"peak_heap_bytes"`
	P99      float64   `json:"p99_chunk_seconds"`
	Chunks   int       `json:"chunks"`
	Cycles   int       `json:"gc_cycles"`
	GiveUpAt []float64 `json:"giveup_at_seconds"`
	oom      bool
	oomAt    string
	stderr   []byte
}

func main() {
	dur := flag.Duration("duration", 20*time.Second, "measured time per bursty run")
	reps := flag.Int("reps", 2, "runs per mode (medians reported)")
	out := flag.String("o", "", "also write the markdown here")
	leakOnly := flag.Bool("leak-only", false, "run only the slow-leak scenario")
	flag.Parse()
	dir, err := os.MkdirTemp("", "gctunerbench")
	check(err)
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "gcchurn")
	if b, err := exec.Command("go", "build", "-o", bin, "./internal/testprog/gcchurn").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build gcchurn (run from the module root): %v\n%s", err, b)
		os.Exit(1)
	}
	var md strings.Builder
	if !*leakOnly {
		bursty(bin, *dur, *reps, &md)
	}
	leak(bin, &md)
	fmt.Print(md.String())
	if *out != "" {
		check(os.WriteFile(*out, []byte(md.String()), 0o644))
	}
}

func bursty(bin string, dur time.Duration, reps int, md *strings.Builder) {
	const container = 256 << 20
	base := []string{"-live", "32", "-rate", "40", "-burst", "2s", "-latency", "-warmup", "2s",
		"-duration", (dur + 2*time.Second).String(), "-container", fmt.Sprint(container)}
	modes := []struct {
		name string
		env  []string
		args []string
	}{
		{"GOGC=100, no limit", []string{"GOGC=100"}, nil},
		{"GOGC=100, GOMEMLIMIT=90% (static)", []string{"GOGC=100", fmt.Sprintf("GOMEMLIMIT=%d", container*9/10)}, nil},
		{"gctuner (target 5% GC CPU)", nil, []string{"-tuner"}},
	}
	fmt.Fprintf(md, "gctuner comparison: %s %s/%s, GOMAXPROCS=2, gcchurn -live 32 -rate 40 (bursts ×4 for 2 s every 8 s), simulated container limit 256 MiB, %v measured per run, median of %d runs.\n\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, dur, reps)
	md.WriteString("| mode | GC CPU | p99 64 KiB burst | alloc MiB/s | peak heap MiB | OOM kills |\n|---|---:|---:|---:|---:|---:|\n")
	var gcs []float64
	var p99s []float64
	for _, m := range modes {
		var rs []report
		ooms := 0
		for i := 0; i < reps; i++ {
			r := run(bin, append(append([]string{}, base...), m.args...), m.env)
			if r.oom {
				ooms++
			}
			rs = append(rs, r)
			fmt.Fprintf(os.Stderr, "%s run %d: GC CPU %.3f p99 %.2fms alloc %.1f MiB/s peak %.0f MiB oom %v\n",
				m.name, i+1, r.GCFrac, r.P99*1e3, r.Alloc/r.Seconds/(1<<20), r.Peak/(1<<20), r.oom)
			for _, l := range strings.Split(string(r.stderr), "\n") {
				if strings.HasPrefix(l, "gctuner: ") {
					fmt.Fprintln(os.Stderr, "   ", l)
				}
			}
		}
		g := median(rs, func(r report) float64 { return r.GCFrac })
		p := median(rs, func(r report) float64 { return r.P99 })
		a := median(rs, func(r report) float64 { return r.Alloc / r.Seconds })
		pk := median(rs, func(r report) float64 { return r.Peak })
		gcs, p99s = append(gcs, g), append(p99s, p)
		fmt.Fprintf(md, "| %s | %.1f%% | %.2f ms | %.1f | %.0f | %d/%d |\n", m.name, g*100, p*1e3, a/(1<<20), pk/(1<<20), ooms, reps)
	}
	fmt.Fprintf(md, "\ngctuner vs GOGC=100: GC CPU %+.0f%%, p99 %+.0f%%; vs static 90%%: GC CPU %+.0f%%, p99 %+.0f%%.\n",
		(gcs[2]/gcs[0]-1)*100, (p99s[2]/p99s[0]-1)*100, (gcs[2]/gcs[1]-1)*100, (p99s[2]/p99s[1]-1)*100)

}

func leak(bin string, md *strings.Builder) {
	// The slow leak: 2 MiB/s on top of 32 MiB live in a 128 MiB container.
	const leakContainer = 128 << 20
	leakArgs := []string{"-live", "32", "-rate", "40", "-leak", "2", "-duration", "50s", "-container", fmt.Sprint(leakContainer)}
	md.WriteString("\nSlow leak (2 MiB/s on 32 MiB live, 128 MiB container, up to 50 s):\n\n| mode | crawl: GC CPU > 25% from | outcome |\n|---|---:|---|\n")
	for _, m := range []struct {
		name string
		env  []string
		args []string
	}{
		{"GOGC=100, GOMEMLIMIT=90% (static)", []string{"GOGC=100", fmt.Sprintf("GOMEMLIMIT=%d", leakContainer*9/10)}, nil},
		{"gctuner, give-up at 25% GC CPU for 3 s (raise)", nil, []string{"-tuner", "-giveup-after", "3s", "-giveup-cpu", "0.25"}},
		{"gctuner, give-up at 25% GC CPU for 3 s (report)", nil, []string{"-tuner", "-giveup-after", "3s", "-giveup-cpu", "0.25", "-giveup-report"}},
	} {
		r := run(bin, append(append([]string{}, leakArgs...), m.args...), m.env)
		hot := crawlStart(r.stderr)
		outcome := fmt.Sprintf("ran to the end (%.0f s)", r.Seconds)
		if r.oom {
			outcome = "OOM " + r.oomAt
		}
		if len(r.GiveUpAt) > 0 {
			outcome = fmt.Sprintf("give-up rule fired at t=%.1f s (%.1f s after the crawl began); ", r.GiveUpAt[0], r.GiveUpAt[0]-hot) + outcome
		}
		hs := "never"
		if hot >= 0 {
			hs = fmt.Sprintf("t=%.1f s", hot)
		}
		fmt.Fprintf(md, "| %s | %s | %s |\n", m.name, hs, outcome)
		fmt.Fprintf(os.Stderr, "leak %s: crawl %s, %s\n", m.name, hs, outcome)
		for _, l := range strings.Split(string(r.stderr), "\n") {
			if strings.HasPrefix(l, "gctuner: ") && !strings.Contains(l, " start:") {
				fmt.Fprintln(os.Stderr, "   ", l)
			}
		}
	}
}

func run(bin string, args, env []string) report {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), "GODEBUG=gctrace=1", "GOMAXPROCS=2"), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var r report
	r.stderr = stderr.Bytes()
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		line := sc.Text()
		if j, ok := strings.CutPrefix(line, "gcchurn: {"); ok {
			check(json.Unmarshal([]byte("{"+j), &r))
		}
		if o, ok := strings.CutPrefix(line, "gcchurn: OOM: "); ok {
			r.oom, r.oomAt = true, o
		}
	}
	// An OOM exit prints no report: take give-up times from the events.
	if len(r.GiveUpAt) == 0 {
		for _, l := range strings.Split(stderr.String(), "\n") {
			var t float64
			if _, err := fmt.Sscanf(l, "gctuner: t=%fs", &t); err == nil && (strings.Contains(l, "gctuner giveup:") || strings.Contains(l, "gctuner unhealthy:")) {
				r.GiveUpAt = append(r.GiveUpAt, t)
			}
		}
	}
	if err != nil && !r.oom {
		fmt.Fprintf(os.Stderr, "gcchurn %v: %v\n%s", args, err, stderr.Bytes())
		os.Exit(1)
	}
	return r
}

// crawlStart finds, from the run's gctrace, the first time the GC used
// more than 25% CPU over 5 consecutive cycles after the first 5 s (start-up
// cycles on a small heap are expensive too): in the leak scenario that
// happens only with the heap at the limit — the death-spiral crawl.
// -1: never.
func crawlStart(stderr []byte) float64 {
	tr, err := gc.ParseTrace(bytes.NewReader(stderr), nil)
	if err != nil {
		return -1
	}
	cs := tr.Cycles
	for i := 0; i+5 < len(cs); i++ {
		if cs[i].Start < 5*time.Second {
			continue
		}
		w := cs[i : i+6]
		span := (w[5].Start - w[0].Start).Seconds()
		var cpu float64
		for _, c := range w[:5] {
			cpu += c.GCCPU().Seconds()
		}
		if span > 0 && cpu/span/float64(w[0].Procs) > 0.25 {
			return w[0].Start.Seconds()
		}
	}
	return -1
}

func median(rs []report, f func(report) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	for i := range v {
		for j := i + 1; j < len(v); j++ {
			if v[j] < v[i] {
				v[i], v[j] = v[j], v[i]
			}
		}
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "gctuner bench:", err)
		os.Exit(1)
	}
}
