package collector

import (
	"math"
	"reflect"
	rtmetrics "runtime/metrics"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/gopulse/gopulse/store"
	"github.com/gopulse/gopulse/wire"
)

// seedBatch is a batch with every kind of value, sample facts and GC
// records, as the agent sends them.
func seedBatch() *wire.MetricBatch {
	mb := &wire.MetricBatch{
		BatchId:  "i-1-b7",
		Sequence: 7,
		Instance: &wire.Instance{Service: "checkout", InstanceId: "i-1", Host: "h", Labels: map[string]string{"zone": "a"}},
		Descriptors: []*wire.MetricDescriptor{
			{Name: "/sched/goroutines:goroutines", Kind: wire.MetricKind_METRIC_KIND_UINT64},
			{Name: "/gc/gogc:percent", Kind: wire.MetricKind_METRIC_KIND_FLOAT64},
			{Name: "/sched/latencies:seconds", Kind: wire.MetricKind_METRIC_KIND_HISTOGRAM, Boundaries: []float64{0, 1e-6, 1e-3, math.Inf(1)}},
		},
		GcCycles: []*wire.GCCycle{{Cycle: 3, PauseNs: 12000, EndTimeUnixNano: 1_700_000_000_000_000_000}},
	}
	for i := 0; i < 3; i++ {
		mb.Samples = append(mb.Samples, &wire.Sample{
			TimeUnixNano: 1_700_000_000_000_000_000 + int64(i)*1e9,
			Values: []*wire.MetricValue{
				{Index: 0, Value: &wire.MetricValue_Uint64Value{Uint64Value: uint64(100 + i)}},
				{Index: 1, Value: &wire.MetricValue_Float64Value{Float64Value: 100.5}},
				{Index: 2, Value: &wire.MetricValue_Histogram{Histogram: &wire.SparseHistogram{BucketIndex: []uint32{1, 2}, Count: []uint64{5, 1}}}},
			},
			Process: &wire.ProcessFacts{RssBytes: 1 << 20, OpenFds: 12},
		})
	}
	return mb
}

// pointsOf flattens a store.Batch into its points by metric, in the order
// given, which for both decoders is sample order: the store keeps the first
// of two points at one time, so the order matters.
type flatPoint struct {
	t      int64
	v      float64
	bounds []float64
	counts []uint64
}

func pointsOf(b store.Batch) map[string][]flatPoint {
	out := map[string][]flatPoint{}
	for _, s := range b.Samples {
		p := flatPoint{t: s.T, v: s.Value}
		if s.Hist != nil {
			p.bounds, p.counts, p.v = s.Hist.Boundaries, s.Hist.Counts, 0
		}
		out[s.Name] = append(out[s.Name], p)
	}
	for _, s := range b.Series {
		nb := len(s.Boundaries) - 1
		for i, t := range s.T {
			p := flatPoint{t: t}
			if s.Boundaries != nil {
				p.bounds, p.counts = s.Boundaries, s.Counts[i*nb:(i+1)*nb]
			} else {
				p.v = s.Values[i]
			}
			out[s.Name] = append(out[s.Name], p)
		}
	}
	return out
}

func samePoints(a, b map[string][]flatPoint) bool {
	if len(a) != len(b) {
		return false
	}
	for name, pa := range a {
		pb := b[name]
		if len(pa) != len(pb) {
			return false
		}
		for i := range pa {
			x, y := pa[i], pb[i]
			if x.t != y.t || math.Float64bits(x.v) != math.Float64bits(y.v) || !slices.Equal(x.bounds, y.bounds) || !slices.Equal(x.counts, y.counts) {
				return false
			}
		}
	}
	return true
}

// sameBatch compares everything but how the points are laid out.
func sameBatch(a, b store.Batch) bool {
	return a.Key == b.Key && reflect.DeepEqual(a.Instance, b.Instance) && a.ReceivedAt.Equal(b.ReceivedAt) &&
		slices.Equal(a.GCCycles, b.GCCycles) && slices.Equal(a.GCGaps, b.GCGaps) && samePoints(pointsOf(a), pointsOf(b))
}

// reference decodes body the slow way: proto.Unmarshal and convertBatch.
func reference(body []byte, now time.Time) (store.Batch, error) {
	var mb wire.MetricBatch
	if err := proto.Unmarshal(body, &mb); err != nil {
		return store.Batch{}, err
	}
	return convertBatch(&mb, now)
}

var fuzzNow = time.Unix(1_700_000_100, 0)

// FuzzFastDecode holds the fast decoder to the reference one: whatever the
// fast path accepts, the reference accepts with the same points.
func FuzzFastDecode(f *testing.F) {
	good, err := proto.Marshal(seedBatch())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	agent, err := proto.Marshal(agentBatch(2))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(agent)
	// An unknown field inside a value, and one at the top level.
	f.Add(append(append([]byte{}, good...), protowire.AppendTag(nil, 99, protowire.VarintType)...))
	v := protowire.AppendTag(nil, 1, protowire.VarintType)
	v = protowire.AppendVarint(v, 0)
	v = protowire.AppendTag(v, 42, protowire.VarintType)
	v = protowire.AppendVarint(v, 1)
	s := protowire.AppendTag(nil, 2, protowire.BytesType)
	s = protowire.AppendBytes(s, v)
	b := protowire.AppendTag(append([]byte{}, good...), fieldBatchSamples, protowire.BytesType)
	f.Add(protowire.AppendBytes(b, s))
	f.Fuzz(func(t *testing.T, body []byte) {
		var dc descCache
		got, gerr := fastDecode(body, fuzzNow, &dc, nil)
		if gerr != nil {
			if gerr != errSlowPath {
				t.Fatalf("fast path returned its own error %v", gerr)
			}
			return
		}
		want, werr := reference(body, fuzzNow)
		if werr != nil {
			t.Fatalf("fast path accepted a batch the reference refuses: %v", werr)
		}
		if !sameBatch(want, got) {
			t.Fatalf("decoders disagree:\nreference %+v\nfast      %+v", want, got)
		}
		// A second decode hits the descriptor cache and must agree too.
		again, err := fastDecode(body, fuzzNow, &dc, nil)
		if err != nil || !sameBatch(want, again) {
			t.Fatalf("cached descriptors changed the result: %v", err)
		}
	})
}

// agentBatch is a batch of the agent's real metric set, read from this
// process: 65-odd metrics, histograms of ~100–160 buckets.
func agentBatch(n int) *wire.MetricBatch {
	var descs []rtmetrics.Description
	for _, d := range rtmetrics.All() {
		if strings.HasPrefix(d.Name, "/gc/") || strings.HasPrefix(d.Name, "/sched/") || strings.HasPrefix(d.Name, "/memory/classes/") {
			descs = append(descs, d)
		}
	}
	ss := make([]rtmetrics.Sample, len(descs))
	mb := &wire.MetricBatch{BatchId: "a1-b1", Instance: &wire.Instance{Service: "s", InstanceId: "a1"}, Status: &wire.AgentStatus{SpoolBytes: 3}}
	for i, d := range descs {
		ss[i].Name = d.Name
	}
	rtmetrics.Read(ss)
	for _, s := range ss {
		md := &wire.MetricDescriptor{Name: s.Name}
		switch s.Value.Kind() {
		case rtmetrics.KindUint64:
			md.Kind = wire.MetricKind_METRIC_KIND_UINT64
		case rtmetrics.KindFloat64:
			md.Kind = wire.MetricKind_METRIC_KIND_FLOAT64
		case rtmetrics.KindFloat64Histogram:
			md.Kind = wire.MetricKind_METRIC_KIND_HISTOGRAM
			md.Boundaries = s.Value.Float64Histogram().Buckets
		}
		mb.Descriptors = append(mb.Descriptors, md)
	}
	for k := 0; k < n; k++ {
		rtmetrics.Read(ss)
		ws := &wire.Sample{TimeUnixNano: fuzzNow.Add(time.Duration(k-n) * time.Second).UnixNano(),
			Process:  &wire.ProcessFacts{CpuUserSeconds: 1.5, RssBytes: 50 << 20, OpenFds: 12, FdLimit: 1024, Threads: 9},
			Cgroup:   &wire.CgroupFacts{Version: 2, Path: "/x", MemoryLimitBytes: 1 << 30, MemoryUsageBytes: 1 << 29, CpuQuotaCores: 2},
			Settings: &wire.RuntimeSettings{GogcPercent: 100, Gomaxprocs: 2}}
		for i, s := range ss {
			v := &wire.MetricValue{Index: uint32(i)}
			switch s.Value.Kind() {
			case rtmetrics.KindUint64:
				v.Value = &wire.MetricValue_Uint64Value{Uint64Value: s.Value.Uint64()}
			case rtmetrics.KindFloat64:
				v.Value = &wire.MetricValue_Float64Value{Float64Value: s.Value.Float64()}
			case rtmetrics.KindFloat64Histogram:
				h := &wire.SparseHistogram{}
				for j, c := range s.Value.Float64Histogram().Counts {
					if c != 0 {
						h.BucketIndex = append(h.BucketIndex, uint32(j))
						h.Count = append(h.Count, c)
					}
				}
				v.Value = &wire.MetricValue_Histogram{Histogram: h}
			}
			ws.Values = append(ws.Values, v)
		}
		mb.Samples = append(mb.Samples, ws)
	}
	return mb
}

// TestFastDecodeTakesFastPath makes sure ordinary batches do not fall back
// to the reference decoder, which would hide a broken fast path, and that
// both decoders agree on them.
func TestFastDecodeTakesFastPath(t *testing.T) {
	for _, tc := range []struct {
		name string
		mb   *wire.MetricBatch
	}{
		{"seed", seedBatch()},
		{"agent metric set", agentBatch(10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, err := proto.Marshal(tc.mb)
			if err != nil {
				t.Fatal(err)
			}
			var dc descCache
			got, err := fastDecode(body, fuzzNow, &dc, nil)
			if err != nil {
				t.Fatalf("fast path refused an ordinary batch: %v", err)
			}
			want, err := reference(body, fuzzNow)
			if err != nil {
				t.Fatal(err)
			}
			if !sameBatch(want, got) {
				t.Fatalf("fast path differs:\n%+v\n%+v", want, got)
			}
			if len(got.Samples) != 0 || len(got.Series) == 0 {
				t.Fatalf("fast path gave %d samples and %d series, want columns only", len(got.Samples), len(got.Series))
			}
		})
	}
}

// TestFastDecodeFallsBack checks encodings the fast path leaves to the
// reference decoder still decode right through decodeBatch.
func TestFastDecodeFallsBack(t *testing.T) {
	good, _ := proto.Marshal(seedBatch())
	unknownInValue := func() []byte {
		v := protowire.AppendTag(nil, fieldValueIndex, protowire.VarintType)
		v = protowire.AppendVarint(v, 0)
		v = protowire.AppendTag(v, fieldValueUint64, protowire.VarintType)
		v = protowire.AppendVarint(v, 7)
		v = protowire.AppendTag(v, 42, protowire.VarintType)
		v = protowire.AppendVarint(v, 1)
		s := protowire.AppendTag(nil, fieldSampleTime, protowire.VarintType)
		s = protowire.AppendVarint(s, uint64(fuzzNow.UnixNano()))
		s = protowire.AppendTag(s, fieldSampleValues, protowire.BytesType)
		s = protowire.AppendBytes(s, v)
		b := protowire.AppendTag(append([]byte{}, good...), fieldBatchSamples, protowire.BytesType)
		return protowire.AppendBytes(b, s)
	}()
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"unknown field in a value", unknownInValue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dc descCache
			if _, err := fastDecode(tc.body, fuzzNow, &dc, nil); err != errSlowPath {
				t.Fatalf("fast path took %s: %v", tc.name, err)
			}
			got, err := decodeBatch(tc.body, fuzzNow, &dc, nil)
			if err != nil {
				t.Fatal(err)
			}
			want, err := reference(tc.body, fuzzNow)
			if err != nil {
				t.Fatal(err)
			}
			if !sameBatch(want, got) {
				t.Fatal("decodeBatch differs from the reference")
			}
		})
	}
}

// BenchmarkDecodeBatch decodes the agent's batch of 10 samples.
func BenchmarkDecodeBatch(b *testing.B) {
	body, _ := proto.Marshal(agentBatch(10))
	b.SetBytes(int64(len(body)))
	b.Run("reference", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := reference(body, fuzzNow); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		var dc descCache
		var sl slabs
		for range b.N {
			if _, err := fastDecode(body, fuzzNow, &dc, &sl); err != nil {
				b.Fatal(err)
			}
		}
	})
}
