package collector

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/gopulse/gopulse/store"
	"github.com/gopulse/gopulse/store/sqlite"
	"github.com/gopulse/gopulse/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fullStore makes Append fail with store.ErrFull when full is set, counts
// the calls the fleet and token tests look at, and holds GCCycles until
// gcGate is closed when it is set.
type fullStore struct {
	store.Store
	full        bool
	gcGate      chan struct{}
	gcFail      string // an instance ID whose GCCycles fails
	gcCalls     atomic.Int64
	openCalls   atomic.Int64
	lookupCalls atomic.Int64
}

func (f *fullStore) GCCycles(ctx context.Context, key store.InstanceKey, start, end int64) ([]store.GCCycle, []store.GCGap, error) {
	f.gcCalls.Add(1)
	if f.gcFail != "" && key.ID == f.gcFail {
		return nil, nil, errors.New("chunk 42: corrupt")
	}
	if f.gcGate != nil {
		select {
		case <-f.gcGate:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
	return f.Store.GCCycles(ctx, key, start, end)
}

func (f *fullStore) ListFindings(ctx context.Context, ff store.FindingFilter) ([]store.Finding, error) {
	if ff.State == store.FindingOpen {
		f.openCalls.Add(1)
	}
	return f.Store.ListFindings(ctx, ff)
}

func (f *fullStore) LookupToken(ctx context.Context, hash [sha256.Size]byte) (store.Token, error) {
	f.lookupCalls.Add(1)
	return f.Store.LookupToken(ctx, hash)
}

func (f *fullStore) Append(ctx context.Context, b store.Batch) (store.AppendResult, error) {
	if f.full {
		return store.AppendResult{}, fmt.Errorf("append: %w", store.ErrFull)
	}
	return f.Store.Append(ctx, b)
}

type env struct {
	c     *Collector
	st    *fullStore
	srv   *httptest.Server
	token string
}

func newEnv(t testing.TB, mod func(*Config)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	fs := &fullStore{Store: st}
	cfg := Config{Store: fs, BatchBurst: 1000, BatchRate: 1000}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReady()
	srv := httptest.NewServer(c.Handler())
	e := &env{c: c, st: fs, srv: srv}
	e.token = e.addToken(t, "tok-checkout", "checkout")
	t.Cleanup(func() {
		srv.Close()
		st.Close()
	})
	return e
}

func (e *env) addToken(t testing.TB, id, service string) string {
	t.Helper()
	secret, err := NewTokenSecret()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.CreateToken(context.Background(), store.Token{ID: id, Service: service, CreatedAt: time.Now()}, store.HashToken(secret)); err != nil {
		t.Fatal(err)
	}
	return secret
}

// testBatch is a batch as the agent builds it: a uint64, a float64 and a
// histogram metric, process facts, two GC cycles.
func testBatch(id, service, inst string, t0 time.Time, n int) *wire.MetricBatch {
	b := &wire.MetricBatch{
		BatchId:  id,
		Instance: &wire.Instance{Service: service, InstanceId: inst, Host: "h", Pid: 42, GoVersion: "go1.26"},
		Descriptors: []*wire.MetricDescriptor{
			{Name: "/sched/goroutines:goroutines", Kind: wire.MetricKind_METRIC_KIND_UINT64},
			{Name: "/gc/heap/live:bytes", Kind: wire.MetricKind_METRIC_KIND_FLOAT64},
			{Name: "/sched/pauses/total/gc:seconds", Kind: wire.MetricKind_METRIC_KIND_HISTOGRAM, Cumulative: true, Boundaries: []float64{0, 0.001, 0.01, 0.1}},
		},
		Status: &wire.AgentStatus{SpoolBytes: 1},
	}
	for i := 0; i < n; i++ {
		b.Samples = append(b.Samples, &wire.Sample{
			TimeUnixNano: t0.Add(time.Duration(i) * time.Second).UnixNano(),
			Values: []*wire.MetricValue{
				{Index: 0, Value: &wire.MetricValue_Uint64Value{Uint64Value: uint64(10 + i)}},
				{Index: 1, Value: &wire.MetricValue_Float64Value{Float64Value: 1e6}},
				{Index: 2, Value: &wire.MetricValue_Histogram{Histogram: &wire.SparseHistogram{BucketIndex: []uint32{1}, Count: []uint64{uint64(i + 1)}}}},
			},
			Process: &wire.ProcessFacts{RssBytes: 1 << 20, Threads: 5},
		})
	}
	b.GcCycles = []*wire.GCCycle{{Cycle: 1, EndTimeUnixNano: t0.UnixNano(), PauseNs: 1000}, {Cycle: 2, EndTimeUnixNano: t0.Add(time.Second).UnixNano(), PauseNs: 2000}}
	return b
}

func post(t *testing.T, url, token, ct, key string, body []byte, hdr map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", ct)
	if key != "" {
		req.Header.Set(wire.HeaderIdempotencyKey, key)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIngestBatch(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxBatchBytes = 16 << 10 })
	other := e.addToken(t, "tok-other", "other")
	now := time.Now()
	good, _ := proto.Marshal(testBatch("b1", "checkout", "i1", now, 10))
	big, _ := proto.Marshal(testBatch("b-big", "checkout", "i1", now, 1000))
	badIdx := testBatch("b-idx", "checkout", "i1", now, 1)
	badIdx.Samples[0].Values[0].Index = 9
	badIdxB, _ := proto.Marshal(badIdx)
	kindMismatch := testBatch("b-kind", "checkout", "i1", now, 1)
	kindMismatch.Samples[0].Values[0].Value = &wire.MetricValue_Float64Value{Float64Value: 1}
	kindMismatchB, _ := proto.Marshal(kindMismatch)
	future, _ := proto.Marshal(testBatch("b-future", "checkout", "i1", now.Add(48*time.Hour), 1))
	noSvc, _ := proto.Marshal(testBatch("b-nosvc", "", "i1", now, 1))
	url := e.srv.URL + wire.PathPushMetrics
	ct := wire.ContentTypeProto
	for _, tc := range []struct {
		name, token, ct, key string
		body                 []byte
		status               int
		dup                  bool
		msg                  string
	}{
		{"stored", e.token, ct, "b1", good, 200, false, ""},
		{"duplicate", e.token, ct, "b1", good, 200, true, ""},
		{"no token", "", ct, "b2", good, 401, false, "missing ingest token"},
		{"unknown token", "gpt_nope", ct, "b2", good, 401, false, "unknown or revoked"},
		{"other service", other, ct, "b1x", mustBatch("b1x", "checkout"), 403, false, `is for service`},
		{"content type", e.token, "application/json", "b2", good, 400, false, "content type"},
		{"key mismatch", e.token, ct, "b2", good, 400, false, "does not match batch_id"},
		{"no key", e.token, ct, "", good, 400, false, "missing Idempotency-Key"},
		{"garbage", e.token, ct, "g", []byte("\xff\xff\xff not proto"), 400, false, "not a gopulse.wire.v1.MetricBatch"},
		{"too large", e.token, ct, "b-big", big, 413, false, "exceeds the limit"},
		{"bad index", e.token, ct, "b-idx", badIdxB, 400, false, "refers to descriptor 9"},
		{"kind mismatch", e.token, ct, "b-kind", kindMismatchB, 400, false, "but got a float64"},
		{"future", e.token, ct, "b-future", future, 400, false, "ahead of the collector's clock"},
		{"no service", e.token, ct, "b-nosvc", noSvc, 400, false, "instance.service"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := post(t, url, tc.token, tc.ct, tc.key, tc.body, nil)
			body := readAll(t, resp)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status != 200 {
				if !strings.Contains(string(body), tc.msg) {
					t.Errorf("body %s does not say %q", body, tc.msg)
				}
				return
			}
			var a wire.Ack
			if err := proto.Unmarshal(body, &a); err != nil || a.IdempotencyKey != tc.key || a.Duplicate != tc.dup {
				t.Errorf("ack %v (err %v), want key %s dup %v", &a, err, tc.key, tc.dup)
			}
		})
	}
	// Stored once, with the derived series.
	ctx := context.Background()
	key := store.InstanceKey{Service: "checkout", ID: "i1"}
	pts, err := e.st.QuerySeries(ctx, store.SeriesQuery{Instance: key, Name: "/sched/goroutines:goroutines", Start: 0, End: now.Add(time.Hour).UnixMilli()})
	if err != nil || len(pts) != 10 || pts[9].Value != 19 {
		t.Errorf("goroutine series: %d points, err %v", len(pts), err)
	}
	names, _ := e.st.SeriesNames(ctx, key)
	for _, want := range []string{nameRSS, nameAgentSpool, "/sched/pauses/total/gc:seconds"} {
		if !contains(names, want) {
			t.Errorf("series %v lack %s", names, want)
		}
	}
	cycles, _, _ := e.st.GCCycles(ctx, key, 0, now.Add(time.Hour).UnixMilli())
	if len(cycles) != 2 {
		t.Errorf("%d GC cycles, want 2", len(cycles))
	}
}

func mustBatch(id, svc string) []byte {
	b, _ := proto.Marshal(testBatch(id, svc, "i1", time.Now(), 1))
	return b
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func TestIngestRateLimitAndFull(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.BatchRate, c.BatchBurst = 0.5, 2 })
	url := e.srv.URL + wire.PathPushMetrics
	var statuses []int
	for i := 0; i < 3; i++ {
		resp := post(t, url, e.token, wire.ContentTypeProto, fmt.Sprint("r", i), mustBatch(fmt.Sprint("r", i), "checkout"), nil)
		readAll(t, resp)
		statuses = append(statuses, resp.StatusCode)
		if resp.StatusCode == 429 && resp.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	}
	if fmt.Sprint(statuses) != "[200 200 429]" {
		t.Errorf("statuses %v, want [200 200 429]", statuses)
	}
	// Another instance has its own bucket; a full store answers 503.
	e.st.full = true
	b, _ := proto.Marshal(testBatch("f1", "checkout", "i2", time.Now(), 1))
	resp := post(t, url, e.token, wire.ContentTypeProto, "f1", b, nil)
	body := readAll(t, resp)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "storage full") {
		t.Errorf("full store: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	e.st.full = false
	resp = post(t, url, e.token, wire.ContentTypeProto, "f1", b, nil)
	readAll(t, resp)
	if resp.StatusCode != 200 {
		t.Errorf("after space freed: %d", resp.StatusCode)
	}
}

// bundleBody builds a gzipped bundle stream.
func bundleBody(t *testing.T, id string, files map[string][]byte, cut int) []byte {
	t.Helper()
	var raw bytes.Buffer
	bw, err := wire.NewBundleWriter(&raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"heap.pb.gz", "goroutines.txt", "goroutine.pb.gz", "goroutineleak.pb.gz"} {
		if data, ok := files[name]; ok {
			if _, err := bw.WriteFile(name, "application/vnd.google.protobuf+pprof", bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := bw.Close(&wire.BundleManifest{EventId: id, Rule: "gc-pause", Reason: "test",
		Instance: &wire.Instance{Service: "checkout", InstanceId: "i1"}, FiredAtUnixNano: time.Now().UnixNano(),
		Values: []*wire.RuleValue{{Name: "pause", Value: 0.08, Threshold: 0.05, Unit: "s"}}}); err != nil {
		t.Fatal(err)
	}
	b := raw.Bytes()
	if cut > 0 {
		b = b[:len(b)-cut]
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(b)
	zw.Close()
	return gz.Bytes()
}

func TestIngestBundle(t *testing.T) {
	e := newEnv(t, nil)
	heap := bytes.Repeat([]byte("heap-profile-bytes "), 20000) // several chunks
	url := e.srv.URL + wire.PathPushBundle
	gz := map[string]string{"Content-Encoding": "gzip"}
	for _, tc := range []struct {
		name   string
		id     string
		body   []byte
		hdr    map[string]string
		status int
		dup    bool
	}{
		{"stored", "e1", bundleBody(t, "e1", map[string][]byte{"heap.pb.gz": heap, "goroutines.txt": []byte("x")}, 0), gz, 200, false},
		{"duplicate", "e1", []byte("not even read"), gz, 200, true},
		{"cut", "e2", bundleBody(t, "e2", map[string][]byte{"heap.pb.gz": heap}, 5), gz, 400, false},
		{"not gzip", "e3", []byte("plain"), gz, 400, false},
		{"bad magic", "e4", []byte("NOT-A-BUNDLE\n"), nil, 400, false},
		{"id mismatch", "e5", bundleBody(t, "other", map[string][]byte{"heap.pb.gz": heap}, 0), gz, 400, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := post(t, url, e.token, wire.ContentTypeBundle, tc.id, tc.body, tc.hdr)
			body := readAll(t, resp)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status == 200 {
				var a wire.Ack
				proto.Unmarshal(body, &a)
				if a.Duplicate != tc.dup {
					t.Errorf("duplicate %v, want %v", a.Duplicate, tc.dup)
				}
			}
		})
	}
	// Nothing of the refused bundles was kept; the stored one reads back
	// byte for byte, by short name, with its content type.
	if _, err := e.st.GetBundle(context.Background(), "e2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("cut bundle: %v, want not found", err)
	}
	resp, err := http.Get(e.srv.URL + "/api/v1/bundles/e1/heap")
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, resp)
	if resp.StatusCode != 200 || !bytes.Equal(got, heap) || resp.Header.Get("Content-Type") != "application/vnd.google.protobuf+pprof" {
		t.Errorf("file: %d %q, %d bytes (want %d)", resp.StatusCode, resp.Header.Get("Content-Type"), len(got), len(heap))
	}
	var meta Bundle
	getJSON(t, e.srv.URL+"/api/v1/bundles/e1", &meta)
	if len(meta.Files) != 2 || meta.Files[0].SHA256 != fmt.Sprintf("%x", sha256.Sum256(heap)) || meta.Rule != "gc-pause" {
		t.Errorf("metadata %+v", meta)
	}
}

// TestBundleLeakProfile: a bundle's goroutineleak.pb.gz (the runtime's
// own leak verdicts, which the agent adds on Go 1.27) marks the leaked
// goroutines of the snapshot taken from its goroutine profile; without it,
// or when it cannot be read, the snapshot is still stored, unmarked.
func TestBundleLeakProfile(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "analyze", "goroutine", "testdata", "real", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	prof, leaks := read("goroutine.pb.gz"), read("goroutineleak.pb.gz")
	e := newEnv(t, nil)
	for _, tc := range []struct {
		name       string
		files      map[string][]byte
		wantLeaked int
	}{
		// 21: the leak profile's total; each of its 11 stacks is a group of
		// the goroutine profile, taken by the same run of testprog/dumps.
		{"with leak profile", map[string][]byte{"goroutine.pb.gz": prof, "goroutineleak.pb.gz": leaks}, 21},
		{"without", map[string][]byte{"goroutine.pb.gz": prof}, 0},
		{"leak profile unreadable", map[string][]byte{"goroutine.pb.gz": prof, "goroutineleak.pb.gz": []byte("not a profile")}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "lp-" + strings.ReplaceAll(tc.name, " ", "-")
			resp := post(t, e.srv.URL+wire.PathPushBundle, e.token, wire.ContentTypeBundle, id,
				bundleBody(t, id, tc.files, 0), map[string]string{"Content-Encoding": "gzip"})
			if body := readAll(t, resp); resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			snaps, err := e.st.GoroutineSnapshots(context.Background(), store.InstanceKey{Service: "checkout", ID: "i1"}, 0, math.MaxInt64, 100)
			if err != nil {
				t.Fatal(err)
			}
			var got *store.GoroutineSnapshot
			for i := range snaps {
				if snaps[i].Source == "bundle:"+id {
					got = &snaps[i]
				}
			}
			if got == nil {
				t.Fatalf("no snapshot from bundle %s among %d", id, len(snaps))
			}
			leaked := 0
			for _, g := range got.Groups {
				leaked += g.Leaked
				if g.Leaked > g.Count {
					t.Errorf("group %s: %d leaked of %d", g.Key, g.Leaked, g.Count)
				}
			}
			if leaked != tc.wantLeaked {
				t.Errorf("%d goroutines marked leaked, want %d (%d goroutines in %d groups)", leaked, tc.wantLeaked, got.Goroutines, len(got.Groups))
			}
		})
	}
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b := readAll(t, resp)
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v: %s", url, err, b)
		}
	}
	return resp.StatusCode
}

func TestAPI(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now()
	b, _ := proto.Marshal(testBatch("a1", "checkout", "i1", now.Add(-time.Minute), 30))
	readAll(t, post(t, e.srv.URL+wire.PathPushMetrics, e.token, wire.ContentTypeProto, "a1", b, nil))
	var insts struct{ Instances []Instance }
	getJSON(t, e.srv.URL+"/api/v1/instances", &insts)
	if len(insts.Instances) != 1 || insts.Instances[0].Service != "checkout" || insts.Instances[0].ID != "i1" || insts.Instances[0].Source != "agent" {
		t.Fatalf("instances %+v", insts)
	}
	var series struct{ Points []Point }
	getJSON(t, e.srv.URL+"/api/v1/instances/checkout/i1/series?name=/sched/goroutines:goroutines&start=1h", &series)
	if len(series.Points) != 30 {
		t.Errorf("raw series: %d points, want 30", len(series.Points))
	}
	getJSON(t, e.srv.URL+"/api/v1/instances/checkout/i1/series?name=/sched/goroutines:goroutines&start=1h&step=1m", &series)
	var total int64
	for _, p := range series.Points {
		total += p.Count
	}
	if total != 30 || len(series.Points) > 3 {
		t.Errorf("stepped series: %d points holding %d samples", len(series.Points), total)
	}
	getJSON(t, e.srv.URL+"/api/v1/instances/checkout/i1/series?name=/sched/pauses/total/gc:seconds&start=1h", &series)
	if len(series.Points) != 30 || series.Points[0].Hist == nil || series.Points[0].Hist.Boundaries[0] != 0.0 {
		t.Errorf("histogram series %+v", series.Points[:1])
	}
	var gcr struct {
		Cycles []struct{ Cycle uint32 }
		Health GCHealth
	}
	getJSON(t, e.srv.URL+"/api/v1/instances/checkout/i1/gc?start=1h", &gcr)
	if len(gcr.Cycles) != 2 || gcr.Health.Cycles != 2 {
		t.Errorf("gc %+v", gcr)
	}
	var fleet struct {
		Instances []struct {
			Service string
			Latest  map[string]struct{ Value float64 }
		}
	}
	getJSON(t, e.srv.URL+"/api/v1/fleet?names="+nameGoroutines, &fleet)
	if len(fleet.Instances) != 1 || fleet.Instances[0].Latest[nameGoroutines].Value != 39 {
		t.Errorf("fleet %+v", fleet)
	}
	for url, want := range map[string]int{
		"/api/v1/instances/checkout/nope":                     404,
		"/api/v1/instances/checkout/i1/series":                400,
		"/api/v1/instances/checkout/i1/series?name=x&start=y": 400,
		"/api/v1/findings/abc":                                400,
		"/api/v1/findings/999":                                404,
		"/api/v1/findings?state=maybe":                        400,
		"/api/v1/bundles/nope":                                404,
		"/api/v1/services":                                    200,
	} {
		var v any
		if got := getJSON(t, e.srv.URL+url, &v); got != want {
			t.Errorf("GET %s: %d, want %d", url, got, want)
		}
	}
}

func TestReadAuth(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.ReadAuth = func(r *http.Request) error {
			if r.Header.Get("Authorization") == "Bearer ok" {
				return nil
			}
			return ErrUnauthenticated
		}
	})
	resp, _ := http.Get(e.srv.URL + "/api/v1/instances")
	readAll(t, resp)
	if resp.StatusCode != 401 {
		t.Errorf("no credentials: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/instances", nil)
	req.Header.Set("Authorization", "Bearer ok")
	resp, _ = http.DefaultClient.Do(req)
	readAll(t, resp)
	if resp.StatusCode != 200 {
		t.Errorf("with credentials: %d", resp.StatusCode)
	}
}

func TestGCFindingLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	key := store.InstanceKey{Service: "checkout", ID: "i1"}
	t0 := time.Now().Add(-20 * time.Minute).Truncate(time.Second)
	var cycles []store.GCCycle
	for i := 0; i < 20; i++ {
		pause := int64(200_000) // 0.2 ms
		if i < 10 {
			pause = 120e6 // 120 ms: clearly unhealthy
		}
		cycles = append(cycles, store.GCCycle{Cycle: uint32(i + 1), EndTime: t0.Add(time.Duration(i) * time.Minute).UnixMilli(), PauseNs: pause})
	}
	if _, err := e.st.Append(ctx, store.Batch{Instance: store.Instance{Service: "checkout", ID: "i1", Source: store.SourceAgent}, ReceivedAt: time.Now(), GCCycles: cycles}); err != nil {
		t.Fatal(err)
	}
	e.c.cfg.GCWindow = 10 * time.Minute
	// At t0+9m the window (which ends a minute or two back, see analyzeGC)
	// holds the slow cycles; at t0+21.5m only fast ones.
	if err := e.c.analyzeGC(ctx, key, t0.Add(9*time.Minute)); err != nil {
		t.Fatal(err)
	}
	fs, _ := e.st.ListFindings(ctx, store.FindingFilter{Kind: KindGCPause})
	if len(fs) != 1 || fs[0].State != store.FindingOpen || !strings.Contains(fs[0].Title, "120.0 ms") {
		t.Fatalf("after slow pauses: %+v", fs)
	}
	if err := e.c.analyzeGC(ctx, key, t0.Add(21*time.Minute+30*time.Second)); err != nil {
		t.Fatal(err)
	}
	f, _ := e.st.GetFinding(ctx, fs[0].ID)
	if f.State != store.FindingResolved || len(f.History) != 2 {
		t.Errorf("after fast pauses: state %s, history %+v", f.State, f.History)
	}
}
