// Command loadgen measures the loadramp generator's efficiency — requests
// per generator CPU-second — against wrk in the same run, on the same
// trivial net/http server on 127.0.0.1, and prints the ratio.
//
//	go run ./bench/loadgen [-d 5s] [-c 50] [-rate 20000] [-rounds 3]
//
// Each round runs every generator once, in rotating order, and the table
// shows the median of the rounds, so a burst of other work on a shared
// machine skews one sample rather than the result.
//
// The server runs in a child process (this program re-executed with
// -serve) so that the generator's getrusage counts only the generator; wrk's
// CPU comes from its own rusage as a child process. Three generator runs:
// closed loop with the raw HTTP/1.1 engine (what wrk does), the same with the
// net/http engine, and open-model at a fixed -rate with the raw engine.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gopulse/gopulse/loadramp"
)

func main() {
	serve := flag.Bool("serve", false, "run the trivial server (internal)")
	dur := flag.Duration("d", 5*time.Second, "duration of each run")
	conns := flag.Int("c", 50, "connections")
	rate := flag.Float64("rate", 20000, "rate of the open-model run (req/s)")
	rounds := flag.Int("rounds", 3, "rounds; the table shows medians")
	genProcs := flag.Int("gen-procs", 0, "GOMAXPROCS of the generator (0: the runtime's default); the server child keeps the default")
	flag.Parse()
	if *serve {
		runServer()
		return
	}
	if *genProcs > 0 {
		// The server child was started with the default: only this
		// process (the generator) runs on fewer Ps, as wrk -t1 runs one
		// thread.
		runtime.GOMAXPROCS(*genProcs)
	}
	if err := run(*dur, *conns, *rate, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func runServer() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	go func() { io.Copy(io.Discard, os.Stdin); os.Exit(0) }() // exit when the parent goes
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("hello\n"))
	}))
}

type result struct {
	requests float64
	wall     time.Duration
	cpu      time.Duration
	errors   int64
}

func (r result) perCPU() float64 { return r.requests / r.cpu.Seconds() }

func run(dur time.Duration, conns int, rate float64, rounds int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	srv := exec.Command(self, "-serve")
	stdin, _ := srv.StdinPipe()
	out, _ := srv.StdoutPipe()
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	defer func() { stdin.Close(); srv.Wait() }()
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read server address: %w", err)
	}
	url := "http://" + strings.TrimSpace(addr) + "/"
	fmt.Printf("server %s, %d connections, %s per run, %d rounds, GOMAXPROCS %d, %d CPUs\n", url, conns, dur, rounds, runtime.GOMAXPROCS(0), runtime.NumCPU())

	type gen struct {
		name string
		run  func() (result, error)
	}
	gens := []gen{
		{"loadramp raw, closed loop", func() (result, error) { return runOurs(url, loadramp.EngineRaw, 0, conns, dur) }},
		{"loadramp net/http, closed loop", func() (result, error) { return runOurs(url, loadramp.EngineNetHTTP, 0, conns, dur) }},
		{fmt.Sprintf("loadramp raw, open model %.0f/s", rate), func() (result, error) { return runOurs(url, loadramp.EngineRaw, rate, conns, dur) }},
	}
	if _, err := exec.LookPath("wrk"); err == nil {
		gens = append(gens, gen{"wrk -t1", func() (result, error) { return runWrk(url, conns, dur) }})
	} else {
		fmt.Println("wrk not found (apt-get install -y wrk): no comparison")
	}
	samples := make([][]result, len(gens))
	for round := range rounds {
		for k := range gens {
			i := (k + round) % len(gens)
			r, err := gens[i].run()
			if err != nil {
				return fmt.Errorf("%s: %w", gens[i].name, err)
			}
			samples[i] = append(samples[i], r)
		}
	}
	fmt.Printf("\n%-34s %10s %10s %14s %7s   %s\n", "generator (median of rounds)", "req/s", "CPU s", "req/CPU-s", "errors", "req/CPU-s of each round")
	med := make([]float64, len(gens))
	for i, g := range gens {
		rs := samples[i]
		sort.Slice(rs, func(a, b int) bool { return rs[a].perCPU() < rs[b].perCPU() })
		m := rs[len(rs)/2]
		med[i] = m.perCPU()
		var each []string
		for _, r := range samples[i] {
			each = append(each, fmt.Sprintf("%.0f", r.perCPU()))
		}
		fmt.Printf("%-34s %10.0f %10.2f %14.0f %7d   %s\n", g.name, m.requests/m.wall.Seconds(), m.cpu.Seconds(), m.perCPU(), m.errors, strings.Join(each, " "))
	}
	if gens[len(gens)-1].name == "wrk -t1" {
		fmt.Println()
		for i, g := range gens[:len(gens)-1] {
			fmt.Printf("ratio %-34s / wrk = %.2f\n", g.name, med[i]/med[len(gens)-1])
		}
	}
	return nil
}

func rusageSelf() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func runOurs(url string, eng loadramp.Engine, rate float64, conns int, dur time.Duration) (result, error) {
	g, err := loadramp.NewGenerator(loadramp.Target{URL: url, Engine: eng}, conns)
	if err != nil {
		return result{}, err
	}
	defer g.Close()
	spec := loadramp.StepSpec{Rate: rate, Duration: dur, Warmup: 0, Conns: conns}
	if rate > 0 {
		spec.Conns = 0 // Little's law, as the ramp does
	}
	cpu0, t0 := rusageSelf(), time.Now()
	r, err := g.Step(context.Background(), spec)
	if err != nil {
		return result{}, err
	}
	wall, cpu := time.Since(t0), rusageSelf()-cpu0
	return result{requests: float64(r.Responses), wall: wall, cpu: cpu, errors: r.ErrorCount()}, nil
}

var wrkTotal = regexp.MustCompile(`(\d+) requests in`)

func runWrk(url string, conns int, dur time.Duration) (result, error) {
	path, err := exec.LookPath("wrk")
	if err != nil {
		return result{}, err
	}
	cmd := exec.CommandContext(context.Background(), path, "-t1", "-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(int(dur.Seconds()))+"s", url)
	t0 := time.Now()
	out, err := cmd.Output()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %w", err)
	}
	wall := time.Since(t0)
	m := wrkTotal.FindSubmatch(out)
	if m == nil {
		return result{}, fmt.Errorf("wrk output has no request count: %q", out)
	}
	n, _ := strconv.ParseFloat(string(m[1]), 64)
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return result{requests: n, wall: wall, cpu: cpu}, nil
}
