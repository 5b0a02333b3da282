package collector

import (
	"math"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

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
		GcCycles: []*wire.GCCycle{{Cycle: 3, PauseNs: 12000}},
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

// FuzzFastDecode checks the fast decoder against proto.Unmarshal: the same
// error status, and on success the same message.
func FuzzFastDecode(f *testing.F) {
	good, err := proto.Marshal(seedBatch())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
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
		var want, got wire.MetricBatch
		werr := proto.Unmarshal(body, &want)
		gerr := unmarshalBatch(body, &got)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("proto.Unmarshal error %v, fast decoder error %v", werr, gerr)
		}
		if werr == nil && !proto.Equal(&want, &got) {
			t.Fatalf("decoders disagree:\nproto.Unmarshal %v\nfast            %v", &want, &got)
		}
	})
}

// TestFastDecodeTakesFastPath makes sure an ordinary batch does not fall
// back to the reference decoder, which would hide a broken fast path.
func TestFastDecodeTakesFastPath(t *testing.T) {
	body, err := proto.Marshal(seedBatch())
	if err != nil {
		t.Fatal(err)
	}
	var mb wire.MetricBatch
	if err := fastBatch(body, &mb); err != nil {
		t.Fatalf("fast path refused an ordinary batch: %v", err)
	}
	var want wire.MetricBatch
	if err := proto.Unmarshal(body, &want); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&want, &mb) {
		t.Fatalf("fast path differs:\n%v\n%v", &want, &mb)
	}
}

func BenchmarkDecodeBatch(b *testing.B) {
	mb := seedBatch()
	for len(mb.Samples) < 10 {
		mb.Samples = append(mb.Samples, mb.Samples[0])
	}
	for i := 0; i < 62; i++ {
		mb.Descriptors = append(mb.Descriptors, &wire.MetricDescriptor{Name: "/x/" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + ":n", Kind: wire.MetricKind_METRIC_KIND_FLOAT64})
	}
	for _, s := range mb.Samples {
		for i := 0; i < 62; i++ {
			s.Values = append(s.Values, &wire.MetricValue{Index: uint32(3 + i), Value: &wire.MetricValue_Float64Value{Float64Value: float64(i)}})
		}
	}
	body, _ := proto.Marshal(mb)
	b.Run("proto.Unmarshal", func(b *testing.B) {
		for range b.N {
			var x wire.MetricBatch
			if err := proto.Unmarshal(body, &x); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fast", func(b *testing.B) {
		for range b.N {
			var x wire.MetricBatch
			if err := unmarshalBatch(body, &x); err != nil {
				b.Fatal(err)
			}
		}
	})
}
