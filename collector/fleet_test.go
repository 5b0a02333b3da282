package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gopulse/gopulse/store"
	"github.com/gopulse/gopulse/wire"
)

// seedAgent writes n readings, every 10 s up to end, of an agent instance
// whose GC takes gcShare of its CPU capacity (2 Ps, half idle, with idle
// marking besides, which gc_cpu_fraction leaves out) and pauses pauseMs
// per cycle, with goroutines growing by one per reading from g0.
func seedAgent(ctx context.Context, st store.Store, key store.InstanceKey, end time.Time, n int, gcShare, pauseMs float64, g0 int) error {
	b := store.Batch{Instance: store.Instance{Service: key.Service, ID: key.ID, Source: store.SourceAgent}, ReceivedAt: end}
	for i := 0; i < n; i++ {
		t := end.Add(-time.Duration(n-1-i) * 10 * time.Second).UnixMilli()
		k := float64(i)
		add := func(name string, v float64) { b.Samples = append(b.Samples, store.Sample{Name: name, T: t, Value: v}) }
		add(nameGoroutines, float64(g0+i))
		add(nameHeapLive, 100<<20)
		add(nameMemLimit, 400<<20)
		add("/cpu/classes/total:cpu-seconds", 20*k)
		add("/cpu/classes/idle:cpu-seconds", 10*k)
		add("/cpu/classes/gc/total:cpu-seconds", 20*gcShare*k+k)
		add("/cpu/classes/gc/mark/idle:cpu-seconds", k)
		b.GCCycles = append(b.GCCycles, store.GCCycle{Cycle: uint32(i + 1), EndTime: t, PauseNs: int64(pauseMs * 1e6)})
	}
	_, err := st.Append(ctx, b)
	return err
}

type fleetResp struct {
	WindowSeconds float64 `json:"window_seconds"`
	Instances     []struct {
		Service, ID      string
		GC               FleetGC
		HeapBytes        float64 `json:"heap_bytes"`
		LimitBytes       float64 `json:"limit_bytes"`
		HeapFraction     float64 `json:"heap_fraction"`
		Goroutines       float64
		GoroutinesSeries [][2]float64 `json:"goroutines_series"`
		OpenFindings     int          `json:"open_findings"`
		OpenLeaks        int          `json:"open_leaks"`
		Latest           map[string]struct{ Value float64 }
	}
}

func TestFleetSummary(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	e := newEnv(t, func(c *Config) { c.Now = func() time.Time { return now } })
	ctx := context.Background()
	a := store.InstanceKey{Service: "checkout", ID: "a"}
	b := store.InstanceKey{Service: "checkout", ID: "b"}
	// a: 1 h of 2 ms pauses at 40% GC CPU, then 15 min of 0.5 ms pauses
	// at 10%: the window must see only the recent part.
	if err := seedAgent(ctx, e.st, a, now.Add(-15*time.Minute-10*time.Second), 360, 0.40, 2, 100); err != nil {
		t.Fatal(err)
	}
	b2 := store.Batch{Instance: store.Instance{Service: a.Service, ID: a.ID, Source: store.SourceAgent}, ReceivedAt: now}
	for i := 0; i < 90; i++ {
		tm := now.Add(-time.Duration(89-i) * 10 * time.Second).UnixMilli()
		k := float64(360 + i)
		b2.Samples = append(b2.Samples,
			store.Sample{Name: nameGoroutines, T: tm, Value: float64(460 + i)},
			store.Sample{Name: nameHeapLive, T: tm, Value: 100 << 20},
			store.Sample{Name: nameMemLimit, T: tm, Value: 400 << 20},
			store.Sample{Name: "/cpu/classes/total:cpu-seconds", T: tm, Value: 20 * k},
			store.Sample{Name: "/cpu/classes/idle:cpu-seconds", T: tm, Value: 10 * k},
			store.Sample{Name: "/cpu/classes/gc/total:cpu-seconds", T: tm, Value: 20*0.40*359 + 20*0.10*(k-359) + k},
			store.Sample{Name: "/cpu/classes/gc/mark/idle:cpu-seconds", T: tm, Value: k})
		b2.GCCycles = append(b2.GCCycles, store.GCCycle{Cycle: uint32(1000 + i), EndTime: tm, PauseNs: 500_000})
	}
	if _, err := e.st.Append(ctx, b2); err != nil {
		t.Fatal(err)
	}
	if err := seedAgent(ctx, e.st, b, now, 90, 0.05, 60, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Observe(ctx, store.Observation{Instance: b, Kind: KindGoroutineLeak, Key: "k", Severity: "error", Title: "leak", At: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Observe(ctx, store.Observation{Instance: b, Kind: KindGCPause, Key: "gc", Severity: "warning", Title: "pause", At: now}); err != nil {
		t.Fatal(err)
	}

	var r fleetResp
	for _, warm := range []bool{false, true} {
		if warm {
			// The background cache gives the same answer.
			if err := e.c.refreshFleet(ctx); err != nil || len(e.c.fleet.rows) != 2 {
				t.Fatalf("refresh: %v, %d rows", err, len(e.c.fleet.rows))
			}
		}
		checkFleet(t, e.srv.URL, &r)
	}
	// A shorter window sees only the last 5 min of a's cycles, all 0.5 ms.
	if code := getJSON(t, e.srv.URL+"/api/v1/fleet?since=24h&window=5m&service=checkout", &r); code != 200 || r.Instances[0].GC.Cycles != 31 {
		t.Errorf("window=5m: %d, %+v", code, r.Instances[0].GC)
	}
	for _, bad := range []string{"window=10s", "window=x", "window=48h"} {
		resp, err := http.Get(e.srv.URL + "/api/v1/fleet?" + bad)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("%s: %d, want 400", bad, resp.StatusCode)
		}
	}
}

func checkFleet(t *testing.T, base string, r *fleetResp) {
	t.Helper()
	if code := getJSON(t, base+"/api/v1/fleet?since=24h&names="+nameGoroutines, r); code != 200 {
		t.Fatalf("fleet: %d", code)
	}
	if r.WindowSeconds != 900 || len(r.Instances) != 2 {
		t.Fatalf("window %v s, %d instances; want 900 s and 2", r.WindowSeconds, len(r.Instances))
	}
	for _, tc := range []struct {
		i              int
		p99, cpu       float64
		goroutines     float64
		findings, leak int
	}{
		{0, 0.5, 0.10, 549, 0, 0},
		{1, 60, 0.05, 99, 2, 1},
	} {
		x := r.Instances[tc.i]
		if math.Abs(x.GC.PauseP99Ms-tc.p99) > 1e-9 || math.Abs(x.GC.GCCPUFraction-tc.cpu) > 1e-3 || x.Goroutines != tc.goroutines ||
			x.OpenFindings != tc.findings || x.OpenLeaks != tc.leak || x.HeapFraction != 0.25 || x.LimitBytes != 400<<20 {
			t.Errorf("%s: %+v\nwant p99 %v ms, GC CPU %v, %v goroutines, %d findings (%d leaks), heap 25%% of 400 MiB",
				x.ID, x, tc.p99, tc.cpu, tc.goroutines, tc.findings, tc.leak)
		}
		if n := len(x.GoroutinesSeries); n < 25 || n > fleetSparkPoints+1 || x.GoroutinesSeries[n-1][1] != tc.goroutines {
			t.Errorf("%s: sparkline %v", x.ID, x.GoroutinesSeries)
		}
		if len(x.Latest) != 1 {
			t.Errorf("%s: latest %v, want only the asked name", x.ID, x.Latest)
		}
	}
}

// BenchmarkFleet1000 measures GET /api/v1/fleet over 1,000 agent
// instances holding 15 min of samples each (every 10 s), through HTTP on a
// real SQLite store with the background summary warm, and reports the p50
// and p99 latency of the request (target: p99 < 200 ms) and the time of
// one background refresh.
func BenchmarkFleet1000(b *testing.B) {
	now := time.Now().Truncate(time.Second)
	e := newEnv(b, func(c *Config) { c.Now = func() time.Time { return now } })
	ctx := context.Background()
	seed := time.Now()
	for i := range 1000 {
		key := store.InstanceKey{Service: fmt.Sprintf("svc-%02d", i%50), ID: fmt.Sprintf("inst-%04d", i)}
		if err := seedAgent(ctx, e.st, key, now, 90, float64(i%40)/100, float64(i%100)/10, 50+i%700); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("seeded 1000 instances × 90 readings in %v", time.Since(seed).Round(time.Millisecond))
	// The server keeps the windowed figures warm in the background; the
	// refresh's own cost is reported beside the request latency.
	t0 := time.Now()
	if err := e.c.refreshFleet(ctx); err != nil {
		b.Fatal(err)
	}
	refresh := time.Since(t0)
	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		resp, err := http.Get(e.srv.URL + "/api/v1/fleet?since=24h")
		if err != nil {
			b.Fatal(err)
		}
		var r fleetResp
		if err := jsonDecode(resp, &r); err != nil || len(r.Instances) != 1000 {
			b.Fatalf("fleet: %v, %d rows", err, len(r.Instances))
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(math.Ceil(p*float64(len(lat))))-1]) / 1e6 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(refresh)/1e6, "refresh-ms")
}

func jsonDecode(resp *http.Response, v any) error {
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// TestFleetSingleFlight: page loads that find no summary share one
// computation instead of each computing every row.
func TestFleetSingleFlight(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	e := newEnv(t, func(c *Config) { c.Now = func() time.Time { return now } })
	ctx := context.Background()
	const nInst, nReq = 25, 8
	for i := range nInst {
		if err := seedAgent(ctx, e.st, store.InstanceKey{Service: "svc", ID: fmt.Sprintf("i%02d", i)}, now, 6, 0.1, 1, 10); err != nil {
			t.Fatal(err)
		}
	}
	// The computation blocks until every request is past its findings
	// query, so all of them reach the summary while it runs.
	e.st.gcGate = make(chan struct{})
	go func() {
		deadline := time.Now().Add(10 * time.Second)
		for e.st.openCalls.Load() < nReq && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		close(e.st.gcGate)
	}()
	errs := make(chan error, nReq)
	for range nReq {
		go func() {
			var r fleetResp
			resp, err := http.Get(e.srv.URL + "/api/v1/fleet")
			if err == nil {
				err = jsonDecode(resp, &r)
			}
			if err == nil && (len(r.Instances) != nInst || r.Instances[0].GC.Cycles != 6) {
				err = fmt.Errorf("%d rows, first %+v", len(r.Instances), r.Instances[0].GC)
			}
			errs <- err
		}()
	}
	for range nReq {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if n, calls := e.c.fleet.computed, e.st.gcCalls.Load(); n != 1 || calls != nInst {
		t.Errorf("%d requests: %d computations, %d GC cycle queries; want 1 and %d", nReq, n, calls, nInst)
	}
}

// TestFleetStaleness: the cached summary is served until it is
// fleetMaxAge old, and its time is in the answer.
func TestFleetStaleness(t *testing.T) {
	var clock atomic.Int64
	start := time.Now().Truncate(time.Second)
	clock.Store(start.UnixMilli())
	e := newEnv(t, func(c *Config) { c.Now = func() time.Time { return time.UnixMilli(clock.Load()) } })
	ctx := context.Background()
	if err := seedAgent(ctx, e.st, store.InstanceKey{Service: "svc", ID: "a"}, start, 6, 0.1, 1, 10); err != nil {
		t.Fatal(err)
	}
	maxAge := e.c.fleetMaxAge()
	if maxAge != 90*time.Second {
		t.Fatalf("fleetMaxAge %v, want 90 s with the default analysis interval", maxAge)
	}
	for _, tc := range []struct {
		age        time.Duration
		computed   int
		computedAt time.Time
	}{
		{0, 1, start},
		{maxAge - time.Second, 1, start},
		{maxAge, 2, start.Add(maxAge)},
		{maxAge + time.Second, 2, start.Add(maxAge)},
	} {
		clock.Store(start.Add(tc.age).UnixMilli())
		var r struct {
			ComputedAt int64 `json:"computed_at"`
			Instances  []json.RawMessage
		}
		if code := getJSON(t, e.srv.URL+"/api/v1/fleet", &r); code != 200 || len(r.Instances) != 1 {
			t.Fatalf("age %v: %d, %d rows", tc.age, code, len(r.Instances))
		}
		if e.c.fleet.computed != tc.computed || r.ComputedAt != tc.computedAt.UnixMilli() {
			t.Errorf("age %v: %d computations, computed_at %d; want %d, %d", tc.age, e.c.fleet.computed, r.ComputedAt, tc.computed, tc.computedAt.UnixMilli())
		}
	}
}

// TestFleetLeaderCancelled: when the caller running the shared
// computation goes away, a caller waiting for it computes the summary
// itself rather than failing with the other's cancellation.
func TestFleetLeaderCancelled(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	if err := seedAgent(ctx, e.st, store.InstanceKey{Service: "svc", ID: "a"}, time.Now(), 6, 0.1, 1, 10); err != nil {
		t.Fatal(err)
	}
	e.st.gcGate = make(chan struct{})
	lctx, cancel := context.WithCancel(ctx)
	leader, waiter := make(chan error, 1), make(chan error, 1)
	go func() { leader <- e.c.refreshFleet(lctx) }()
	waitFor(t, func() bool { e.c.fleet.mu.Lock(); defer e.c.fleet.mu.Unlock(); return e.c.fleet.flight != nil })
	go func() { waiter <- e.c.refreshFleet(ctx) }()
	waitFor(t, func() bool { e.c.fleet.mu.Lock(); defer e.c.fleet.mu.Unlock(); return e.c.fleet.flight.waiters == 1 })
	cancel()
	if err := <-leader; !errors.Is(err, context.Canceled) {
		t.Fatalf("leader: %v, want context.Canceled", err)
	}
	close(e.st.gcGate)
	if err := <-waiter; err != nil {
		t.Fatalf("waiter: %v", err)
	}
	if len(e.c.fleet.rows) != 1 || e.c.fleet.computed != 2 {
		t.Errorf("%d rows after %d computations; want 1 row, 2 computations", len(e.c.fleet.rows), e.c.fleet.computed)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10 s")
		}
	}
}

// BenchmarkFleetUnderIngest measures GET /api/v1/fleet as the fleet page
// calls it (default parameters) on a running collector: 1,000 agent
// instances with 15 min of data, Run analysing and refreshing the summary
// every 10 s (three times as often as the default, so the background
// passes overlap many requests), and agent-sized batches (65 metrics × 10
// samples) arriving through HTTP at 200/s, twice what 1,000 agents send.
// One request every 100 ms; reports p50 and p99 latency (target p99 ≤
// 200 ms). Run it with -benchtime 300x.
func BenchmarkFleetUnderIngest(b *testing.B) {
	now := time.Now().Truncate(time.Second)
	e := newEnv(b, func(c *Config) { c.AnalyzeInterval = 10 * time.Second })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const nInst = 1000
	keys := make([]store.InstanceKey, nInst)
	for i := range keys {
		keys[i] = store.InstanceKey{Service: fmt.Sprintf("svc-%02d", i%50), ID: fmt.Sprintf("inst-%04d", i)}
		if err := seedAgent(ctx, e.st, keys[i], now, 90, float64(i%40)/100, float64(i%100)/10, 50+i%700); err != nil {
			b.Fatal(err)
		}
	}
	tok := e.addToken(b, "tok-any", "")
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		e.c.Run(ctx)
	}()
	defer func() { cancel(); <-runDone }()
	waitFor(b, func() bool { e.c.fleet.mu.Lock(); defer e.c.fleet.mu.Unlock(); return e.c.fleet.rows != nil })
	computed0 := e.c.fleet.computed

	// Ingest: open loop at a fixed rate, bodies built before they are due.
	const rate = 200
	body := func(seq int) []byte {
		k := keys[seq%nInst]
		mb := &wire.MetricBatch{BatchId: fmt.Sprintf("ing-%d", seq), Instance: &wire.Instance{Service: k.Service, InstanceId: k.ID, Host: "h"}}
		for m := range 65 {
			mb.Descriptors = append(mb.Descriptors, &wire.MetricDescriptor{Name: fmt.Sprintf("/bench/m%02d:units", m), Kind: wire.MetricKind_METRIC_KIND_FLOAT64})
		}
		t0 := time.Now()
		for s := range 10 {
			smp := &wire.Sample{TimeUnixNano: t0.Add(time.Duration(s-10) * time.Second).UnixNano()}
			for m := range 65 {
				smp.Values = append(smp.Values, &wire.MetricValue{Index: uint32(m), Value: &wire.MetricValue_Float64Value{Float64Value: float64(seq*m + s)}})
			}
			mb.Samples = append(mb.Samples, smp)
		}
		out, _ := proto.Marshal(mb)
		return out
	}
	var ingested, refused atomic.Int64
	ingestDone := make(chan struct{})
	ingCtx, stopIngest := context.WithCancel(ctx)
	go func() {
		defer close(ingestDone)
		var wg sync.WaitGroup
		defer wg.Wait()
		sem := make(chan struct{}, 64)
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		for seq := 0; ; seq++ {
			select {
			case <-ingCtx.Done():
				return
			case <-tick.C:
			}
			select {
			case sem <- struct{}{}:
			default:
				refused.Add(1) // 64 in flight: the server is not keeping up
				continue
			}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				req, _ := http.NewRequestWithContext(ingCtx, "POST", e.srv.URL+wire.PathPushMetrics, bytes.NewReader(body(seq)))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", wire.ContentTypeProto)
				req.Header.Set(wire.HeaderIdempotencyKey, fmt.Sprintf("ing-%d", seq))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				msg, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ingested.Add(1)
				} else if refused.Add(1) == 1 {
					b.Logf("batch refused: %d %s", resp.StatusCode, msg)
				}
			}()
		}
	}()

	var lat []time.Duration
	t0 := time.Now()
	b.ResetTimer()
	for range b.N {
		q0 := time.Now()
		resp, err := http.Get(e.srv.URL + "/api/v1/fleet")
		if err != nil {
			b.Fatal(err)
		}
		// Counting rows rather than decoding them: the client shares the
		// two cores, and a full decode costs more CPU than the server's
		// answer.
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if n := bytes.Count(body, []byte(`"goroutines_series":[[`)); err != nil || resp.StatusCode != 200 || n != nInst {
			b.Fatalf("fleet: %v, status %d, %d rows with a sparkline", err, resp.StatusCode, n)
		}
		lat = append(lat, time.Since(q0))
		time.Sleep(100 * time.Millisecond)
	}
	b.StopTimer()
	elapsed := time.Since(t0)
	stopIngest()
	<-ingestDone
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(math.Ceil(p*float64(len(lat))))-1]) / 1e6 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(ingested.Load())/elapsed.Seconds(), "batches/s")
	b.ReportMetric(float64(refused.Load()), "batches-refused")
	e.c.fleet.mu.Lock()
	b.ReportMetric(float64(e.c.fleet.computed-computed0), "refreshes")
	e.c.fleet.mu.Unlock()
}

// TestFleetJSONShape: rows spliced from their own fields and the
// pre-encoded figures are JSON objects with each documented key once.
func TestFleetJSONShape(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	e := newEnv(t, func(c *Config) { c.Now = func() time.Time { return now } })
	ctx := context.Background()
	key := store.InstanceKey{Service: "svc", ID: "a<&>"}
	if err := seedAgent(ctx, e.st, key, now, 6, 0.1, 1, 10); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"", "?names=" + nameGoroutines, "?window=5m"} {
		resp, err := http.Get(e.srv.URL + "/api/v1/fleet" + q)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || !json.Valid(body) {
			t.Fatalf("%s: %d %q, %v:\n%s", q, resp.StatusCode, resp.Header.Get("Content-Type"), err, body)
		}
		var top struct {
			WindowSeconds float64           `json:"window_seconds"`
			ComputedAt    int64             `json:"computed_at"`
			Instances     []json.RawMessage `json:"instances"`
		}
		if err := json.Unmarshal(body, &top); err != nil || len(top.Instances) != 1 || top.ComputedAt != now.UnixMilli() {
			t.Fatalf("%s: %v, %+v", q, err, top)
		}
		dec := json.NewDecoder(bytes.NewReader(top.Instances[0]))
		dec.Token() // {
		var keys []string
		for dec.More() {
			k, _ := dec.Token()
			keys = append(keys, k.(string))
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				t.Fatal(err)
			}
		}
		want := []string{"service", "id", "source", "first_seen", "last_seen", "open_findings", "open_leaks",
			"gc", "heap_bytes", "limit_bytes", "limit_source", "heap_fraction", "goroutines", "goroutines_series"}
		if q == "?names="+nameGoroutines {
			want = append(want[:5:5], append([]string{"latest"}, want[5:]...)...)
		}
		if fmt.Sprint(keys) != fmt.Sprint(want) {
			t.Errorf("%s: keys %v\nwant      %v", q, keys, want)
		}
		if !bytes.Contains(top.Instances[0], []byte(`"id":"a\u003c\u0026\u003e"`)) {
			t.Errorf("%s: instance ID not escaped as encoding/json does: %s", q, top.Instances[0])
		}
	}
}

// TestFleetOneInstanceFails: an instance whose figures cannot be read
// shows the error in its row; the other rows and the page stay up.
func TestFleetOneInstanceFails(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	e := newEnv(t, func(c *Config) { c.Now = func() time.Time { return now } })
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if err := seedAgent(ctx, e.st, store.InstanceKey{Service: "checkout", ID: id}, now, 90, 0.05, 1, 10); err != nil {
			t.Fatal(err)
		}
	}
	e.st.gcFail = "b"
	for _, warm := range []bool{false, true} {
		if warm {
			if err := e.c.refreshFleet(ctx); err != nil {
				t.Fatalf("background refresh with one failing instance: %v", err)
			}
		}
		var r struct {
			Instances []struct {
				ID    string
				GC    FleetGC
				Error string
			}
		}
		if code := getJSON(t, e.srv.URL+"/api/v1/fleet?since=24h", &r); code != 200 || len(r.Instances) != 2 {
			t.Fatalf("warm %v: %d, %+v", warm, code, r)
		}
		for _, in := range r.Instances {
			switch in.ID {
			case "a":
				if in.Error != "" || in.GC.Cycles == 0 {
					t.Errorf("warm %v: healthy row %+v", warm, in)
				}
			case "b":
				if !strings.Contains(in.Error, "corrupt") || in.GC.GCCPUFraction != -1 || in.GC.Cycles != 0 {
					t.Errorf("warm %v: failing row %+v, want its error and unknown figures", warm, in)
				}
			}
		}
	}
}
