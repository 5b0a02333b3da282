package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gopulse/gopulse/analyze/goroutine"
	"github.com/gopulse/gopulse/internal/leakcheck"
	"github.com/gopulse/gopulse/internal/leakreport"
)

const leaksUsage = `usage: gopulse leaks [flags] TARGET...

TARGET is a net/http/pprof base URL (http://127.0.0.1:6060), or goroutine dump
files in time order (debug=2 or debug=1 text, pprof protobuf, gzipped or not;
"-" for stdin). With --demo, gopulse starts its own leaky demo and targets it.

exit status: 0 no leak, 1 at least one group with verdict leak, 2 error

flags:
`

func runLeaks(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("leaks", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, leaksUsage); fs.PrintDefaults() }
	var (
		cfg      leakcheck.Config
		format   = fs.String("format", "text", "output: text, json or html")
		out      = fs.String("out", "", "write the report to this file instead of stdout")
		demo     = fs.Bool("demo", false, "start the bundled leaky demo service and analyze it")
		healthy  = fs.Bool("demo-healthy", false, "with --demo: start the healthy variant instead")
		quiet    = fs.Bool("quiet", false, "no progress lines on stderr")
		simName  = fs.String("similarity", "lines", "grouping: lines (same functions and lines, arguments ignored), funcs (lines ignored too), args (arguments compared too)")
		traceDur time.Duration
	)
	fs.IntVar(&cfg.Samples, "samples", 4, "goroutine snapshots to take from a live target")
	fs.DurationVar(&cfg.Interval, "interval", 10*time.Second, "time between snapshots")
	fs.DurationVar(&traceDur, "trace", 5*time.Second, "execution trace taken at the end of the window (0 = off)")
	fs.IntVar(&cfg.PID, "pid", 0, "target's process ID for the /proc view (default: found from the port on this host; -1 = off)")
	fs.IntVar(&cfg.FullDumpMax, "full-dump-max", 5000, "use debug=2 dumps (IDs, wait times; stop the world) only up to this many goroutines; -1 = never")
	fs.IntVar(&cfg.LeakProfileMax, "leak-profile-max", 20000, "ask for /debug/pprof/goroutineleak only up to this many goroutines; -1 = never")
	fs.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "limit for each request to the target")
	targets, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if cfg.Samples < 1 {
		return usageError{fmt.Sprintf("--samples %d: want at least 1", cfg.Samples)}
	}
	if cfg.Interval <= 0 && cfg.Samples > 1 {
		return usageError{fmt.Sprintf("--interval %s: want a positive duration", cfg.Interval)}
	}
	if traceDur < 0 {
		return usageError{fmt.Sprintf("--trace %s: want 0 (off) or a positive duration", traceDur)}
	}
	cfg.Trace = traceDur
	if traceDur == 0 {
		cfg.Trace = -1
	}
	sim, ok := similarities[*simName]
	if !ok {
		return usageError{fmt.Sprintf("--similarity %q: want lines, funcs or args", *simName)}
	}
	cfg.Similarity = sim
	render, ok := renderers[*format]
	if !ok {
		return usageError{fmt.Sprintf("--format %q: want text, json or html", *format)}
	}
	if *demo == (len(targets) > 0) {
		fs.Usage()
		if *demo {
			return usageError{"--demo takes no TARGET"}
		}
		return usageError{"no TARGET given: a pprof URL such as http://127.0.0.1:6060, dump files, or --demo"}
	}
	if !*quiet {
		cfg.Progress = func(s string) { fmt.Fprintln(stderr, s) }
	}

	var res *leakcheck.Result
	switch {
	case *demo:
		variant := "leaky"
		if *healthy {
			variant = "healthy"
		}
		if !flagSet(fs, "interval") {
			// The demo leaks fast: a short window makes the first run quick.
			cfg.Interval = 3 * time.Second
		}
		res, err = withDemo(ctx, variant, stderr, func(url string) (*leakcheck.Result, error) {
			return leakcheck.Live(ctx, url, cfg)
		})
	case isURL(targets[0]):
		if len(targets) > 1 {
			return usageError{"give one URL, or dump files"}
		}
		res, err = leakcheck.Live(ctx, targets[0], cfg)
	default:
		for _, t := range targets {
			if isURL(t) {
				return usageError{"give one URL, or dump files, not both"}
			}
			if i := strings.Index(t, "://"); i > 0 && !fileExists(t) {
				return usageError{fmt.Sprintf("target %q: only http:// and https:// URLs are supported", t)}
			}
		}
		res, err = leakcheck.Files(targets, stdin, sim)
	}
	if err != nil {
		return err
	}

	w := stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return fmt.Errorf("create report file: %w", err)
		}
		defer f.Close()
		w = f
	}
	if err := render(w, res); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if *out != "" {
		if err := w.(*os.File).Close(); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		fmt.Fprintf(stderr, "report written to %s\n", *out)
	}
	for _, g := range res.Report.Groups {
		if g.Verdict == goroutine.VerdictLeak {
			return errLeaksFound
		}
	}
	return nil
}

var similarities = map[string]goroutine.Similarity{
	"lines": goroutine.SameLines,
	"funcs": goroutine.SameFuncs,
	"args":  goroutine.ExactArgs,
}

var renderers = map[string]func(io.Writer, *leakcheck.Result) error{
	"text": leakreport.Text,
	"json": leakreport.JSON,
	"html": leakreport.HTML,
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

// withDemo runs `gopulse demo VARIANT` as a child process (its goroutines
// must not mix with ours), waits for its address, calls fn, and stops it.
func withDemo(ctx context.Context, variant string, stderr io.Writer, fn func(url string) (*leakcheck.Result, error)) (*leakcheck.Result, error) {
	url, stop, err := startDemo(ctx, variant, stderr)
	if err != nil {
		return nil, err
	}
	defer stop()
	return fn(url)
}

// startDemo starts `gopulse demo VARIANT` on a free loopback port and
// returns its pprof URL and the function that stops it (and waits for it).
func startDemo(ctx context.Context, variant string, stderr io.Writer) (string, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, fmt.Errorf("find own executable to start the demo: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(ctx, exe, "demo", variant, "--listen", "127.0.0.1:0")
	cmd.Stderr = stderr
	cmd.WaitDelay = 2 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return "", nil, fmt.Errorf("start demo: %w", err)
	}
	stop := func() {
		cancel()
		_ = cmd.Wait()
	}
	url, err := readAnnounce(stdout, 10*time.Second)
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("demo did not start: %w", err)
	}
	fmt.Fprintf(stderr, "started the %s demo at %s (pid %d)\n", variant, url, cmd.Process.Pid)
	return url, stop, nil
}

// readAnnounce reads the demo's "pprof URL" line within a time limit.
func readAnnounce(r io.Reader, limit time.Duration) (string, error) {
	type line struct {
		s   string
		err error
	}
	ch := make(chan line, 1)
	go func() {
		s, err := bufio.NewReader(r).ReadString('\n')
		ch <- line{s, err}
		// Drain the rest so the child never blocks on a full pipe.
		_, _ = io.Copy(io.Discard, r)
	}()
	select {
	case l := <-ch:
		if l.err != nil {
			return "", l.err
		}
		f := strings.Fields(l.s)
		if len(f) != 2 || f[0] != "pprof" {
			return "", fmt.Errorf("unexpected first line %q", l.s)
		}
		return f[1], nil
	case <-time.After(limit):
		return "", fmt.Errorf("no address announced within %s", limit)
	}
}

func version() string {
	v := "gopulse (devel)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = "gopulse " + bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v += " " + s.Value
			}
		}
		v += " " + bi.GoVersion
	}
	return v
}
