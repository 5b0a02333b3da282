package main

import (
	"context"
	"fmt"
	"log"
	"path/filepath"
	"sync"
	"time"

	"github.com/gopulse/gopulse/store"
)

// maintainPhase measures Maintain in steady state, as the collector runs it
// every minute: n instances each deliver a minute of batches (6 × 10 s),
// then Maintain runs for that minute; -maint-minutes times, crossing one
// 15-minute window boundary, so one of the runs compacts a window per
// instance. Simulated time runs ahead of the wall clock (the data lies in
// the last hour), so the phase takes the CPU it costs, not real minutes.
//
// While each Maintain runs, a probe appends a one-sample batch every 5 ms
// and times it: Maintain shares the single writer with ingest, so the
// probe's latency is what ingest pays for Maintain's transactions.
func maintainPhase(ctx context.Context, root string, n, minutes int, add func(what, value, note string)) {
	s := open(ctx, filepath.Join(root, "maintain"))
	defer s.Close()
	g := newGen(*flagMetrics, *flagHists, *flagBuckets)
	// Two windows back, so the run crosses a window boundary and the
	// compaction lag within -maint-minutes ≥ 18.
	const win = 15 * 60 * 1000
	t0 := time.Now().Add(-45*time.Minute).UnixMilli() / win * win
	probe := store.Instance{Service: "probe", ID: "p", Source: store.SourceAgent}
	var (
		cpuSteady, cpuCompact   time.Duration
		wallSteady, wallCompact time.Duration
		nSteady, nCompact       int
		lats                    []time.Duration
		worst                   time.Duration
	)
	for m := 0; m < minutes; m++ {
		// One minute of batches from every instance, 16 callers.
		jobs := make(chan [2]int)
		var wg sync.WaitGroup
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range jobs {
					if _, err := s.Append(ctx, g.batch(j[0], j[1], t0+int64(j[1])*10_000)); err != nil {
						log.Fatal(err)
					}
				}
			}()
		}
		for r := 6 * m; r < 6*m+6; r++ {
			for i := 0; i < n; i++ {
				jobs <- [2]int{i, r}
			}
		}
		close(jobs)
		wg.Wait()

		now := time.UnixMilli(t0 + int64(m+1)*60_000 + 5_000)
		stop := make(chan struct{})
		probeDone := make(chan []time.Duration)
		go func() {
			var l []time.Duration
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for k := 0; ; k++ {
				select {
				case <-stop:
					probeDone <- l
					return
				case <-tick.C:
				}
				b := store.Batch{Instance: probe, Samples: []store.Sample{{Name: "/probe:x", T: time.Now().UnixMilli(), Value: float64(k)}}}
				st := time.Now()
				if _, err := s.Append(ctx, b); err != nil {
					log.Fatal(err)
				}
				l = append(l, time.Since(st))
			}
		}()
		c0, w0 := cpuTime(), time.Now()
		if _, err := s.Maintain(ctx, now); err != nil {
			log.Fatal(err)
		}
		cpu, wall := cpuTime()-c0, time.Since(w0)
		close(stop)
		l := <-probeDone
		lats = append(lats, l...)
		for _, d := range l {
			worst = max(worst, d)
		}
		// The run right after a window's compaction lag has passed
		// compacts that window for every instance.
		compacts := (now.UnixMilli()-2*60_000)/win != (now.UnixMilli()-60_000-2*60_000)/win
		if compacts {
			cpuCompact += cpu
			wallCompact += wall
			nCompact++
		} else if m > 0 { // the first run also starts every instance's rollups
			cpuSteady += cpu
			wallSteady += wall
			nSteady++
		}
	}
	cond := fmt.Sprintf("%d instances × %d metrics (%d histograms), %d simulated minutes", n, *flagMetrics, *flagHists, minutes)
	if nSteady > 0 {
		add("Maintain, one minute rolled up (no compaction)",
			fmt.Sprintf("CPU %s per run = %.0f µs per instance; wall %s", ms(cpuSteady/time.Duration(nSteady)),
				float64(cpuSteady.Microseconds())/float64(nSteady*n), ms(wallSteady/time.Duration(nSteady))), cond)
	}
	if nCompact > 0 {
		add("Maintain, one minute + compaction of a 15-min window",
			fmt.Sprintf("CPU %s per run = %.0f µs per instance; wall %s", ms(cpuCompact/time.Duration(nCompact)),
				float64(cpuCompact.Microseconds())/float64(nCompact*n), ms(wallCompact/time.Duration(nCompact))), cond)
	}
	if len(lats) > 0 {
		add("probe Append latency while Maintain runs",
			fmt.Sprintf("p50 %s, p99 %s, max %s (%d probes)", ms(pct(lats, 50)), ms(pct(lats, 99)), ms(worst), len(lats)),
			"one-sample batch every 5 ms")
	}
}
