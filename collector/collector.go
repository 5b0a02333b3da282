// Package collector is the server side of gopulse: it ingests what agents
// push (metric batches, GC cycles, evidence bundles), scrapes services that
// only expose net/http/pprof, runs the goroutine and GC analyses per
// instance, and serves the JSON API under /api/v1 (docs/API.md), /healthz
// and /metrics. It talks to storage through store.Store only.
//
//	c, err := collector.New(collector.Config{Store: st})
//	go c.Run(ctx)                       // scraping, analysis, retention
//	http.Serve(ln, c.Handler())
package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gopulse/gopulse/store"
	"github.com/gopulse/gopulse/ui"
	"github.com/gopulse/gopulse/wire"
)

// Config configures a Collector. Only Store is required; zero values take
// the defaults in the field docs.
type Config struct {
	Store store.Store
	// Logger receives operational messages (default slog.Default()).
	Logger *slog.Logger

	// MaxBatchBytes bounds a metric batch body (default 4 MiB).
	MaxBatchBytes int64
	// MaxBundleBytes bounds a bundle body, compressed and decompressed
	// (default 512 MiB).
	MaxBundleBytes int64
	// BatchRate and BatchBurst limit batches per agent instance (default 2/s,
	// burst 60: an agent sends one per 10 s, more only while draining its
	// spool). BundleRate and BundleBurst limit bundles per token (default
	// one per 10 s, burst 20).
	BatchRate   float64
	BatchBurst  int
	BundleRate  float64
	BundleBurst int

	// ReadAuth, when set, guards the read API (and UI): it returns nil when
	// the request may read. Ingest always requires an ingest token.
	ReadAuth func(r *http.Request) error

	// Scrape lists agentless targets; Intervals tunes their schedule.
	Scrape    []Target
	Intervals Intervals

	// AnalyzeInterval is how often the analyses run (default 30 s);
	// MaintainInterval how often retention and rollups run (default 1 min).
	AnalyzeInterval  time.Duration
	MaintainInterval time.Duration
	// AnalyzeSnapshots is how many recent goroutine snapshots per instance
	// the leak analysis looks at (default 10), within AnalyzeWindow
	// (default 1 h).
	AnalyzeSnapshots int
	AnalyzeWindow    time.Duration
	// GCWindow is the span the GC health looks at (default 5 min).
	GCWindow time.Duration

	// Registry receives the collector's own metrics; nil = a new one with
	// the Go and process collectors, served at /metrics.
	Registry *prometheus.Registry
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Collector serves ingest and the API and runs the background work.
type Collector struct {
	cfg   Config
	st    store.Store
	log   *slog.Logger
	now   func() time.Time
	reg   *prometheus.Registry
	m     *metrics
	ready atomic.Bool

	batchLim  *limiters
	bundleLim *limiters

	tokMu    sync.Mutex
	tokCache map[[32]byte]tokenEntry

	scrapers []*scraper
	fleet    fleetCache
	descs    descCache
}

// New validates cfg and returns a collector; nothing runs until Run.
func New(cfg Config) (*Collector, error) {
	if cfg.Store == nil {
		return nil, errors.New("collector: Config.Store is nil")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	def := func(p *int64, v int64) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&cfg.MaxBatchBytes, 4<<20)
	def(&cfg.MaxBundleBytes, 512<<20)
	if cfg.BatchRate <= 0 {
		cfg.BatchRate = 2
	}
	if cfg.BatchBurst <= 0 {
		cfg.BatchBurst = 60
	}
	if cfg.BundleRate <= 0 {
		cfg.BundleRate = 0.1
	}
	if cfg.BundleBurst <= 0 {
		cfg.BundleBurst = 20
	}
	durDef := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	durDef(&cfg.AnalyzeInterval, 30*time.Second)
	durDef(&cfg.MaintainInterval, time.Minute)
	durDef(&cfg.AnalyzeWindow, time.Hour)
	durDef(&cfg.GCWindow, 5*time.Minute)
	if cfg.AnalyzeSnapshots <= 0 {
		cfg.AnalyzeSnapshots = 10
	}
	cfg.Intervals = cfg.Intervals.withDefaults()
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	c := &Collector{
		cfg: cfg, st: cfg.Store, log: cfg.Logger, now: cfg.Now, reg: reg, m: newMetrics(reg),
		batchLim:  newLimiters(cfg.BatchRate, cfg.BatchBurst),
		bundleLim: newLimiters(cfg.BundleRate, cfg.BundleBurst),
		tokCache:  map[[32]byte]tokenEntry{},
	}
	seen := map[store.InstanceKey]bool{}
	for i, t := range cfg.Scrape {
		if err := t.validate(); err != nil {
			return nil, fmt.Errorf("collector: Config.Scrape[%d]: %w", i, err)
		}
		s := newScraper(c, t)
		// The instance is (name, host:port): two targets with one key
		// would interleave their samples in one instance.
		if seen[s.key] {
			return nil, fmt.Errorf("collector: Config.Scrape[%d]: %s=%s listed twice (service %q already scrapes %s)", i, t.Name, t.URL, t.Name, s.key.ID)
		}
		seen[s.key] = true
		c.scrapers = append(c.scrapers, s)
	}
	return c, nil
}

// Handler serves /healthz, /metrics, the ingest paths of wire/ and the API.
func (c *Collector) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if !c.ready.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(c.reg, promhttp.HandlerOpts{Registry: c.reg}))
	mux.HandleFunc("POST "+wire.PathPushMetrics, c.pushMetrics)
	mux.HandleFunc("POST "+wire.PathPushBundle, c.pushBundle)
	c.apiRoutes(mux)
	// The web UI takes every path the routes above do not; it reads bundle
	// files for its flame graphs and trace summaries through the store.
	mux.Handle("/", ui.Handler(ui.Options{
		OpenBundleFile: func(ctx context.Context, id, name string) (io.ReadCloser, error) {
			rc, _, err := c.st.OpenBundleFile(ctx, id, name)
			return rc, err
		},
		IsNotFound:     func(err error) bool { return errors.Is(err, store.ErrNotFound) },
		SummarizeTrace: summarizeTrace,
		Auth:           c.cfg.ReadAuth,
	}))
	return mux
}

// SetReady makes /healthz answer 200; the server calls it once it listens.
func (c *Collector) SetReady() { c.ready.Store(true) }

// Run drives scraping, analysis and store maintenance until ctx ends, and
// returns after every goroutine it started has stopped.
func (c *Collector) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, s := range c.scrapers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(ctx)
		}()
	}
	wg.Add(3)
	go func() {
		defer wg.Done()
		// Spread over half the interval: done well before the next one.
		c.every(ctx, c.cfg.AnalyzeInterval, "analysis", func(ctx context.Context) error {
			return c.analyzeAll(ctx, c.cfg.AnalyzeInterval/2)
		})
	}()
	go func() {
		defer wg.Done()
		// The fleet page's windowed figures, kept warm (fleetSummary).
		if err := c.refreshFleet(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("gopulse: fleet summary failed", "err", err)
		}
		// Half an interval out of step with the analysis, so the two
		// background passes do not load the store at the same moments.
		t := time.NewTimer(c.cfg.AnalyzeInterval / 2)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		c.every(ctx, c.cfg.AnalyzeInterval, "fleet summary", func(ctx context.Context) error {
			return c.shareFleet(ctx, fleetBackgroundWorkers, c.cfg.AnalyzeInterval/3)
		})
	}()
	go func() {
		defer wg.Done()
		c.every(ctx, c.cfg.MaintainInterval, "maintenance", func(ctx context.Context) error {
			st, err := c.st.Maintain(ctx, c.now())
			if err == nil && (st.DeletedBundles > 0 || st.DeletedChunks > 0) {
				c.log.Info("gopulse: retention", "deleted_bundles", st.DeletedBundles, "deleted_chunks", st.DeletedChunks)
			}
			return err
		})
	}()
	wg.Wait()
	return nil
}

// every runs fn every d until ctx ends; one run at a time.
func (c *Collector) every(ctx context.Context, d time.Duration, what string, fn func(context.Context) error) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("gopulse: "+what+" failed", "err", err)
		}
	}
}
