package loadramp

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketRangeCoversValue(t *testing.T) {
	vals := []int64{0, 1, 255, 256, 257, 511, 512, 1000, 123456, 1 << 30, 1<<40 - 1}
	for _, v := range vals {
		i := bucketOf(v)
		lo, hi := bucketRange(i)
		if v < lo || v >= hi {
			t.Errorf("value %d in bucket %d = [%d,%d)", v, i, lo, hi)
		}
		if v >= histSub && float64(hi-lo)/float64(lo) > 1.0/128+1e-12 {
			t.Errorf("bucket %d [%d,%d) wider than 1/128", i, lo, hi)
		}
	}
	// Adjacent buckets tile the line without gaps.
	for i := 1; i < histBuckets; i++ {
		_, prevHi := bucketRange(i - 1)
		lo, _ := bucketRange(i)
		if lo != prevHi {
			t.Fatalf("gap between bucket %d and %d: %d != %d", i-1, i, prevHi, lo)
		}
	}
}

func TestHistQuantilesWithinOnePercent(t *testing.T) {
	tests := []struct {
		name string
		gen  func(r *rand.Rand) time.Duration
	}{
		{"uniform 1-100ms", func(r *rand.Rand) time.Duration {
			return time.Millisecond + time.Duration(r.Int64N(int64(99*time.Millisecond)))
		}},
		{"lognormal around 2ms", func(r *rand.Rand) time.Duration {
			return time.Duration(2e6 * math.Exp(r.NormFloat64()))
		}},
		{"bimodal 300us/1s", func(r *rand.Rand) time.Duration {
			if r.IntN(100) < 3 {
				return time.Second
			}
			return 300 * time.Microsecond
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			var h Hist
			var xs []time.Duration
			for range 50000 {
				d := tc.gen(r)
				xs = append(xs, d)
				h.Record(d)
			}
			slices.Sort(xs)
			for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
				want := xs[int(math.Ceil(q*float64(len(xs))))-1]
				got := h.Quantile(q)
				if rel := math.Abs(float64(got-want)) / float64(want); rel > 0.01 {
					t.Errorf("q%.3f = %v, exact %v (%.2f%% off)", q, got, want, rel*100)
				}
			}
			if h.Max() != xs[len(xs)-1] || h.Min() != xs[0] {
				t.Errorf("min/max = %v/%v, want %v/%v", h.Min(), h.Max(), xs[0], xs[len(xs)-1])
			}
		})
	}
}

func TestHistMergeEqualsCombined(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var a, b, all Hist
	for i := range 20000 {
		d := time.Duration(r.Int64N(int64(50 * time.Millisecond)))
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(&b)
	for _, q := range []float64{0.1, 0.5, 0.99, 1} {
		if a.Quantile(q) != all.Quantile(q) {
			t.Errorf("q%v merged %v != combined %v", q, a.Quantile(q), all.Quantile(q))
		}
	}
	if a.Count() != all.Count() || a.Mean() != all.Mean() {
		t.Errorf("count/mean %d/%v != %d/%v", a.Count(), a.Mean(), all.Count(), all.Mean())
	}
}

func TestHistEmptyAndRecordN(t *testing.T) {
	var h Hist
	if h.Quantile(0.99) != 0 || h.Mean() != 0 || h.Min() != 0 {
		t.Fatal("empty histogram must report zeros")
	}
	h.RecordN(time.Second, 99)
	h.Record(time.Millisecond)
	if got := h.Quantile(0.5); got < 990*time.Millisecond || got > time.Second {
		t.Errorf("median %v, want ≈1s", got)
	}
	if h.Min() != time.Millisecond {
		t.Errorf("min %v", h.Min())
	}
}
