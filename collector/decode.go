package collector

import (
	"math"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gopulse/gopulse/store"
	"github.com/gopulse/gopulse/wire"
)

// Decoding limits. A batch past them is refused with a 400 naming the limit,
// so a buggy or hostile agent cannot make one request cost unbounded work.
const (
	maxDescriptors    = 1024
	maxSamples        = 1024
	maxBuckets        = 4096
	maxGCRecords      = 4096
	maxNameLen        = 256
	maxIDLen          = 128
	maxLabels         = 64
	maxValuesPerBatch = 1 << 20
	// maxCountsPerBatch bounds the histogram buckets of a batch once made
	// dense (16 MiB): a 4 MiB body of tiny sparse histograms of 4,096
	// buckets would otherwise expand to tens of gigabytes. The agent's
	// batch of 10 samples has about 13,000.
	maxCountsPerBatch = 1 << 21
)

// Names of the values the collector derives from the parts of a sample that
// are not runtime/metrics values.
const (
	nameCPUUser      = "/process/cpu/user:cpu-seconds"
	nameCPUSystem    = "/process/cpu/system:cpu-seconds"
	nameRSS          = "/process/rss:bytes"
	nameFDs          = "/process/fds:fds"
	nameFDLimit      = "/process/fd-limit:fds"
	nameThreads      = "/process/threads:threads"
	nameCgMemLimit   = "/cgroup/memory/limit:bytes"
	nameCgMemUsage   = "/cgroup/memory/usage:bytes"
	nameCgWorkingSet = "/cgroup/memory/working-set:bytes"
	nameCgCPUQuota   = "/cgroup/cpu/quota:cores"
	nameCgThrottled  = "/cgroup/cpu/throttled:seconds"
	nameGoroutines   = "/sched/goroutines:goroutines"
	nameHeapLive     = "/gc/heap/live:bytes"
	nameHeapGoal     = "/gc/heap/goal:bytes"
	nameMemLimit     = "/gc/gomemlimit:bytes"
	nameAgentSpool   = "/gopulse/agent/spool:bytes"
	nameAgentFails   = "/gopulse/agent/send-failures:failures"
	nameAgentDropped = "/gopulse/agent/dropped-batches:batches"
)

// earliest is the oldest timestamp accepted: anything before is a clock or
// encoding error, not data.
var earliest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// maxFuture bounds how far ahead of the collector's clock a sample may be.
const maxFuture = time.Hour

// decodeBatch parses and validates one MetricBatch and converts it into a
// store.Batch received at now, its Key the batch_id. A batch as the agent
// encodes it takes the fast path (fastdecode.go); anything else, and every
// invalid batch, goes through proto.Unmarshal and convertBatch, so each
// error is kindInvalid with a message that names the offending field.
func decodeBatch(body []byte, now time.Time, dc *descCache, sl *slabs) (store.Batch, error) {
	if b, err := fastDecode(body, now, dc, sl); err == nil {
		return b, nil
	}
	var mb wire.MetricBatch
	if err := proto.Unmarshal(body, &mb); err != nil {
		return store.Batch{}, errorf(kindInvalid, "batch body is not a gopulse.wire.v1.MetricBatch: %v", err)
	}
	return convertBatch(&mb, now)
}

func validInstance(in *wire.Instance, what string) (store.Instance, error) {
	if in == nil {
		return store.Instance{}, errorf(kindInvalid, "%s: instance is missing", what)
	}
	if in.Service == "" || len(in.Service) > maxIDLen {
		return store.Instance{}, errorf(kindInvalid, "%s: instance.service %q must be 1–%d bytes", what, trunc(in.Service), maxIDLen)
	}
	if in.InstanceId == "" || len(in.InstanceId) > maxIDLen {
		return store.Instance{}, errorf(kindInvalid, "%s: instance.instance_id %q must be 1–%d bytes", what, trunc(in.InstanceId), maxIDLen)
	}
	if len(in.Labels) > maxLabels {
		return store.Instance{}, errorf(kindInvalid, "%s: %d labels, limit %d", what, len(in.Labels), maxLabels)
	}
	inst := store.Instance{
		Service: in.Service, ID: in.InstanceId, Host: in.Host, PID: in.Pid, GoVersion: in.GoVersion,
		AgentVersion: in.AgentVersion, Labels: in.Labels, Source: store.SourceAgent,
	}
	if in.StartTimeUnixNano > 0 {
		inst.StartTime = time.Unix(0, in.StartTimeUnixNano).UTC()
	}
	return inst, nil
}

// batchHeader validates a batch's identity and sizes and starts its
// store.Batch.
func batchHeader(mb *wire.MetricBatch, nDesc, nSamples int, now time.Time) (store.Batch, error) {
	if mb.BatchId == "" || len(mb.BatchId) > maxIDLen {
		return store.Batch{}, errorf(kindInvalid, "batch_id %q must be 1–%d bytes", trunc(mb.BatchId), maxIDLen)
	}
	inst, err := validInstance(mb.Instance, "batch "+mb.BatchId)
	if err != nil {
		return store.Batch{}, err
	}
	switch {
	case nDesc > maxDescriptors:
		return store.Batch{}, errorf(kindInvalid, "batch %s: %d descriptors, limit %d", mb.BatchId, nDesc, maxDescriptors)
	case nSamples > maxSamples:
		return store.Batch{}, errorf(kindInvalid, "batch %s: %d samples, limit %d", mb.BatchId, nSamples, maxSamples)
	case len(mb.GcCycles)+len(mb.GcGaps) > maxGCRecords:
		return store.Batch{}, errorf(kindInvalid, "batch %s: %d GC records, limit %d", mb.BatchId, len(mb.GcCycles)+len(mb.GcGaps), maxGCRecords)
	}
	return store.Batch{Key: mb.BatchId, Instance: inst, ReceivedAt: now}, nil
}

// checkDescriptors validates a batch's metric descriptors.
func checkDescriptors(batchID string, descs []*wire.MetricDescriptor) error {
	seen := make(map[string]bool, len(descs))
	for i, d := range descs {
		if d.Name == "" || len(d.Name) > maxNameLen || d.Name[0] != '/' {
			return errorf(kindInvalid, "batch %s: descriptor %d: name %q must start with / and be at most %d bytes", batchID, i, trunc(d.Name), maxNameLen)
		}
		if seen[d.Name] {
			return errorf(kindInvalid, "batch %s: descriptor %d: name %q listed twice", batchID, i, d.Name)
		}
		seen[d.Name] = true
		switch d.Kind {
		case wire.MetricKind_METRIC_KIND_UINT64, wire.MetricKind_METRIC_KIND_FLOAT64:
		case wire.MetricKind_METRIC_KIND_HISTOGRAM:
			if len(d.Boundaries) < 2 || len(d.Boundaries) > maxBuckets+1 {
				return errorf(kindInvalid, "batch %s: histogram %s has %d boundaries, want 2–%d", batchID, d.Name, len(d.Boundaries), maxBuckets+1)
			}
			for j := 1; j < len(d.Boundaries); j++ {
				if !(d.Boundaries[j] > d.Boundaries[j-1]) {
					return errorf(kindInvalid, "batch %s: histogram %s: boundaries not increasing at %d", batchID, d.Name, j)
				}
			}
		default:
			return errorf(kindInvalid, "batch %s: descriptor %s has kind %v", batchID, d.Name, d.Kind)
		}
	}
	return nil
}

// sampleTimeRange is the range of sample times (Unix ns) accepted at now.
func sampleTimeRange(now time.Time) (lo, hi int64) {
	return earliest.UnixNano(), now.Add(maxFuture).UnixNano()
}

// convertBatch is the reference conversion of a decoded MetricBatch, one
// store.Sample per value; fastDecode must produce the same points.
func convertBatch(mb *wire.MetricBatch, now time.Time) (store.Batch, error) {
	b, err := batchHeader(mb, len(mb.Descriptors), len(mb.Samples), now)
	if err != nil {
		return store.Batch{}, err
	}
	if err := checkDescriptors(mb.BatchId, mb.Descriptors); err != nil {
		return store.Batch{}, err
	}
	total := 0
	for _, s := range mb.Samples {
		total += len(s.Values) + 11
	}
	if total > maxValuesPerBatch {
		return store.Batch{}, errorf(kindInvalid, "batch %s: %d values, limit %d", mb.BatchId, total, maxValuesPerBatch)
	}
	b.Samples = make([]store.Sample, 0, total)
	lo, hi := sampleTimeRange(now)
	var lastT int64
	nCounts := 0
	for i, s := range mb.Samples {
		if s.TimeUnixNano < lo || s.TimeUnixNano > hi {
			return store.Batch{}, errorf(kindInvalid, "batch %s: sample %d: time %s is before 2000 or more than %v ahead of the collector's clock", mb.BatchId, i, time.Unix(0, s.TimeUnixNano).UTC().Format(time.RFC3339), maxFuture)
		}
		t := s.TimeUnixNano / 1e6
		lastT = max(lastT, t)
		add := func(name string, v float64) {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				b.Samples = append(b.Samples, store.Sample{Name: name, T: t, Value: v})
			}
		}
		for _, v := range s.Values {
			if int(v.Index) >= len(mb.Descriptors) {
				return store.Batch{}, errorf(kindInvalid, "batch %s: sample %d: value refers to descriptor %d of %d", mb.BatchId, i, v.Index, len(mb.Descriptors))
			}
			d := mb.Descriptors[v.Index]
			switch x := v.Value.(type) {
			case *wire.MetricValue_Uint64Value:
				if d.Kind != wire.MetricKind_METRIC_KIND_UINT64 {
					return store.Batch{}, errorf(kindInvalid, "batch %s: sample %d: %s is %v but got a uint64", mb.BatchId, i, d.Name, d.Kind)
				}
				add(d.Name, float64(x.Uint64Value))
			case *wire.MetricValue_Float64Value:
				if d.Kind != wire.MetricKind_METRIC_KIND_FLOAT64 {
					return store.Batch{}, errorf(kindInvalid, "batch %s: sample %d: %s is %v but got a float64", mb.BatchId, i, d.Name, d.Kind)
				}
				add(d.Name, x.Float64Value)
			case *wire.MetricValue_Histogram:
				if d.Kind != wire.MetricKind_METRIC_KIND_HISTOGRAM {
					return store.Batch{}, errorf(kindInvalid, "batch %s: sample %d: %s is %v but got a histogram", mb.BatchId, i, d.Name, d.Kind)
				}
				h := x.Histogram
				if len(h.GetBucketIndex()) != len(h.GetCount()) {
					return store.Batch{}, errorf(kindInvalid, "batch %s: sample %d: histogram %s has %d bucket indexes and %d counts", mb.BatchId, i, d.Name, len(h.GetBucketIndex()), len(h.GetCount()))
				}
				if nCounts += len(d.Boundaries) - 1; nCounts > maxCountsPerBatch {
					return store.Batch{}, errorf(kindInvalid, "batch %s: more than %d histogram buckets in all", mb.BatchId, maxCountsPerBatch)
				}
				counts := make([]uint64, len(d.Boundaries)-1)
				for j, bi := range h.GetBucketIndex() {
					if int(bi) >= len(counts) {
						return store.Batch{}, errorf(kindInvalid, "batch %s: sample %d: histogram %s bucket %d of %d", mb.BatchId, i, d.Name, bi, len(counts))
					}
					counts[bi] = h.Count[j]
				}
				b.Samples = append(b.Samples, store.Sample{Name: d.Name, T: t, Hist: &store.Histogram{Boundaries: d.Boundaries, Counts: counts}})
			default:
				return store.Batch{}, errorf(kindInvalid, "batch %s: sample %d: value for %s is empty", mb.BatchId, i, d.Name)
			}
		}
		if p := s.Process; p != nil {
			add(nameCPUUser, p.CpuUserSeconds)
			add(nameCPUSystem, p.CpuSystemSeconds)
			add(nameRSS, float64(p.RssBytes))
			add(nameFDs, float64(p.OpenFds))
			add(nameFDLimit, float64(p.FdLimit))
			add(nameThreads, float64(p.Threads))
		}
		if c := s.Cgroup; c != nil && c.Version != 0 {
			if c.MemoryLimitBytes > 0 {
				add(nameCgMemLimit, float64(c.MemoryLimitBytes))
			}
			add(nameCgMemUsage, float64(c.MemoryUsageBytes))
			add(nameCgWorkingSet, float64(c.MemoryWorkingSetBytes))
			if c.CpuQuotaCores > 0 {
				add(nameCgCPUQuota, c.CpuQuotaCores)
			}
			add(nameCgThrottled, c.CpuThrottledSeconds)
		}
	}
	if st := mb.Status; st != nil && len(mb.Samples) > 0 {
		b.Samples = append(b.Samples,
			store.Sample{Name: nameAgentSpool, T: lastT, Value: float64(st.SpoolBytes)},
			store.Sample{Name: nameAgentFails, T: lastT, Value: float64(st.SendFailures)},
			store.Sample{Name: nameAgentDropped, T: lastT, Value: float64(st.DroppedBatches)})
	}
	if err := convertGC(&b, mb, now); err != nil {
		return store.Batch{}, err
	}
	return b, nil
}

// convertGC validates and converts a batch's GC cycle records and gaps.
func convertGC(b *store.Batch, mb *wire.MetricBatch, now time.Time) error {
	lo, hi := sampleTimeRange(now)
	for i, c := range mb.GcCycles {
		if c.EndTimeUnixNano < lo || c.EndTimeUnixNano > hi {
			return errorf(kindInvalid, "batch %s: gc_cycles[%d] (cycle %d): end time out of range", mb.BatchId, i, c.Cycle)
		}
		if c.PauseNs < 0 || math.IsNaN(c.GcCpuSeconds) || math.IsNaN(c.TotalCpuSeconds) || c.GcCpuSeconds < 0 || c.TotalCpuSeconds < 0 {
			return errorf(kindInvalid, "batch %s: gc_cycles[%d] (cycle %d): negative or NaN pause/CPU", mb.BatchId, i, c.Cycle)
		}
		b.GCCycles = append(b.GCCycles, store.GCCycle{
			Cycle: c.Cycle, EndTime: c.EndTimeUnixNano / 1e6, PauseNs: c.PauseNs, HeapKnown: c.HeapKnown,
			HeapLiveBytes: c.HeapLiveBytes, HeapGoalBytes: c.HeapGoalBytes, GCCPUSeconds: c.GcCpuSeconds,
			TotalCPUSeconds: c.TotalCpuSeconds, Forced: c.Forced,
		})
	}
	for i, g := range mb.GcGaps {
		if g.LastCycle < g.FirstCycle {
			return errorf(kindInvalid, "batch %s: gc_gaps[%d]: last_cycle %d < first_cycle %d", mb.BatchId, i, g.LastCycle, g.FirstCycle)
		}
		b.GCGaps = append(b.GCGaps, store.GCGap{FirstCycle: g.FirstCycle, LastCycle: g.LastCycle, Time: now.UnixMilli(), Reason: g.Reason})
	}
	return nil
}

// trunc shortens s for quoting in an error message.
func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
