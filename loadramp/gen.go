package loadramp

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Generator sends open-model load at one target. It keeps a pool of at most
// MaxConns keep-alive connections across steps; each connection carries one
// request at a time, so MaxConns also bounds the requests in flight and
// therefore the generator's memory and sockets however far the target falls
// behind.
type Generator struct {
	p        *preparedTarget
	maxConns int
	clients  []client
	hc       *http.Client // shared by EngineNetHTTP clients
}

// NewGenerator validates the target and sizes the pool. maxConns ≤ 0 means
// 256.
func NewGenerator(t Target, maxConns int) (*Generator, error) {
	p, err := prepare(t)
	if err != nil {
		return nil, err
	}
	if maxConns <= 0 {
		maxConns = 256
	}
	switch t.Engine {
	case "", EngineRaw, EngineNetHTTP:
	default:
		return nil, fmt.Errorf("engine %q: want %q or %q", t.Engine, EngineRaw, EngineNetHTTP)
	}
	g := &Generator{p: p, maxConns: maxConns, clients: make([]client, maxConns)}
	if t.Engine == EngineNetHTTP {
		g.hc = newNetHTTPTransport(p, maxConns)
	}
	return g, nil
}

// MaxConns is the pool bound.
func (g *Generator) MaxConns() int { return g.maxConns }

// Close closes every pooled connection.
func (g *Generator) Close() {
	for i, c := range g.clients {
		if c != nil {
			c.close()
			g.clients[i] = nil
		}
	}
	if g.hc != nil {
		g.hc.CloseIdleConnections()
	}
}

func (g *Generator) client(i int) client {
	if g.clients[i] == nil {
		if g.p.t.Engine == EngineNetHTTP {
			g.clients[i] = &netHTTPClient{p: g.p, hc: g.hc}
		} else {
			g.clients[i] = newRawClient(g.p)
		}
	}
	return g.clients[i]
}

// StepSpec is one step of load.
type StepSpec struct {
	// Rate is the offered rate in requests per second. 0 runs closed-loop:
	// every connection sends its next request as soon as the previous one
	// completes (what wrk does; used to measure the generator itself).
	Rate float64
	// Warmup is sent but not measured; Duration is the measured window.
	Warmup, Duration time.Duration
	// Conns is the number of connections the step starts with. 0 sizes it
	// by Little's law from LatencyHint: in flight = rate × latency, times
	// two for headroom. During the step the pool grows (up to the
	// generator's MaxConns) whenever a send goes out late because every
	// connection was busy.
	Conns       int
	LatencyHint time.Duration
	// DropAfter: a send more than this late is dropped. Default 1 s.
	DropAfter time.Duration
	// LagLimit: the step is generator-limited when idle connections wake
	// for their sends later than this at p99. Default 5 ms; the ramp
	// raises it to a quarter of the tightest latency objective, since
	// lag below that cannot decide the SLO.
	LagLimit time.Duration
	// AtWindow, if set, is called from a goroutine the step owns when the
	// measured window starts (true) and ends (false); the step waits for
	// it to return. The ramp reads the target's runtime here.
	AtWindow func(start bool)
	// Arrivals spaces the sends of an open-model step; "" is uniform.
	// Seed fixes a Poisson schedule (0 means 1), so a step can be re-run.
	Arrivals Arrivals
	Seed     uint64
}

// Arrivals is how an open-model step spaces its sends.
type Arrivals string

const (
	// ArrivalsUniform sends exactly every 1/rate: the least noisy way to
	// find a limit, and the default.
	ArrivalsUniform Arrivals = "uniform"
	// ArrivalsPoisson spaces sends by independent exponential gaps of mean
	// 1/rate, as requests from many independent users arrive: the bursts
	// queue at the target as real traffic does, so latency at a given rate
	// is higher than under uniform arrivals.
	ArrivalsPoisson Arrivals = "poisson"
)

// maxSchedule bounds a Poisson schedule (8 bytes a send).
const maxSchedule = 20_000_000

func (a Arrivals) valid() error {
	switch a {
	case "", ArrivalsUniform, ArrivalsPoisson:
		return nil
	}
	return fmt.Errorf("arrivals %q: want %q or %q", string(a), ArrivalsUniform, ArrivalsPoisson)
}

// poissonSchedule returns send times in ns from the step's start: gaps
// drawn from an exponential distribution of mean nsPerReq, up to end.
func poissonSchedule(nsPerReq float64, end int64, seed uint64) ([]int64, error) {
	if n := float64(end) / nsPerReq; n > maxSchedule {
		return nil, fmt.Errorf("a Poisson schedule of %.0f sends is too large (at most %d per step): lower the rate or the step duration", n, maxSchedule)
	}
	if seed == 0 {
		seed = 1
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	sched := make([]int64, 0, int(float64(end)/nsPerReq*1.05)+16)
	t := r.ExpFloat64() * nsPerReq
	for int64(t) < end {
		sched = append(sched, int64(t))
		t += r.ExpFloat64() * nsPerReq
	}
	return sched, nil
}

// StepResult is what one step measured. Counts cover requests whose
// intended send time fell inside the measured window.
type StepResult struct {
	OfferedRPS  float64       // requested rate (closed loop: 0)
	AchievedRPS float64       // responses of any status completed in the window, per second
	Window      time.Duration // length of the measured window
	Intended    int64         // requests due in the window
	Sent        int64
	Responses   int64 // any HTTP status
	OK          int64 // 2xx
	Dropped     int64 // due in the window but never sent: more than DropAfter late
	Late        int64 // sent more than 1 ms after the intended time
	Errors      map[string]int64
	// Corrected is latency from the intended send time (dropped requests
	// enter at DropAfter); Uncorrected from the actual send.
	Corrected, Uncorrected *Hist
	// WakeLag is how late a connection that was idle and waiting woke up
	// for its next send: the generator's own scheduling delay.
	WakeLag        *Hist
	ConnsStart     int
	ConnsMax       int // connections in use at the end of the step
	PoolExhausted  bool
	GenCPU         time.Duration // this process's CPU during the whole step
	GenCPUFraction float64       // GenCPU / (wall × GOMAXPROCS)
	// GeneratorLimited says the generator, not the target, could not keep
	// up; GeneratorReason says why.
	GeneratorLimited bool
	GeneratorReason  string
}

// ErrorCount is the number of failed requests (errors of every kind and
// dropped sends).
func (r *StepResult) ErrorCount() int64 {
	var n int64
	for _, c := range r.Errors {
		n += c
	}
	return n + r.Dropped
}

// ErrorRate is ErrorCount over the requests due in the window.
func (r *StepResult) ErrorRate() float64 {
	if r.Intended == 0 {
		return 0
	}
	return float64(r.ErrorCount()) / float64(r.Intended)
}

// Thresholds for marking a step generator-limited.
const (
	wakeLagLimit   = 5 * time.Millisecond
	genCPULimit    = 0.90
	lateThreshold  = time.Millisecond
	defaultDropOff = time.Second
)

// LittleConns sizes a pool by Little's law: rate × latency in flight, ×2
// headroom, plus 2, at least 2.
func LittleConns(rate float64, latency time.Duration) int {
	if latency <= 0 {
		latency = time.Millisecond
	}
	n := int(math.Ceil(rate*latency.Seconds()*2)) + 2
	return max(n, 2)
}

// Step runs one step and blocks until every request it sent has finished
// (each is bounded by Target.Timeout). A cancelled ctx ends the step early
// and returns the partial result with ctx's error. Steps of one Generator
// must not run concurrently: they share its connections.
func (g *Generator) Step(ctx context.Context, s StepSpec) (*StepResult, error) {
	if s.Duration <= 0 {
		return nil, errors.New("step duration must be positive")
	}
	if s.Rate < 0 || math.IsNaN(s.Rate) || math.IsInf(s.Rate, 0) {
		return nil, fmt.Errorf("step rate %v: must be a finite number ≥ 0", s.Rate)
	}
	if err := s.Arrivals.valid(); err != nil {
		return nil, err
	}
	if s.DropAfter <= 0 {
		s.DropAfter = defaultDropOff
	}
	conns := s.Conns
	if conns <= 0 {
		if s.Rate == 0 {
			conns = g.maxConns
		} else {
			conns = LittleConns(s.Rate, s.LatencyHint)
		}
	}
	conns = min(conns, g.maxConns)

	st := &stepState{
		g: g, spec: s,
		res: &StepResult{
			OfferedRPS: s.Rate, Window: s.Duration, Errors: map[string]int64{},
			Corrected: new(Hist), Uncorrected: new(Hist), WakeLag: new(Hist), ConnsStart: conns,
		},
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st.ctx = ctx
	cpu0 := processCPU()
	st.base = time.Now()
	st.ws = int64(s.Warmup)
	st.we = st.ws + int64(s.Duration)
	if s.Rate > 0 {
		st.nsPerReq = 1e9 / s.Rate
		if s.Arrivals == ArrivalsPoisson {
			sched, err := poissonSchedule(st.nsPerReq, st.we, s.Seed)
			if err != nil {
				return nil, err
			}
			st.sched = sched
		}
	}

	var aux sync.WaitGroup
	if s.AtWindow != nil {
		aux.Add(1)
		go func() { // owner: this step; ends at the window's end or on cancel
			defer aux.Done()
			for _, at := range []struct {
				off   int64
				start bool
			}{{st.ws, true}, {st.we, false}} {
				t := time.NewTimer(time.Until(st.base.Add(time.Duration(at.off))))
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return
				}
				s.AtWindow(at.start)
			}
		}()
	}
	// Unblock workers stuck in a read when the caller gives up.
	stopWatch := context.AfterFunc(ctx, func() {
		st.mu.Lock()
		defer st.mu.Unlock()
		st.stopped = true
		for i := 0; i < st.nworkers; i++ {
			g.clients[i].abort()
		}
	})
	defer stopWatch()

	st.mu.Lock()
	for range conns {
		st.spawnLocked()
	}
	st.mu.Unlock()
	st.wg.Wait()
	aux.Wait()

	wall := time.Since(st.base)
	r := st.res
	r.GenCPU = processCPU() - cpu0
	r.GenCPUFraction = r.GenCPU.Seconds() / (wall.Seconds() * float64(runtime.GOMAXPROCS(0)))
	r.Intended = st.intended.Load()
	r.Sent = st.sent.Load()
	r.Responses = st.responses.Load()
	r.OK = st.ok.Load()
	r.Dropped = st.dropped.Load()
	r.Late = st.late.Load()
	r.AchievedRPS = float64(st.doneInWindow.Load()) / s.Duration.Seconds()
	r.ConnsMax = st.nworkers
	r.PoolExhausted = st.exhausted.Load()
	for k, v := range st.errs {
		r.Errors[k] = v
	}
	if s.Rate > 0 {
		var why []string
		lagLimit := s.LagLimit
		if lagLimit <= 0 {
			lagLimit = wakeLagLimit
		}
		if r.WakeLag.Count() > 0 && r.WakeLag.Quantile(0.99) > lagLimit {
			why = append(why, fmt.Sprintf("p99 send delay of idle connections %s > %s (scheduling lag)",
				fmtDur(r.WakeLag.Quantile(0.99)), fmtDur(lagLimit)))
		}
		if r.GenCPUFraction > genCPULimit {
			why = append(why, fmt.Sprintf("generator CPU %.0f%% of %d cores", r.GenCPUFraction*100, runtime.GOMAXPROCS(0)))
		}
		if len(why) > 0 {
			r.GeneratorLimited = true
			r.GeneratorReason = joinAnd(why)
		}
	}
	if err := ctx.Err(); err != nil && st.cancelledByCaller() {
		return r, err
	}
	return r, nil
}

type stepState struct {
	g        *Generator
	spec     StepSpec
	res      *StepResult
	ctx      context.Context
	base     time.Time
	ws, we   int64 // window bounds, ns since base
	nsPerReq float64
	sched    []int64 // Poisson send times; nil: uniform, slot n at n × nsPerReq

	next                          atomic.Int64 // next slot to claim
	intended, sent, responses, ok atomic.Int64
	dropped, late, doneInWindow   atomic.Int64
	exhausted                     atomic.Bool
	wg                            sync.WaitGroup
	mu                            sync.Mutex // guards nworkers, stopped, errs
	nworkers                      int
	stopped                       bool
	errs                          map[string]int64
}

func (st *stepState) cancelledByCaller() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.stopped
}

func (st *stepState) spawnLocked() bool {
	if st.stopped || st.nworkers >= st.g.maxConns {
		return false
	}
	c := st.g.client(st.nworkers)
	st.nworkers++
	st.wg.Add(1)
	go st.worker(c) // owner: this step; ends when the schedule is exhausted or ctx is done
	return true
}

func (st *stepState) addErr(kind string) {
	st.mu.Lock()
	if st.errs == nil {
		st.errs = map[string]int64{}
	}
	st.errs[kind]++
	st.mu.Unlock()
}

func (st *stepState) inWindow(t int64) bool { return t >= st.ws && t < st.we }

// at is slot n's intended send time; false once the schedule is over.
func (st *stepState) at(n int64) (int64, bool) {
	if st.sched != nil {
		if n >= int64(len(st.sched)) {
			return 0, false
		}
		return st.sched[n], true
	}
	t := int64(float64(n) * st.nsPerReq)
	return t, t < st.we
}

// slotAt is the first slot intended at or after t.
func (st *stepState) slotAt(t int64) int64 {
	if st.sched != nil {
		return int64(sort.Search(len(st.sched), func(i int) bool { return st.sched[i] >= t }))
	}
	return int64(math.Ceil(float64(t) / st.nsPerReq))
}

func (st *stepState) worker(c client) {
	defer st.wg.Done()
	res := st.res
	var timer *time.Timer // reused: one allocation per worker, not per request
	for st.ctx.Err() == nil {
		var intended int64
		now := int64(time.Since(st.base))
		if st.nsPerReq == 0 { // closed loop
			if now >= st.we {
				return
			}
			intended = now
			if st.inWindow(intended) {
				st.intended.Add(1)
			}
		} else {
			n := st.next.Add(1) - 1
			var ok bool
			if intended, ok = st.at(n); !ok {
				return
			}
			if st.inWindow(intended) {
				st.intended.Add(1)
			}
			if lag := now - intended; lag > int64(st.spec.DropAfter) {
				st.drop(n, intended, now)
				continue
			} else if lag > int64(lateThreshold) {
				// Every connection was busy: grow the pool (Little's
				// law with the latency the target shows right now).
				st.mu.Lock()
				if !st.spawnLocked() && !st.stopped {
					st.exhausted.Store(true)
				}
				st.mu.Unlock()
			} else if lag < 0 {
				if timer == nil {
					timer = time.NewTimer(time.Duration(-lag))
				} else {
					timer.Reset(time.Duration(-lag))
				}
				select {
				case <-timer.C:
				case <-st.ctx.Done():
					timer.Stop()
					return
				}
				now = int64(time.Since(st.base))
				if st.inWindow(intended) {
					res.WakeLag.Record(time.Duration(now - intended))
				}
			}
		}
		if now-intended > int64(lateThreshold) && st.inWindow(intended) {
			st.late.Add(1)
		}
		st.sent.Add(1)
		status, err := c.do(st.ctx)
		done := int64(time.Since(st.base))
		if err != nil {
			if st.ctx.Err() != nil {
				return
			}
			if st.inWindow(intended) {
				st.addErr(kindOf(err))
			}
			continue
		}
		if done >= st.ws && done < st.we {
			st.doneInWindow.Add(1)
		}
		if !st.inWindow(intended) {
			continue
		}
		st.responses.Add(1)
		if k := statusKind(status); k != "" {
			st.addErr(k)
		} else {
			st.ok.Add(1)
		}
		res.Corrected.Record(time.Duration(done - intended))
		res.Uncorrected.Record(time.Duration(done - now))
	}
}

// drop accounts slot n and every later slot that is already more than
// DropAfter late, claiming them in one step so that a backlog costs a few
// atomic operations instead of one loop turn per request.
func (st *stepState) drop(n, intended, now int64) {
	cut := now - int64(st.spec.DropAfter)
	last := st.slotAt(cut) // first slot not yet late enough
	var dropped int64 = 0
	if st.inWindow(intended) {
		dropped = 1
	}
	for {
		cur := st.next.Load()
		if cur >= last {
			break
		}
		if st.next.CompareAndSwap(cur, last) {
			// Slots [cur, last) are dropped; count those due in the window.
			lo := max(cur, st.slotAt(st.ws))
			hi := min(last, st.slotAt(st.we))
			if hi > lo {
				st.intended.Add(hi - lo)
				dropped += hi - lo
			}
			break
		}
	}
	if dropped > 0 {
		st.dropped.Add(dropped)
		st.res.Corrected.RecordN(st.spec.DropAfter, uint64(dropped))
	}
}

func joinAnd(s []string) string {
	sort.Strings(s)
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " and "
		}
		out += x
	}
	return out
}

// fmtDur prints a duration with three significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.3gs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.3gms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.3gµs", float64(d)/1e3)
	}
}
