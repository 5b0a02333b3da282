package collector

import (
	"errors"
	"math"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/gopulse/gopulse/store"
	"github.com/gopulse/gopulse/wire"
)

// Field numbers of the messages the fast path walks, taken from the
// generated descriptors so they cannot drift from wire.proto.
var (
	fieldBatchDescriptors = fieldNumber(&wire.MetricBatch{}, "descriptors")
	fieldBatchSamples     = fieldNumber(&wire.MetricBatch{}, "samples")
	fieldSampleTime       = fieldNumber(&wire.Sample{}, "time_unix_nano")
	fieldSampleValues     = fieldNumber(&wire.Sample{}, "values")
	fieldSampleProcess    = fieldNumber(&wire.Sample{}, "process")
	fieldSampleCgroup     = fieldNumber(&wire.Sample{}, "cgroup")
	fieldSampleSettings   = fieldNumber(&wire.Sample{}, "settings")
	fieldValueIndex       = fieldNumber(&wire.MetricValue{}, "index")
	fieldValueUint64      = fieldNumber(&wire.MetricValue{}, "uint64_value")
	fieldValueFloat64     = fieldNumber(&wire.MetricValue{}, "float64_value")
	fieldValueHistogram   = fieldNumber(&wire.MetricValue{}, "histogram")
	fieldHistBucketIndex  = fieldNumber(&wire.SparseHistogram{}, "bucket_index")
	fieldHistCount        = fieldNumber(&wire.SparseHistogram{}, "count")
)

func fieldNumber(m proto.Message, name protoreflect.Name) protowire.Number {
	fd := m.ProtoReflect().Descriptor().Fields().ByName(name)
	if fd == nil {
		panic("wire: no field " + string(name) + " in " + string(m.ProtoReflect().Descriptor().FullName()))
	}
	return fd.Number()
}

// factFields lists, for the small all-scalar messages of a sample, each
// field's number and wire type by name, so the fast path can check that a
// message holds only fields it knows.
type factFields map[protowire.Number]protowire.Type

func fieldsOf(m proto.Message) factFields {
	ff := factFields{}
	fds := m.ProtoReflect().Descriptor().Fields()
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		switch fd.Kind() {
		case protoreflect.DoubleKind, protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind:
			ff[fd.Number()] = protowire.Fixed64Type
		case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.MessageKind:
			ff[fd.Number()] = protowire.BytesType
		case protoreflect.FloatKind, protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind:
			ff[fd.Number()] = protowire.Fixed32Type
		default:
			ff[fd.Number()] = protowire.VarintType
		}
	}
	return ff
}

var (
	processFields  = fieldsOf(&wire.ProcessFacts{})
	cgroupFields   = fieldsOf(&wire.CgroupFacts{})
	settingsFields = fieldsOf(&wire.RuntimeSettings{})
	processNums    = struct{ user, system, rss, fds, fdLimit, threads protowire.Number }{
		fieldNumber(&wire.ProcessFacts{}, "cpu_user_seconds"), fieldNumber(&wire.ProcessFacts{}, "cpu_system_seconds"),
		fieldNumber(&wire.ProcessFacts{}, "rss_bytes"), fieldNumber(&wire.ProcessFacts{}, "open_fds"),
		fieldNumber(&wire.ProcessFacts{}, "fd_limit"), fieldNumber(&wire.ProcessFacts{}, "threads"),
	}
	cgroupNums = struct{ version, path, memLimit, memUsage, workingSet, quota, throttled protowire.Number }{
		fieldNumber(&wire.CgroupFacts{}, "version"), fieldNumber(&wire.CgroupFacts{}, "path"),
		fieldNumber(&wire.CgroupFacts{}, "memory_limit_bytes"), fieldNumber(&wire.CgroupFacts{}, "memory_usage_bytes"),
		fieldNumber(&wire.CgroupFacts{}, "memory_working_set_bytes"), fieldNumber(&wire.CgroupFacts{}, "cpu_quota_cores"),
		fieldNumber(&wire.CgroupFacts{}, "cpu_throttled_seconds"),
	}
)

// errSlowPath sends a body the fast path does not handle to the reference
// decoder. The fast path never reports an error of its own: whatever it
// refuses, the reference decoder either accepts or refuses with the
// precise reason.
var errSlowPath = errors.New("use the reference decoder")

// descriptor is one validated metric descriptor.
type descriptor struct {
	name   string
	kind   wire.MetricKind
	bounds []float64 // histograms only; shared by every batch that uses this set
}

// descCache remembers validated descriptor sets by their encoding. Every
// batch repeats its agent's descriptors — 65 of them, about half the batch
// with the histograms' boundaries — and the agents of one Go version send
// byte-identical ones, so a handful of entries serve a fleet. The key is
// the whole encoding, so a hit cannot be wrong.
type descCache struct {
	mu sync.RWMutex
	m  map[string][]descriptor
}

// maxDescSets bounds the cache; past it the cache starts over, which costs
// only the parsing it saves.
const maxDescSets = 64

func (c *descCache) get(key []byte) ([]descriptor, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	d, ok := c.m[string(key)]
	return d, ok
}

func (c *descCache) put(key []byte, d []descriptor) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxDescSets {
		c.m = make(map[string][]descriptor)
	}
	c.m[string(key)] = d
}

// descriptors returns the validated descriptors encoded in key (a run of
// MetricBatch.descriptors fields), from the cache or parsed now.
func (c *descCache) descriptors(key []byte) ([]descriptor, error) {
	if d, ok := c.get(key); ok {
		return d, nil
	}
	var mb wire.MetricBatch
	if err := proto.Unmarshal(key, &mb); err != nil {
		return nil, errSlowPath
	}
	if err := checkDescriptors("", mb.Descriptors); err != nil {
		return nil, errSlowPath
	}
	d := make([]descriptor, len(mb.Descriptors))
	for i, md := range mb.Descriptors {
		d[i] = descriptor{name: md.Name, kind: md.Kind, bounds: md.Boundaries}
	}
	c.put(key, d)
	return d, nil
}

// The values a sample's facts and the agent's status add, in the order
// convertBatch adds them; their columns follow the descriptors'.
var derivedNames = [...]string{
	nameCPUUser, nameCPUSystem, nameRSS, nameFDs, nameFDLimit, nameThreads,
	nameCgMemLimit, nameCgMemUsage, nameCgWorkingSet, nameCgCPUQuota, nameCgThrottled,
	nameAgentSpool, nameAgentFails, nameAgentDropped,
}

const (
	dCPUUser = iota
	dCPUSystem
	dRSS
	dFDs
	dFDLimit
	dThreads
	dCgMemLimit
	dCgMemUsage
	dCgWorkingSet
	dCgCPUQuota
	dCgThrottled
	dAgentSpool
	dAgentFails
	dAgentDropped
)

// sampleParts is where the fields of one Sample are in the body.
type sampleParts struct {
	t                int64 // Unix ns
	values           int   // number of values
	body             []byte
	process, cgroup  []byte
	hasProc, hasCgrp bool
}

// fastDecode converts a batch encoded the way the agent encodes it
// straight from the bytes into store columns (one store.Series per
// metric), with no message per value and no regrouping in the store. It
// handles canonical encodings only — each field in its declared wire type,
// a message field once, one member of a value's oneof — and reports
// errSlowPath for anything else and for any invalid batch; the caller then
// runs proto.Unmarshal and convertBatch. A differential fuzz test holds the
// two to the same points.
func fastDecode(body []byte, now time.Time, dc *descCache, sl *slabs) (store.Batch, error) {
	if sl == nil {
		sl = new(slabs)
	}
	var rest []byte // top-level fields other than descriptors and samples
	descStart, descEnd := -1, -1
	var samples []sampleParts
	nDesc := 0
	for off := 0; off < len(body); {
		b := body[off:]
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return store.Batch{}, errSlowPath
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return store.Batch{}, errSlowPath
		}
		switch num {
		case fieldBatchDescriptors:
			if typ != protowire.BytesType || (descEnd >= 0 && descEnd != off) {
				return store.Batch{}, errSlowPath // descriptors not in one run
			}
			if descStart < 0 {
				descStart = off
			}
			descEnd = off + n + m
			nDesc++
		case fieldBatchSamples:
			if typ != protowire.BytesType {
				return store.Batch{}, errSlowPath
			}
			v, _ := protowire.ConsumeBytes(b[n:])
			sp, err := scanSample(v)
			if err != nil {
				return store.Batch{}, err
			}
			samples = append(samples, sp)
		default:
			rest = append(rest, b[:n+m]...)
		}
		off += n + m
	}
	var mb wire.MetricBatch
	if err := proto.Unmarshal(rest, &mb); err != nil {
		return store.Batch{}, errSlowPath
	}
	b, err := batchHeader(&mb, nDesc, len(samples), now)
	if err != nil {
		return store.Batch{}, errSlowPath
	}
	var descs []descriptor
	if nDesc > 0 {
		if descs, err = dc.descriptors(body[descStart:descEnd]); err != nil {
			return store.Batch{}, err
		}
	}
	total := 0
	for _, sp := range samples {
		total += sp.values + 11
	}
	if total > maxValuesPerBatch {
		return store.Batch{}, errSlowPath
	}
	cols, err := sampleColumns(descs, samples, now, sl)
	if err != nil {
		return store.Batch{}, err
	}
	if st := mb.Status; st != nil && len(samples) > 0 {
		var lastT int64
		for _, sp := range samples {
			lastT = max(lastT, sp.t/1e6)
		}
		d := cols[len(descs):]
		d[dAgentSpool].add(lastT, float64(st.SpoolBytes))
		d[dAgentFails].add(lastT, float64(st.SendFailures))
		d[dAgentDropped].add(lastT, float64(st.DroppedBatches))
	}
	b.Series = make([]store.Series, 0, len(cols))
	for i := range cols {
		if len(cols[i].s.T) > 0 {
			b.Series = append(b.Series, cols[i].s)
		}
	}
	if err := convertGC(&b, &mb, now); err != nil {
		return store.Batch{}, errSlowPath
	}
	return b, nil
}

// scanSample finds the fields of one Sample and checks they are canonical.
func scanSample(sb []byte) (sampleParts, error) {
	sp := sampleParts{body: sb}
	for b := sb; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return sp, errSlowPath
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return sp, errSlowPath
		}
		v := b[n : n+m]
		switch {
		case num == fieldSampleTime && typ == protowire.VarintType:
			x, _ := protowire.ConsumeVarint(v)
			sp.t = int64(x)
		case num == fieldSampleValues && typ == protowire.BytesType:
			sp.values++
		case num == fieldSampleProcess && typ == protowire.BytesType && !sp.hasProc:
			sp.process, _ = protowire.ConsumeBytes(v)
			sp.hasProc = true
			if !onlyKnown(sp.process, processFields) {
				return sp, errSlowPath
			}
		case num == fieldSampleCgroup && typ == protowire.BytesType && !sp.hasCgrp:
			sp.cgroup, _ = protowire.ConsumeBytes(v)
			sp.hasCgrp = true
			if !onlyKnown(sp.cgroup, cgroupFields) {
				return sp, errSlowPath
			}
		case num == fieldSampleSettings && typ == protowire.BytesType:
			// Not stored; proto.Unmarshal would only check it.
			s, _ := protowire.ConsumeBytes(v)
			if !onlyKnown(s, settingsFields) {
				return sp, errSlowPath
			}
		default:
			return sp, errSlowPath
		}
		b = b[n+m:]
	}
	return sp, nil
}

// onlyKnown reports whether b is a well-formed message of fields in ff,
// each in its declared wire type and with valid UTF-8 in its bytes fields
// (all of them strings in the messages it checks), so that proto.Unmarshal
// would accept it and every field means what the fast path reads.
func onlyKnown(b []byte, ff factFields) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		want, ok := ff[num]
		if !ok || want != typ {
			return false
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return false
		}
		if typ == protowire.BytesType {
			s, _ := protowire.ConsumeBytes(b[n:])
			if !utf8.Valid(s) {
				return false
			}
		}
		b = b[n+m:]
	}
	return true
}

// slabs hold the columns of one decoded batch. The handler recycles them
// once the store has the batch: a batch's columns are some 120 kB, most of
// it histogram counts, and fresh memory of that size costs page faults
// and collections at thousands of batches a second.
type slabs struct {
	t []int64
	v []float64
	c []uint64
}

// grow returns (*s)[:n], reallocating when it is too small.
func grow[T any](s *[]T, n int) []T {
	if cap(*s) < n {
		*s = make([]T, n)
	}
	return (*s)[:n]
}

// column is one store.Series being filled.
type column struct {
	s  store.Series
	nb int // buckets of a histogram, 0 for a scalar
}

func (c *column) add(t int64, v float64) {
	if !math.IsNaN(v) && !math.IsInf(v, 0) {
		c.s.T = append(c.s.T, t)
		c.s.Values = append(c.s.Values, v)
	}
}

// sampleColumns decodes the values and facts of every sample into one
// column per descriptor followed by one per derived name.
func sampleColumns(descs []descriptor, samples []sampleParts, now time.Time, slabs *slabs) ([]column, error) {
	ns := len(samples)
	cols := make([]column, len(descs)+len(derivedNames))
	// One slab per kind of column, each column a capacity-capped window
	// of it: an agent's batch has every metric once per sample, so nothing
	// reallocates; a column that outgrows its window is copied by append.
	nScalar, nCounts := len(derivedNames), 0
	for i, d := range descs {
		cols[i].s.Name = d.name
		if d.kind == wire.MetricKind_METRIC_KIND_HISTOGRAM {
			cols[i].nb = len(d.bounds) - 1
			cols[i].s.Boundaries = d.bounds
			nCounts += cols[i].nb
		} else {
			nScalar++
		}
	}
	if nCounts*ns > maxCountsPerBatch {
		return nil, errSlowPath // the reference decoder enforces the limit
	}
	tSlab := grow(&slabs.t, len(cols)*ns)
	vSlab := grow(&slabs.v, nScalar*ns)
	cSlab := grow(&slabs.c, nCounts*ns)
	clear(cSlab) // rows are filled sparsely
	for i := range cols {
		cols[i].s.T = tSlab[i*ns : i*ns : (i+1)*ns]
		if nb := cols[i].nb; nb > 0 {
			cols[i].s.Counts = cSlab[: 0 : nb*ns]
			cSlab = cSlab[nb*ns:]
		} else {
			cols[i].s.Values = vSlab[:0:ns]
			vSlab = vSlab[ns:]
		}
	}
	for i, d := range derivedNames {
		cols[len(descs)+i].s.Name = d
	}
	derived := cols[len(descs):]
	lo, hi := sampleTimeRange(now)
	for _, sp := range samples {
		if sp.t < lo || sp.t > hi {
			return nil, errSlowPath
		}
		t := sp.t / 1e6
		for b := sp.body; len(b) > 0; {
			num, typ, n := protowire.ConsumeTag(b)
			m := protowire.ConsumeFieldValue(num, typ, b[n:])
			if num == fieldSampleValues {
				v, _ := protowire.ConsumeBytes(b[n:])
				if err := decodeValue(v, t, descs, cols); err != nil {
					return nil, err
				}
			}
			b = b[n+m:]
		}
		if sp.hasProc {
			var f [7]uint64 // by field number
			readScalars(sp.process, f[:])
			derived[dCPUUser].add(t, math.Float64frombits(f[processNums.user]))
			derived[dCPUSystem].add(t, math.Float64frombits(f[processNums.system]))
			derived[dRSS].add(t, float64(f[processNums.rss]))
			derived[dFDs].add(t, float64(f[processNums.fds]))
			derived[dFDLimit].add(t, float64(f[processNums.fdLimit]))
			derived[dThreads].add(t, float64(f[processNums.threads]))
		}
		if sp.hasCgrp {
			var f [9]uint64
			readScalars(sp.cgroup, f[:])
			if f[cgroupNums.version] != 0 {
				if f[cgroupNums.memLimit] > 0 {
					derived[dCgMemLimit].add(t, float64(f[cgroupNums.memLimit]))
				}
				derived[dCgMemUsage].add(t, float64(f[cgroupNums.memUsage]))
				derived[dCgWorkingSet].add(t, float64(f[cgroupNums.workingSet]))
				if q := math.Float64frombits(f[cgroupNums.quota]); q > 0 {
					derived[dCgCPUQuota].add(t, q)
				}
				derived[dCgThrottled].add(t, math.Float64frombits(f[cgroupNums.throttled]))
			}
		}
	}
	return cols, nil
}

// readScalars stores the varint and fixed64 fields of a message checked by
// onlyKnown into f, indexed by field number (the last occurrence wins, as
// in proto.Unmarshal); other fields and numbers past f are skipped.
func readScalars(b []byte, f []uint64) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		b = b[n:]
		var x uint64
		var m int
		switch typ {
		case protowire.VarintType:
			x, m = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			x, m = protowire.ConsumeFixed64(b)
		default:
			m = protowire.ConsumeFieldValue(num, typ, b)
			b = b[m:]
			continue
		}
		if int(num) < len(f) {
			f[num] = x
		}
		b = b[m:]
	}
}

// decodeValue appends one MetricValue at time t to its descriptor's column.
func decodeValue(b []byte, t int64, descs []descriptor, cols []column) error {
	var idx uint64
	var kind protowire.Number // the oneof member seen, 0 for none
	var bits uint64
	var hist []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errSlowPath
		}
		b = b[n:]
		var m int
		switch {
		case num == fieldValueIndex && typ == protowire.VarintType:
			idx, m = protowire.ConsumeVarint(b)
		case num == fieldValueUint64 && typ == protowire.VarintType && kind == 0:
			bits, m = protowire.ConsumeVarint(b)
			kind = num
		case num == fieldValueFloat64 && typ == protowire.Fixed64Type && kind == 0:
			bits, m = protowire.ConsumeFixed64(b)
			kind = num
		case num == fieldValueHistogram && typ == protowire.BytesType && kind == 0:
			hist, m = protowire.ConsumeBytes(b)
			kind = num
		default:
			// Unknown fields, a second oneof member (merge rules), a
			// wire type other than declared: the reference decoder.
			return errSlowPath
		}
		if m < 0 {
			return errSlowPath
		}
		b = b[m:]
	}
	// The index is a uint32 on the wire: proto.Unmarshal keeps its low
	// 32 bits.
	i := int(uint32(idx))
	if i >= len(descs) {
		return errSlowPath
	}
	c := &cols[i]
	switch descs[i].kind {
	case wire.MetricKind_METRIC_KIND_UINT64:
		if kind != fieldValueUint64 {
			return errSlowPath
		}
		c.add(t, float64(bits))
	case wire.MetricKind_METRIC_KIND_FLOAT64:
		if kind != fieldValueFloat64 {
			return errSlowPath
		}
		c.add(t, math.Float64frombits(bits))
	case wire.MetricKind_METRIC_KIND_HISTOGRAM:
		if kind != fieldValueHistogram {
			return errSlowPath
		}
		return decodeHist(hist, t, c)
	default:
		return errSlowPath
	}
	return nil
}

// decodeHist appends one sparse histogram (packed bucket_index and count,
// each at most once) as a row of dense counts.
func decodeHist(b []byte, t int64, c *column) error {
	var idx, cnt []byte
	var seenIdx, seenCnt bool
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return errSlowPath
		}
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return errSlowPath
		}
		switch {
		case num == fieldHistBucketIndex && !seenIdx:
			idx, seenIdx = v, true
		case num == fieldHistCount && !seenCnt:
			cnt, seenCnt = v, true
		default:
			return errSlowPath
		}
		b = b[n+m:]
	}
	start := len(c.s.Counts)
	if start+c.nb <= cap(c.s.Counts) {
		c.s.Counts = c.s.Counts[:start+c.nb] // the slab is cleared
	} else {
		c.s.Counts = append(c.s.Counts, make([]uint64, c.nb)...)
	}
	row := c.s.Counts[start:]
	for len(idx) > 0 || len(cnt) > 0 {
		bi, n := protowire.ConsumeVarint(idx)
		x, m := protowire.ConsumeVarint(cnt)
		if n < 0 || m < 0 || uint64(uint32(bi)) >= uint64(c.nb) {
			c.s.Counts = c.s.Counts[:start]
			return errSlowPath
		}
		row[uint32(bi)] = x
		idx, cnt = idx[n:], cnt[m:]
	}
	c.s.T = append(c.s.T, t)
	return nil
}
