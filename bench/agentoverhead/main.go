// Command agentoverhead measures what the agent costs a service:
//
//	go run ./bench/agentoverhead -what=cpu    CPU overhead under steady load
//	go run ./bench/agentoverhead -what=size   binary size added to hello-world
//	go run ./bench/agentoverhead -what=stw    stop-the-world of sampling and of bundle capture
//	go run ./bench/agentoverhead -what=attrib the agent's share of the loaded service's CPU profile
//	go run ./bench/agentoverhead              cpu, size and stw
//
// attrib complements cpu: on a shared machine the with/without comparison
// has a per-round noise of ±20%, far above the 1% budget, while a CPU
// profile of the loaded service (1 kHz) attributes every sample to a stack:
// the share of samples with an agent, wire or protobuf frame is the agent's
// own CPU, whatever else the machine does. It cannot see costs spread
// through the runtime — the execution tracer's event writes when the flight
// recorder runs, and GC work caused by the agent's allocations — so it is
// exact for the recorder off or armed-but-idle, and a lower bound otherwise.
//
// CPU: the service is a child process (this binary with -child) running a
// CPU-bound handler, loaded at a fixed request rate over keep-alive
// connections on 127.0.0.1. Rounds alternate agent off / default (flight
// recorder armed) / flight recorder always on, in one run, each round a
// fresh child; the child's user+system CPU is read from /proc/<pid>/stat
// over the measured window and divided by the requests it served. The
// agent ships to an in-process collector (wire/wiretest) as it would in
// production.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	rpprof "runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/pprof/profile"

	"github.com/gopulse/gopulse/agent"
	"github.com/gopulse/gopulse/wire/wiretest"
)

func main() {
	what := flag.String("what", "all", "cpu, size, stw or all")
	child := flag.Bool("child", false, "run as the measured service (internal)")
	mode := flag.String("mode", "none", "child: none (no agent), fr-off, fr-armed or fr-on")
	cpuProfile := flag.String("cpuprofile", "", "child: write a CPU profile of the measured window here")
	profileFor := flag.Duration("profile-for", 0, "child: length of the CPU profile, after a 2 s warm-up")
	collector := flag.String("collector", "", "child: collector URL")
	rate := flag.Int("rate", 2000, "cpu: requests per second")
	round := flag.Duration("round", 6*time.Second, "cpu: measured length of one round")
	rounds := flag.Int("rounds", 4, "cpu: rounds per mode")
	flag.Parse()
	if *child {
		if err := runChild(*mode, *collector, *cpuProfile, *profileFor); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		return
	}
	var err error
	if *what == "cpu" || *what == "all" {
		err = benchCPU(*rate, *round, *rounds)
	}
	if err == nil && (*what == "size" || *what == "all") {
		err = benchSize()
	}
	if err == nil && (*what == "stw" || *what == "all") {
		err = benchSTW()
	}
	if err == nil && *what == "attrib" {
		err = benchAttrib(*rate, *round, *rounds)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "agentoverhead:", err)
		os.Exit(1)
	}
}

// work is the CPU-bound handler: hash 32 KiB.
func work(w http.ResponseWriter, r *http.Request) {
	h := fnv.New64a()
	var buf [1024]byte
	for i := 0; i < 32; i++ {
		buf[0] = byte(i)
		h.Write(buf[:])
	}
	fmt.Fprintf(w, "%x\n", h.Sum64())
}

func runChild(mode, collector, profilePath string, profileFor time.Duration) error {
	if profilePath != "" {
		f, err := os.Create(profilePath)
		if err != nil {
			return err
		}
		go func() {
			time.Sleep(2 * time.Second) // the parent's warm-up
			// 1 kHz instead of the default 100 Hz: the agent's share is
			// small, and the resolution is one sample in the total.
			runtime.SetCPUProfileRate(1000)
			if err := rpprof.StartCPUProfile(f); err != nil {
				fmt.Fprintln(os.Stderr, "child: cpu profile:", err)
				return
			}
			time.Sleep(profileFor)
			rpprof.StopCPUProfile()
			f.Close()
		}()
	}
	if mode != "none" {
		a, err := agent.Start(context.Background(), agent.Options{
			Service: "overhead", Collector: collector, SpoolDir: "-",
			FlightRecorder: agent.FlightRecorderMode(strings.TrimPrefix(mode, "fr-")),
		})
		if err != nil {
			return err
		}
		defer func() {
			st := a.Status()
			fmt.Fprintf(os.Stderr, "    [%s: flight recorder starts %d, running at exit %v, bundles %d, rule levels %v]\n",
				mode, st.RecorderStarts, st.RecorderOn, st.BundlesCaptured, st.RuleLevels)
			a.Stop(context.Background())
		}()
	}
	srv := &http.Server{Addr: "127.0.0.1:0", Handler: http.HandlerFunc(work)}
	ln, err := netListen()
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	go func() { io.Copy(io.Discard, os.Stdin); srv.Close() }() // parent closes stdin to stop us
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

func cpuTicks(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100, nil // USER_HZ is 100 on Linux
}

type roundResult struct {
	mode     string
	cpu      float64 // seconds
	requests int64
}

func (r roundResult) perReq() float64 { return r.cpu / float64(r.requests) }

func oneRound(mode, collector string, rate int, d time.Duration, childArgs ...string) (roundResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return roundResult{}, err
	}
	cmd := exec.Command(exe, append([]string{"-child", "-mode", mode, "-collector", collector}, childArgs...)...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return roundResult{}, err
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return roundResult{}, fmt.Errorf("child did not start: %w", err)
	}
	url := "http://" + strings.TrimSpace(addr) + "/"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()

	var served atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	const workers = 16
	interval := time.Duration(float64(time.Second) * workers / float64(rate))
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			next := time.Now().Add(time.Duration(i) * interval / workers)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
				next = next.Add(interval)
				resp, err := client.Get(url)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					served.Add(1)
				}
			}
		}(i)
	}
	time.Sleep(2 * time.Second) // warm-up: connections, agent start-up, first batch
	c0, err := cpuTicks(cmd.Process.Pid)
	if err != nil {
		return roundResult{}, err
	}
	n0 := served.Load()
	time.Sleep(d)
	c1, _ := cpuTicks(cmd.Process.Pid)
	n1 := served.Load()
	close(stop)
	wg.Wait()
	return roundResult{mode: mode, cpu: c1 - c0, requests: n1 - n0}, nil
}

func benchCPU(rate int, d time.Duration, rounds int) error {
	col, err := wiretest.New()
	if err != nil {
		return err
	}
	defer col.Close()
	modes := []string{"none", "fr-off", "fr-armed", "fr-on"}
	res := map[string][]roundResult{}
	fmt.Printf("CPU overhead: %d req/s for %v per round, %d rounds per mode, alternating %v\n", rate, d, rounds, modes)
	for r := 0; r < rounds; r++ {
		for _, m := range modes {
			rr, err := oneRound(m, col.URL, rate, d)
			if err != nil {
				return err
			}
			res[m] = append(res[m], rr)
			fmt.Printf("  round %d %-8s cpu %.3fs requests %d  %.2f µs/req\n", r+1, m, rr.cpu, rr.requests, 1e6*rr.perReq())
		}
	}
	med := func(m string) float64 {
		var v []float64
		for _, r := range res[m] {
			v = append(v, r.perReq())
		}
		sort.Float64s(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	// Pairwise ratios (same round index) show the noise floor.
	pair := func(m string) (lo, hi float64) {
		lo, hi = math.Inf(1), math.Inf(-1)
		for i := range res[m] {
			q := res[m][i].perReq()/res["none"][i].perReq() - 1
			lo, hi = math.Min(lo, q), math.Max(hi, q)
		}
		return
	}
	base := med("none")
	fmt.Printf("median CPU per request without the agent: %.2f µs\n", 1e6*base)
	for _, m := range modes[1:] {
		lo, hi := pair(m)
		fmt.Printf("  agent, flight recorder %-6s %.2f µs  ratio %.3f (%+.1f%%; per-round pairs %+.1f%% … %+.1f%%)\n",
			m, 1e6*med(m), med(m)/base, 100*(med(m)/base-1), 100*lo, 100*hi)
	}
	_, dup, _, bad := col.Counts()
	fmt.Printf("collector received %d distinct batches (%d duplicates, %d bad requests)\n", len(col.Batches()), dup, len(bad))
	return nil
}

func benchSize() error {
	dir, err := os.MkdirTemp("", "agentsize")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	size := func(pkg string) (int64, error) {
		out := filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return 0, fmt.Errorf("go build %s: %w", pkg, err)
		}
		st, err := os.Stat(out)
		if err != nil {
			return 0, err
		}
		return st.Size(), nil
	}
	const prefix = "github.com/gopulse/gopulse/bench/agentoverhead/hello/"
	plain, err := size(prefix + "plain")
	if err != nil {
		return err
	}
	with, err := size(prefix + "withagent")
	if err != nil {
		return err
	}
	fmt.Printf("binary size (%s %s/%s, default flags): hello-world %.2f MiB, with agent %.2f MiB, added %.2f MiB (%+.0f%%)\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, mib(plain), mib(with), mib(with-plain), 100*float64(with-plain)/float64(plain))
	return nil
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// otherPauses returns the count and histogram of non-GC stop-the-world
// pauses so far.
func otherPauses() *metrics.Float64Histogram {
	s := []metrics.Sample{{Name: "/sched/pauses/total/other:seconds"}}
	metrics.Read(s)
	return s[0].Value.Float64Histogram()
}

// pauseDelta summarises the pauses between two histogram snapshots:
// count, total (bucket midpoints) and the upper bound of the largest.
func pauseDelta(a, b *metrics.Float64Histogram) (n uint64, total, maxUpper float64) {
	for i := range b.Counts {
		c := b.Counts[i] - a.Counts[i]
		if c == 0 {
			continue
		}
		lo, hi := b.Buckets[i], b.Buckets[i+1]
		if math.IsInf(hi, 1) {
			hi = lo
		}
		if math.IsInf(lo, -1) {
			lo = 0
		}
		n += c
		total += float64(c) * (lo + hi) / 2
		maxUpper = hi
	}
	return
}

func benchSTW() error {
	fmt.Println("stop-the-world, from /sched/pauses/total/other:seconds (bucket upper bounds):")
	for _, c := range []struct{ n, debug2 int }{{1000, 0}, {1000, 2000}, {10000, 0}, {100000, 0}} {
		n := c.n
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); <-stop }()
		}
		dir, _ := os.MkdirTemp("", "agentstw")
		a, err := agent.Start(context.Background(), agent.Options{
			Service: "stw", SpoolDir: dir, FlightRecorder: agent.FlightRecorderOff, CPUProfileDuration: -1, Debug2GoroutineLimit: c.debug2,
			SampleInterval: 100 * time.Millisecond, BatchInterval: time.Second,
			Triggers: agent.Triggers{GoroutineGrowthMin: -1, SchedLatencyP99: -1, GCCPUFraction: -1, GCPause: -1},
		})
		if err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond)
		// Sampling alone: 3 s at 10 samples/s.
		h0 := otherPauses()
		time.Sleep(3 * time.Second)
		h1 := otherPauses()
		sn, _, _ := pauseDelta(h0, h1)
		// One bundle capture.
		a.Trigger("stw bench")
		deadline := time.Now().Add(2 * time.Minute)
		for len(a.Status().Events) == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		h2 := otherPauses()
		cn, ctot, cmax := pauseDelta(h1, h2)
		var ev agent.EventInfo
		if evs := a.Status().Events; len(evs) > 0 {
			ev = evs[0]
		}
		a.Stop(context.Background())
		close(stop)
		wg.Wait()
		os.RemoveAll(dir)
		debug2 := "no"
		for _, f := range ev.Files {
			if f == "goroutines.txt" {
				debug2 = "yes"
			}
		}
		fmt.Printf("  %6d goroutines: sampling 30 samples → %d pauses; bundle capture → %d pauses, total ≈ %.2f ms, largest ≤ %.2f ms (debug=2 dump: %s; agent's own figure %.2f ms)\n",
			n, sn, cn, 1e3*ctot, 1e3*cmax, debug2, 1e3*ev.CaptureSTWSeconds)
	}
	return nil
}

// agentFrame says whether a function is the agent's own work: its packages,
// the wire format, and the protobuf runtime the service itself never calls.
func agentFrame(fn string) bool {
	return strings.HasPrefix(fn, "github.com/gopulse/gopulse/agent") ||
		strings.HasPrefix(fn, "github.com/gopulse/gopulse/wire") ||
		strings.HasPrefix(fn, "google.golang.org/protobuf")
}

// benchAttrib profiles the loaded service with the agent and reports the
// share of CPU samples in the agent's stacks.
func benchAttrib(rate int, d time.Duration, rounds int) error {
	col, err := wiretest.New()
	if err != nil {
		return err
	}
	defer col.Close()
	dir, err := os.MkdirTemp("", "agentattrib")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("CPU attribution: %d req/s, %v CPU profile at 1 kHz per round, %d rounds per mode\n", rate, d, rounds)
	for _, mode := range []string{"fr-off", "fr-armed"} {
		var agentNs, totalNs int64
		for r := 0; r < rounds; r++ {
			path := filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", mode, r))
			if _, err := oneRound(mode, col.URL, rate, d+time.Second, "-cpuprofile", path, "-profile-for", d.String()); err != nil {
				return err
			}
			// The child writes the profile when its window ends; the round
			// lasts a second longer, and stopping the child flushes it.
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			p, err := profile.Parse(f)
			f.Close()
			if err != nil {
				// A trigger fired and the agent was taking its own CPU
				// profile (one per process): this round has no profile.
				fmt.Printf("  round %d %-8s skipped: no profile (%v) — a trigger's capture held the CPU profiler\n", r+1, mode, err)
				continue
			}
			var a, t int64
			for _, s := range p.Sample {
				v := s.Value[1] // cpu nanoseconds
				t += v
				if sampleHas(s, agentFrame) {
					a += v
				}
			}
			fmt.Printf("  round %d %-8s process CPU %.2fs, agent %.1f ms = %.3f%%\n", r+1, mode, float64(t)/1e9, float64(a)/1e6, 100*float64(a)/float64(t))
			agentNs += a
			totalNs += t
		}
		fmt.Printf("agent, flight recorder %-6s share of the service's CPU: %.3f%% (%.1f ms of %.1f s)\n", mode, 100*float64(agentNs)/float64(totalNs), float64(agentNs)/1e6, float64(totalNs)/1e9)
	}
	return nil
}

func sampleHas(s *profile.Sample, match func(string) bool) bool {
	for _, loc := range s.Location {
		for _, l := range loc.Line {
			if l.Function != nil && match(l.Function.Name) {
				return true
			}
		}
	}
	return false
}
