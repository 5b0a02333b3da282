// Command agentdemo is a small HTTP service instrumented with the gopulse
// agent. Besides a normal endpoint it has buttons to misbehave, so the
// agent's triggers can be seen firing:
//
//	GET  /               some CPU work, like a real handler
//	POST /leak?n=2000    start n goroutines that block forever (until /unleak)
//	POST /unleak         release them
//	POST /gcstorm?d=5s   allocate hard with GOGC=1 for d: a GC-CPU storm
//	GET  /debug/gopulse/ the agent's state; POST /debug/gopulse/trigger
//
// Run it with GOPULSE_COLLECTOR=http://127.0.0.1:7070 go run ./examples/agentdemo
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/gopulse/gopulse/agent"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, agent.Options{}, nil); err != nil {
		fmt.Fprintln(os.Stderr, "agentdemo:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done. ready, if not nil, receives the address.
func run(ctx context.Context, args []string, stdout io.Writer, opts agent.Options, ready chan<- string) error {
	fs := flag.NewFlagSet("agentdemo", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if opts.Service == "" {
		opts.Service = "agentdemo"
	}
	a, err := agent.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer a.Stop(context.Background())

	d := &demo{}
	defer d.unleak()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", work)
	mux.HandleFunc("POST /leak", d.leak)
	mux.HandleFunc("POST /unleak", func(w http.ResponseWriter, r *http.Request) { d.unleak() })
	mux.HandleFunc("POST /gcstorm", gcStorm)
	mux.Handle("/debug/gopulse/", a.Handler())

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	fmt.Fprintf(stdout, "agentdemo listening on http://%s\n", ln.Addr())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// work hashes a few KB: a CPU-bound handler.
func work(w http.ResponseWriter, r *http.Request) {
	h := fnv.New64a()
	buf := make([]byte, 1024)
	for i := 0; i < 16; i++ {
		buf[0] = byte(i)
		h.Write(buf)
	}
	fmt.Fprintf(w, "%x\n", h.Sum64())
}

type demo struct {
	mu   sync.Mutex
	stop chan struct{}
	wg   sync.WaitGroup
}

func (d *demo) leak(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.FormValue("n"))
	if err != nil || n <= 0 || n > 200000 {
		http.Error(w, "n must be 1..200000", http.StatusBadRequest)
		return
	}
	d.mu.Lock()
	if d.stop == nil {
		d.stop = make(chan struct{})
	}
	stop := d.stop
	d.mu.Unlock()
	for i := 0; i < n; i++ {
		d.wg.Add(1)
		go leakWorker(stop, &d.wg)
	}
	fmt.Fprintf(w, "started %d blocked goroutines\n", n)
}

// leakWorker blocks until released, like a goroutine waiting on a channel
// nobody will send on.
func leakWorker(stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	<-stop
}

func (d *demo) unleak() {
	d.mu.Lock()
	if d.stop != nil {
		close(d.stop)
		d.stop = nil
	}
	d.mu.Unlock()
	d.wg.Wait()
}

func gcStorm(w http.ResponseWriter, r *http.Request) {
	dur, err := time.ParseDuration(r.FormValue("d"))
	if err != nil || dur <= 0 || dur > time.Minute {
		http.Error(w, "d must be a duration up to 1m", http.StatusBadRequest)
		return
	}
	old := debug.SetGCPercent(1)
	defer debug.SetGCPercent(old)
	stormAllocate(dur)
	fmt.Fprintln(w, "storm over")
}

// stormNode is 64 bytes with a pointer, so the GC must scan every one.
type stormNode struct {
	peer *stormNode
	_    [56]byte
}

// stormAllocate keeps a pointer-rich live heap and churns through
// allocations on every P, so with GOGC=1 the GC runs back to back and takes
// a large share of the process's CPU capacity, as a real storm does.
func stormAllocate(dur time.Duration) {
	live := make([]*stormNode, 200000)
	for i := range live {
		live[i] = &stormNode{}
		if i > 0 {
			live[i].peer = live[i-1]
		}
	}
	end := time.Now().Add(dur)
	var wg sync.WaitGroup
	procs := runtime.GOMAXPROCS(0)
	for p := range procs {
		// Each goroutine churns its own part of the live heap.
		part := live[p*len(live)/procs : (p+1)*len(live)/procs]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; ; i++ {
				if i%1024 == 0 && !time.Now().Before(end) {
					return
				}
				part[i%len(part)] = &stormNode{peer: part[(i-1)%len(part)]}
			}
		}()
	}
	wg.Wait()
}
