package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gopulse/gopulse/collector"
	"github.com/gopulse/gopulse/store"
	"github.com/gopulse/gopulse/store/sqlite"
)

// realBuckets returns the runtime's own bucket boundaries of a histogram
// metric, so the seeded histograms have the size real ones have.
func realBuckets(name string) []float64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return append([]float64(nil), s[0].Value.Float64Histogram().Buckets...)
}

// seedWeek writes 7 days of one agent instance through the store API, a
// day at a time under a clock that moves with the data, running the
// store's maintenance after each day so that, as on a real server, only
// the last 24 h stay raw and the rest are 1-minute rollups. Readings are
// every 30 s, every 10 s in the last day.
func seedWeek(ctx context.Context, st *sqlite.Store, clock *atomic.Int64, key store.InstanceKey, now time.Time) error {
	pb, lb := realBuckets("/sched/pauses/total/gc:seconds"), realBuckets("/sched/latencies:seconds")
	pc, lc := make([]uint64, len(pb)-1), make([]uint64, len(lb)-1)
	var cycle uint32
	k := 0
	start := now.Add(-7 * 24 * time.Hour)
	for day := start; day.Before(now); day = day.Add(24 * time.Hour) {
		end := day.Add(24 * time.Hour)
		if end.After(now) {
			end = now
		}
		step := 30 * time.Second
		if now.Sub(day) <= 24*time.Hour {
			step = 10 * time.Second
		}
		b := store.Batch{Instance: store.Instance{Service: key.Service, ID: key.ID, Source: store.SourceAgent, GoVersion: "go1.26.8", Host: "web-1", PID: 4242}, ReceivedAt: end}
		for t := day; t.Before(end); t = t.Add(step) {
			k++
			ms := t.UnixMilli()
			x := float64(k)
			wave := 1 + 0.3*math.Sin(x/200)
			add := func(name string, v float64) { b.Samples = append(b.Samples, store.Sample{Name: name, T: ms, Value: v}) }
			add("/gc/heap/live:bytes", 120e6*wave+x*50)
			add("/gc/heap/goal:bytes", 240e6*wave+x*100)
			add("/gc/gomemlimit:bytes", 1<<30)
			add("/process/rss:bytes", 400e6*wave)
			add("/cpu/classes/total:cpu-seconds", 2*30*x)
			add("/cpu/classes/idle:cpu-seconds", 30*x)
			add("/cpu/classes/gc/total:cpu-seconds", 30*x*(0.04+0.02*math.Sin(x/300)+0.02))
			g := 200 + 50*math.Sin(x/500) + x/100
			add("/sched/goroutines:goroutines", math.Round(g))
			add("/sched/goroutines/running:goroutines", 2)
			add("/sched/goroutines/runnable:goroutines", float64(k%5))
			add("/sched/goroutines/waiting:goroutines", math.Round(g)-2)
			for j := 0; j < 3; j++ {
				pc[40+(k*7+j*13)%60]++
				lc[20+(k*5+j*11)%80] += 10
			}
			b.Samples = append(b.Samples,
				store.Sample{Name: "/sched/pauses/total/gc:seconds", T: ms, Hist: &store.Histogram{Boundaries: pb, Counts: append([]uint64(nil), pc...)}},
				store.Sample{Name: "/sched/latencies:seconds", T: ms, Hist: &store.Histogram{Boundaries: lb, Counts: append([]uint64(nil), lc...)}})
			cycle++
			b.GCCycles = append(b.GCCycles, store.GCCycle{Cycle: cycle, EndTime: ms, PauseNs: int64(100_000 + (k%97)*20_000)})
		}
		clock.Store(end.UnixMilli())
		if _, err := st.Append(ctx, b); err != nil {
			return fmt.Errorf("append day %s: %w", day.Format(time.DateOnly), err)
		}
		if _, err := st.Maintain(ctx, end); err != nil {
			return fmt.Errorf("maintain at %s: %w", end.Format(time.DateTime), err)
		}
	}
	return nil
}

// seedFleet writes 15 min of readings every 10 s for n agent instances,
// and opens a goroutine-leak finding on every 50th.
func seedFleet(ctx context.Context, st store.Store, n int, now time.Time) error {
	for i := range n {
		key := store.InstanceKey{Service: fmt.Sprintf("svc-%02d", i%50), ID: fmt.Sprintf("inst-%04d", i)}
		b := store.Batch{Instance: store.Instance{Service: key.Service, ID: key.ID, Source: store.SourceAgent, Host: fmt.Sprintf("host-%d", i)}, ReceivedAt: now}
		for j := range 90 {
			ms := now.Add(-time.Duration(89-j) * 10 * time.Second).UnixMilli()
			x := float64(j)
			add := func(name string, v float64) { b.Samples = append(b.Samples, store.Sample{Name: name, T: ms, Value: v}) }
			add("/sched/goroutines:goroutines", float64(50+i%700+j*(i%3)))
			add("/gc/heap/live:bytes", float64(20+i%300)*1e6)
			add("/gc/gomemlimit:bytes", 512e6)
			add("/cpu/classes/total:cpu-seconds", 20*x)
			add("/cpu/classes/idle:cpu-seconds", 10*x)
			add("/cpu/classes/gc/total:cpu-seconds", 10*x*float64(i%40)/100)
			b.GCCycles = append(b.GCCycles, store.GCCycle{Cycle: uint32(j + 1), EndTime: ms, PauseNs: int64(50_000 + (i%97)*10_000 + j*1000)})
		}
		if _, err := st.Append(ctx, b); err != nil {
			return fmt.Errorf("append %s/%s: %w", key.Service, key.ID, err)
		}
		if i%50 == 0 {
			if _, err := st.Observe(ctx, store.Observation{Instance: key, Kind: collector.KindGoroutineLeak, Key: "g", Severity: "error",
				Title: fmt.Sprintf("%d goroutines leak in main.worker (chan receive)", 100+i), At: now}); err != nil {
				return err
			}
		}
	}
	return nil
}

// putTraceBundle stores a bundle with a real execution trace (the
// analyze/trace fixture) and a heap profile of this process.
func putTraceBundle(ctx context.Context, st store.Store, key store.InstanceKey, at time.Time) (string, error) {
	tr, err := os.ReadFile("../../analyze/trace/testdata/start.trace")
	if err != nil {
		return "", err
	}
	var heap bytes.Buffer
	if err := pprof.Lookup("heap").WriteTo(&heap, 0); err != nil {
		return "", err
	}
	bw, err := st.BeginBundle(ctx)
	if err != nil {
		return "", err
	}
	if _, err := bw.WriteFile(ctx, "heap.pb.gz", "application/vnd.google.protobuf+pprof", &heap); err != nil {
		return "", err
	}
	if _, err := bw.WriteFile(ctx, "trace.out", "application/vnd.go.trace", bytes.NewReader(tr)); err != nil {
		return "", err
	}
	id := "gc-pause-" + strconv.FormatInt(at.UnixMilli(), 10)
	_, err = bw.Commit(ctx, store.Bundle{ID: id, Instance: key, Rule: "gc-pause", Reason: "GC pause 61 ms ≥ 50 ms", FiredAt: at, ReceivedAt: at,
		Values: []store.RuleValue{{Name: "/sched/pauses/total/gc:seconds p100", Value: 0.061, Threshold: 0.05, Unit: "s"}}})
	return id, err
}

// TestRenderSpeedRealStore measures the fleet page of 1,000 instances and
// the instance page over 7 days against a real collector whose SQLite
// store was seeded through the store API (rollups past the last 24 h, as
// retention leaves them), in headless Chromium. It logs the figures and
// with GOPULSE_SPEED_LIMIT=1 fails above 1 s. It also checks the bundle page's trace summary.
func TestRenderSpeedRealStore(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	now := time.Now().Truncate(time.Second)
	var clock atomic.Int64
	clock.Store(now.Add(-7 * 24 * time.Hour).UnixMilli())
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{Synchronous: "NORMAL", Now: func() time.Time { return time.UnixMilli(clock.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	week := store.InstanceKey{Service: "web", ID: "web-1"}
	t0 := time.Now()
	if err := seedWeek(ctx, st, &clock, week, now); err != nil {
		t.Fatal(err)
	}
	t.Logf("seeded 7 days of %s/%s in %v", week.Service, week.ID, time.Since(t0).Round(time.Millisecond))
	clock.Store(now.UnixMilli())
	t0 = time.Now()
	if err := seedFleet(ctx, st, 999, now); err != nil {
		t.Fatal(err)
	}
	t.Logf("seeded 999 more instances × 15 min in %v", time.Since(t0).Round(time.Millisecond))
	bid, err := putTraceBundle(ctx, st, week, now.Add(-20*time.Minute))
	if err != nil {
		t.Fatal(err)
	}

	// A real collector, as `gopulse server` runs it; the analysis interval
	// is long so no pass competes with the measurement.
	c, err := collector.New(collector.Config{Store: st, AnalyzeInterval: time.Hour, MaintainInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReady()
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()

	b := newBrowser(t)
	var state string
	fleet := b.bestReady(t, "fleet", srv.URL+"/")
	var rows int
	b.run(t, "rows", chromedp.Evaluate(`document.querySelectorAll('#fleet tbody tr[data-k]').length`, &rows))
	if rows != 1000 {
		t.Errorf("fleet shows %d rows, want 1000", rows)
	}
	inst := b.bestReady(t, "instance", srv.URL+"/instance/web/web-1?range=168h")
	var points int
	b.run(t, "points", chromedp.Evaluate(`+document.body.dataset.points`, &points))
	if points < 1000 {
		t.Errorf("instance page over 7 days draws %d points", points)
	}
	t.Logf("real store: fleet 1000 instances %.0f ms; instance 7 days (%d points over all charts) %.0f ms", fleet, points, inst)
	// A time limit fails only on request (GOPULSE_SPEED_LIMIT=1, as the
	// speed measurement in docs/BENCHMARKS.md runs it): on a shared machine
	// the same page takes 0.6 s or 1.1 s, and CI must not turn on that.
	if os.Getenv("GOPULSE_SPEED_LIMIT") == "1" && (fleet > 1000 || inst > 1000) {
		t.Errorf("render too slow on the real store: fleet %.0f ms, instance %.0f ms; want < 1000 ms each", fleet, inst)
	}

	// The bundle page summarises the real trace.
	var stw, lw int
	b.run(t, "bundle with trace", chromedp.Navigate(srv.URL+"/bundle/"+bid), waitReady("bundle", &state),
		waitJS(`!!document.querySelector('#trace table.stw')`),
		chromedp.Evaluate(`+document.querySelector('#trace').dataset.gcStw`, &stw),
		chromedp.Evaluate(`document.querySelectorAll('#trace table.waiting tbody tr').length`, &lw))
	if stw < 1 || lw < 1 {
		t.Errorf("trace summary: %d GC stop-the-world periods, %d blocked goroutines listed", stw, lw)
	}
	b.checkClean(t, "bundle (trace)")
	if dir := os.Getenv("GOPULSE_SCREENSHOTS"); dir != "" {
		b.shot(t, dir, "bundle-trace")
		b.run(t, "instance 7d", chromedp.Navigate(srv.URL+"/instance/web/web-1?range=168h"), waitReady("instance", &state))
		b.shot(t, dir, "instance-7d")
		b.run(t, "fleet", chromedp.Navigate(srv.URL+"/"), waitReady("fleet", &state))
		b.shot(t, dir, "fleet-1000")
	}
}
