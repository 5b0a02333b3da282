package loadramp

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"
)

// Knee is the point where latency starts rising steeply with load, found
// with Kneedle (Satopää et al., 2011) on corrected p99 against offered rate.
type Knee struct {
	OfferedRPS float64 `json:"offered_rps"`
	P99Seconds float64 `json:"p99_seconds"`
}

// FindKnee runs Kneedle on a convex increasing curve: both axes are scaled
// to [0, 1] and the knee is the point farthest below the diagonal. It needs
// at least three distinct x values and a y that rises; otherwise it
// returns nil.
func FindKnee(x, y []float64) *Knee {
	if len(x) != len(y) || len(x) < 3 {
		return nil
	}
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return x[idx[a]] < x[idx[b]] })
	xmin, xmax := x[idx[0]], x[idx[len(idx)-1]]
	ymin, ymax := slices.Min(y), slices.Max(y)
	if xmax <= xmin || ymax <= ymin {
		return nil
	}
	best, bestD := -1, 0.0
	for _, i := range idx {
		xn := (x[i] - xmin) / (xmax - xmin)
		yn := (y[i] - ymin) / (ymax - ymin)
		if d := xn - yn; d > bestD {
			best, bestD = i, d
		}
	}
	if best < 0 {
		return nil
	}
	return &Knee{OfferedRPS: x[best], P99Seconds: y[best]}
}

// USL is a fit of Gunther's Universal Scalability Law,
// X(N) = λN / (1 + σ(N−1) + κN(N−1)), to throughput X against concurrency
// N, where N comes from Little's law (achieved rate × mean latency).
type USL struct {
	Lambda float64 `json:"lambda"` // throughput of one unit of concurrency, req/s
	Sigma  float64 `json:"sigma"`  // contention
	Kappa  float64 `json:"kappa"`  // coherency (crosstalk)
	// PeakRPS is X at the optimal concurrency when κ > 0, else the
	// asymptote λ/σ; PeakConcurrency is 0 for an asymptote.
	PeakRPS         float64 `json:"peak_rps"`
	PeakConcurrency float64 `json:"peak_concurrency"`
	R2              float64 `json:"r2"`
	Points          int     `json:"points"`
}

// FitUSL fits the USL by least squares on the linearised form
// N/X = a + b(N−1) + cN(N−1) (a = 1/λ, b = σ/λ, c = κ/λ), dropping a
// coefficient that comes out negative, and reports R² of X itself. It needs
// four points with distinct N and returns nil otherwise.
func FitUSL(n, x []float64) *USL {
	type pt struct{ n, x float64 }
	var pts []pt
	seen := map[float64]bool{}
	for i := range n {
		if n[i] > 0 && x[i] > 0 && !math.IsNaN(n[i]) && !seen[n[i]] {
			pts = append(pts, pt{n[i], x[i]})
			seen[n[i]] = true
		}
	}
	if len(pts) < 4 {
		return nil
	}
	fit := func(useB, useC bool) (a, b, c float64, ok bool) {
		// Columns: 1, (N-1), N(N-1), each optional; normal equations.
		cols := [][]float64{}
		for _, p := range pts {
			row := []float64{1}
			if useB {
				row = append(row, p.n-1)
			}
			if useC {
				row = append(row, p.n*(p.n-1))
			}
			cols = append(cols, row)
		}
		k := len(cols[0])
		ata := make([][]float64, k)
		atb := make([]float64, k)
		for i := range ata {
			ata[i] = make([]float64, k)
		}
		for j, p := range pts {
			yv := p.n / p.x
			for r := 0; r < k; r++ {
				atb[r] += cols[j][r] * yv
				for s := 0; s < k; s++ {
					ata[r][s] += cols[j][r] * cols[j][s]
				}
			}
		}
		sol, ok := solve(ata, atb)
		if !ok {
			return 0, 0, 0, false
		}
		a = sol[0]
		i := 1
		if useB {
			b = sol[i]
			i++
		}
		if useC {
			c = sol[i]
		}
		return a, b, c, true
	}
	a, b, c, ok := fit(true, true)
	if ok && c < 0 {
		a, b, c, ok = fit(true, false)
	}
	if ok && b < 0 {
		a, b, c, ok = fit(false, true)
		if ok && c < 0 {
			a, b, c, ok = fit(false, false)
		}
	}
	if !ok || a <= 0 {
		return nil
	}
	u := &USL{Lambda: 1 / a, Sigma: b / a, Kappa: c / a, Points: len(pts)}
	model := func(n float64) float64 { return u.Lambda * n / (1 + u.Sigma*(n-1) + u.Kappa*n*(n-1)) }
	switch {
	case u.Kappa > 0 && u.Sigma < 1:
		u.PeakConcurrency = math.Sqrt((1 - u.Sigma) / u.Kappa)
		u.PeakRPS = model(u.PeakConcurrency)
	case u.Sigma > 0:
		u.PeakRPS = u.Lambda / u.Sigma
	}
	var mean, ssTot, ssRes float64
	for _, p := range pts {
		mean += p.x
	}
	mean /= float64(len(pts))
	for _, p := range pts {
		ssTot += (p.x - mean) * (p.x - mean)
		ssRes += (p.x - model(p.n)) * (p.x - model(p.n))
	}
	if ssTot > 0 {
		u.R2 = 1 - ssRes/ssTot
	}
	return u
}

// solve is Gaussian elimination with partial pivoting.
func solve(a [][]float64, b []float64) ([]float64, bool) {
	n := len(b)
	for col := 0; col < n; col++ {
		p := col
		for r := col + 1; r < n; r++ {
			if math.Abs(a[r][col]) > math.Abs(a[p][col]) {
				p = r
			}
		}
		if math.Abs(a[p][col]) < 1e-300 {
			return nil, false
		}
		a[col], a[p] = a[p], a[col]
		b[col], b[p] = b[p], b[col]
		for r := col + 1; r < n; r++ {
			f := a[r][col] / a[col][col]
			for s := col; s < n; s++ {
				a[r][s] -= f * a[col][s]
			}
			b[r] -= f * b[col]
		}
	}
	x := make([]float64, n)
	for r := n - 1; r >= 0; r-- {
		s := b[r]
		for c := r + 1; c < n; c++ {
			s -= a[r][c] * x[c]
		}
		x[r] = s / a[r][r]
	}
	return x, true
}

// Thresholds for naming a runtime signal as saturated.
const (
	gcCPUSaturated  = 0.25 // GC CPU fraction: share of the target's CPU capacity, as the agent's gc_cpu rule
	gcCPUNotable    = 0.10
	cpuSaturated    = 0.85 // share of this machine's cores (local targets)
	goroutineGrowth = 3.0
	schedSaturated  = 0.010 // seconds of runnable wait at p99 (agent only)
	// machineSaturated is the busy share of this machine's CPU at which a
	// local target is short of CPU whatever its own figures say.
	machineSaturated = 0.95
	machineShare     = 0.25 // of this machine's cores, for machineSaturated to count
)

// Cause names, the first word of Result.Saturation.
const (
	CauseGenerator   = "generator"
	CauseErrors      = "errors"
	CauseGC          = "GC"
	CauseCPU         = "CPU"
	CauseConcurrency = "concurrency limit"
	CauseNone        = "none"
)

func verdict(res *Result, cfg Config) {
	var xs, p99s, ns, tput []float64
	for _, s := range res.Steps {
		if s.GeneratorLimited || s.Superseded {
			continue
		}
		xs = append(xs, s.OfferedRPS)
		p99s = append(p99s, s.P99)
		if s.ErrorRate <= 0.01 && s.MeanUncorrected > 0 {
			ns = append(ns, s.AchievedRPS*s.MeanUncorrected)
			tput = append(tput, s.AchievedRPS)
		}
	}
	res.Knee = FindKnee(xs, p99s)
	res.USL = FitUSL(ns, tput)
	res.Saturation, res.Evidence = saturation(res)
}

// saturation argues what saturated first from the step that broke the SLO
// (or the highest step when none did), compared with the highest step
// that passed.
func saturation(res *Result) (string, []string) {
	var pass, fail *StepReport
	for i := range res.Steps {
		s := &res.Steps[i]
		if s.Pass && !s.GeneratorLimited && !s.Superseded && (pass == nil || s.OfferedRPS > pass.OfferedRPS) {
			pass = s
		}
	}
	for i := range res.Steps {
		s := &res.Steps[i]
		if !s.Pass && !s.GeneratorLimited && !s.Superseded && (pass == nil || s.OfferedRPS > pass.OfferedRPS) &&
			(fail == nil || s.OfferedRPS < fail.OfferedRPS) {
			fail = s
		}
	}
	var ev []string
	for i := range res.Steps {
		if s := &res.Steps[i]; s.GeneratorLimited {
			e := fmt.Sprintf("at %.0f req/s the generator was limited: %s", s.OfferedRPS, s.GeneratorLimitedCause)
			if s.Runtime != nil && s.Runtime.MachineCPUBusy >= 0 {
				e += fmt.Sprintf(" while this machine's CPU was %.0f%% busy", s.Runtime.MachineCPUBusy*100)
			}
			ev = append(ev, e)
		}
	}
	if fail == nil {
		if len(ev) > 0 {
			return CauseGenerator + ": the generator could not offer more load, so the target's limit was not reached", ev
		}
		return CauseNone + ": no step broke the SLO; the limit is above the highest rate tried", ev
	}
	at := fmt.Sprintf("at %.0f req/s", fail.OfferedRPS)
	ev = append(ev, fmt.Sprintf("%s: %s (achieved %.0f req/s, p99 %s corrected vs %s uncorrected)",
		at, joinAnd(fail.Failures), fail.AchievedRPS, fmtSec(fail.P99), fmtSec(fail.P99Uncorrected)))

	// Errors first: a target refusing or failing requests is the
	// limit, whatever its runtime says.
	if fail.ErrorRate > 0.01 {
		kinds := sortedKeys(fail.ErrorKinds)
		sort.SliceStable(kinds, func(i, j int) bool { return fail.ErrorKinds[kinds[i]] > fail.ErrorKinds[kinds[j]] })
		top := kinds[0]
		if top != "dropped" {
			return fmt.Sprintf("%s: %s %.1f%% of requests failed, mostly %s (%d)", CauseErrors, at, fail.ErrorRate*100, top, fail.ErrorKinds[top]),
				ev
		}
	}
	rt, prt := fail.Runtime, (*RuntimeStep)(nil)
	if pass != nil {
		prt = pass.Runtime
	}
	if rt == nil {
		return fmt.Sprintf("unknown: %s latency broke the SLO; the target's runtime was not readable (serve /debug/vars and /debug/pprof to see why)", at), ev
	}
	// Describe the runtime at both steps.
	desc := func(s *StepReport) string {
		r := s.Runtime
		out := fmt.Sprintf("at %.0f req/s:", s.OfferedRPS)
		if r.GCCPUFraction >= 0 {
			out += fmt.Sprintf(" GC CPU %.0f%% of capacity", r.GCCPUFraction*100)
			var of []string
			if r.GCBusyShare >= 0 {
				of = append(of, fmt.Sprintf("%.0f%% of busy CPU", r.GCBusyShare*100))
			}
			if r.GCAssistShare >= 0 {
				of = append(of, fmt.Sprintf("%.0f%% of it mark assists", r.GCAssistShare*100))
			}
			if len(of) > 0 {
				out += " (" + strings.Join(of, ", ") + ")"
			}
			if r.GCSource != "" {
				out += " from " + r.GCSource
			}
			out += ","
		} else if r.GCCPUSinceStart >= 0 {
			out += fmt.Sprintf(" GC CPU since start %.0f%%,", r.GCCPUSinceStart*100)
		}
		if r.GCPerSecond >= 0 {
			out += fmt.Sprintf(" %.1f GC/s, pause p99 %s, heap %s of goal %s,", r.GCPerSecond, fmtDur(r.PauseP99), fmtBytes(r.HeapAlloc), fmtBytes(r.HeapGoal))
		}
		if r.ProcessCPUCores >= 0 {
			out += fmt.Sprintf(" process CPU %.2f cores,", r.ProcessCPUCores)
		}
		if r.Goroutines >= 0 {
			out += fmt.Sprintf(" %d goroutines,", r.Goroutines)
		}
		if r.SchedLatencyP99 >= 0 {
			out += fmt.Sprintf(" scheduling latency p99 %s (agent, trailing window),", fmtSec(r.SchedLatencyP99))
		}
		if r.MachineCPUBusy >= 0 {
			out += fmt.Sprintf(" machine CPU %.0f%% busy,", r.MachineCPUBusy*100)
		}
		return out[:len(out)-1]
	}
	if pass != nil && pass.Runtime != nil {
		ev = append(ev, desc(pass))
	}
	ev = append(ev, desc(fail))

	// The limit sits between the highest passing step and the first
	// failing one; a resource saturated at either is the suspect. The
	// failing step's own readings can be missing (no GC cycle ended in
	// its window) or distorted by the overload itself.
	gcOf := func(r *RuntimeStep) float64 {
		if r == nil {
			return -1
		}
		if r.GCCPUFraction >= 0 {
			return r.GCCPUFraction
		}
		return r.GCCPUSinceStart
	}
	gc, pgc := gcOf(rt), gcOf(prt)
	gcStep, gcAt, gcR := fail, at, rt
	if pgc > gc {
		gcStep, gcAt, gcR = pass, fmt.Sprintf("at %.0f req/s", pass.OfferedRPS), prt
	}
	topGC := max(gc, pgc)
	procs := float64(runtime.NumCPU())
	if rt.Procs > 0 {
		procs = float64(rt.Procs)
	}
	cpu, cpuAt := rt.ProcessCPUCores, at
	if prt != nil && prt.ProcessCPUCores > cpu {
		cpu, cpuAt = prt.ProcessCPUCores, fmt.Sprintf("at %.0f req/s", pass.OfferedRPS)
	}
	// Scheduling latency is the runtime's own word on CPU shortage: a
	// runnable goroutine waiting for a processor, which a service short of
	// workers or locks but not of CPU does not show. The agent reports it
	// over a trailing window (30 s by default) that spans the steps before,
	// so only the failing step's reading is used, and it is named as such.
	sched := rt.SchedLatencyP99
	// sharing says what else used this machine's CPU, for a local target
	// whose limit may be this machine's rather than its own.
	sharing := func() string {
		if rt.MachineCPUBusy < 0 {
			return ""
		}
		n := float64(runtime.NumCPU())
		target, gen := max(rt.ProcessCPUCores, 0), fail.GeneratorCPUFraction*float64(runtime.GOMAXPROCS(0))
		out := fmt.Sprintf("; this machine's CPU was %.0f%% busy at %.0f req/s (of %.0f cores: target %.2f, generator %.2f, other processes %.2f)",
			rt.MachineCPUBusy*100, fail.OfferedRPS, n, target, gen, max(rt.MachineCPUBusy*n-target-gen, 0))
		if rt.MachineCPUBusy >= machineSaturated {
			out += " — the target shares the CPU with the generator and other processes, so on a host of its own its limit would be higher"
		}
		return out
	}
	gcUnknown := ""
	if topGC < 0 {
		gcUnknown = "; GC CPU was not readable (serve /debug/vars or mount the gopulse agent's handler at /debug/gopulse/ to see it), so GC is not ruled out"
	}
	switch {
	case topGC >= gcCPUSaturated || (gc >= gcCPUNotable && pgc > 0 && gc >= 2*pgc):
		s := fmt.Sprintf("%s: %s GC CPU reached %.0f%% of capacity", CauseGC, gcAt, topGC*100)
		if gcStep == fail && pgc >= 0 && pass != nil {
			s += fmt.Sprintf(" (%.0f%% at %.0f req/s)", pgc*100, pass.OfferedRPS)
		}
		if gcR.GCBusyShare >= 0 {
			s += fmt.Sprintf(", %.0f%% of the CPU the process was busy with", gcR.GCBusyShare*100)
		}
		if gcR.GCAssistShare >= 0 {
			s += fmt.Sprintf(", %.0f%% of it in mark assists that requests paid for themselves", gcR.GCAssistShare*100)
		}
		if gcR.GCPerSecond >= 0 {
			s += fmt.Sprintf(" with %.1f cycles/s and p99 pause %s", gcR.GCPerSecond, fmtDur(gcR.PauseP99))
		}
		if cpu >= 0 {
			s += fmt.Sprintf(", the process using %.2f of its %.0f cores", cpu, procs)
		}
		s += fmt.Sprintf(", and latency broke the SLO %s", at)
		s += "; GC cost grows with the allocation rate — fewer allocations per request or a higher GOGC/GOMEMLIMIT (see `gopulse gc`) would likely raise the limit"
		return s, ev
	case cpu >= cpuSaturated*procs:
		return fmt.Sprintf("%s: %s the process used %.2f of its %.0f cores (GOMAXPROCS); it is CPU-bound%s%s", CauseCPU, cpuAt, cpu, procs, sharing(), gcUnknown), ev
	case sched >= schedSaturated:
		s := fmt.Sprintf("%s: %s runnable goroutines waited %s for a processor (p99 over the agent's trailing window at the end of the step): the target is short of CPU",
			CauseCPU, at, fmtSec(sched))
		if rt.ProcessCPUCores >= 0 {
			s += fmt.Sprintf(" (it used %.2f cores, GOMAXPROCS %.0f)", rt.ProcessCPUCores, procs)
		}
		return s + sharing() + gcUnknown, ev
	// A full machine is the target's limit only if the target is a major
	// user of it: a worker-pool server idling at 0.1 cores is not helped by
	// CPU that other processes took.
	case rt.MachineCPUBusy >= machineSaturated && rt.ProcessCPUCores >= machineShare*float64(runtime.NumCPU()):
		return fmt.Sprintf("%s: %s the target ran short of CPU%s%s", CauseCPU, at, sharing(), gcUnknown), ev
	}
	s := fmt.Sprintf("%s: %s latency broke the SLO", CauseConcurrency, at)
	var while []string
	if rt.ProcessCPUCores >= 0 {
		while = append(while, fmt.Sprintf("process CPU stayed at %.2f of %.0f cores", rt.ProcessCPUCores, procs))
	}
	if gc >= 0 {
		while = append(while, fmt.Sprintf("GC CPU at %.0f%%", gc*100))
	}
	if rt.SchedLatencyP99 >= 0 {
		while = append(while, fmt.Sprintf("scheduling latency p99 %s", fmtSec(rt.SchedLatencyP99)))
	}
	if len(while) > 0 {
		s += " while " + joinAnd(while)
	}
	s += fmt.Sprintf("; achieved %.0f req/s of %.0f offered", fail.AchievedRPS, fail.OfferedRPS)
	if prt != nil && prt.Goroutines > 0 && rt.Goroutines >= 0 && float64(rt.Goroutines) >= goroutineGrowth*float64(prt.Goroutines) {
		s += fmt.Sprintf(", goroutines grew %d→%d (requests queueing)", prt.Goroutines, rt.Goroutines)
	}
	s += " — requests wait for something finite inside the target: a worker pool, lock, connection pool or downstream"
	return s + gcUnknown, ev
}

func fmtSec(s float64) string { return fmtDur(secDur(s)) }

func fmtBytes(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

func secDur(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
