package sqlite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// Chunk format (the data column of the chunks table; documented here
// because it is the on-disk format).
//
// A chunk holds the points of one series in ascending time, the first at
// the row's min_t:
//
//	byte     kind: 1 scalar, 2 histogram
//	uvarint  n, the number of points
//	n−1 ×    zigzag varint: delta-of-delta of the timestamps (ms); the
//	         first delta is taken against 0, so regular sampling costs one
//	         byte per point
//	n ×      value, scalar: a control byte c then its payload
//	           c = 0        same as the previous value (the first against 0)
//	           c = 1        zigzag varint of the integer difference (both
//	                        values integral and below 2^53)
//	           c = 2+8·l+t  the XOR with the previous value's bits, its l
//	                        leading and t trailing zero bytes dropped, the
//	                        8−l−t middle bytes big-endian
//	n ×      value, histogram: uvarint k, the number of buckets whose count
//	         changed since the previous point (the first against zeros),
//	         then k × (uvarint index gap, zigzag varint count difference)
//
// Counters and slowly moving gauges cost 2–4 bytes per point, constants 2.

const (
	kindScalar = 1
	kindHist   = 2
)

var errCorrupt = errors.New("corrupt chunk")

type point struct {
	t     int64
	v     float64
	count []uint64 // histogram counts, nil for scalars
}

// cols is the points of one series in columns, the one input of the
// chunk encoder: ingest fills it straight from a store.Series (flat
// counts) or from grouped samples and compaction from decoded points (one
// counts slice per point), so there is a single copy of the chunk logic.
type cols struct {
	t []int64
	v []float64 // scalar values
	// A histogram's counts: rows[i] when rows is set, else
	// c[i·nb : (i+1)·nb].
	c    []uint64
	nb   int
	rows [][]uint64
}

func (c *cols) counts(i int) []uint64 {
	if c.rows != nil {
		return c.rows[i]
	}
	return c.c[i*c.nb : (i+1)*c.nb : (i+1)*c.nb]
}

// encodeCols appends the encoding of points [lo, hi) of c (sorted by t,
// distinct t) to dst.
func encodeCols(dst []byte, hist bool, c *cols, lo, hi int) []byte {
	if hist {
		dst = append(dst, kindHist)
	} else {
		dst = append(dst, kindScalar)
	}
	dst = binary.AppendUvarint(dst, uint64(hi-lo))
	ts := c.t[lo:hi]
	var prevDelta int64
	for i := 1; i < len(ts); i++ {
		d := ts[i] - ts[i-1]
		dst = binary.AppendVarint(dst, d-prevDelta)
		prevDelta = d
	}
	if hist {
		var prev []uint64
		for i := lo; i < hi; i++ {
			cur := c.counts(i)
			dst = appendHistDelta(dst, prev, cur)
			prev = cur
		}
		return dst
	}
	var prev float64
	for _, v := range c.v[lo:hi] {
		dst = appendValue(dst, prev, v)
		prev = v
	}
	return dst
}

// encodeChunk appends the encoding of pts (sorted by t, distinct t) to dst.
// Compaction and tests use it; ingest calls encodeCols directly.
func encodeChunk(dst []byte, hist bool, pts []point) []byte {
	c := cols{t: make([]int64, len(pts))}
	if hist {
		c.rows = make([][]uint64, len(pts))
	} else {
		c.v = make([]float64, len(pts))
	}
	for i, p := range pts {
		c.t[i] = p.t
		if hist {
			c.rows[i] = p.count
		} else {
			c.v[i] = p.v
		}
	}
	return encodeCols(dst, hist, &c, 0, len(pts))
}

func appendValue(dst []byte, prev, cur float64) []byte {
	pb, cb := math.Float64bits(prev), math.Float64bits(cur)
	if pb == cb {
		return append(dst, 0)
	}
	x := pb ^ cb
	lz, tz := bits.LeadingZeros64(x)/8, bits.TrailingZeros64(x)/8
	xorLen := 1 + 8 - lz - tz
	if integral(prev) && integral(cur) {
		d := int64(cur) - int64(prev)
		zz := uint64(d<<1) ^ uint64(d>>63)
		if 1+uvarintLen(zz) <= xorLen {
			dst = append(dst, 1)
			return binary.AppendUvarint(dst, zz)
		}
	}
	dst = append(dst, byte(2+8*lz+tz))
	for i := 7 - lz; i >= tz; i-- {
		dst = append(dst, byte(x>>(8*uint(i))))
	}
	return dst
}

func integral(f float64) bool {
	return f == math.Trunc(f) && math.Abs(f) < 1<<53
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// appendHistDelta encodes cur against prev (nil or shorter = zeros past
// its end). It is the hottest loop of ingest (8 histograms × ~130 buckets
// × 10 points a batch), so it makes one pass: the change count k goes
// into a byte reserved before the pairs and is widened in place in the
// rare case k ≥ 128.
func appendHistDelta(dst []byte, prev, cur []uint64) []byte {
	kAt := len(dst)
	dst = append(dst, 0)
	k, last := 0, 0
	p := prev[:min(len(prev), len(cur))]
	for i, c := range cur[:len(p)] {
		if c == p[i] {
			continue
		}
		dst = binary.AppendUvarint(dst, uint64(i-last))
		dst = binary.AppendVarint(dst, int64(c-p[i]))
		k, last = k+1, i
	}
	for i := len(p); i < len(cur); i++ {
		if c := cur[i]; c != 0 {
			dst = binary.AppendUvarint(dst, uint64(i-last))
			dst = binary.AppendVarint(dst, int64(c))
			k, last = k+1, i
		}
	}
	if k < 0x80 {
		dst[kAt] = byte(k)
		return dst
	}
	w := uvarintLen(uint64(k))
	end := len(dst)
	dst = append(dst, make([]byte, w-1)...)
	copy(dst[kAt+w:], dst[kAt+1:end])
	binary.PutUvarint(dst[kAt:], uint64(k))
	return dst
}

// chunkLen returns the number of points a chunk holds, from its header.
func chunkLen(data []byte) int {
	if len(data) < 2 {
		return 0
	}
	n, k := binary.Uvarint(data[1:])
	if k <= 0 || n > uint64(len(data))*8 {
		return 0
	}
	return int(n)
}

// decodeChunk decodes a chunk whose first point is at minT. nb is the
// number of histogram buckets (ignored for scalars). fn is called per point
// in ascending time; the histogram slice passed is not reused by the
// decoder, so fn may keep it.
func decodeChunk(data []byte, minT int64, nb int, fn func(point)) error {
	if len(data) < 2 {
		return errCorrupt
	}
	kind := data[0]
	r := reader{b: data[1:]}
	un := r.uvarint()
	if r.err != nil || un > uint64(len(data))*8 {
		return fmt.Errorf("%w: point count", errCorrupt)
	}
	n := int(un)
	ts := make([]int64, n)
	if n > 0 {
		ts[0] = minT
	}
	var delta int64
	for i := 1; i < n; i++ {
		delta += r.varint()
		ts[i] = ts[i-1] + delta
	}
	switch kind {
	case kindScalar:
		var prev float64
		for i := 0; i < n && r.err == nil; i++ {
			prev = readValue(&r, prev)
			if r.err == nil {
				fn(point{t: ts[i], v: prev})
			}
		}
	case kindHist:
		if nb < 0 {
			return fmt.Errorf("%w: %d buckets", errCorrupt, nb)
		}
		// One allocation for the chunk's histograms instead of one per
		// point: a 24 h raw query decodes 86,400 of them.
		slab := make([]uint64, (n+1)*nb)
		prev := slab[n*nb:]
		for i := 0; i < n && r.err == nil; i++ {
			cur := slab[i*nb : (i+1)*nb : (i+1)*nb]
			copy(cur, prev)
			if err := readHistDelta(&r, cur); err != nil {
				return err
			}
			if r.err == nil {
				fn(point{t: ts[i], count: cur})
			}
			prev = cur
		}
	default:
		return fmt.Errorf("%w: kind %d", errCorrupt, kind)
	}
	if r.err != nil {
		return fmt.Errorf("%w: %v", errCorrupt, r.err)
	}
	return nil
}

// lastPoint decodes only what the newest point of a chunk needs: one
// histogram buffer instead of one per point.
func lastPoint(data []byte, minT int64, nb int) (point, bool, error) {
	if len(data) >= 1 && data[0] == kindHist && nb >= 0 {
		r := reader{b: data[1:]}
		un := r.uvarint()
		if r.err != nil || un > uint64(len(data))*8 {
			return point{}, false, fmt.Errorf("%w: point count", errCorrupt)
		}
		n := int(un)
		t, delta := minT, int64(0)
		for i := 1; i < n; i++ {
			delta += r.varint()
			t += delta
		}
		cur := make([]uint64, nb)
		for i := 0; i < n && r.err == nil; i++ {
			if err := readHistDelta(&r, cur); err != nil {
				return point{}, false, err
			}
		}
		if r.err != nil {
			return point{}, false, fmt.Errorf("%w: %v", errCorrupt, r.err)
		}
		return point{t: t, count: cur}, n > 0, nil
	}
	var last point
	ok := false
	err := decodeChunk(data, minT, nb, func(p point) { last, ok = p, true })
	return last, ok, err
}

func readHistDelta(r *reader, cur []uint64) error {
	k := int(r.uvarint())
	idx := 0
	for j := 0; j < k && r.err == nil; j++ {
		idx += int(r.uvarint())
		d := r.varint()
		if idx < 0 || idx >= len(cur) {
			return fmt.Errorf("%w: bucket index %d of %d", errCorrupt, idx, len(cur))
		}
		cur[idx] = uint64(int64(cur[idx]) + d)
	}
	return nil
}

// encodeHist encodes one cumulative histogram on its own (rollups).
func encodeHist(counts []uint64) []byte { return appendHistDelta(nil, nil, counts) }

func decodeHist(b []byte, nb int) ([]uint64, error) {
	cur := make([]uint64, nb)
	r := reader{b: b}
	if err := readHistDelta(&r, cur); err != nil {
		return nil, err
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: %v", errCorrupt, r.err)
	}
	return cur, nil
}

func zigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

type reader struct {
	b   []byte
	err error
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.err = errors.New("truncated")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 { return zigzag(r.uvarint()) }

// encodeFloats stores histogram boundaries (series table).
func encodeFloats(fs []float64) []byte {
	b := make([]byte, 0, 8*len(fs))
	for _, f := range fs {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
	}
	return b
}

func decodeFloats(b []byte) []float64 {
	fs := make([]float64, len(b)/8)
	for i := range fs {
		fs[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return fs
}

// Block format (the data column of the blocks table). A block holds what
// one Append wrote for one instance within one compaction window: a
// section per series, each section a chunk as above. The directory comes
// first so a reader decodes only the section of the series it wants.
//
//	byte     kind: 3
//	uvarint  m, the number of sections
//	uvarint  the directory's length in bytes (so the sections' start is
//	         known without reading the directory twice)
//	m ×      uvarint series id, uvarint (section min_t − block min_t),
//	         uvarint section length in bytes
//	m ×      the sections, in directory order
const kindBlock = 3

// blockSection is one series' chunk inside a block.
type blockSection struct {
	series int64
	minT   int64
	data   []byte
}

// encodeBlock appends the block of secs (block min_t = minT) to dst.
func encodeBlock(dst []byte, minT int64, secs []blockSection) []byte {
	dst = append(dst, kindBlock)
	dst = binary.AppendUvarint(dst, uint64(len(secs)))
	n := 0
	for _, sc := range secs {
		n += uvarintLen(uint64(sc.series)) + uvarintLen(uint64(sc.minT-minT)) + uvarintLen(uint64(len(sc.data)))
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	for _, sc := range secs {
		dst = binary.AppendUvarint(dst, uint64(sc.series))
		dst = binary.AppendUvarint(dst, uint64(sc.minT-minT))
		dst = binary.AppendUvarint(dst, uint64(len(sc.data)))
	}
	for _, sc := range secs {
		dst = append(dst, sc.data...)
	}
	return dst
}

// forEachSection calls fn for each section of a block whose min_t is minT,
// in directory order, until fn returns false. Sections alias data.
func forEachSection(data []byte, minT int64, fn func(sc blockSection) bool) error {
	if len(data) < 2 || data[0] != kindBlock {
		return fmt.Errorf("%w: not a block", errCorrupt)
	}
	r := reader{b: data[1:]}
	m := r.uvarint()
	dl := r.uvarint()
	if r.err != nil || m > uint64(len(data)) || dl > uint64(len(r.b)) {
		return fmt.Errorf("%w: block header", errCorrupt)
	}
	dir := reader{b: r.b[:dl]}
	body := r.b[dl:]
	off := uint64(0)
	for i := uint64(0); i < m; i++ {
		id, dt, n := dir.uvarint(), dir.uvarint(), dir.uvarint()
		if dir.err != nil {
			return fmt.Errorf("%w: block directory: %v", errCorrupt, dir.err)
		}
		if off > uint64(len(body)) || n > uint64(len(body))-off {
			return fmt.Errorf("%w: block section %d overruns the block", errCorrupt, i)
		}
		if !fn(blockSection{series: int64(id), minT: minT + int64(dt), data: body[off : off+n : off+n]}) {
			return nil
		}
		off += n
	}
	return nil
}

// Packed rollup hour format (the data column of rollup_hours): the 1-minute
// rollups of one series within one hour, in ascending minute order, each
// field against the same field of the minute before (the first against
// zeros), so a steady counter costs a few bytes a minute instead of a row:
//
//	byte     version: 1
//	uvarint  m, the number of minutes
//	m ×      uvarint minutes since the previous minute (the first: since
//	         the hour's start), uvarint n, uvarint last_t − minute,
//	         sum, min, max, last as scalar values above, then for a
//	         histogram series byte 0 (none) or 1 and the changed buckets
//	         as in a histogram chunk
const rollHourVersion = 1

// hourMs is the span one packed rollup row covers.
const hourMs = 60 * 60000

func floorHour(t int64) int64 {
	h := t - t%hourMs
	if t < 0 && t%hourMs != 0 {
		h -= hourMs
	}
	return h
}

// encodeRollHour appends the packed form of aggs (ascending, distinct
// minutes of the hour starting at hour) to dst.
func encodeRollHour(dst []byte, hour int64, hist bool, aggs []rollAgg) []byte {
	dst = append(dst, rollHourVersion)
	dst = binary.AppendUvarint(dst, uint64(len(aggs)))
	var prev rollAgg
	prevT := hour
	for _, a := range aggs {
		dst = binary.AppendUvarint(dst, uint64((a.t-prevT)/60000))
		dst = binary.AppendUvarint(dst, uint64(a.n))
		dst = binary.AppendUvarint(dst, uint64(a.lastT-a.t))
		dst = appendValue(dst, prev.sum, a.sum)
		dst = appendValue(dst, prev.min, a.min)
		dst = appendValue(dst, prev.max, a.max)
		dst = appendValue(dst, prev.last, a.last)
		if hist {
			if a.hist == nil {
				dst = append(dst, 0)
			} else {
				dst = append(dst, 1)
				dst = appendHistDelta(dst, prev.hist, a.hist)
				prev.hist = a.hist
			}
		}
		prevT = a.t
		prev.sum, prev.min, prev.max, prev.last = a.sum, a.min, a.max, a.last
	}
	return dst
}

// decodeRollHour decodes a packed hour starting at hour; nb is the number
// of histogram buckets, or −1 for a scalar series. fn gets each minute in
// ascending order; its hist slice is not reused.
func decodeRollHour(data []byte, hour int64, nb int, fn func(rollAgg)) error {
	if len(data) < 2 || data[0] != rollHourVersion {
		return fmt.Errorf("%w: packed rollup hour header", errCorrupt)
	}
	r := reader{b: data[1:]}
	m := r.uvarint()
	if r.err != nil || m > 60 {
		return fmt.Errorf("%w: packed rollup hour of %d minutes", errCorrupt, m)
	}
	var prev rollAgg
	t := hour
	var cur []uint64
	if nb >= 0 {
		cur = make([]uint64, nb)
	}
	for i := uint64(0); i < m && r.err == nil; i++ {
		dt := r.uvarint()
		n := r.uvarint()
		lt := r.uvarint()
		if dt > 60 || (i > 0 && dt == 0) || lt >= 60000 || n > 1<<40 {
			return fmt.Errorf("%w: packed rollup minute %d", errCorrupt, i)
		}
		t += int64(dt) * 60000
		if t >= hour+hourMs {
			return fmt.Errorf("%w: packed rollup minute %d past its hour", errCorrupt, i)
		}
		a := rollAgg{t: t, n: int64(n), lastT: t + int64(lt)}
		a.sum = readValue(&r, prev.sum)
		a.min = readValue(&r, prev.min)
		a.max = readValue(&r, prev.max)
		a.last = readValue(&r, prev.last)
		if nb >= 0 {
			switch r.byte() {
			case 0:
			case 1:
				if err := readHistDelta(&r, cur); err != nil {
					return err
				}
				a.hist = slices.Clone(cur)
			default:
				return fmt.Errorf("%w: packed rollup histogram flag", errCorrupt)
			}
		}
		if r.err != nil {
			break
		}
		fn(a)
		prev = a
	}
	if r.err != nil {
		return fmt.Errorf("%w: %v", errCorrupt, r.err)
	}
	return nil
}

// readValue reads one value written by appendValue after prev.
func readValue(r *reader, prev float64) float64 {
	c := r.byte()
	switch {
	case c == 0:
		return prev
	case c == 1:
		return float64(int64(prev) + zigzag(r.uvarint()))
	}
	c -= 2
	lz, tz := int(c/8), int(c%8)
	if lz+tz > 7 {
		if r.err == nil {
			r.err = errors.New("control byte")
		}
		return prev
	}
	var x uint64
	for j := 7 - lz; j >= tz; j-- {
		x |= uint64(r.byte()) << (8 * uint(j))
	}
	return math.Float64frombits(math.Float64bits(prev) ^ x)
}
