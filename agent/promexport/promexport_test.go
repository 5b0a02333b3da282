package promexport

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/gopulse/gopulse/agent"
	"github.com/gopulse/gopulse/wire/wiretest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCollectorGathers(t *testing.T) {
	col, err := wiretest.New()
	if err != nil {
		t.Fatal(err)
	}
	defer col.Close()
	a, err := agent.Start(context.Background(), agent.Options{Collector: col.URL, SpoolDir: "-",
		SampleInterval: 20 * time.Millisecond, BatchInterval: 100 * time.Millisecond, FlightRecorder: agent.FlightRecorderOff})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop(context.Background())
	deadline := time.Now().Add(10 * time.Second)
	for (a.Status().Delivery == nil || a.Status().Delivery.BatchesSent == 0) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}

	// The pedantic registry checks that Collect matches Describe.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(New(a))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			got[mf.GetName()] += v
		}
	}
	tests := []struct {
		name     string
		positive bool
	}{
		{"gopulse_goroutines", true},
		{"gopulse_gc_heap_goal_bytes", true},
		{"gopulse_process_rss_bytes", true},
		{"gopulse_process_fd_limit", true},
		{"gopulse_delivered_total", true},
		{"gopulse_trigger_level_ratio", false},
		{"gopulse_flight_recorder_running", false},
		{"gopulse_dropped_total", false},
	}
	for _, tt := range tests {
		v, ok := got[tt.name]
		if !ok {
			t.Errorf("%s missing", tt.name)
			continue
		}
		if tt.positive && v <= 0 {
			t.Errorf("%s = %v, want > 0", tt.name, v)
		}
	}
}
