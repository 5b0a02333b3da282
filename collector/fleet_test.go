package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/gopulse/gopulse/store"
)

// seedAgent writes n readings, every 10 s up to end, of an agent instance
// whose GC takes gcShare of its busy CPU and pauses pauseMs per cycle,
// with goroutines growing by one per reading from g0.
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
		add("/cpu/classes/gc/total:cpu-seconds", 10*gcShare*k)
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
			store.Sample{Name: "/cpu/classes/gc/total:cpu-seconds", T: tm, Value: 10*0.40*359 + 10*0.10*(k-359)})
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
