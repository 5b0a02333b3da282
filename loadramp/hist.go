package loadramp

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram layout: log-linear buckets in the HDR style. Values below 256 ns
// get one bucket each; above, every power of two is split into 128 linear
// sub-buckets, so a bucket is never wider than 1/128 (0.78%) of the values
// it holds. Values above histMax (about 18 minutes) land in the last bucket.
const (
	histSubBits  = 8
	histSub      = 1 << histSubBits // 256 exact buckets at the bottom
	histHalf     = histSub / 2      // 128 sub-buckets per power of two above
	histMaxShift = 32               // largest exponent: 2^(32+8) ns ≈ 1100 s
	histBuckets  = histSub + histMaxShift*histHalf
)

// Hist is a log-linear (HDR-style) latency histogram with about 1% relative
// precision. Record is safe for concurrent use (atomic counters), so the
// generator's workers share one histogram per step instead of one each;
// Merge adds another histogram's counts, which is exact because every
// histogram uses the same bucket boundaries.
//
// The zero value is ready to use.
type Hist struct {
	counts [histBuckets]atomic.Uint64
	total  atomic.Uint64
	sum    atomic.Uint64 // nanoseconds; wraps after 584 years of latency
	max    atomic.Int64
	min    atomic.Int64 // stored as min+1 so that 0 means "no value yet"
}

func bucketOf(v int64) int {
	if v < 0 {
		v = 0
	}
	u := uint64(v)
	if u < histSub {
		return int(u)
	}
	e := bits.Len64(u) - histSubBits
	if e > histMaxShift {
		return histBuckets - 1
	}
	m := u >> uint(e) // in [128, 256)
	return histSub + (e-1)*histHalf + int(m) - histHalf
}

// bucketRange returns the inclusive lower and exclusive upper bound of a
// bucket in nanoseconds.
func bucketRange(i int) (lo, hi int64) {
	if i < histSub {
		return int64(i), int64(i) + 1
	}
	j := i - histSub
	e := j/histHalf + 1
	m := int64(j%histHalf + histHalf)
	return m << uint(e), (m + 1) << uint(e)
}

// Record adds one observation.
func (h *Hist) Record(d time.Duration) { h.RecordN(d, 1) }

// RecordN adds n observations of the same value.
func (h *Hist) RecordN(d time.Duration, n uint64) {
	if n == 0 {
		return
	}
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)].Add(n)
	h.total.Add(n)
	h.sum.Add(uint64(v) * n)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
	for {
		m := h.min.Load()
		if (m != 0 && v+1 >= m) || h.min.CompareAndSwap(m, v+1) {
			break
		}
	}
}

// Count is the number of observations.
func (h *Hist) Count() uint64 { return h.total.Load() }

// Max is the largest observation (exact, not bucketed).
func (h *Hist) Max() time.Duration { return time.Duration(h.max.Load()) }

// Min is the smallest observation (exact), 0 when empty.
func (h *Hist) Min() time.Duration {
	m := h.min.Load()
	if m == 0 {
		return 0
	}
	return time.Duration(m - 1)
}

// Mean is the exact arithmetic mean, 0 when empty.
func (h *Hist) Mean() time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Quantile returns the value at quantile q in [0, 1]: the midpoint of the
// bucket holding the ⌈q·n⌉-th smallest observation, clamped to the exact
// min and max. An empty histogram returns 0.
func (h *Hist) Quantile(q float64) time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	var cum uint64
	for i := range h.counts {
		cum += h.counts[i].Load()
		if cum >= rank {
			lo, hi := bucketRange(i)
			v := lo + (hi-lo-1)/2
			if mx := h.max.Load(); v > mx {
				v = mx
			}
			if mn := h.Min(); time.Duration(v) < mn {
				v = int64(mn)
			}
			return time.Duration(v)
		}
	}
	return h.Max()
}

// Merge adds o's observations to h. o must not be written concurrently.
func (h *Hist) Merge(o *Hist) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c != 0 {
			h.counts[i].Add(c)
		}
	}
	h.total.Add(o.total.Load())
	h.sum.Add(o.sum.Load())
	if m := o.max.Load(); m > h.max.Load() {
		h.max.Store(m)
	}
	if m := o.min.Load(); m != 0 && (h.min.Load() == 0 || m < h.min.Load()) {
		h.min.Store(m)
	}
}

// Reset empties the histogram. It must not race with Record.
func (h *Hist) Reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
	h.total.Store(0)
	h.sum.Store(0)
	h.max.Store(0)
	h.min.Store(0)
}
