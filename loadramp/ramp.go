package loadramp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Config describes a ramp. The zero value of every field but Target.URL
// works.
type Config struct {
	Target Target
	SLO    SLO // zero value: DefaultSLO
	// Rates, if set, is a stepped plan: each rate in order, stopping at
	// the first step that fails. Otherwise the ramp searches: StartRate,
	// doubling until a step fails or MaxRate, then bisecting between the
	// last passing and the first failing rate until they are within
	// Resolution of each other.
	Rates      []float64
	StartRate  float64 // default 100 req/s
	MaxRate    float64 // default 100,000 req/s
	Resolution float64 // default 0.05 (5%)
	// StepDuration is the measured window of each step; Warmup precedes
	// it and is discarded. Defaults 5 s and 1 s; a negative Warmup means
	// none.
	StepDuration, Warmup time.Duration
	// Pause between steps lets the target drain. Default 200 ms.
	Pause time.Duration
	// MaxConns bounds connections and requests in flight. Default 256.
	MaxConns int
	// Arrivals spaces each step's sends: uniform (default) or Poisson.
	// Poisson steps use a different seed each, so a repeated rate is a
	// fresh sample of bursts rather than the same one.
	Arrivals Arrivals
	// ConfirmFailures is how often a failing step is repeated before the
	// rate counts as failed (a pass is never repeated: interference only
	// makes steps look worse). Default 1; negative means never.
	ConfirmFailures int
	// MaxSteps and MaxTotal bound the run. Defaults 40 steps, 10 minutes.
	MaxSteps int
	MaxTotal time.Duration
	// DropAfter: sends later than this are dropped. Default max(1 s, 2×
	// the largest SLO latency).
	DropAfter time.Duration
	// RuntimeURL serves /debug/vars and /debug/pprof; "" means the
	// target's own origin, "off" disables runtime reading.
	RuntimeURL string
	// AllowRemote must be set to load a non-loopback target above
	// RemoteRateLimit req/s.
	AllowRemote bool
	// CaptureDir, if set, receives evidence from the rate that broke the
	// SLO: after the search, that rate is offered once more while a CPU
	// profile (cpu.pprof, for go tool pprof), a one-second execution trace
	// (trace.out, for go tool trace) and a goroutine dump (goroutines.txt)
	// are fetched from the target's /debug/pprof.
	CaptureDir string
	// Progress, if set, is called after every step.
	Progress func(StepReport)
}

// minStepRequests is the fewest requests a step must offer for its
// percentiles to mean anything.
const minStepRequests = 20

// genRetries is how often a generator-limited step is repeated.
const genRetries = 2

// RemoteRateLimit is the highest rate sent to a non-loopback target
// without Config.AllowRemote.
const RemoteRateLimit = 50.0

// StepReport is one step as the report shows it. Latencies are in seconds.
type StepReport struct {
	OfferedRPS            float64          `json:"offered_rps"`
	AchievedRPS           float64          `json:"achieved_rps"`
	P50                   float64          `json:"p50_seconds"`
	P90                   float64          `json:"p90_seconds"`
	P99                   float64          `json:"p99_seconds"`
	P999                  float64          `json:"p999_seconds"`
	P50Uncorrected        float64          `json:"p50_uncorrected_seconds"`
	P90Uncorrected        float64          `json:"p90_uncorrected_seconds"`
	P99Uncorrected        float64          `json:"p99_uncorrected_seconds"`
	P999Uncorrected       float64          `json:"p999_uncorrected_seconds"`
	MeanUncorrected       float64          `json:"mean_uncorrected_seconds"`
	Requests              int64            `json:"requests"`
	Errors                int64            `json:"errors"`
	ErrorRate             float64          `json:"error_rate"`
	ErrorKinds            map[string]int64 `json:"error_kinds,omitempty"`
	Dropped               int64            `json:"dropped"`
	Late                  int64            `json:"late"`
	Conns                 int              `json:"connections"`
	PoolExhausted         bool             `json:"pool_exhausted,omitempty"`
	GeneratorCPUFraction  float64          `json:"generator_cpu_fraction"`
	GeneratorWakeLagP99   float64          `json:"generator_wake_lag_p99_seconds"`
	GeneratorLimited      bool             `json:"generator_limited"`
	GeneratorLimitedCause string           `json:"generator_limited_cause,omitempty"`
	Pass                  bool             `json:"pass"`
	Failures              []string         `json:"failures,omitempty"`
	Runtime               *RuntimeStep     `json:"runtime,omitempty"`
	// Superseded marks a step run again at the same rate (to confirm a
	// failure or after a generator limit); the verdict uses the repeat.
	Superseded bool `json:"superseded,omitempty"`

	corrected, uncorrected *Hist
}

// Result is the outcome of a ramp.
type Result struct {
	Target            string       `json:"target"`
	SLO               string       `json:"slo"`
	Started           time.Time    `json:"started"`
	DurationSeconds   float64      `json:"duration_seconds"`
	Steps             []StepReport `json:"steps"`
	MaxSustainableRPS float64      `json:"max_sustainable_rps"`
	// LowerBound says MaxSustainableRPS is only a lower bound: the ramp
	// stopped (max rate, generator limit, time budget) before any step
	// failed.
	LowerBound   bool    `json:"max_sustainable_is_lower_bound"`
	FirstFailRPS float64 `json:"first_failing_rps,omitempty"`
	StopReason   string  `json:"stop_reason"`
	// Arrivals is "poisson" for a ramp with Poisson arrivals; empty for
	// uniform ones.
	Arrivals string `json:"arrivals,omitempty"`
	Knee     *Knee  `json:"knee,omitempty"`
	USL      *USL   `json:"usl,omitempty"`
	// Saturation names what saturated first, in words; Evidence holds the
	// measurements behind it.
	Saturation  string   `json:"saturation"`
	Evidence    []string `json:"evidence,omitempty"`
	RuntimeRead string   `json:"runtime_source"`
	// Captures lists the files written to Config.CaptureDir.
	Captures []string `json:"captures,omitempty"`
}

// ErrConfirmRemote is returned when a non-loopback target would get more
// than RemoteRateLimit req/s without Config.AllowRemote.
var ErrConfirmRemote = errors.New("target is not on a loopback address")

// IsLoopback reports whether rawURL's host is a loopback address.
func IsLoopback(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	if u.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}

func (c *Config) defaults() error {
	if c.SLO.Latency == nil && c.SLO.MaxErrorRate == 0 {
		c.SLO = DefaultSLO()
	}
	if c.StepDuration <= 0 {
		c.StepDuration = 5 * time.Second
	}
	if c.StartRate <= 0 {
		c.StartRate = 100
	}
	if c.StepDuration > 0 && c.StartRate*c.StepDuration.Seconds() < minStepRequests {
		c.StartRate = minStepRequests / c.StepDuration.Seconds()
	}
	if c.MaxRate <= 0 {
		c.MaxRate = 100_000
	}
	if c.Resolution <= 0 {
		c.Resolution = 0.05
	}
	switch {
	case c.Warmup < 0:
		c.Warmup = 0
	case c.Warmup == 0:
		c.Warmup = time.Second
	}
	if c.Pause <= 0 {
		c.Pause = 200 * time.Millisecond
	}
	switch {
	case c.ConfirmFailures < 0:
		c.ConfirmFailures = 0
	case c.ConfirmFailures == 0:
		c.ConfirmFailures = 1
	}
	if c.MaxSteps <= 0 {
		c.MaxSteps = 40
	}
	if c.MaxTotal <= 0 {
		c.MaxTotal = 10 * time.Minute
	}
	if c.DropAfter <= 0 {
		c.DropAfter = max(time.Second, 2*c.SLO.maxLatency())
	}
	if err := c.Arrivals.valid(); err != nil {
		return err
	}
	for _, r := range c.Rates {
		if !(r > 0) || math.IsInf(r, 0) {
			return fmt.Errorf("rate %v in the step plan: rates must be positive", r)
		}
	}
	top := c.MaxRate
	if len(c.Rates) > 0 {
		top = slices.Max(c.Rates)
	}
	if !IsLoopback(c.Target.URL) && !c.AllowRemote && top > RemoteRateLimit {
		return fmt.Errorf("%w: refusing to send up to %.0f req/s to %s without confirmation (allow it explicitly, or cap the rate at %.0f req/s)",
			ErrConfirmRemote, top, c.Target.URL, RemoteRateLimit)
	}
	return nil
}

// Run ramps load against cfg.Target and returns the verdict. It stops at
// the first failing step (stepped plan) or when the search converges, and
// always within MaxSteps and MaxTotal. A cancelled ctx returns what was
// measured so far with ctx's error.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	g, err := NewGenerator(cfg.Target, cfg.MaxConns)
	if err != nil {
		return nil, err
	}
	defer g.Close()
	res := &Result{Target: cfg.Target.URL, SLO: cfg.SLO.String(), Started: time.Now()}
	if cfg.Arrivals == ArrivalsPoisson {
		res.Arrivals = string(ArrivalsPoisson)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.MaxTotal)
	defer cancel()

	var rr *RuntimeReader
	res.RuntimeRead = "off"
	if cfg.RuntimeURL != "off" {
		base := cfg.RuntimeURL
		if base == "" {
			base = cfg.Target.URL
		}
		if rr, err = NewRuntimeReader(base); err != nil {
			return nil, err
		}
		s := rr.Sample(ctx)
		res.RuntimeRead = describeRuntimeSource(rr, s)
	}

	latencyHint := time.Millisecond
	runStep := func(rate float64) (*StepReport, error) {
		var a, b RuntimeSample
		spec := StepSpec{Rate: rate, Warmup: cfg.Warmup, Duration: cfg.StepDuration, LatencyHint: latencyHint, DropAfter: cfg.DropAfter,
			LagLimit: max(wakeLagLimit, cfg.SLO.minLatency()/4), Arrivals: cfg.Arrivals, Seed: uint64(len(res.Steps) + 1)}
		if rr != nil {
			spec.AtWindow = func(start bool) {
				if start {
					a = rr.Sample(ctx)
				} else {
					b = rr.Sample(ctx)
				}
			}
		}
		r, err := g.Step(ctx, spec)
		if err != nil { // a step cut short measured nothing trustworthy
			return nil, err
		}
		sr := report(r, cfg.SLO)
		if rr != nil && !a.At.IsZero() && !b.At.IsZero() {
			d := RuntimeDelta(a, b)
			sr.Runtime = &d
		}
		if sr.Pass && r.Uncorrected.Count() > 0 {
			latencyHint = r.Uncorrected.Quantile(0.9)
		}
		if n := len(res.Steps); n > 0 && res.Steps[n-1].OfferedRPS == rate {
			res.Steps[n-1].Superseded = true // a repeat: the new run decides
		}
		res.Steps = append(res.Steps, *sr)
		if cfg.Progress != nil {
			cfg.Progress(*sr)
		}
		return sr, nil
	}
	// step runs one rate, repeating a generator-limited step up to
	// genRetries times after a second's pause: on a shared machine a burst
	// of someone else's work should not end the ramp.
	once := func(rate float64) (*StepReport, error) {
		sr, err := runStep(rate)
		for i := 0; i < genRetries && err == nil && sr.GeneratorLimited && len(res.Steps) < cfg.MaxSteps; i++ {
			sleepCtx(ctx, time.Second)
			sr, err = runStep(rate)
		}
		sleepCtx(ctx, cfg.Pause)
		return sr, err
	}
	// Interference (another process taking the CPU, a GC in the
	// generator) can only make a step look worse, so a pass stands but a
	// failure is confirmed by running the rate again.
	step := func(rate float64) (*StepReport, error) {
		sr, err := once(rate)
		for i := 0; i < cfg.ConfirmFailures && err == nil && !sr.Pass && !sr.GeneratorLimited && len(res.Steps) < cfg.MaxSteps; i++ {
			sr, err = once(rate)
		}
		return sr, err
	}

	var lo, hi float64 // highest passing, lowest failing
	stop := ""
	bounded := func() bool {
		if len(res.Steps) >= cfg.MaxSteps {
			stop = fmt.Sprintf("step limit (%d steps) reached", cfg.MaxSteps)
			return true
		}
		return false
	}
	var runErr error
	if len(cfg.Rates) > 0 {
		for _, rate := range cfg.Rates {
			if bounded() {
				break
			}
			sr, err := step(rate)
			if err != nil {
				runErr = err
				break
			}
			if sr.GeneratorLimited {
				stop = fmt.Sprintf("the generator could not keep up at %s req/s (%s)", fmtRate(rate), sr.GeneratorLimitedCause)
				break
			}
			if !sr.Pass {
				hi = rate
				stop = fmt.Sprintf("step at %s req/s failed: %s", fmtRate(rate), joinAnd(sr.Failures))
				break
			}
			lo = max(lo, rate)
		}
		if stop == "" && runErr == nil {
			stop = "every step of the plan passed"
		}
	} else {
		rate := min(cfg.StartRate, cfg.MaxRate)
		for runErr == nil && stop == "" { // exponential phase
			if bounded() {
				break
			}
			sr, err := step(rate)
			if err != nil {
				runErr = err
				break
			}
			switch {
			case sr.GeneratorLimited:
				stop = fmt.Sprintf("the generator could not keep up at %s req/s (%s)", fmtRate(rate), sr.GeneratorLimitedCause)
			case !sr.Pass:
				hi = rate
			case rate >= cfg.MaxRate:
				lo = rate
				stop = fmt.Sprintf("max rate %.0f req/s reached with the SLO met", cfg.MaxRate)
			default:
				lo = rate
				rate = min(rate*2, cfg.MaxRate)
				continue
			}
			break
		}
		for runErr == nil && stop == "" && hi > 0 { // bisection
			if lo > 0 && hi/lo <= 1+cfg.Resolution {
				stop = fmt.Sprintf("search converged: passes at %s req/s, fails at %s req/s", fmtRate(lo), fmtRate(hi))
				break
			}
			// Below ~20 requests per step the percentiles mean nothing.
			if lo == 0 && (hi <= cfg.StartRate/8 || hi/2*cfg.StepDuration.Seconds() < minStepRequests) {
				stop = fmt.Sprintf("fails even at %s req/s", fmtRate(hi))
				break
			}
			if bounded() {
				break
			}
			mid := (lo + hi) / 2
			if lo == 0 {
				mid = hi / 2
			}
			sr, err := step(mid)
			if err != nil {
				runErr = err
				break
			}
			switch {
			case sr.GeneratorLimited:
				stop = fmt.Sprintf("the generator could not keep up at %s req/s (%s)", fmtRate(mid), sr.GeneratorLimitedCause)
			case sr.Pass:
				lo = mid
			default:
				hi = mid
			}
		}
	}
	if runErr != nil {
		switch {
		case errors.Is(runErr, context.DeadlineExceeded) && ctx.Err() != nil:
			stop = fmt.Sprintf("time budget %s used up", cfg.MaxTotal)
			runErr = nil
		default:
			stop = "interrupted: " + runErr.Error()
		}
	}
	if runErr == nil && cfg.CaptureDir != "" && hi > 0 && rr != nil {
		files, err := capture(ctx, g, rr, cfg, hi, latencyHint)
		res.Captures = files
		if err != nil {
			res.Evidence = append(res.Evidence, "capture: "+err.Error())
		}
	}
	res.StopReason = stop
	res.MaxSustainableRPS = lo
	res.FirstFailRPS = hi
	res.LowerBound = hi == 0
	res.DurationSeconds = time.Since(res.Started).Seconds()
	verdict(res, cfg)
	return res, runErr
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func describeRuntimeSource(rr *RuntimeReader, s RuntimeSample) string {
	var parts []string
	if s.HasVars {
		parts = append(parts, "/debug/vars")
	}
	if s.HasPprof {
		parts = append(parts, "/debug/pprof")
	}
	if s.Agent != nil {
		parts = append(parts, "/debug/gopulse/ (agent)")
	}
	if s.PID > 0 {
		parts = append(parts, fmt.Sprintf("/proc/%d", s.PID))
	}
	if len(parts) == 0 {
		return "none: the target serves neither /debug/vars, /debug/pprof nor the gopulse agent's /debug/gopulse/, and is not a local process"
	}
	return joinList(parts)
}

func joinList(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}

// report turns a step's raw result into its report and judges it.
func report(r *StepResult, slo SLO) *StepReport {
	c, u := r.Corrected, r.Uncorrected
	sr := &StepReport{
		OfferedRPS: r.OfferedRPS, AchievedRPS: r.AchievedRPS,
		P50: c.Quantile(0.5).Seconds(), P90: c.Quantile(0.9).Seconds(), P99: c.Quantile(0.99).Seconds(), P999: c.Quantile(0.999).Seconds(),
		P50Uncorrected: u.Quantile(0.5).Seconds(), P90Uncorrected: u.Quantile(0.9).Seconds(),
		P99Uncorrected: u.Quantile(0.99).Seconds(), P999Uncorrected: u.Quantile(0.999).Seconds(),
		MeanUncorrected: u.Mean().Seconds(),
		Requests:        r.Intended, Errors: r.ErrorCount(), ErrorRate: r.ErrorRate(), Dropped: r.Dropped, Late: r.Late,
		Conns: r.ConnsMax, PoolExhausted: r.PoolExhausted,
		GeneratorCPUFraction: r.GenCPUFraction, GeneratorWakeLagP99: r.WakeLag.Quantile(0.99).Seconds(),
		GeneratorLimited: r.GeneratorLimited, GeneratorLimitedCause: r.GeneratorReason,
		corrected: c, uncorrected: u,
	}
	if len(r.Errors) > 0 {
		sr.ErrorKinds = r.Errors
	}
	if r.Dropped > 0 {
		if sr.ErrorKinds == nil {
			sr.ErrorKinds = map[string]int64{}
		}
		sr.ErrorKinds["dropped"] = r.Dropped
	}
	if c.Count() == 0 {
		sr.Failures = append(sr.Failures, "no responses")
	}
	for _, q := range sortedKeys(slo.Latency) {
		if got := c.Quantile(q); got > slo.Latency[q] && c.Count() > 0 {
			sr.Failures = append(sr.Failures, fmt.Sprintf("p%g %s > %s", q*100, fmtDur(got), fmtDur(slo.Latency[q])))
		}
	}
	if slo.MaxErrorRate >= 0 && sr.ErrorRate > slo.MaxErrorRate {
		sr.Failures = append(sr.Failures, fmt.Sprintf("errors %.3g%% > %.3g%%", sr.ErrorRate*100, slo.MaxErrorRate*100))
	}
	if r.OfferedRPS > 0 && r.AchievedRPS < 0.98*r.OfferedRPS {
		sr.Failures = append(sr.Failures, fmt.Sprintf("achieved %.0f req/s < 98%% of offered %.0f", r.AchievedRPS, r.OfferedRPS))
	}
	sr.Pass = len(sr.Failures) == 0
	return sr
}

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// fmtRate prints a rate: whole numbers above 10 req/s, two decimals below.
func fmtRate(r float64) string {
	if r >= 10 {
		return fmt.Sprintf("%.0f", r)
	}
	return fmt.Sprintf("%.2f", r)
}

// capture offers rate once more and meanwhile fetches a CPU profile, an
// execution trace and a goroutine dump from the target's /debug/pprof.
func capture(ctx context.Context, g *Generator, rr *RuntimeReader, cfg Config, rate float64, hint time.Duration) ([]string, error) {
	if err := os.MkdirAll(cfg.CaptureDir, 0o755); err != nil {
		return nil, fmt.Errorf("create capture directory: %w", err)
	}
	secs := max(1, int(cfg.StepDuration.Seconds()))
	fetches := []struct{ path, file string }{
		{fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), "cpu.pprof"},
		{"/debug/pprof/trace?seconds=1", "trace.out"},
		{"/debug/pprof/goroutine?debug=1", "goroutines.txt"},
	}
	var (
		mu    sync.Mutex
		files []string
		errs  []error
		wg    sync.WaitGroup
	)
	spec := StepSpec{Rate: rate, Warmup: cfg.Warmup, Duration: cfg.StepDuration, LatencyHint: hint, DropAfter: cfg.DropAfter,
		Arrivals: cfg.Arrivals, AtWindow: func(start bool) {
			if !start {
				return
			}
			for _, f := range fetches {
				wg.Add(1)
				go func() { // owner: capture, which waits for it; bounded by the fetch timeout
					defer wg.Done()
					path := filepath.Join(cfg.CaptureDir, f.file)
					err := rr.fetchTo(ctx, f.path, path, time.Duration(secs+10)*time.Second)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						errs = append(errs, err)
					} else {
						files = append(files, path)
					}
				}()
			}
		}}
	_, err := g.Step(ctx, spec)
	wg.Wait()
	slices.Sort(files)
	if err != nil {
		errs = append(errs, err)
	}
	return files, errors.Join(errs...)
}
