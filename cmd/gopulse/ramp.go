package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gopulse/gopulse/loadramp"
)

const rampUsage = `usage: gopulse ramp [flags] URL

Finds the highest request rate URL sustains under an SLO, and what
saturated first, by raising an open-model load step by step while reading
the service's Go runtime from /debug/vars and /debug/pprof.

examples:
  gopulse ramp http://127.0.0.1:8080/api --slo 'p99<50ms,errors<0.1%'
  gopulse ramp http://127.0.0.1:8080/ --rates 500,1000,2000,4000 --format html -o ramp.html
  gopulse ramp --targets mix.txt --arrivals poisson --slo 'p99<200ms'

flags:
`

// headerFlags collects repeated -H 'Name: value' flags.
type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

// runRamp is `gopulse ramp`.
func runRamp(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ramp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, rampUsage); fs.PrintDefaults() }
	var headers headerFlags
	method := fs.String("X", "GET", "HTTP `method`")
	fs.Var(&headers, "H", "request header 'Name: value' (repeatable)")
	body := fs.String("body", "", "request body")
	bodyFile := fs.String("body-file", "", "read the request body from `file` ('-' for stdin)")
	sloFlag := fs.String("slo", "p99<100ms,errors<0.1%", "service level objective: pNN<DURATION terms and errors<PCT%")
	rates := fs.String("rates", "", "stepped plan: comma-separated rates in req/s (default: search)")
	start := fs.Float64("start", 100, "search: first rate in req/s")
	maxRate := fs.Float64("max-rate", 20000, "highest rate to offer, req/s")
	resolution := fs.Float64("resolution", 0.05, "search: stop bisecting when fail/pass rates are within this fraction")
	stepDur := fs.Duration("step", 5*time.Second, "measured `duration` of each step")
	warmup := fs.Duration("warmup", time.Second, "discarded warm-up before each step")
	conns := fs.Int("conns", 256, "maximum connections (and requests in flight)")
	timeout := fs.Duration("timeout", 10*time.Second, "per-request timeout")
	maxSteps := fs.Int("max-steps", 40, "stop after this many steps")
	maxTotal := fs.Duration("max-time", 10*time.Minute, "stop after this long in total")
	runtimeURL := fs.String("runtime", "", "base URL serving /debug/vars and /debug/pprof (default: the target's origin; 'off' to skip)")
	arrivals := fs.String("arrivals", "uniform", "how sends are spaced: uniform (exactly 1/rate apart) or poisson (exponential gaps, as independent users arrive)")
	engine := fs.String("engine", "raw", "HTTP client: raw (minimal HTTP/1.1, cheaper) or nethttp")
	insecure := fs.Bool("insecure", false, "skip TLS certificate verification")
	yes := fs.Bool("yes", false, fmt.Sprintf("confirm loading a non-loopback target above %.0f req/s", loadramp.RemoteRateLimit))
	captureDir := fs.String("capture", "", "after the search, offer the breaking rate again and save a CPU profile, trace and goroutine dump from the target's /debug/pprof into `dir`")
	format := fs.String("format", "text", "output: text, json or html")
	out := fs.String("o", "", "write the report to `file` instead of stdout")
	quiet := fs.Bool("q", false, "no progress lines on stderr")
	targetsFile := fs.String("targets", "", "send a mix of requests in turn, read from `file` in vegeta's format: 'METHOD URL' lines, each followed by optional 'Name: value' headers and an '@body-file' line, targets separated by blank lines; URL is then optional")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	var mix []loadramp.Request
	if *targetsFile != "" {
		if *method != "GET" || *body != "" || *bodyFile != "" {
			return usageError{"--targets sets each request's method and body: drop -X, --body and --body-file"}
		}
		if mix, err = readTargets(*targetsFile); err != nil {
			return err
		}
		if len(pos) == 0 {
			pos = []string{mix[0].URL}
		}
	}
	if len(pos) != 1 {
		fs.Usage()
		return usageError{"give one target URL, e.g. gopulse ramp http://127.0.0.1:8080/"}
	}
	cfg := loadramp.Config{
		Target: loadramp.Target{URL: pos[0], Method: *method, Timeout: *timeout, InsecureSkipVerify: *insecure,
			Engine: loadramp.Engine(*engine), Header: http.Header{}},
		StartRate: *start, MaxRate: *maxRate, Resolution: *resolution,
		StepDuration: *stepDur, Warmup: *warmup, MaxConns: *conns, MaxSteps: *maxSteps, MaxTotal: *maxTotal,
		RuntimeURL: *runtimeURL, AllowRemote: *yes, CaptureDir: *captureDir, Arrivals: loadramp.Arrivals(*arrivals),
	}
	if a := cfg.Arrivals; a != loadramp.ArrivalsUniform && a != loadramp.ArrivalsPoisson {
		return usageError{fmt.Sprintf("--arrivals %q: want uniform or poisson", *arrivals)}
	}
	if *warmup == 0 {
		cfg.Warmup = -1 // Config reads 0 as "default"
	}
	if cfg.SLO, err = loadramp.ParseSLO(*sloFlag); err != nil {
		return usageError{"--slo: " + err.Error()}
	}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return usageError{fmt.Sprintf("-H %q: want 'Name: value'", h)}
		}
		cfg.Target.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	// -H applies to every request of a mix, under the file's own headers.
	for i := range mix {
		h := cfg.Target.Header.Clone()
		for k, vs := range mix[i].Header {
			h[k] = vs
		}
		mix[i].Header = h
	}
	cfg.Target.Mix = mix
	switch {
	case *body != "" && *bodyFile != "":
		return usageError{"give --body or --body-file, not both"}
	case *body != "":
		cfg.Target.Body = []byte(*body)
	case *bodyFile == "-":
		if cfg.Target.Body, err = io.ReadAll(io.LimitReader(stdin, 64<<20)); err != nil {
			return fmt.Errorf("read body from stdin: %w", err)
		}
	case *bodyFile != "":
		if cfg.Target.Body, err = os.ReadFile(*bodyFile); err != nil {
			return fmt.Errorf("read --body-file: %w", err)
		}
	}
	if *rates != "" {
		for _, f := range strings.Split(*rates, ",") {
			r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || r <= 0 {
				return usageError{fmt.Sprintf("--rates: %q is not a positive number", f)}
			}
			cfg.Rates = append(cfg.Rates, r)
		}
	}
	if *stepDur <= 0 || *warmup < 0 || *conns < 1 || *maxSteps < 1 || *maxTotal <= 0 {
		return usageError{"--step, --conns, --max-steps and --max-time must be positive, --warmup not negative"}
	}
	if *engine != "raw" && *engine != "nethttp" {
		return usageError{fmt.Sprintf("--engine %q: want raw or nethttp", *engine)}
	}
	render := map[string]func(*loadramp.Result, io.Writer) error{
		"text": (*loadramp.Result).WriteText, "json": (*loadramp.Result).WriteJSON, "html": (*loadramp.Result).WriteHTML,
	}[*format]
	if render == nil {
		return usageError{fmt.Sprintf("--format %q: want text, json or html", *format)}
	}
	if !*quiet {
		cfg.Progress = func(s loadramp.StepReport) {
			v := "ok"
			switch {
			case s.GeneratorLimited:
				v = "generator-limited: " + s.GeneratorLimitedCause
			case !s.Pass:
				v = "FAIL " + strings.Join(s.Failures, "; ")
			}
			fmt.Fprintf(stderr, "ramp: %7.0f req/s offered, %7.0f achieved, p99 %.4gs (uncorrected %.4gs), errors %.2f%%: %s\n",
				s.OfferedRPS, s.AchievedRPS, s.P99, s.P99Uncorrected, s.ErrorRate*100, v)
		}
	}
	res, err := loadramp.Run(ctx, cfg)
	if errors.Is(err, loadramp.ErrConfirmRemote) {
		return usageError{err.Error() + " — pass --yes to confirm, or --max-rate " + strconv.Itoa(int(loadramp.RemoteRateLimit))}
	}
	if res == nil {
		return fmt.Errorf("ramp %s: %w", pos[0], err)
	}
	w := stdout
	if *out != "" {
		f, ferr := os.Create(*out)
		if ferr != nil {
			return fmt.Errorf("ramp: create report: %w", ferr)
		}
		defer f.Close()
		w = f
	}
	if rerr := render(res, w); rerr != nil {
		return fmt.Errorf("ramp: write report: %w", rerr)
	}
	if err != nil { // interrupted: the partial report is written, still say so
		return fmt.Errorf("ramp %s: %w", pos[0], err)
	}
	return nil
}

// readTargets parses a --targets file; "@file" bodies are read relative to
// the targets file's directory.
func readTargets(path string) ([]loadramp.Request, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--targets: %w", err)
	}
	defer f.Close()
	dir := filepath.Dir(path)
	mix, err := loadramp.ParseTargets(f, func(p string) ([]byte, error) {
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		return os.ReadFile(p)
	})
	if err != nil {
		return nil, fmt.Errorf("--targets %s: %w", path, err)
	}
	return mix, nil
}
