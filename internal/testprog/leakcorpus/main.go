// Command leakcorpus runs one pattern of the goroutine-leak corpus like a
// service: a request loop, and net/http/pprof on 127.0.0.1 so that a scraper
// can take goroutine dumps while it runs.
//
//	go run ./internal/testprog/leakcorpus -list
//	go run ./internal/testprog/leakcorpus -pattern timeout-partner-gone
//
// Once the pprof server listens it prints "pprof http://127.0.0.1:PORT" on
// stdout; it runs until killed, interrupted, or -duration has passed.
// The patterns and their ground truth live in package patterns; the scoring
// harness is internal/leakscore.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gopulse/gopulse/internal/testprog/leakcorpus/patterns"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "leakcorpus:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("leakcorpus", flag.ContinueOnError)
	name := fs.String("pattern", "", "name of the pattern to run (see -list)")
	list := fs.Bool("list", false, "list the patterns and exit")
	duration := fs.Duration("duration", 10*time.Minute, "stop after this long")
	addr := fs.String("addr", "127.0.0.1:0", "address of the pprof server")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *list {
		return printList(stdout)
	}
	p, ok := patterns.Lookup(*name)
	if !ok {
		return fmt.Errorf("unknown pattern %q: run with -list to see the names", *name)
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen for pprof on %s: %w", *addr, err)
	}
	srv := &http.Server{Handler: pprofMux(), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	defer func() {
		_ = srv.Close()
		<-serveErr
	}()
	fmt.Fprintf(stdout, "pprof http://%s\n", ln.Addr())

	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		return err
	}
	select {
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("pprof server: %w", err)
		}
	default:
	}
	return nil
}

// pprofMux mounts net/http/pprof explicitly, so that importing it registers
// nothing on http.DefaultServeMux that the patterns might also use.
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

func printList(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PATTERN\tLEAKS\tCATEGORY\tEVERY\tRATE/s\tBUG")
	for _, p := range patterns.All() {
		rate := "-"
		if p.Leaks {
			rate = fmt.Sprintf("%.1f", p.LeakPerSecond)
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\t%s\n", p.Name, p.Leaks, p.Category, p.Every, rate, p.Bug)
	}
	return tw.Flush()
}
