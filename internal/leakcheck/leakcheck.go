// Package leakcheck runs a goroutine-leak investigation: against a live
// service that serves net/http/pprof (snapshots over time, an execution trace
// of the window, the runtime's goroutineleak profile, the OS view from /proc)
// or against dump files. It gathers the evidence; analyze/goroutine judges.
// The CLI uses it today and the collector's scraper reuses it.
package leakcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/gopulse/gopulse/analyze/goroutine"
)

// Config tunes a live investigation. The zero value gets the defaults of
// `gopulse leaks`.
type Config struct {
	// Samples is the number of goroutine snapshots (default 4) taken
	// Interval apart (default 10 s).
	Samples  int
	Interval time.Duration
	// Trace is the length of the execution trace taken at the end of the
	// window; 0 means the default 5 s, negative turns it off.
	Trace time.Duration
	// PID is the target's process ID for the /proc view; 0 finds it from
	// the port when the target is on this host, negative turns it off.
	PID int
	// FullDumpMax is the largest goroutine count at which the debug=2 text
	// dump (goroutine IDs and wait times, but the world stops for the whole
	// dump) is used; above it, only the protobuf profile, which the runtime
	// collects without stopping the world. Default 5,000; negative: never.
	FullDumpMax int
	// LeakProfileMax is the largest goroutine count at which the runtime's
	// goroutineleak profile (a special GC that stops the world for up to
	// seconds at 100k goroutines) is requested. Default 20,000; negative: never.
	LeakProfileMax int
	// Timeout bounds each request (the trace gets Trace on top). Default 30 s.
	Timeout time.Duration
	// Similarity chooses how alike stacks must be to share a group.
	Similarity goroutine.Similarity
	// Client is the HTTP client; default a new one.
	Client *http.Client
	// Progress, when set, receives one line per step.
	Progress func(string)
}

func (c *Config) defaults() error {
	if c.Samples == 0 {
		c.Samples = 4
	}
	if c.Samples < 1 || c.Samples > 1000 {
		return fmt.Errorf("--samples %d: want 1 to 1000", c.Samples)
	}
	if c.Interval == 0 {
		c.Interval = 10 * time.Second
	}
	if c.Interval < 0 || c.Interval > time.Hour {
		return fmt.Errorf("--interval %s: want a duration from 0 to 1h", c.Interval)
	}
	if c.Trace == 0 {
		c.Trace = 5 * time.Second
	}
	if c.Trace > 60*time.Second {
		return fmt.Errorf("--trace %s: at most 60s (traces cost the target CPU and memory)", c.Trace)
	}
	if c.FullDumpMax == 0 {
		c.FullDumpMax = 5000
	}
	if c.LeakProfileMax == 0 {
		c.LeakProfileMax = 20000
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Progress == nil {
		c.Progress = func(string) {}
	}
	return nil
}

// Result is everything an investigation gathered.
type Result struct {
	// Target is the URL or the file names.
	Target string
	// Mode says which dump format the snapshots used and why.
	Mode      string
	Snapshots []*goroutine.Snapshot
	Report    *goroutine.Report
	// Errors are the optional steps that failed (trace, leak profile, OS
	// view); the report stands without them.
	Errors []string
}

// maxDumpBytes bounds one dump read from a target; debug=2 output stops at
// 64 MB in the runtime anyway.
const maxDumpBytes = 256 << 20

// Live investigates a running service.
func Live(ctx context.Context, target string, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	ep, err := NewEndpoint(target, cfg.Client)
	if err != nil {
		return nil, err
	}
	res := &Result{Target: ep.String()}

	// First contact with the cheap profile: it proves this is pprof and
	// tells how many goroutines there are before anything stops the world.
	popts := goroutine.Options{Similarity: cfg.Similarity, MaxBytes: maxDumpBytes}
	probe, err := fetchSnapshot(ctx, ep, "goroutine?debug=0", cfg.Timeout, popts)
	if err != nil {
		return nil, firstContactError(ep, err)
	}
	text := cfg.FullDumpMax > 0 && probe.Goroutines <= cfg.FullDumpMax
	if text {
		res.Mode = fmt.Sprintf("debug=2 text dumps (%d goroutines ≤ --full-dump-max %d: IDs and wait times)", probe.Goroutines, cfg.FullDumpMax)
	} else {
		res.Mode = fmt.Sprintf("protobuf profiles (%d goroutines > --full-dump-max %d: a debug=2 dump would stop the world too long)", probe.Goroutines, cfg.FullDumpMax)
	}
	cfg.Progress(fmt.Sprintf("%s: %d goroutines; taking %d snapshots %s apart as %s", ep, probe.Goroutines, cfg.Samples, cfg.Interval, res.Mode))

	// The trace runs beside the sampling so it costs no extra wall time. It
	// starts with the last interval, when that is long enough, so that
	// reading a large trace (100k goroutines) overlaps the wait for the
	// last snapshot instead of following it.
	var (
		wg       sync.WaitGroup
		tv       *goroutine.TraceView
		traceErr error
	)
	window := time.Duration(cfg.Samples-1) * cfg.Interval
	traceCtx, stopTrace := context.WithCancel(ctx)
	defer stopTrace()
	if cfg.Trace > 0 {
		start := window - cfg.Trace
		if cfg.Samples >= 2 && cfg.Interval > cfg.Trace {
			start = window - cfg.Interval
		}
		if start < 0 {
			start = 0
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(start):
			case <-traceCtx.Done():
				traceErr = traceCtx.Err()
				return
			}
			began := time.Now()
			tv, traceErr = fetchTrace(traceCtx, ep, cfg.Trace, cfg.Timeout)
			if traceErr == nil {
				cfg.Progress(fmt.Sprintf("execution trace: %s of %d goroutines, read in %s", roundSecond(tv.Window), len(tv.Goroutines), time.Since(began).Round(100*time.Millisecond)))
			}
		}()
	}

	path := "goroutine?debug=0"
	if text {
		path = "goroutine?debug=2"
	}
	tick := time.NewTicker(max(cfg.Interval, time.Millisecond))
	defer tick.Stop()
	first := 0
	if !text {
		// The probe is already the first protobuf snapshot: at 100k
		// goroutines that saves a second or more of the target's time.
		res.Snapshots = append(res.Snapshots, probe)
		cfg.Progress(fmt.Sprintf("snapshot 1/%d: %d goroutines in %d groups", cfg.Samples, probe.Goroutines, len(probe.Groups)))
		first = 1
	}
	for i := first; i < cfg.Samples; i++ {
		if i > 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				stopTrace()
				wg.Wait()
				return nil, ctx.Err()
			}
		}
		s, err := fetchSnapshot(ctx, ep, path, cfg.Timeout, popts)
		if err != nil {
			stopTrace()
			wg.Wait()
			return nil, fmt.Errorf("snapshot %d of %d: %w", i+1, cfg.Samples, err)
		}
		if s.Truncated && text {
			res.Errors = append(res.Errors, truncationNote(ctx, ep, s, cfg.Timeout, popts))
		}
		res.Snapshots = append(res.Snapshots, s)
		cfg.Progress(fmt.Sprintf("snapshot %d/%d: %d goroutines in %d groups", i+1, cfg.Samples, s.Goroutines, len(s.Groups)))
	}
	wg.Wait()

	opts := goroutine.AnalyzeOptions{}
	if cfg.Trace > 0 {
		if traceErr != nil {
			res.Errors = append(res.Errors, fmt.Sprintf("execution trace: %v", traceErr))
		} else {
			opts.Trace = tv
		}
	}
	last := res.Snapshots[len(res.Snapshots)-1]
	if cfg.LeakProfileMax > 0 && last.Goroutines <= cfg.LeakProfileMax {
		lp, err := fetchSnapshot(ctx, ep, "goroutineleak?debug=0", cfg.Timeout, popts)
		switch {
		case errors.Is(err, errNotFound):
			// Go < 1.27 without GOEXPERIMENT=goroutineleakprofile: normal.
		case err != nil:
			res.Errors = append(res.Errors, fmt.Sprintf("goroutine leak profile: %v", err))
		default:
			opts.LeakProfile = lp
		}
	}
	if cfg.PID >= 0 {
		osv, err := osView(ep, cfg.PID)
		// Without --pid, a target on another host simply has no OS view;
		// with it, or when /proc was only partly readable, say what failed.
		if err != nil && (cfg.PID > 0 || osv != nil) {
			res.Errors = append(res.Errors, fmt.Sprintf("OS view: %v", err))
		}
		opts.OS = osv
	}
	res.Report = goroutine.Analyze(res.Snapshots, opts)
	return res, nil
}

func roundSecond(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }

// fetchSnapshot takes one dump and parses it while it streams in.
func fetchSnapshot(ctx context.Context, ep *Endpoint, path string, timeout time.Duration, opts goroutine.Options) (*goroutine.Snapshot, error) {
	t := time.Now()
	opts.Time = t
	body, cancel, err := ep.get(ctx, path, timeout)
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer body.Close()
	s, err := goroutine.Parse(body, opts)
	if err != nil {
		if errors.Is(err, goroutine.ErrNotDump) {
			return nil, fmt.Errorf("%s answered, but not with a goroutine dump: %w", ep.URL(path), err)
		}
		return nil, fmt.Errorf("read %s: %w", ep.URL(path), err)
	}
	return s, nil
}

func firstContactError(ep *Endpoint, err error) error {
	if errors.Is(err, errNotFound) {
		return fmt.Errorf("%s does not serve net/http/pprof (GET %s: 404); mount it (import net/http/pprof) or give the right base URL", ep, ep.URL("goroutine"))
	}
	return err
}

// truncationNote says how much of a capped debug=2 dump is missing, from the
// protobuf profile's exact count.
func truncationNote(ctx context.Context, ep *Endpoint, s *goroutine.Snapshot, timeout time.Duration, opts goroutine.Options) string {
	msg := fmt.Sprintf("a debug=2 dump was truncated (%s)", s.TruncatedReason)
	if p, err := fetchSnapshot(ctx, ep, "goroutine?debug=0", timeout, opts); err == nil && p.Goroutines > s.Goroutines {
		msg += fmt.Sprintf(": it holds %d goroutines of %d, missing %d; lower --full-dump-max to use the protobuf profile", s.Goroutines, p.Goroutines, p.Goroutines-s.Goroutines)
	}
	return msg
}

// osView reads /proc for the target: the given PID, or the process that
// listens on the target's port when the target is on this host.
func osView(ep *Endpoint, pid int) (*goroutine.OSView, error) {
	if pid == 0 {
		host, portStr, err := net.SplitHostPort(ep.Host())
		if err != nil {
			return nil, err
		}
		if !isLocalHost(host) {
			return nil, fmt.Errorf("target %s is not on this host", host)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil {
			return nil, fmt.Errorf("port %q: %w", portStr, err)
		}
		pid, err = pidForPort(port)
		if err != nil {
			return nil, err
		}
	}
	return readOS(pid)
}

func isLocalHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// Files analyzes dump files given in time order; "-" reads r. A file's
// modification time stamps its snapshot when the times increase, which they
// do when the dumps were saved as they were taken.
func Files(paths []string, stdin io.Reader, sim goroutine.Similarity) (*Result, error) {
	res := &Result{}
	var times []time.Time
	for i, p := range paths {
		s, mtime, err := parseFile(p, stdin, sim)
		if err != nil {
			return nil, fmt.Errorf("%s (file %d of %d): %w", p, i+1, len(paths), err)
		}
		if s.Truncated {
			res.Errors = append(res.Errors, fmt.Sprintf("%s is truncated: %s", p, s.TruncatedReason))
		}
		res.Snapshots = append(res.Snapshots, s)
		times = append(times, mtime)
	}
	increasing := true
	for i := range times {
		if times[i].IsZero() || (i > 0 && !times[i].After(times[i-1])) {
			increasing = false
		}
	}
	if increasing && len(times) > 1 {
		for i, s := range res.Snapshots {
			s.Time = times[i]
		}
	}
	res.Target = fmt.Sprint(paths)
	if len(res.Snapshots) > 0 {
		res.Mode = res.Snapshots[0].Format.String() + " files"
	}
	res.Report = goroutine.Analyze(res.Snapshots, goroutine.AnalyzeOptions{})
	return res, nil
}

// parseFile parses one dump file ("-" is r) and returns its modification
// time, zero for stdin.
func parseFile(p string, r io.Reader, sim goroutine.Similarity) (*goroutine.Snapshot, time.Time, error) {
	if p == "-" {
		s, err := goroutine.Parse(r, goroutine.Options{Similarity: sim})
		return s, time.Time{}, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("open dump: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("stat dump: %w", err)
	}
	if st.IsDir() {
		return nil, time.Time{}, fmt.Errorf("a directory; give dump files")
	}
	s, err := goroutine.Parse(f, goroutine.Options{Similarity: sim})
	return s, st.ModTime(), err
}
