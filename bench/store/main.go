// Command store measures the SQLite store (store/sqlite) with the shapes
// the collector sees: agent batches of 10 samples × the agent's metric set,
// from 1,000 simulated instances.
//
//	go run ./bench/store                            # defaults as documented in README.md
//	go run ./bench/store -rate 2000 -workers 256    # open loop at issue 4's target rate
//	go run ./bench/store -sync NORMAL               # acknowledge without waiting for fsync
//
// It prints a markdown table. Phases:
//  1. ingest: every instance sends -rounds batches; closed loop (-workers
//     callers back to back) or open loop (-rate batches/s, latency from
//     when each was due); batches/s, CPU per batch, Append latency p50/p99.
//  2. storage: one instance, one hour of batches into a fresh store; bytes
//     per instance-hour and per sample as ingested (blocks), after Maintain
//     compacted them, and after the raw data expired (rollups only); all
//     but the first after VACUUM.
//  3. query: one instance with 24 h of batches, then Maintain as the
//     collector runs it; QuerySeries over 24 h raw and with a 1-minute
//     step, p50/p99 and CPU per query.
//  4. fleet: Fleet over the instances of phase 1 with 5 metric names.
//
// Wall-clock percentiles on a shared machine include waiting for a CPU;
// the CPU-per-operation figures (process user+sys time) separate the
// store's own cost from that.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/gopulse/gopulse/bench/internal/dbsize"
	"github.com/gopulse/gopulse/store"
	"github.com/gopulse/gopulse/store/sqlite"
)

var (
	flagInstances  = flag.Int("instances", 1000, "simulated instances")
	flagMetrics    = flag.Int("metrics", 80, "metrics per sample (the agent ships ~65 runtime/metrics + ~17 process, cgroup and settings values)")
	flagHists      = flag.Int("hists", 8, "of which histograms (runtime/metrics has 8 in the agent's set)")
	flagBuckets    = flag.Int("buckets", 64, "buckets per histogram")
	flagRounds     = flag.Int("rounds", 3, "batches per instance in the ingest phase")
	flagWorkers    = flag.Int("workers", 16, "concurrent Append callers (with -rate: most batches in flight)")
	flagRate       = flag.Int("rate", 0, "open loop: offer this many batches/s and time each from when it was due (0 = closed loop)")
	flagSync       = flag.String("sync", "FULL", "SQLite synchronous mode: FULL or NORMAL")
	flagQueries    = flag.Int("queries", 100, "repetitions per query measurement")
	flagDir        = flag.String("dir", "", "data directory (default: a temporary one, removed at exit)")
	flagCPUProf    = flag.String("cpuprofile", "", "write a CPU profile of the measured ingest rounds")
	flagFleetProf  = flag.String("fleetprofile", "", "write a CPU profile of the fleet summary queries")
	flagIngest     = flag.Bool("ingest-only", false, "run the ingest and fleet phases only")
	flagMaintOnly  = flag.Bool("maintain-only", false, "run the steady-state Maintain phase only")
	flagMaintN     = flag.Int("maint-instances", 200, "instances in the steady-state Maintain phase (0 = skip it)")
	flagMaintMin   = flag.Int("maint-minutes", 20, "simulated minutes in the steady-state Maintain phase")
	flagMaintProf  = flag.String("maintprofile", "", "write a CPU profile of the steady-state Maintain phase")
	flagMaintEvery = flag.Duration("maintain-every", 0, "ingest phase: also run Maintain this often, as the collector does every minute (0 = not)")
)

func main() {
	flag.Parse()
	log.SetFlags(0)
	root := *flagDir
	if root == "" {
		d, err := os.MkdirTemp("", "gopulse-bench-store-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		root = d
	}
	ctx := context.Background()
	var rows [][3]string
	add := func(what, value, note string) { rows = append(rows, [3]string{what, value, note}) }
	if *flagMaintOnly {
		stop := profile(*flagMaintProf)
		maintainPhase(ctx, root, *flagMaintN, *flagMaintMin, add)
		stop()
		printTable(rows)
		return
	}

	// Phase 1: ingest.
	s := open(ctx, filepath.Join(root, "fleet"))
	now := time.Now()
	t0 := now.Add(-time.Duration(*flagRounds) * 10 * time.Second).UnixMilli()
	g := newGen(*flagMetrics, *flagHists, *flagBuckets)
	type job struct {
		inst, round int
		due         time.Time // open loop: when the agent sends it
	}
	jobs := make(chan job)
	// Open loop (-rate): the samples of a round are generated before the
	// clock starts and shared by all instances (Append only reads them), so
	// the measurement holds the store's work, not the generator's.
	var tmpl [][]store.Sample
	if *flagRate > 0 {
		for r := 0; r <= *flagRounds; r++ {
			tmpl = append(tmpl, g.batch(0, r, t0+int64(r)*10_000).Samples)
		}
	}
	lat := make([][]time.Duration, *flagWorkers)
	var wg sync.WaitGroup
	for w := 0; w < *flagWorkers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for j := range jobs {
				var b store.Batch
				t := j.due
				if tmpl != nil {
					b = g.batchOf(j.inst, j.round, tmpl[j.round])
				} else {
					b = g.batch(j.inst, j.round, t0+int64(j.round)*10_000)
					t = time.Now()
				}
				if _, err := s.Append(ctx, b); err != nil {
					log.Fatal(err)
				}
				// Open loop: from when the batch was due, so time spent
				// waiting for a free worker counts (no coordinated omission).
				lat[w] = append(lat[w], time.Since(t))
			}
		}(w)
	}
	// Round 0 registers every instance and its series (first contact,
	// once per process start); it is not measured.
	for i := 0; i < *flagInstances; i++ {
		b := g.batch(i, 0, t0-10_000)
		if _, err := s.Append(ctx, b); err != nil {
			log.Fatal(err)
		}
	}
	stopProf := profile(*flagCPUProf)
	cpu0 := cpuTime()
	start := time.Now()
	n := 0
	// -maintain-every: Maintain beside ingest, as the collector runs it.
	var maintRuns []time.Duration
	stopMaint, maintDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(maintDone)
		if *flagMaintEvery <= 0 {
			return
		}
		tick := time.NewTicker(*flagMaintEvery)
		defer tick.Stop()
		for {
			select {
			case <-stopMaint:
				return
			case <-tick.C:
			}
			t := time.Now()
			if _, err := s.Maintain(ctx, t); err != nil {
				log.Fatal(err)
			}
			maintRuns = append(maintRuns, time.Since(t))
		}
	}()
	for r := 0; r < *flagRounds; r++ {
		for i := 0; i < *flagInstances; i++ {
			j := job{inst: i, round: r + 1}
			if *flagRate > 0 {
				j.due = start.Add(time.Duration(n) * time.Second / time.Duration(*flagRate))
				if d := time.Until(j.due); d > 0 {
					time.Sleep(d)
				}
			}
			jobs <- j
			n++
		}
	}
	close(jobs)
	wg.Wait()
	el := time.Since(start)
	ingestCPU := cpuTime() - cpu0
	close(stopMaint)
	<-maintDone
	stopProf()
	all := slices.Concat(lat...)
	nb := len(all)
	samples := nb * 10 * *flagMetrics
	mode := fmt.Sprintf("closed loop: %d callers, each sending its next batch when the last is acknowledged", *flagWorkers)
	if *flagRate > 0 {
		mode = fmt.Sprintf("open loop: offered %d batches/s, up to %d in flight", *flagRate, *flagWorkers)
	}
	add("ingest", fmt.Sprintf("%.0f batches/s", float64(nb)/el.Seconds()),
		fmt.Sprintf("%d batches (%d instances × %d) of 10 × %d metrics (%d histograms of %d buckets), %s, synchronous=%s; %.0f samples/s",
			nb, *flagInstances, *flagRounds, *flagMetrics, *flagHists, *flagBuckets, mode, *flagSync, float64(samples)/el.Seconds()))
	p50, p99 := pct(all, 50), pct(all, 99)
	latNote := "per batch, from the call until acknowledged (durable)"
	if *flagRate > 0 {
		latNote = "per batch, from when it was due until acknowledged (durable): waiting for a free worker counts"
	}
	gen := "incl. generating the batches"
	if *flagRate > 0 {
		gen = "batches generated beforehand"
	}
	add("ingest CPU", fmt.Sprintf("%.2f ms per batch", float64(ingestCPU)/float64(time.Millisecond)/float64(nb)),
		fmt.Sprintf("process CPU time (user+sys, %s) ÷ batches: %.0f batches per CPU-second", gen, float64(nb)/ingestCPU.Seconds()))
	add("Append latency", fmt.Sprintf("p50 %s, p99 %s", ms(p50), ms(p99)), latNote)
	if *flagMaintEvery > 0 {
		lo, hi := time.Duration(0), time.Duration(0)
		if len(maintRuns) > 0 {
			lo, hi = slices.Min(maintRuns), slices.Max(maintRuns)
		}
		add("Maintain beside ingest", fmt.Sprintf("%d runs, each %s … %s", len(maintRuns), ms(lo), ms(hi)),
			fmt.Sprintf("every %v during the ingest phase; its CPU is in the ingest CPU above", *flagMaintEvery))
	}

	// Phase 4 (uses phase 1's store): fleet summary.
	names := []string{g.names[0], g.names[1], g.names[2], g.names[3], g.names[*flagMetrics-1]}
	var fl []time.Duration
	stopProf = profile(*flagFleetProf)
	cpu0 = cpuTime()
	for q := 0; q < *flagQueries; q++ {
		t := time.Now()
		sum, err := s.Fleet(ctx, store.FleetQuery{Names: names, Since: t0})
		if err != nil {
			log.Fatal(err)
		}
		fl = append(fl, time.Since(t))
		if len(sum) != *flagInstances || len(sum[0].Latest) != len(names) {
			log.Fatalf("fleet summary: %d rows, %d values in the first", len(sum), len(sum[0].Latest))
		}
	}
	fleetCPU := (cpuTime() - cpu0) / time.Duration(len(fl))
	stopProf()
	add("fleet summary", fmt.Sprintf("p50 %s, p99 %s", ms(pct(fl, 50)), ms(pct(fl, 99))), fmt.Sprintf("%d instances × newest value of %d metrics; %s CPU per query", *flagInstances, len(names), ms(fleetCPU)))
	// Maintain as the collector runs it each minute: rollups for every
	// instance, planned off the writer, written in transactions of ~2 ms
	// that ingest waits behind.
	mt, mc := time.Now(), cpuTime()
	mst, err := s.Maintain(ctx, time.Now())
	if err != nil {
		log.Fatal(err)
	}
	add("Maintain, whole fleet", fmt.Sprintf("%s, %s CPU", time.Since(mt).Round(time.Millisecond), (cpuTime()-mc).Round(time.Millisecond)),
		fmt.Sprintf("%d instances, %d series with new minutes rolled up (first run: %d rounds of 10 s each)", *flagInstances, mst.RolledUpSeries, *flagRounds+1))
	s.Close()
	if *flagIngest {
		printTable(rows)
		return
	}

	// Phase 2: bytes per instance-hour.
	hs := open(ctx, filepath.Join(root, "hour"))
	// One clock hour, as the store packs rollups by the hour.
	h0 := now.Add(-time.Hour).Truncate(time.Hour).UnixMilli()
	before := used(ctx, filepath.Join(root, "hour"))
	for r := 0; r < 360; r++ {
		if _, err := hs.Append(ctx, g.batch(0, r, h0+int64(r)*10_000)); err != nil {
			log.Fatal(err)
		}
	}
	hs.Close()
	fresh := used(ctx, filepath.Join(root, "hour")) - before
	keys := keyBytes(filepath.Join(root, "hour"))
	hourSamples := 360 * 10 * *flagMetrics
	add("full resolution, as ingested", fmt.Sprintf("%.0f KiB per instance-hour", float64(fresh)/1024),
		fmt.Sprintf("%.2f bytes/sample over %d samples (1 s sampling; histograms count as one sample): one block row per batch, before compaction", float64(fresh)/float64(hourSamples), hourSamples))
	// Maintain, as the collector runs it every minute, compacts the blocks
	// of finished 15-minute windows into per-series chunks: that is how
	// all but the newest ~17 minutes of the 24 h are stored.
	hs = open(ctx, filepath.Join(root, "hour"))
	if _, err := hs.Maintain(ctx, now.Add(20*time.Minute)); err != nil {
		log.Fatal(err)
	}
	hs.Close()
	vacuum(ctx, filepath.Join(root, "hour"))
	raw := used(ctx, filepath.Join(root, "hour")) - before
	add("full resolution, compacted", fmt.Sprintf("%.0f KiB per instance-hour", float64(raw)/1024),
		fmt.Sprintf("%.2f bytes/sample, rollups of the hour included (VACUUMed); Prometheus: ~1.3", float64(raw)/float64(hourSamples)))
	hs = open(ctx, filepath.Join(root, "hour"))
	if _, err := hs.Maintain(ctx, now.Add(26*time.Hour)); err != nil {
		log.Fatal(err)
	}
	hs.Close()
	vacuum(ctx, filepath.Join(root, "hour"))
	roll := used(ctx, filepath.Join(root, "hour")) - before
	add("1-minute rollups", fmt.Sprintf("%.0f KiB per instance-hour", float64(roll)/1024),
		fmt.Sprintf("after the raw hour expired (VACUUMed; minutes packed by the hour, idempotency keys included); %.2f bytes per raw sample it summarises, %.0f bytes per series-minute", float64(roll)/float64(hourSamples), float64(roll)/float64(60**flagMetrics)))
	keyDays := store.Retention{}.WithDefaults().Idempotency.Hours()
	add("idempotency keys", fmt.Sprintf("%.0f KiB per instance-hour", float64(keys)/1024),
		fmt.Sprintf("360 batch keys (table and indexes, from dbstat), %.0f bytes each; kept %.0f h; counted in each figure above", float64(keys)/360, keyDays))
	// raw and roll both hold the hour's keys: raw−roll is the samples alone.
	day := float64(raw-roll)*24 + float64(roll-keys)*24*14 + float64(keys)*keyDays
	add("steady state", fmt.Sprintf("%.0f MiB per instance", day/(1<<20)), fmt.Sprintf("24 h raw + 14 days of rollups + %.0f h of keys; × 1,000 instances = %.1f GiB", keyDays, day*1000/(1<<30)))

	// Phase 3: 24 h query for one instance.
	ds := open(ctx, filepath.Join(root, "day"))
	d0 := floorMin(now.Add(-24*time.Hour + time.Minute).UnixMilli())
	qs := time.Now()
	for r := 0; r < 8640; r++ {
		if _, err := ds.Append(ctx, g.batch(0, r, d0+int64(r)*10_000)); err != nil {
			log.Fatal(err)
		}
	}
	log.Printf("24 h of one instance ingested sequentially in %s", time.Since(qs).Round(time.Millisecond))
	key := store.InstanceKey{Service: "svc0", ID: "inst0"}
	measure := func(label string, q store.SeriesQuery, wantMin int) {
		var d []time.Duration
		n := 0
		c0 := cpuTime()
		for i := 0; i < *flagQueries; i++ {
			t := time.Now()
			pts, err := ds.QuerySeries(ctx, q)
			if err != nil {
				log.Fatal(err)
			}
			d = append(d, time.Since(t))
			n = len(pts)
		}
		if n < wantMin {
			log.Fatalf("%s: %d points, want ≥ %d", label, n, wantMin)
		}
		c := (cpuTime() - c0) / time.Duration(len(d))
		add(label, fmt.Sprintf("p50 %s, p99 %s", ms(pct(d, 50)), ms(pct(d, 99))), fmt.Sprintf("%d points returned; %s CPU per query", n, ms(c)))
	}
	// The collector runs Maintain every minute; here once, at the end:
	// it rolls up the minutes and compacts the blocks of the finished
	// 15-minute windows, leaving the newest in blocks, as in steady state.
	ms0 := time.Now()
	if _, err := ds.Maintain(ctx, now); err != nil {
		log.Fatal(err)
	}
	log.Printf("Maintain over the 24 h: %s", time.Since(ms0).Round(time.Millisecond))
	q := store.SeriesQuery{Instance: key, Name: g.names[0], Start: d0, End: d0 + 86_400_000}
	measure("24 h series, raw", q, 86_000)
	q.Name = g.names[2] // a gauge: XOR-encoded values
	measure("24 h gauge series, raw", q, 86_000)
	q.Name = g.names[0]
	q.Step = 60_000
	q.Start++ // not minute-aligned: answered from the raw samples
	measure("24 h series, 1 min step (raw)", q, 1439)
	q.Start--
	measure("24 h series, 1 min step (rollups)", q, 1439)
	q.Name = g.names[*flagMetrics-1]
	q.Step = 0
	measure("24 h histogram series, raw", q, 86_000)
	ds.Close()

	// Phase 5: Maintain in steady state.
	if *flagMaintN > 0 {
		maintainPhase(ctx, root, *flagMaintN, *flagMaintMin, add)
	}
	printTable(rows)
}

// cpuTime is the process's user+system CPU time. On a shared machine the
// wall-clock percentiles include waiting for a CPU; this separates the
// store's own cost from that.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// profile starts a CPU profile into path ("" = none) and returns its stop.
func profile(path string) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		log.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

func printTable(rows [][3]string) {
	fmt.Printf("| measure | result | conditions |\n|---|---|---|\n")
	for _, r := range rows {
		fmt.Printf("| %s | %s | %s |\n", r[0], r[1], r[2])
	}
}

func open(ctx context.Context, dir string) *sqlite.Store {
	s, err := sqlite.Open(ctx, dir, sqlite.Options{Synchronous: *flagSync})
	if err != nil {
		log.Fatal(err)
	}
	return s
}

// used is the size of the database files (db + WAL) in dir.
func used(ctx context.Context, dir string) int64 {
	var n int64
	for _, f := range []string{"gopulse.db", "gopulse.db-wal"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err == nil {
			n += st.Size()
		}
	}
	return n
}

// keyBytes is the size of the idempotency key table and its indexes in
// the closed store at dir.
func keyBytes(dir string) int64 {
	t, err := dbsize.Tables(dir)
	if err != nil {
		log.Fatalf("measure idempotency keys: %v", err)
	}
	return t["idempotency_keys"]
}

func vacuum(ctx context.Context, dir string) {
	s, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Vacuum(ctx); err != nil {
		log.Fatal(err)
	}
	s.Close()
}

type gen struct {
	names  []string
	hists  int
	bounds []float64
	rng    *rand.Rand
	mu     sync.Mutex
}

func newGen(metrics, hists, buckets int) *gen {
	g := &gen{hists: hists, rng: rand.New(rand.NewPCG(1, 2))}
	for i := 0; i < metrics; i++ {
		if i >= metrics-hists {
			g.names = append(g.names, fmt.Sprintf("/bench/hist%d:seconds", i))
		} else {
			g.names = append(g.names, fmt.Sprintf("/bench/metric%d:bytes", i))
		}
	}
	g.bounds = append(g.bounds, math.Inf(-1))
	for b := 1; b < buckets; b++ {
		g.bounds = append(g.bounds, math.Pow(2, float64(b-buckets/2))*1e-6)
	}
	g.bounds = append(g.bounds, math.Inf(1))
	return g
}

// batch shapes values like the runtime's: a third constant (settings,
// limits), a third counters growing by irregular amounts, a third gauges
// moving around a level; histograms cumulative with a few buckets moving.
func (g *gen) batch(inst, round int, t0 int64) store.Batch {
	b := store.Batch{
		Key:      fmt.Sprintf("b-%d-%d", inst, round),
		Instance: store.Instance{Service: fmt.Sprintf("svc%d", inst%50), ID: fmt.Sprintf("inst%d", inst), Host: "host", PID: int64(1000 + inst), GoVersion: "go1.26.8", Source: store.SourceAgent},
		Samples:  make([]store.Sample, 0, 10*len(g.names)),
	}
	nb := len(g.bounds) - 1
	for k := 0; k < 10; k++ {
		t := t0 + int64(k)*1000 + int64(k%3) // sampling jitter
		step := int64(round*10 + k)
		for m, name := range g.names {
			s := store.Sample{Name: name, T: t}
			switch {
			case m >= len(g.names)-g.hists:
				counts := make([]uint64, nb)
				for i := range counts {
					if i > nb/3 && i < nb/3+6 {
						counts[i] = uint64(step * int64(7+i+m))
					}
				}
				s.Hist = &store.Histogram{Boundaries: g.bounds, Counts: counts}
			case m%3 == 0:
				s.Value = float64(1 << 30)
			case m%3 == 1:
				s.Value = float64(step*int64(4096+m) + int64(inst)*int64(step%7))
			default:
				s.Value = 5e7 + float64((step*7919+int64(m)*104729)%100_000)*13.0
			}
			b.Samples = append(b.Samples, s)
		}
	}
	return b
}

// batchOf is batch with the round's shared samples (open loop).
func (g *gen) batchOf(inst, round int, samples []store.Sample) store.Batch {
	return store.Batch{
		Key:      fmt.Sprintf("b-%d-%d", inst, round),
		Instance: store.Instance{Service: fmt.Sprintf("svc%d", inst%50), ID: fmt.Sprintf("inst%d", inst), Host: "host", PID: int64(1000 + inst), GoVersion: "go1.26.8", Source: store.SourceAgent},
		Samples:  samples,
	}
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func floorMin(t int64) int64 { return t - t%60000 }
