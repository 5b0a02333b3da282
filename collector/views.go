package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopulse/gopulse/analyze/trace"
	"github.com/gopulse/gopulse/store"
	"github.com/gopulse/gopulse/ui"
)

// traceLongestWaiting is how many blocked goroutines the bundle page lists.
const traceLongestWaiting = 15

// summarizeTrace adapts analyze/trace to the UI's trace summary, so the
// bundle page shows the same numbers `gopulse trace` prints.
func summarizeTrace(r io.Reader) (ui.TraceSummary, error) {
	act, err := trace.Goroutines(r)
	if err != nil {
		if errors.Is(err, trace.ErrNotTrace) || errors.Is(err, trace.ErrUnsupportedVersion) ||
			errors.Is(err, trace.ErrTruncated) || errors.Is(err, trace.ErrCorrupt) {
			return ui.TraceSummary{}, fmt.Errorf("%w: %v", ui.ErrNotTrace, err)
		}
		return ui.TraceSummary{}, fmt.Errorf("summarize trace: %w", err)
	}
	pauses := func(p trace.Pauses) ui.TracePauses {
		return ui.TracePauses{Count: p.Count, TotalSeconds: p.Total.Seconds(), MaxSeconds: p.Max.Seconds()}
	}
	out := ui.TraceSummary{
		Version: act.Version, DurationSeconds: act.Duration.Seconds(), Truncated: act.Truncated, Problem: act.Problem,
		Goroutines: len(act.Goroutines), GCCycles: act.GC.Cycles, GCSTW: pauses(act.GC.STW), OtherSTW: pauses(act.GC.OtherSTW),
		LongestWaiting: []ui.TraceGoroutine{},
	}
	for _, g := range act.LongestWaiting(traceLongestWaiting) {
		tg := ui.TraceGoroutine{ID: g.ID, WaitingSeconds: g.Waiting.Seconds(), RunningSeconds: g.Running.Seconds(),
			RunnableSeconds: g.Runnable.Seconds(), Blocks: g.Blocks, Ran: g.Ran, LastReason: g.LastReason, EndState: g.EndState}
		for _, f := range g.Stack {
			tg.Stack = append(tg.Stack, ui.TraceFrame{Func: f.Func, File: f.File, Line: f.Line})
		}
		out.LongestWaiting = append(out.LongestWaiting, tg)
	}
	return out, nil
}

// fleetSparkPoints is how many points the goroutine sparkline of a fleet
// row has.
const fleetSparkPoints = 30

// fleetWorkers bounds the instances summarised at once while a request
// waits: the store's reads run in parallel, and more workers than a few
// only queue on its pool.
const fleetWorkers = 4

// fleetBackgroundWorkers bounds them for the background refresh: one, so
// the refresh never holds more than one core while page loads wait for
// CPU. With four, BenchmarkFleetUnderIngest's p99 was 391–544 ms, with one
// 228–263 ms (same load); the refresh takes longer (≈ 2 s → 5–7 s for
// 1,000 instances), well inside its interval.
const fleetBackgroundWorkers = 1

// FleetGC is the windowed GC health of one fleet row.
type FleetGC struct {
	Cycles     int     `json:"cycles"`
	PauseP99Ms float64 `json:"pause_p99_ms"`
	PauseMaxMs float64 `json:"pause_max_ms"`
	// GCCPUFraction is GCHealth's: GC CPU without idle marking over CPU
	// capacity; −1 when unknown. GCCPUSource says over which span.
	GCCPUFraction float64 `json:"gc_cpu_fraction"`
	GCCPUSource   string  `json:"gc_cpu_source,omitempty"`
}

// fleetDefaultWindow is the window of the fleet page, kept warm in the
// background: computing it costs a few store queries per instance, seconds
// for a thousand, far over what one page load may take.
const fleetDefaultWindow = 15 * time.Minute

// fleetWindowed is the part of a fleet row that needs a window's worth of
// data.
type fleetWindowed struct {
	GC     FleetGC
	Series [][2]float64
	// Newest values of fleetSummaryNames within the window.
	Latest map[string]float64
	// Err says why the windowed figures could not be computed ("" when
	// they were); the row shows it and unknown figures.
	Err string
	// json is what a fleet row shows of the above (fleetFigures),
	// encoded once by windowed.
	json []byte
}

// fleetCache holds the windowed figures of every recent instance for
// fleetDefaultWindow. One computation runs at a time (flight): the
// background refresh and requests that find the cache missing or too old
// share it, so a burst of page loads on a cold server costs one
// computation, not one each.
type fleetCache struct {
	mu     sync.Mutex // guards the fields below; not held while computing
	at     time.Time
	rows   map[store.InstanceKey]fleetWindowed
	flight *fleetFlight
	// computed counts finished computations, for tests.
	computed int
}

// fleetFlight is one computation of the cache; done is closed when it ends.
type fleetFlight struct {
	done chan struct{}
	err  error
	// waiters counts callers that joined it, for tests.
	waiters int
}

// fleetMaxAge is the oldest cached summary a request is served: three
// analysis intervals (90 s by default), so one slow or failed refresh
// does not send every page load into the full computation, while two do.
func (c *Collector) fleetMaxAge() time.Duration { return 3 * c.cfg.AnalyzeInterval }

// refreshFleet recomputes the cached summary at full speed: Run's first
// pass, so the fleet page has figures at once; the periodic passes after
// it are paced (see shareFleet).
func (c *Collector) refreshFleet(ctx context.Context) error {
	return c.shareFleet(ctx, fleetBackgroundWorkers, 0)
}

// shareFleet recomputes the cached windowed figures of every instance seen
// within the analysis window with up to workers store readers, or waits
// for the computation already running. A non-zero span spreads the
// instances over it (the periodic refresh; requests never wait on one
// unless the summary is older than fleetMaxAge).
func (c *Collector) shareFleet(ctx context.Context, workers int, span time.Duration) error {
	for {
		c.fleet.mu.Lock()
		if f := c.fleet.flight; f != nil {
			f.waiters++
			c.fleet.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			// The caller that led the flight went away (its request was
			// cancelled): its result is not ours to report; lead a new one.
			if f.err != nil && ctx.Err() == nil && (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) {
				continue
			}
			return f.err
		}
		f := &fleetFlight{done: make(chan struct{})}
		c.fleet.flight = f
		c.fleet.mu.Unlock()

		now := c.now()
		rows, err := c.computeFleet(ctx, now, workers, span)
		c.fleet.mu.Lock()
		if err == nil {
			c.fleet.at, c.fleet.rows = now, rows
		}
		c.fleet.flight, c.fleet.computed = nil, c.fleet.computed+1
		f.err = err
		c.fleet.mu.Unlock()
		close(f.done)
		return err
	}
}

// computeFleet computes the windowed figures of every instance seen within
// the analysis window as of now.
func (c *Collector) computeFleet(ctx context.Context, now time.Time, workers int, span time.Duration) (map[store.InstanceKey]fleetWindowed, error) {
	insts, err := c.st.ListInstances(ctx, "", now.Add(-c.cfg.AnalyzeWindow))
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	keys := make([]store.InstanceKey, len(insts))
	for i, in := range insts {
		keys[i] = in.Key()
	}
	return c.windowed(ctx, keys, fleetDefaultWindow, now, workers, span)
}

// warmFleet returns the cached default-window figures and their time,
// refreshing them first (or waiting for the refresh under way) when they
// are missing or older than fleetMaxAge.
func (c *Collector) warmFleet(ctx context.Context, now time.Time) (map[store.InstanceKey]fleetWindowed, time.Time, error) {
	c.fleet.mu.Lock()
	rows, at := c.fleet.rows, c.fleet.at
	c.fleet.mu.Unlock()
	if rows != nil && now.Sub(at) < c.fleetMaxAge() {
		return rows, at, nil
	}
	if err := c.shareFleet(ctx, fleetWorkers, 0); err != nil {
		return nil, time.Time{}, fmt.Errorf("fleet summary: %w", err)
	}
	c.fleet.mu.Lock()
	defer c.fleet.mu.Unlock()
	return c.fleet.rows, c.fleet.at, nil
}

// fleetSummary fills the windowed figures and open findings of each row
// and returns the time the oldest figures are for. The default window is
// served from the shared cache (warmFleet); rows it lacks (instances first
// seen after it was computed, or longer ago than the analysis window) and
// other windows are computed now.
func (c *Collector) fleetSummary(ctx context.Context, rows []fleetRow, window time.Duration, now time.Time) (time.Time, error) {
	open, err := c.st.ListFindings(ctx, store.FindingFilter{State: store.FindingOpen, Limit: 1 << 20})
	if err != nil {
		return time.Time{}, fmt.Errorf("open findings: %w", err)
	}
	type counts struct{ all, leaks int }
	byInst := map[store.InstanceKey]*counts{}
	for _, f := range open {
		n := byInst[f.Instance]
		if n == nil {
			n = &counts{}
			byInst[f.Instance] = n
		}
		n.all++
		if f.Kind == KindGoroutineLeak {
			n.leaks++
		}
	}
	var cached map[store.InstanceKey]fleetWindowed
	at := now
	if window == fleetDefaultWindow && len(rows) > 0 {
		if cached, at, err = c.warmFleet(ctx, now); err != nil {
			return time.Time{}, err
		}
	}
	var missing []store.InstanceKey
	for i := range rows {
		if _, ok := cached[rows[i].key]; !ok {
			missing = append(missing, rows[i].key)
		}
	}
	fresh, err := c.windowed(ctx, missing, window, now, fleetWorkers, 0)
	if err != nil {
		return time.Time{}, err
	}
	for i := range rows {
		r := &rows[i]
		if n := byInst[r.key]; n != nil {
			r.OpenFindings, r.OpenLeaks = n.all, n.leaks
		}
		w, ok := cached[r.key]
		if !ok {
			w, ok = fresh[r.key]
		}
		if !ok { // not reached: windowed returns every key it was given
			return time.Time{}, fmt.Errorf("fleet summary: no figures for %s/%s", r.key.Service, r.key.ID)
		}
		r.figuresJSON = w.json
	}
	return at, nil
}

// windowed computes the windowed figures of keys over [now−window, now],
// a few instances at a time.
func (c *Collector) windowed(ctx context.Context, keys []store.InstanceKey, window time.Duration, now time.Time, workers int, span time.Duration) (map[store.InstanceKey]fleetWindowed, error) {
	end := now.UnixMilli() + 1
	start := now.Add(-window).UnixMilli()
	out := make([]fleetWindowed, len(keys))
	var (
		wg     sync.WaitGroup
		next   atomic.Int64
		failed atomic.Int64
	)
	pace := newPacer(span, len(keys))
	for range min(workers, len(keys)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(keys) || pace.wait(ctx, i) != nil {
					return
				}
				w, err := c.fleetRow(ctx, keys[i], start, end)
				if err != nil && ctx.Err() == nil {
					// One instance's failure (a damaged chunk, say) marks
					// its row; it must not take the fleet page down.
					w = fleetWindowed{Err: err.Error()}
					w.GC.GCCPUFraction = -1
					if failed.Add(1) == 1 {
						c.log.Warn("gopulse: fleet figures of an instance failed", "service", keys[i].Service, "instance", keys[i].ID, "err", err)
					}
				}
				out[i] = w
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := make(map[store.InstanceKey]*fleetWindowed, len(keys))
	for i, k := range keys {
		out[i].Latest = map[string]float64{}
		m[k] = &out[i]
	}
	if n := failed.Load(); n > 1 {
		c.log.Warn("gopulse: fleet figures failed for several instances; their rows carry the error", "instances", n)
	}
	if len(keys) == 0 {
		return map[store.InstanceKey]fleetWindowed{}, nil
	}
	// The newest values: one bulk query when many instances are asked
	// for, else a few small queries per instance.
	if len(keys) > 20 {
		rows, err := c.st.Fleet(ctx, store.FleetQuery{Names: fleetSummaryNames, Since: start})
		if err != nil {
			return nil, fmt.Errorf("fleet latest: %w", err)
		}
		for _, x := range rows {
			if w, ok := m[x.Instance.Key()]; ok {
				for n, l := range x.Latest {
					w.Latest[n] = l.Value
				}
			}
		}
	} else {
		for _, k := range keys {
			for _, n := range fleetSummaryNames {
				v, ok, err := c.latest(ctx, k, n, start, end)
				if err != nil {
					return nil, fmt.Errorf("%s/%s latest %s: %w", k.Service, k.ID, n, err)
				}
				if ok {
					m[k].Latest[n] = v
				}
			}
		}
	}
	res := make(map[store.InstanceKey]fleetWindowed, len(keys))
	for k, w := range m {
		if err := w.encode(); err != nil {
			return nil, fmt.Errorf("%s/%s: %w", k.Service, k.ID, err)
		}
		res[k] = *w
	}
	return res, nil
}

// encode sets w.json from the other fields.
func (w *fleetWindowed) encode() error {
	f := &fleetFigures{GC: w.GC, GoroutinesSeries: w.Series, Error: w.Err}
	if f.GoroutinesSeries == nil {
		f.GoroutinesSeries = [][2]float64{}
	}
	f.setLatest(w.Latest)
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode fleet figures: %w", err)
	}
	w.json = b
	return nil
}

func (c *Collector) fleetRow(ctx context.Context, key store.InstanceKey, start, end int64) (fleetWindowed, error) {
	var r fleetWindowed
	r.GC.GCCPUFraction = -1
	cycles, _, err := c.st.GCCycles(ctx, key, start, end)
	if err != nil {
		return r, fmt.Errorf("gc cycles: %w", err)
	}
	cs := summarizeCycles(cycles)
	r.GC.Cycles, r.GC.PauseP99Ms, r.GC.PauseMaxMs = cs.n, cs.p99Ms, cs.maxMs
	// GC CPU as the instance page's GC health computes it, with the CPU
	// classes read up to rolledEnd so the figure comes from the rollups
	// (it lags by one to two minutes) instead of decoding the raw tail of
	// every instance at every refresh.
	classEnd := end
	if e := rolledEnd(end); e-start >= 5*minuteMs {
		classEnd = e
	}
	f, from, err := c.gcCPUIn(ctx, key, start, classEnd, end, cs)
	if err != nil {
		return r, err
	}
	r.GC.GCCPUFraction = f
	r.GC.GCCPUSource = map[gcCPUFrom]string{
		gcCPUClasses: "share of CPU capacity in the window",
		gcCPUCycles:  "share of CPU capacity in the window (gc cycles)",
		// Scraped instances: memstats GCCPUFraction is GC CPU over CPU
		// capacity since the process started; the scrape gives no start
		// time, so it cannot be turned into the window's share.
		gcCPUMemstats: "share of CPU capacity since process start (memstats)",
	}[from]
	step := max((end-start)/fleetSparkPoints, 1000)
	pts, err := c.st.QuerySeries(ctx, store.SeriesQuery{Instance: key, Name: nameGoroutines, Start: start - start%step, End: end, Step: step})
	if err != nil {
		return r, fmt.Errorf("goroutines: %w", err)
	}
	r.Series = make([][2]float64, len(pts))
	for i, p := range pts {
		r.Series[i] = [2]float64{float64(p.T), p.Value}
	}
	return r, nil
}

// setLatest derives the heap, limit and goroutine figures from the newest
// values of fleetSummaryNames.
func (r *fleetFigures) setLatest(l map[string]float64) {
	r.Goroutines = -1
	if v, ok := l[nameGoroutines]; ok {
		r.Goroutines = v
	}
	if v, ok := l[nameHeapLive]; ok {
		r.HeapBytes = v
	} else if v, ok := l[nameMSHeapAlloc]; ok {
		r.HeapBytes = v
	}
	if v, ok := l[nameMemLimit]; ok && v > 0 && v < math.MaxInt64/2 {
		r.LimitBytes, r.LimitSource = v, "GOMEMLIMIT"
	}
	if v, ok := l[nameCgMemLimit]; ok && v > 0 && (r.LimitBytes == 0 || v < r.LimitBytes) {
		r.LimitBytes, r.LimitSource = v, "cgroup memory limit"
	}
	if r.LimitBytes > 0 {
		r.HeapFraction = r.HeapBytes / r.LimitBytes
	}
}
