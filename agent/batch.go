package agent

import (
	"fmt"
	"math"
	"runtime/metrics"
	"time"

	"github.com/gopulse/gopulse/agent/internal/sample"
	"github.com/gopulse/gopulse/wire"
)

// sendBatch turns the filled slots into one MetricBatch and queues it. It
// allocates (every BatchInterval, not every sample).
func (a *Agent) sendBatch(now time.Time) {
	n := a.filled
	a.filled = 0
	a.lastSend = now
	if a.shipper == nil || n == 0 {
		return
	}
	a.seq++
	b := &wire.MetricBatch{
		BatchId:  fmt.Sprintf("%s-b%d", a.instance.InstanceId, a.seq),
		Instance: a.instance, Sequence: a.seq,
		Descriptors: descriptors(a.sampler.RT),
		Status:      a.status(),
	}
	for i := 0; i < n; i++ {
		s := &a.slots[i]
		b.Samples = append(b.Samples, toWireSample(a.sampler.RT, s, a.settings))
		for _, c := range s.Cycles {
			b.GcCycles = append(b.GcCycles, &wire.GCCycle{
				Cycle: c.N, EndTimeUnixNano: c.End.UnixNano(), PauseNs: int64(c.Pause), HeapKnown: c.HeapKnown,
				HeapLiveBytes: c.Live, HeapGoalBytes: c.Goal, GcCpuSeconds: c.GCCPU, TotalCpuSeconds: c.TotalCPU, Forced: c.Forced,
			})
		}
		for _, g := range s.Gaps {
			b.GcGaps = append(b.GcGaps, &wire.GCGap{FirstCycle: g.First, LastCycle: g.Last,
				Reason: "more cycles between two samples than runtime/debug.ReadGCStats keeps (256)"})
		}
	}
	if err := a.shipper.Enqueue(b); err != nil {
		a.opts.Logger.Warn("gopulse agent: batch not queued", "err", err)
	}
}

func descriptors(r *sample.Runtime) []*wire.MetricDescriptor {
	out := make([]*wire.MetricDescriptor, len(r.Descs))
	for i, d := range r.Descs {
		md := &wire.MetricDescriptor{Name: d.Name, Cumulative: d.Cumulative}
		switch d.Kind {
		case metrics.KindUint64:
			md.Kind = wire.MetricKind_METRIC_KIND_UINT64
		case metrics.KindFloat64:
			md.Kind = wire.MetricKind_METRIC_KIND_FLOAT64
		case metrics.KindFloat64Histogram:
			md.Kind = wire.MetricKind_METRIC_KIND_HISTOGRAM
			if h := r.Hist(i); h != nil {
				md.Boundaries = append([]float64(nil), h.Buckets...)
			}
		}
		out[i] = md
	}
	return out
}

func toWireSample(r *sample.Runtime, s *sample.Slot, st settings) *wire.Sample {
	ws := &wire.Sample{
		TimeUnixNano: s.Time.UnixNano(),
		Process: &wire.ProcessFacts{CpuUserSeconds: s.Proc.CPUUser, CpuSystemSeconds: s.Proc.CPUSystem, RssBytes: s.Proc.RSS,
			OpenFds: s.Proc.FDs, FdLimit: s.Proc.FDLimit, Threads: s.Proc.Threads},
		Cgroup: &wire.CgroupFacts{Version: uint32(s.Cg.Version), Path: s.Cg.Path, MemoryLimitBytes: s.Cg.MemLimit,
			MemoryUsageBytes: s.Cg.MemUsage, MemoryWorkingSetBytes: s.Cg.WorkingSet, CpuQuotaCores: s.Cg.CPUQuotaCores,
			CpuNrThrottled: s.Cg.NrThrottled, CpuThrottledSeconds: s.Cg.ThrottledSeconds},
		Settings: &wire.RuntimeSettings{GogcPercent: st.GOGCPercent, GomemlimitBytes: st.GOMEMLIMITBytes, Gomaxprocs: st.GOMAXPROCS},
	}
	ws.Values = make([]*wire.MetricValue, 0, len(r.Descs))
	for i, d := range r.Descs {
		v := &wire.MetricValue{Index: uint32(i)}
		switch d.Kind {
		case metrics.KindUint64:
			v.Value = &wire.MetricValue_Uint64Value{Uint64Value: s.Vals[i]}
		case metrics.KindFloat64:
			v.Value = &wire.MetricValue_Float64Value{Float64Value: math.Float64frombits(s.Vals[i])}
		case metrics.KindFloat64Histogram:
			h := &wire.SparseHistogram{}
			for j, c := range s.Hists[i] {
				if c != 0 {
					h.BucketIndex = append(h.BucketIndex, uint32(j))
					h.Count = append(h.Count, c)
				}
			}
			v.Value = &wire.MetricValue_Histogram{Histogram: h}
		default:
			continue
		}
		ws.Values = append(ws.Values, v)
	}
	return ws
}

func (a *Agent) status() *wire.AgentStatus {
	st := &wire.AgentStatus{TriggersSuppressed: a.limiter.Suppressed, FlightRecorderRunning: a.rec.Running()}
	a.mu.Lock()
	st.CaptureStwSeconds = a.stwTotal
	a.mu.Unlock()
	if a.shipper != nil {
		s := a.shipper.Stats()
		st.SpoolBytes, st.SpoolItems = uint64(s.SpoolBytes), uint64(s.SpoolItems)
		st.SpoolEvictedItems, st.SpoolEvictedBytes = s.SpoolEvictedItems, s.SpoolEvictedBytes
		st.SendFailures, st.DroppedBatches, st.DroppedBundles, st.LastError = s.Failures, s.DroppedBatches, s.DroppedBundles, s.LastError
	}
	return st
}
