package leakscore

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gopulse/gopulse/analyze/goroutine"
	"github.com/gopulse/gopulse/internal/testprog/leakcorpus/patterns"
)

// CorpusPackage is the import path of the corpus program Run builds.
const CorpusPackage = "github.com/gopulse/gopulse/internal/testprog/leakcorpus"

// Format chooses the goroutine dump format Run scrapes.
type Format string

const (
	// FormatDebug2 is /debug/pprof/goroutine?debug=2: one entry per goroutine,
	// with IDs and wait durations.
	FormatDebug2 Format = "debug2"
	// FormatProto is /debug/pprof/goroutine?debug=0: the pprof protobuf
	// profile, aggregated, with no goroutine IDs.
	FormatProto Format = "proto"
)

// Config tunes Run. The zero value runs the whole corpus with the defaults.
type Config struct {
	// Patterns are the names to run; empty runs every pattern.
	Patterns []string
	// Samples is the number of snapshots per pattern; default 4, at least 2.
	Samples int
	// Interval is the time between snapshots; default 2s.
	Interval time.Duration
	// Settle is the wait between a pattern's start and its first snapshot;
	// default 1s. It is deliberately shorter than some warm-ups (the
	// ok-pool-warmup pattern reaches its cap after ~2.6 s), as a scrape right
	// after a deploy would be.
	Settle time.Duration
	// Format is the dump format scraped; default FormatDebug2.
	Format Format
	// Parallel bounds the patterns running at once; default 8.
	Parallel int
	// Binary is a prebuilt corpus binary; empty builds CorpusPackage into a
	// temporary directory (from ModuleDir) and removes it afterwards.
	Binary string
	// ModuleDir is the directory `go build` runs in; default the current
	// directory, which must be inside the gopulse module.
	ModuleDir string
	// Analyze is passed to goroutine.Analyze.
	Analyze goroutine.AnalyzeOptions
	// Log receives one progress line per pattern; nil discards them.
	Log io.Writer
}

func (c *Config) fill() error {
	if c.Samples == 0 {
		c.Samples = 4
	}
	if c.Samples < 2 {
		return fmt.Errorf("leakscore: Config.Samples is %d: growth needs at least 2 snapshots", c.Samples)
	}
	if c.Interval == 0 {
		c.Interval = 2 * time.Second
	}
	if c.Interval < 0 {
		return fmt.Errorf("leakscore: Config.Interval is %s: it must be positive", c.Interval)
	}
	if c.Settle == 0 {
		c.Settle = time.Second
	}
	if c.Settle < 0 {
		return fmt.Errorf("leakscore: Config.Settle is %s: it must not be negative", c.Settle)
	}
	switch c.Format {
	case "":
		c.Format = FormatDebug2
	case FormatDebug2, FormatProto:
	default:
		return fmt.Errorf("leakscore: Config.Format is %q: use %q or %q", c.Format, FormatDebug2, FormatProto)
	}
	if c.Parallel == 0 {
		c.Parallel = 8
	}
	if c.Parallel < 0 {
		return fmt.Errorf("leakscore: Config.Parallel is %d: it must be positive", c.Parallel)
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	return nil
}

// selectPatterns resolves Config.Patterns against the corpus.
func selectPatterns(names []string) ([]*patterns.Pattern, error) {
	if len(names) == 0 {
		return patterns.All(), nil
	}
	var out []*patterns.Pattern
	for _, n := range names {
		p, ok := patterns.Lookup(n)
		if !ok {
			return nil, fmt.Errorf("leakscore: unknown pattern %q: `go run %s -list` shows the names", n, CorpusPackage)
		}
		out = append(out, p)
	}
	return out, nil
}

// Run builds the corpus, runs the selected patterns (at most cfg.Parallel at
// once), scrapes and analyzes each, and scores the verdicts. Every child
// process is killed before Run returns, also on error and cancellation. A
// pattern that fails to run is recorded in its Row (Err) and its ground truth
// counts as missed; Run returns an error only when nothing could be run.
func Run(ctx context.Context, cfg Config) (*Score, error) {
	start := time.Now()
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	ps, err := selectPatterns(cfg.Patterns)
	if err != nil {
		return nil, err
	}
	bin := cfg.Binary
	if bin == "" {
		dir, err := os.MkdirTemp("", "leakscore-")
		if err != nil {
			return nil, fmt.Errorf("leakscore: make build directory: %w", err)
		}
		defer os.RemoveAll(dir)
		bin = filepath.Join(dir, "leakcorpus")
		if err := Build(ctx, cfg.ModuleDir, bin); err != nil {
			return nil, err
		}
	}

	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	rows := make([]*Row, len(ps))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(cfg.Parallel, len(ps)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				p := ps[i]
				rep, err := runPattern(ctx, client, bin, p, &cfg)
				if err != nil {
					rows[i] = failedRow(p, err)
					fmt.Fprintf(cfg.Log, "%-30s error: %v\n", p.Name, err)
					continue
				}
				rows[i] = scoreReport(p, rep)
				fmt.Fprintf(cfg.Log, "%-30s goroutines %s: TP %d FP %d FN %d\n", p.Name,
					joinInts(rows[i].Goroutines), rows[i].TP, rows[i].FP, rows[i].FN)
			}
		}()
	}
feed:
	for i := range ps {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("leakscore: run cancelled: %w", err)
	}

	s := &Score{Config: cfg, Rows: rows}
	s.Config.Analyze = goroutine.AnalyzeOptions{}
	sortRows(s.Rows)
	s.total()
	s.Elapsed = time.Since(start)
	if len(s.Failed()) == len(s.Rows) {
		return s, fmt.Errorf("leakscore: no pattern could be run; first error: %s", s.Rows[0].Err)
	}
	return s, nil
}

// Build compiles the corpus program to out, running `go build` in moduleDir
// ("" for the current directory).
func Build(ctx context.Context, moduleDir, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, CorpusPackage)
	cmd.Dir = moduleDir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("leakscore: go build %s (run from inside the gopulse module): %w\n%s", CorpusPackage, err, b)
	}
	return nil
}

// tailBuffer keeps the last bytes written to it, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2048 {
		t.buf = t.buf[len(t.buf)-2048:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// runPattern runs one pattern as a child process and returns the analysis of
// its snapshots. The child is killed and reaped before it returns.
func runPattern(ctx context.Context, client *http.Client, bin string, p *patterns.Pattern, cfg *Config) (*goroutine.Report, error) {
	// The child also stops by itself shortly after the window, in case this
	// process dies without killing it.
	life := cfg.Settle + time.Duration(cfg.Samples)*cfg.Interval + time.Minute
	cmd := exec.Command(bin, "-pattern", p.Name, "-duration", life.String())
	setDeathSignal(cmd)
	stderr := &tailBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("stdout pipe: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	addrc := make(chan string, 1)
	exited := make(chan struct{})
	var waitErr error // written before exited is closed
	go func() {
		// Drain stdout to EOF before Wait, as os/exec requires; the first
		// line is the pprof address.
		sc := bufio.NewScanner(stdout)
		addr := ""
		if sc.Scan() {
			addr = sc.Text()
		}
		addrc <- addr
		for sc.Scan() {
		}
		waitErr = cmd.Wait()
		close(exited)
	}()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	died := func() error {
		return fmt.Errorf("corpus process exited early (%v): %s", waitErr, stderr)
	}

	var line string
	select {
	case line = <-addrc:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(15 * time.Second):
		return nil, fmt.Errorf("corpus process printed no pprof address within 15s: %s", stderr)
	}
	base, ok := strings.CutPrefix(line, "pprof ")
	if !ok {
		select {
		case <-exited:
			return nil, died()
		case <-time.After(2 * time.Second):
			return nil, fmt.Errorf("corpus process printed %q instead of \"pprof http://ADDR\": %s", line, stderr)
		}
	}

	first := time.Now().Add(cfg.Settle)
	snaps := make([]*goroutine.Snapshot, 0, cfg.Samples)
	for i := 0; i < cfg.Samples; i++ {
		wait := time.NewTimer(time.Until(first.Add(time.Duration(i) * cfg.Interval)))
		select {
		case <-wait.C:
		case <-ctx.Done():
			wait.Stop()
			return nil, ctx.Err()
		case <-exited:
			wait.Stop()
			return nil, died()
		}
		snap, err := scrape(ctx, client, base, cfg.Format)
		if err != nil {
			return nil, fmt.Errorf("snapshot %d of %d: %w", i+1, cfg.Samples, err)
		}
		snaps = append(snaps, snap)
	}
	return goroutine.Analyze(snaps, cfg.Analyze), nil
}

// scrape takes one goroutine dump from a net/http/pprof server and parses it.
func scrape(ctx context.Context, client *http.Client, base string, f Format) (*goroutine.Snapshot, error) {
	q := "debug=2"
	if f == FormatProto {
		q = "debug=0"
	}
	url := base + "/debug/pprof/goroutine?" + q
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", url, err)
	}
	at := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	snap, err := goroutine.Parse(resp.Body, goroutine.Options{Time: at})
	if err != nil {
		return nil, fmt.Errorf("parse dump from %s: %w", url, err)
	}
	return snap, nil
}
