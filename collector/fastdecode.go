package collector

import (
	"errors"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/gopulse/gopulse/wire"
)

// Field numbers of the messages the fast path walks, taken from the
// generated descriptors so they cannot drift from wire.proto.
var (
	fieldBatchSamples   = fieldNumber(&wire.MetricBatch{}, "samples")
	fieldSampleValues   = fieldNumber(&wire.Sample{}, "values")
	fieldValueIndex     = fieldNumber(&wire.MetricValue{}, "index")
	fieldValueUint64    = fieldNumber(&wire.MetricValue{}, "uint64_value")
	fieldValueFloat64   = fieldNumber(&wire.MetricValue{}, "float64_value")
	fieldValueHistogram = fieldNumber(&wire.MetricValue{}, "histogram")
)

func fieldNumber(m proto.Message, name protoreflect.Name) protowire.Number {
	fd := m.ProtoReflect().Descriptor().Fields().ByName(name)
	if fd == nil {
		panic("wire: no field " + string(name) + " in " + string(m.ProtoReflect().Descriptor().FullName()))
	}
	return fd.Number()
}

// errSlowPath sends a body the fast path does not handle to proto.Unmarshal.
var errSlowPath = errors.New("use the reference decoder")

// unmarshalBatch decodes a MetricBatch like proto.Unmarshal, faster. A batch
// is some 650 MetricValue messages: the reflection-based decoder allocates
// each one and its oneof wrapper (0.5 ms of a batch's ~1 ms on the server).
// Here the values of each sample are decoded by hand into slabs, and every
// other field is handed to proto.Unmarshal — concatenated encodings merge,
// so the result is the same. Anything unusual (an unknown field in a value,
// a field with an unexpected wire type) falls back to proto.Unmarshal, whose
// result a differential fuzz test compares with this one.
func unmarshalBatch(body []byte, mb *wire.MetricBatch) error {
	if err := fastBatch(body, mb); err == nil {
		return nil
	}
	proto.Reset(mb)
	return proto.Unmarshal(body, mb)
}

func fastBatch(body []byte, mb *wire.MetricBatch) error {
	var rest []byte // top-level fields other than samples, in order
	var samples [][]byte
	for b := body; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errSlowPath
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return errSlowPath
		}
		if num == fieldBatchSamples && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b[n:])
			samples = append(samples, v)
		} else {
			rest = append(rest, b[:n+m]...)
		}
		b = b[n+m:]
	}
	if err := proto.Unmarshal(rest, mb); err != nil {
		return err
	}
	if len(samples) == 0 {
		return nil
	}
	// Count the values first so that one slab holds them all.
	total := 0
	for _, s := range samples {
		k, err := countValues(s)
		if err != nil {
			return err
		}
		total += k
	}
	values := make([]wire.MetricValue, 0, total)
	ptrs := make([]*wire.MetricValue, 0, total)
	var floats []wire.MetricValue_Float64Value
	var uints []wire.MetricValue_Uint64Value
	mb.Samples = make([]*wire.Sample, 0, len(samples))
	for _, sb := range samples {
		s := &wire.Sample{}
		var srest []byte
		first := len(values)
		for b := sb; len(b) > 0; {
			num, typ, n := protowire.ConsumeTag(b)
			m := protowire.ConsumeFieldValue(num, typ, b[n:])
			if num != fieldSampleValues || typ != protowire.BytesType {
				srest = append(srest, b[:n+m]...)
				b = b[n+m:]
				continue
			}
			vb, _ := protowire.ConsumeBytes(b[n:])
			values = append(values, wire.MetricValue{})
			v := &values[len(values)-1]
			if err := fastValue(vb, v, &floats, &uints); err != nil {
				return err
			}
			b = b[n+m:]
		}
		if len(srest) > 0 {
			if err := proto.Unmarshal(srest, s); err != nil {
				return err
			}
		}
		if len(values) > first {
			start := len(ptrs)
			for i := first; i < len(values); i++ {
				ptrs = append(ptrs, &values[i])
			}
			s.Values = ptrs[start:len(ptrs):len(ptrs)]
		}
		mb.Samples = append(mb.Samples, s)
	}
	return nil
}

// countValues counts a Sample's values and checks its framing.
func countValues(b []byte) (int, error) {
	k := 0
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, errSlowPath
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return 0, errSlowPath
		}
		if num == fieldSampleValues {
			if typ != protowire.BytesType {
				return 0, errSlowPath
			}
			k++
		}
		b = b[n+m:]
	}
	return k, nil
}

// fastValue decodes one MetricValue; the oneof wrappers come from slabs that
// grow in chunks, so pointers into them stay valid.
func fastValue(b []byte, v *wire.MetricValue, floats *[]wire.MetricValue_Float64Value, uints *[]wire.MetricValue_Uint64Value) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errSlowPath
		}
		b = b[n:]
		switch {
		case num == fieldValueIndex && typ == protowire.VarintType:
			x, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return errSlowPath
			}
			v.Index = uint32(x)
			b = b[m:]
		case num == fieldValueUint64 && typ == protowire.VarintType:
			x, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return errSlowPath
			}
			if len(*uints) == cap(*uints) {
				*uints = make([]wire.MetricValue_Uint64Value, 0, 256)
			}
			*uints = append(*uints, wire.MetricValue_Uint64Value{Uint64Value: x})
			v.Value = &(*uints)[len(*uints)-1]
			b = b[m:]
		case num == fieldValueFloat64 && typ == protowire.Fixed64Type:
			x, m := protowire.ConsumeFixed64(b)
			if m < 0 {
				return errSlowPath
			}
			if len(*floats) == cap(*floats) {
				*floats = make([]wire.MetricValue_Float64Value, 0, 256)
			}
			*floats = append(*floats, wire.MetricValue_Float64Value{Float64Value: math.Float64frombits(x)})
			v.Value = &(*floats)[len(*floats)-1]
			b = b[m:]
		case num == fieldValueHistogram && typ == protowire.BytesType:
			hb, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return errSlowPath
			}
			// A repeated occurrence of a message field merges into the
			// previous one, as proto.Unmarshal does.
			h, ok := v.Value.(*wire.MetricValue_Histogram)
			if !ok {
				h = &wire.MetricValue_Histogram{Histogram: &wire.SparseHistogram{}}
			}
			if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(hb, h.Histogram); err != nil {
				return err
			}
			v.Value = h
			b = b[m:]
		default:
			// Unknown fields are kept by proto.Unmarshal; leave them to it.
			return errSlowPath
		}
	}
	return nil
}
