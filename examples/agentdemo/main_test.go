package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"go.uber.org/goleak"

	"github.com/gopulse/gopulse/agent"
	"github.com/gopulse/gopulse/wire/wiretest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func post(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Post(url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s", url, resp.Status)
	}
}

func funcs(t *testing.T, b []byte) string {
	t.Helper()
	p, err := profile.ParseData(b)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range p.Function {
		names = append(names, f.Name)
	}
	return strings.Join(names, "\n")
}

// TestTriggersFire runs the demo service against an in-test collector,
// makes it misbehave and checks the bundles that arrive. Windows and
// thresholds are shortened so the test takes seconds, not minutes.
func TestTriggersFire(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	col, err := wiretest.New()
	if err != nil {
		t.Fatal(err)
	}
	defer col.Close()
	opts := agent.Options{
		Collector: col.URL, SpoolDir: t.TempDir(),
		SampleInterval: 100 * time.Millisecond, BatchInterval: 500 * time.Millisecond,
		CPUProfileDuration: 500 * time.Millisecond, Debug2GoroutineLimit: 10000,
		Triggers: agent.Triggers{
			GoroutineWindow: 3 * time.Second, GoroutineGrowthMin: 1000,
			GCCPUWindow: 2 * time.Second, Cooldown: time.Minute, MaxBundlesPerHour: 20,
			// Noise on a shared test machine must not fire these.
			SchedLatencyP99: time.Second, GCPause: time.Second,
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-addr", "127.0.0.1:0"}, io.Discard, opts, ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	base := "http://" + addr
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		http.DefaultClient.CloseIdleConnections()
	}()

	byRule := func(rule string) *wiretest.Bundle {
		for _, b := range col.Bundles() {
			if b.Manifest.Rule == rule {
				return b
			}
		}
		return nil
	}
	wait := func(rule string) *wiretest.Bundle {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if b := byRule(rule); b != nil {
				return b
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("no %s bundle; got %d bundles", rule, len(col.Bundles()))
		return nil
	}

	time.Sleep(1500 * time.Millisecond) // some calm history first

	// 1. goroutine growth: +2000 blocked goroutines.
	post(t, base+"/leak?n=2000")
	b := wait("goroutine_growth")
	if !strings.Contains(funcs(t, b.Files["goroutine.pb.gz"]), ".leakWorker") {
		t.Errorf("goroutine profile of the growth bundle does not show leakWorker")
	}
	if !strings.Contains(string(b.Files["goroutines.txt"]), ".leakWorker") {
		t.Errorf("debug=2 dump lacks main.leakWorker (notes %q)", b.Manifest.Notes)
	}
	post(t, base+"/unleak")

	// 2. GC-CPU storm.
	post(t, base+"/gcstorm?d=4s")
	b = wait("gc_cpu")
	var frac float64
	for _, v := range b.Manifest.Values {
		if v.Name == "gc_cpu_fraction" {
			frac = v.Value
		}
	}
	if frac < 0.25 {
		t.Errorf("gc_cpu fired with fraction %v", frac)
	}
	if _, ok := b.Files["heap.pb.gz"]; !ok {
		t.Errorf("gc_cpu bundle lacks heap.pb.gz")
	}
	if trace, ok := b.Files["trace.out"]; !ok || len(trace) == 0 {
		t.Errorf("armed flight recorder left no trace of the seconds before the storm trigger (notes %q)", b.Manifest.Notes)
	}

	// 3. manual, through the agent's handler.
	post(t, base+"/debug/gopulse/trigger?reason=on-call+asked")
	b = wait("manual")
	if b.Manifest.Reason != "on-call asked" {
		t.Errorf("manual reason %q", b.Manifest.Reason)
	}
	for _, f := range b.Manifest.Files {
		if strings.HasSuffix(f.Name, ".pb.gz") {
			funcs(t, b.Files[f.Name]) // parses
		}
	}

	// Metrics and GC records arrived too.
	var cycles, samples int
	for _, bt := range col.Batches() {
		cycles += len(bt.GcCycles)
		samples += len(bt.Samples)
	}
	if cycles == 0 || samples == 0 {
		t.Errorf("%d samples, %d GC cycles shipped", samples, cycles)
	}
}
