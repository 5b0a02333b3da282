package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gopulse/gopulse/ui"
)

// fakeAPI answers the /api/v1 calls the UI makes with synthetic data of
// realistic size: n instances for the fleet, and for any instance every
// series over whatever range is asked, one point per step. It measures
// the browser's side (download, parse, draw), not the store's queries —
// those have their own benchmarks in store/ and bench/.
func fakeAPI(n int) http.Handler {
	mux := http.NewServeMux()
	now := time.Now()
	inst := func(i int) map[string]any {
		return map[string]any{"service": fmt.Sprintf("svc-%02d", i%50), "id": fmt.Sprintf("inst-%04d", i), "host": fmt.Sprintf("host-%d", i),
			"pid": 1000 + i, "go_version": "go1.26.8", "agent_version": "0.1.0", "source": "agent",
			"first_seen": now.Add(-8 * 24 * time.Hour), "last_seen": now.Add(-time.Duration(i%30) * time.Second)}
	}
	write := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /api/v1/fleet", func(w http.ResponseWriter, r *http.Request) {
		rows := make([]map[string]any, n)
		for i := range rows {
			row := inst(i)
			spark := make([][2]float64, 30)
			for k := range spark {
				spark[k] = [2]float64{float64(now.Add(time.Duration(k-30) * 30 * time.Second).UnixMilli()), float64(50 + i%700 + k)}
			}
			row["gc"] = map[string]any{"cycles": 100 + i%50, "pause_p99_ms": float64(i%97) / 10, "pause_max_ms": float64(i%97) / 5,
				"gc_cpu_fraction": float64(i%40) / 100, "gc_cpu_source": "runtime/metrics cpu classes (idle marking out, of GOMAXPROCS capacity)"}
			row["heap_bytes"], row["limit_bytes"], row["limit_source"] = float64(20+i%300)*1e6, 512e6, "GOMEMLIMIT"
			row["heap_fraction"] = float64(20+i%300) * 1e6 / 512e6
			row["goroutines"], row["goroutines_series"] = 50+i%700, spark
			row["open_findings"], row["open_leaks"] = 0, 0
			rows[i] = row
		}
		write(w, map[string]any{"window_seconds": 900, "instances": rows})
	})
	mux.HandleFunc("GET /api/v1/findings", func(w http.ResponseWriter, r *http.Request) {
		var fs []map[string]any
		for i := 0; i < n && i < 20; i++ {
			fs = append(fs, map[string]any{"id": i + 1, "service": fmt.Sprintf("svc-%02d", (i*7)%50), "instance": fmt.Sprintf("inst-%04d", i*7),
				"kind": "goroutine-leak", "severity": "error", "title": fmt.Sprintf("%d goroutines leak in main.worker (chan receive)", 100+i),
				"state": "open", "opened_at": now.Add(-time.Hour), "last_seen": now})
		}
		write(w, map[string]any{"findings": fs})
	})
	mux.HandleFunc("GET /api/v1/bundles", func(w http.ResponseWriter, r *http.Request) {
		var bs []map[string]any
		for i := 0; i < 20; i++ {
			bs = append(bs, map[string]any{"id": fmt.Sprintf("b%d", i), "rule": "gc-pause", "reason": "pause 60 ms", "fired_at": now.Add(-time.Duration(i) * 7 * time.Hour),
				"files": []map[string]any{{"name": "heap.pb.gz", "url": "/api/v1/bundles/b/heap.pb.gz"}}, "size": 12345})
		}
		write(w, map[string]any{"bundles": bs})
	})
	series := []string{"/sched/pauses/total/gc:seconds", "/cpu/classes/gc/total:cpu-seconds", "/cpu/classes/total:cpu-seconds", "/cpu/classes/idle:cpu-seconds",
		"/gc/heap/live:bytes", "/gc/heap/goal:bytes", "/gc/gomemlimit:bytes", "/sched/goroutines:goroutines", "/sched/goroutines/running:goroutines",
		"/sched/goroutines/runnable:goroutines", "/sched/goroutines/waiting:goroutines", "/sched/latencies:seconds", "/process/rss:bytes"}
	mux.HandleFunc("GET /api/v1/instances/{s}/{id}", func(w http.ResponseWriter, r *http.Request) {
		write(w, map[string]any{"instance": inst(1), "series": series})
	})
	mux.HandleFunc("GET /api/v1/instances/{s}/{id}/gc", func(w http.ResponseWriter, r *http.Request) {
		write(w, map[string]any{"cycles": []any{}, "gaps": []any{}, "health": map[string]any{"window_seconds": 300, "cycles": 120, "cycles_per_second": 0.4,
			"pause_p50_ms": 0.2, "pause_p99_ms": 1.3, "pause_max_ms": 4, "gc_cpu_fraction": 0.06, "heap_bytes": 120e6, "limit_bytes": 512e6, "limit_source": "GOMEMLIMIT", "heap_fraction": 0.23}})
	})
	// The runtime's pause histogram has about 160 buckets.
	bounds := []any{"-Inf"}
	for b := 1e-9; b < 1e3; b *= 1.15 {
		bounds = append(bounds, b)
	}
	bounds = append(bounds, "+Inf")
	mux.HandleFunc("GET /api/v1/instances/{s}/{id}/series", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		start, _ := strconv.ParseInt(q.Get("start"), 10, 64)
		end, _ := strconv.ParseInt(q.Get("end"), 10, 64)
		step, _ := time.ParseDuration(q.Get("step"))
		if step <= 0 {
			step = time.Minute
		}
		if q.Get("start") == "1h" || q.Get("start") == "15m" {
			end, start = now.UnixMilli(), now.Add(-time.Hour).UnixMilli()
		}
		name := q.Get("name")
		hist := strings.HasSuffix(name, ":seconds") && !strings.Contains(name, "cpu")
		var pts []map[string]any
		counts := make([]uint64, len(bounds)-1)
		k := 0
		for t := start - start%step.Milliseconds(); t < end; t += step.Milliseconds() {
			k++
			p := map[string]any{"t": t}
			if hist {
				for j := 60; j < 110; j++ {
					counts[j] += uint64((k*j)%7 + j%3)
				}
				p["hist"] = map[string]any{"boundaries": bounds, "counts": append([]uint64(nil), counts...)}
			} else {
				p["value"] = 1e6*(2+math.Sin(float64(k)/20)) + float64(k)*100
			}
			pts = append(pts, p)
		}
		write(w, map[string]any{"name": name, "points": pts})
	})
	mux.Handle("/", ui.Handler(ui.Options{}))
	return mux
}

// TestRenderSpeed measures how long the fleet page of 1,000 instances and
// the instance page over 7 days take to render in headless Chromium, from
// navigation start to the page's "ready" flag (data fetched, table or
// charts drawn). It logs the figures; with GOPULSE_SPEED_LIMIT=1 it fails above 1 s.
func TestRenderSpeed(t *testing.T) {
	srv := httptest.NewServer(fakeAPI(1000))
	defer srv.Close()
	b := newBrowser(t)
	fleet := b.bestReady(t, "fleet", srv.URL+"/")
	var rows int
	b.run(t, "rows", chromedp.Evaluate(`document.querySelectorAll('#fleet tbody tr[data-k]').length`, &rows))
	if rows != 1000 {
		t.Errorf("fleet shows %d rows, want 1000", rows)
	}
	inst := b.bestReady(t, "instance", srv.URL+"/instance/svc-01/inst-0001?range=168h")
	var points int
	b.run(t, "points", chromedp.Evaluate(`+document.body.dataset.points`, &points))
	t.Logf("fleet 1000 instances: %.0f ms; instance 7 days (%d points over all charts): %.0f ms", fleet, points, inst)
	// A time limit fails only on request (GOPULSE_SPEED_LIMIT=1, as the
	// speed measurement in docs/BENCHMARKS.md runs it): on a shared machine
	// the same page takes 0.6 s or 1.1 s, and CI must not turn on that.
	if os.Getenv("GOPULSE_SPEED_LIMIT") == "1" && (fleet > 1000 || inst > 1000) {
		t.Errorf("render too slow: fleet %.0f ms, instance %.0f ms; want < 1000 ms each", fleet, inst)
	}
}

// bestReady loads url three times and returns the best time to the page's
// ready flag in ms: the first load also compiles the script.
func (b *browser) bestReady(t *testing.T, page, url string) float64 {
	t.Helper()
	var state string
	best := math.Inf(1)
	for i := 0; i < 3; i++ {
		var at string
		b.run(t, "open "+url, chromedp.Navigate(url), waitReady(page, &state),
			chromedp.Evaluate(`document.body.dataset.readyAt`, &at))
		ms, _ := strconv.ParseFloat(at, 64)
		t.Logf("%s: ready after %.0f ms (load %d)", url, ms, i+1)
		best = math.Min(best, ms)
	}
	b.checkClean(t, url)
	return best
}
