package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gopulse/gopulse/analyze/gc"
	"github.com/gopulse/gopulse/gctuner"
)

const gcUsage = `usage: gopulse gc [flags] TARGET
       gopulse gc [flags] -- command [args...]

GC health, a model of GOGC/GOMEMLIMIT, and advice.

TARGET is a net/http/pprof base URL (http://127.0.0.1:6060: /debug/vars is
sampled for --duration), or a GODEBUG=gctrace=1 log file ("-" for stdin).
After --, gopulse runs the command with gctrace on, passes its output through
to stderr, and analyses its GC when it exits (or after --duration).

exit status: 0 report written, 2 error

flags:
`

func runGC(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, gcUsage); fs.PrintDefaults() }
	var (
		format    = fs.String("format", "text", "output: text, json or html")
		out       = fs.String("out", "", "write the report to this file instead of stdout")
		duration  = fs.Duration("duration", 0, "URL: sampling window (default 10s); command: stop it after this long (default: until it exits)")
		interval  = fs.Duration("interval", time.Second, "URL: time between /debug/vars samples")
		gogcFlag  = fs.String("gogc", "", "the target's GOGC, when the source cannot tell (log files, URLs)")
		limitFlag = fs.String("gomemlimit", "", "the target's GOMEMLIMIT (e.g. 1GiB), when the source cannot tell")
		contFlag  = fs.String("container-limit", "", "the container's memory limit (e.g. 2GiB) for headroom and advice")
		targetCPU = fs.Float64("target-cpu", 0.05, "GC CPU fraction worth paying; advice aims below it")
		timeout   = fs.Duration("timeout", 10*time.Second, "URL: limit for each request")
	)
	var whatIf []gc.Setting
	fs.Func("what-if", "predict for GOGC[,GOMEMLIMIT], e.g. 400,1GiB (repeatable)", func(s string) error {
		st, err := parseWhatIf(s)
		if err == nil {
			whatIf = append(whatIf, st)
		}
		return err
	})
	var command []string
	for i, a := range args {
		if a == "--" {
			args, command = args[:i], args[i+1:]
			if len(command) == 0 {
				return usageError{"gc: nothing after --: give a command to run"}
			}
			break
		}
	}
	targets, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	switch {
	case command != nil && len(targets) > 0:
		return usageError{"gc: give a TARGET or -- command, not both"}
	case command == nil && len(targets) != 1:
		fs.Usage()
		return usageError{fmt.Sprintf("gc: want one TARGET, got %d", len(targets))}
	}
	if *format != "text" && *format != "json" && *format != "html" {
		return usageError{fmt.Sprintf("--format %q: want text, json or html", *format)}
	}
	if *targetCPU <= 0 || *targetCPU >= 1 {
		return usageError{fmt.Sprintf("--target-cpu %g: want a fraction between 0 and 1", *targetCPU)}
	}
	set := gc.Settings{}
	if *gogcFlag != "" {
		s, err := gc.SettingsFromEnv(func(k string) string {
			if k == "GOGC" {
				return *gogcFlag
			}
			return ""
		})
		if err != nil {
			return usageError{"--gogc: " + err.Error()}
		}
		set.GOGC, set.GOGCKnown = s.GOGC, true
	}
	if *limitFlag != "" {
		n, err := gc.ParseBytes(*limitFlag)
		if err != nil {
			return usageError{"--gomemlimit: " + err.Error()}
		}
		set.MemLimit, set.MemLimitKnown = n, true
	}
	if *contFlag != "" {
		n, err := gc.ParseBytes(*contFlag)
		if err != nil || n == gc.NoLimit {
			return usageError{fmt.Sprintf("--container-limit %q: want a byte count like 2GiB", *contFlag)}
		}
		set.ContainerLimit = uint64(n)
	}

	var (
		d     *gc.Data
		parse *gc.TraceStats
		title string
	)
	switch {
	case command != nil:
		title = "gopulse gc -- " + strings.Join(command, " ")
		d, parse, err = gcRunCommand(ctx, command, set, *duration, stdin, stderr)
	case strings.HasPrefix(targets[0], "http://") || strings.HasPrefix(targets[0], "https://"):
		title = "gopulse gc " + targets[0]
		dur := *duration
		if dur == 0 {
			dur = 10 * time.Second
		}
		if *interval <= 0 || *interval > dur {
			return usageError{fmt.Sprintf("--interval %s: want a positive duration no longer than --duration %s", *interval, dur)}
		}
		d, err = gcSampleVars(ctx, strings.TrimRight(targets[0], "/"), dur, *interval, *timeout, set, stderr)
	default:
		title = "gopulse gc " + targets[0]
		d, parse, err = gcReadLog(targets[0], stdin, set)
	}
	if err != nil {
		return err
	}
	rep := gc.Analyze(d, gc.AdviceOptions{TargetGCCPU: *targetCPU}, whatIf)
	rep.Parse = parse

	w := stdout
	var f *os.File
	if *out != "" {
		if f, err = os.Create(*out); err != nil {
			return fmt.Errorf("gc: --out: %w", err)
		}
		w = f
	}
	switch *format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	case "html":
		err = gc.WriteHTML(w, title, rep)
	default:
		err = writeGCText(w, rep)
	}
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("gc: write report: %w", err)
	}
	return nil
}

func parseWhatIf(s string) (gc.Setting, error) {
	g, l, _ := strings.Cut(s, ",")
	st := gc.Setting{MemLimit: gc.NoLimit}
	if strings.EqualFold(strings.TrimSpace(g), "off") {
		st.GOGC = -1
	} else {
		n, err := strconv.Atoi(strings.TrimSpace(g))
		if err != nil || n <= 0 {
			return st, fmt.Errorf("want GOGC[,GOMEMLIMIT] like 400,1GiB, got %q", s)
		}
		st.GOGC = n
	}
	if l != "" {
		n, err := gc.ParseBytes(l)
		if err != nil {
			return st, err
		}
		st.MemLimit = n
	}
	return st, nil
}

func gcReadLog(name string, stdin io.Reader, set gc.Settings) (*gc.Data, *gc.TraceStats, error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, nil, fmt.Errorf("gc: %w (TARGET is a gctrace log file, a URL, or -- command)", err)
		}
		defer f.Close()
		r = f
	}
	tr, err := gc.ParseTrace(r, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("gc: %s: %w", name, err)
	}
	d, err := gc.FromTrace(tr, set)
	if err != nil {
		return nil, nil, fmt.Errorf("gc: %s: %w", name, err)
	}
	return d, &tr.Stats, nil
}

// gcRunCommand runs the command with GODEBUG=gctrace=1 added, passes its
// stdout and its non-GC stderr through to stderr, and parses the GC lines
// as they come.
func gcRunCommand(ctx context.Context, command []string, set gc.Settings, dur time.Duration, stdin io.Reader, stderr io.Writer) (*gc.Data, *gc.TraceStats, error) {
	env := os.Environ()
	godebug := "gctrace=1"
	for i, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			if v != "" {
				godebug = v + ",gctrace=1"
			}
			env = append(env[:i:i], env[i+1:]...)
			break
		}
	}
	env = append(env, "GODEBUG="+godebug)
	// What the child runs with, unless the flags said otherwise.
	childSet, err := gc.SettingsFromEnv(os.Getenv)
	if err != nil {
		return nil, nil, usageError{"gc: the environment's " + err.Error()}
	}
	if !set.GOGCKnown {
		set.GOGC, set.GOGCKnown = childSet.GOGC, true
	}
	if !set.MemLimitKnown {
		set.MemLimit, set.MemLimitKnown = childSet.MemLimit, true
	}
	if set.ContainerLimit == 0 {
		// The child shares our cgroup: its limit is ours.
		if lim, _, err := gctuner.MemoryLimit(os.DirFS("/")); err == nil {
			set.ContainerLimit = lim
		}
	}
	runCtx := ctx
	if dur > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, dur)
		defer cancel()
	}
	cmd := exec.CommandContext(runCtx, command[0], command[1:]...)
	cmd.Env = env
	cmd.Stdin = stdin
	cmd.Stdout = stderr
	// Stop it the way a user would, then insist.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	cmd.WaitDelay = 3 * time.Second
	pr, err := cmd.StderrPipe()
	if err != nil {
		return nil, nil, fmt.Errorf("gc: %w", err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("gc: start %s: %w", command[0], err)
	}
	var cycles []gc.Cycle
	st, scanErr := gc.ScanTrace(pr, stderr, func(c gc.Cycle) { cycles = append(cycles, c) })
	waitErr := cmd.Wait()
	ran := time.Since(start).Round(time.Millisecond)
	if scanErr != nil {
		return nil, nil, fmt.Errorf("gc: reading %s's stderr: %w", command[0], scanErr)
	}
	stopped := runCtx.Err() != nil && ctx.Err() == nil
	var ee *exec.ExitError
	if waitErr != nil && !stopped && !errors.As(waitErr, &ee) {
		return nil, nil, fmt.Errorf("gc: %s: %w", command[0], waitErr)
	}
	tr := &gc.Trace{Cycles: cycles, Stats: st}
	if len(cycles) == 0 {
		return nil, nil, fmt.Errorf("gc: %s ran %v (%v) and completed no GC cycle: nothing to analyse (let it run longer, or give it work that allocates)", command[0], ran, exitText(waitErr))
	}
	d, err := gc.FromTrace(tr, set)
	if err != nil {
		return nil, nil, fmt.Errorf("gc: %w", err)
	}
	if waitErr != nil && !stopped {
		d.Notes = append(d.Notes, fmt.Sprintf("%s %v after %v", command[0], exitText(waitErr), ran))
	}
	return d, &tr.Stats, nil
}

func exitText(err error) string {
	if err == nil {
		return "exited with status 0"
	}
	return err.Error()
}

// gcSampleVars reads /debug/vars every interval for dur.
func gcSampleVars(ctx context.Context, base string, dur, interval, timeout time.Duration, set gc.Settings, stderr io.Writer) (*gc.Data, error) {
	client := &http.Client{Timeout: timeout}
	get := func() (gc.VarsSnapshot, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", base+"/debug/vars", nil)
		if err != nil {
			return gc.VarsSnapshot{}, usageError{fmt.Sprintf("gc: bad URL %q: %v", base, err)}
		}
		resp, err := client.Do(req)
		if err != nil {
			return gc.VarsSnapshot{}, fmt.Errorf("gc: %w", err)
		}
		defer resp.Body.Close()
		t := time.Now()
		if resp.StatusCode != http.StatusOK {
			return gc.VarsSnapshot{}, fmt.Errorf("gc: %s/debug/vars: %s (the service must import expvar; or run it with GODEBUG=gctrace=1 and give gopulse the log)", base, resp.Status)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		if err != nil {
			return gc.VarsSnapshot{}, fmt.Errorf("gc: read %s/debug/vars: %w", base, err)
		}
		s, err := gc.ParseVars(bytes.NewReader(body), t)
		if err != nil {
			return gc.VarsSnapshot{}, fmt.Errorf("gc: %s/debug/vars: %w", base, err)
		}
		return s, nil
	}
	first, err := get()
	if err != nil {
		return nil, err
	}
	snaps := []gc.VarsSnapshot{first}
	fmt.Fprintf(stderr, "gopulse gc: sampling %s/debug/vars every %v for %v\n", base, interval, dur)
	tk := time.NewTicker(interval)
	defer tk.Stop()
	deadline := time.Now().Add(dur)
	partial := false
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			partial = true
		case <-tk.C:
			s, err := get()
			if err != nil {
				fmt.Fprintf(stderr, "gopulse gc: sample failed, the window ends here: %v\n", err)
				partial = true
				break
			}
			snaps = append(snaps, s)
			continue
		}
		break
	}
	d, err := gc.FromMemStats(snaps, set)
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	if partial {
		d.Partial = true
		d.Notes = append(d.Notes, fmt.Sprintf("sampling stopped early after %d snapshots", len(snaps)))
	}
	return d, nil
}

func writeGCText(w io.Writer, r gc.Report) error {
	var b bytes.Buffer
	s := r.Summary
	fmt.Fprintf(&b, "GC health (%s, %.1f s", s.Source, s.WindowSeconds)
	if s.Partial {
		b.WriteString(", PARTIAL")
	}
	b.WriteString(")\n")
	tw := tabwriter.NewWriter(&b, 2, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "  cycles\t%d (%d forced), %.2f/s\n", s.Cycles, s.ForcedCycles, s.CyclesPerSecond)
	fmt.Fprintf(tw, "  GC CPU\t%.1f%% of capacity (assist %.1f%%, idle marking %.1f%%)\n", s.GCCPUFraction*100, s.AssistFraction*100, s.IdleMarkFraction*100)
	exact := "exact per cycle"
	if !s.PausesExact {
		exact = "histogram bucket bounds"
	}
	fmt.Fprintf(tw, "  pauses\tp50 %s  p99 %s  max %s (%s)\n", gcSec(s.PauseP50Seconds), gcSec(s.PauseP99Seconds), gcSec(s.PauseMaxSeconds), exact)
	fmt.Fprintf(tw, "  allocation\t%s/s\n", gc.FormatBytes(s.AllocBytesPerSecond))
	fmt.Fprintf(tw, "  heap\tlive %s  goal %s  peak %s\n", gc.FormatBytes(float64(s.LiveHeapBytes)), gc.FormatBytes(float64(s.HeapGoalBytes)), gc.FormatBytes(float64(s.PeakHeapBytes)))
	gogc := fmt.Sprint(s.GOGC)
	if s.GOGC < 0 {
		gogc = "off"
	}
	fmt.Fprintf(tw, "  GOGC\t%s (%s)\n", gogc, s.GOGCSource)
	lim := gc.FormatBytes(float64(s.GOMEMLIMITBytes))
	if s.GOMEMLIMITBytes == gc.NoLimit {
		lim = "none"
	}
	fmt.Fprintf(tw, "  GOMEMLIMIT\t%s (%s)\n", lim, s.GOMEMLIMITSrc)
	if s.LimiterEngagements >= 0 {
		fmt.Fprintf(tw, "  CPU limiter\tengaged %d×\n", s.LimiterEngagements)
	}
	if s.MemoryLimitedCycles > 0 {
		fmt.Fprintf(tw, "  memory-limited cycles\t%d\n", s.MemoryLimitedCycles)
	}
	if s.ContainerLimitBytes > 0 {
		fmt.Fprintf(tw, "  container\tlimit %s, headroom %s\n", gc.FormatBytes(float64(s.ContainerLimitBytes)), gc.FormatBytes(float64(s.HeadroomBytes)))
	}
	tw.Flush()
	b.WriteString("\nAdvice\n")
	for _, a := range r.Advice {
		fmt.Fprintf(&b, "  [%s] %s\n", a.Kind, a.Text)
	}
	if len(r.WhatIf) > 0 {
		b.WriteString("\nWhat if (model)\n")
		tw = tabwriter.NewWriter(&b, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "  GOGC\tGOMEMLIMIT\tgoal\tpeak heap\tcycles/s\tGC CPU\t")
		for _, p := range r.WhatIf {
			l := gc.FormatBytes(float64(p.MemLimit))
			if p.MemLimit == gc.NoLimit {
				l = "none"
			}
			flag := ""
			switch {
			case p.DeathSpiral:
				flag = "death spiral"
			case p.MemoryLimited:
				flag = "limit binds"
			}
			if p.Saturated {
				flag += " GC-bound (>50%: the program would slow down instead)"
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%.2f\t%.1f%%\t%s\n", p.GOGC, l, gc.FormatBytes(p.HeapGoal), gc.FormatBytes(p.PeakHeap), p.CyclesPerSecond, p.GCCPUFraction*100, flag)
		}
		tw.Flush()
	}
	if r.Fit != nil {
		if r.Fit.OK {
			fmt.Fprintf(&b, "\nEmpirical fit CPU = α·f^β + γ·heap_util: β = %.2f (95%% %.2f–%.2f), R² %.2f over %d windows\n", r.Fit.Beta, r.Fit.BetaLow, r.Fit.BetaHigh, r.Fit.R2, r.Fit.N)
		} else {
			fmt.Fprintf(&b, "\nEmpirical fit CPU = α·f^β + γ·heap_util: not supported by this data (%s)\n", r.Fit.Reason)
		}
	}
	if p := r.Parse; p != nil && len(p.Problems) > 0 {
		fmt.Fprintf(&b, "\n%d lines looked like GC output but did not parse:\n", len(p.Problems))
		for i, pr := range p.Problems {
			if i == 5 {
				fmt.Fprintf(&b, "  … %d more (see --format json)\n", len(p.Problems)-5)
				break
			}
			fmt.Fprintf(&b, "  %s\n", pr)
		}
	}
	if len(s.Notes) > 0 {
		b.WriteString("\nNotes\n")
		for _, n := range s.Notes {
			fmt.Fprintf(&b, "  - %s\n", n)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

func gcSec(s float64) string {
	switch {
	case s >= 1:
		return fmt.Sprintf("%.2fs", s)
	case s >= 1e-3:
		return fmt.Sprintf("%.2fms", s*1e3)
	}
	return fmt.Sprintf("%.0fµs", s*1e6)
}
