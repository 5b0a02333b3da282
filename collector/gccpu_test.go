package collector

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/gopulse/gopulse/store"
)

// TestGCCPUFractionOneDefinition feeds the cpu-class deltas every
// surface's test uses (agent rules and Status, loadramp) and checks that
// GC health and the fleet row both give analyze/gc's gc_cpu_fraction,
// (gc/total − gc/mark/idle) ÷ total, from the CPU-class series and from
// the agent's per-cycle records alike.
func TestGCCPUFractionOneDefinition(t *testing.T) {
	cases := []struct {
		name                            string
		total, idle, gc, idleMark, want float64 // deltas over 100 s, cpu-seconds
	}{
		// The discriminating case: 20% busy, GC mostly idle marking.
		// GC ÷ busy read 37.5% here.
		{"20% busy with idle marking", 40, 32, 3, 2, 0.025},
		{"cpu-bound, no idle marking", 40, 0, 10, 0, 0.25},
		{"no GC", 40, 20, 0, 0, 0},
	}
	now := time.Now().Truncate(time.Second)
	for _, tc := range cases {
		for _, from := range []string{"series", "cycles"} {
			t.Run(tc.name+"/"+from, func(t *testing.T) {
				e := newEnv(t, nil)
				ctx := context.Background()
				key := store.InstanceKey{Service: "svc", ID: "i"}
				b := store.Batch{Instance: store.Instance{Service: key.Service, ID: key.ID, Source: store.SourceAgent}, ReceivedAt: now}
				const n = 10
				for i := 0; i <= n; i++ {
					tm := now.Add(-time.Duration(n-i) * 10 * time.Second).UnixMilli()
					f := float64(i) / n
					if from == "series" {
						// Cumulative counters from an arbitrary start.
						for name, v := range map[string]float64{
							"/cpu/classes/total:cpu-seconds":        500 + tc.total*f,
							"/cpu/classes/idle:cpu-seconds":         300 + tc.idle*f,
							"/cpu/classes/gc/total:cpu-seconds":     70 + tc.gc*f,
							"/cpu/classes/gc/mark/idle:cpu-seconds": 30 + tc.idleMark*f,
						} {
							b.Samples = append(b.Samples, store.Sample{Name: name, T: tm, Value: v})
						}
					}
					cy := store.GCCycle{Cycle: uint32(i + 1), EndTime: tm, PauseNs: 100_000}
					if from == "cycles" && i > 0 {
						// What the agent sends per cycle: GC without idle
						// marking, and capacity, since the previous cycle.
						cy.HeapKnown, cy.GCCPUSeconds, cy.TotalCPUSeconds = true, (tc.gc-tc.idleMark)/n, tc.total/n
					}
					b.GCCycles = append(b.GCCycles, cy)
				}
				if _, err := e.st.Append(ctx, b); err != nil {
					t.Fatal(err)
				}
				h, err := e.c.GCHealthOf(ctx, key, 5*time.Minute, now)
				if err != nil {
					t.Fatal(err)
				}
				row, err := e.c.fleetRow(ctx, key, now.Add(-5*time.Minute).UnixMilli(), now.UnixMilli()+1)
				if err != nil {
					t.Fatal(err)
				}
				if math.Abs(h.GCCPUFraction-tc.want) > 1e-9 || math.Abs(row.GC.GCCPUFraction-tc.want) > 1e-9 {
					t.Fatalf("GC health %v (%s), fleet %v (%s); want %v", h.GCCPUFraction, h.GCCPUSource,
						row.GC.GCCPUFraction, row.GC.GCCPUSource, tc.want)
				}
			})
		}
	}
}
