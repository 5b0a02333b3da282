// Command capacity is an HTTP server with a known capacity, the fixture of
// loadramp's accuracy tests and of bench/ramp.
//
// Requests are served by -workers workers, each taking exactly -service
// per request, so the capacity is workers ÷ service (4 × 2 ms = 2000
// req/s). Service times run on a virtual clock: a worker that picks up a
// queued request starts it when its previous one was due to end, not when
// the goroutine happened to wake, so scheduler overshoot never lowers the
// throughput below the stated capacity.
//
// Variants:
//
//	-alloc B -live MB   allocate B bytes per request (in 128-byte objects)
//	                    beside a pointer-rich live heap of MB MiB, so GC CPU
//	                    grows with load (set GOGC low to make it steep)
//	-stall-after D -stall S   once, D after the first request, stall every
//	                    request for S (a stop-the-world-like hiccup)
//	-agent              run the gopulse agent (its trigger rules off, so it
//	                    captures nothing) and serve its status at
//	                    /debug/gopulse/
//
// It serves /debug/vars (expvar) and /debug/pprof, listens on -listen
// (default 127.0.0.1:0), and prints "listening http://ADDR" on stdout. It
// exits when stdin closes, so a test that dies takes it along.
package main

import (
	"context"
	_ "expvar"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopulse/gopulse/agent"
)

type worker struct{ free time.Time } // when its last request was due to end

type server struct {
	pool    chan *worker
	service time.Duration
	alloc   int

	stallAfter, stall time.Duration
	firstReq          atomic.Int64 // unix ns of the first request
	stallOnce         sync.Once
	stallUntil        atomic.Int64
}

var sink atomic.Pointer[[][]byte]

type node struct{ p [8]*node }

var live []*node

func buildLive(mib int) {
	n := mib << 20 / 64
	live = make([]*node, n)
	for i := range live {
		live[i] = new(node)
	}
	r := rand.New(rand.NewPCG(1, 1))
	for _, nd := range live {
		for j := range nd.p {
			nd.p[j] = live[r.IntN(n)]
		}
	}
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	s.firstReq.CompareAndSwap(0, arrived.UnixNano())
	if s.stall > 0 && arrived.UnixNano()-s.firstReq.Load() >= int64(s.stallAfter) {
		s.stallOnce.Do(func() { s.stallUntil.Store(arrived.Add(s.stall).UnixNano()) })
	}
	if u := s.stallUntil.Load(); arrived.UnixNano() < u {
		time.Sleep(time.Until(time.Unix(0, u)))
	}
	if s.alloc > 0 {
		garbage := make([][]byte, 0, s.alloc/128)
		for range s.alloc / 128 {
			garbage = append(garbage, make([]byte, 128))
		}
		sink.Store(&garbage)
	}
	wk := <-s.pool
	start := wk.free
	if start.Before(arrived) {
		start = arrived
	}
	wk.free = start.Add(s.service)
	time.Sleep(time.Until(wk.free))
	s.pool <- wk
	io.WriteString(w, "ok\n")
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	workers := flag.Int("workers", 4, "concurrent workers")
	service := flag.Duration("service", 2*time.Millisecond, "service time per request")
	alloc := flag.Int("alloc", 0, "bytes allocated per request")
	liveMiB := flag.Int("live", 0, "MiB of pointer-rich live heap")
	stallAfter := flag.Duration("stall-after", 0, "stall this long after the first request")
	stall := flag.Duration("stall", 0, "stall duration (once)")
	withAgent := flag.Bool("agent", false, "run the gopulse agent and serve its status at /debug/gopulse/")
	flag.Parse()
	if *workers < 1 || *service <= 0 {
		fmt.Fprintln(os.Stderr, "capacity: -workers must be ≥ 1 and -service > 0")
		os.Exit(2)
	}
	buildLive(*liveMiB)
	s := &server{pool: make(chan *worker, *workers), service: *service, alloc: *alloc, stallAfter: *stallAfter, stall: *stall}
	for range *workers {
		s.pool <- &worker{}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "capacity:", err)
		os.Exit(1)
	}
	http.Handle("/", s)
	if *withAgent {
		// Rules off: a capture (CPU profile, trace) would cost the server
		// CPU in the middle of a measurement. Sampling is what is wanted.
		off := agent.Triggers{GCPause: -1, GCCPUFraction: -1, GoroutineGrowthFraction: -1, HeapLimitFraction: -1,
			SchedLatencyP99: -1, FDFraction: -1, DisableGCLimiter: true}
		a, err := agent.Start(context.Background(), agent.Options{SpoolDir: "-", FlightRecorder: agent.FlightRecorderOff, Triggers: off})
		if err != nil {
			fmt.Fprintln(os.Stderr, "capacity: start agent:", err)
			os.Exit(1)
		}
		http.Handle("/debug/gopulse/", a.Handler())
	}
	fmt.Printf("listening http://%s\n", ln.Addr())
	go func() { // exit when the parent closes stdin or dies
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	if err := http.Serve(ln, nil); err != nil {
		fmt.Fprintln(os.Stderr, "capacity:", err)
		os.Exit(1)
	}
}
