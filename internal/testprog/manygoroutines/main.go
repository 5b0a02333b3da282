// Command manygoroutines starts N goroutines blocked in realistic ways and
// writes their goroutine dump, so benchmarks and tests parse what the Go
// runtime under test really prints rather than hand-written text.
//
//	go run ./internal/testprog/manygoroutines -n 100000 -out dir
//	go run ./internal/testprog/manygoroutines -n 10000 -serve
//
// The goroutines are spread over about 100 distinct stacks of depth 5–25
// (channel send and receive on several call paths, nil channel, select,
// sync.Mutex, sync.RWMutex, sync.Cond waiters (each prints its own ticket
// argument), sync.WaitGroup, time.Sleep, and IO wait on 127.0.0.1 sockets,
// whose count -conns bounds because each holds a file descriptor). Sizes per
// stack are skewed: a few large groups, many small ones. None has waited a
// minute, so no wait durations are printed.
//
// With -out, it writes into the directory:
//
//	goroutines-N.txt      debug=2 text: runtime.Stack(buf, true), never truncated
//	goroutines-N.debug1.txt  debug=1 text (aggregated)
//	goroutines-N.pb.gz    pprof protobuf goroutine profile (debug=0)
//
// With -serve, it serves net/http/pprof on 127.0.0.1 (mounted on its own mux)
// plus /stw, the runtime's cumulative stop-the-world pause histograms, until
// SIGINT or SIGTERM. When ready it prints one line on stdout:
//
//	ready goroutines=100123 leaked=44302 addr=http://127.0.0.1:PORT
//
// where leaked is how many goroutines were made unreachable on purpose.
//
// A fraction -leaked of the goroutines blocked on channels and sync
// primitives wait on objects nothing else references, so Go's goroutine leak
// profile (/debug/pprof/goroutineleak) reports them. The goroutines are never
// woken: their owner is the process, and they end when it exits.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	rpprof "runtime/pprof"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "manygoroutines:", err)
		os.Exit(1)
	}
}

// held keeps the shapes that must stay reachable (not leaked) for the life
// of the process.
var held []*shape

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("manygoroutines", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 10000, "number of blocked goroutines to start")
	out := fs.String("out", "", "directory to write the dumps into (none when empty)")
	serve := fs.Bool("serve", false, "serve net/http/pprof and /stw on -addr until interrupted")
	addr := fs.String("addr", "127.0.0.1:0", "listen address for -serve (loopback only)")
	conns := fs.Int("conns", 0, "127.0.0.1 connections whose two ends wait in IO (0: min(2000, n/50))")
	leaked := fs.Float64("leaked", 0.5, "fraction of channel/sync goroutines made unreachable (leaked)")
	seed := fs.Uint64("seed", 1, "seed for the stack layout and group sizes")
	minDepth := fs.Int("mindepth", 5, "smallest stack depth in frames (created-by not counted)")
	maxDepth := fs.Int("maxdepth", 25, "largest stack depth in frames")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 {
		return fmt.Errorf("-n %d: need at least one goroutine", *n)
	}
	if *out == "" && !*serve {
		return errors.New("nothing to do: give -out DIR, -serve, or both")
	}
	if *minDepth < 1 || *maxDepth < *minDepth {
		return fmt.Errorf("-mindepth %d -maxdepth %d: need 1 <= mindepth <= maxdepth", *minDepth, *maxDepth)
	}
	if *conns == 0 {
		*conns = min(2000, *n/50)
	}

	start := time.Now()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for the IO-wait connections: %w", err)
	}
	defer ln.Close()
	st, err := spawn(ln, *n, *conns, *minDepth, *maxDepth, *leaked, *seed)
	if err != nil {
		return err
	}
	parked := waitParked(runtime.NumGoroutine(), 2*time.Minute)
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	fmt.Fprintf(stderr, "started %d goroutines (%d shapes, %d leaked goroutines, %d connections) in %v; parked=%v; stacks %d MiB, sys %d MiB\n",
		runtime.NumGoroutine(), st.shapes, st.leaked, st.conns, time.Since(start).Round(time.Millisecond), parked,
		m1.StackInuse>>20, m1.Sys>>20)

	if *out != "" {
		if err := writeDumps(*out, *n, stderr); err != nil {
			return err
		}
	}
	if !*serve {
		return nil
	}
	return serveHTTP(ctx, *addr, st.leaked, stdout, stderr)
}

type spawnStats struct{ shapes, leaked, conns int }

// spawn starts the goroutines. Only non-leaked shapes are kept in held;
// leaked ones are referenced from their goroutines' stacks alone.
func spawn(ln net.Listener, n, conns, minDepth, maxDepth int, leakFrac float64, seed uint64) (spawnStats, error) {
	shapes := planShapes(n, conns, minDepth, maxDepth, leakFrac, seed)
	var st spawnStats
	var servers, clients []*shape
	for _, s := range shapes {
		s.prepare()
		if s.count > 0 {
			st.shapes++
		}
		if s.leaked {
			st.leaked += s.count
		} else {
			held = append(held, s)
		}
		switch s.kind {
		case kNetServer:
			servers = append(servers, s)
		case kNetClient:
			clients = append(clients, s)
		case kSleep:
			startTimers(s)
		default:
			startWorkers(s)
		}
	}
	nconn := 0
	for _, s := range servers {
		nconn += s.count
	}
	accepted := make(chan error, 1)
	go acceptLoop(ln, servers, nconn, accepted)
	if err := dialPeers(ln.Addr().String(), clients); err != nil {
		return st, err
	}
	if err := <-accepted; err != nil {
		return st, err
	}
	st.conns = nconn
	return st, nil
}

//go:noinline
func startWorkers(s *shape) {
	for range s.count {
		go layers[s.path[0]](&task{s: s}, 1)
	}
}

//go:noinline
func startTimers(s *shape) {
	for range s.count {
		go layers[s.path[0]](&task{s: s}, 1)
	}
}

// acceptLoop hands each accepted connection to a server-side goroutine,
// reports when all n are accepted, then stays in Accept (one more goroutine
// in IO wait) until the listener closes.
func acceptLoop(ln net.Listener, shapes []*shape, n int, done chan<- error) {
	i, left := 0, 0
	if len(shapes) > 0 {
		left = shapes[0].count
	}
	for k := 0; ; k++ {
		if k == n {
			done <- nil
		}
		c, err := ln.Accept()
		if err != nil {
			if k < n {
				done <- fmt.Errorf("accept connection %d of %d: %w", k+1, n, err)
			}
			return
		}
		if k >= n {
			c.Close()
			continue
		}
		for left == 0 {
			i++
			left = shapes[i].count
		}
		left--
		go layers[shapes[i].path[0]](&task{s: shapes[i], conn: c}, 1)
	}
}

//go:noinline
func dialPeers(addr string, shapes []*shape) error {
	for _, s := range shapes {
		for range s.count {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return fmt.Errorf("dial %s (raise ulimit -n or lower -conns): %w", addr, err)
			}
			go layers[s.path[0]](&task{s: s, conn: c}, 1)
		}
	}
	return nil
}

// waitParked waits until no goroutine but the caller is runnable or running
// (Go 1.26 metrics), so the dump shows every goroutine in its final state.
// Without those metrics it waits a fixed second.
func waitParked(total int, limit time.Duration) bool {
	s := []metrics.Sample{
		{Name: "/sched/goroutines/runnable:goroutines"},
		{Name: "/sched/goroutines/running:goroutines"},
		{Name: "/sched/goroutines/waiting:goroutines"},
	}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		metrics.Read(s)
		if s[0].Value.Kind() != metrics.KindUint64 {
			time.Sleep(time.Second)
			return true
		}
		if s[0].Value.Uint64()+s[1].Value.Uint64() <= 1 && s[2].Value.Uint64() >= uint64(total)-8 {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// writeDumps writes the three dump forms. The text dump comes from
// runtime.Stack with a buffer grown until the dump fits: net/http/pprof
// stops at 64 MB, which 100k goroutines pass.
func writeDumps(dir string, n int, stderr io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	base := filepath.Join(dir, "goroutines-"+strconv.Itoa(n))
	size := runtime.NumGoroutine()*2048 + 1<<20
	var text []byte
	for {
		buf := make([]byte, size)
		t0 := time.Now()
		k := runtime.Stack(buf, true)
		stw := time.Since(t0)
		if k < len(buf) {
			text = buf[:k]
			fmt.Fprintf(stderr, "debug=2 dump: %d bytes (%.1f MB), runtime.Stack took %v\n", k, float64(k)/1e6, stw.Round(time.Millisecond))
			break
		}
		size *= 2
	}
	if err := os.WriteFile(base+".txt", text, 0o644); err != nil {
		return fmt.Errorf("write text dump: %w", err)
	}
	text = nil
	for _, f := range []struct {
		suffix string
		debug  int
	}{{".debug1.txt", 1}, {".pb.gz", 0}} {
		t0 := time.Now()
		if err := writeProfile(base+f.suffix, f.debug); err != nil {
			return err
		}
		fi, err := os.Stat(base + f.suffix)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "debug=%d profile: %d bytes, took %v\n", f.debug, fi.Size(), time.Since(t0).Round(time.Millisecond))
	}
	return nil
}

func writeProfile(path string, debug int) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if err := rpprof.Lookup("goroutine").WriteTo(w, debug); err != nil {
		f.Close()
		return fmt.Errorf("write goroutine profile debug=%d: %w", debug, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// serveHTTP serves pprof and /stw until ctx ends or a signal arrives.
func serveHTTP(ctx context.Context, addr string, leaked int, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/stw", serveSTW)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "ready goroutines=%d leaked=%d addr=http://%s\n", runtime.NumGoroutine(), leaked, ln.Addr())
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	<-errc
	fmt.Fprintln(stderr, "stopped")
	return nil
}

// STWHistogram is one runtime/metrics pause histogram as /stw serves it.
// Buckets are the runtime's boundaries in seconds as strings ("-Inf" and
// "+Inf" included, which JSON numbers cannot hold); Counts has one entry per
// bucket, cumulative since the process started.
type STWHistogram struct {
	Buckets []string `json:"buckets"`
	Counts  []uint64 `json:"counts"`
}

// STWReport is the body of /stw.
type STWReport struct {
	// Other is /sched/pauses/total/other:seconds: non-GC stops such as a
	// debug=2 goroutine dump.
	Other STWHistogram `json:"other"`
	// GC is /sched/pauses/total/gc:seconds.
	GC STWHistogram `json:"gc"`
	// Goroutines is runtime.NumGoroutine() at the time of the request.
	Goroutines int `json:"goroutines"`
}

func serveSTW(w http.ResponseWriter, r *http.Request) {
	s := []metrics.Sample{
		{Name: "/sched/pauses/total/other:seconds"},
		{Name: "/sched/pauses/total/gc:seconds"},
	}
	metrics.Read(s)
	var rep STWReport
	for i, h := range []*STWHistogram{&rep.Other, &rep.GC} {
		if s[i].Value.Kind() != metrics.KindFloat64Histogram {
			http.Error(w, s[i].Name+" is not supported by this Go version", http.StatusNotImplemented)
			return
		}
		fh := s[i].Value.Float64Histogram()
		h.Counts = fh.Counts
		for _, b := range fh.Buckets {
			h.Buckets = append(h.Buckets, strconv.FormatFloat(b, 'g', -1, 64))
		}
	}
	rep.Goroutines = runtime.NumGoroutine()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&rep)
}
