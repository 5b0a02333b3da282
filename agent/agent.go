package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopulse/gopulse/agent/internal/capture"
	"github.com/gopulse/gopulse/agent/internal/rules"
	"github.com/gopulse/gopulse/agent/internal/sample"
	"github.com/gopulse/gopulse/agent/internal/ship"
	"github.com/gopulse/gopulse/wire"
)

// Version is the agent's version, shipped in wire.Instance.
const Version = "0.1.0"

// Agent samples the runtime, watches the trigger rules, captures evidence
// bundles and ships everything to the collector. It is safe for
// concurrent use.
type Agent struct {
	opts     Options
	instance *wire.Instance
	sampler  *sample.Sampler
	shipper  *ship.Shipper
	spool    *ship.Spool
	rec      *capture.Recorder
	th       rules.Thresholds

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
	stopErr  error
	stopped  atomic.Bool
	manual   chan string

	// Owned by the run loop.
	slots    []sample.Slot
	nslots   int
	window   []sample.Point // ring
	wpos     int
	wlen     int
	linear   []sample.Point
	results  []rules.Result
	limiter  rules.Limiter
	seq      uint64
	lastSend time.Time

	filled                   int
	iGOGC, iMemLimit, iProcs int
	stopChan                 chan struct{}

	capturing atomic.Bool
	// pendingManual holds the reason of a manual trigger that arrived
	// during a capture: it runs when that capture ends, so an on-call
	// engineer's request is deferred, never lost.
	pendingManual atomic.Pointer[string]
	events        atomic.Uint64

	mu        sync.Mutex
	last      sample.Slot // copy of the latest facts for Handler and bundles
	recent    []EventInfo
	stwTotal  float64
	lastLevel map[string]float64
	settings  settings
	gcCPU     gcCPU
}

type settings struct {
	GOGCPercent     int64 `json:"gogc_percent"`
	GOMEMLIMITBytes int64 `json:"gomemlimit_bytes"`
	GOMAXPROCS      int64 `json:"gomaxprocs"`
}

// EventInfo describes one captured (or attempted) bundle.
type EventInfo struct {
	EventID string    `json:"event_id"`
	Rule    string    `json:"rule"`
	Reason  string    `json:"reason"`
	Time    time.Time `json:"time"`
	Files   []string  `json:"files,omitempty"`
	Notes   []string  `json:"notes,omitempty"`
	// CaptureSTWSeconds is the stop-the-world time during the capture from
	// /sched/pauses/total/other:seconds.
	CaptureSTWSeconds float64 `json:"capture_stw_seconds"`
	Error             string  `json:"error,omitempty"`
}

// Start validates opts (after GOPULSE_* overrides), starts sampling and
// returns the running agent. ctx bounds start-up only; call Stop to end
// the agent. An invalid option is an error naming the field.
func Start(ctx context.Context, opts Options) (*Agent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a, err := build(opts, os.Getenv)
	if err != nil {
		return nil, err
	}
	a.start()
	return a, nil
}

// build validates and allocates everything without starting goroutines.
func build(opts Options, getenv func(string) string) (*Agent, error) {
	if err := opts.applyEnv(getenv); err != nil {
		return nil, err
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	a := &Agent{opts: o, manual: make(chan string, 4), lastLevel: map[string]float64{}, stopChan: make(chan struct{}), gcCPU: newGCCPU()}
	a.th = rules.Thresholds{
		GCPause: o.Triggers.GCPause, GCCPUFraction: o.Triggers.GCCPUFraction, GCCPUWindow: o.Triggers.GCCPUWindow,
		GoroutineGrowth: o.Triggers.GoroutineGrowthFraction, GoroutineGrowthMin: float64(o.Triggers.GoroutineGrowthMin),
		GoroutineWindow: o.Triggers.GoroutineWindow, HeapFraction: o.Triggers.HeapLimitFraction,
		SchedP99: o.Triggers.SchedLatencyP99, FDFraction: o.Triggers.FDFraction, GCLimiter: !o.Triggers.DisableGCLimiter,
	}
	a.limiter = rules.Limiter{Cooldown: o.Triggers.Cooldown, MaxPerHour: o.Triggers.MaxBundlesPerHour}
	id := o.InstanceID
	if id == "" {
		var b [8]byte
		rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	host, _ := os.Hostname()
	a.instance = &wire.Instance{
		Service: o.Service, InstanceId: id, Host: host, Pid: int64(os.Getpid()), GoVersion: runtime.Version(),
		StartTimeUnixNano: time.Now().UnixNano(), AgentVersion: Version, Labels: o.Labels,
	}

	s, err := sample.New(sample.Config{Interval: o.SampleInterval, SchedWindow: o.Triggers.SchedLatencyWindow})
	if err != nil {
		o.Logger.Warn("gopulse agent: cgroup facts unavailable", "err", err)
	}
	a.sampler = s
	a.iGOGC, a.iMemLimit, a.iProcs = s.RT.Index(sample.NameGOGC), s.RT.Index(sample.NameGOMEMLIMIT), s.RT.Index(sample.NameGOMAXPROCS)
	if o.SpoolDir != "-" {
		sp, err := ship.OpenSpool(o.SpoolDir, o.SpoolMaxBytes, o.SpoolMaxAge, time.Hour)
		if err != nil {
			o.Logger.Warn("gopulse agent: spool disabled, undelivered data is kept in memory only and bundles stream directly; set Options.SpoolDir or GOPULSE_SPOOL_DIR to a writable directory", "err", err)
		} else {
			a.spool = sp
		}
	}
	if o.Collector != "" {
		a.shipper = ship.New(ship.Config{
			URL: o.Collector, Token: o.Token, Client: o.HTTPClient, Spool: a.spool,
			BaseBackoff: o.RetryBase, MaxBackoff: o.RetryMax,
			BatchTimeout: 30 * time.Second, BundleTimeout: 10 * time.Minute,
			Logf: func(format string, args ...any) { o.Logger.Warn(fmt.Sprintf(format, args...)) },
		})
	}
	mode := map[FlightRecorderMode]capture.Mode{FlightRecorderOff: capture.Off, FlightRecorderArmed: capture.Armed, FlightRecorderOn: capture.On}[o.FlightRecorder]
	a.rec = &capture.Recorder{Mode: mode, MinAge: o.FlightRecorderMinAge, MaxSize: o.FlightRecorderMaxBytes,
		Duty: max(o.FlightRecorderDutyCycle, 0), MaxBurst: 5 * time.Minute}

	a.nslots = int(o.BatchInterval/o.SampleInterval) + 1
	a.slots = make([]sample.Slot, a.nslots)
	maxWin := max(o.Triggers.GCCPUWindow, o.Triggers.GoroutineWindow, time.Second)
	wn := int(maxWin/o.SampleInterval) + 2
	a.window = make([]sample.Point, wn)
	a.linear = make([]sample.Point, 0, wn)
	a.results = make([]rules.Result, 0, 16)

	return a, nil
}

// start launches the run loop and the shipper.
func (a *Agent) start() {
	runCtx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.rec.Set(false, time.Now())
	if a.shipper != nil {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.shipper.Run(runCtx)
		}()
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.run(runCtx)
	}()
}

// Stop stops sampling, cancels a running capture, sends what is pending
// within ctx (5 s if ctx has no deadline), spools the rest and releases
// everything. It is
// safe to call more than once; later calls return the first result.
func (a *Agent) Stop(ctx context.Context) error {
	a.stopOnce.Do(func() {
		a.stopped.Store(true)
		if a.cancel != nil {
			a.cancel()
		}
		close(a.stopChan)
		a.wg.Wait()
		a.rec.Stop()
		if a.shipper != nil {
			// Without a deadline a hanging collector would hold Stop for a
			// full request timeout; 5 s is enough for a healthy one, and
			// what is not sent is spooled.
			if _, ok := ctx.Deadline(); !ok {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
			}
			a.shipper.Flush(ctx)
			if ctx.Err() != nil {
				a.stopErr = fmt.Errorf("agent: stop: delivery cut short: %w", ctx.Err())
			}
		}
		a.sampler.Close()
		if a.spool != nil {
			a.spool.Close()
		}
	})
	return a.stopErr
}

// Trigger captures an evidence bundle now, under the "manual" rule, unless
// the per-rule cooldown or the hourly cap forbids it; during another
// capture it runs when that one ends. It never blocks.
func (a *Agent) Trigger(reason string) {
	if a.stopped.Load() {
		return
	}
	select {
	case a.manual <- reason:
	default:
	}
}

func (a *Agent) run(ctx context.Context) {
	t := time.NewTicker(a.opts.SampleInterval)
	defer t.Stop()
	a.lastSend = time.Now()
	a.tick(time.Now())
	for {
		select {
		case <-ctx.Done():
			a.sendBatch(time.Now())
			return
		case now := <-t.C:
			a.tick(now)
		case reason := <-a.manual:
			a.fire(ctx, rules.Result{Rule: rules.Manual}, reason, time.Now())
		}
	}
}

// tick takes one sample, evaluates the rules and ships a batch when due.
// Its steady-state path allocates nothing (see TestTickAllocatesNothing).
func (a *Agent) tick(now time.Time) {
	slot := &a.slots[a.filled]
	a.sampler.Sample(now, slot)
	a.window[a.wpos] = slot.Point
	a.wpos = (a.wpos + 1) % len(a.window)
	if a.wlen < len(a.window) {
		a.wlen++
	}
	a.linear = a.linear[:0]
	for i := 0; i < a.wlen; i++ {
		a.linear = append(a.linear, a.window[(a.wpos-a.wlen+i+len(a.window))%len(a.window)])
	}
	a.results = rules.Evaluate(a.results[:0], a.th, a.linear)
	elevated := false
	for i := range a.results {
		if a.results[i].Level >= a.opts.ArmLevel {
			elevated = true
		}
	}
	a.rec.Set(elevated, now)
	r := a.sampler.RT
	st := settings{
		GOGCPercent: int64(r.Uint(a.iGOGC)), GOMEMLIMITBytes: int64(r.Uint(a.iMemLimit)), GOMAXPROCS: int64(r.Uint(a.iProcs)),
	}
	a.mu.Lock()
	a.settings = st
	a.copyLast(slot)
	for i := range a.results {
		a.lastLevel[a.results[i].Rule] = a.results[i].Level
	}
	a.mu.Unlock()
	for i := range a.results {
		if a.results[i].Fired {
			a.fire(context.Background(), a.results[i], "", now)
		}
	}
	a.filled++
	if now.Sub(a.lastSend) >= a.opts.BatchInterval || a.filled >= a.nslots {
		a.sendBatch(now)
	}
}

// copyLast keeps the scalar facts of the latest sample for Handler and
// bundles (without the slices, which the next tick reuses).
func (a *Agent) copyLast(s *sample.Slot) {
	a.last.Time, a.last.Proc, a.last.Cg, a.last.Point = s.Time, s.Proc, s.Cg, s.Point
	a.gcCPU.update(s.Point)
}

func (a *Agent) fire(ctx context.Context, r rules.Result, reason string, now time.Time) {
	// One capture at a time (the runtime allows one CPU profile and one
	// flight-recorder write). A rule that fires while busy is not charged
	// its cooldown, so it fires again on the next sample if still true.
	if !a.capturing.CompareAndSwap(false, true) {
		if r.Rule == rules.Manual {
			a.pendingManual.Store(&reason)
			a.opts.Logger.Info("gopulse agent: manual trigger deferred: it runs when the capture under way ends")
			// The capture may have ended between the check and the store.
			if !a.capturing.Load() {
				if p := a.pendingManual.Swap(nil); p != nil {
					a.Trigger(*p)
				}
			}
		}
		return
	}
	if !a.limiter.Allow(r.Rule, now) {
		a.capturing.Store(false)
		return
	}
	if reason == "" {
		reason = r.Reason()
	}
	n := a.events.Add(1)
	m := &wire.BundleManifest{
		EventId: fmt.Sprintf("%s-e%d", a.instance.InstanceId, n), Instance: a.instance, Rule: r.Rule,
		Reason: reason, FiredAtUnixNano: now.UnixNano(),
	}
	for _, v := range r.Values() {
		m.Values = append(m.Values, &wire.RuleValue{Name: v.Name, Value: v.Value, Threshold: v.Threshold, Unit: v.Unit})
	}
	a.mu.Lock()
	facts := a.factsLocked()
	a.mu.Unlock()
	spec := capture.Spec{
		Manifest: m, Debug2Limit: a.opts.Debug2GoroutineLimit, LeakProfileLimit: a.opts.LeakProfileGoroutineLimit, Mutex: a.opts.MutexProfile, Block: a.opts.BlockProfile,
		Recorder: a.rec, Facts: facts,
	}
	if a.opts.CPUProfileDuration > 0 {
		spec.CPUProfile = a.opts.CPUProfileDuration
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer func() {
			a.capturing.Store(false)
			if p := a.pendingManual.Swap(nil); p != nil {
				a.Trigger(*p)
			}
		}()
		a.capture(spec)
	}()
}

// capture runs one capture to the spool (then the shipper delivers it) or,
// without a spool, straight to the collector.
func (a *Agent) capture(spec capture.Spec) {
	// The capture is cut short by Stop but never by the trigger's caller.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	go func() {
		select {
		case <-stopWatch:
		case <-a.stopChan:
			cancel()
		}
	}()
	var got *wire.BundleManifest
	produce := func(w io.Writer) error {
		m, err := capture.Capture(ctx, w, spec)
		got = m
		return err
	}
	var err error
	switch {
	case a.spool != nil:
		err = a.shipperSpool(spec.Manifest.EventId, produce)
	case a.shipper != nil:
		err = a.shipper.StreamBundle(ctx, spec.Manifest.EventId, produce)
	default:
		err = produce(io.Discard)
		if err == nil {
			err = errors.New("no spool and no collector: bundle discarded")
		}
	}
	info := EventInfo{EventID: spec.Manifest.EventId, Rule: spec.Manifest.Rule, Reason: spec.Manifest.Reason,
		Time: time.Unix(0, spec.Manifest.FiredAtUnixNano)}
	if got != nil {
		for _, f := range got.Files {
			info.Files = append(info.Files, f.Name)
		}
		info.Notes = got.Notes
		info.CaptureSTWSeconds = got.CaptureStwSeconds
	}
	if err != nil {
		info.Error = err.Error()
		a.opts.Logger.Warn("gopulse agent: evidence bundle incomplete", "event", info.EventID, "rule", info.Rule, "err", err)
	}
	a.mu.Lock()
	a.stwTotal += info.CaptureSTWSeconds
	a.recent = append(a.recent, info)
	if len(a.recent) > 32 {
		a.recent = a.recent[len(a.recent)-32:]
	}
	a.mu.Unlock()
}

func (a *Agent) shipperSpool(id string, produce func(io.Writer) error) error {
	if a.shipper != nil {
		return a.shipper.SpoolBundle(id, produce)
	}
	// No collector: keep the bundle in the spool for a later run that has
	// one (or for a person to pick up).
	return ship.New(ship.Config{Spool: a.spool}).SpoolBundle(id, produce)
}

func (a *Agent) factsLocked() map[string]any {
	return map[string]any{
		"instance": a.instance,
		"process":  a.last.Proc,
		"cgroup":   a.last.Cg,
		"point":    a.last.Point,
		"settings": a.settings,
	}
}
