package agent

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/gopulse/gopulse/agent/internal/sample"
)

// Status is what Handler serves as JSON.
type Status struct {
	Service         string    `json:"service"`
	InstanceID      string    `json:"instance_id"`
	Collector       string    `json:"collector,omitempty"`
	SampledAt       time.Time `json:"sampled_at"`
	Goroutines      uint64    `json:"goroutines"`
	HeapLiveBytes   uint64    `json:"heap_live_bytes"`
	HeapGoalBytes   uint64    `json:"heap_goal_bytes"`
	RSSBytes        uint64    `json:"rss_bytes"`
	OpenFDs         uint64    `json:"open_fds"`
	FDLimit         uint64    `json:"fd_limit"`
	CgroupVersion   int       `json:"cgroup_version"`
	CgroupMemLimit  uint64    `json:"cgroup_memory_limit_bytes"`
	SchedP99        string    `json:"sched_latency_p99"`
	SchedP99Seconds float64   `json:"sched_latency_p99_seconds"`
	// GCCPUFraction is the GC CPU fraction as `gopulse gc` prints it and
	// the collector shows it: GC CPU with idle-priority marking left out
	// over the process's CPU capacity, GOMAXPROCS × time
	// ((gc/total − gc/mark/idle) ÷ total in /cpu/classes terms).
	// GCBusyShare is the same GC CPU over the CPU the process was busy
	// with (total − idle): on a partly idle service it says how much of
	// the work done was the GC. GCMarkAssistShare is the part of that GC
	// CPU that goroutines paid in mark assists, inside their own work
	// (requests feel it as latency). The runtime updates these counters
	// only when a GC cycle ends, so all three cover the span from
	// GCCPUSince to SampledAt between the agent's two latest samples that
	// saw cycles end; -1 until there are two such samples (GCBusyShare
	// also when no P was busy).
	GCCPUFraction     float64   `json:"gc_cpu_fraction"`
	GCBusyShare       float64   `json:"gc_busy_share"`
	GCMarkAssistShare float64   `json:"gc_mark_assist_share"`
	GCCPUSince        time.Time `json:"gc_cpu_since"`
	// CPUSeconds are the cumulative counters at SampledAt, for a reader
	// that takes its own differences over its own interval.
	CPUSeconds     CPUSeconds         `json:"cpu_seconds"`
	RuleLevels     map[string]float64 `json:"rule_levels"`
	FlightRecorder string             `json:"flight_recorder"`
	RecorderOn     bool               `json:"flight_recorder_running"`
	// RecorderStarts counts how often the flight recorder was started
	// (in armed mode: how often a signal crossed ArmLevel).
	RecorderStarts uint64      `json:"flight_recorder_starts"`
	Events         []EventInfo `json:"events"`
	// Delivery is nil when no Collector is configured.
	Delivery *DeliveryStats `json:"delivery,omitempty"`
	// BundlesCaptured counts captures since Start (Events keeps the last 32).
	BundlesCaptured uint64 `json:"bundles_captured"`
}

// CPUSeconds are the runtime's cumulative CPU estimates from
// runtime/metrics /cpu/classes/…:cpu-seconds, as of the latest GC cycle end.
type CPUSeconds struct {
	GCTotal      float64 `json:"gc_total"`
	GCMarkAssist float64 `json:"gc_mark_assist"`
	GCMarkIdle   float64 `json:"gc_mark_idle"`
	Total        float64 `json:"total"` // GOMAXPROCS × wall time
	Idle         float64 `json:"idle"`
}

// gcCPU turns successive samples into the GC's CPU figures between the
// two latest that saw GC cycles end (sample.GCCPU defines them). Two
// samples with no cycle end between them carry the same counters and
// change nothing.
type gcCPU struct {
	ref            sample.Point // latest sample whose counters moved; zero Time: none yet
	fraction       float64
	busy           float64
	assist         float64
	since, sampled time.Time
}

func newGCCPU() gcCPU { return gcCPU{fraction: -1, busy: -1, assist: -1} }

func (g *gcCPU) update(p sample.Point) {
	if p.TotalCPU <= g.ref.TotalCPU {
		return
	}
	if !g.ref.Time.IsZero() {
		d := sample.GCCPUBetween(g.ref, p)
		if f, ok := d.Fraction(); ok {
			g.fraction = f
			g.since, g.sampled = g.ref.Time, p.Time
			g.busy, g.assist = -1, -1
			if b, ok := d.BusyShare(); ok {
				g.busy = b
			}
			if a, ok := d.AssistShare(); ok {
				g.assist = a
			}
		}
	}
	g.ref = p
}

// DeliveryStats are cumulative delivery counters.
type DeliveryStats struct {
	BatchesSent       uint64 `json:"batches_sent"`
	BundlesSent       uint64 `json:"bundles_sent"`
	Failures          uint64 `json:"failures"`
	DroppedBatches    uint64 `json:"dropped_batches"`
	DroppedBundles    uint64 `json:"dropped_bundles"`
	SpoolBytes        int64  `json:"spool_bytes"`
	SpoolItems        int    `json:"spool_items"`
	SpoolEvictedItems uint64 `json:"spool_evicted_items"`
	SpoolEvictedBytes uint64 `json:"spool_evicted_bytes"`
	LastError         string `json:"last_error,omitempty"`
}

// Status returns a snapshot of the agent's state.
func (a *Agent) Status() Status {
	a.mu.Lock()
	st := Status{
		Service: a.instance.Service, InstanceID: a.instance.InstanceId, Collector: a.opts.Collector,
		SampledAt: a.last.Time, Goroutines: a.last.Point.Goroutines, HeapLiveBytes: a.last.Point.HeapLive,
		HeapGoalBytes: a.last.Point.HeapGoal, RSSBytes: a.last.Proc.RSS, OpenFDs: a.last.Proc.FDs, FDLimit: a.last.Proc.FDLimit,
		CgroupVersion: a.last.Cg.Version, CgroupMemLimit: a.last.Cg.MemLimit, SchedP99: a.last.Point.SchedP99.String(),
		SchedP99Seconds: a.last.Point.SchedP99.Seconds(),
		GCCPUFraction:   a.gcCPU.fraction, GCBusyShare: a.gcCPU.busy, GCMarkAssistShare: a.gcCPU.assist, GCCPUSince: a.gcCPU.since,
		CPUSeconds: CPUSeconds{GCTotal: a.last.Point.GCCPU, GCMarkAssist: a.last.Point.GCAssistCPU, GCMarkIdle: a.last.Point.GCIdleMarkCPU,
			Total: a.last.Point.TotalCPU, Idle: a.last.Point.IdleCPU},
		RuleLevels: map[string]float64{}, FlightRecorder: string(a.opts.FlightRecorder),
		Events: append([]EventInfo(nil), a.recent...),
	}
	for k, v := range a.lastLevel {
		st.RuleLevels[k] = v
	}
	a.mu.Unlock()
	st.RecorderOn = a.rec.Running()
	st.RecorderStarts = a.rec.Starts()
	st.BundlesCaptured = a.events.Load()
	if a.shipper != nil {
		d := a.shipper.Stats()
		st.Delivery = &DeliveryStats{
			BatchesSent: d.BatchesSent, BundlesSent: d.BundlesSent, Failures: d.Failures,
			DroppedBatches: d.DroppedBatches, DroppedBundles: d.DroppedBundles,
			SpoolBytes: d.SpoolBytes, SpoolItems: d.SpoolItems, SpoolEvictedItems: d.SpoolEvictedItems,
			SpoolEvictedBytes: d.SpoolEvictedBytes, LastError: d.LastError,
		}
	}
	return st
}

// Handler serves the agent's state for local inspection; mount it where you
// like (it is never registered by the agent):
//
//	GET  …/            the Status as JSON
//	POST …/trigger     a manual trigger; the form value "reason" is recorded
func (a *Agent) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/trigger") {
			if r.Method != http.MethodPost {
				w.Header().Set("Allow", http.MethodPost)
				http.Error(w, "use POST to trigger a capture", http.StatusMethodNotAllowed)
				return
			}
			reason := r.FormValue("reason")
			if reason == "" {
				reason = "manual trigger through the agent handler"
			}
			a.Trigger(reason)
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		e := json.NewEncoder(w)
		e.SetIndent("", "  ")
		e.Encode(a.Status())
	})
}
