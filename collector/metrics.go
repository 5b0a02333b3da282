package collector

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// metrics are the collector's own counters, served at /metrics.
type metrics struct {
	batches       *prometheus.CounterVec // result
	bundles       *prometheus.CounterVec // result
	bundleBytes   prometheus.Counter
	samples       prometheus.Counter
	ingestSeconds *prometheus.HistogramVec // kind
	scrapes       *prometheus.CounterVec   // target, kind, result
	analyses      *prometheus.CounterVec   // result
	findings      *prometheus.CounterVec   // kind, change
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gopulse_ingest_batches_total",
			Help: "Metric batches received, by result (stored, duplicate, or the HTTP status of a refusal)."}, []string{"result"}),
		bundles: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gopulse_ingest_bundles_total",
			Help: "Evidence bundles received, by result."}, []string{"result"}),
		bundleBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "gopulse_ingest_bundle_bytes_total",
			Help: "Bytes of bundle files stored (decompressed)."}),
		samples: prometheus.NewCounter(prometheus.CounterOpts{Name: "gopulse_ingest_samples_total",
			Help: "Metric samples stored."}),
		ingestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gopulse_ingest_duration_seconds",
			Help:    "Time to handle one ingest request, by kind (batch, bundle).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}}, []string{"kind"}),
		scrapes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gopulse_scrapes_total",
			Help: "Agentless scrapes, by target, kind (goroutine, heap, vars, goroutineleak) and result."}, []string{"target", "kind", "result"}),
		analyses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gopulse_analyses_total",
			Help: "Per-instance analysis runs, by result."}, []string{"result"}),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gopulse_findings_changes_total",
			Help: "Finding lifecycle changes, by kind and change (observed, resolved)."}, []string{"kind", "change"}),
	}
	reg.MustRegister(m.batches, m.bundles, m.bundleBytes, m.samples, m.ingestSeconds, m.scrapes, m.analyses, m.findings)
	return m
}

// limiters holds one token bucket per key (an instance or a token), dropping
// the buckets of keys idle for longer than idleAfter so the map stays bounded
// by the active fleet.
type limiters struct {
	mu        sync.Mutex
	r         rate.Limit
	burst     int
	m         map[string]*limEntry
	lastSweep time.Time
}

type limEntry struct {
	l    *rate.Limiter
	used time.Time
}

const idleAfter = 10 * time.Minute

func newLimiters(r float64, burst int) *limiters {
	return &limiters{r: rate.Limit(r), burst: burst, m: map[string]*limEntry{}}
}

// allow takes one token for key at now; when none is left it returns false
// and how long until one is.
func (ls *limiters) allow(key string, now time.Time) (bool, time.Duration) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if now.Sub(ls.lastSweep) > idleAfter {
		for k, e := range ls.m {
			if now.Sub(e.used) > idleAfter {
				delete(ls.m, k)
			}
		}
		ls.lastSweep = now
	}
	e := ls.m[key]
	if e == nil {
		e = &limEntry{l: rate.NewLimiter(ls.r, ls.burst)}
		ls.m[key] = e
	}
	e.used = now
	r := e.l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}
