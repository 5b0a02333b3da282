package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopulse/gopulse/store"
)

// pt is one expected point: a value, or histogram counts.
type pt struct {
	t      int64
	v      float64
	counts []uint64
}

// readAll returns the raw points of one series over the raw retention.
func readAll(t *testing.T, s store.Store, in store.Instance, name string) []store.Point {
	t.Helper()
	now := time.Now()
	pts, err := s.QuerySeries(context.Background(), store.SeriesQuery{Instance: key(in), Name: name,
		Start: now.Add(-23 * time.Hour).UnixMilli(), End: now.Add(time.Hour).UnixMilli()})
	if err != nil {
		t.Fatalf("query %s: %v", name, err)
	}
	return pts
}

func checkPoints(t *testing.T, what string, got []store.Point, want []pt, bounds []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d points, want %d: %+v", what, len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.T != w.t {
			t.Fatalf("%s: point %d at %d, want %d", what, i, g.T, w.t)
		}
		if w.counts == nil {
			if g.Value != w.v || g.Hist != nil {
				t.Fatalf("%s: point %d = %v (hist %v), want %v", what, i, g.Value, g.Hist, w.v)
			}
			continue
		}
		if g.Hist == nil || !slices.Equal(g.Hist.Counts, w.counts) || !slices.Equal(g.Hist.Boundaries, bounds) {
			t.Fatalf("%s: point %d = %+v, want counts %v", what, i, g.Hist, w.counts)
		}
	}
}

// seriesCase is one Series conformance case: batches appended in order to
// a fresh instance, then what each named metric must read back as (or the
// error the last batch must fail with).
type seriesCase struct {
	name    string
	batches []store.Batch
	want    map[string][]pt
	dropped int   // AppendResult.Dropped of the last batch
	err     error // of the last batch; nothing of it may be stored
	errName string
}

var histBounds = []float64{math.Inf(-1), 0, 1e-3, 1, math.Inf(1)}

func testSeries(t *testing.T, s store.Store) {
	t0 := time.Now().Add(-40 * time.Minute).UnixMilli()
	ts := func(ks ...int) []int64 {
		out := make([]int64, len(ks))
		for i, k := range ks {
			out[i] = t0 + int64(k)*1000
		}
		return out
	}
	old := time.Now().Add(-48 * time.Hour).UnixMilli()
	// Another array with histBounds' values: equal boundaries need not
	// be the same slice.
	boundsCopy := slices.Clone(histBounds)
	cases := []seriesCase{
		{
			name: "unsorted and duplicate times",
			batches: []store.Batch{{Series: []store.Series{
				{Name: "/a:x", T: ts(3, 1, 2, 1, 3), Values: []float64{30, 10, 20, 99, 98}},
			}}},
			want: map[string][]pt{"/a:x": {{t: t0 + 1000, v: 10}, {t: t0 + 2000, v: 20}, {t: t0 + 3000, v: 30}}},
		},
		{
			name: "histogram unsorted, duplicate kept first",
			batches: []store.Batch{{Series: []store.Series{
				{Name: "/h:s", Boundaries: histBounds, T: ts(2, 1, 2), Counts: []uint64{5, 0, 0, 1, 1, 0, 0, 0, 9, 9, 9, 9}},
			}}},
			want: map[string][]pt{"/h:s": {{t: t0 + 1000, counts: []uint64{1, 0, 0, 0}}, {t: t0 + 2000, counts: []uint64{5, 0, 0, 1}}}},
		},
		{
			name: "metric given twice is merged, first wins",
			batches: []store.Batch{{Series: []store.Series{
				{Name: "/a:x", T: ts(0, 1, 2, 3), Values: []float64{0, 1, 2, 3}},
				{Name: "/b:x", T: ts(0), Values: []float64{7}},
				{Name: "/a:x", T: ts(2, 3, 4, 5), Values: []float64{-2, -3, 4, 5}},
			}}},
			want: map[string][]pt{
				"/a:x": {{t: t0, v: 0}, {t: t0 + 1000, v: 1}, {t: t0 + 2000, v: 2}, {t: t0 + 3000, v: 3}, {t: t0 + 4000, v: 4}, {t: t0 + 5000, v: 5}},
				"/b:x": {{t: t0, v: 7}},
			},
		},
		{
			name: "samples come before series",
			batches: []store.Batch{{
				Samples: []store.Sample{{Name: "/a:x", T: t0 + 1000, Value: 100}, {Name: "/h:s", T: t0 + 1000, Hist: &store.Histogram{Boundaries: histBounds, Counts: []uint64{1, 1, 1, 1}}}},
				Series: []store.Series{
					{Name: "/a:x", T: ts(0, 1), Values: []float64{0, 1}},
					{Name: "/h:s", Boundaries: boundsCopy, T: ts(1, 2), Counts: []uint64{9, 9, 9, 9, 2, 2, 2, 2}},
				},
			}},
			want: map[string][]pt{
				"/a:x": {{t: t0, v: 0}, {t: t0 + 1000, v: 100}},
				"/h:s": {{t: t0 + 1000, counts: []uint64{1, 1, 1, 1}}, {t: t0 + 2000, counts: []uint64{2, 2, 2, 2}}},
			},
		},
		{
			name: "histogram given twice across windows",
			batches: []store.Batch{{Series: []store.Series{
				{Name: "/h:s", Boundaries: histBounds, T: ts(0, 1800), Counts: []uint64{1, 0, 0, 0, 3, 0, 0, 0}},
				{Name: "/h:s", Boundaries: boundsCopy, T: ts(900, 1800), Counts: []uint64{2, 0, 0, 0, 8, 8, 8, 8}},
			}}},
			want: map[string][]pt{"/h:s": {
				{t: t0, counts: []uint64{1, 0, 0, 0}}, {t: t0 + 900_000, counts: []uint64{2, 0, 0, 0}}, {t: t0 + 1_800_000, counts: []uint64{3, 0, 0, 0}},
			}},
		},
		{
			name: "series over several batches",
			batches: []store.Batch{
				{Series: []store.Series{{Name: "/a:x", T: ts(0, 1), Values: []float64{0, 1}}}},
				{Series: []store.Series{{Name: "/a:x", T: ts(1, 2), Values: []float64{-1, 2}}}},
			},
			want: map[string][]pt{"/a:x": {{t: t0, v: 0}, {t: t0 + 1000, v: 1}, {t: t0 + 2000, v: 2}}},
		},
		{
			name: "points past the raw retention are dropped and counted",
			batches: []store.Batch{{
				Samples: []store.Sample{{Name: "/a:x", T: old, Value: 1}},
				Series: []store.Series{
					{Name: "/a:x", T: []int64{old, t0, old + 1000}, Values: []float64{1, 2, 3}},
					{Name: "/h:s", Boundaries: histBounds, T: []int64{old}, Counts: []uint64{1, 2, 3, 4}},
				},
			}},
			dropped: 4,
			want:    map[string][]pt{"/a:x": {{t: t0, v: 2}}, "/h:s": nil},
		},
		{
			name:    "no name",
			batches: []store.Batch{{Series: []store.Series{{T: ts(0), Values: []float64{1}}}}},
			err:     store.ErrInvalid,
		},
		{
			name:    "values do not match times",
			batches: []store.Batch{{Series: []store.Series{{Name: "/a:x", T: ts(0, 1), Values: []float64{1}}}}},
			err:     store.ErrInvalid, errName: "/a:x",
		},
		{
			name:    "histogram with values",
			batches: []store.Batch{{Series: []store.Series{{Name: "/h:s", Boundaries: histBounds, T: ts(0), Values: []float64{1}, Counts: []uint64{1, 2, 3, 4}}}}},
			err:     store.ErrInvalid, errName: "/h:s",
		},
		{
			name:    "histogram counts do not match times × buckets",
			batches: []store.Batch{{Series: []store.Series{{Name: "/h:s", Boundaries: histBounds, T: ts(0, 1), Counts: []uint64{1, 2, 3, 4, 5}}}}},
			err:     store.ErrInvalid, errName: "/h:s",
		},
		{
			name:    "histogram with one boundary",
			batches: []store.Batch{{Series: []store.Series{{Name: "/h:s", Boundaries: []float64{1}, T: ts(0)}}}},
			err:     store.ErrInvalid, errName: "/h:s",
		},
		{
			name:    "histogram with empty boundaries",
			batches: []store.Batch{{Series: []store.Series{{Name: "/h:s", Boundaries: []float64{}, T: ts(0)}}}},
			err:     store.ErrInvalid, errName: "/h:s",
		},
		{
			name:    "scalar with counts",
			batches: []store.Batch{{Series: []store.Series{{Name: "/a:x", T: ts(0), Values: []float64{1}, Counts: []uint64{1}}}}},
			err:     store.ErrInvalid, errName: "/a:x",
		},
		{
			name: "invalid series after valid ones",
			batches: []store.Batch{{
				Samples: []store.Sample{{Name: "/a:x", T: t0, Value: 1}},
				Series:  []store.Series{{Name: "/b:x", T: ts(0), Values: []float64{1}}, {Name: "/c:x", T: ts(0)}},
			}},
			err: store.ErrInvalid, errName: "/c:x",
		},
		{
			name: "scalar in samples, histogram in series",
			batches: []store.Batch{{
				Samples: []store.Sample{{Name: "/m:x", T: t0, Value: 1}},
				Series:  []store.Series{{Name: "/m:x", Boundaries: histBounds, T: ts(1), Counts: []uint64{1, 2, 3, 4}}},
			}},
			err: store.ErrConflict, errName: "/m:x",
		},
		{
			name: "histogram in one series, scalar in another",
			batches: []store.Batch{{Series: []store.Series{
				{Name: "/m:x", Boundaries: histBounds, T: ts(1), Counts: []uint64{1, 2, 3, 4}},
				{Name: "/m:x", T: ts(2), Values: []float64{1}},
			}}},
			err: store.ErrConflict, errName: "/m:x",
		},
		{
			name: "boundaries differ within the batch",
			batches: []store.Batch{{Series: []store.Series{
				{Name: "/h:s", Boundaries: histBounds, T: ts(1), Counts: []uint64{1, 2, 3, 4}},
				{Name: "/h:s", Boundaries: []float64{0, 1, 2, 3, 4}, T: ts(2), Counts: []uint64{1, 2, 3, 4}},
			}}},
			err: store.ErrConflict, errName: "/h:s",
		},
		{
			name: "boundaries differ from the stored ones",
			batches: []store.Batch{
				{Series: []store.Series{{Name: "/h:s", Boundaries: histBounds, T: ts(1), Counts: []uint64{1, 2, 3, 4}}}},
				{Series: []store.Series{{Name: "/h:s", Boundaries: []float64{0, 1, 2, 3, 4}, T: ts(2), Counts: []uint64{1, 2, 3, 4}}}},
			},
			want: map[string][]pt{"/h:s": {{t: t0 + 1000, counts: []uint64{1, 2, 3, 4}}}},
			err:  store.ErrConflict, errName: "/h:s",
		},
		{
			name: "scalar series for a stored histogram",
			batches: []store.Batch{
				{Series: []store.Series{{Name: "/h:s", Boundaries: histBounds, T: ts(1), Counts: []uint64{1, 2, 3, 4}}}},
				{Series: []store.Series{{Name: "/h:s", T: ts(2), Values: []float64{3}}}},
			},
			want: map[string][]pt{"/h:s": {{t: t0 + 1000, counts: []uint64{1, 2, 3, 4}}}},
			err:  store.ErrConflict, errName: "/h:s",
		},
	}
	ctx := context.Background()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := inst("series", fmt.Sprintf("case-%d", i))
			for j, b := range c.batches {
				b.Instance = in
				b.Key = fmt.Sprintf("series-%d-%d", i, j)
				res, err := s.Append(ctx, b)
				if j < len(c.batches)-1 {
					if err != nil {
						t.Fatalf("batch %d: %v", j, err)
					}
					continue
				}
				if !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
					t.Fatalf("append: %v, want %v", err, c.err)
				}
				if err != nil {
					if !strings.Contains(err.Error(), c.errName) {
						t.Errorf("error %q does not name the metric %q", err, c.errName)
					}
					// Nothing of the failed batch is stored, key included.
					if seen, _ := s.Seen(ctx, b.Key); seen {
						t.Errorf("key of the failed batch remembered")
					}
				} else if res.Dropped != c.dropped {
					t.Errorf("Dropped = %d, want %d", res.Dropped, c.dropped)
				}
			}
			for name, want := range c.want {
				checkPoints(t, name, readAll(t, s, in, name), want, histBounds)
			}
			if c.err != nil && len(c.batches) == 1 {
				if names, _ := s.SeriesNames(ctx, key(in)); len(names) != 0 {
					t.Errorf("failed batch left series %v", names)
				}
			}
		})
	}
}

// testSeriesEquivalence appends the same data as Samples to one instance
// and as Series to another, and reads both back the same: raw and
// stepped, scalars and histograms, over three windows, sorted and not.
func testSeriesEquivalence(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Now().Add(-50*time.Minute).UnixMilli() / 60000 * 60000
	const n = 40 // at one a minute, crosses at least two window edges
	bounds := []float64{0, 1, 2, 4, 8, 16}
	forms := []struct {
		name     string
		reversed bool
		spacing  int64
	}{
		{"one window", false, 1000}, // 40 s from a minute's start: one window
		{"windows", false, 60_000},
		{"reversed", true, 60_000},
	}
	for _, f := range forms {
		t.Run(f.name, func(t *testing.T) {
			sb := store.Batch{Instance: inst("equiv-samples", f.name), Key: "equiv-samples-" + f.name, ReceivedAt: time.Now()}
			rb := store.Batch{Instance: inst("equiv-series", f.name), Key: "equiv-series-" + f.name}
			gauge := store.Series{Name: "/gauge:bytes"}
			counter := store.Series{Name: "/counter:total"}
			hist := store.Series{Name: "/lat:seconds", Boundaries: bounds}
			cum := make([]uint64, len(bounds)-1)
			for k := 0; k < n; k++ {
				i := k
				if f.reversed {
					i = n - 1 - k
				}
				ts := t0 + int64(i)*f.spacing + int64(i%7)
				g, c := math.Sin(float64(i))*1e6, float64(1e9+i*4096)
				counts := make([]uint64, len(bounds)-1)
				for j := range counts {
					counts[j] = uint64(i*i*(j+1)) % 1000
				}
				if k == n/2 {
					copy(counts, cum) // an unchanged histogram
				}
				cum = counts
				sb.Samples = append(sb.Samples,
					store.Sample{Name: gauge.Name, T: ts, Value: g},
					store.Sample{Name: hist.Name, T: ts, Hist: &store.Histogram{Boundaries: bounds, Counts: counts}},
					store.Sample{Name: counter.Name, T: ts, Value: c})
				gauge.T, gauge.Values = append(gauge.T, ts), append(gauge.Values, g)
				counter.T, counter.Values = append(counter.T, ts), append(counter.Values, c)
				hist.T, hist.Counts = append(hist.T, ts), append(hist.Counts, counts...)
			}
			rb.Series = []store.Series{gauge, hist, counter}
			mustAppend(t, s, sb)
			mustAppend(t, s, rb)
			for _, name := range []string{gauge.Name, counter.Name, hist.Name} {
				for _, step := range []int64{0, 60_000, 600_000} {
					q := store.SeriesQuery{Name: name, Start: t0, End: t0 + n*60_000, Step: step}
					q.Instance = key(sb.Instance)
					want, err := s.QuerySeries(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					q.Instance = key(rb.Instance)
					got, err := s.QuerySeries(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					if step == 0 && len(want) != n {
						t.Fatalf("%s: %d points from samples, want %d", name, len(want), n)
					}
					if fmt.Sprint(pointsText(got)) != fmt.Sprint(pointsText(want)) {
						t.Errorf("%s step %d: series read back\n%v\nsamples read back\n%v", name, step, pointsText(got), pointsText(want))
					}
				}
			}
		})
	}
}

// pointsText renders points with their histograms' contents, not their
// addresses.
func pointsText(pts []store.Point) []string {
	out := make([]string, len(pts))
	for i, p := range pts {
		h := p.Hist
		p.Hist = nil
		out[i] = fmt.Sprintf("%+v", p)
		if h != nil {
			out[i] += fmt.Sprintf(" hist %v %v", h.Boundaries, h.Counts)
		}
	}
	return out
}
