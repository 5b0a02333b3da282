package sqlite

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gopulse/gopulse/store"
)

// agentPrefixes is the agent's runtime/metrics selection (as in
// bench/ingest): 65 metrics on go1.26.8, 8 of them histograms.
var agentPrefixes = []string{"/gc/", "/sched/", "/cpu/classes/", "/memory/classes/", "/sync/mutex/wait/total"}

// processFacts are the per-sample process facts the collector stores as
// scalar series beside the runtime metrics.
var processFacts = []string{
	"/process/rss:bytes", "/process/open-fds:fds", "/process/fd-limit:fds", "/process/threads:threads",
	"/process/cpu/user:cpu-seconds", "/process/cpu/system:cpu-seconds", "/runtime/gogc:percent",
	"/runtime/gomemlimit:bytes", "/runtime/gomaxprocs:threads", "/process/uptime:seconds", "/process/vms:bytes",
}

// agentShape is the metric content of one agent batch: every metric read
// at every one of n sample times, values from real runtime/metrics reads of
// this process. Boundaries slices are shared by all batches, as the
// collector's descriptor cache shares them.
type agentShape struct {
	n      int
	names  []string
	bounds [][]float64 // nil for scalars
	vals   [][]float64 // [metric][point]
	counts [][]uint64  // [metric] flat, point after point
}

func newAgentShape(n int) *agentShape {
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
	for i, d := range descs {
		ss[i].Name = d.Name
	}
	sh := &agentShape{n: n}
	for i := range ss {
		sh.names = append(sh.names, ss[i].Name)
	}
	sh.names = append(sh.names, processFacts...)
	m := len(sh.names)
	sh.bounds = make([][]float64, m)
	sh.vals = make([][]float64, m)
	sh.counts = make([][]uint64, m)
	for k := 0; k < n; k++ {
		runtime.GC() // so pause and latency histograms move between points
		metrics.Read(ss)
		for i, s := range ss {
			switch s.Value.Kind() {
			case metrics.KindUint64:
				sh.vals[i] = append(sh.vals[i], float64(s.Value.Uint64()))
			case metrics.KindFloat64:
				sh.vals[i] = append(sh.vals[i], s.Value.Float64())
			case metrics.KindFloat64Histogram:
				h := s.Value.Float64Histogram()
				if sh.bounds[i] == nil {
					sh.bounds[i] = slices.Clone(h.Buckets)
				}
				sh.counts[i] = append(sh.counts[i], h.Counts...)
			default:
				sh.vals[i] = append(sh.vals[i], 0)
			}
		}
		for j := range processFacts {
			i := len(ss) + j
			sh.vals[i] = append(sh.vals[i], float64(50<<20+k*4096+j))
		}
	}
	return sh
}

func (sh *agentShape) histograms() int {
	n := 0
	for _, b := range sh.bounds {
		if b != nil {
			n++
		}
	}
	return n
}

// shapeBatch is one reusable batch of an agentShape in both forms; at
// rewrites its times in place.
type shapeBatch struct {
	samples store.Batch
	series  store.Batch
	t       []int64
}

func (sh *agentShape) newBatch() *shapeBatch {
	sb := &shapeBatch{t: make([]int64, sh.n)}
	for i, name := range sh.names {
		sr := store.Series{Name: name, T: sb.t}
		if b := sh.bounds[i]; b != nil {
			sr.Boundaries, sr.Counts = b, sh.counts[i]
		} else {
			sr.Values = sh.vals[i]
		}
		sb.series.Series = append(sb.series.Series, sr)
	}
	// Samples in the collector's order: sample time by sample time.
	for k := 0; k < sh.n; k++ {
		for i, name := range sh.names {
			sm := store.Sample{Name: name}
			if b := sh.bounds[i]; b != nil {
				nb := len(b) - 1
				sm.Hist = &store.Histogram{Boundaries: b, Counts: sh.counts[i][k*nb : (k+1)*nb]}
			} else {
				sm.Value = sh.vals[i][k]
			}
			sb.samples.Samples = append(sb.samples.Samples, sm)
		}
	}
	return sb
}

// at points the batch at instance in, times t0, t0+1 s, ….
func (sb *shapeBatch) at(in store.Instance, t0 int64, key string) {
	for k := range sb.t {
		sb.t[k] = t0 + int64(k)*1000
	}
	m := len(sb.series.Series)
	for i := range sb.samples.Samples {
		sb.samples.Samples[i].T = sb.t[i/m]
	}
	sb.samples.Instance, sb.series.Instance = in, in
	sb.samples.Key, sb.series.Key = key, key
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAppendShape appends the agent's batch shape (65 runtime metrics
// + 11 process facts × 10 points, 8 histograms of ~100–160 buckets) as
// Samples and as Series. "prepare" is the caller-side grouping and
// encoding alone (what Append does before handing the batch to the
// writer); "append" is the whole Append against a file store with
// synchronous=FULL, 1,000 instances round-robin, 16 concurrent callers
// (so group commit works as in production), reporting the process CPU
// per batch beside the wall time.
func BenchmarkAppendShape(b *testing.B) {
	sh := newAgentShape(10)
	b.Logf("%d series, %d histograms, %d samples per batch", len(sh.names), sh.histograms(), len(sh.names)*sh.n)
	cutoff := time.Now().Add(-24 * time.Hour).UnixMilli()
	t0 := time.Now().Add(-time.Hour).UnixMilli()
	for _, form := range []string{"samples", "series"} {
		pick := func(sb *shapeBatch) store.Batch {
			if form == "samples" {
				return sb.samples
			}
			return sb.series
		}
		b.Run("prepare/"+form, func(b *testing.B) {
			sb := sh.newBatch()
			sb.at(store.Instance{}, t0, "")
			batch := pick(sb)
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := prepareForBench(batch, cutoff); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, form := range []string{"samples", "series"} {
		b.Run("append/"+form, func(b *testing.B) {
			benchAppend(b, sh, form == "series")
		})
	}
}

const benchInstances = 1000

// appendProfile profiles the timed part of the append benchmarks only: a
// plain -cpuprofile is dominated by the warm-up, which creates 76,000
// series rows.
var appendProfile = flag.String("appendprofile", "", "write a CPU profile of the timed part of BenchmarkAppendShape/append to this file")

func benchAppend(b *testing.B, sh *agentShape, series bool) {
	ctx := context.Background()
	s, err := Open(ctx, b.TempDir(), Options{Synchronous: "FULL", MinFreeBytes: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	insts := make([]store.Instance, benchInstances)
	for i := range insts {
		insts[i] = store.Instance{Service: fmt.Sprintf("svc%d", i%50), ID: fmt.Sprintf("inst-%04d", i), Host: "h", PID: int64(i), GoVersion: "go1.26.8", Source: store.SourceAgent}
	}
	t0 := floorWin(time.Now().Add(-6 * time.Hour).UnixMilli())
	var next atomic.Int64 // batch sequence number; batch i goes to instance i%1000
	run := func(sb *shapeBatch) error {
		i := next.Add(1) - 1
		round := i / benchInstances
		sb.at(insts[i%benchInstances], t0+round*int64(sh.n)*1000, fmt.Sprintf("b-%d", i))
		bt := sb.samples
		if series {
			bt = sb.series
		}
		_, err := s.Append(ctx, bt)
		return err
	}
	// Warm-up: one batch per instance creates the instances and series,
	// which production pays once per process start, not per batch.
	var wg sync.WaitGroup
	var werr atomic.Value
	for w := 0; w < 16; w++ {
		wg.Go(func() {
			sb := sh.newBatch()
			for next.Load() < benchInstances {
				if err := run(sb); err != nil {
					werr.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := werr.Load().(error); err != nil {
		b.Fatal(err)
	}
	start, cpu0 := time.Now(), cpuTime()
	b.SetParallelism(8) // 16 callers on 2 CPUs
	if *appendProfile != "" {
		f, err := os.Create(*appendProfile)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	b.ResetTimer()
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		sb := sh.newBatch()
		for pb.Next() {
			if err := run(sb); err != nil {
				b.Error(err)
				return
			}
			n.Add(1)
		}
	})
	b.StopTimer()
	if c := n.Load(); c > 0 {
		b.ReportMetric(float64(cpuTime()-cpu0)/1e3/float64(c), "cpu-µs/batch")
		b.ReportMetric(float64(c)/time.Since(start).Seconds(), "batches/s")
	}
}

// prepareForBench is what Append does before the write: a pooled preparer
// groups and encodes the batch, and goes back to the pool.
func prepareForBench(b store.Batch, cutoff int64) ([]encChunk, int, error) {
	p := preparers.Get().(*preparer)
	defer p.release()
	return p.prepare(b.Samples, b.Series, cutoff)
}
