package collector

import (
	"context"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	gcpkg "github.com/gopulse/gopulse/analyze/gc"
	"github.com/gopulse/gopulse/store"
)

// churnSamples are runtime/metrics readings every 10 s of a program that
// keeps a 64 MiB live heap at GOGC=100 and allocates 200 MiB/s on two
// CPUs, so the GC runs 3×/s and takes gcShare of the CPU capacity. They are
// written as the agent would: one sample per metric per reading.
func churnSamples(end time.Time, n int, gcShare float64) ([]store.Sample, []gcpkg.MetricSample) {
	const mib = 1 << 20
	var out []store.Sample
	var ref []gcpkg.MetricSample
	bounds := []float64{math.Inf(-1), 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, math.Inf(1)}
	for i := 0; i < n; i++ {
		t := end.Add(-time.Duration(n-1-i) * 10 * time.Second)
		k := float64(i)
		vals := map[string]float64{
			"/gc/cycles/total:gc-cycles":              30 * k,
			"/gc/cycles/forced:gc-cycles":             0,
			"/cpu/classes/gc/total:cpu-seconds":       20 * gcShare * k,
			"/cpu/classes/gc/mark/assist:cpu-seconds": 2 * gcShare * k,
			"/cpu/classes/gc/mark/idle:cpu-seconds":   0,
			"/cpu/classes/total:cpu-seconds":          20 * k,
			"/cpu/classes/idle:cpu-seconds":           0,
			"/gc/heap/allocs:bytes":                   2000 * mib * k,
			"/gc/heap/live:bytes":                     64 * mib,
			"/gc/heap/goal:bytes":                     128 * mib,
			"/gc/gogc:percent":                        100,
			"/gc/gomemlimit:bytes":                    math.MaxInt64,
			"/gc/limiter/last-enabled:gc-cycle":       0,
			"/sched/gomaxprocs:threads":               2,
			"/memory/classes/total:bytes":             200 * mib,
			"/memory/classes/heap/released:bytes":     10 * mib,
			"/memory/classes/heap/objects:bytes":      (100 + float64(i%3)*10) * mib,
			"/gc/scan/stack:bytes":                    mib,
			"/gc/scan/globals:bytes":                  0.1 * mib,
		}
		ms := gcpkg.MetricSample{Time: time.UnixMilli(t.UnixMilli()), Values: map[string]gcpkg.Value{}}
		for name, v := range vals {
			out = append(out, store.Sample{Name: name, T: t.UnixMilli(), Value: v})
			v := v
			ms.Values[name] = gcpkg.Value{Float64: &v}
		}
		counts := []uint64{0, 20 * uint64(i), 10 * uint64(i), uint64(i), 0, 0}
		out = append(out, store.Sample{Name: "/sched/pauses/total/gc:seconds", T: t.UnixMilli(), Hist: &store.Histogram{Boundaries: bounds, Counts: counts}})
		ms.Values["/sched/pauses/total/gc:seconds"] = gcpkg.Value{Histogram: &gcpkg.Histogram{Counts: counts, Buckets: bounds}}
		ref = append(ref, ms)
	}
	return out, ref
}

func TestGCAdvice(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	for _, tc := range []struct {
		name     string
		gcShare  float64
		scraped  bool
		strong   bool
		wantKind string // of the first advice item
	}{
		{"costly GC gets a strong GOGC advice", 0.30, false, true, "tune"},
		{"cheap GC: no change advised", 0.02, false, false, "info"},
		{"scraped instance: refused", 0, true, false, "refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Now = func() time.Time { return now } })
			ctx := context.Background()
			key := store.InstanceKey{Service: "checkout", ID: "i1"}
			in := store.Instance{Service: key.Service, ID: key.ID, Source: store.SourceAgent}
			var ref []gcpkg.MetricSample
			b := store.Batch{Instance: in, ReceivedAt: now}
			if tc.scraped {
				in.Source = store.SourceScraped
				b.Instance = in
				b.Samples = []store.Sample{{Name: nameMSHeapAlloc, T: now.UnixMilli() - 1000, Value: 1 << 20}}
			} else {
				b.Samples, ref = churnSamples(now.Add(-time.Second), 25, tc.gcShare)
			}
			if _, err := e.st.Append(ctx, b); err != nil {
				t.Fatal(err)
			}

			var got struct{ Advice GCAdvice }
			if code := getJSON(t, e.srv.URL+"/api/v1/instances/checkout/i1/gc", &got); code != 200 {
				t.Fatalf("gc: status %d", code)
			}
			adv := got.Advice
			if len(adv.Advice) == 0 || adv.Advice[0].Kind != tc.wantKind {
				t.Fatalf("advice %+v, want first item of kind %s", adv.Advice, tc.wantKind)
			}
			if !tc.scraped {
				// The collector's reading is analyze/gc's on the same samples.
				d, err := gcpkg.FromMetrics(ref, gcpkg.Settings{})
				if err != nil {
					t.Fatal(err)
				}
				want := gcpkg.Advise(d, gcpkg.Summarize(d), gcpkg.AdviceOptions{})
				if !reflect.DeepEqual(adv.Advice, want) {
					t.Errorf("advice\n%+v\nwant analyze/gc's\n%+v", adv.Advice, want)
				}
				if adv.Samples != 25 || adv.Summary == nil || math.Abs(adv.Summary.GCCPUFraction-tc.gcShare) > 1e-6 {
					t.Errorf("samples %d, summary %+v; want 25 readings and GC CPU %.2f", adv.Samples, adv.Summary, tc.gcShare)
				}
			} else if !strings.Contains(adv.Advice[0].Text, "agent") {
				t.Errorf("refusal %q does not say what to do", adv.Advice[0].Text)
			}
			if (adv.Strong != nil) != tc.strong {
				t.Errorf("strong advice %+v, want strong=%v", adv.Strong, tc.strong)
			}

			if err := e.c.AnalyzeNow(ctx); err != nil {
				t.Fatal(err)
			}
			fs, err := e.st.ListFindings(ctx, store.FindingFilter{Kind: KindGCAdvice, State: store.FindingOpen})
			if err != nil {
				t.Fatal(err)
			}
			if !tc.strong {
				if len(fs) != 0 {
					t.Errorf("unexpected gc-advice finding %q", fs[0].Title)
				}
				return
			}
			if len(fs) != 1 || !strings.Contains(fs[0].Title, "GOGC=") || fs[0].Summary != adv.Strong.Text {
				t.Fatalf("gc-advice findings %+v; want one naming GOGC with the advice text", fs)
			}
			var det gcFindingDetails
			if err := json.Unmarshal(fs[0].Details, &det); err != nil || len(det.Advice) == 0 || det.Summary == nil {
				t.Errorf("finding details lack the advice: %s (%v)", fs[0].Details, err)
			}
			// A GC CPU finding of the same pass carries the advice too.
			cpu, _ := e.st.ListFindings(ctx, store.FindingFilter{Kind: KindGCCPU, State: store.FindingOpen})
			for _, f := range cpu {
				if !strings.Contains(string(f.Details), `"advice"`) {
					t.Errorf("gc-cpu finding details lack the advice: %s", f.Details)
				}
			}
		})
	}
}

// TestGCAdvicePerMinute checks that the background analysis, which reads
// one reading per minute (from the rollups where the store has them),
// reaches the same figures and advice as the raw readings.
func TestGCAdvicePerMinute(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	for _, tc := range []struct {
		name        string
		gcShare     float64
		rollUpFirst bool
	}{
		{"costly GC, raw only", 0.30, false},
		{"costly GC, rolled up", 0.30, true},
		{"cheap GC, rolled up", 0.02, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Now = func() time.Time { return now } })
			ctx := context.Background()
			key := store.InstanceKey{Service: "checkout", ID: "i1"}
			b := store.Batch{Instance: store.Instance{Service: key.Service, ID: key.ID, Source: store.SourceAgent}, ReceivedAt: now}
			b.Samples, _ = churnSamples(now, 90, tc.gcShare) // 15 minutes, 10 s apart
			if _, err := e.st.Append(ctx, b); err != nil {
				t.Fatal(err)
			}
			if tc.rollUpFirst {
				if _, err := e.st.Maintain(ctx, now); err != nil {
					t.Fatal(err)
				}
			}
			raw, err := e.c.GCAdviceOf(ctx, key, 10*time.Minute, now)
			if err != nil {
				t.Fatal(err)
			}
			perMin, err := e.c.gcAdvice(ctx, key, 10*time.Minute, now, true)
			if err != nil {
				t.Fatal(err)
			}
			if raw.Samples != 61 || perMin.Samples < 9 || perMin.Samples > 11 {
				t.Fatalf("readings: raw %d, per minute %d; want 61 and about 10", raw.Samples, perMin.Samples)
			}
			r, m := raw.Summary, perMin.Summary
			if r == nil || m == nil {
				t.Fatalf("summaries %v %v", r, m)
			}
			for _, f := range []struct {
				name   string
				rv, mv float64
			}{
				{"GC CPU", r.GCCPUFraction, m.GCCPUFraction},
				{"cycles/s", r.CyclesPerSecond, m.CyclesPerSecond},
				{"alloc rate", r.AllocBytesPerSecond, m.AllocBytesPerSecond},
				{"pause p99", r.PauseP99Seconds, m.PauseP99Seconds},
			} {
				if math.Abs(f.mv-f.rv) > 1e-9*math.Max(1, math.Abs(f.rv)) {
					t.Errorf("%s: per minute %v, raw %v", f.name, f.mv, f.rv)
				}
			}
			if len(raw.Advice) == 0 || len(perMin.Advice) == 0 || raw.Advice[0].Kind != perMin.Advice[0].Kind {
				t.Errorf("advice raw %+v, per minute %+v", raw.Advice, perMin.Advice)
			}
		})
	}
}
