package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gopulse/gopulse/analyze/gc"
	"github.com/gopulse/gopulse/analyze/goroutine"
	"github.com/gopulse/gopulse/store"
)

// Target is a service that exposes net/http/pprof (and optionally
// expvar's /debug/vars) without the agent.
type Target struct {
	// Name is the service name the instance is filed under.
	Name string
	// URL is the base, e.g. "http://127.0.0.1:6060"; a trailing
	// /debug/pprof/ is accepted and removed.
	URL string
	// Intervals overrides Config.Intervals for this target: its nonzero
	// Goroutine, Heap, Vars and Timeout are used (the other fields are
	// ignored).
	Intervals Intervals
}

func (t *Target) validate() error {
	if t.Name == "" || len(t.Name) > maxIDLen {
		return fmt.Errorf("target name %q must be 1–%d bytes", t.Name, maxIDLen)
	}
	u, err := url.Parse(t.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("target %s: URL %q is not http(s)://host:port", t.Name, t.URL)
	}
	// Trimmed until nothing changes, so a validated URL validates to itself.
	for p := ""; p != u.Path; {
		p = u.Path
		u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/debug/pprof")
	}
	u.RawQuery, u.Fragment = "", ""
	t.URL = strings.TrimSuffix(u.String(), "/")
	return nil
}

// Intervals is the scrape schedule. Zero fields take the defaults.
type Intervals struct {
	Goroutine time.Duration // goroutine profile (protobuf); default 60 s
	Heap      time.Duration // heap profile, kept as a bundle; default 5 min
	Vars      time.Duration // /debug/vars memstats; default 10 s
	// Timeout bounds one request (default 20 s); MaxBackoff bounds the
	// wait between attempts on a dead target (default 5 min).
	Timeout    time.Duration
	MaxBackoff time.Duration
	// LeakProfileMax: the goroutineleak profile (a special GC that stops
	// the world) is requested only below this many goroutines (default
	// 20,000; negative: never).
	LeakProfileMax int
}

func (iv Intervals) withDefaults() Intervals {
	d := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	d(&iv.Goroutine, time.Minute)
	d(&iv.Heap, 5*time.Minute)
	d(&iv.Vars, 10*time.Second)
	d(&iv.Timeout, 20*time.Second)
	d(&iv.MaxBackoff, 5*time.Minute)
	if iv.LeakProfileMax == 0 {
		iv.LeakProfileMax = 20_000
	}
	return iv
}

// Memstats series recorded from /debug/vars.
const (
	nameMSHeapAlloc     = "/memstats/heap-alloc:bytes"
	nameMSHeapSys       = "/memstats/heap-sys:bytes"
	nameMSHeapInuse     = "/memstats/heap-inuse:bytes"
	nameMSHeapReleased  = "/memstats/heap-released:bytes"
	nameMSSys           = "/memstats/sys:bytes"
	nameMSStackInuse    = "/memstats/stack-inuse:bytes"
	nameMSTotalAlloc    = "/memstats/total-alloc:bytes"
	nameMSNumGC         = "/memstats/num-gc:gc-cycles"
	nameMSGCCPUFraction = "/memstats/gc-cpu-fraction:fraction"
)

type task struct {
	name     string
	interval time.Duration
	next     time.Time
	run      func(ctx context.Context, now time.Time) error
	// absent is set when the target answered 404: the endpoint is not
	// served, so it is retried only every hour.
	absent bool
}

// scraper scrapes one target. One goroutine runs all its tasks in turn,
// so scrapes of a target never overlap; a slow scrape delays the next due
// one rather than piling up.
type scraper struct {
	c            *Collector
	t            Target
	iv           Intervals
	client       *http.Client
	key          store.InstanceKey
	failures     int
	lastNGC      uint32
	haveNGC      bool
	lastG        int
	leakAbsentAt time.Time
	tasks        []*task
}

func newScraper(c *Collector, t Target) *scraper {
	u, _ := url.Parse(t.URL)
	iv := c.cfg.Intervals
	for _, o := range []struct{ dst, src *time.Duration }{
		{&iv.Goroutine, &t.Intervals.Goroutine}, {&iv.Heap, &t.Intervals.Heap}, {&iv.Vars, &t.Intervals.Vars}, {&iv.Timeout, &t.Intervals.Timeout},
	} {
		if *o.src > 0 {
			*o.dst = *o.src
		}
	}
	s := &scraper{c: c, t: t, iv: iv, key: store.InstanceKey{Service: t.Name, ID: u.Host},
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: 2 * time.Minute}}}
	s.tasks = []*task{
		{name: "goroutine", interval: s.iv.Goroutine, run: s.scrapeGoroutines},
		{name: "vars", interval: s.iv.Vars, run: s.scrapeVars},
		{name: "heap", interval: s.iv.Heap, run: s.scrapeHeap},
	}
	return s
}

func (s *scraper) run(ctx context.Context) {
	defer s.client.CloseIdleConnections()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		now := time.Now()
		for _, tk := range s.tasks {
			if ctx.Err() != nil {
				return
			}
			if now.Before(tk.next) {
				continue
			}
			err := s.once(ctx, tk)
			now = time.Now()
			switch {
			case err == nil:
				s.failures = 0
				tk.next = now.Add(tk.interval)
			case errors.Is(err, errAbsent):
				tk.absent = true
				tk.next = now.Add(max(time.Hour, tk.interval))
			default:
				if ctx.Err() != nil {
					return
				}
				s.failures++
				// Back off the whole target: when it is down, every task
				// would fail the same way.
				b := min(s.iv.MaxBackoff, time.Duration(1<<min(s.failures, 20))*time.Second)
				for _, o := range s.tasks {
					o.next = later(o.next, now.Add(b))
				}
				if s.failures == 1 || s.failures%10 == 0 {
					s.c.log.Warn("gopulse: scrape failed", "target", s.t.Name, "url", s.t.URL, "kind", tk.name, "attempt", s.failures, "retry_in", b, "err", err)
				}
			}
		}
		next := s.tasks[0].next
		for _, tk := range s.tasks[1:] {
			if tk.next.Before(next) {
				next = tk.next
			}
		}
		timer.Reset(max(0, time.Until(next)))
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (s *scraper) once(ctx context.Context, tk *task) error {
	ctx, cancel := context.WithTimeout(ctx, s.iv.Timeout)
	defer cancel()
	err := tk.run(ctx, time.Now())
	result := "ok"
	switch {
	case errors.Is(err, errAbsent):
		result = "absent"
	case err != nil:
		result = "error"
	}
	s.c.m.scrapes.WithLabelValues(s.t.Name, tk.name, result).Inc()
	return err
}

var errAbsent = errors.New("endpoint not served")

// get fetches path and returns the body, at most limit bytes.
func (s *scraper) get(ctx context.Context, path string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.t.URL+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "gopulse-collector")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("GET %s: %w", path, errAbsent)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s: status %d: %s", path, resp.StatusCode, bytes.TrimSpace(msg))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: read body: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("GET %s: body larger than %d bytes", path, limit)
	}
	return b, nil
}

func (s *scraper) instance() store.Instance {
	return store.Instance{Service: s.key.Service, ID: s.key.ID, Host: s.key.ID, Source: store.SourceScraped,
		Labels: map[string]string{"url": s.t.URL}}
}

// bundleID names a scraped profile bundle; IDs share a namespace with
// agent event IDs, which never start with "scrape-".
func (s *scraper) bundleID(kind string, now time.Time) string {
	return fmt.Sprintf("scrape-%s-%s-%s-%d", kind, s.key.Service, s.key.ID, now.UnixMilli())
}

// storeProfile keeps a scraped profile as a one-file bundle, so it opens
// in go tool pprof through the API and findings can link it.
func (s *scraper) storeProfile(ctx context.Context, kind, file string, body []byte, now time.Time) (string, error) {
	bw, err := s.c.st.BeginBundle(ctx)
	if err != nil {
		return "", err
	}
	if _, err := bw.WriteFile(ctx, file, "application/vnd.google.protobuf+pprof", bytes.NewReader(body)); err != nil {
		bw.Abort(context.WithoutCancel(ctx))
		return "", err
	}
	id := s.bundleID(kind, now)
	_, err = bw.Commit(ctx, store.Bundle{ID: id, Instance: s.key, Rule: "scrape", Reason: "scheduled " + kind + " scrape",
		FiredAt: now, ReceivedAt: now})
	return id, err
}

func (s *scraper) scrapeGoroutines(ctx context.Context, now time.Time) error {
	body, err := s.get(ctx, "/debug/pprof/goroutine", maxDumpBytes)
	if err != nil {
		return err
	}
	snap, err := goroutine.Parse(bytes.NewReader(body), goroutine.Options{Time: now, MaxBytes: maxDumpBytes})
	if err != nil {
		return fmt.Errorf("parse goroutine profile from %s: %w", s.t.URL, err)
	}
	s.lastG = snap.Goroutines
	if err := s.c.st.UpsertInstance(ctx, s.instance(), now); err != nil {
		return err
	}
	id, err := s.storeProfile(ctx, "goroutine", "goroutine.pb.gz", body, now)
	if err != nil {
		return fmt.Errorf("store goroutine profile: %w", err)
	}
	ss := toStoreSnapshot(s.key, snap, "bundle:"+id)
	s.crossCheckLeaks(ctx, &ss)
	if err := s.c.st.PutGoroutineSnapshot(ctx, ss); err != nil {
		return fmt.Errorf("store goroutine snapshot: %w", err)
	}
	_, err = s.c.st.Append(ctx, store.Batch{Instance: s.instance(), ReceivedAt: now,
		Samples: []store.Sample{{Name: nameGoroutines, T: now.UnixMilli(), Value: float64(snap.Goroutines)}}})
	return err
}

// crossCheckLeaks adds the runtime's goroutineleak verdicts (Go 1.26 with
// GOEXPERIMENT=goroutineleakprofile, Go 1.27) to the snapshot's groups when
// the target serves the profile and has few enough goroutines for its
// stop-the-world GC to be cheap. Errors only skip the cross-check.
func (s *scraper) crossCheckLeaks(ctx context.Context, ss *store.GoroutineSnapshot) {
	lim := s.iv.LeakProfileMax
	if lim < 0 || ss.Goroutines > lim || s.noLeakProfile(time.Now()) {
		return
	}
	body, err := s.get(ctx, "/debug/pprof/goroutineleak", maxDumpBytes)
	result := "ok"
	defer func() { s.c.m.scrapes.WithLabelValues(s.t.Name, "goroutineleak", result).Inc() }()
	if err != nil {
		result = "error"
		if errors.Is(err, errAbsent) || strings.Contains(err.Error(), "status 500") {
			result = "absent"
			s.leakAbsentAt = time.Now()
		}
		return
	}
	if err := markLeaked(ss, bytes.NewReader(body)); err != nil {
		result = "error"
	}
}

// markLeaked sets each group's Leaked count from the runtime's goroutine
// leak profile read from r (the scrape's /debug/pprof/goroutineleak, a
// bundle's goroutineleak.pb.gz). Groups match by their stack key; a group
// cannot have more leaked goroutines than it has goroutines, since the two
// profiles are taken moments apart.
func markLeaked(ss *store.GoroutineSnapshot, r io.Reader) error {
	lp, err := goroutine.Parse(r, goroutine.Options{MaxBytes: maxDumpBytes})
	if err != nil {
		return fmt.Errorf("parse goroutine leak profile: %w", err)
	}
	leaked := map[string]int{}
	for _, g := range lp.Groups {
		leaked[g.Key] += g.Count
	}
	for i := range ss.Groups {
		if n := leaked[ss.Groups[i].Key]; n > 0 {
			ss.Groups[i].Leaked = min(n, ss.Groups[i].Count)
		}
	}
	return nil
}

func (s *scraper) noLeakProfile(now time.Time) bool {
	return !s.leakAbsentAt.IsZero() && now.Sub(s.leakAbsentAt) < time.Hour
}

func (s *scraper) scrapeHeap(ctx context.Context, now time.Time) error {
	body, err := s.get(ctx, "/debug/pprof/heap", 256<<20)
	if err != nil {
		return err
	}
	if err := s.c.st.UpsertInstance(ctx, s.instance(), now); err != nil {
		return err
	}
	_, err = s.storeProfile(ctx, "heap", "heap.pb.gz", body, now)
	return err
}

// scrapeVars records expvar memstats and the GC cycles of its pause ring.
func (s *scraper) scrapeVars(ctx context.Context, now time.Time) error {
	body, err := s.get(ctx, "/debug/vars", 16<<20)
	if err != nil {
		return err
	}
	vs, err := gc.ParseVars(bytes.NewReader(body), now)
	if err != nil {
		return fmt.Errorf("parse /debug/vars of %s: %w", s.t.URL, err)
	}
	ms := vs.MemStats
	t := now.UnixMilli()
	b := store.Batch{Instance: s.instance(), ReceivedAt: now}
	for _, kv := range []struct {
		n string
		v float64
	}{
		{nameMSHeapAlloc, float64(ms.HeapAlloc)}, {nameMSHeapSys, float64(ms.HeapSys)}, {nameMSHeapInuse, float64(ms.HeapInuse)},
		{nameMSHeapReleased, float64(ms.HeapReleased)}, {nameMSSys, float64(ms.Sys)}, {nameMSStackInuse, float64(ms.StackInuse)},
		{nameMSTotalAlloc, float64(ms.TotalAlloc)}, {nameMSNumGC, float64(ms.NumGC)}, {nameMSGCCPUFraction, ms.GCCPUFraction},
		{nameHeapGoal, float64(ms.NextGC)},
	} {
		b.Samples = append(b.Samples, store.Sample{Name: kv.n, T: t, Value: kv.v})
	}
	// The pause ring holds the last 256 cycles: cycle n is at (n+255)%256.
	first := uint32(1)
	if ms.NumGC > 256 {
		first = ms.NumGC - 255
	}
	if s.haveNGC && s.lastNGC+1 > first {
		first = s.lastNGC + 1
	}
	if s.haveNGC && s.lastNGC+1 < first {
		b.GCGaps = append(b.GCGaps, store.GCGap{FirstCycle: s.lastNGC + 1, LastCycle: first - 1, Time: t,
			Reason: "more than 256 GC cycles between two /debug/vars scrapes"})
	}
	for n := first; n <= ms.NumGC && n > 0; n++ {
		i := (n + 255) % 256
		end := int64(ms.PauseEnd[i]) / 1e6
		if end <= 0 {
			continue
		}
		b.GCCycles = append(b.GCCycles, store.GCCycle{Cycle: n, EndTime: end, PauseNs: int64(ms.PauseNs[i])})
	}
	if _, err := s.c.st.Append(ctx, b); err != nil {
		return fmt.Errorf("store memstats: %w", err)
	}
	s.lastNGC, s.haveNGC = ms.NumGC, true
	return nil
}
