package sqlite

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/gopulse/gopulse/store"
)

func TestBlockRoundTrip(t *testing.T) {
	scalar := encodeChunk(nil, false, []point{{t: 1000, v: 1}, {t: 2000, v: 2.5}})
	hist := encodeChunk(nil, true, []point{{t: 1500, count: []uint64{1, 0, 3}}, {t: 2500, count: []uint64{2, 0, 3}}})
	cases := []struct {
		name string
		secs []blockSection
	}{
		{"empty", nil},
		{"one", []blockSection{{series: 7, minT: 1000, data: scalar}}},
		{"mixed", []blockSection{{series: 1, minT: 1000, data: scalar}, {series: 1 << 40, minT: 1500, data: hist}, {series: 3, minT: 1000, data: scalar}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := encodeBlock(nil, 1000, c.secs)
			var got []blockSection
			if err := forEachSection(b, 1000, func(sc blockSection) bool { got = append(got, sc); return true }); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.secs) {
				t.Fatalf("%d sections, want %d", len(got), len(c.secs))
			}
			for i := range got {
				if got[i].series != c.secs[i].series || got[i].minT != c.secs[i].minT || !slices.Equal(got[i].data, c.secs[i].data) {
					t.Errorf("section %d: %+v, want %+v", i, got[i], c.secs[i])
				}
			}
		})
	}
}

func TestLastPoint(t *testing.T) {
	cases := []struct {
		name string
		hist bool
		pts  []point
	}{
		{"scalar", false, []point{{t: 10, v: 1}, {t: 20, v: 3}, {t: 35, v: math.Pi}}},
		{"histogram", true, []point{{t: 10, count: []uint64{0, 1, 2}}, {t: 20, count: []uint64{5, 1, 2}}, {t: 31, count: []uint64{5, 9, 2}}}},
		{"one histogram", true, []point{{t: 10, count: []uint64{4, 0, 0}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := encodeChunk(nil, c.hist, c.pts)
			p, ok, err := lastPoint(data, c.pts[0].t, 3)
			want := c.pts[len(c.pts)-1]
			if err != nil || !ok || p.t != want.t || p.v != want.v || !slices.Equal(p.count, want.count) {
				t.Fatalf("lastPoint = %+v, %v, %v; want %+v", p, ok, err, want)
			}
		})
	}
}

func FuzzForEachSection(f *testing.F) {
	f.Add(encodeBlock(nil, 5, []blockSection{{series: 1, minT: 5, data: encodeChunk(nil, false, []point{{t: 5, v: 1}})}}))
	f.Add([]byte{kindBlock, 3, 1, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		forEachSection(data, 0, func(sc blockSection) bool { // must not panic
			decodeChunk(sc.data, sc.minT, 4, func(point) {})
			lastPoint(sc.data, sc.minT, 4)
			return true
		})
	})
}

// TestCompaction follows data through the block → chunk life: blocks of
// finished windows become per-series chunks, a late block for a compacted
// window is merged into them, and queries and rollups see every sample
// once throughout.
func TestCompaction(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	defer s.Close()
	in := store.Instance{Service: "svc", ID: "i", Source: store.SourceAgent}
	key := in.Key()
	now := time.Now()
	t0 := floorWin(now.Add(-2 * time.Hour).UnixMilli())
	batch := func(key string, from, n int) store.Batch {
		b := store.Batch{Key: key, Instance: in}
		for i := from; i < from+n; i++ {
			ts := t0 + int64(i)*1000
			b.Samples = append(b.Samples, store.Sample{Name: "/a:x", T: ts, Value: float64(i)},
				store.Sample{Name: "/h:s", T: ts, Hist: &store.Histogram{Boundaries: []float64{0, 1, 2}, Counts: []uint64{uint64(i), 1}}})
		}
		return b
	}
	// 40 minutes (three windows) with a gap at [1200, 1300) s, in 10 s batches.
	for i := 0; i < 2400; i += 10 {
		if i >= 1200 && i < 1300 {
			continue
		}
		if _, err := s.Append(ctx, batch(fmt.Sprint(i), i, 10)); err != nil {
			t.Fatal(err)
		}
	}
	check := func(stage string, want int) {
		t.Helper()
		pts, err := s.QuerySeries(ctx, store.SeriesQuery{Instance: key, Name: "/a:x", Start: t0, End: t0 + 3_600_000})
		if err != nil {
			t.Fatal(err)
		}
		if len(pts) != want {
			t.Fatalf("%s: %d points, want %d", stage, len(pts), want)
		}
		for i := 1; i < len(pts); i++ {
			if pts[i].T <= pts[i-1].T || pts[i].Value != float64((pts[i].T-t0)/1000) {
				t.Fatalf("%s: point %d = %+v after %+v", stage, i, pts[i], pts[i-1])
			}
		}
		h, err := s.QuerySeries(ctx, store.SeriesQuery{Instance: key, Name: "/h:s", Start: t0, End: t0 + 3_600_000})
		if err != nil || len(h) != want || h[want-1].Hist.Counts[0] != uint64((h[want-1].T-t0)/1000) {
			t.Fatalf("%s: histogram series: %d points, %v", stage, len(h), err)
		}
		sum, err := s.Fleet(ctx, store.FleetQuery{Names: []string{"/a:x", "/h:s"}})
		if err != nil || len(sum) != 1 || sum[0].Latest["/a:x"].Value != 2399 || sum[0].Latest["/h:s"].Hist == nil {
			t.Fatalf("%s: fleet %+v, %v", stage, sum, err)
		}
	}
	check("blocks", 2300)
	var blocks int
	if _, err := s.Maintain(ctx, now); err != nil {
		t.Fatal(err)
	}
	s.r.QueryRow(`SELECT COUNT(*) FROM blocks`).Scan(&blocks)
	if blocks != 0 {
		t.Errorf("%d blocks left after compaction", blocks)
	}
	check("compacted", 2300)
	// A late delivery fills the gap, one batch repeats data already there.
	for _, b := range []store.Batch{batch("late", 1200, 100), batch("again", 500, 10)} {
		if _, err := s.Append(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	check("late blocks", 2400)
	if _, err := s.Maintain(ctx, now); err != nil {
		t.Fatal(err)
	}
	check("merged", 2400)
	var chunks int
	s.r.QueryRow(`SELECT COUNT(*) FROM chunks c JOIN series s ON s.id = c.series WHERE s.name = '/a:x'`).Scan(&chunks)
	if chunks != 3 {
		t.Errorf("%d chunks for three windows, want 3 (late data merged)", chunks)
	}
	// The rollups saw the late minutes once each.
	pts, err := s.QuerySeries(ctx, store.SeriesQuery{Instance: key, Name: "/a:x", Start: t0, End: t0 + 2_400_000, Step: 60_000})
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 40 || pts[20].Count != 60 || pts[20].Sum != float64(60*1200+59*60/2) {
		t.Errorf("rollups after late data: %d points, minute 20 = %+v", len(pts), pts[min(20, len(pts)-1)])
	}
}

// TestSameStartBlocks: two different batches whose first sample has the
// same timestamp are both kept; an identical repeat is stored once.
func TestSameStartBlocks(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	defer s.Close()
	in := store.Instance{Service: "svc", ID: "i", Source: store.SourceAgent}
	t0 := time.Now().Add(-time.Minute).UnixMilli()
	a := store.Batch{Instance: in, Samples: []store.Sample{{Name: "/a:x", T: t0, Value: 1}}}
	b := store.Batch{Instance: in, Samples: []store.Sample{{Name: "/b:x", T: t0, Value: 2}}}
	for _, x := range []store.Batch{a, b, a} {
		if _, err := s.Append(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	s.r.QueryRow(`SELECT COUNT(*) FROM blocks`).Scan(&n)
	if n != 2 {
		t.Errorf("%d blocks, want 2", n)
	}
	for _, name := range []string{"/a:x", "/b:x"} {
		pts, err := s.QuerySeries(ctx, store.SeriesQuery{Instance: in.Key(), Name: name, Start: t0, End: t0 + 1})
		if err != nil || len(pts) != 1 {
			t.Errorf("%s: %+v, %v", name, pts, err)
		}
	}
}

// TestMaintainBacklog: three hours of data before the first Maintain are
// worked off in bounded transactions and come out complete.
func TestMaintainBacklog(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	defer s.Close()
	in := store.Instance{Service: "svc", ID: "i", Source: store.SourceAgent}
	now := time.Now()
	t0 := floorWin(now.Add(-4 * time.Hour).UnixMilli())
	const n = 3 * 3600
	for i := 0; i < n; i += 600 {
		b := store.Batch{Instance: in}
		for k := i; k < i+600; k++ {
			b.Samples = append(b.Samples, store.Sample{Name: "/a:x", T: t0 + int64(k)*1000, Value: float64(k)})
		}
		if _, err := s.Append(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.Maintain(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	var blocks, chunks int
	s.r.QueryRow(`SELECT COUNT(*) FROM blocks`).Scan(&blocks)
	s.r.QueryRow(`SELECT COUNT(*) FROM chunks`).Scan(&chunks)
	if blocks != 0 || chunks != n/900 {
		t.Errorf("after Maintain: %d blocks, %d chunks, want 0 and %d (stats %+v)", blocks, chunks, n/900, st)
	}
	pts, err := s.QuerySeries(ctx, store.SeriesQuery{Instance: in.Key(), Name: "/a:x", Start: t0, End: t0 + n*1000, Step: 60_000})
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != n/60 {
		t.Fatalf("%d minutes, want %d", len(pts), n/60)
	}
	for m, p := range pts {
		first := float64(m * 60)
		if p.Count != 60 || p.Sum != 60*first+59*30 || p.Min != first || p.Max != first+59 || p.Value != first+59 {
			t.Fatalf("minute %d: %+v", m, p)
		}
	}
}
