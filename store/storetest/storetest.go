// Package storetest is the conformance suite every store.Store
// implementation runs:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
//	}
//
// open must return an empty store that the suite may close; it is called
// once per subtest. The suite uses sample times near time.Now, so the
// store's clock must be the real one.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopulse/gopulse/store"
)

// Run runs the conformance suite.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Instances", testInstances},
		{"SeriesRoundTrip", testSeriesRoundTrip},
		{"RangeBounds", testRangeBounds},
		{"Step", testStep},
		{"Histogram", testHistogram},
		{"Series", testSeries},
		{"SeriesEquivalence", testSeriesEquivalence},
		{"Duplicates", testDuplicates},
		{"Idempotency", testIdempotency},
		{"Invalid", testInvalid},
		{"GCCycles", testGC},
		{"Fleet", testFleet},
		{"Bundles", testBundles},
		{"BundleManifest", testBundleManifest},
		{"FindingLifecycle", testFindings},
		{"Goroutines", testGoroutines},
		{"Tokens", testTokens},
		{"Retention", testRetention},
		{"Concurrency", testConcurrency},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			defer s.Close()
			tc.fn(t, s)
		})
	}
}

// RunFull checks ErrFull behaviour. open must return an empty store whose
// metric size cap is at most 1 MiB and whose bundle size cap is 64 KiB.
func RunFull(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	s := open(t)
	defer s.Close()
	base := time.Now().Add(-time.Hour).UnixMilli()
	var stored []int
	var fullErr error
	for i := 0; i < 5000 && fullErr == nil; i++ {
		b := batch(fmt.Sprintf("full-%d", i), inst("full", "a"), base+int64(i)*10_000, 10, 50)
		_, err := s.Append(ctx, b)
		switch {
		case err == nil:
			stored = append(stored, i)
		case errors.Is(err, store.ErrFull):
			fullErr = err
		default:
			t.Fatalf("append %d: %v, want nil or ErrFull", i, err)
		}
	}
	if fullErr == nil {
		t.Fatal("5000 batches fitted under the size cap: no ErrFull")
	}
	if len(stored) == 0 {
		t.Fatalf("the very first batch hit the cap: %v", fullErr)
	}
	t.Logf("ErrFull after %d batches: %v", len(stored), fullErr)
	// Everything acknowledged before is intact and readable.
	pts, err := s.QuerySeries(ctx, store.SeriesQuery{Instance: store.InstanceKey{Service: "full", ID: "a"}, Name: metricName(0), Start: base, End: base + int64(len(stored))*10_000 + 10_000})
	if err != nil {
		t.Fatal(err)
	}
	if want := len(stored) * 10; len(pts) != want {
		t.Fatalf("after ErrFull: %d points of metric 0, want %d", len(pts), want)
	}
	// A bundle larger than the bundle cap is refused with ErrFull, and
	// nothing of it is left.
	w, err := s.BeginBundle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.WriteFile(ctx, "big", "application/octet-stream", io.LimitReader(zeros{}, 65<<10))
	if !errors.Is(err, store.ErrFull) {
		t.Fatalf("bundle over the cap: %v, want ErrFull", err)
	}
	if err := w.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	// Bundles within the cap evict the oldest ones.
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("evict-%d", i)
		putBundle(t, s, id, inst("full", "a"), map[string][]byte{"f": bytes.Repeat([]byte{byte(i)}, 30<<10)}, time.Now().Add(time.Duration(i)*time.Second))
	}
	if _, err := s.GetBundle(ctx, "evict-0"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("oldest bundle past the cap: %v, want ErrNotFound (evicted)", err)
	}
	for _, id := range []string{"evict-1", "evict-2"} {
		if _, err := s.GetBundle(ctx, id); err != nil {
			t.Fatalf("bundle %s within the cap: %v", id, err)
		}
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func inst(service, id string) store.Instance {
	return store.Instance{Service: service, ID: id, Host: "h1", PID: 42, GoVersion: "go1.26.8", Source: store.SourceAgent, Labels: map[string]string{"zone": "a"}}
}

func metricName(i int) string { return fmt.Sprintf("/test/metric%d:bytes", i) }

// batch makes n samples per metric at 1 s spacing from t0 for m metrics;
// metric j's value at sample k is j*1000+k.
func batch(key string, in store.Instance, t0 int64, n, m int) store.Batch {
	b := store.Batch{Key: key, Instance: in, ReceivedAt: time.Now()}
	for k := 0; k < n; k++ {
		for j := 0; j < m; j++ {
			b.Samples = append(b.Samples, store.Sample{Name: metricName(j), T: t0 + int64(k)*1000, Value: float64(j*1000 + k)})
		}
	}
	return b
}

func mustAppend(t *testing.T, s store.Store, b store.Batch) store.AppendResult {
	t.Helper()
	res, err := s.Append(context.Background(), b)
	if err != nil {
		t.Fatalf("append %q: %v", b.Key, err)
	}
	return res
}

func key(in store.Instance) store.InstanceKey { return in.Key() }

func testInstances(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Now().Truncate(time.Millisecond).UTC()
	a := inst("svc-b", "i1")
	a.StartTime = t0.Add(-time.Hour)
	if err := s.UpsertInstance(ctx, a, t0); err != nil {
		t.Fatal(err)
	}
	a2 := a
	a2.Host = "h2"
	if err := s.UpsertInstance(ctx, a2, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// LastSeen never moves back.
	if err := s.UpsertInstance(ctx, a2, t0.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	b := inst("svc-a", "i9")
	b.Source = store.SourceScraped
	if err := s.UpsertInstance(ctx, b, t0); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetInstance(ctx, key(a))
	if err != nil {
		t.Fatal(err)
	}
	if got.Host != "h2" || got.PID != 42 || got.GoVersion != "go1.26.8" || got.Labels["zone"] != "a" || got.Source != store.SourceAgent {
		t.Errorf("instance round trip: %+v", got)
	}
	if !got.FirstSeen.Equal(t0) || !got.LastSeen.Equal(t0.Add(time.Minute)) || !got.StartTime.Equal(a.StartTime) {
		t.Errorf("times: first %v last %v start %v; want %v, %v, %v", got.FirstSeen, got.LastSeen, got.StartTime, t0, t0.Add(time.Minute), a.StartTime)
	}
	if _, err := s.GetInstance(ctx, store.InstanceKey{Service: "svc-b", ID: "nope"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing instance: %v, want ErrNotFound", err)
	}
	list, err := s.ListInstances(ctx, "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Service != "svc-a" || list[1].Service != "svc-b" {
		t.Errorf("ListInstances order: %+v", list)
	}
	list, _ = s.ListInstances(ctx, "", t0.Add(30*time.Second))
	if len(list) != 1 || list[0].ID != "i1" {
		t.Errorf("ListInstances since: %+v", list)
	}
	svcs, err := s.ListServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 2 || svcs[0].Name != "svc-a" || svcs[1].Instances != 1 || !svcs[1].LastSeen.Equal(t0.Add(time.Minute)) {
		t.Errorf("ListServices: %+v", svcs)
	}
	if err := s.UpsertInstance(ctx, store.Instance{Service: "x", Source: store.SourceAgent}, t0); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("instance without ID: %v, want ErrInvalid", err)
	}
}

func testSeriesRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := inst("svc", "i1")
	t0 := time.Now().Add(-10 * time.Minute).UnixMilli()
	values := []float64{0, 1, 1, -5, 1e300, math.Pi, 123456789012, 0.1, math.Inf(1), 7, 7, 8}
	b := store.Batch{Key: "k1", Instance: in}
	for i, v := range values {
		// Reverse order: the store sorts.
		j := len(values) - 1 - i
		b.Samples = append(b.Samples, store.Sample{Name: "/v:x", T: t0 + int64(j)*997, Value: values[j]})
		_ = v
	}
	mustAppend(t, s, b)
	pts, err := s.QuerySeries(ctx, store.SeriesQuery{Instance: key(in), Name: "/v:x", Start: t0, End: t0 + 1e6})
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != len(values) {
		t.Fatalf("%d points, want %d", len(pts), len(values))
	}
	for i, p := range pts {
		if p.T != t0+int64(i)*997 || p.Value != values[i] || p.Count != 1 || p.Min != p.Value || p.Max != p.Value {
			t.Errorf("point %d = %+v, want T=%d V=%v", i, p, t0+int64(i)*997, values[i])
		}
	}
	names, err := s.SeriesNames(ctx, key(in))
	if err != nil || len(names) != 1 || names[0] != "/v:x" {
		t.Errorf("SeriesNames = %v, %v", names, err)
	}
	// Unknown series: empty, no error.
	pts, err = s.QuerySeries(ctx, store.SeriesQuery{Instance: key(in), Name: "/nope:x", Start: t0, End: t0 + 1e6})
	if err != nil || len(pts) != 0 {
		t.Errorf("unknown series: %v, %v", pts, err)
	}
}

func testRangeBounds(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := inst("svc", "i1")
	t0 := time.Now().Add(-10 * time.Minute).UnixMilli()
	mustAppend(t, s, batch("", in, t0, 10, 1)) // t0 … t0+9000
	cases := []struct {
		start, end int64
		want       int
	}{
		{t0, t0 + 9000, 9},        // end exclusive
		{t0, t0 + 9001, 10},       // includes the last
		{t0 + 1, t0 + 9001, 9},    // start inclusive: t0 excluded
		{t0 + 1000, t0 + 1000, 0}, // empty range
		{t0 - 5000, t0, 0},
		{t0 + 3000, t0 + 3001, 1},
	}
	for _, c := range cases {
		pts, err := s.QuerySeries(ctx, store.SeriesQuery{Instance: key(in), Name: metricName(0), Start: c.start, End: c.end})
		if err != nil {
			t.Fatal(err)
		}
		if len(pts) != c.want {
			t.Errorf("[%d, %d): %d points, want %d", c.start-t0, c.end-t0, len(pts), c.want)
		}
	}
	if _, err := s.QuerySeries(ctx, store.SeriesQuery{Instance: key(in), Name: metricName(0), Start: t0, End: t0 - 1}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("End < Start: %v, want ErrInvalid", err)
	}
}

func testStep(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := inst("svc", "i1")
	t0 := time.Now().Add(-30*time.Minute).UnixMilli() / 60000 * 60000
	mustAppend(t, s, batch("", in, t0, 120, 1)) // values 0..119, 1 per second, 2 minutes
	cases := []struct {
		step  int64
		wantN int
		first store.Point
	}{
		{10_000, 12, store.Point{T: t0, Value: 9, LastT: t0 + 9_000, Min: 0, Max: 9, Sum: 45, Count: 10}},
		{60_000, 2, store.Point{T: t0, Value: 59, LastT: t0 + 59_000, Min: 0, Max: 59, Sum: 1770, Count: 60}},
		{3_600_000, 1, store.Point{T: t0, Value: 119, LastT: t0 + 119_000, Min: 0, Max: 119, Sum: 7140, Count: 120}},
	}
	for _, c := range cases {
		pts, err := s.QuerySeries(ctx, store.SeriesQuery{Instance: key(in), Name: metricName(0), Start: t0, End: t0 + 3_600_000, Step: c.step})
		if err != nil {
			t.Fatal(err)
		}
		if len(pts) != c.wantN {
			t.Fatalf("step %d: %d points, want %d", c.step, len(pts), c.wantN)
		}
		if pts[0] != c.first {
			t.Errorf("step %d: first point %+v, want %+v", c.step, pts[0], c.first)
		}
	}
	// The same after Maintain has rolled the minutes up.
	if _, err := s.Maintain(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	pts, err := s.QuerySeries(ctx, store.SeriesQuery{Instance: key(in), Name: metricName(0), Start: t0, End: t0 + 3_600_000, Step: 60_000})
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 2 || pts[1] != (store.Point{T: t0 + 60000, Value: 119, LastT: t0 + 119_000, Min: 60, Max: 119, Sum: 5370, Count: 60}) {
		t.Errorf("after rollup: %+v", pts)
	}
}

func testHistogram(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := inst("svc", "i1")
	t0 := time.Now().Add(-5 * time.Minute).UnixMilli()
	bounds := []float64{math.Inf(-1), 0, 1e-6, 1e-3, 1, math.Inf(1)}
	b := store.Batch{Instance: in}
	counts := []uint64{0, 0, 0, 0, 0}
	var want [][]uint64
	for k := 0; k < 20; k++ {
		counts = append([]uint64(nil), counts...)
		counts[k%5] += uint64(k * 1000)
		counts[2]++
		want = append(want, counts)
		b.Samples = append(b.Samples, store.Sample{Name: "/sched/latencies:seconds", T: t0 + int64(k)*1000, Hist: &store.Histogram{Boundaries: bounds, Counts: counts}})
	}
	mustAppend(t, s, b)
	pts, err := s.QuerySeries(ctx, store.SeriesQuery{Instance: key(in), Name: "/sched/latencies:seconds", Start: t0, End: t0 + 60_000})
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 20 {
		t.Fatalf("%d histogram points, want 20", len(pts))
	}
	for k, p := range pts {
		if p.Hist == nil || fmt.Sprint(p.Hist.Counts) != fmt.Sprint(want[k]) || fmt.Sprint(p.Hist.Boundaries) != fmt.Sprint(bounds) {
			t.Fatalf("point %d: %+v, want counts %v", k, p.Hist, want[k])
		}
	}
	// A scalar sample for a histogram series, or other boundaries: ErrConflict.
	_, err = s.Append(ctx, store.Batch{Instance: in, Samples: []store.Sample{{Name: "/sched/latencies:seconds", T: t0 + 100_000, Value: 1}}})
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("scalar into histogram series: %v, want ErrConflict", err)
	}
	_, err = s.Append(ctx, store.Batch{Instance: in, Samples: []store.Sample{{Name: "/sched/latencies:seconds", T: t0 + 100_000, Hist: &store.Histogram{Boundaries: []float64{0, 1}, Counts: []uint64{3}}}}})
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("other boundaries: %v, want ErrConflict", err)
	}
	// Stepped: the last cumulative histogram of each bucket.
	pts, err = s.QuerySeries(ctx, store.SeriesQuery{Instance: key(in), Name: "/sched/latencies:seconds", Start: t0, End: t0 + 60_000, Step: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 2 || fmt.Sprint(pts[0].Hist.Counts) != fmt.Sprint(want[9]) || fmt.Sprint(pts[1].Hist.Counts) != fmt.Sprint(want[19]) {
		t.Errorf("stepped histogram: %+v", pts)
	}
}

func testDuplicates(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := inst("svc", "i1")
	t0 := time.Now().Add(-10 * time.Minute).UnixMilli()
	// Without keys: the same samples twice, and overlapping batches.
	mustAppend(t, s, batch("", in, t0, 10, 2))
	mustAppend(t, s, batch("", in, t0, 10, 2))
	mustAppend(t, s, batch("", in, t0+5000, 10, 2))
	// Duplicate timestamps inside one batch.
	b := batch("", in, t0+15_000, 3, 1)
	b.Samples = append(b.Samples, b.Samples...)
	mustAppend(t, s, b)
	pts, err := s.QuerySeries(ctx, store.SeriesQuery{Instance: key(in), Name: metricName(0), Start: t0, End: t0 + 60_000})
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 18 {
		t.Fatalf("%d points, want 18 (one per timestamp)", len(pts))
	}
	for i := 1; i < len(pts); i++ {
		if pts[i].T <= pts[i-1].T {
			t.Fatalf("points not strictly ascending at %d: %d then %d", i, pts[i-1].T, pts[i].T)
		}
	}
	// GC cycles: a repeated cycle number is kept once.
	g := store.Batch{Instance: in, GCCycles: []store.GCCycle{{Cycle: 7, EndTime: t0, PauseNs: 100}}}
	mustAppend(t, s, g)
	g.GCCycles[0].PauseNs = 200
	mustAppend(t, s, g)
	cycles, _, err := s.GCCycles(ctx, key(in), t0, t0+1)
	if err != nil {
		t.Fatal(err)
	}
	if len(cycles) != 1 {
		t.Fatalf("%d cycles, want 1", len(cycles))
	}
}

func testIdempotency(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := inst("svc", "i1")
	t0 := time.Now().Add(-10 * time.Minute).UnixMilli()
	if seen, err := s.Seen(ctx, "batch-1"); err != nil || seen {
		t.Fatalf("Seen before write = %v, %v", seen, err)
	}
	b := batch("batch-1", in, t0, 5, 3)
	b.GCCycles = []store.GCCycle{{Cycle: 1, EndTime: t0}}
	if res := mustAppend(t, s, b); res.Duplicate {
		t.Fatal("first delivery reported duplicate")
	}
	if seen, err := s.Seen(ctx, "batch-1"); err != nil || !seen {
		t.Fatalf("Seen after write = %v, %v", seen, err)
	}
	// A retry with the same key — even with different content — writes nothing.
	retry := batch("batch-1", in, t0+100_000, 5, 3)
	if res := mustAppend(t, s, retry); !res.Duplicate {
		t.Fatal("retry not reported duplicate")
	}
	pts, _ := s.QuerySeries(ctx, store.SeriesQuery{Instance: key(in), Name: metricName(0), Start: t0, End: t0 + 1e6})
	if len(pts) != 5 {
		t.Fatalf("%d points after retry, want 5", len(pts))
	}
	// A failed write does not remember its key.
	bad := batch("batch-2", in, t0+200_000, 1, 1)
	bad.Samples = append(bad.Samples, store.Sample{Name: metricName(0), T: t0 + 300_000, Hist: &store.Histogram{Boundaries: []float64{0, 1}, Counts: []uint64{1}}})
	if _, err := s.Append(ctx, bad); err == nil {
		t.Fatal("mixed scalar/histogram batch accepted")
	}
	if seen, _ := s.Seen(ctx, "batch-2"); seen {
		t.Fatal("key of a failed write remembered")
	}
	pts, _ = s.QuerySeries(ctx, store.SeriesQuery{Instance: key(in), Name: metricName(0), Start: t0, End: t0 + 1e6})
	if len(pts) != 5 {
		t.Fatalf("failed batch left %d points, want 5", len(pts))
	}
}

func testInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Now().UnixMilli()
	cases := []struct {
		name string
		b    store.Batch
		want error
	}{
		{"no service", store.Batch{Instance: store.Instance{ID: "x", Source: store.SourceAgent}}, store.ErrInvalid},
		{"bad source", store.Batch{Instance: store.Instance{Service: "s", ID: "x", Source: "carrier-pigeon"}}, store.ErrInvalid},
		{"no name", store.Batch{Instance: inst("s", "x"), Samples: []store.Sample{{T: t0}}}, store.ErrInvalid},
		{"bad histogram", store.Batch{Instance: inst("s", "x"), Samples: []store.Sample{{Name: "/h:s", T: t0, Hist: &store.Histogram{Boundaries: []float64{1}, Counts: []uint64{1, 2}}}}}, store.ErrInvalid},
	}
	for _, c := range cases {
		if _, err := s.Append(ctx, c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// Samples older than the raw retention are dropped and counted.
	res := mustAppend(t, s, store.Batch{Instance: inst("s", "x"), Samples: []store.Sample{{Name: "/a:x", T: time.Now().Add(-48 * time.Hour).UnixMilli()}, {Name: "/a:x", T: t0}}})
	if res.Dropped != 1 {
		t.Errorf("Dropped = %d, want 1", res.Dropped)
	}
}

func testGC(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := inst("svc", "i1")
	t0 := time.Now().Add(-10 * time.Minute).UnixMilli()
	b := store.Batch{Instance: in}
	for i := 0; i < 10; i++ {
		b.GCCycles = append(b.GCCycles, store.GCCycle{Cycle: uint32(100 + i), EndTime: t0 + int64(i)*100, PauseNs: int64(i) * 1000, HeapKnown: i%2 == 0,
			HeapLiveBytes: 1 << 30, HeapGoalBytes: 2 << 30, GCCPUSeconds: 0.25, TotalCPUSeconds: 1, Forced: i == 3})
	}
	b.GCGaps = []store.GCGap{{FirstCycle: 50, LastCycle: 99, Time: t0, Reason: "more than 256 cycles between samples"}}
	mustAppend(t, s, b)
	cycles, gaps, err := s.GCCycles(ctx, key(in), t0+100, t0+500)
	if err != nil {
		t.Fatal(err)
	}
	if len(cycles) != 4 || cycles[0].Cycle != 101 || cycles[3].Cycle != 104 {
		t.Fatalf("cycles in [t0+100, t0+500): %+v", cycles)
	}
	if c := cycles[2]; c != b.GCCycles[3] {
		t.Errorf("cycle round trip: %+v, want %+v", c, b.GCCycles[3])
	}
	if len(gaps) != 0 {
		t.Errorf("gap outside the range returned: %+v", gaps)
	}
	_, gaps, _ = s.GCCycles(ctx, key(in), t0, t0+1)
	if len(gaps) != 1 || gaps[0] != b.GCGaps[0] {
		t.Errorf("gaps: %+v", gaps)
	}
	if c, g, err := s.GCCycles(ctx, store.InstanceKey{Service: "no", ID: "pe"}, 0, math.MaxInt64); err != nil || len(c)+len(g) != 0 {
		t.Errorf("unknown instance: %v %v %v", c, g, err)
	}
	// (Instance, Cycle) is the key: of two records of one cycle, in one
	// batch or in two, the first is kept.
	mustAppend(t, s, store.Batch{Instance: in, GCCycles: []store.GCCycle{
		{Cycle: 101, EndTime: t0 + 100, PauseNs: 999},
		{Cycle: 200, EndTime: t0 + 2000, PauseNs: 1}, {Cycle: 200, EndTime: t0 + 2000, PauseNs: 2},
	}})
	cycles, _, err = s.GCCycles(ctx, key(in), t0, t0+3000)
	if err != nil {
		t.Fatal(err)
	}
	if len(cycles) != 11 || cycles[1].Cycle != 101 || cycles[1].PauseNs != 1000 || cycles[10].Cycle != 200 || cycles[10].PauseNs != 1 {
		t.Errorf("after repeated cycles: %+v", cycles)
	}
}

func testFleet(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Now().Add(-10 * time.Minute).UnixMilli()
	for i := 0; i < 5; i++ {
		svc := "web"
		if i >= 3 {
			svc = "db"
		}
		in := inst(svc, fmt.Sprintf("i%d", i))
		b := batch("", in, t0+int64(i)*1000, 10, 3)
		mustAppend(t, s, b)
	}
	sum, err := s.Fleet(ctx, store.FleetQuery{Names: []string{metricName(0), metricName(2), "/absent:x"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum) != 5 || sum[0].Instance.Service != "db" || sum[4].Instance.ID != "i2" {
		t.Fatalf("fleet order: %+v", sum)
	}
	for _, r := range sum {
		var i int
		fmt.Sscanf(r.Instance.ID, "i%d", &i)
		l := r.Latest[metricName(2)]
		if l.T != t0+int64(i)*1000+9000 || l.Value != 2009 || len(r.Latest) != 2 {
			t.Errorf("%s: latest %+v", r.Instance.ID, r.Latest)
		}
	}
	sum, _ = s.Fleet(ctx, store.FleetQuery{Service: "db", Names: []string{metricName(0)}})
	if len(sum) != 2 {
		t.Errorf("fleet of service db: %d rows", len(sum))
	}
}

func putBundle(t *testing.T, s store.Store, id string, in store.Instance, files map[string][]byte, fired time.Time) {
	t.Helper()
	ctx := context.Background()
	if err := s.UpsertInstance(ctx, in, time.Now()); err != nil {
		t.Fatal(err)
	}
	w, err := s.BeginBundle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range sortedKeys(files) {
		if _, err := w.WriteFile(ctx, name, "application/octet-stream", bytes.NewReader(files[name])); err != nil {
			t.Fatal(err)
		}
	}
	if dup, err := w.Commit(ctx, store.Bundle{ID: id, Instance: key(in), Rule: "gc-pause", FiredAt: fired, ReceivedAt: fired}); err != nil || dup {
		t.Fatalf("commit %s: dup=%v err=%v", id, dup, err)
	}
}

func sortedKeys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

func testBundles(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := inst("svc", "i1")
	if err := s.UpsertInstance(ctx, in, time.Now()); err != nil {
		t.Fatal(err)
	}
	fired := time.Now().Add(-time.Minute).Truncate(time.Millisecond).UTC()
	heap := bytes.Repeat([]byte("heap profile "), 10000)
	trace := bytes.Repeat([]byte{1, 2, 3}, 70000)
	w, err := s.BeginBundle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f, err := w.WriteFile(ctx, "heap.pb.gz", "application/vnd.google.protobuf+pprof", bytes.NewReader(heap))
	if err != nil {
		t.Fatal(err)
	}
	if f.Size != int64(len(heap)) || f.SHA256 != sha256.Sum256(heap) {
		t.Errorf("WriteFile result %+v", f)
	}
	if _, err := w.WriteFile(ctx, "heap.pb.gz", "x", strings.NewReader("again")); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("same file name twice: %v, want ErrInvalid", err)
	}
	if _, err := w.WriteFile(ctx, "trace.out", "application/vnd.go.trace", bytes.NewReader(trace)); err != nil {
		t.Fatal(err)
	}
	b := store.Bundle{ID: "ev-1", Instance: key(in), Rule: "gc-pause", Reason: "pause 61 ms", FiredAt: fired, ReceivedAt: fired.Add(time.Second),
		Values: []store.RuleValue{{Name: "pause", Value: 0.061, Threshold: 0.05, Unit: "seconds"}}, Notes: []string{"cpu profile skipped"}, CaptureSTWSeconds: 0.001}
	if seen, _ := s.Seen(ctx, "ev-1"); seen {
		t.Fatal("bundle ID seen before commit")
	}
	if dup, err := w.Commit(ctx, b); err != nil || dup {
		t.Fatalf("commit: %v %v", dup, err)
	}
	if seen, _ := s.Seen(ctx, "ev-1"); !seen {
		t.Fatal("bundle ID not remembered by commit")
	}
	got, err := s.GetBundle(ctx, "ev-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Rule != b.Rule || got.Reason != b.Reason || !got.FiredAt.Equal(fired) || got.Size != int64(len(heap)+len(trace)) ||
		len(got.Files) != 2 || got.Files[0].Name != "heap.pb.gz" || got.Files[1].ContentType != "application/vnd.go.trace" ||
		len(got.Values) != 1 || got.Values[0] != b.Values[0] || len(got.Notes) != 1 || got.CaptureSTWSeconds != 0.001 {
		t.Errorf("GetBundle = %+v", got)
	}
	rc, bf, err := s.OpenBundleFile(ctx, "ev-1", "trace.out")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(body, trace) || bf.Size != int64(len(trace)) {
		t.Errorf("trace body: %d bytes, want %d", len(body), len(trace))
	}
	if _, _, err := s.OpenBundleFile(ctx, "ev-1", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := s.GetBundle(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing bundle: %v", err)
	}
	// A redelivery commits as a duplicate and changes nothing.
	w2, _ := s.BeginBundle(ctx)
	if _, err := w2.WriteFile(ctx, "other", "x", strings.NewReader("other")); err != nil {
		t.Fatal(err)
	}
	if dup, err := w2.Commit(ctx, b); err != nil || !dup {
		t.Fatalf("second commit: dup=%v err=%v, want duplicate", dup, err)
	}
	got, _ = s.GetBundle(ctx, "ev-1")
	if len(got.Files) != 2 {
		t.Errorf("duplicate commit changed the files: %+v", got.Files)
	}
	// Aborted bundles leave nothing.
	w3, _ := s.BeginBundle(ctx)
	w3.WriteFile(ctx, "x", "x", strings.NewReader("x"))
	if err := w3.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	putBundle(t, s, "ev-2", inst("svc", "i2"), map[string][]byte{"g": []byte("g")}, fired.Add(time.Second))
	list, err := s.ListBundles(ctx, store.BundleFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "ev-2" || len(list[1].Files) != 2 {
		t.Errorf("ListBundles newest first: %+v", list)
	}
	list, _ = s.ListBundles(ctx, store.BundleFilter{Service: "svc", Instance: "i1"})
	if len(list) != 1 || list[0].ID != "ev-1" {
		t.Errorf("ListBundles of i1: %+v", list)
	}
	// Unknown instance.
	w4, _ := s.BeginBundle(ctx)
	if _, err := w4.Commit(ctx, store.Bundle{ID: "ev-3", Instance: store.InstanceKey{Service: "x", ID: "y"}, ReceivedAt: fired}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bundle of unknown instance: %v, want ErrNotFound", err)
	}
}

func testBundleManifest(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := inst("svc", "i1")
	if err := s.UpsertInstance(ctx, in, time.Now()); err != nil {
		t.Fatal(err)
	}
	data := []byte("goroutine profile")
	sum := sha256.Sum256(data)
	cases := []struct {
		name     string
		manifest []store.BundleFile
		ok       bool
	}{
		{"matches", []store.BundleFile{{Name: "g", Size: int64(len(data)), SHA256: sum, Note: "debug=0"}}, true},
		{"no hash", []store.BundleFile{{Name: "g", Size: int64(len(data))}}, true},
		{"wrong size", []store.BundleFile{{Name: "g", Size: 3}}, false},
		{"wrong hash", []store.BundleFile{{Name: "g", Size: int64(len(data)), SHA256: sha256.Sum256(nil)}}, false},
		{"missing file", []store.BundleFile{{Name: "g", Size: int64(len(data))}, {Name: "h", Size: 1}}, false},
		{"other name", []store.BundleFile{{Name: "h", Size: int64(len(data))}}, false},
	}
	for i, c := range cases {
		w, _ := s.BeginBundle(ctx)
		if _, err := w.WriteFile(ctx, "g", "text/plain", bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("m-%d", i)
		_, err := w.Commit(ctx, store.Bundle{ID: id, Instance: key(in), ReceivedAt: time.Now(), Files: c.manifest})
		if c.ok != (err == nil) || (!c.ok && !errors.Is(err, store.ErrInvalid)) {
			t.Errorf("%s: %v", c.name, err)
		}
		if _, gerr := s.GetBundle(ctx, id); (gerr == nil) != c.ok {
			t.Errorf("%s: bundle stored = %v", c.name, gerr == nil)
		}
	}
	got, _ := s.GetBundle(ctx, "m-0")
	if len(got.Files) != 1 || got.Files[0].Note != "debug=0" {
		t.Errorf("manifest note not kept: %+v", got.Files)
	}
}

func testFindings(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := inst("svc", "i1")
	if err := s.UpsertInstance(ctx, in, time.Now()); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Truncate(time.Millisecond).UTC()
	obs := store.Observation{Instance: key(in), Kind: "goroutine-leak", Key: "abc", Severity: "warning", Title: "leak at main.worker", Summary: "+500 in 5 min", Details: []byte(`{"n":500}`), BundleIDs: []string{"b1"}, At: t0}
	f, err := s.Observe(ctx, obs)
	if err != nil {
		t.Fatal(err)
	}
	if f.State != store.FindingOpen || !f.OpenedAt.Equal(t0) || len(f.History) != 1 || f.History[0].State != store.FindingOpen {
		t.Fatalf("opened: %+v", f)
	}
	obs.At, obs.Summary, obs.BundleIDs = t0.Add(time.Minute), "+900 in 6 min", []string{"b2", "b1"}
	f2, err := s.Observe(ctx, obs)
	if err != nil {
		t.Fatal(err)
	}
	if f2.ID != f.ID || f2.Summary != "+900 in 6 min" || !f2.LastSeen.Equal(t0.Add(time.Minute)) || len(f2.History) != 1 || fmt.Sprint(f2.BundleIDs) != "[b1 b2]" {
		t.Fatalf("re-observed: %+v", f2)
	}
	if err := s.Resolve(ctx, f.ID, t0.Add(2*time.Minute), "count back to baseline"); err != nil {
		t.Fatal(err)
	}
	if err := s.Resolve(ctx, f.ID, t0.Add(3*time.Minute), ""); !errors.Is(err, store.ErrConflict) {
		t.Errorf("resolve twice: %v, want ErrConflict", err)
	}
	if err := s.Resolve(ctx, 999999, t0, ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("resolve unknown: %v, want ErrNotFound", err)
	}
	open, _ := s.ListFindings(ctx, store.FindingFilter{State: store.FindingOpen})
	if len(open) != 0 {
		t.Errorf("open findings after resolve: %+v", open)
	}
	obs.At = t0.Add(4 * time.Minute)
	f3, err := s.Observe(ctx, obs)
	if err != nil {
		t.Fatal(err)
	}
	if f3.ID != f.ID || f3.State != store.FindingOpen || !f3.ResolvedAt.IsZero() || !f3.OpenedAt.Equal(t0) {
		t.Fatalf("reopened: %+v", f3)
	}
	var states []string
	for _, e := range f3.History {
		states = append(states, string(e.State)+"@"+e.At.Sub(t0).String())
	}
	if got := strings.Join(states, " "); got != "open@0s resolved@2m0s open@4m0s" {
		t.Errorf("history = %s", got)
	}
	if _, err := s.Observe(ctx, store.Observation{Instance: store.InstanceKey{Service: "x", ID: "y"}, Kind: "k", At: t0}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown instance: %v", err)
	}
	s.Observe(ctx, store.Observation{Instance: key(in), Kind: "gc-pause", Key: "", At: t0.Add(5 * time.Minute)})
	list, err := s.ListFindings(ctx, store.FindingFilter{Service: "svc"})
	if err != nil || len(list) != 2 || list[0].Kind != "gc-pause" || list[0].History != nil {
		t.Errorf("ListFindings: %+v %v", list, err)
	}
	list, _ = s.ListFindings(ctx, store.FindingFilter{Kind: "goroutine-leak", State: store.FindingOpen})
	if len(list) != 1 {
		t.Errorf("filter by kind and state: %d", len(list))
	}
}

func testGoroutines(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := inst("svc", "i1")
	if err := s.UpsertInstance(ctx, in, time.Now()); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UnixMilli()
	stack := []byte(`[{"func":"main.worker","file":"/src/main.go","line":42}]`)
	for i := 0; i < 5; i++ {
		gs := store.GoroutineSnapshot{Instance: key(in), Time: t0 + int64(i)*60000, Source: "scrape", Goroutines: 100 + i*50,
			Groups: []store.GoroutineGroup{{Key: "leak", State: "chan receive", Count: 10 + i*50, WaitMaxMs: int64(i) * 60000, Stack: stack}, {Key: "ok", State: "select", Count: 90}}}
		if i > 0 {
			gs.Groups[0].Stack = nil // stored once per key
		}
		if err := s.PutGoroutineSnapshot(ctx, gs); err != nil {
			t.Fatal(err)
		}
	}
	// Same (instance, time): ignored.
	if err := s.PutGoroutineSnapshot(ctx, store.GoroutineSnapshot{Instance: key(in), Time: t0, Goroutines: 1}); err != nil {
		t.Fatal(err)
	}
	snaps, err := s.GoroutineSnapshots(ctx, key(in), t0, t0+10*60000, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 3 || snaps[0].Time != t0+2*60000 || snaps[2].Goroutines != 300 {
		t.Fatalf("newest 3 ascending: %+v", snaps)
	}
	g := snaps[2].Groups[0]
	if g.Key != "leak" || g.Count != 210 || string(g.Stack) != string(stack) || g.WaitMaxMs != 240000 {
		t.Errorf("group: %+v", g)
	}
	all, _ := s.GoroutineSnapshots(ctx, key(in), t0, t0+1, 0)
	if len(all) != 1 || all[0].Goroutines != 100 {
		t.Errorf("first snapshot kept: %+v", all)
	}
}

func testTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond).UTC()
	h := store.HashToken("secret-1")
	tk := store.Token{ID: "t1", Service: "checkout", Note: "ci", CreatedAt: now}
	if err := s.CreateToken(ctx, tk, h); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateToken(ctx, store.Token{ID: "t2", CreatedAt: now}, h); !errors.Is(err, store.ErrConflict) {
		t.Errorf("same hash twice: %v, want ErrConflict", err)
	}
	got, err := s.LookupToken(ctx, h)
	if err != nil || got != tk {
		t.Fatalf("lookup: %+v %v", got, err)
	}
	if _, err := s.LookupToken(ctx, store.HashToken("wrong")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("wrong secret: %v", err)
	}
	if err := s.CreateToken(ctx, store.Token{ID: "t3", Service: "other", CreatedAt: now.Add(time.Second)}, store.HashToken("s3")); err != nil {
		t.Fatal(err)
	}
	list, _ := s.ListTokens(ctx, "checkout")
	if len(list) != 1 {
		t.Errorf("ListTokens(checkout): %+v", list)
	}
	if err := s.RevokeToken(ctx, "t1", now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LookupToken(ctx, h); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoked token still valid: %v", err)
	}
	if err := s.RevokeToken(ctx, "nope", now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoke unknown: %v", err)
	}
	list, _ = s.ListTokens(ctx, "")
	if len(list) != 2 || list[0].RevokedAt.IsZero() {
		t.Errorf("ListTokens: %+v", list)
	}
}

func testRetention(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := inst("svc", "i1")
	now := time.Now()
	t0 := now.Add(-20*time.Minute).UnixMilli() / 60000 * 60000
	b := batch("r1", in, t0, 180, 2) // 3 minutes
	b.GCCycles = []store.GCCycle{{Cycle: 1, EndTime: t0}}
	mustAppend(t, s, b)
	putBundle(t, s, "old-bundle", in, map[string][]byte{"f": []byte("x")}, now)
	q := store.SeriesQuery{Instance: key(in), Name: metricName(1), Start: t0, End: t0 + 3_600_000, Step: 60_000}
	before, err := s.QuerySeries(ctx, q)
	if err != nil || len(before) != 3 {
		t.Fatalf("before retention: %+v %v", before, err)
	}
	// 25 h later: the raw samples are gone, the minutes remain.
	st, err := s.Maintain(ctx, now.Add(25*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if st.DeletedChunks == 0 || st.DeletedGCRecords == 0 {
		t.Errorf("Maintain(+25h) = %+v: nothing deleted", st)
	}
	raw, _ := s.QuerySeries(ctx, store.SeriesQuery{Instance: key(in), Name: metricName(1), Start: t0, End: t0 + 3_600_000})
	if len(raw) != 0 {
		t.Errorf("%d raw points after the raw retention", len(raw))
	}
	after, err := s.QuerySeries(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("rollups differ from raw aggregation:\n got %+v\nwant %+v", after, before)
	}
	if c, _, _ := s.GCCycles(ctx, key(in), 0, math.MaxInt64); len(c) != 0 {
		t.Errorf("GC cycles after the raw retention: %d", len(c))
	}
	if seen, _ := s.Seen(ctx, "r1"); !seen {
		t.Error("idempotency key forgotten after 25 h")
	}
	if _, err := s.GetBundle(ctx, "old-bundle"); err != nil {
		t.Errorf("bundle gone after 25 h: %v", err)
	}
	// 8 days: bundles and keys gone.
	if _, err := s.Maintain(ctx, now.Add(8*24*time.Hour+time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetBundle(ctx, "old-bundle"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bundle after 8 days: %v", err)
	}
	if seen, _ := s.Seen(ctx, "r1"); seen {
		t.Error("idempotency key remembered after 8 days")
	}
	// 15 days: rollups gone.
	if _, err := s.Maintain(ctx, now.Add(15*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if pts, _ := s.QuerySeries(ctx, q); len(pts) != 0 {
		t.Errorf("rollups after 15 days: %+v", pts)
	}
}

func testConcurrency(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Now().Add(-time.Hour).UnixMilli()
	const writers, batches = 6, 15
	var wg sync.WaitGroup
	errs := make(chan error, writers*batches*2)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			in := inst("conc", fmt.Sprintf("i%d", w))
			for i := 0; i < batches; i++ {
				b := batch(fmt.Sprintf("c-%d-%d", w, i), in, t0+int64(i)*10_000, 10, 5)
				if _, err := s.Append(ctx, b); err != nil {
					errs <- err
				}
				// Every batch is delivered twice, the retry racing others.
				if res, err := s.Append(ctx, b); err != nil || !res.Duplicate {
					errs <- fmt.Errorf("retry of %s: dup=%v err=%v", b.Key, res.Duplicate, err)
				}
				if _, err := s.QuerySeries(ctx, store.SeriesQuery{Instance: key(in), Name: metricName(0), Start: t0, End: t0 + 1e7}); err != nil {
					errs <- err
				}
			}
		}(w)
	}
	// Maintenance runs alongside.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 3; i++ {
			if _, err := s.Maintain(ctx, time.Now()); err != nil {
				errs <- err
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := 0; w < writers; w++ {
		for j := 0; j < 5; j++ {
			pts, err := s.QuerySeries(ctx, store.SeriesQuery{Instance: store.InstanceKey{Service: "conc", ID: fmt.Sprintf("i%d", w)}, Name: metricName(j), Start: t0, End: t0 + 1e7})
			if err != nil {
				t.Fatal(err)
			}
			if len(pts) != batches*10 {
				t.Errorf("writer %d metric %d: %d points, want %d", w, j, len(pts), batches*10)
			}
		}
	}
}
