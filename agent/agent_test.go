package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"go.uber.org/goleak"
	"golang.org/x/exp/trace"

	"github.com/gopulse/gopulse/wire/wiretest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func noEnv(string) string { return "" }

func TestOptionsValidation(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		env     map[string]string
		wantErr string
	}{
		{"zero value works", Options{}, nil, ""},
		{"bad collector", Options{Collector: "127.0.0.1:7070"}, nil, "Options.Collector"},
		{"negative interval", Options{SampleInterval: -time.Second}, nil, "Options.SampleInterval"},
		{"batch shorter than sample", Options{SampleInterval: 5 * time.Second, BatchInterval: time.Second}, nil, "Options.BatchInterval"},
		{"flight recorder mode", Options{FlightRecorder: "sometimes"}, nil, "Options.FlightRecorder"},
		{"arm level", Options{ArmLevel: 2}, nil, "Options.ArmLevel"},
		{"fraction as percent", Options{Triggers: Triggers{HeapLimitFraction: 85}}, nil, "Options.Triggers.HeapLimitFraction"},
		{"huge cpu profile", Options{CPUProfileDuration: time.Hour}, nil, "Options.CPUProfileDuration"},
		{"bad env duration", Options{}, map[string]string{"GOPULSE_SAMPLE_INTERVAL": "fast"}, "GOPULSE_SAMPLE_INTERVAL"},
		{"bad env spool size", Options{}, map[string]string{"GOPULSE_SPOOL_MAX_BYTES": "-1"}, "GOPULSE_SPOOL_MAX_BYTES"},
		{"bad env mode", Options{}, map[string]string{"GOPULSE_FLIGHT_RECORDER": "maybe"}, "Options.FlightRecorder"},
		{"env collector overrides", Options{Collector: "http://a:1"}, map[string]string{"GOPULSE_COLLECTOR": "not a url"}, "Options.Collector"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			o.SpoolDir = t.TempDir()
			a, err := build(o, func(k string) string { return tt.env[k] })
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				a.Stop(context.Background())
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
			}
		})
	}
}

func TestEnvOverrides(t *testing.T) {
	env := map[string]string{"GOPULSE_SERVICE": "svc", "GOPULSE_COLLECTOR": "http://127.0.0.1:1", "GOPULSE_TOKEN": "tok",
		"GOPULSE_BATCH_INTERVAL": "20s", "GOPULSE_FLIGHT_RECORDER": "OFF", "GOPULSE_SPOOL_DIR": "-", "GOPULSE_CPU_PROFILE": "2s"}
	a, err := build(Options{Service: "code"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop(context.Background())
	o := a.opts
	if o.Service != "svc" || o.Collector != "http://127.0.0.1:1" || o.Token != "tok" || o.BatchInterval != 20*time.Second ||
		o.FlightRecorder != FlightRecorderOff || a.spool != nil || o.CPUProfileDuration != 2*time.Second {
		t.Fatalf("env not applied: %+v", o)
	}
}

func TestTickAllocatesNothing(t *testing.T) {
	a, err := build(Options{SpoolDir: "-", FlightRecorder: FlightRecorderOff, BatchInterval: time.Hour}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop(context.Background())
	now := time.Now()
	step := func() {
		now = now.Add(time.Second)
		a.tick(now)
		a.filled = 0 // stay in steady state: no batch is due within the hour
	}
	for i := 0; i < 5; i++ {
		step()
	}
	if n := testing.AllocsPerRun(50, step); n != 0 {
		t.Fatalf("a sampling tick allocates %v times, want 0", n)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func testOptions(t *testing.T, url string, logs io.Writer) Options {
	return Options{
		Service: "test", Collector: url, SpoolDir: t.TempDir(),
		SampleInterval: 20 * time.Millisecond, BatchInterval: 100 * time.Millisecond,
		CPUProfileDuration: 100 * time.Millisecond, RetryBase: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond,
		Triggers:       Triggers{Cooldown: time.Millisecond, MaxBundlesPerHour: 1000},
		FlightRecorder: FlightRecorderOn, FlightRecorderMinAge: 200 * time.Millisecond, FlightRecorderMaxBytes: 1 << 20,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEndToEnd(t *testing.T) {
	srv, err := wiretest.New()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	logs := &syncBuf{}
	a, err := Start(context.Background(), testOptions(t, srv.URL, logs))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	time.Sleep(100 * time.Millisecond)
	a.Trigger("end-to-end test")
	manual := func() *wiretest.Bundle {
		for _, b := range srv.Bundles() {
			if b.Manifest.Rule == "manual" {
				return b
			}
		}
		return nil
	}
	waitFor(t, "a bundle", func() bool {
		if manual() != nil {
			return true
		}
		if ev := a.Status().Events; len(ev) > 0 && ev[0].Error != "" {
			t.Fatalf("capture failed: %+v\nlogs:\n%s", ev[0], logs.String())
		}
		return false
	})
	if err := a.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := a.Stop(context.Background()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	a.Trigger("after stop") // must not panic or block

	bd := manual()
	if bd.Manifest.Reason != "end-to-end test" || bd.Manifest.Instance.GetService() != "test" {
		t.Errorf("manifest %v", bd.Manifest)
	}
	want := []string{"trace.out", "goroutine.pb.gz", "goroutines.txt", "heap.pb.gz", "cpu.pb.gz", "metrics.json", "facts.json"}
	// Go 1.27, or 1.26 with GOEXPERIMENT=goroutineleakprofile (.ci/run
	// runs this test so too).
	if pprof.Lookup("goroutineleak") != nil {
		want = append(want, "goroutineleak.pb.gz")
	}
	for _, name := range want {
		b, ok := bd.Files[name]
		if !ok {
			t.Errorf("bundle lacks %s; notes %q", name, bd.Manifest.Notes)
			continue
		}
		switch {
		case strings.HasSuffix(name, ".pb.gz"):
			if _, err := profile.ParseData(b); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		case name == "trace.out":
			r, err := trace.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Errorf("trace: %v", err)
				break
			}
			if _, err := r.ReadEvent(); err != nil {
				t.Errorf("trace first event: %v", err)
			}
		case strings.HasSuffix(name, ".json"):
			if !json.Valid(b) {
				t.Errorf("%s invalid JSON", name)
			}
		}
	}

	batches := srv.Batches()
	if len(batches) == 0 {
		t.Fatal("no batches")
	}
	var samples, cycles int
	for i, b := range batches {
		if b.Sequence != uint64(i+1) {
			t.Fatalf("batch %d has sequence %d", i, b.Sequence)
		}
		samples += len(b.Samples)
		cycles += len(b.GcCycles)
		for _, s := range b.Samples {
			if s.Process.GetRssBytes() == 0 || len(s.Values) == 0 {
				t.Fatalf("empty sample %v", s)
			}
		}
		if len(b.Descriptors) == 0 {
			t.Fatal("no descriptors")
		}
	}
	if cycles < 3 {
		t.Errorf("%d GC cycles shipped after 3 runtime.GC calls", cycles)
	}
	_, dupB, _, bad := srv.Counts()
	if len(bad) > 0 {
		t.Errorf("server saw bad requests: %q", bad)
	}
	t.Logf("%d batches, %d samples, %d cycles, %d duplicate batches", len(batches), samples, cycles, dupB)
}

// TestCollectorDownWhileTriggersFire is the delivery guarantee: the
// collector is down (3 s here; the logic does not depend on the length)
// while batches accumulate and triggers fire; after recovery every batch and
// every bundle arrives exactly once after de-duplication.
func TestCollectorDownWhileTriggersFire(t *testing.T) {
	srv, err := wiretest.New()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	logs := &syncBuf{}
	o := testOptions(t, srv.URL, logs)
	o.FlightRecorder = FlightRecorderOff
	a, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop(context.Background())
	waitFor(t, "first batch", func() bool { return len(srv.Batches()) > 0 })
	srv.Down()
	end := time.Now().Add(3 * time.Second)
	fired := 0
	for time.Now().Before(end) {
		a.Trigger("while down")
		fired++
		time.Sleep(400 * time.Millisecond)
	}
	// Let the last capture finish: Stop would cut it short, and on a loaded
	// machine (or under -race) a capture outlasts any fixed sleep.
	waitFor(t, "the last capture to finish", func() bool { return !a.capturing.Load() })
	events := len(a.Status().Events)
	if err := srv.Up(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "all bundles", func() bool { return len(srv.Bundles()) >= events })
	if err := a.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	batches := srv.Batches()
	for i, b := range batches {
		if b.Sequence != uint64(i+1) {
			t.Fatalf("batch %d of %d has sequence %d: a batch is missing or out of order", i, len(batches), b.Sequence)
		}
	}
	if a.seq != uint64(len(batches)) {
		t.Fatalf("agent made %d batches, collector has %d distinct", a.seq, len(batches))
	}
	if got := len(srv.Bundles()); got != events {
		t.Fatalf("collector has %d distinct bundles, agent captured %d", got, events)
	}
	for _, e := range a.Status().Events {
		if e.Error != "" {
			t.Errorf("event %s: %s", e.EventID, e.Error)
		}
	}
	if !strings.Contains(logs.String(), "failed") || !strings.Contains(logs.String(), "reachable again") {
		t.Errorf("outage and recovery not logged:\n%s", logs.String())
	}
	t.Logf("%d batches, %d bundles (%d triggers)", len(batches), events, fired)
}

func TestUnwritableSpool(t *testing.T) {
	srv, _ := wiretest.New()
	defer srv.Close()
	logs := &syncBuf{}
	o := testOptions(t, srv.URL, logs)
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	o.SpoolDir = filepath.Join(f, "spool") // a path under a file: never writable
	a, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	a.Trigger("no spool")
	waitFor(t, "streamed bundle", func() bool { return len(srv.Bundles()) == 1 })
	a.Stop(context.Background())
	if !strings.Contains(logs.String(), "spool disabled") {
		t.Fatalf("no warning:\n%s", logs.String())
	}
}

func TestHandler(t *testing.T) {
	a, err := Start(context.Background(), Options{SpoolDir: t.TempDir(), SampleInterval: 20 * time.Millisecond, BatchInterval: 100 * time.Millisecond,
		CPUProfileDuration: 50 * time.Millisecond, FlightRecorder: FlightRecorderOff})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop(context.Background())
	h := a.Handler()
	waitFor(t, "a sample", func() bool { return !a.Status().SampledAt.IsZero() })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/gopulse/", nil))
	var st Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || st.Goroutines == 0 {
		t.Fatalf("status %s: %v", rec.Body, err)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/gopulse/trigger", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET trigger: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/debug/gopulse/trigger?reason=look", nil))
	if rec.Code != http.StatusAccepted {
		t.Fatalf("POST trigger: %d", rec.Code)
	}
	// No collector: the bundle is kept in the spool.
	waitFor(t, "the event", func() bool { ev := a.Status().Events; return len(ev) == 1 && ev[0].Reason == "look" })
	if e := a.Status().Events[0]; e.Error != "" || len(e.Files) < 4 {
		t.Fatalf("event %+v", e)
	}
}

func TestStopWithHangingCollector(t *testing.T) {
	srv, _ := wiretest.New()
	defer srv.Close()
	logs := &syncBuf{}
	o := testOptions(t, srv.URL, logs)
	o.FlightRecorder = FlightRecorderOff
	a, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	srv.SetFault(&wiretest.Fault{Hang: true})
	time.Sleep(150 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = a.Stop(ctx)
	if time.Since(start) > 10*time.Second {
		t.Fatalf("Stop took %v against a hanging collector", time.Since(start))
	}
	if err == nil {
		t.Fatal("Stop cut short by its context returned no error")
	}
	// What was not delivered is in the spool for the next start.
	if a.spool == nil || len(a.spool.Files()) == 0 {
		t.Fatal("undelivered batches were not spooled")
	}
}

// TestManualTriggerDuringCapture checks that a manual trigger arriving
// while another capture runs is deferred to its end, not dropped.
func TestManualTriggerDuringCapture(t *testing.T) {
	srv, err := wiretest.New()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	opts := testOptions(t, srv.URL, io.Discard)
	opts.CPUProfileDuration = 500 * time.Millisecond // keeps the first capture running
	a, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop(context.Background())
	a.Trigger("first")
	waitFor(t, "the first capture to start", a.capturing.Load)
	a.Trigger("second")
	reasons := func() map[string]bool {
		got := map[string]bool{}
		for _, b := range srv.Bundles() {
			if b.Manifest.Rule == "manual" {
				got[b.Manifest.Reason] = true
			}
		}
		return got
	}
	waitFor(t, "both manual bundles", func() bool { r := reasons(); return r["first"] && r["second"] })
}
