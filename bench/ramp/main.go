// Command ramp is loadramp's accuracy table: it builds
// internal/testprog/capacity, starts each variant (known capacity by
// construction, or measured in the same run), runs a capacity search
// against it and prints the found maximum sustainable rate against the
// truth, with the named cause.
//
//	go run ./bench/ramp [-step 2s] [-slo 'p99<100ms,errors<0.1%'] [-only NAME] [-v]
//
// On a machine with two or more CPUs the target server is pinned to one
// CPU (-server-cpu, through taskset) and this process, the generator, to
// the others (-gen-cpus), so the two do not take CPU from each other and
// the GC-bound server's capacity is one core's worth of its work. Other
// processes on the machine can still run on either CPU; the per-round
// figures printed for the measured truth show how much of the server's
// CPU they took.
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gopulse/gopulse/loadramp"
)

type variant struct {
	name string
	env  []string
	args []string
	// truth is the capacity by construction; 0 means it depends on this
	// machine's CPU and is measured in the same run: the median of
	// closed-loop saturation rounds run between the ramp's steps near the
	// knee (rounds before and after the ramp show the drift).
	truth float64
	cause string
}

var variants = []variant{
	{"workers 4×2ms", nil, []string{"-workers", "4", "-service", "2ms"}, 2000, loadramp.CauseConcurrency},
	{"workers 16×4ms", nil, []string{"-workers", "16", "-service", "4ms"}, 4000, loadramp.CauseConcurrency},
	{"workers 2×10ms", nil, []string{"-workers", "2", "-service", "10ms"}, 200, loadramp.CauseConcurrency},
	{"GC-bound (measured)", []string{"GOGC=20", "GOMAXPROCS=1"},
		[]string{"-workers", "64", "-service", "1ms", "-alloc", "32768", "-live", "32"}, 0, loadramp.CauseGC},
	// The same server with the gopulse agent mounted: the verdict then
	// reads GC CPU from the agent's status rather than /debug/vars.
	{"GC-bound, agent", []string{"GOGC=20", "GOMAXPROCS=1"},
		[]string{"-workers", "64", "-service", "1ms", "-alloc", "32768", "-live", "32", "-agent"}, 0, loadramp.CauseGC},
}

type options struct {
	step       time.Duration
	slo        loadramp.SLO
	resolution float64
	start      float64
	rounds     int
	interleave bool
	roundDur   time.Duration
	pin        bool
	serverCPU  int
	verbose    bool
}

func main() {
	var o options
	flag.DurationVar(&o.step, "step", 2*time.Second, "measured duration of each step")
	sloFlag := flag.String("slo", "p99<100ms,errors<0.1%", "SLO")
	only := flag.String("only", "", "run only variants whose name contains this")
	flag.BoolVar(&o.verbose, "v", false, "print every step")
	htmlDir := flag.String("html", "", "write each variant's HTML report into this `directory`")
	flag.Float64Var(&o.resolution, "resolution", 0.03, "search resolution: stop bisecting when fail/pass rates are within this fraction")
	flag.Float64Var(&o.start, "start", 100, "first rate of the search, req/s (the same for every variant, so the search grid owes nothing to the truth)")
	flag.IntVar(&o.rounds, "rounds", 3, "closed-loop truth rounds before and again after the ramp (measured variants)")
	flag.BoolVar(&o.interleave, "interleave", true, "measured variants: also run a truth round after each ramp step at half the first truth estimate or more, and take the truth from those")
	flag.DurationVar(&o.roundDur, "round", 2*time.Second, "measured duration of each truth round")
	flag.BoolVar(&o.pin, "pin", runtime.NumCPU() >= 2, "pin the server to -server-cpu and this generator to -gen-cpus (needs taskset)")
	flag.IntVar(&o.serverCPU, "server-cpu", 1, "CPU the target server runs on when pinning")
	genCPUs := flag.String("gen-cpus", "0", "CPU list (taskset syntax) this generator runs on when pinning")
	flag.Parse()
	slo, err := loadramp.ParseSLO(*sloFlag)
	if err != nil {
		fatal(err)
	}
	o.slo = slo
	dir, err := os.MkdirTemp("", "bench-ramp")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "capacity")
	if out, err := exec.Command("go", "build", "-o", bin, "./internal/testprog/capacity").CombinedOutput(); err != nil {
		fatal(fmt.Errorf("build capacity server (run from the module root): %v\n%s", err, out))
	}
	pinning := "not pinned: server and generator share every CPU"
	if o.pin {
		n, err := pinSelf(*genCPUs)
		if err != nil {
			fatal(fmt.Errorf("pin the generator to CPUs %s: %w (install util-linux's taskset, or run with -pin=false)", *genCPUs, err))
		}
		if o.serverCPU < 0 || o.serverCPU >= runtime.NumCPU() {
			fatal(fmt.Errorf("-server-cpu %d: this machine has CPUs 0–%d", o.serverCPU, runtime.NumCPU()-1))
		}
		// Explicit, so the runtime does not keep re-deriving it.
		runtime.GOMAXPROCS(n)
		pinning = fmt.Sprintf("server on CPU %d, generator on CPU %s (GOMAXPROCS %d)", o.serverCPU, *genCPUs, n)
	}
	fmt.Printf("SLO %s, steps %s + 500ms warm-up, search from %.0f req/s to resolution %.0f%%; %s; load average %s\n\n",
		slo, o.step, o.start, o.resolution*100, pinning, loadavg())
	fmt.Printf("%-22s %8s %8s %7s %6s %6s  %s\n", "server", "truth", "found", "error", "steps", "secs", "cause named")
	for _, v := range variants {
		if *only != "" && !strings.Contains(v.name, *only) {
			continue
		}
		out, err := runOne(bin, v, o)
		if err != nil {
			fmt.Printf("%-22s error: %v\n", v.name, err)
			continue
		}
		r := out.res
		ok := "✓"
		if !strings.HasPrefix(r.Saturation, v.cause+":") {
			ok = "✗ (want " + v.cause + ")"
		}
		errPct := (r.MaxSustainableRPS/out.truth - 1) * 100
		within := ""
		if math.Abs(errPct) > 10 {
			within = " OUTSIDE ±10%"
		}
		fmt.Printf("%-22s %8.0f %8.0f %+6.1f%% %6d %6.1f  %s %s%s\n", v.name, out.truth, r.MaxSustainableRPS,
			errPct, len(r.Steps), r.DurationSeconds, ok, firstWords(r.Saturation, 14), within)
		for _, line := range out.notes {
			fmt.Printf("%-22s %s\n", "", line)
		}
		if o.verbose {
			r.WriteText(os.Stdout)
			fmt.Println()
		}
		if *htmlDir != "" {
			name := strings.Map(func(r rune) rune {
				if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
					return r
				}
				return '-'
			}, strings.ToLower(v.name))
			f, err := os.Create(filepath.Join(*htmlDir, name+".html"))
			if err != nil {
				fatal(err)
			}
			r.WriteHTML(f)
			f.Close()
		}
	}
}

type outcome struct {
	res   *loadramp.Result
	truth float64
	notes []string
}

func runOne(bin string, v variant, o options) (*outcome, error) {
	name, args := bin, v.args
	if o.pin {
		name, args = "taskset", append([]string{"-c", strconv.Itoa(o.serverCPU), bin}, v.args...)
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), v.env...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("read server address: %w", err)
	}
	url := strings.TrimPrefix(strings.TrimSpace(line), "listening ") + "/"
	pid := cmd.Process.Pid // taskset execs the server in place
	cpu := -1
	if o.pin {
		cpu = o.serverCPU
	}
	out := &outcome{truth: v.truth}
	var before, between, after []round
	estimate := 0.0
	if v.truth == 0 {
		// The first round warms the server up (connections, heap grown
		// to its steady state) and is not counted.
		if _, err := measureRound(url, pid, cpu, o.roundDur); err != nil {
			return nil, err
		}
		if before, err = measureRounds(url, pid, cpu, o); err != nil {
			return nil, err
		}
		estimate = median(before, func(r round) float64 { return r.rps })
	}
	// What the server's CPU did during each step (from one step's end to
	// the next, so warm-up and pause included): the steps that decide the
	// answer are comparable with the truth only if the server had its CPU.
	var (
		shares   []cpuShare
		roundErr error
	)
	prev := takeShare(pid, cpu)
	r, err := loadramp.Run(context.Background(), loadramp.Config{
		Target: loadramp.Target{URL: url}, SLO: o.slo,
		StartRate: o.start, MaxRate: 100_000, Resolution: o.resolution,
		StepDuration: o.step, Warmup: 500 * time.Millisecond, MaxConns: 128, MaxSteps: 30,
		Progress: func(sr loadramp.StepReport) {
			shares = append(shares, takeShare(pid, cpu).since(prev))
			// A truth round right after each step near the knee sees the
			// machine as that step did: load from other processes that
			// drifts over the run moves both alike.
			if o.interleave && estimate > 0 && sr.OfferedRPS >= estimate/2 && roundErr == nil {
				var x round
				if x, roundErr = measureRound(url, pid, cpu, o.roundDur); roundErr == nil {
					between = append(between, x)
				}
			}
			prev = takeShare(pid, cpu)
		},
	})
	if err != nil {
		return nil, err
	}
	if roundErr != nil {
		return nil, roundErr
	}
	out.res = r
	if cpu >= 0 && len(shares) == len(r.Steps) {
		out.notes = append(out.notes, decidingSteps(r, shares))
	}
	if v.truth == 0 {
		if after, err = measureRounds(url, pid, cpu, o); err != nil {
			return nil, err
		}
		truth, notes := judgeTruth(before, between, after)
		out.truth, out.notes = truth, append(notes, out.notes...)
	}
	out.notes = append(out.notes, "load average at the end: "+loadavg())
	return out, nil
}

// round is one closed-loop saturation run and what the CPUs did during it.
type round struct {
	rps float64
	// serverCores is the server's CPU-seconds per second; perCPUSecond is
	// rps ÷ serverCores, its cost per request turned around.
	serverCores, perCPUSecond float64
	// othersCores is the busy time of the server's CPU not spent by the
	// server (other processes, interrupts), stealCores the time the
	// hypervisor gave that virtual CPU to someone else, both per second;
	// -1 unpinned.
	othersCores, stealCores float64
	genCores                float64
	// elsewhereCores is other work on the remaining CPUs (the generator's
	// own CPU taken out): it shares caches and memory bandwidth with the
	// server even when it cannot take the server's CPU.
	elsewhereCores float64
}

func measureRounds(url string, pid, cpu int, o options) ([]round, error) {
	var rs []round
	for range o.rounds {
		r, err := measureRound(url, pid, cpu, o.roundDur)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// measureRound drives the server closed-loop with 32 connections: its
// throughput is then its capacity when that is set by its CPU.
func measureRound(url string, pid, cpu int, d time.Duration) (round, error) {
	g, err := loadramp.NewGenerator(loadramp.Target{URL: url}, 32)
	if err != nil {
		return round{}, err
	}
	defer g.Close()
	var (
		p0, p1 time.Duration
		c0, c1 time.Duration
		s0, s1 time.Duration
		a0, a1 time.Duration
		g0, g1 time.Duration
		t0, t1 time.Time
	)
	res, err := g.Step(context.Background(), loadramp.StepSpec{Warmup: 500 * time.Millisecond, Duration: d,
		AtWindow: func(start bool) {
			p, t := procCPU(pid), time.Now()
			c, st := cpuTimes(cpu)
			all, gen := allBusy(), selfCPU()
			if start {
				p0, c0, s0, a0, g0, t0 = p, c, st, all, gen, t
			} else {
				p1, c1, s1, a1, g1, t1 = p, c, st, all, gen, t
			}
		}})
	if err != nil {
		return round{}, err
	}
	r := round{rps: res.AchievedRPS, othersCores: -1, stealCores: -1, elsewhereCores: -1, genCores: res.GenCPUFraction * float64(runtime.GOMAXPROCS(0))}
	if wall := t1.Sub(t0).Seconds(); wall > 0 && p1 > p0 {
		r.serverCores = (p1 - p0).Seconds() / wall
		r.perCPUSecond = r.rps / r.serverCores
		if cpu >= 0 && c1 > c0 {
			r.othersCores = max((c1-c0-(p1-p0)).Seconds()/wall, 0)
			r.stealCores = (s1 - s0).Seconds() / wall
			r.elsewhereCores = max((a1-a0-(c1-c0)-(g1-g0)).Seconds()/wall, 0)
		}
	}
	return r, nil
}

// cpuShare is, per second, how the server's CPU was used: by the server,
// by other work, and by the hypervisor for someone else (steal).
type cpuShare struct {
	at                       time.Time
	server, busy, steal      time.Duration // cumulative at 'at'
	serverC, othersC, stealC float64       // per second, after since
}

func takeShare(pid, cpu int) cpuShare {
	b, st := cpuTimes(cpu)
	return cpuShare{at: time.Now(), server: procCPU(pid), busy: b, steal: st}
}

func (c cpuShare) since(p cpuShare) cpuShare {
	wall := c.at.Sub(p.at).Seconds()
	if wall > 0 {
		c.serverC = (c.server - p.server).Seconds() / wall
		c.othersC = max((c.busy-p.busy-(c.server-p.server)).Seconds()/wall, 0)
		c.stealC = (c.steal - p.steal).Seconds() / wall
	}
	return c
}

// decidingSteps describes the server's CPU during the steps that set the
// answer: the last run of the highest passing rate and of the lowest
// failing one.
func decidingSteps(r *loadramp.Result, shares []cpuShare) string {
	last := func(rate float64) int {
		for i := len(r.Steps) - 1; i >= 0; i-- {
			if r.Steps[i].OfferedRPS == rate && !r.Steps[i].GeneratorLimited {
				return i
			}
		}
		return -1
	}
	var parts []string
	dirty := false
	for _, d := range []struct {
		what string
		rate float64
	}{{"pass", r.MaxSustainableRPS}, {"fail", r.FirstFailRPS}} {
		if i := last(d.rate); d.rate > 0 && i >= 0 {
			sh := shares[i]
			parts = append(parts, fmt.Sprintf("%s at %.0f: server %.2f + others %.2f + steal %.2f", d.what, d.rate, sh.serverC, sh.othersC, sh.stealC))
			dirty = dirty || sh.othersC+sh.stealC > interference
		}
	}
	out := "server CPU during the deciding steps (cores): " + strings.Join(parts, "; ")
	if dirty {
		out += fmt.Sprintf(" — NOT CLEAN (other work + steal > %.2f cores): the found rate says more about this machine than about the ramp", interference)
	}
	return out
}

func median(rs []round, f func(round) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = f(r)
	}
	slices.Sort(xs)
	if len(xs)%2 == 0 {
		return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
	}
	return xs[len(xs)/2]
}

// interference is how much of the server's CPU other work and the
// hypervisor may take, in cores, for a round or step to count as clean:
// fixed before any measurement, not tuned to the answer.
const interference = 0.10

// clean says the server had its CPU to itself during the round.
func (r round) clean() bool {
	return r.serverCores > 0 && r.othersCores >= 0 && r.othersCores+r.stealCores <= interference
}

// judgeTruth returns the truth: the median of the clean rounds (the
// server had its CPU: other work and steal took at most 0.10 cores of it),
// before, between the ramp's steps near the knee, and after. With fewer
// than three clean rounds (or unpinned), every round counts and the row is
// flagged. When the counted rounds spread beyond ±5% it says what moved
// with them.
func judgeTruth(before, between, after []round) (float64, []string) {
	all := slices.Concat(before, between, after)
	counted := slices.DeleteFunc(slices.Clone(all), func(r round) bool { return !r.clean() })
	which := fmt.Sprintf("clean rounds (other work + steal ≤ %.2f cores on the server's CPU)", interference)
	if len(counted) < 3 {
		counted, which = all, "every round — fewer than 3 were clean: NO CLEAN TRUTH"
	}
	rps := func(r round) float64 { return r.rps }
	truth := median(counted, rps)
	lo := slices.MinFunc(counted, func(a, b round) int { return cmp.Compare(a.rps, b.rps) }).rps
	hi := slices.MaxFunc(counted, func(a, b round) int { return cmp.Compare(a.rps, b.rps) }).rps
	list := func(rs []round, f func(round) string) string {
		var s []string
		for _, r := range rs {
			s = append(s, f(r))
		}
		if len(s) == 0 {
			return "–"
		}
		return strings.Join(s, " ")
	}
	phases := func(f func(round) string) string {
		return list(before, f) + " | " + list(between, f) + " | " + list(after, f)
	}
	notes := []string{
		fmt.Sprintf("truth = median of the %s (%d); spread %+.1f%% / %+.1f%%", which, len(counted), (lo/truth-1)*100, (hi/truth-1)*100),
		"closed-loop req/s, before | between steps | after the ramp: " + phases(func(r round) string { return fmt.Sprintf("%.0f", r.rps) }),
		"server cores (+ other work on its CPU + hypervisor steal): " + phases(func(r round) string {
			if r.othersCores < 0 {
				return fmt.Sprintf("%.2f", r.serverCores)
			}
			return fmt.Sprintf("%.2f(+%.2f+%.2f)", r.serverCores, r.othersCores, r.stealCores)
		}),
		"requests per server CPU-second: " + phases(func(r round) string { return fmt.Sprintf("%.0f", r.perCPUSecond) }),
		"generator cores; other work on the other CPUs: " + phases(func(r round) string {
			return fmt.Sprintf("%.2f;%.2f", r.genCores, r.elsewhereCores)
		}),
	}
	if (hi-lo)/truth <= 0.10 {
		return truth, notes
	}
	spread := func(f func(round) float64) (float64, float64) {
		a := slices.MinFunc(counted, func(x, y round) int { return cmp.Compare(f(x), f(y)) })
		b := slices.MaxFunc(counted, func(x, y round) int { return cmp.Compare(f(x), f(y)) })
		return f(a), f(b)
	}
	why := fmt.Sprintf("truth UNSTABLE: rounds spread %.0f%% > ±5%%", (hi-lo)/truth*100)
	olo, ohi := spread(func(r round) float64 { return max(r.othersCores, 0) + max(r.stealCores, 0) })
	plo, phi := spread(func(r round) float64 { return r.perCPUSecond })
	glo, ghi := spread(func(r round) float64 { return r.genCores })
	switch {
	case counted[0].othersCores >= 0 && ohi-olo >= 0.10:
		why += fmt.Sprintf(" — other processes and the hypervisor took %.2f–%.2f of the server's CPU between rounds, which costs it CPU time and its caches (requests per CPU-second %.0f–%.0f)", olo, ohi, plo, phi)
	case (phi-plo)/median(counted, func(r round) float64 { return r.perCPUSecond }) > 0.10:
		elo, ehi := spread(func(r round) float64 { return r.elsewhereCores })
		why += fmt.Sprintf(" — the server had its CPU but its requests per CPU-second moved %.0f–%.0f: its own heap/GC state, or other work on the other CPUs (%.2f–%.2f cores) competing for memory bandwidth and shared cache", plo, phi, elo, ehi)
		// Split the rounds by how busy the other CPUs were: a gap between
		// the two groups points at the neighbours, none at the server.
		quiet := slices.DeleteFunc(slices.Clone(counted), func(r round) bool { return r.elsewhereCores < 0 || r.elsewhereCores > 0.2 })
		busy := slices.DeleteFunc(slices.Clone(counted), func(r round) bool { return r.elsewhereCores < 0.5 })
		if len(quiet) > 0 && len(busy) > 0 {
			perCPU := func(r round) float64 { return r.perCPUSecond }
			why += fmt.Sprintf("; median %.0f req/CPU-s with the other CPUs quiet (≤ 0.2 cores busy, %d rounds) vs %.0f with them busy (≥ 0.5, %d rounds)",
				median(quiet, perCPU), len(quiet), median(busy, perCPU), len(busy))
		}
	default:
		why += fmt.Sprintf(" — neither the server's CPU share nor its cost per CPU-second explains it; the generator used %.2f–%.2f cores", glo, ghi)
	}
	return truth, append(notes, why)
}

// pinSelf pins every thread of this process to cpus (taskset's list
// syntax) and returns how many CPUs that is. Threads the runtime starts
// later inherit the mask from the thread that creates them.
func pinSelf(cpus string) (int, error) {
	out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(os.Getpid())).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
	}
	n := 0
	for _, part := range strings.Split(cpus, ",") {
		a, b, isRange := strings.Cut(part, "-")
		lo, err1 := strconv.Atoi(a)
		hi := lo
		var err2 error
		if isRange {
			hi, err2 = strconv.Atoi(b)
		}
		if err1 != nil || err2 != nil || hi < lo {
			return 0, fmt.Errorf("CPU list %q: want N, N-M or a comma-separated list of those", cpus)
		}
		n += hi - lo + 1
	}
	return n, nil
}

// selfCPU is this process's user+system CPU time so far.
func selfCPU() time.Duration { return procCPU(os.Getpid()) }

// procCPU is pid's user+system CPU time so far, from /proc/PID/stat.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	s, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration((u + s) * uint64(time.Second) / 100) // USER_HZ
}

// cpuTimes is one CPU's busy time (user, system, interrupts; not idle,
// iowait or steal) and steal time (the hypervisor ran someone else) so
// far, from its "cpuN" line in /proc/stat; zero for cpu < 0 or when
// unreadable.
func cpuTimes(cpu int) (busy, steal time.Duration) {
	if cpu < 0 {
		return 0, 0
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	prefix := fmt.Sprintf("cpu%d ", cpu)
	tick := func(n uint64) time.Duration { return time.Duration(n * uint64(time.Second) / 100) }
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		var bsy, stl uint64
		for i, v := range strings.Fields(line)[1:] {
			n, _ := strconv.ParseUint(v, 10, 64)
			switch i {
			case 3, 4, 8, 9: // idle, iowait; guest time is already counted in user
			case 7:
				stl = n
			default:
				bsy += n
			}
		}
		return tick(bsy), tick(stl)
	}
	return 0, 0
}

// allBusy is the busy time of every CPU together (the "cpu" line of
// /proc/stat, same rules as cpuTimes).
func allBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0
	}
	var bsy uint64
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i != 3 && i != 4 && i != 7 && i != 8 && i != 9 {
			bsy += n
		}
	}
	return time.Duration(bsy * uint64(time.Second) / 100)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func firstWords(s string, n int) string {
	f := strings.Fields(s)
	if len(f) > n {
		return strings.Join(f[:n], " ") + " …"
	}
	return s
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench/ramp:", err)
	os.Exit(1)
}
