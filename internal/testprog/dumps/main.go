// Command dumps starts goroutines in many blocking states and writes the
// goroutine dumps the Go runtime produces for them, in every format, so the
// parser in analyze/goroutine is tested against real output of the Go
// version in use rather than hand-written text.
//
// Regenerate the committed fixtures (from the module root) with:
//
//	GOEXPERIMENT=goroutineleakprofile go run ./internal/testprog/dumps -out analyze/goroutine/testdata/real
//
// Without GOEXPERIMENT the goroutineleak files are not written (the profile
// exists only with the experiment in Go 1.26).
//
// Files written:
//
//	goroutine.debug2.txt        /debug/pprof/goroutine?debug=2 (runtime.Stack of all goroutines)
//	goroutine.debug1.txt        ?debug=1, aggregated text with pprof labels
//	goroutine.pb.gz             ?debug=0, the gzipped protobuf profile
//	goroutine.pb                the same protobuf, not gzipped
//	goroutine.labels.debug2.txt debug=2 with GODEBUG=tracebacklabels=1 (labels in the header)
//	goroutineleak.pb.gz         the goroutineleak profile (experiment only)
//	goroutineleak.debug1.txt    the goroutineleak profile as debug=1 text (experiment only)
//	goroutine.afterleak.debug2.txt  debug=2 after the leak profile marked goroutines leaked (experiment only)
//	panic.txt                   stderr of a child that panics (GOTRACEBACK=all, recovered and re-panicked)
//	segv.txt                    stderr of a child that dereferences nil (GOTRACEBACK=system)
//	sigquit.txt                 stderr of a child killed with SIGQUIT
//	log-prefixed.txt            log lines, then the debug=2 dump with "app | " before every line (docker compose style)
//	log-timestamped.txt         the debug=2 dump with an RFC 3339 timestamp before every line (kubectl logs --timestamps style)
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	out := flag.String("out", "", "directory to write the dumps into")
	mode := flag.String("mode", "", "internal: child mode (panic, segv, sigquit)")
	flag.Parse()

	switch *mode {
	case "panic":
		childPanic()
		return
	case "segv":
		childSegv()
		return
	case "sigquit":
		childSigquit()
		return
	case "":
	default:
		log.Fatalf("unknown -mode %q", *mode)
	}
	if *out == "" {
		log.Fatal("usage: dumps -out DIR")
	}
	if err := generate(*out); err != nil {
		log.Fatal(err)
	}
}

// scenario starts the goroutines whose states the dumps show. The process
// exits after writing the dumps, so nothing stops them: they are fixtures.
type scenario struct {
	mu      sync.Mutex
	rw      sync.RWMutex
	rwRead  sync.RWMutex
	cond    *sync.Cond
	wg      sync.WaitGroup
	never   chan int
	sendTo  chan int
	ln      net.Listener
	idle    net.Listener
	client  net.Conn
	spin    atomic.Bool
	started sync.WaitGroup
}

//go:noinline
func recvLoop(ch chan int) {
	for range ch {
	}
}

// recvOne is small enough to be inlined, so its frame shows as inlined
// ("(...)" in debug=2, several lines per location in the profile).
func recvOne(ch chan int) int { return <-ch }

//go:noinline
func viaInlined(ch chan int) int { return recvOne(ch) + 1 }

//go:noinline
func sendOne(ch chan int) { ch <- 1 }

//go:noinline
func blockGeneric[T any](ch chan T) T { return <-ch }

//go:noinline
func deep(n int, ch chan int) int {
	if n == 0 {
		return <-ch
	}
	return deep(n-1, ch) + 1
}

type server struct{ ln net.Listener }

//go:noinline
func (s *server) serve() {
	c, err := s.ln.Accept()
	if err == nil {
		c.Close()
	}
}

//go:noinline
func readConn(c net.Conn) {
	var b [1]byte
	c.Read(b[:])
}

func start(s *scenario) error {
	s.never = make(chan int)
	s.sendTo = make(chan int)
	s.cond = sync.NewCond(&sync.Mutex{})
	g := func(f func()) {
		s.started.Add(1)
		go func() { s.started.Done(); f() }()
	}

	for range 3 {
		g(func() { recvLoop(s.never) })
	}
	for range 2 {
		g(func() { sendOne(s.sendTo) })
	}
	g(func() { viaInlined(s.never) })
	g(func() { blockGeneric(make(chan string)) })
	g(func() {
		var c chan int
		<-c
	})
	g(func() {
		var c chan int
		c <- 1
	})
	for range 2 {
		g(func() {
			t := time.NewTimer(time.Hour)
			select {
			case <-s.never:
			case <-t.C:
			}
		})
	}
	g(func() { select {} })

	s.mu.Lock()
	for range 3 {
		g(func() { s.mu.Lock() })
	}
	s.rw.Lock()
	for range 2 {
		g(func() { s.rw.RLock() })
	}
	s.rwRead.RLock()
	g(func() { s.rwRead.Lock() })

	for range 4 {
		g(func() {
			s.cond.L.Lock()
			s.cond.Wait()
			s.cond.L.Unlock()
		})
	}
	s.wg.Add(1)
	for range 2 {
		g(func() { s.wg.Wait() })
	}

	var err error
	s.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.idle, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &server{ln: s.idle}
	g(srv.serve)
	s.client, err = net.Dial("tcp", s.ln.Addr().String())
	if err != nil {
		return err
	}
	accepted, err := s.ln.Accept()
	if err != nil {
		return err
	}
	g(func() { readConn(accepted) })

	for range 2 {
		g(func() { time.Sleep(time.Hour) })
	}
	g(func() {
		t := time.NewTicker(time.Hour)
		for range t.C {
		}
	})
	g(func() {
		runtime.LockOSThread()
		<-s.never
	})
	for _, w := range []string{"a", "a", "b"} {
		g(func() {
			pprof.Do(context.Background(), pprof.Labels("worker", w, "tenant", `acme "x"`), func(context.Context) {
				<-s.never
			})
		})
	}
	g(func() { deep(150, s.never) })
	g(func() {
		// A goroutine that starts another: "created by ... in goroutine N".
		done := make(chan struct{})
		go func() {
			<-s.never
			close(done)
		}()
		<-done
	})
	// Unreachable channels: the goroutineleak profile reports these.
	for range 3 {
		g(func() {
			ch := make(chan int)
			<-ch
		})
	}
	s.started.Wait()
	// Let every goroutine reach its blocking point.
	for i := 0; i < 50; i++ {
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

func generate(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var s scenario
	if err := start(&s); err != nil {
		return err
	}
	write := func(name string, f func(w io.Writer) error) error {
		var b bytes.Buffer
		if err := f(&b); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644)
	}
	prof := func(name string, debug int) func(io.Writer) error {
		return func(w io.Writer) error { return pprof.Lookup(name).WriteTo(w, debug) }
	}
	if err := write("goroutine.debug2.txt", prof("goroutine", 2)); err != nil {
		return err
	}
	if err := write("goroutine.debug1.txt", prof("goroutine", 1)); err != nil {
		return err
	}
	var gz bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&gz, 0); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "goroutine.pb.gz"), gz.Bytes(), 0o644); err != nil {
		return err
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz.Bytes()))
	if err != nil {
		return err
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "goroutine.pb"), raw, 0o644); err != nil {
		return err
	}

	// No GOTRACEBACK=system variant of debug=2: runtime.Stack forces
	// traceback level 1, so it would be the same text. The crash children
	// below show the level-2 form (gp=, m=, fp= sp= pc=, runtime frames).

	os.Setenv("GODEBUG", "tracebacklabels=1")
	err = write("goroutine.labels.debug2.txt", prof("goroutine", 2))
	os.Setenv("GODEBUG", "")
	if err != nil {
		return err
	}

	var d2 bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&d2, 2); err != nil {
		return err
	}
	if err := writeLogs(dir, d2.Bytes()); err != nil {
		return err
	}

	if pprof.Lookup("goroutineleak") != nil {
		runtime.GC()
		if err := write("goroutineleak.pb.gz", prof("goroutineleak", 0)); err != nil {
			return err
		}
		if err := write("goroutineleak.debug1.txt", prof("goroutineleak", 1)); err != nil {
			return err
		}
		if err := write("goroutine.afterleak.debug2.txt", prof("goroutine", 2)); err != nil {
			return err
		}
	} else {
		log.Print("no goroutineleak profile: run with GOEXPERIMENT=goroutineleakprofile to write it")
	}

	for _, c := range []struct{ mode, file, traceback string }{
		{"panic", "panic.txt", "all"},
		{"segv", "segv.txt", "system"},
		{"sigquit", "sigquit.txt", ""},
	} {
		out, err := runChild(c.mode, c.traceback)
		if err != nil {
			return fmt.Errorf("child %s: %w", c.mode, err)
		}
		if err := os.WriteFile(filepath.Join(dir, c.file), out, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeLogs embeds a real dump in log text the way log collectors show it.
func writeLogs(dir string, dump []byte) error {
	var b bytes.Buffer
	lg := log.New(&b, "app | ", log.LstdFlags|log.Lmicroseconds)
	lg.Print("starting server on 127.0.0.1:8080")
	lg.Print("GET /healthz 200 12µs")
	lg.Print("received SIGQUIT-like request for /debug/pprof/goroutine?debug=2")
	sc := bufio.NewScanner(bytes.NewReader(dump))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		b.WriteString("app | ")
		b.Write(sc.Bytes())
		b.WriteByte('\n')
	}
	lg.Print("shutting down")
	if err := os.WriteFile(filepath.Join(dir, "log-prefixed.txt"), b.Bytes(), 0o644); err != nil {
		return err
	}

	b.Reset()
	ts := time.Date(2026, 11, 24, 2, 7, 0, 0, time.UTC)
	b.WriteString(ts.Format(time.RFC3339Nano) + " level=info msg=\"dumping goroutines\"\n")
	sc = bufio.NewScanner(bytes.NewReader(dump))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		ts = ts.Add(137 * time.Microsecond)
		// RFC 3339 with trailing zeros trimmed, as kubectl logs
		// --timestamps prints it: the prefix width varies line to line.
		b.WriteString(ts.Format(time.RFC3339Nano) + " ")
		b.Write(sc.Bytes())
		b.WriteByte('\n')
	}
	return os.WriteFile(filepath.Join(dir, "log-timestamped.txt"), b.Bytes(), 0o644)
}

// runChild runs this program in a child mode and returns its stderr.
func runChild(mode, traceback string) ([]byte, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-mode", mode)
	cmd.Env = append(os.Environ(), "GOTRACEBACK="+traceback)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if mode == "sigquit" {
		// Wait for "ready" so the goroutines are parked when the signal lands.
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		if strings.TrimSpace(line) != "ready" {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("child did not get ready: %q", line)
		}
		if err := cmd.Process.Signal(syscall.SIGQUIT); err != nil {
			return nil, err
		}
	} else {
		io.Copy(io.Discard, stdout)
	}
	err = cmd.Wait()
	if _, ok := err.(*exec.ExitError); !ok && err != nil {
		return nil, err
	}
	if err == nil {
		return nil, fmt.Errorf("child %s exited 0", mode)
	}
	return stderr.Bytes(), nil
}

func childPanic() {
	var s scenario
	if err := start(&s); err != nil {
		log.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer func() {
			r := recover()
			panic(r) // prints "[recovered, repanicked]"
		}()
		panic(fmt.Sprintf("fixture panic with %d goroutines", runtime.NumGoroutine()))
	}()
	<-done
}

func childSegv() {
	var s scenario
	if err := start(&s); err != nil {
		log.Fatal(err)
	}
	var p *struct{ n int }
	fmt.Println(p.n)
}

func childSigquit() {
	var s scenario
	if err := start(&s); err != nil {
		log.Fatal(err)
	}
	s.spin.Store(true)
	go func() {
		// Busy so that SIGQUIT finds a goroutine running on another thread.
		for i := 0; s.spin.Load() && i < 1<<40; i++ {
		}
	}()
	time.Sleep(20 * time.Millisecond)
	fmt.Println("ready")
	time.Sleep(30 * time.Second)
	os.Exit(0)
}
