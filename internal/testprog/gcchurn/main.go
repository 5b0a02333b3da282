// Command gcchurn is a synthetic service for GC analysis: it keeps a live
// heap of pointer-rich objects and allocates garbage at a paced rate, so the
// GC's work per cycle and its frequency are both under control. It is the
// fixture source for analyze/gc (real gctrace output) and the workload of
// bench/gcmodel and bench/gctuner.
//
//	GODEBUG=gctrace=1 gcchurn -live 64 -rate 200 -duration 5s
//	GOMAXPROCS=1 taskset -c 1 gcchurn -live 16 -rate 0 -work 200000   # CPU-bound
//
// With -rate the allocation is paced on the wall clock and the program
// mostly sleeps (an open-loop service); with -rate 0 -work N it computes
// and allocates as fast as its CPU allows (a CPU-bound program), so the
// GC's CPU comes out of its throughput and no P is ever idle.
// At exit it prints one line "gcchurn: {json}" on stdout with the runtime's
// own totals (runtime/metrics), the ground truth the benchmarks compare
// predictions against.
package main

import (
	"context"
	"encoding/json"
	"expvar"
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	_ "net/http/pprof" // this is a test program: serving pprof is the point
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sort"
	"sync"
	"time"

	"github.com/gopulse/gopulse/gctuner"
)

// node is 64 bytes with two pointers, so the live heap costs the GC real
// scan work per byte, as a service's maps and structs do.
type node struct {
	a, b *node
	v    [6]uint64
}

const nodeSize = 64

func main() {
	live := flag.Float64("live", 32, "live heap to retain, MiB")
	rate := flag.Float64("rate", 100, "garbage allocation rate, MiB/s (0 = as fast as possible)")
	dur := flag.Duration("duration", 5*time.Second, "run time (0 = until interrupted)")
	burst := flag.Duration("burst", 0, "if set, alternate: rate×4 for burst, then rate/4 for 3×burst (a bursty service; average 1.75×rate)")
	leak := flag.Float64("leak", 0, "grow the live heap by this many MiB/s (a slow leak)")
	workers := flag.Int("workers", 1, "allocating goroutines")
	work := flag.Int("work", 0, "non-allocating CPU work per 64 KiB of garbage (xorshift rounds): with -rate 0 the program is CPU-bound and this sets how much it allocates per CPU-second")
	httpAddr := flag.String("http", "", "serve net/http/pprof and expvar on this address (e.g. 127.0.0.1:0)")
	forceEvery := flag.Duration("force", 0, "call runtime.GC() this often (forced cycles)")
	latency := flag.Bool("latency", false, "time each 64 KiB of allocation as a 'request' and report p99")
	warmup := flag.Duration("warmup", 0, "leave this much of the run out of the reported totals (start-up heap growth)")
	container := flag.Int64("container", 0, "simulated container memory limit in bytes: exceeding it (runtime-mapped memory) exits with status 137 like an OOM kill")
	tuner := flag.Bool("tuner", false, "run gctuner with -container as the hard limit; its events go to stderr")
	tunerTarget := flag.Float64("tuner-target", 0.05, "gctuner's GC CPU target")
	giveUpAfter := flag.Duration("giveup-after", 10*time.Second, "gctuner's GiveUpAfter")
	giveUpReport := flag.Bool("giveup-report", false, "gctuner reports unhealthy instead of raising the limit")
	giveUpCPU := flag.Float64("giveup-cpu", 0.3, "gctuner's GiveUpGCCPU")
	flag.Parse()

	if *httpAddr != "" {
		ln, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gcchurn:", err)
			os.Exit(1)
		}
		fmt.Printf("gcchurn: serving http://%s\n", ln.Addr())
		go http.Serve(ln, nil)
		expvar.NewString("gcchurn").Set("running")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	// Build the live set as a slice of chains, so replacing one chain
	// keeps the live size steady while the graph still changes.
	const chain = 1024
	nChains := int(*live*(1<<20)) / (nodeSize * chain)
	roots := make([]*node, nChains)
	for i := range roots {
		roots[i] = makeChain(chain)
	}
	var leaked [][]*node
	fmt.Printf("gcchurn: live=%.0fMiB rate=%.0fMiB/s pid=%d\n", *live, *rate, os.Getpid())
	t0 := time.Now()
	if *container > 0 {
		go oomWatch(uint64(*container), t0)
	}
	var giveUps []float64
	var evMu sync.Mutex
	if *tuner {
		if *container <= 0 {
			fmt.Fprintln(os.Stderr, "gcchurn: -tuner needs -container")
			os.Exit(2)
		}
		cfg := gctuner.Config{HardLimit: uint64(*container), TargetGCCPU: *tunerTarget, GiveUpAfter: *giveUpAfter, GiveUpGCCPU: *giveUpCPU,
			MinChangeInterval: 2 * time.Second, Interval: 250 * time.Millisecond,
			OnEvent: func(e gctuner.Event) {
				fmt.Fprintf(os.Stderr, "gctuner: t=%.1fs %s\n", time.Since(t0).Seconds(), e)
				if e.Kind == "giveup" || e.Kind == "unhealthy" {
					evMu.Lock()
					giveUps = append(giveUps, time.Since(t0).Seconds())
					evMu.Unlock()
				}
			}}
		if *giveUpReport {
			cfg.GiveUp = gctuner.GiveUpReport
		}
		tu, err := gctuner.Start(context.Background(), cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gcchurn:", err)
			os.Exit(2)
		}
		defer tu.Stop()
	}
	// The run time starts once the live set exists.
	if *dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *dur)
		defer cancel()
	}

	var peak func() uint64
	var before totals
	var measureStart time.Time
	ready := make(chan struct{})
	go func() {
		// The totals start after the warm-up, while the workers already run.
		select {
		case <-time.After(*warmup):
		case <-ctx.Done():
		}
		measureStart = time.Now()
		before = readTotals()
		peak = startPeakSampler(ctx)
		close(ready)
	}()

	var wg sync.WaitGroup
	var mu sync.Mutex
	var lat []time.Duration
	perWorker := *rate / float64(*workers)
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var sink *node
			var allocated float64 // bytes
			t0 := time.Now()
			mine := make([]time.Duration, 0, 1024)
			var spinSink uint64
			var k0 int
			defer func() { runtime.KeepAlive(spinSink) }()
			i := w
			for ctx.Err() == nil {
				r := perWorker
				// Allocate 64 KiB of garbage (1024 nodes), then pace.
				ts := time.Now()
				for k := 0; k < 1024; k++ {
					n := &node{a: sink}
					n.v[0] = uint64(k)
					if k%64 == 0 {
						sink = n
					} else {
						sink = nil
					}
				}
				if *work > 0 {
					// Compute between allocations, as a CPU-bound service
					// does: it is always runnable, so no P is ever idle and
					// the GC's idle-priority marking has nothing to use.
					spinSink ^= spin(*work, uint64(k0)+1)
					k0++
				}
				if *latency {
					mine = append(mine, time.Since(ts))
				}
				allocated += 64 << 10
				// Replace one live chain now and then so live objects die too.
				if nChains > 0 && int(allocated)%(4<<20) < 64<<10 {
					i = (i + *workers) % nChains
					roots[i] = makeChain(chain)
				}
				if r > 0 {
					// Pace on the ideal schedule, so a slow period is made
					// up: sleep until the schedule has caught up with what
					// was allocated.
					ahead := scheduleTime(allocated, r*(1<<20), *burst) - time.Since(t0)
					if ahead > 0 {
						time.Sleep(ahead)
					}
				}
			}
			_ = sink
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}(w)
	}
	if *leak > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tk := time.NewTicker(100 * time.Millisecond)
			defer tk.Stop()
			per := int(*leak*(1<<20)/10) / (nodeSize * chain)
			if per < 1 {
				per = 1
			}
			for {
				select {
				case <-ctx.Done():
					return
				case <-tk.C:
					c := make([]*node, per)
					for i := range c {
						c[i] = makeChain(chain)
					}
					leaked = append(leaked, c)
				}
			}
		}()
	}
	if *forceEvery > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tk := time.NewTicker(*forceEvery)
			defer tk.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tk.C:
					runtime.GC()
				}
			}
		}()
	}
	wg.Wait()
	<-ready
	after := readTotals()
	elapsed := time.Since(measureStart).Seconds()
	// GC cycles per second from the cycles' own end times: counting whole
	// cycles in a window of a few seconds is off by up to one cycle (25%
	// at four cycles); k cycle ends span exactly k−1 intervals.
	var gs debug.GCStats
	debug.ReadGCStats(&gs)
	var ends []time.Time
	for _, e := range gs.PauseEnd {
		if e.After(measureStart) {
			ends = append(ends, e)
		}
	}
	runtime.KeepAlive(roots)
	runtime.KeepAlive(leaked)

	rep := map[string]any{
		"seconds":           elapsed,
		"gomaxprocs":        runtime.GOMAXPROCS(0),
		"gc_cycles":         after.cycles - before.cycles,
		"gc_cpu_seconds":    after.gc - before.gc,
		"gc_assist_seconds": after.assist - before.assist,
		"gc_idle_seconds":   after.idle - before.idle,
		"total_cpu_seconds": after.total - before.total,
		"alloc_bytes":       after.alloc - before.alloc,
		"peak_heap_bytes":   peak(),
		"live_heap_bytes":   after.live,
		"heap_goal_bytes":   after.goal,
		"limiter_last":      after.limiter,
		"non_heap_bytes":    after.nonHeap,
		// Dedicated and fractional workers, and the stop-the-world phases
		// (charged as wall time × GOMAXPROCS, as gctrace does).
		"gc_dedicated_seconds": after.dedicated - before.dedicated,
		"gc_pause_seconds":     after.pause - before.pause,
		// Ps idle; total − idle is the P time the program was busy.
		"idle_p_seconds": after.idleP - before.idleP,
	}
	if len(ends) >= 2 { // PauseEnd is most recent first
		rep["cycle_ends"] = len(ends)
		rep["cycle_ends_span_seconds"] = ends[0].Sub(ends[len(ends)-1]).Seconds()
	}
	// The runtime's /cpu/classes are a snapshot taken at each GC's mark
	// termination, not at the read: the CPU figures above cover the
	// whole cycles between the last GC before each read.
	// The OS's view: CPU actually received and time spent waiting for a
	// CPU. Run delay well above zero means other jobs shared the CPUs and
	// the runtime's wall-time accounting overstates GC CPU.
	if before.processCPU >= 0 && after.processCPU >= 0 {
		rep["process_cpu_seconds"] = after.processCPU - before.processCPU
	}
	if before.runDelay >= 0 && after.runDelay >= 0 {
		rep["run_delay_seconds"] = after.runDelay - before.runDelay
	}
	evMu.Lock()
	if len(giveUps) > 0 {
		rep["giveup_at_seconds"] = giveUps
	}
	evMu.Unlock()
	// GC CPU as the runtime's GCCPUFraction defines it: idle marking out.
	if tot := after.total - before.total; tot > 0 {
		rep["gc_cpu_fraction"] = (after.gc - before.gc - (after.idle - before.idle)) / tot
		rep["gc_cpu_fraction_with_idle"] = (after.gc - before.gc) / tot
	}
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		rep["p99_chunk_seconds"] = lat[len(lat)*99/100].Seconds()
		rep["chunks"] = len(lat)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gcchurn: report:", err)
		os.Exit(1)
	}
	fmt.Printf("gcchurn: %s\n", b)
}

// oomWatch plays the container's OOM killer: memory the runtime holds
// from the OS (mapped minus released) above the limit kills the process.
func oomWatch(limit uint64, t0 time.Time) {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	for {
		metrics.Read(s)
		if used := s[0].Value.Uint64() - s[1].Value.Uint64(); used > limit {
			fmt.Printf("gcchurn: OOM: %d bytes > container limit %d at t=%.1fs\n", used, limit, time.Since(t0).Seconds())
			os.Exit(137)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// spin is n rounds of xorshift: CPU work that allocates nothing and that
// the compiler cannot remove, since the result is kept.
func spin(n int, x uint64) uint64 {
	for range n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

func makeChain(n int) *node {
	var head *node
	for i := 0; i < n; i++ {
		head = &node{a: head, b: head}
	}
	return head
}

type totals struct {
	cycles                     uint64
	gc, assist, idle, total    float64
	dedicated, pause, idleP    float64
	alloc, live, goal, limiter uint64
	nonHeap                    uint64
	processCPU, runDelay       float64
}

var totalNames = []string{
	"/gc/cycles/total:gc-cycles",
	"/cpu/classes/gc/total:cpu-seconds",
	"/cpu/classes/gc/mark/assist:cpu-seconds",
	"/cpu/classes/gc/mark/idle:cpu-seconds",
	"/cpu/classes/total:cpu-seconds",
	"/gc/heap/allocs:bytes",
	"/gc/heap/live:bytes",
	"/gc/heap/goal:bytes",
	"/gc/limiter/last-enabled:gc-cycle",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/released:bytes",
	"/cpu/classes/gc/mark/dedicated:cpu-seconds",
	"/cpu/classes/gc/pause:cpu-seconds",
	"/cpu/classes/idle:cpu-seconds",
}

func readTotals() totals {
	s := make([]metrics.Sample, len(totalNames))
	for i, n := range totalNames {
		s[i].Name = n
	}
	metrics.Read(s)
	return totals{
		cycles: s[0].Value.Uint64(), gc: s[1].Value.Float64(), assist: s[2].Value.Float64(),
		idle: s[3].Value.Float64(), total: s[4].Value.Float64(), alloc: s[5].Value.Uint64(),
		live: s[6].Value.Uint64(), goal: s[7].Value.Uint64(), limiter: s[8].Value.Uint64(),
		// What GOMEMLIMIT counts besides heap objects (the runtime's
		// mappedReady − heapFree − heapAlloc).
		nonHeap:   s[9].Value.Uint64() - s[10].Value.Uint64() - s[11].Value.Uint64() - s[12].Value.Uint64(),
		dedicated: s[13].Value.Float64(), pause: s[14].Value.Float64(), idleP: s[15].Value.Float64(),
		processCPU: processCPU(), runDelay: runDelay(),
	}
}

// scheduleTime is when, from the start, the schedule reaches bytes
// allocated at rate r (bytes/s) — or, with bursts, at 4r for burst then r/4
// for 3×burst, repeating (average rate 1.75r).
func scheduleTime(bytes, r float64, burst time.Duration) time.Duration {
	if burst <= 0 {
		return time.Duration(bytes / r * float64(time.Second))
	}
	b := burst.Seconds()
	perPeriod := 4*r*b + r/4*3*b
	periods := math.Floor(bytes / perPeriod)
	rest := bytes - periods*perPeriod
	t := periods * 4 * b
	if hi := 4 * r * b; rest <= hi {
		t += rest / (4 * r)
	} else {
		t += b + (rest-hi)/(r/4)
	}
	return time.Duration(t * float64(time.Second))
}

// startPeakSampler tracks the largest heap (bytes in live and dead
// objects, the same quantity gctrace prints as "heap size") every 5 ms,
// so the measured peak does not depend on the gctrace parser under test.
func startPeakSampler(ctx context.Context) func() uint64 {
	var mu sync.Mutex
	var peak uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		for {
			metrics.Read(s)
			mu.Lock()
			peak = max(peak, s[0].Value.Uint64())
			mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
		}
	}()
	return func() uint64 {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}
