// Command pprofonly is a plain Go HTTP service that knows nothing of
// gopulse: it only serves net/http/pprof and expvar's /debug/vars, the way
// many services already do. `gopulse server --scrape pprofonly=http://ADDR`
// watches it without any code change.
//
//	go run ./examples/pprofonly --listen 127.0.0.1:6061
package main

import (
	"context"
	"expvar"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:6061", "address to serve on")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen); err != nil {
		fmt.Fprintln(os.Stderr, "pprofonly:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, listen string) error {
	mux := http.NewServeMux()
	// Registered explicitly rather than through the packages' init side
	// effects, as a well-behaved service would.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.Handle("/debug/vars", expvar.Handler())
	mux.HandleFunc("/work", func(w http.ResponseWriter, r *http.Request) {
		// Allocate, so the GC has something to do.
		buf := make([][]byte, 0, 64)
		for i := 0; i < 64; i++ {
			buf = append(buf, make([]byte, 16<<10))
		}
		fmt.Fprintf(w, "did %d KiB of work\n", len(buf)*16)
	})
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Self-driven load: a few requests per second.
		c := &http.Client{Timeout: 5 * time.Second}
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if resp, err := c.Get("http://" + ln.Addr().String() + "/work"); err == nil {
					resp.Body.Close()
				}
			}
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	fmt.Printf("pprof http://%s/debug/pprof/\n", ln.Addr())
	err = srv.Serve(ln)
	<-done
	if err == http.ErrServerClosed {
		return nil
	}
	return err
}
