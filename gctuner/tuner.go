// Package gctuner sets GOMEMLIMIT from the container's memory limit and
// adapts GOGC to keep GC CPU under a target, without walking into the GC
// death spiral. Standard library only.
//
// A memory limit alone (what automemlimit does) leaves GOGC at 100: a
// service with a small live heap in a big container collects far more
// often than it needs to. Raising GOGC alone risks the OOM killer. The
// tuner does both: GOMEMLIMIT = Ratio × the cgroup limit (the tightest up
// the hierarchy, re-read as it changes) caps the heap, and GOGC rises while
// GC CPU is above TargetGCCPU and falls back while it is well below, by
// bounded steps, at most once per MinChangeInterval.
//
// Near the limit GOGC stops mattering: the limit sets the heap goal and
// GC CPU climbs towards the 50% the runtime's limiter allows — the death
// spiral, where a service crawls for hours instead of failing
// (golang/go#58106). When GC CPU stays above GiveUpGCCPU with the heap at
// the limit for GiveUpAfter, the tuner stops squeezing: it raises the soft
// limit towards the hard limit (GiveUpRaise) or reports the process
// unhealthy (GiveUpReport). Every decision is an Event.
//
//	t, err := gctuner.Start(ctx, gctuner.Config{OnEvent: func(e gctuner.Event) { log.Print(e) }})
//	defer t.Stop()
package gctuner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// GiveUp is what the tuner does when the death-spiral rule fires.
type GiveUp int

const (
	// GiveUpRaise raises GOMEMLIMIT halfway towards the hard limit each
	// time the rule fires (up to HardLimitRatio of it).
	GiveUpRaise GiveUp = iota
	// GiveUpReport changes nothing and reports the process unhealthy
	// (Healthy() false, an "unhealthy" event): let an orchestrator
	// restart it rather than crawl.
	GiveUpReport
)

// Config tunes the tuner. The zero value works: GOMEMLIMIT at 90% of the
// cgroup limit, GOGC within [50, 800] aiming at 5% GC CPU.
type Config struct {
	// Ratio of the container limit to use as GOMEMLIMIT (default 0.9).
	Ratio float64
	// HardLimit overrides the cgroup limit (bytes); for tests and for a
	// simulated container. 0: read the cgroup.
	HardLimit uint64
	// FS is where /proc and /sys/fs/cgroup are read (default os.DirFS("/")).
	FS fs.FS
	// LimitInterval: how often the cgroup limit is re-read (default 10s).
	LimitInterval time.Duration

	// TargetGCCPU is the GC CPU fraction (of GOMAXPROCS, idle marking
	// excluded) to stay under (default 0.05).
	TargetGCCPU float64
	// Hysteresis: no change while GC CPU is within
	// [target·(1−h)², target·(1+h)] (default 0.25).
	Hysteresis float64
	// MinGOGC, MaxGOGC bound GOGC (defaults 50 and 800). Without any
	// memory limit the tuner never goes above 200: nothing would stop the
	// heap.
	MinGOGC, MaxGOGC int
	// Interval between observations (default 1s); GC CPU is measured
	// over the time since the last change.
	Interval time.Duration
	// MinChangeInterval rate-limits GOGC changes (default 10s).
	MinChangeInterval time.Duration
	// MaxStep bounds one change to ×MaxStep up or ÷MaxStep down (default 2).
	MaxStep float64

	// GiveUpGCCPU, GiveUpAfter: the death-spiral rule (defaults 0.3 and
	// 30s): GC CPU above this at the limit for this long.
	GiveUpGCCPU float64
	GiveUpAfter time.Duration
	GiveUp      GiveUp
	// HardLimitRatio caps GiveUpRaise (default 0.98 of the hard limit).
	HardLimitRatio float64
	// IgnoreEnv lets the tuner replace a GOMEMLIMIT set in the
	// environment; by default an operator's explicit setting wins.
	IgnoreEnv bool

	// OnEvent receives every decision, from the tuner's goroutine. It
	// must not block for long.
	OnEvent func(Event)
}

// Event is one decision or observation of the tuner.
type Event struct {
	Time time.Time
	// Kind: "start", "memlimit" (GOMEMLIMIT set or changed), "gogc",
	// "giveup" (the death-spiral rule fired), "unhealthy", "stop",
	// "error".
	Kind   string
	Reason string
	// Settings before and after (equal when nothing changed).
	OldGOGC, NewGOGC   int
	OldLimit, NewLimit int64
	// What was observed.
	GCCPU          float64
	HeapLive       uint64
	HeapGoal       uint64
	ContainerLimit uint64
}

func (e Event) String() string {
	return fmt.Sprintf("gctuner %s: %s (GOGC %d→%d, GOMEMLIMIT %d→%d, GC CPU %.1f%%)",
		e.Kind, e.Reason, e.OldGOGC, e.NewGOGC, e.OldLimit, e.NewLimit, e.GCCPU*100)
}

func (c *Config) defaults() error {
	if c.Ratio == 0 {
		c.Ratio = 0.9
	}
	if c.FS == nil {
		c.FS = os.DirFS("/")
	}
	if c.LimitInterval == 0 {
		c.LimitInterval = 10 * time.Second
	}
	if c.TargetGCCPU == 0 {
		c.TargetGCCPU = 0.05
	}
	if c.Hysteresis == 0 {
		c.Hysteresis = 0.25
	}
	if c.MinGOGC == 0 {
		c.MinGOGC = 50
	}
	if c.MaxGOGC == 0 {
		c.MaxGOGC = 800
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.MinChangeInterval == 0 {
		c.MinChangeInterval = 10 * time.Second
	}
	if c.MaxStep == 0 {
		c.MaxStep = 2
	}
	if c.GiveUpGCCPU == 0 {
		c.GiveUpGCCPU = 0.3
	}
	if c.GiveUpAfter == 0 {
		c.GiveUpAfter = 30 * time.Second
	}
	if c.HardLimitRatio == 0 {
		c.HardLimitRatio = 0.98
	}
	switch {
	case c.Ratio <= 0 || c.Ratio > 1:
		return fmt.Errorf("gctuner: Config.Ratio %g: want a fraction in (0, 1]", c.Ratio)
	case c.TargetGCCPU <= 0 || c.TargetGCCPU >= 0.5:
		return fmt.Errorf("gctuner: Config.TargetGCCPU %g: want a fraction in (0, 0.5)", c.TargetGCCPU)
	case c.Hysteresis < 0 || c.Hysteresis >= 1:
		return fmt.Errorf("gctuner: Config.Hysteresis %g: want [0, 1)", c.Hysteresis)
	case c.MinGOGC < 10 || c.MaxGOGC < c.MinGOGC:
		return fmt.Errorf("gctuner: Config.MinGOGC %d / MaxGOGC %d: want 10 ≤ MinGOGC ≤ MaxGOGC", c.MinGOGC, c.MaxGOGC)
	case c.MaxStep <= 1:
		return fmt.Errorf("gctuner: Config.MaxStep %g: want > 1", c.MaxStep)
	case c.GiveUpGCCPU <= 0 || c.GiveUpGCCPU > 1:
		return fmt.Errorf("gctuner: Config.GiveUpGCCPU %g: want (0, 1]", c.GiveUpGCCPU)
	case c.HardLimitRatio < c.Ratio || c.HardLimitRatio > 1:
		return fmt.Errorf("gctuner: Config.HardLimitRatio %g: want between Ratio (%g) and 1", c.HardLimitRatio, c.Ratio)
	case c.Interval < 0 || c.MinChangeInterval < 0 || c.LimitInterval < 0 || c.GiveUpAfter < 0:
		return errors.New("gctuner: Config intervals must not be negative")
	}
	return nil
}

// obs is one observation of the runtime.
type obs struct {
	now             time.Time
	gcCPU, totalCPU float64 // cumulative CPU-seconds; gcCPU without idle marking
	live, goal      uint64
	limiterLast     uint64
	gogc            int
	limit           int64
}

// state is the decision state; decide is pure so it can be tested with a
// fake clock and fake observations.
type state struct {
	cfg Config

	gogc  int
	limit int64 // what the tuner has set (NoLimit: none)
	hard  uint64

	envLimit bool // GOMEMLIMIT came from the environment: leave it

	// window start for GC CPU measurement
	winStart        time.Time
	winGC, winTotal float64
	// the previous observation: the give-up rule looks at each interval
	// on its own, so a lull resets its clock.
	lastObs           time.Time
	lastGC, lastTotal float64
	lastChange        time.Time
	atLimitSince      time.Time // the limit has set the heap goal since
	hist              []cpuMark // observations over the last GiveUpAfter
	unhealthy         bool
	lastLimiter       uint64
}

const noLimit = math.MaxInt64

// setLimit applies a new hard (container) limit.
func (s *state) setHard(hard uint64, now time.Time, o obs) []Event {
	if hard == s.hard {
		return nil
	}
	old := s.hard
	s.hard = hard
	if s.envLimit {
		return []Event{{Time: now, Kind: "memlimit", Reason: fmt.Sprintf("container limit %d; GOMEMLIMIT from the environment left alone", hard),
			OldGOGC: s.gogc, NewGOGC: s.gogc, OldLimit: s.limit, NewLimit: s.limit, ContainerLimit: hard}}
	}
	newLimit := int64(noLimit)
	reason := "no container memory limit: GOMEMLIMIT off"
	if hard > 0 {
		newLimit = int64(float64(hard) * s.cfg.Ratio)
		reason = fmt.Sprintf("container limit %d (was %d): GOMEMLIMIT = %.0f%%", hard, old, s.cfg.Ratio*100)
	}
	e := Event{Time: now, Kind: "memlimit", Reason: reason, OldGOGC: s.gogc, NewGOGC: s.gogc,
		OldLimit: s.limit, NewLimit: newLimit, HeapLive: o.live, HeapGoal: o.goal, ContainerLimit: hard}
	s.limit = newLimit
	s.atLimitSince = time.Time{}
	return []Event{e}
}

// atLimit: the memory limit, not GOGC, sets the heap goal (or the limiter
// fired since the last look).
func (s *state) atLimit(o obs) bool {
	if s.limit == noLimit {
		return false
	}
	gogcGoal := float64(o.live) * (1 + float64(s.gogc)/100)
	return float64(o.goal) < 0.95*gogcGoal || o.limiterLast > s.lastLimiter
}

func (s *state) maxGOGC() int {
	if s.limit == noLimit {
		return min(s.cfg.MaxGOGC, 200)
	}
	return s.cfg.MaxGOGC
}

// decide looks at one observation and returns the events of what to change
// (the caller applies NewGOGC / NewLimit).
func (s *state) decide(o obs) []Event {
	var out []Event
	span := o.now.Sub(s.winStart).Seconds()
	if s.winStart.IsZero() || o.totalCPU < s.winTotal {
		s.winStart, s.winGC, s.winTotal = o.now, o.gcCPU, o.totalCPU
		s.lastObs, s.lastGC, s.lastTotal = o.now, o.gcCPU, o.totalCPU
		s.lastLimiter = o.limiterLast
		return nil
	}
	dTotal := o.totalCPU - s.winTotal
	if span <= 0 || dTotal <= 0 {
		// The runtime updates CPU classes at GC time: no news yet.
		return nil
	}
	cpu := (o.gcCPU - s.winGC) / dTotal
	prevObs := s.lastObs
	s.lastObs, s.lastGC, s.lastTotal = o.now, o.gcCPU, o.totalCPU
	ev := func(kind, reason string) Event {
		return Event{Time: o.now, Kind: kind, Reason: reason, OldGOGC: s.gogc, NewGOGC: s.gogc,
			OldLimit: s.limit, NewLimit: s.limit, GCCPU: cpu, HeapLive: o.live, HeapGoal: o.goal, ContainerLimit: s.hard}
	}
	atLimit := s.atLimit(o)
	s.lastLimiter = max(s.lastLimiter, o.limiterLast)

	// The death-spiral rule: at the limit for GiveUpAfter, and GC CPU
	// above the threshold on average over that time. (The runtime's CPU
	// classes move at GC ends, so single intervals are too lumpy.)
	s.hist = append(s.hist, cpuMark{o.now, o.gcCPU, o.totalCPU})
	for len(s.hist) > 2 && o.now.Sub(s.hist[1].t) >= s.cfg.GiveUpAfter {
		s.hist = s.hist[1:]
	}
	winCPU := -1.0
	if h := s.hist[0]; o.totalCPU > h.total {
		winCPU = (o.gcCPU - h.gc) / (o.totalCPU - h.total)
	}
	if atLimit {
		if s.atLimitSince.IsZero() {
			s.atLimitSince = prevObs
		}
	} else {
		s.atLimitSince = time.Time{}
	}
	if !s.atLimitSince.IsZero() && o.now.Sub(s.atLimitSince) >= s.cfg.GiveUpAfter && winCPU > s.cfg.GiveUpGCCPU {
		s.atLimitSince = time.Time{}
		s.hist = s.hist[len(s.hist)-1:]
		reason := fmt.Sprintf("GC CPU %.0f%% (above %.0f%%) at the memory limit for %v", winCPU*100, s.cfg.GiveUpGCCPU*100, s.cfg.GiveUpAfter)
		e := ev("giveup", "")
		e.GCCPU = winCPU
		switch ceiling := int64(float64(s.hard) * s.cfg.HardLimitRatio); {
		case s.cfg.GiveUp == GiveUpRaise && s.hard > 0 && !s.envLimit && s.limit < ceiling:
			e.Reason = reason + ": raising GOMEMLIMIT towards the container limit"
			e.NewLimit = min(s.limit+(ceiling-s.limit)/2+1, ceiling)
			if ceiling-e.NewLimit < 1<<20 {
				e.NewLimit = ceiling
			}
			s.limit = e.NewLimit
			out = append(out, e)
		case !s.unhealthy:
			s.unhealthy = true
			e.Kind = "unhealthy"
			e.Reason = reason + ": the live heap does not fit the memory limit; restart it or give it more memory"
			out = append(out, e)
		}
		s.resetWindow(o)
		return out
	}
	if s.unhealthy && winCPU >= 0 && winCPU < s.cfg.GiveUpGCCPU/2 {
		s.unhealthy = false
		e := ev("healthy", fmt.Sprintf("GC CPU back to %.1f%%", winCPU*100))
		e.GCCPU = winCPU
		out = append(out, e)
	}

	// GOGC: rate-limited, with hysteresis, by bounded steps. At the
	// limit GOGC does not set the goal; raising it would do nothing now
	// and overshoot later.
	if o.now.Sub(s.lastChange) < s.cfg.MinChangeInterval || span < s.cfg.Interval.Seconds()/2 {
		return out
	}
	hi := s.cfg.TargetGCCPU * (1 + s.cfg.Hysteresis)
	lo := s.cfg.TargetGCCPU * (1 - s.cfg.Hysteresis) * (1 - s.cfg.Hysteresis)
	next := s.gogc
	switch {
	case cpu > hi && !atLimit:
		// GC CPU falls roughly as 1/GOGC (cycles/s ∝ 1/(live·GOGC)).
		f := math.Min(cpu/s.cfg.TargetGCCPU, s.cfg.MaxStep)
		next = min(int(math.Ceil(float64(s.gogc)*f)), s.maxGOGC())
	case cpu < lo && o.now.Sub(s.lastChange) >= 5*s.cfg.MinChangeInterval:
		// Down slowly, on a long average: lowering GOGC only saves
		// memory the limit already protects, and a bursty service's
		// lulls must not set GOGC for its next burst.
		f := math.Max(cpu/s.cfg.TargetGCCPU, 1/s.cfg.MaxStep)
		next = max(int(float64(s.gogc)*math.Max(f, 0.75)), s.cfg.MinGOGC)
	}
	if next > s.maxGOGC() {
		next = s.maxGOGC()
	}
	if next != s.gogc {
		e := ev("gogc", fmt.Sprintf("GC CPU %.1f%% over %.0fs vs target %.1f%%", cpu*100, span, s.cfg.TargetGCCPU*100))
		e.NewGOGC = next
		s.gogc = next
		s.lastChange = o.now
		out = append(out, e)
		s.resetWindow(o)
	}
	return out
}

func (s *state) resetWindow(o obs) {
	s.winStart, s.winGC, s.winTotal = o.now, o.gcCPU, o.totalCPU
}

type cpuMark struct {
	t         time.Time
	gc, total float64
}

// Tuner runs the tuning loop; Start makes one.
type Tuner struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	unhealthy bool
	gogc      int
	limit     int64

	origGOGC  int
	origLimit int64
}

var metricNames = []string{
	"/cpu/classes/gc/total:cpu-seconds",
	"/cpu/classes/gc/mark/idle:cpu-seconds",
	"/cpu/classes/total:cpu-seconds",
	"/gc/heap/live:bytes",
	"/gc/heap/goal:bytes",
	"/gc/limiter/last-enabled:gc-cycle",
}

func read(ss []metrics.Sample, now time.Time) obs {
	metrics.Read(ss)
	f := func(i int) float64 {
		if ss[i].Value.Kind() == metrics.KindFloat64 {
			return ss[i].Value.Float64()
		}
		return 0
	}
	u := func(i int) uint64 {
		if ss[i].Value.Kind() == metrics.KindUint64 {
			return ss[i].Value.Uint64()
		}
		return 0
	}
	return obs{now: now, gcCPU: f(0) - f(1), totalCPU: f(2), live: u(3), goal: u(4), limiterLast: u(5)}
}

// Start sets GOMEMLIMIT from the container and starts tuning GOGC until
// ctx ends or Stop is called. It fails on an invalid Config; a missing
// cgroup limit is not an error (GOGC is still tuned, within 200).
func Start(ctx context.Context, cfg Config) (*Tuner, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	orig := debug.SetGCPercent(100)
	debug.SetGCPercent(orig)
	t := &Tuner{done: make(chan struct{}), origGOGC: orig, origLimit: debug.SetMemoryLimit(-1)}
	s := &state{cfg: cfg, gogc: orig, limit: t.origLimit}
	if orig < 0 {
		s.gogc = 100 // GOGC=off: tuning starts from the default
	}
	s.envLimit = os.Getenv("GOMEMLIMIT") != "" && !cfg.IgnoreEnv
	ss := make([]metrics.Sample, len(metricNames))
	for i, n := range metricNames {
		ss[i].Name = n
	}
	emit := func(es []Event) {
		for _, e := range es {
			if e.NewGOGC != e.OldGOGC {
				debug.SetGCPercent(e.NewGOGC)
			}
			if e.NewLimit != e.OldLimit {
				debug.SetMemoryLimit(e.NewLimit)
			}
			t.mu.Lock()
			t.gogc, t.limit = s.gogc, s.limit
			switch e.Kind {
			case "unhealthy":
				t.unhealthy = true
			case "healthy":
				t.unhealthy = false
			}
			t.mu.Unlock()
			if cfg.OnEvent != nil {
				cfg.OnEvent(e)
			}
		}
	}
	hard := func(now time.Time, o obs) []Event {
		h := cfg.HardLimit
		if h == 0 {
			v, where, err := MemoryLimit(cfg.FS)
			switch {
			case errors.Is(err, ErrNoLimit):
			case err != nil:
				return []Event{{Time: now, Kind: "error", Reason: "read cgroup memory limit: " + err.Error(),
					OldGOGC: s.gogc, NewGOGC: s.gogc, OldLimit: s.limit, NewLimit: s.limit}}
			default:
				h = v
				_ = where
			}
		}
		if h == 0 && s.hard == 0 && s.limit == t.origLimit {
			// Nothing to set; say so once.
			if s.winStart.IsZero() {
				return []Event{{Time: now, Kind: "memlimit", Reason: "no container memory limit found; GOMEMLIMIT unchanged, GOGC kept ≤ 200",
					OldGOGC: s.gogc, NewGOGC: s.gogc, OldLimit: s.limit, NewLimit: s.limit}}
			}
			return nil
		}
		return s.setHard(h, now, o)
	}
	now := time.Now()
	o := read(ss, now)
	o.gogc, o.limit = s.gogc, s.limit
	emit([]Event{{Time: now, Kind: "start", Reason: fmt.Sprintf("target GC CPU %.1f%%, GOGC in [%d, %d]", cfg.TargetGCCPU*100, cfg.MinGOGC, cfg.MaxGOGC),
		OldGOGC: orig, NewGOGC: s.gogc, OldLimit: t.origLimit, NewLimit: s.limit}})
	emit(hard(now, o))
	s.decide(o)

	ctx, t.cancel = context.WithCancel(ctx)
	go func() {
		defer close(t.done)
		tk := time.NewTicker(cfg.Interval)
		defer tk.Stop()
		lastLimitRead := now
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tk.C:
				o := read(ss, now)
				if now.Sub(lastLimitRead) >= cfg.LimitInterval {
					lastLimitRead = now
					emit(hard(now, o))
				}
				emit(s.decide(o))
			}
		}
	}()
	return t, nil
}

// Stop ends tuning, waits for the loop to exit, and restores the GOGC and
// GOMEMLIMIT the process had before Start.
func (t *Tuner) Stop() {
	t.cancel()
	<-t.done
	debug.SetGCPercent(t.origGOGC)
	debug.SetMemoryLimit(t.origLimit)
}

// Healthy is false after the give-up rule reported the process unhealthy
// (GiveUpReport, or GiveUpRaise with nothing left to raise), until GC CPU
// falls back.
func (t *Tuner) Healthy() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.unhealthy
}

// Settings are the GOGC and GOMEMLIMIT the tuner last set.
func (t *Tuner) Settings() (gogc int, memLimit int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.gogc, t.limit
}
