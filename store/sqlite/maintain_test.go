package sqlite

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/gopulse/gopulse/store"
)

// seconds returns a batch of /a:x with value i at t0 + i s for each i.
func seconds(in store.Instance, t0 int64, is ...int) store.Batch {
	b := store.Batch{Instance: in}
	for _, i := range is {
		b.Samples = append(b.Samples, store.Sample{Name: "/a:x", T: t0 + int64(i)*1000, Value: float64(i)})
	}
	return b
}

// TestMaintainStalePlan: a plan made from a read snapshot is written only
// if no block reached the instance since; otherwise the next try sees the
// new block, so a late block is neither lost to compaction nor missing
// from the rollups.
func TestMaintainStalePlan(t *testing.T) {
	for _, tc := range []struct {
		name string
		// between runs after planning; sameGroup marks the instance as
		// written earlier in the group that applies the plan.
		between   func(t *testing.T, s *Store, in store.Instance, t0 int64)
		sameGroup bool
		wantOK    bool
	}{
		{name: "unchanged", wantOK: true},
		{name: "late block committed", between: func(t *testing.T, s *Store, in store.Instance, t0 int64) {
			// Half seconds of minute 0 and of the first window.
			b := seconds(in, t0+500, 0, 2, 4, 6, 8)
			if _, err := s.Append(context.Background(), b); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "block earlier in the same group", sameGroup: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := openTemp(t, Options{})
			defer s.Close()
			in := store.Instance{Service: "svc", ID: "i", Source: store.SourceAgent}
			now := time.Now()
			t0 := floorWin(now.Add(-2 * time.Hour).UnixMilli())
			for i := 0; i < 1200; i += 10 { // 20 minutes
				is := make([]int, 10)
				for k := range is {
					is[k] = i + k
				}
				if _, err := s.Append(ctx, seconds(in, t0, is...)); err != nil {
					t.Fatal(err)
				}
			}
			s.maintainMu.Lock()
			c := s.cutsAt(now)
			ids, err := s.instancePage(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			plans, err := s.planBatch(ctx, ids, c)
			if err != nil || len(plans) != 1 {
				t.Fatalf("planBatch: %d plans, %v", len(plans), err)
			}
			if len(plans[0].chunks) == 0 || len(plans[0].rows) == 0 {
				t.Fatalf("plan without work: %d chunks, %d rollups", len(plans[0].chunks), len(plans[0].rows))
			}
			extra := 0
			if tc.between != nil {
				tc.between(t, s, in, t0)
				extra = 5
			}
			var ok bool
			var st store.MaintainStats
			err = s.write(ctx, func(tx *wtx) error {
				if tc.sameGroup {
					tx.blocksFor = append(tx.blocksFor, plans[0].inst)
				}
				var err error
				ok, err = s.apply(tx, plans[0], true, c, &st)
				return err
			})
			s.maintainMu.Unlock()
			if err != nil || ok != tc.wantOK {
				t.Fatalf("apply = %v, %v; want %v", ok, err, tc.wantOK)
			}
			if _, err := s.Maintain(ctx, now); err != nil {
				t.Fatal(err)
			}
			raw, err := s.QuerySeries(ctx, store.SeriesQuery{Instance: in.Key(), Name: "/a:x", Start: t0, End: t0 + 3_600_000})
			if err != nil || len(raw) != 1200+extra {
				t.Fatalf("raw: %d points, %v; want %d", len(raw), err, 1200+extra)
			}
			var blocks int
			s.r.QueryRow(`SELECT COUNT(*) FROM blocks`).Scan(&blocks)
			if blocks != 0 {
				t.Errorf("%d blocks left after Maintain", blocks)
			}
			m, err := s.QuerySeries(ctx, store.SeriesQuery{Instance: in.Key(), Name: "/a:x", Start: t0, End: t0 + 20*60_000, Step: 60_000})
			if err != nil || len(m) != 20 || m[0].Count != int64(60+extra) || m[1].Count != 60 {
				t.Fatalf("rollups: %d minutes, first %+v, %v", len(m), m[0], err)
			}
		})
	}
}

// TestMaintainLateDataRace: batches filling gaps in minutes that are
// being rolled up and windows being compacted arrive while Maintain runs
// again and again; afterwards every sample is stored once and every
// minute's rollup matches the raw samples.
func TestMaintainLateDataRace(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	defer s.Close()
	in := store.Instance{Service: "svc", ID: "race", Source: store.SourceAgent}
	const minutes = 40
	t0 := floorWin(time.Now().Add(-90 * time.Minute).UnixMilli())
	// Even seconds first; odd seconds arrive late, shuffled.
	var odd []int
	for i := 0; i < minutes*60; i += 10 {
		is := []int{i, i + 2, i + 4, i + 6, i + 8}
		if _, err := s.Append(ctx, seconds(in, t0, is...)); err != nil {
			t.Fatal(err)
		}
		odd = append(odd, i+1, i+3, i+5, i+7, i+9)
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(odd), func(i, j int) { odd[i], odd[j] = odd[j], odd[i] })
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(done)
		for k := 0; k < len(odd); k += 8 {
			if _, err := s.Append(ctx, seconds(in, t0, odd[k:min(k+8, len(odd))]...)); err != nil {
				errs <- err
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for range 500 {
			select {
			case <-done:
				return
			default:
			}
			if _, err := s.Maintain(ctx, time.Now()); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := s.Maintain(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	raw, err := s.QuerySeries(ctx, store.SeriesQuery{Instance: in.Key(), Name: "/a:x", Start: t0, End: t0 + minutes*60_000})
	if err != nil || len(raw) != minutes*60 {
		t.Fatalf("raw: %d points, %v; want %d", len(raw), err, minutes*60)
	}
	m, err := s.QuerySeries(ctx, store.SeriesQuery{Instance: in.Key(), Name: "/a:x", Start: t0, End: t0 + minutes*60_000, Step: 60_000})
	if err != nil || len(m) != minutes {
		t.Fatalf("rollups: %d minutes, %v", len(m), err)
	}
	for k, p := range m {
		first := float64(k * 60)
		if p.Count != 60 || p.Sum != 60*first+59*30 || p.Min != first || p.Max != first+59 {
			t.Fatalf("minute %d: %+v", k, p)
		}
	}
	var chunks int
	s.r.QueryRow(`SELECT COUNT(*) FROM chunks`).Scan(&chunks)
	if want := minutes * 60_000 / window; chunks < want {
		t.Errorf("%d chunks, want at least %d (the complete windows compacted)", chunks, want)
	}
}

// TestMaintainPlanInWriter: the fallback for an instance whose plans keep
// going stale, planning and writing inside one writer transaction, rolls
// up and compacts like the planned path.
func TestMaintainPlanInWriter(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	defer s.Close()
	in := store.Instance{Service: "svc", ID: "w", Source: store.SourceAgent}
	now := time.Now()
	t0 := floorWin(now.Add(-2 * time.Hour).UnixMilli())
	for i := 0; i < 1200; i += 10 {
		is := make([]int, 10)
		for k := range is {
			is[k] = i + k
		}
		if _, err := s.Append(ctx, seconds(in, t0, is...)); err != nil {
			t.Fatal(err)
		}
	}
	s.maintainMu.Lock()
	ids, err := s.instancePage(ctx, 0)
	if err != nil || len(ids) != 1 {
		t.Fatalf("instances %v, %v", ids, err)
	}
	c := s.cutsAt(now)
	var ok bool
	var st store.MaintainStats
	err = s.write(ctx, func(tx *wtx) error {
		p, err := s.planInstance(tx, ids[0], c)
		if err != nil {
			return err
		}
		ok, err = s.apply(tx, p, false, c, &st)
		return err
	})
	s.maintainMu.Unlock()
	if err != nil || !ok || st.RolledUpSeries != 1 {
		t.Fatalf("apply = %v, %v, %+v", ok, err, st)
	}
	var blocks, chunks int
	s.r.QueryRow(`SELECT COUNT(*) FROM blocks`).Scan(&blocks)
	s.r.QueryRow(`SELECT COUNT(*) FROM chunks`).Scan(&chunks)
	if blocks != 0 || chunks != 2 {
		t.Errorf("%d blocks, %d chunks; want 0 and 2 (two windows compacted)", blocks, chunks)
	}
	m, err := s.QuerySeries(ctx, store.SeriesQuery{Instance: in.Key(), Name: "/a:x", Start: t0, End: t0 + 20*60_000, Step: 60_000})
	if err != nil || len(m) != 20 {
		t.Fatalf("rollups: %d minutes, %v", len(m), err)
	}
	for k, p := range m {
		if first := float64(k * 60); p.Count != 60 || p.Sum != 60*first+59*30 {
			t.Fatalf("minute %d: %+v", k, p)
		}
	}
}
