package sqlite

import (
	"cmp"
	"fmt"
	"slices"
	"sync"

	"github.com/gopulse/gopulse/store"
)

// encChunk is one series' points of one window, encoded, ready to go
// into a block.
type encChunk struct {
	name       string
	hist       bool
	bounds     []float64
	win        int64
	minT, maxT int64
	data       []byte
}

// sameBacking reports whether a and b are the same slice: the collector
// passes the boundaries of a histogram from its descriptor cache, so one
// pointer comparison usually replaces comparing ~130 floats.
func sameBacking(a, b []float64) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func sameBounds(a, b []float64) bool { return sameBacking(a, b) || slices.Equal(a, b) }

// group is one metric of a batch: its samples (a range of preparer.order)
// and its Series (a list through preparer.nextSeries).
type group struct {
	name   string
	hist   bool
	bounds []float64
	// nSamples samples kept (not dropped) start at order[sampleStart].
	nSamples    int32
	sampleStart int32
	// firstSeries and lastSeries index Batch.Series (-1: none).
	firstSeries, lastSeries int32
}

// preparer is the scratch space of one prepare call, pooled: a batch is
// ~800 points, and allocating its index arrays and encoding buffer for
// each of thousands of batches a second would feed the GC for nothing.
type preparer struct {
	byName     map[string]int32
	groups     []group
	ser        []int32 // group of each sample, -1 dropped
	nextSeries []int32 // next Series of the same group, -1 none
	starts     []int32
	order      []int32
	perm       []int32
	// known lists the names of the last Series-only batch whose names
	// were all different (see knownDistinct); kept across pool uses.
	known  []string
	gather cols // a group's points in input order
	sorted cols // ... sorted and de-duplicated
	data   []byte
	spans  []int
	out    []encChunk
}

var preparers = sync.Pool{New: func() any { return &preparer{byName: make(map[string]int32, 128)} }}

// maxPooledBytes keeps a preparer that met one huge batch from pinning
// its buffers in the pool.
const maxPooledBytes = 4 << 20

// release returns p to the pool once the chunks it returned are no longer
// used (Append: after the write). References into the caller's batch are
// cleared so the pool does not keep batches alive.
func (p *preparer) release() {
	big := len(p.byName) > 4096
	clear(p.byName)
	clear(p.groups[:cap(p.groups)])
	clear(p.gather.rows[:cap(p.gather.rows)])
	clear(p.sorted.rows[:cap(p.sorted.rows)])
	clear(p.out[:cap(p.out)])
	if cap(p.data) > maxPooledBytes || cap(p.gather.t) > maxPooledBytes/8 || big {
		return
	}
	preparers.Put(p)
}

// prepare groups, sorts, de-duplicates and encodes a batch's points
// (Samples and Series) into one chunk per metric and window, sorted by
// window; it returns the number of points older than cutoff, which are
// dropped. It runs in the caller's goroutine so the writer only inserts,
// and it is on the ingest path of every batch, hence the columns and the
// shared buffers:
//
//   - A metric's points are merged from all its samples (in Samples order)
//     and then all its Series (in Series order); of points with the same
//     time the first in that order is kept.
//   - The common case — a metric given as one Series whose times ascend
//     within one window — is encoded straight from the Series' columns.
//   - Everything else is gathered into scratch columns (histogram counts
//     by reference, never copied), sorted if needed, and encoded by the
//     same encoder.
func (p *preparer) prepare(samples []store.Sample, series []store.Series, cutoff int64) ([]encChunk, int, error) {
	clear(p.byName)
	p.groups = p.groups[:0]
	dropped := 0
	// find returns the group of name, creating it with the given kind, and
	// checks that the kind agrees with the group's.
	find := func(name string, hist bool, bounds []float64) (int32, error) {
		k, ok := p.byName[name]
		if !ok {
			k = int32(len(p.groups))
			p.byName[name] = k
			p.groups = append(p.groups, group{name: name, hist: hist, bounds: bounds, firstSeries: -1, lastSeries: -1})
			return k, nil
		}
		g := &p.groups[k]
		if g.hist != hist {
			return 0, fmt.Errorf("%w: metric %s mixes histogram and scalar samples", store.ErrConflict, name)
		}
		if hist && !sameBounds(g.bounds, bounds) {
			return 0, fmt.Errorf("%w: histogram %s changes its boundaries within one batch", store.ErrConflict, name)
		}
		return k, nil
	}

	p.ser = slices.Grow(p.ser[:0], len(samples))[:len(samples)]
	for i := range samples {
		sm := &samples[i]
		if sm.Name == "" {
			return nil, 0, fmt.Errorf("%w: sample %d has no metric name", store.ErrInvalid, i)
		}
		if sm.T < cutoff {
			dropped++
			p.ser[i] = -1
			continue
		}
		var bounds []float64
		if h := sm.Hist; h != nil {
			if len(h.Boundaries) != len(h.Counts)+1 {
				return nil, 0, fmt.Errorf("%w: histogram %s at %d has %d boundaries for %d buckets (want buckets+1)", store.ErrInvalid, sm.Name, sm.T, len(h.Boundaries), len(h.Counts))
			}
			bounds = h.Boundaries
		}
		k, err := find(sm.Name, sm.Hist != nil, bounds)
		if err != nil {
			return nil, 0, err
		}
		p.ser[i] = k
		p.groups[k].nSamples++
	}
	p.nextSeries = slices.Grow(p.nextSeries[:0], len(series))[:len(series)]
	// Names known distinct need no map: each Series is its own metric.
	distinct := len(samples) == 0 && p.knownDistinct(series)
	for i := range series {
		sr := &series[i]
		if err := validSeries(sr); err != nil {
			return nil, 0, fmt.Errorf("%w: series %d: %s", store.ErrInvalid, i, err)
		}
		if distinct {
			p.groups = append(p.groups, group{name: sr.Name, hist: sr.Boundaries != nil, bounds: sr.Boundaries, firstSeries: int32(i), lastSeries: int32(i)})
			p.nextSeries[i] = -1
			continue
		}
		k, err := find(sr.Name, sr.Boundaries != nil, sr.Boundaries)
		if err != nil {
			return nil, 0, err
		}
		g := &p.groups[k]
		p.nextSeries[i] = -1
		if g.lastSeries >= 0 {
			p.nextSeries[g.lastSeries] = int32(i)
		} else {
			g.firstSeries = int32(i)
		}
		g.lastSeries = int32(i)
	}

	if len(samples) == 0 && !distinct && len(p.groups) == len(series) {
		p.known = p.known[:0]
		for i := range series {
			p.known = append(p.known, series[i].Name)
		}
	}

	// Counting sort: order holds the kept sample indices grouped by
	// metric, in input order within a metric.
	if len(samples) > 0 {
		p.starts = slices.Grow(p.starts[:0], len(p.groups))[:len(p.groups)]
		n := int32(0)
		for k := range p.groups {
			p.starts[k] = n
			p.groups[k].sampleStart = n
			n += p.groups[k].nSamples
		}
		p.order = slices.Grow(p.order[:0], int(n))[:n]
		for i, k := range p.ser {
			if k >= 0 {
				p.order[p.starts[k]] = int32(i)
				p.starts[k]++
			}
		}
	}

	p.data, p.out, p.spans = p.data[:0], p.out[:0], p.spans[:0]
	if n := len(samples) + 16*len(series); cap(p.data) < n {
		p.data = make([]byte, 0, n) // about what scalars need; hist grows it once
	}
	for k := range p.groups {
		g := &p.groups[k]
		if g.nSamples == 0 && g.firstSeries >= 0 && p.nextSeries[g.firstSeries] < 0 {
			sr := &series[g.firstSeries]
			if direct(sr.T, cutoff) {
				c := cols{t: sr.T, v: sr.Values, c: sr.Counts, nb: len(sr.Boundaries) - 1}
				p.emit(g, &c, 0, len(sr.T))
				continue
			}
		}
		dropped += p.general(g, samples, series, cutoff)
	}
	for i := range p.out {
		p.out[i].data = p.data[p.spans[2*i]:p.spans[2*i+1]:p.spans[2*i+1]]
	}
	// One block per window: almost always a single one.
	byWin := func(a, b encChunk) int { return cmp.Compare(a.win, b.win) }
	if !slices.IsSortedFunc(p.out, byWin) {
		slices.SortStableFunc(p.out, byWin)
	}
	return p.out, dropped, nil
}

// knownDistinct reports whether series are named as in the last
// Series-only batch this preparer found free of repeated names: agents
// send the same metrics in the same order, from the collector's
// descriptor cache, so comparing names usually compares pointers only.
func (p *preparer) knownDistinct(series []store.Series) bool {
	if len(series) != len(p.known) {
		return false
	}
	for i := range series {
		if series[i].Name != p.known[i] {
			return false
		}
	}
	return true
}

// validSeries checks a Series' shape; the message names the metric.
func validSeries(sr *store.Series) error {
	if sr.Name == "" {
		return fmt.Errorf("no metric name")
	}
	if sr.Boundaries != nil {
		nb := len(sr.Boundaries) - 1
		switch {
		case nb < 1:
			return fmt.Errorf("histogram %s has %d boundaries (want at least 2)", sr.Name, len(sr.Boundaries))
		case len(sr.Values) > 0:
			return fmt.Errorf("histogram %s has %d scalar values (want none)", sr.Name, len(sr.Values))
		case len(sr.Counts) != len(sr.T)*nb:
			return fmt.Errorf("histogram %s has %d counts for %d points of %d buckets (want %d)", sr.Name, len(sr.Counts), len(sr.T), nb, len(sr.T)*nb)
		}
		return nil
	}
	switch {
	case len(sr.Values) != len(sr.T):
		return fmt.Errorf("metric %s has %d values for %d times", sr.Name, len(sr.Values), len(sr.T))
	case len(sr.Counts) > 0:
		return fmt.Errorf("metric %s has histogram counts but no boundaries", sr.Name)
	}
	return nil
}

// direct reports whether ts can be encoded as one chunk as it is: times
// strictly ascending, none dropped, all in one window.
func direct(ts []int64, cutoff int64) bool {
	if len(ts) == 0 || len(ts) > maxChunkPoints || ts[0] < cutoff || floorWin(ts[0]) != floorWin(ts[len(ts)-1]) {
		return false
	}
	for i := 1; i < len(ts); i++ {
		if ts[i] <= ts[i-1] {
			return false
		}
	}
	return true
}

// general gathers a group's points from its samples and Series into the
// scratch columns, sorts them if needed, keeps the first point of each
// time and encodes them; it returns the number of Series points dropped
// as older than cutoff (dropped samples were counted while grouping).
func (p *preparer) general(g *group, samples []store.Sample, series []store.Series, cutoff int64) int {
	dropped := 0
	gc := &p.gather
	gc.t, gc.v, gc.rows, gc.c, gc.nb = gc.t[:0], gc.v[:0], gc.rows[:0], nil, 0
	for _, i := range p.order[g.sampleStart : g.sampleStart+g.nSamples] {
		sm := &samples[i]
		gc.t = append(gc.t, sm.T)
		if g.hist {
			gc.rows = append(gc.rows, sm.Hist.Counts)
		} else {
			gc.v = append(gc.v, sm.Value)
		}
	}
	for i := g.firstSeries; i >= 0; i = p.nextSeries[i] {
		sr := &series[i]
		nb := len(sr.Boundaries) - 1
		for j, t := range sr.T {
			if t < cutoff {
				dropped++
				continue
			}
			gc.t = append(gc.t, t)
			if g.hist {
				gc.rows = append(gc.rows, sr.Counts[j*nb:(j+1)*nb:(j+1)*nb])
			} else {
				gc.v = append(gc.v, sr.Values[j])
			}
		}
	}
	n := len(gc.t)
	if n == 0 {
		return dropped
	}
	c := gc
	ascending := true
	for i := 1; i < n && ascending; i++ {
		ascending = gc.t[i] > gc.t[i-1]
	}
	if !ascending {
		// A stable sort of indices keeps, among equal times, the input
		// order, so the first point of each time is the one kept.
		p.perm = slices.Grow(p.perm[:0], n)[:n]
		for i := range p.perm {
			p.perm[i] = int32(i)
		}
		slices.SortStableFunc(p.perm, func(a, b int32) int { return cmp.Compare(gc.t[a], gc.t[b]) })
		sc := &p.sorted
		sc.t, sc.v, sc.rows = sc.t[:0], sc.v[:0], sc.rows[:0]
		for _, i := range p.perm {
			if m := len(sc.t); m > 0 && sc.t[m-1] == gc.t[i] {
				continue
			}
			sc.t = append(sc.t, gc.t[i])
			if g.hist {
				sc.rows = append(sc.rows, gc.rows[i])
			} else {
				sc.v = append(sc.v, gc.v[i])
			}
		}
		c, n = sc, len(sc.t)
	}
	for start := 0; start < n; {
		end := start + 1
		w := floorWin(c.t[start])
		for end < n && end-start < maxChunkPoints && floorWin(c.t[end]) == w {
			end++
		}
		p.emit(g, c, start, end)
		start = end
	}
	return dropped
}

// emit encodes points [lo, hi) of c, all in one window, as a chunk of g.
func (p *preparer) emit(g *group, c *cols, lo, hi int) {
	off := len(p.data)
	p.data = encodeCols(p.data, g.hist, c, lo, hi)
	p.out = append(p.out, encChunk{name: g.name, hist: g.hist, bounds: g.bounds, win: floorWin(c.t[lo]), minT: c.t[lo], maxT: c.t[hi-1]})
	p.spans = append(p.spans, off, len(p.data))
}
