// Command traced is a fixture program for analyze/trace: it sets up
// goroutines in known situations, writes an execution trace of about one
// second, and prints the goroutine IDs of the ones it parked so a test can
// check that the trace names them with the same IDs as a goroutine dump.
//
// What runs during the traced window:
//
//   - "leak" goroutines blocked forever on a channel receive, on a select
//     and on a sync.Mutex, all parked before tracing starts: they never run
//     in the window;
//   - busy workers that spin on the CPU until the window ends;
//   - a ping-pong pair that blocks and unblocks on a channel every few ms;
//   - short-lived goroutines created and ended inside the window;
//   - one forced GC, so the trace has stop-the-world periods.
//
// Output: the trace (-trace), the full goroutine dump as runtime.Stack(all)
// prints it, taken while tracing (-dump), and on stdout one line per parked
// goroutine: "parked <id> <kind>".
//
// -mode=start uses runtime/trace.Start/Stop (what /debug/pprof/trace does);
// -mode=flight uses trace.FlightRecorder and writes its window at the end.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/trace"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "traced:", err)
		os.Exit(1)
	}
}

func run() error {
	out := flag.String("trace", "trace.out", "where to write the execution trace")
	dump := flag.String("dump", "", "where to write the goroutine dump (runtime.Stack of all goroutines); empty: none")
	mode := flag.String("mode", "start", "start: runtime/trace.Start; flight: trace.FlightRecorder")
	window := flag.Duration("d", time.Second, "how long to trace")
	leaks := flag.Int("leaks", 3, "goroutines parked forever of each kind (chan, select, mutex)")
	workers := flag.Int("workers", 2, "busy goroutines spinning on the CPU")
	flag.Parse()

	// Parked goroutines are started before tracing so that they are already
	// waiting when the window opens: the trace sees them only through the
	// status events it writes for every goroutine, never running.
	var parked sync.WaitGroup
	never, alsoNever := make(chan int), make(chan int)
	var mu sync.Mutex
	mu.Lock() // held for the life of the process
	kinds := []struct {
		name string
		wait func()
	}{
		{"chan", func() { <-never }},
		{"select", func() {
			select {
			case <-never:
			case <-alsoNever:
			}
		}},
		{"mutex", func() { mu.Lock() }},
	}
	type id struct {
		goid uint64
		kind string
	}
	ids := make(chan id, *leaks*len(kinds))
	for _, k := range kinds {
		for range *leaks {
			parked.Add(1)
			go func() {
				ids <- id{currentGoID(), k.name}
				parked.Done()
				k.wait()
			}()
		}
	}
	parked.Wait()
	close(ids)
	// Give the parked goroutines time to reach their wait before tracing, so
	// no running of theirs falls into the window.
	time.Sleep(50 * time.Millisecond)

	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	defer f.Close()

	var stopTrace func() error
	switch *mode {
	case "start":
		if err := trace.Start(f); err != nil {
			return fmt.Errorf("start trace: %w", err)
		}
		stopTrace = func() error { trace.Stop(); return nil }
	case "flight":
		fr := trace.NewFlightRecorder(trace.FlightRecorderConfig{MinAge: 2 * *window})
		if err := fr.Start(); err != nil {
			return fmt.Errorf("start flight recorder: %w", err)
		}
		stopTrace = func() error {
			defer fr.Stop()
			_, err := fr.WriteTo(f)
			return err
		}
	default:
		return fmt.Errorf("unknown -mode %q: want start or flight", *mode)
	}

	var stop atomic.Bool
	var wg sync.WaitGroup // owns every goroutine started below

	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			busy(&stop)
		}()
	}

	ping, pong := make(chan int), make(chan int)
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(ping)
		for i := 0; !stop.Load(); i++ {
			ping <- i
			<-pong
			time.Sleep(5 * time.Millisecond)
		}
	}()
	go func() {
		defer wg.Done()
		for v := range ping {
			pong <- v
		}
	}()

	wg.Add(1)
	go func() {
		defer wg.Done()
		var short sync.WaitGroup
		for !stop.Load() {
			short.Add(1)
			go func() {
				defer short.Done()
				time.Sleep(time.Millisecond)
			}()
			time.Sleep(50 * time.Millisecond)
		}
		short.Wait()
	}()

	time.Sleep(*window / 2)
	runtime.GC()
	if *dump != "" {
		if err := os.WriteFile(*dump, allStacks(), 0o644); err != nil {
			return err
		}
	}
	time.Sleep(*window / 2)
	stop.Store(true)
	wg.Wait()

	if err := stopTrace(); err != nil {
		return fmt.Errorf("write trace: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	for i := range ids {
		fmt.Printf("parked %d %s\n", i.goid, i.kind)
	}
	return nil
}

var sink uint64

// busy spins without blocking until stop is set, so the scheduler has to
// preempt it.
func busy(stop *atomic.Bool) {
	x := uint64(1)
	for !stop.Load() {
		for i := 0; i < 1000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	atomic.AddUint64(&sink, x)
}

// currentGoID reads the goroutine ID from the header runtime.Stack prints
// ("goroutine 18 [running]:"): the same number debug=2 dumps show.
func currentGoID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		if n, err := strconv.ParseUint(string(b[:i]), 10, 64); err == nil {
			return n
		}
	}
	panic(errors.New("cannot read goroutine ID from runtime.Stack"))
}

func allStacks() []byte {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return buf[:n]
		}
		buf = make([]byte, 2*len(buf))
	}
}
