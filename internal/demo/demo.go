// Package demo holds the services behind `gopulse demo`: a small "checkout"
// HTTP service that drives itself with load, in a leaky and a healthy
// variant, serving net/http/pprof so that `gopulse leaks` has something real
// to look at on a fresh machine.
//
// The leaky variant has two production-grade leaks:
//   - quote(): the pricing call runs in a goroutine that sends its result on
//     an unbuffered channel; when the caller times out first, nobody ever
//     receives and the sender blocks forever (the commonest Go leak);
//   - stock(): an HTTP call whose response body is never closed, so the
//     client Transport's connection goroutines, and the server's side of
//     each connection, pile up.
//
// The healthy variant fixes both (a buffered channel; a closed body) and
// keeps the same legitimate waiters: an idle worker pool, a ticker-driven
// flusher, the HTTP server's accept loop and keep-alive connections.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"
)

// Variant selects the demo's behaviour.
type Variant string

// The demo variants.
const (
	Leaky   Variant = "leaky"
	Healthy Variant = "healthy"
)

// Run serves the demo on ln until ctx ends, printing "pprof URL" to out once
// it is ready. It drives its own load: about 20 checkouts per second.
func Run(ctx context.Context, v Variant, ln net.Listener, out io.Writer) error {
	if v != Leaky && v != Healthy {
		return fmt.Errorf("unknown demo %q: want %q or %q", v, Leaky, Healthy)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &service{variant: v, jobs: make(chan func()), base: "http://" + ln.Addr().String()}
	// The server's own client: a dedicated Transport so the stock() leak
	// shows as the Transport's goroutines, exactly as in a real service.
	// No Client.Timeout: its timer would close a forgotten body after a
	// while and bound the leak; the header timeout keeps calls from hanging.
	s.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, ResponseHeaderTimeout: 5 * time.Second}}

	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/checkout", s.checkout)
	mux.HandleFunc("/inventory", s.inventory)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		shutdown, stop := context.WithTimeout(context.Background(), 2*time.Second)
		defer stop()
		_ = srv.Shutdown(shutdown)
	}()
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); s.worker(ctx) }()
	}
	wg.Add(2)
	go func() { defer wg.Done(); s.flusher(ctx) }()
	go func() { defer wg.Done(); s.load(ctx) }()

	fmt.Fprintf(out, "pprof %s/debug/pprof/\n", s.base)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		cancel()
		return fmt.Errorf("demo server: %w", err)
	}
	return nil
}

type service struct {
	variant Variant
	jobs    chan func()
	client  *http.Client
	base    string
	mu      sync.Mutex
	orders  int
}

// checkout prices the cart and checks stock, like a request handler would.
func (s *service) checkout(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Millisecond)
	defer cancel()
	price, err := s.quote(ctx)
	if err != nil {
		http.Error(w, err.Error(), http.StatusGatewayTimeout)
		return
	}
	if err := s.stock(); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	s.mu.Lock()
	s.orders++
	s.mu.Unlock()
	fmt.Fprintf(w, "ok %d\n", price)
}

// quote asks the (slow, variable) pricing engine with a deadline.
func (s *service) quote(ctx context.Context) (int, error) {
	result := make(chan int)
	if s.variant == Healthy {
		// One slot: the late sender can always deliver and exit.
		result = make(chan int, 1)
	}
	go func() {
		result <- pricingEngine()
	}()
	select {
	case p := <-result:
		return p, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("pricing: %w", ctx.Err())
	}
}

// pricingEngine takes 5–45 ms: about a third of the calls miss the 30 ms deadline.
func pricingEngine() int {
	time.Sleep(time.Duration(5+rand.IntN(40)) * time.Millisecond)
	return 100 + rand.IntN(900)
}

// stock calls the inventory service over HTTP, one call in five. The call is
// detached from the request (no context), as background lookups often are:
// a cancelled request context would close the connection and hide the leak.
func (s *service) stock() error {
	if rand.IntN(5) != 0 {
		return nil
	}
	req, err := http.NewRequest(http.MethodGet, s.base+"/inventory", nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	if s.variant == Healthy {
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	// The leaky variant reads the status and forgets the body: the
	// connection can never be reused or closed.
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("inventory: %s", resp.Status)
	}
	return nil
}

func (s *service) inventory(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintln(w, `{"sku":"A-1","in_stock":true}`)
}

// worker is one of a fixed pool: idle waiting on jobs is healthy.
func (s *service) worker(ctx context.Context) {
	for {
		select {
		case job := <-s.jobs:
			job()
		case <-ctx.Done():
			return
		}
	}
}

// flusher wakes every second, like a metrics or log flusher.
func (s *service) flusher(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.mu.Lock()
			s.orders = 0
			s.mu.Unlock()
		case <-ctx.Done():
			return
		}
	}
}

// load sends checkouts to the service itself, 20 per second, through a
// keep-alive client, like real traffic would.
func (s *service) load(ctx context.Context) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+"/checkout", nil)
		if err != nil {
			continue
		}
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
