// Command ramp is loadramp's accuracy table: it builds
// internal/testprog/capacity, starts each variant (known capacity by
// construction), runs a capacity search against it and prints the found
// maximum sustainable rate against the truth, with the named cause.
//
//	go run ./bench/ramp [-step 2s] [-slo 'p99<100ms,errors<0.1%'] [-only NAME] [-v]
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gopulse/gopulse/loadramp"
)

type variant struct {
	name string
	env  []string
	args []string
	// truth is the capacity by construction; 0 means it depends on this
	// machine's CPU and is measured in the same run as the median of three
	// closed-loop saturation runs before the ramp (one after it checks
	// that the machine stayed the same).
	truth float64
	cause string
}

var variants = []variant{
	{"workers 4×2ms", nil, []string{"-workers", "4", "-service", "2ms"}, 2000, loadramp.CauseConcurrency},
	{"workers 16×4ms", nil, []string{"-workers", "16", "-service", "4ms"}, 4000, loadramp.CauseConcurrency},
	{"workers 2×10ms", nil, []string{"-workers", "2", "-service", "10ms"}, 200, loadramp.CauseConcurrency},
	{"GC-bound (measured)", []string{"GOGC=20", "GOMAXPROCS=1"},
		[]string{"-workers", "64", "-service", "1ms", "-alloc", "32768", "-live", "32"}, 0, loadramp.CauseGC},
}

func main() {
	step := flag.Duration("step", 2*time.Second, "measured duration of each step")
	sloFlag := flag.String("slo", "p99<100ms,errors<0.1%", "SLO")
	only := flag.String("only", "", "run only variants whose name contains this")
	verbose := flag.Bool("v", false, "print every step")
	htmlDir := flag.String("html", "", "write each variant's HTML report into this `directory`")
	flag.Parse()
	slo, err := loadramp.ParseSLO(*sloFlag)
	if err != nil {
		fatal(err)
	}
	dir, err := os.MkdirTemp("", "bench-ramp")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "capacity")
	if out, err := exec.Command("go", "build", "-o", bin, "./internal/testprog/capacity").CombinedOutput(); err != nil {
		fatal(fmt.Errorf("build capacity server (run from the module root): %v\n%s", err, out))
	}
	fmt.Printf("SLO %s, steps %s + 500ms warm-up, search resolution 5%%\n\n", slo, *step)
	fmt.Printf("%-22s %8s %8s %7s %6s %6s  %s\n", "server", "truth", "found", "error", "steps", "secs", "cause named")
	for _, v := range variants {
		if *only != "" && !strings.Contains(v.name, *only) {
			continue
		}
		r, truth, note, err := runOne(bin, v, slo, *step)
		if err != nil {
			fmt.Printf("%-22s error: %v\n", v.name, err)
			continue
		}
		v.truth = truth
		ok := "✓"
		if !strings.HasPrefix(r.Saturation, v.cause+":") {
			ok = "✗ (want " + v.cause + ")"
		}
		fmt.Printf("%-22s %8.0f %8.0f %+6.1f%% %6d %6.1f  %s %s\n", v.name, v.truth, r.MaxSustainableRPS,
			(r.MaxSustainableRPS/v.truth-1)*100, len(r.Steps), r.DurationSeconds, ok, firstWords(r.Saturation, 14))
		if note != "" {
			fmt.Printf("%-22s %s\n", "", note)
		}
		if *verbose {
			r.WriteText(os.Stdout)
			fmt.Println()
		}
		if *htmlDir != "" {
			name := strings.Map(func(r rune) rune {
				if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
					return r
				}
				return '-'
			}, strings.ToLower(v.name))
			f, err := os.Create(filepath.Join(*htmlDir, name+".html"))
			if err != nil {
				fatal(err)
			}
			r.WriteHTML(f)
			f.Close()
		}
	}
}

func runOne(bin string, v variant, slo loadramp.SLO, step time.Duration) (*loadramp.Result, float64, string, error) {
	cmd := exec.Command(bin, v.args...)
	cmd.Env = append(os.Environ(), v.env...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, 0, "", err
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return nil, 0, "", fmt.Errorf("read server address: %w", err)
	}
	url := strings.TrimPrefix(strings.TrimSpace(line), "listening ") + "/"
	truth, note := v.truth, ""
	var runs []float64
	if truth == 0 {
		// The first closed-loop run warms the server up (connections, heap
		// growth to its steady state); the median of the next three is the
		// truth: the GC-bound server's per-request work is fixed (its
		// allocation and live heap) and so is its GOMAXPROCS, so its
		// saturation throughput is its capacity on this machine now.
		if _, err = saturation(url); err != nil {
			return nil, 0, "", err
		}
		for range 3 {
			x, err := saturation(url)
			if err != nil {
				return nil, 0, "", err
			}
			runs = append(runs, x)
		}
		slices.Sort(runs)
		truth = runs[1]
	}
	guess := truth
	r, err := loadramp.Run(context.Background(), loadramp.Config{
		Target: loadramp.Target{URL: url}, SLO: slo,
		StartRate: guess / 8, MaxRate: guess * 4, Resolution: 0.05,
		StepDuration: step, Warmup: 500 * time.Millisecond, MaxConns: 128, MaxSteps: 20,
	})
	if err != nil {
		return nil, 0, "", err
	}
	if v.truth == 0 {
		after, err := saturation(url)
		if err != nil {
			return nil, 0, "", err
		}
		note = fmt.Sprintf("truth = median closed-loop saturation throughput before the ramp (%.0f / %.0f / %.0f); %.0f after it", runs[0], runs[1], runs[2], after)
		if math.Abs(after-truth) > 0.15*truth || (runs[2]-runs[0]) > 0.15*truth {
			note += " — UNSTABLE: this machine's spare CPU changed during the run; the row says little"
		}
	}
	return r, truth, note, nil
}

// saturation is the server's throughput under closed-loop load with 32
// connections for 2 s: its capacity when that is set by its CPU.
func saturation(url string) (float64, error) {
	g, err := loadramp.NewGenerator(loadramp.Target{URL: url}, 32)
	if err != nil {
		return 0, err
	}
	defer g.Close()
	r, err := g.Step(context.Background(), loadramp.StepSpec{Warmup: 500 * time.Millisecond, Duration: 2 * time.Second})
	if err != nil {
		return 0, err
	}
	return r.AchievedRPS, nil
}

func firstWords(s string, n int) string {
	f := strings.Fields(s)
	if len(f) > n {
		return strings.Join(f[:n], " ") + " …"
	}
	return s
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench/ramp:", err)
	os.Exit(1)
}
