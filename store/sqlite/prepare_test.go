package sqlite

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/gopulse/gopulse/store"
)

// refHistDelta is the histogram encoding as codec.go's doc states it,
// written the obvious way (two passes): the one-pass appendHistDelta must
// produce the same bytes, since chunks on disk are in this format.
func refHistDelta(dst []byte, prev, cur []uint64) []byte {
	at := func(i int) uint64 {
		if i < len(prev) {
			return prev[i]
		}
		return 0
	}
	k := 0
	for i, c := range cur {
		if c != at(i) {
			k++
		}
	}
	dst = binary.AppendUvarint(dst, uint64(k))
	last := 0
	for i, c := range cur {
		if c == at(i) {
			continue
		}
		dst = binary.AppendUvarint(dst, uint64(i-last))
		last = i
		dst = binary.AppendVarint(dst, int64(c-at(i)))
	}
	return dst
}

func TestHistDeltaFormat(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	randCounts := func(n int, changed float64, base []uint64) []uint64 {
		out := make([]uint64, n)
		for i := range out {
			if i < len(base) {
				out[i] = base[i]
			}
			if rng.Float64() < changed {
				out[i] += uint64(rng.IntN(1 << uint(rng.IntN(40))))
			}
		}
		return out
	}
	cases := []struct {
		name      string
		prev, cur []uint64
	}{
		{"empty", nil, nil},
		{"first against zeros", nil, randCounts(130, 0.3, nil)},
		{"unchanged", []uint64{1, 2, 3}, []uint64{1, 2, 3}},
		{"decrease", []uint64{5, 2, 3}, []uint64{1, 2, 9}},
		{"127 changed", nil, randCounts(127, 2, nil)},
		{"128 changed (two-byte count)", nil, randCounts(128, 2, nil)},
		{"20000 changed (three-byte count)", nil, randCounts(20000, 2, nil)},
		{"prev shorter", []uint64{1, 1}, []uint64{1, 2, 0, 4}},
		{"prev longer", []uint64{1, 1, 7, 7}, []uint64{0, 1}},
	}
	for i := 0; i < 50; i++ {
		prev := randCounts(160, 0.5, nil)
		cases = append(cases, struct {
			name      string
			prev, cur []uint64
		}{fmt.Sprintf("random %d", i), prev, randCounts(160, rng.Float64(), prev)})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prefix := []byte{0xAA}
			got := appendHistDelta(slices.Clone(prefix), c.prev, c.cur)
			want := refHistDelta(slices.Clone(prefix), c.prev, c.cur)
			if !slices.Equal(got, want) {
				t.Fatalf("encoding differs from the documented format:\n got %x\nwant %x", got, want)
			}
			// And it decodes back (prev shorter than cur reads as zeros).
			cur := make([]uint64, len(c.cur))
			copy(cur, c.prev)
			r := reader{b: got[1:]}
			if err := readHistDelta(&r, cur); err != nil || r.err != nil || len(r.b) != 0 || !slices.Equal(cur, c.cur) {
				t.Fatalf("decoded %v (%v, %v, %d left), want %v", cur, err, r.err, len(r.b), c.cur)
			}
		})
	}
}

// refChunks is prepare as a specification: every point of every metric,
// samples first then series, first point of each time kept, grouped by
// window and encoded by encodeChunk from []point.
type refChunk struct {
	data       []byte
	minT, maxT int64
}

func refChunks(samples []store.Sample, series []store.Series, cutoff int64) map[string]map[int64]refChunk {
	type model struct {
		hist bool
		pts  []point
	}
	byName := map[string]*model{}
	var order []string
	add := func(name string, hist bool, p point) {
		m := byName[name]
		if m == nil {
			m = &model{hist: hist}
			byName[name] = m
			order = append(order, name)
		}
		m.pts = append(m.pts, p)
	}
	for _, sm := range samples {
		if sm.T < cutoff {
			continue
		}
		p := point{t: sm.T, v: sm.Value}
		if sm.Hist != nil {
			p.count = sm.Hist.Counts
		}
		add(sm.Name, sm.Hist != nil, p)
	}
	for _, sr := range series {
		nb := len(sr.Boundaries) - 1
		for j, ts := range sr.T {
			if ts < cutoff {
				continue
			}
			p := point{t: ts}
			if sr.Boundaries != nil {
				p.count = sr.Counts[j*nb : (j+1)*nb]
			} else {
				p.v = sr.Values[j]
			}
			add(sr.Name, sr.Boundaries != nil, p)
		}
	}
	out := map[string]map[int64]refChunk{}
	for _, name := range order {
		m := byName[name]
		slices.SortStableFunc(m.pts, func(a, b point) int { return cmp.Compare(a.t, b.t) })
		m.pts = slices.CompactFunc(m.pts, func(a, b point) bool { return a.t == b.t })
		out[name] = map[int64]refChunk{}
		for start := 0; start < len(m.pts); {
			end := start + 1
			w := floorWin(m.pts[start].t)
			for end < len(m.pts) && floorWin(m.pts[end].t) == w {
				end++
			}
			out[name][w] = refChunk{encodeChunk(nil, m.hist, m.pts[start:end]), m.pts[start].t, m.pts[end-1].t}
			start = end
		}
	}
	return out
}

// checkPrepared compares prepare's chunks with refChunks: the same bytes,
// exactly one chunk per metric and window, sorted by window.
func checkPrepared(t *testing.T, chunks []encChunk, want map[string]map[int64]refChunk) {
	t.Helper()
	seen := map[string]map[int64]bool{}
	for i, c := range chunks {
		if i > 0 && c.win < chunks[i-1].win {
			t.Fatalf("chunk %d (%s) of window %d after window %d", i, c.name, c.win, chunks[i-1].win)
		}
		if seen[c.name] == nil {
			seen[c.name] = map[int64]bool{}
		}
		if seen[c.name][c.win] {
			t.Fatalf("metric %s has two chunks in window %d: a block would get two sections for one series", c.name, c.win)
		}
		seen[c.name][c.win] = true
		w, ok := want[c.name][c.win]
		if !ok {
			t.Fatalf("unexpected chunk %s window %d", c.name, c.win)
		}
		if !slices.Equal(c.data, w.data) {
			t.Fatalf("chunk %s window %d:\n got %x\nwant %x", c.name, c.win, c.data, w.data)
		}
		if c.win != floorWin(c.minT) || c.minT != w.minT || c.maxT != w.maxT {
			t.Fatalf("chunk %s: window %d, min_t %d, max_t %d; want %d, %d", c.name, c.win, c.minT, c.maxT, w.minT, w.maxT)
		}
	}
	for name, wins := range want {
		for w := range wins {
			if !seen[name][w] {
				t.Fatalf("missing chunk %s window %d", name, w)
			}
		}
	}
}

func TestPrepare(t *testing.T) {
	sh := newAgentShape(10)
	sb := sh.newBatch()
	now := time.Now()
	cutoff := now.Add(-24 * time.Hour).UnixMilli()
	w0 := floorWin(now.Add(-time.Hour).UnixMilli())
	sb.at(store.Instance{}, w0+60_000, "")
	bounds := []float64{0, 1, 2}
	type batch struct {
		samples []store.Sample
		series  []store.Series
	}
	cases := []struct {
		name string
		b    batch
	}{
		{"agent batch as samples", batch{samples: sb.samples.Samples}},
		{"agent batch as series", batch{series: sb.series.Series}},
		{"agent batch as both", batch{samples: sb.samples.Samples[:300], series: sb.series.Series}},
		{"metric three times in one window", batch{
			samples: []store.Sample{{Name: "/a:x", T: w0 + 5, Value: 5}, {Name: "/h:s", T: w0 + 5, Hist: &store.Histogram{Boundaries: bounds, Counts: []uint64{5, 5}}}},
			series: []store.Series{
				{Name: "/a:x", T: []int64{w0 + 1, w0 + 5, w0 + 9}, Values: []float64{1, -5, 9}},
				{Name: "/h:s", Boundaries: bounds, T: []int64{w0 + 7, w0 + 1}, Counts: []uint64{7, 7, 1, 1}},
				{Name: "/a:x", T: []int64{w0 + 9, w0 + 3}, Values: []float64{-9, 3}},
				{Name: "/h:s", Boundaries: slices.Clone(bounds), T: []int64{w0 + 5}, Counts: []uint64{0, 0}},
			}}},
		{"across windows and dropped", batch{
			series: []store.Series{
				{Name: "/a:x", T: []int64{w0 + window + 1, w0 - 1, w0, cutoff - 1, w0 + 2*window}, Values: []float64{1, 2, 3, 4, 5}},
				{Name: "/b:x", T: []int64{w0 + 1, w0 + 2}, Values: []float64{1, 2}}, // direct
				{Name: "/c:x", T: []int64{cutoff - 5, w0}, Values: []float64{1, 2}},
			}}},
		{"empty series", batch{series: []store.Series{{Name: "/a:x"}, {Name: "/h:s", Boundaries: bounds}}}},
		{"same count of series as before, one name repeated", batch{series: []store.Series{
			{Name: "/a:x", T: []int64{w0 + 1}, Values: []float64{1}}, {Name: "/a:x", T: []int64{w0 + 1, w0 + 2}, Values: []float64{9, 2}}}}},
	}
	p := &preparer{byName: map[string]int32{}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Twice: the second time a Series-only batch with distinct
			// names takes the known-names path.
			for range 2 {
				chunks, _, err := p.prepare(c.b.samples, c.b.series, cutoff)
				if err != nil {
					t.Fatal(err)
				}
				checkPrepared(t, chunks, refChunks(c.b.samples, c.b.series, cutoff))
			}
		})
	}
}

// TestPrepareSameForms checks that the agent's batch encodes to the same
// bytes whether it comes as Samples or as Series.
func TestPrepareSameForms(t *testing.T) {
	sh := newAgentShape(10)
	sb := sh.newBatch()
	// Inside one 15-minute window, so each metric is one chunk.
	sb.at(store.Instance{}, floorWin(time.Now().Add(-time.Hour).UnixMilli())+60_000, "")
	cutoff := time.Now().Add(-24 * time.Hour).UnixMilli()
	p := &preparer{byName: map[string]int32{}}
	a, _, err := p.prepare(sb.samples.Samples, nil, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	a = slices.Clone(a)
	for i := range a {
		a[i].data = slices.Clone(a[i].data)
	}
	b, _, err := p.prepare(nil, sb.series.Series, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) || len(a) != len(sh.names) {
		t.Fatalf("%d chunks from samples, %d from series, want %d", len(a), len(b), len(sh.names))
	}
	for i := range a {
		if a[i].name != b[i].name || a[i].minT != b[i].minT || a[i].maxT != b[i].maxT || !slices.Equal(a[i].data, b[i].data) {
			t.Fatalf("chunk %d: samples %s %d..%d %d bytes, series %s %d..%d %d bytes", i, a[i].name, a[i].minT, a[i].maxT, len(a[i].data), b[i].name, b[i].minT, b[i].maxT, len(b[i].data))
		}
	}
}

// TestPrepareAllocs: after its buffers have grown, a preparer encodes the
// agent's batch without allocating, in either form.
func TestPrepareAllocs(t *testing.T) {
	sh := newAgentShape(10)
	sb := sh.newBatch()
	// Inside one 15-minute window, so each metric is one chunk.
	sb.at(store.Instance{}, floorWin(time.Now().Add(-time.Hour).UnixMilli())+60_000, "")
	cutoff := time.Now().Add(-24 * time.Hour).UnixMilli()
	p := &preparer{byName: map[string]int32{}}
	for _, form := range []store.Batch{sb.samples, sb.series} {
		if _, _, err := p.prepare(form.Samples, form.Series, cutoff); err != nil {
			t.Fatal(err)
		}
		n := testing.AllocsPerRun(20, func() {
			p.prepare(form.Samples, form.Series, cutoff)
		})
		if n != 0 {
			t.Errorf("%d samples, %d series: %v allocations per batch, want 0", len(form.Samples), len(form.Series), n)
		}
	}
}

// TestBlockOneSectionPerSeries follows a batch that names a metric three
// times into the stored block: one section per series.
func TestBlockOneSectionPerSeries(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	defer s.Close()
	in := store.Instance{Service: "svc", ID: "i", Source: store.SourceAgent}
	t0 := floorWin(time.Now().Add(-time.Hour).UnixMilli()) + 1000
	b := store.Batch{Instance: in,
		Samples: []store.Sample{{Name: "/a:x", T: t0 + 2000, Value: 2}},
		Series: []store.Series{
			{Name: "/a:x", T: []int64{t0, t0 + 1000}, Values: []float64{0, 1}},
			{Name: "/b:x", T: []int64{t0}, Values: []float64{0}},
			{Name: "/a:x", T: []int64{t0 + 3000}, Values: []float64{3}},
		}}
	if _, err := s.Append(ctx, b); err != nil {
		t.Fatal(err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT min_t, data FROM blocks`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	blocks := 0
	for rows.Next() {
		blocks++
		var minT int64
		var data []byte
		if err := rows.Scan(&minT, &data); err != nil {
			t.Fatal(err)
		}
		count := map[int64]int{}
		if err := forEachSection(data, minT, func(sc blockSection) bool { count[sc.series]++; return true }); err != nil {
			t.Fatal(err)
		}
		if len(count) != 2 {
			t.Errorf("block holds %d series, want 2", len(count))
		}
		for id, n := range count {
			if n != 1 {
				t.Errorf("series %d has %d sections in one block", id, n)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if blocks != 1 {
		t.Fatalf("%d blocks, want 1", blocks)
	}
}

// FuzzPrepare builds a batch from the fuzzer's bytes (both forms, several
// metrics, any times, scalars and histograms) and checks prepare against
// refChunks: it must never panic, and whatever it accepts it must encode
// exactly as the specification does.
func FuzzPrepare(f *testing.F) {
	f.Add([]byte{0x01, 0x10, 0x05, 0x03, 0x20, 0x01, 0x07})
	f.Add([]byte{0x83, 0x02, 0x05, 0x00, 0x10, 0x44, 0x81, 0x02, 0x05, 0x01, 0x11, 0x03})
	f.Add([]byte{0x40, 0x09, 0xff, 0xff, 0x00, 0x13, 0x13, 0xc1, 0x03, 0x02, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := reader{b: data}
		next := func() int {
			c := r.byte()
			if r.err != nil {
				return 0
			}
			return int(c)
		}
		base := floorWin(time.Now().Add(-time.Hour).UnixMilli())
		cutoff := base - 2*window
		bounds := [][]float64{{0, 1, 2}, {0, 1, 2}, {-1, 1}}
		var samples []store.Sample
		var series []store.Series
		names := []string{"/a:x", "/b:x", "/h:s", "/g:s"}
		for len(r.b) > 0 && len(samples)+len(series) < 64 {
			ctl := next()
			name := names[ctl&3]
			hist := ctl&4 != 0
			var bs []float64
			if hist {
				bs = bounds[(ctl>>3)&1]
				if ctl&16 != 0 {
					bs = bounds[2]
				}
			}
			n := next() % 12
			ts := make([]int64, n)
			for i := range ts {
				// Times within ±3 windows of base, in 10 s steps, so
				// duplicates and window edges are common.
				ts[i] = base + int64(next()%32-12)*window/8 + int64(next()%3)
			}
			if ctl&0x80 != 0 { // one sample per time
				for _, tt := range ts {
					sm := store.Sample{Name: name, T: tt, Value: float64(next())}
					if hist {
						counts := make([]uint64, len(bs)-1)
						for j := range counts {
							counts[j] = uint64(next())
						}
						sm.Hist = &store.Histogram{Boundaries: bs, Counts: counts}
					}
					samples = append(samples, sm)
				}
				continue
			}
			sr := store.Series{Name: name, T: ts}
			if hist {
				sr.Boundaries = bs
				for range n * (len(bs) - 1) {
					sr.Counts = append(sr.Counts, uint64(next()))
				}
			} else {
				for range n {
					sr.Values = append(sr.Values, float64(next())/3)
				}
			}
			series = append(series, sr)
		}
		p := &preparer{byName: map[string]int32{}}
		want := refChunks(samples, series, cutoff)
		for range 2 { // the second time through the known-names path, if it applies
			chunks, _, err := p.prepare(samples, series, cutoff)
			if err != nil {
				// The generator makes valid shapes, so only conflicts
				// between its metrics can fail.
				if !errors.Is(err, store.ErrConflict) {
					t.Fatalf("prepare: %v, want nil or ErrConflict", err)
				}
				return
			}
			checkPrepared(t, chunks, want)
		}
	})
}
