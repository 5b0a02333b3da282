package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/gopulse/gopulse/analyze/trace"
	"github.com/gopulse/gopulse/store"
	"github.com/gopulse/gopulse/ui"
)

// putBundle commits a bundle with the given files straight into the store.
func putBundle(t *testing.T, st store.Store, id string, key store.InstanceKey, files map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	if err := st.UpsertInstance(ctx, store.Instance{Service: key.Service, ID: key.ID, Source: store.SourceAgent}, now); err != nil {
		t.Fatal(err)
	}
	bw, err := st.BeginBundle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		ct := "application/vnd.go.trace"
		if name != "trace.out" {
			ct = "application/vnd.google.protobuf+pprof"
		}
		if _, err := bw.WriteFile(ctx, name, ct, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bw.Commit(ctx, store.Bundle{ID: id, Instance: key, Rule: "gc-pause", FiredAt: now, ReceivedAt: now}); err != nil {
		t.Fatal(err)
	}
}

// The bundle page's trace summary is analyze/trace's reading of the real
// fixture, served through the UI's endpoint on a real collector.
func TestUITraceSummary(t *testing.T) {
	e := newEnv(t, nil)
	raw, err := os.ReadFile("../analyze/trace/testdata/start.trace")
	if err != nil {
		t.Fatal(err)
	}
	want, err := trace.Goroutines(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	key := store.InstanceKey{Service: "checkout", ID: "i1"}
	putBundle(t, e.st, "b-trace", key, map[string][]byte{"trace.out": raw, "heap.pb.gz": []byte("not a trace")})

	var got ui.TraceSummary
	if code := getJSON(t, e.srv.URL+"/ui/api/trace?bundle=b-trace&file=trace.out", &got); code != 200 {
		t.Fatalf("trace summary: status %d", code)
	}
	near := func(a float64, b time.Duration) bool { return math.Abs(a-b.Seconds()) < 1e-9 }
	if got.Version != want.Version || got.GCCycles != want.GC.Cycles || got.Goroutines != len(want.Goroutines) ||
		got.GCSTW.Count != want.GC.STW.Count || !near(got.GCSTW.TotalSeconds, want.GC.STW.Total) || !near(got.GCSTW.MaxSeconds, want.GC.STW.Max) ||
		got.OtherSTW.Count != want.GC.OtherSTW.Count || !near(got.OtherSTW.MaxSeconds, want.GC.OtherSTW.Max) {
		t.Errorf("summary %+v\ndoes not match analyze/trace: version %s, gc %+v, %d goroutines", got, want.Version, want.GC, len(want.Goroutines))
	}
	if got.GCSTW.Count == 0 {
		t.Errorf("fixture shows no GC stop-the-world: %+v", got.GCSTW)
	}
	lw := want.LongestWaiting(traceLongestWaiting)
	if len(got.LongestWaiting) != len(lw) || len(lw) == 0 {
		t.Fatalf("%d longest-waiting goroutines, want %d", len(got.LongestWaiting), len(lw))
	}
	for i, g := range got.LongestWaiting {
		if g.ID != lw[i].ID || !near(g.WaitingSeconds, lw[i].Waiting) || len(g.Stack) != len(lw[i].Stack) {
			t.Errorf("longest waiting #%d: %+v, want goroutine %d waiting %v", i, g, lw[i].ID, lw[i].Waiting)
		}
		if i > 0 && g.WaitingSeconds > got.LongestWaiting[i-1].WaitingSeconds {
			t.Errorf("longest waiting not sorted at %d", i)
		}
	}

	for _, tc := range []struct {
		name, url string
		status    int
	}{
		{"not a trace", "/ui/api/trace?bundle=b-trace&file=heap.pb.gz", http.StatusUnprocessableEntity},
		{"no such file", "/ui/api/trace?bundle=b-trace&file=nope.out", http.StatusNotFound},
		{"no such bundle", "/ui/api/trace?bundle=nope&file=trace.out", http.StatusNotFound},
		{"missing params", "/ui/api/trace?bundle=b-trace", http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get(e.srv.URL + tc.url)
			if err != nil {
				t.Fatal(err)
			}
			var v struct{ Code, Message string }
			err = json.Unmarshal(readAll(t, resp), &v)
			if resp.StatusCode != tc.status || err != nil || v.Message == "" {
				t.Errorf("GET %s: %d %+v (%v), want %d with a message", tc.url, resp.StatusCode, v, err, tc.status)
			}
		})
	}
}
