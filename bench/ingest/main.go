// Command ingest measures gopulse's collector end to end over HTTP on
// 127.0.0.1: metric batches from simulated agents at a fixed rate
// (latency from the intended send time, so a stalled server cannot hide
// its queue), evidence bundle throughput, a 24 h series query and the
// fleet summary for every simulated instance. The collector runs
// in-process on a real SQLite store in a temporary directory, with its
// background work running as in `gopulse server` (analysis and the fleet
// summary every 30 s, rollups, compaction and retention every minute):
// pick -duration ≥ 70s for a batch phase that includes a maintenance pass.
//
//	go run ./bench/ingest                        # defaults: 1,000 agents, 2,000 batches/s for 20 s
//	go run ./bench/ingest -agents 1000 -rate 3000 -duration 30s
package main

import (
	"bytes"
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gopulse/gopulse/bench/internal/dbsize"
	"github.com/gopulse/gopulse/collector"
	"github.com/gopulse/gopulse/store"
	"github.com/gopulse/gopulse/store/sqlite"
	"github.com/gopulse/gopulse/wire"
)

func main() {
	agents := flag.Int("agents", 1000, "simulated agents (instances)")
	rate := flag.Float64("rate", 2000, "metric batches per second offered")
	duration := flag.Duration("duration", 20*time.Second, "length of the batch phase")
	workers := flag.Int("workers", 256, "concurrent HTTP clients")
	bundles := flag.Int("bundles", 40, "bundles in the bundle phase")
	bundleMB := flag.Int("bundle-mb", 8, "size of each bundle in MiB")
	queries := flag.Int("queries", 200, "queries per query phase")
	sync := flag.String("sync", "FULL", "SQLite synchronous mode")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	batchprofile := flag.String("batchprofile", "", "write a CPU profile of the steady batch phase only to this file")
	latfile := flag.String("latencies", "", "write each batch's due time and latency (µs from the batch phase's start) to this file")
	background := flag.Bool("background", true, "run the collector's background work (analysis, fleet summary, maintenance) as gopulse server does")
	gcPerBatch := flag.Int("gc-cycles", 5, "GC cycle records per batch (the agent ships every cycle: 5 per 10 s batch is a service at 0.5 GC/s)")
	late := flag.Bool("late", false, "timestamp all data 23 h in the past (a spool replay: every batch is late for rollups and compaction)")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/ingest:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if *cpuprofile != "" && *batchprofile != "" {
		fmt.Fprintln(os.Stderr, "bench/ingest: -cpuprofile and -batchprofile cannot both be set (one CPU profile at a time)")
		os.Exit(2)
	}
	if err := run(*agents, *rate, *duration, *workers, *bundles, *bundleMB, *queries, *sync, *background, *late, *gcPerBatch, *batchprofile, *latfile); err != nil {
		fmt.Fprintln(os.Stderr, "bench/ingest:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// agentMetricSet is the agent's metric selection (agent/internal/sample
// Selected): everything under these prefixes of runtime/metrics.All().
var agentPrefixes = []string{"/gc/", "/sched/", "/cpu/classes/", "/memory/classes/", "/sync/mutex/wait/total"}

// template builds one batch of n samples of the agent's metric set from
// real runtime/metrics reads of this process.
func template(n int) *wire.MetricBatch {
	var descs []metrics.Description
	for _, d := range metrics.All() {
		for _, p := range agentPrefixes {
			if strings.HasPrefix(d.Name, p) {
				descs = append(descs, d)
				break
			}
		}
	}
	ss := make([]metrics.Sample, len(descs))
	b := &wire.MetricBatch{}
	for i, d := range descs {
		ss[i].Name = d.Name
		md := &wire.MetricDescriptor{Name: d.Name, Cumulative: d.Cumulative}
		b.Descriptors = append(b.Descriptors, md)
	}
	metrics.Read(ss)
	for i, s := range ss {
		switch s.Value.Kind() {
		case metrics.KindUint64:
			b.Descriptors[i].Kind = wire.MetricKind_METRIC_KIND_UINT64
		case metrics.KindFloat64:
			b.Descriptors[i].Kind = wire.MetricKind_METRIC_KIND_FLOAT64
		case metrics.KindFloat64Histogram:
			b.Descriptors[i].Kind = wire.MetricKind_METRIC_KIND_HISTOGRAM
			b.Descriptors[i].Boundaries = s.Value.Float64Histogram().Buckets
		}
	}
	for k := 0; k < n; k++ {
		runtime.GC()
		metrics.Read(ss)
		ws := &wire.Sample{Process: &wire.ProcessFacts{RssBytes: 50 << 20, OpenFds: 12, FdLimit: 1024, Threads: 9},
			Settings: &wire.RuntimeSettings{GogcPercent: 100, GomemlimitBytes: math.MaxInt64, Gomaxprocs: 2}}
		for i, s := range ss {
			v := &wire.MetricValue{Index: uint32(i)}
			switch s.Value.Kind() {
			case metrics.KindUint64:
				v.Value = &wire.MetricValue_Uint64Value{Uint64Value: s.Value.Uint64()}
			case metrics.KindFloat64:
				v.Value = &wire.MetricValue_Float64Value{Float64Value: s.Value.Float64()}
			case metrics.KindFloat64Histogram:
				h := &wire.SparseHistogram{}
				for j, c := range s.Value.Float64Histogram().Counts {
					if c != 0 {
						h.BucketIndex = append(h.BucketIndex, uint32(j))
						h.Count = append(h.Count, c)
					}
				}
				v.Value = &wire.MetricValue_Histogram{Histogram: h}
			default:
				continue
			}
			ws.Values = append(ws.Values, v)
		}
		b.Samples = append(b.Samples, ws)
	}
	return b
}

// processCPU is the user+system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func pct(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(math.Ceil(q*float64(len(d))))-1)]
}

func run(nAgents int, rate float64, dur time.Duration, nWorkers, nBundles, bundleMB, nQueries int, syncMode string, background, late bool, gcPerBatch int, batchprofile, latfile string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "gopulse-bench-ingest")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := sqlite.Open(ctx, dir, sqlite.Options{Synchronous: syncMode})
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := collector.New(collector.Config{Store: st, BatchRate: 1e6, BatchBurst: 1e6, BundleRate: 1e6, BundleBurst: 1e6,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	c.SetReady()
	if background {
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.Run(ctx)
		}()
		// Stop the background work before the store closes.
		defer func() { cancel(); <-done }()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: c.Handler()}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	secret, _ := collector.NewTokenSecret()
	if err := st.CreateToken(ctx, store.Token{ID: "bench", CreatedAt: time.Now()}, store.HashToken(secret)); err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: nWorkers, MaxConnsPerHost: nWorkers}, Timeout: 60 * time.Second}

	tmpl := template(10)
	nValues := 0
	for _, s := range tmpl.Samples {
		nValues += len(s.Values)
	}
	fmt.Printf("go %s, GOMAXPROCS %d, sqlite synchronous=%s\n", runtime.Version(), runtime.GOMAXPROCS(0), syncMode)
	fmt.Printf("batch: %d samples × %d metrics = %d values (+ process facts), %d GC cycle records and the agent's status\n",
		len(tmpl.Samples), len(tmpl.Descriptors), nValues, gcPerBatch)

	// Sample times follow the wall clock, as a live agent's do, so the
	// collector's maintenance rolls up each minute and compacts each window
	// once, as in production. Each simulated agent sends a batch every
	// nAgents/rate seconds (0.5 s at the defaults: 20× a real agent's
	// pace), so its samples are spaced to fill that period. Every sample
	// costs the store the same work at any spacing. (With -late, all data
	// is 23 h old instead: every batch lands in minutes already rolled up
	// and windows already compacted — the worst case of an agent replaying
	// its spool, not the steady state.)
	dataStart := time.Now()
	period := time.Duration(float64(nAgents) / rate * float64(time.Second))
	if late {
		dataStart, period = time.Now().Add(-23*time.Hour), 10*time.Second
	}
	spacing := period / time.Duration(len(tmpl.Samples))

	// Phase 1: batches at a fixed offered rate, open loop. Bodies are
	// encoded before the clock starts: the load generator shares the two
	// cores with the server, and encoding 20 kB batches on the fly took a
	// quarter of the CPU the server needed.
	type job struct {
		intended time.Time
		key      string
		body     []byte
	}
	encode := func(agent, seq int) (string, []byte) {
		// A shallow copy: only the identity and the sample times differ
		// from the template, and marshaling only reads the shared parts.
		b := &wire.MetricBatch{
			BatchId:     fmt.Sprintf("a%d-b%d", agent, seq),
			Sequence:    uint64(seq),
			Instance:    &wire.Instance{Service: fmt.Sprintf("svc%d", agent%50), InstanceId: fmt.Sprintf("a%d", agent), Host: "bench", GoVersion: runtime.Version()},
			Descriptors: tmpl.Descriptors,
			Samples:     make([]*wire.Sample, len(tmpl.Samples)),
		}
		t0 := dataStart.Add(time.Duration(seq) * period)
		for k, s := range tmpl.Samples {
			b.Samples[k] = &wire.Sample{TimeUnixNano: t0.Add(time.Duration(k) * spacing).UnixNano(),
				Values: s.Values, Process: s.Process, Cgroup: s.Cgroup, Settings: s.Settings}
		}
		// The agent's status and its GC cycles, as the agent sends them:
		// each cycle is a row of its own in the store.
		b.Status = &wire.AgentStatus{SpoolBytes: uint64(seq % 3 * 4096), SendFailures: uint64(seq / 1000)}
		for g := range gcPerBatch {
			b.GcCycles = append(b.GcCycles, &wire.GCCycle{
				Cycle:           uint32(seq*gcPerBatch + g + 1),
				EndTimeUnixNano: t0.Add(time.Duration(g) * period / time.Duration(gcPerBatch)).UnixNano(),
				PauseNs:         int64(80_000 + 7_000*g), HeapKnown: true,
				HeapLiveBytes: uint64(40<<20 + g<<16), HeapGoalBytes: 80 << 20,
				GcCpuSeconds: 0.004, TotalCpuSeconds: 4.0 / float64(gcPerBatch),
			})
		}
		return b.BatchId, mustMarshal(b)
	}
	_, one := encode(0, 0)
	fmt.Printf("one batch is %d bytes of protobuf\n", len(one))
	send := func(key string, body []byte) (int, error) {
		req, _ := http.NewRequest("POST", base+wire.PathPushMetrics, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		req.Header.Set("Content-Type", wire.ContentTypeProto)
		req.Header.Set(wire.HeaderIdempotencyKey, key)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}

	// Warm-up, untimed for the steady-state figure: each agent's first
	// batch creates its instance and its series rows, which a running
	// fleet did long ago.
	wstart := time.Now()
	{
		var wwg sync.WaitGroup
		agentsCh := make(chan int)
		for w := 0; w < 16; w++ {
			wwg.Add(1)
			go func() {
				defer wwg.Done()
				for a := range agentsCh {
					k, body := encode(a, 0)
					if code, err := send(k, body); err != nil || code != 200 {
						fmt.Fprintf(os.Stderr, "warm-up batch refused: %d %v\n", code, err)
					}
				}
			}()
		}
		for a := 0; a < nAgents; a++ {
			agentsCh <- a
		}
		close(agentsCh)
		wwg.Wait()
	}
	fmt.Printf("warm-up: the first batch of each of %d agents (creates instances and series) in %v: %.0f batches/s cold\n",
		nAgents, time.Since(wstart).Round(time.Millisecond), float64(nAgents)/time.Since(wstart).Seconds())

	n := int(dur.Seconds() * rate)
	pre := make([]job, n)
	if !late {
		// The bodies are encoded before the clock starts, with their sample
		// times in them: time the encoding of a few, and start the data's
		// clock when the batch phase will start, so that batches arrive
		// as fresh data, not as minutes the maintenance already rolled up.
		k := min(n, 2000)
		t := time.Now()
		for i := 0; i < k; i++ {
			encode(i%nAgents, 1+i/nAgents)
		}
		est := time.Duration(float64(time.Since(t)) * float64(n) / float64(k))
		dataStart = time.Now().Add(est*5/4 + 2*time.Second)
	}
	for i := range pre {
		pre[i].key, pre[i].body = encode(i%nAgents, 1+i/nAgents)
	}
	jobs := make(chan job, 1<<16)
	var mu sync.Mutex
	var lats []time.Duration
	type obs struct{ at, lat time.Duration } // intended send from the start, latency
	var series []obs
	var start time.Time // set before the first job is sent
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < nWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			var lobs []obs
			for j := range jobs {
				code, err := send(j.key, j.body)
				if err != nil || code != 200 {
					failed.Add(1)
					if err == nil && failed.Load() < 5 {
						fmt.Fprintf(os.Stderr, "batch refused: %d\n", code)
					}
					continue
				}
				ok.Add(1)
				lat := time.Since(j.intended)
				local = append(local, lat)
				lobs = append(lobs, obs{j.intended.Sub(start), lat})
			}
			mu.Lock()
			lats = append(lats, local...)
			series = append(series, lobs...)
			mu.Unlock()
		}()
	}
	if !late {
		if d := time.Until(dataStart); d > 0 {
			time.Sleep(d)
		} else {
			fmt.Printf("note: encoding ran %v past the data's start: the first batches are that late\n", (-d).Round(time.Millisecond))
		}
	}
	if batchprofile != "" {
		f, err := os.Create(batchprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	// The warm-up's and earlier runs' dirty pages go to disk now, not
	// during the batch phase: a collector in production has no backlog of
	// another process's writeback at an arbitrary moment.
	syscall.Sync()
	cpu0 := processCPU()
	start = time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	for i := 0; i < n; i++ {
		intended := start.Add(time.Duration(i) * interval)
		if d := time.Until(intended); d > 0 {
			time.Sleep(d)
		}
		pre[i].intended = intended
		jobs <- pre[i]
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	if batchprofile != "" {
		pprof.StopCPUProfile()
	}
	fmt.Printf("batches, steady state: offered %.0f/s for %v: %d stored, %d failed, achieved %.0f batches/s (%.0f samples/s); latency from intended send p50 %v p99 %v max %v\n",
		rate, dur, ok.Load(), failed.Load(), float64(ok.Load())/elapsed.Seconds(), float64(ok.Load())*float64(nValues)/elapsed.Seconds(),
		pct(lats, 0.5).Round(time.Microsecond), pct(lats, 0.99).Round(time.Microsecond), pct(lats, 1).Round(time.Microsecond))
	fmt.Printf("batch phase CPU (collector, its background work and the load generator together): %.1f s over %.1f s = %.2f cores, %.0f µs per stored batch\n",
		cpu.Seconds(), elapsed.Seconds(), cpu.Seconds()/elapsed.Seconds(), float64(cpu.Microseconds())/float64(max(ok.Load(), 1)))
	// Where the batch phase's bytes went, with the agent's real metric set
	// (bench/store measures the same with synthetic values, before and
	// after compaction).
	tables, err := dbsize.Tables(dir)
	if err != nil {
		return err
	}
	batches := float64(ok.Load() + int64(nAgents))
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	raw := tables["blocks"] + tables["chunks"]
	fmt.Printf("by table (dbstat): samples %.1f MiB = %.2f bytes per sample (blocks and chunks as ingested: compaction waits for a 15-min window to end), rollups %.1f MiB, GC cycles %.1f MiB = %.0f bytes per record, idempotency keys %.1f MiB = %.0f bytes per batch\n",
		mib(raw), float64(raw)/(batches*float64(nValues)), mib(tables["rollups"]+tables["rollup_hours"]),
		mib(tables["gc_cycles"]), float64(tables["gc_cycles"])/(batches*float64(max(gcPerBatch, 1))),
		mib(tables["idempotency_keys"]), float64(tables["idempotency_keys"])/batches)
	// Latency by when the batch was due, in 10 s slices: a stall shows as
	// one slice, a slow drift as a rising line.
	slices.SortFunc(series, func(a, b obs) int { return cmp.Compare(a.at, b.at) })
	fmt.Print("p99 by 10 s slice of the batch phase:")
	for lo := 0; lo < len(series); {
		slice := time.Duration(series[lo].at/(10*time.Second)) * 10 * time.Second
		hi := lo
		var l []time.Duration
		for hi < len(series) && series[hi].at < slice+10*time.Second {
			l = append(l, series[hi].lat)
			hi++
		}
		fmt.Printf(" %v:%v", slice, pct(l, 0.99).Round(time.Millisecond))
		lo = hi
	}
	fmt.Println()
	if latfile != "" {
		var buf bytes.Buffer
		for _, o := range series {
			fmt.Fprintf(&buf, "%d %d\n", o.at.Microseconds(), o.lat.Microseconds())
		}
		if err := os.WriteFile(latfile, buf.Bytes(), 0o644); err != nil {
			return err
		}
	}

	// Phase 2: bundles, identity encoding, random (incompressible) bytes.
	payload := make([]byte, bundleMB<<20)
	for i := range payload {
		payload[i] = byte(rand.Uint32())
	}
	var bundleLats []time.Duration
	bstart := time.Now()
	var bwg sync.WaitGroup
	bch := make(chan int)
	var bmu sync.Mutex
	var bfail atomic.Int64
	for w := 0; w < 4; w++ {
		bwg.Add(1)
		go func() {
			defer bwg.Done()
			for i := range bch {
				pr, pw := io.Pipe()
				id := fmt.Sprintf("bundle-%d", i)
				go func() {
					bw, err := wire.NewBundleWriter(pw)
					if err == nil {
						_, err = bw.WriteFile("heap.pb.gz", "application/vnd.google.protobuf+pprof", bytes.NewReader(payload))
					}
					if err == nil {
						err = bw.Close(&wire.BundleManifest{EventId: id, Rule: "bench", Instance: &wire.Instance{Service: "svc0", InstanceId: fmt.Sprintf("a%d", i%nAgents)}, FiredAtUnixNano: time.Now().UnixNano()})
					}
					pw.CloseWithError(err)
				}()
				t0 := time.Now()
				req, _ := http.NewRequest("POST", base+wire.PathPushBundle, pr)
				req.Header.Set("Authorization", "Bearer "+secret)
				req.Header.Set("Content-Type", wire.ContentTypeBundle)
				req.Header.Set(wire.HeaderIdempotencyKey, id)
				resp, err := client.Do(req)
				if err != nil || resp.StatusCode != 200 {
					bfail.Add(1)
					if resp != nil {
						b, _ := io.ReadAll(resp.Body)
						fmt.Fprintf(os.Stderr, "bundle refused: %d %s\n", resp.StatusCode, b)
						resp.Body.Close()
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				bmu.Lock()
				bundleLats = append(bundleLats, time.Since(t0))
				bmu.Unlock()
			}
		}()
	}
	for i := 0; i < nBundles; i++ {
		bch <- i
	}
	close(bch)
	bwg.Wait()
	bel := time.Since(bstart)
	fmt.Printf("bundles: %d × %d MiB, 4 concurrent, %d failed: %.0f MB/s (%.1f MiB/s); per bundle p50 %v p99 %v\n",
		len(bundleLats), bundleMB, bfail.Load(), float64(len(bundleLats)*bundleMB<<20)/1e6/bel.Seconds(), float64(len(bundleLats)*bundleMB)/bel.Seconds(),
		pct(bundleLats, 0.5).Round(time.Millisecond), pct(bundleLats, 0.99).Round(time.Millisecond))

	// Phase 3: 24 h of one instance at 1 sample/s of the agent's metric set,
	// queried through the API.
	now := time.Now()
	key := store.Instance{Service: "day", ID: "d1", Source: store.SourceAgent}
	t24 := now.Add(-24 * time.Hour).Add(time.Minute)
	names := []string{"/gc/heap/live:bytes", "/sched/goroutines:goroutines", "/gc/heap/goal:bytes", "/memory/classes/total:bytes"}
	for t := t24; t.Before(now); t = t.Add(10 * time.Minute) {
		var b store.Batch
		b.Instance, b.ReceivedAt = key, now
		for s := t; s.Before(t.Add(10*time.Minute)) && s.Before(now); s = s.Add(time.Second) {
			for k, nm := range names {
				b.Samples = append(b.Samples, store.Sample{Name: nm, T: s.UnixMilli(), Value: float64(1e6 + k + int(s.Unix()%1000))})
			}
		}
		if _, err := st.Append(ctx, b); err != nil {
			return fmt.Errorf("load 24 h: %w", err)
		}
	}
	if _, err := st.Maintain(ctx, now); err != nil {
		return err
	}
	q := func(url string) ([]time.Duration, int, error) {
		var d []time.Duration
		size := 0
		for i := 0; i < nQueries; i++ {
			t0 := time.Now()
			resp, err := client.Get(url)
			if err != nil {
				return nil, 0, err
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return nil, 0, fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
			}
			d = append(d, time.Since(t0))
			size = len(b)
		}
		return d, size, nil
	}
	for _, step := range []string{"1m", "5m"} {
		d, size, err := q(base + "/api/v1/instances/day/d1/series?name=/gc/heap/live:bytes&start=24h&step=" + step)
		if err != nil {
			return err
		}
		fmt.Printf("24 h series (86,400 raw samples), step %s: p50 %v p99 %v (%d-byte answer)\n", step, pct(d, 0.5).Round(time.Microsecond), pct(d, 0.99).Round(time.Microsecond), size)
	}
	d, size, err := q(base + "/api/v1/fleet")
	if err != nil {
		return err
	}
	fmt.Printf("fleet summary (%d instances, 5 metrics): p50 %v p99 %v (%d-byte answer)\n", nAgents+1, pct(d, 0.5).Round(time.Microsecond), pct(d, 0.99).Round(time.Microsecond), size)
	var dbBytes int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "gopulse.db") || strings.HasSuffix(e.Name(), ".db") || strings.Contains(e.Name(), ".db-") {
			if info, err := e.Info(); err == nil {
				dbBytes += info.Size()
			}
		}
	}
	fmt.Printf("database files after the run: %.1f MiB\n", float64(dbBytes)/(1<<20))
	return nil
}

func mustMarshal(b *wire.MetricBatch) []byte {
	out, err := proto.Marshal(b)
	if err != nil {
		panic(err)
	}
	return out
}
