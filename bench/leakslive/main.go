// Command leakslive measures how long `gopulse leaks` takes to produce its
// report against a live target with many goroutines, against the product's
// bound: samples × interval + 5 s. The target is the real manygoroutines
// program serving net/http/pprof on 127.0.0.1.
//
//	go run ./bench/leakslive -n 100000            # defaults: 4 samples, 10 s, 5 s trace
//	go run ./bench/leakslive -n 10000 -interval 2s
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/gopulse/gopulse/internal/leakcheck"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "leakslive:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("n", 100000, "goroutines in the target")
	samples := flag.Int("samples", 4, "snapshots")
	interval := flag.Duration("interval", 10*time.Second, "time between snapshots")
	traceDur := flag.Duration("trace", 5*time.Second, "execution trace length (0 = off)")
	flag.Parse()

	dir, err := os.MkdirTemp("", "leakslive")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "manygoroutines")
	if out, err := exec.Command("go", "build", "-o", bin, "./internal/testprog/manygoroutines").CombinedOutput(); err != nil {
		return fmt.Errorf("build target: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-serve", "-n", fmt.Sprint(*n))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return fmt.Errorf("target did not start: %w", err)
	}
	addr := ""
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "addr="); ok {
			addr = v
		}
	}
	if addr == "" {
		return errors.New("target announced no address: " + line)
	}

	cfg := leakcheck.Config{Samples: *samples, Interval: *interval, Trace: *traceDur, PID: cmd.Process.Pid}
	if *traceDur == 0 {
		cfg.Trace = -1
	}
	start := time.Now()
	res, err := leakcheck.Live(ctx, addr, cfg)
	if err != nil {
		return err
	}
	took := time.Since(start)
	bound := time.Duration(*samples-1)*(*interval) + 5*time.Second
	// The product's bound counts samples × interval; the first snapshot is
	// taken at once, so the window itself is (samples−1) × interval.
	limit := time.Duration(*samples)*(*interval) + 5*time.Second
	leaks := 0
	for _, g := range res.Report.Groups {
		if g.Verdict == "leak" {
			leaks++
		}
	}
	fmt.Printf("| goroutines | samples × interval | trace | mode | report ready | bound (samples×interval+5s) | groups | leak groups | evidence errors |\n|---|---|---|---|---|---|---|---|---|\n")
	fmt.Printf("| %d | %d × %s | %s | %s | %.1f s | %.0f s | %d | %d | %d |\n", res.Report.Goroutines[len(res.Report.Goroutines)-1],
		*samples, *interval, *traceDur, strings.SplitN(res.Mode, " (", 2)[0], took.Seconds(), limit.Seconds(), len(res.Report.Groups), leaks, len(res.Errors))
	fmt.Printf("\nsampling window alone: %.0f s; overhead beyond the window: %.1f s\n", (bound - 5*time.Second).Seconds(), (took - (bound - 5*time.Second)).Seconds())
	for _, e := range res.Errors {
		fmt.Println("evidence error:", e)
	}
	if took > limit {
		return fmt.Errorf("report took %s, over the bound %s", took, limit)
	}
	return nil
}
