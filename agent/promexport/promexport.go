// Package promexport exposes the gopulse agent's view of a service to a
// Prometheus client_golang registry, for teams that already scrape
// Prometheus: the GC, scheduler and limit signals the agent's triggers
// watch, each trigger rule's level, and the agent's delivery health.
//
//	reg.MustRegister(promexport.New(a))
//
// It lives apart from package agent so that services not using Prometheus
// do not link client_golang.
package promexport

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gopulse/gopulse/agent"
)

// Collector is a prometheus.Collector reading agent.Status at scrape time.
type Collector struct {
	a *agent.Agent

	goroutines, heapLive, heapGoal, rss, fds, fdLimit, cgLimit, schedP99 *prometheus.Desc
	ruleLevel, recorder, bundles                                         *prometheus.Desc
	sent, failures, dropped, spoolBytes, evicted                         *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// New returns a collector for a.
func New(a *agent.Agent) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("gopulse_"+name, help, labels, nil)
	}
	return &Collector{
		a:          a,
		goroutines: d("goroutines", "Goroutines at the agent's last sample (/sched/goroutines:goroutines)."),
		heapLive:   d("gc_heap_live_bytes", "Heap marked live by the last GC (/gc/heap/live:bytes)."),
		heapGoal:   d("gc_heap_goal_bytes", "Heap size at which the next GC starts (/gc/heap/goal:bytes)."),
		rss:        d("process_rss_bytes", "Resident set size from /proc/self/stat."),
		fds:        d("process_open_fds", "Open file descriptors."),
		fdLimit:    d("process_fd_limit", "Soft RLIMIT_NOFILE."),
		cgLimit:    d("cgroup_memory_limit_bytes", "Tightest cgroup memory limit up the hierarchy (0 = none)."),
		schedP99:   d("sched_latency_p99_seconds", "Runnable-to-running latency p99 over the agent's window (/sched/latencies:seconds)."),
		ruleLevel:  d("trigger_level_ratio", "Each trigger rule's signal as a fraction of its threshold; 1 fires.", "rule"),
		recorder:   d("flight_recorder_running", "1 while the execution-trace flight recorder runs."),
		bundles:    d("bundles_captured_total", "Evidence bundles captured since the agent started."),
		sent:       d("delivered_total", "Items the collector acknowledged.", "kind"),
		failures:   d("delivery_failures_total", "Failed delivery attempts (retried unless dropped)."),
		dropped:    d("dropped_total", "Items given up on (refused by the collector, or lost without a spool).", "kind"),
		spoolBytes: d("spool_bytes", "Bytes waiting in the on-disk spool."),
		evicted:    d("spool_evicted_total", "Spool items evicted to respect the size cap or age limit."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.goroutines, c.heapLive, c.heapGoal, c.rss, c.fds, c.fdLimit, c.cgLimit, c.schedP99,
		c.ruleLevel, c.recorder, c.bundles, c.sent, c.failures, c.dropped, c.spoolBytes, c.evicted} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.a.Status()
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	k := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	g(c.goroutines, float64(st.Goroutines))
	g(c.heapLive, float64(st.HeapLiveBytes))
	g(c.heapGoal, float64(st.HeapGoalBytes))
	g(c.rss, float64(st.RSSBytes))
	g(c.fds, float64(st.OpenFDs))
	g(c.fdLimit, float64(st.FDLimit))
	g(c.cgLimit, float64(st.CgroupMemLimit))
	g(c.schedP99, st.SchedP99Seconds)
	for rule, lvl := range st.RuleLevels {
		g(c.ruleLevel, lvl, rule)
	}
	rec := 0.0
	if st.RecorderOn {
		rec = 1
	}
	g(c.recorder, rec)
	k(c.bundles, float64(st.BundlesCaptured))
	if d := st.Delivery; d != nil {
		k(c.sent, float64(d.BatchesSent), "batch")
		k(c.sent, float64(d.BundlesSent), "bundle")
		k(c.failures, float64(d.Failures))
		k(c.dropped, float64(d.DroppedBatches), "batch")
		k(c.dropped, float64(d.DroppedBundles), "bundle")
		g(c.spoolBytes, float64(d.SpoolBytes))
		k(c.evicted, float64(d.SpoolEvictedItems))
	}
}
