// Command leakscore scores gopulse's goroutine-leak verdicts on the leak
// corpus (internal/testprog/leakcorpus) and prints the per-pattern table with
// precision and recall, for docs/BENCHMARKS.md.
//
//	go run ./bench/leakscore
//	go run ./bench/leakscore -samples 6 -interval 5s -format proto -parallel 4
//
// Run it from inside the gopulse module: it builds the corpus with `go build`.
// It exits 1 when a pattern could not be run, 2 on bad flags.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gopulse/gopulse/internal/leakscore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("leakscore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	samples := fs.Int("samples", 4, "snapshots per pattern")
	interval := fs.Duration("interval", 2*time.Second, "time between snapshots")
	settle := fs.Duration("settle", time.Second, "wait between a pattern's start and its first snapshot")
	format := fs.String("format", "debug2", "dump format to scrape: debug2 or proto")
	parallel := fs.Int("parallel", 8, "patterns running at once")
	only := fs.String("patterns", "", "comma-separated pattern names (default: all)")
	verbose := fs.Bool("v", false, "print a line per pattern as it finishes")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := leakscore.Config{
		Samples:  *samples,
		Interval: *interval,
		Settle:   *settle,
		Format:   leakscore.Format(*format),
		Parallel: *parallel,
	}
	if *only != "" {
		cfg.Patterns = strings.Split(*only, ",")
	}
	if *verbose {
		cfg.Log = stderr
	}
	score, err := leakscore.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		if score == nil {
			return 2
		}
	}
	fmt.Fprintf(stdout, "leak corpus: %d samples every %s after %s, format %s, %d in parallel\n\n",
		score.Config.Samples, score.Config.Interval, score.Config.Settle, score.Config.Format, score.Config.Parallel)
	if err := score.WriteTable(stdout); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if len(score.Failed()) > 0 {
		return 1
	}
	return 0
}
