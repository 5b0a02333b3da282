package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gopulse/gopulse/analyze/goroutine"
	"github.com/gopulse/gopulse/store"
)

// maxDumpBytes bounds one goroutine profile the collector parses.
const maxDumpBytes = 256 << 20

// Finding kinds raised by the collector.
const (
	KindGoroutineLeak = "goroutine-leak"
	KindGCPause       = "gc-pause"
	KindGCCPU         = "gc-cpu"
	KindHeapLimit     = "heap-limit"
)

// storedStack is the JSON kept in store.GoroutineGroup.Stack.
type storedStack struct {
	Frames    []goroutine.Frame `json:"frames"`
	CreatedBy goroutine.Frame   `json:"created_by"`
	Elided    bool              `json:"elided,omitempty"`
}

// toStoreSnapshot keeps what the leak analysis needs of a parsed snapshot.
func toStoreSnapshot(key store.InstanceKey, s *goroutine.Snapshot, source string) store.GoroutineSnapshot {
	out := store.GoroutineSnapshot{Instance: key, Time: s.Time.UnixMilli(), Source: source, Goroutines: s.Goroutines}
	for _, g := range s.Groups {
		st, _ := json.Marshal(storedStack{Frames: g.Frames, CreatedBy: g.CreatedBy, Elided: g.Elided})
		out.Groups = append(out.Groups, store.GoroutineGroup{
			Key: g.Key, State: g.State, Count: g.Count, Leaked: g.Leaked, WaitMaxMs: g.WaitMax.Milliseconds(), Stack: st,
		})
	}
	return out
}

// fromStoreSnapshot rebuilds the analyzer's view of a stored snapshot.
func fromStoreSnapshot(s store.GoroutineSnapshot) *goroutine.Snapshot {
	out := &goroutine.Snapshot{Time: time.UnixMilli(s.Time), Format: goroutine.FormatProto, Goroutines: s.Goroutines}
	for _, g := range s.Groups {
		var st storedStack
		json.Unmarshal(g.Stack, &st)
		out.Groups = append(out.Groups, &goroutine.Group{
			Key: g.Key, State: g.State, Frames: st.Frames, CreatedBy: st.CreatedBy, Elided: st.Elided,
			Count: g.Count, Leaked: g.Leaked, WaitMax: time.Duration(g.WaitMaxMs) * time.Millisecond,
		})
	}
	return out
}

// analyzeAll runs the analyses for every instance seen recently, spread
// over span (0: as fast as it goes).
func (c *Collector) analyzeAll(ctx context.Context, span time.Duration) error {
	now := c.now()
	insts, err := c.st.ListInstances(ctx, "", now.Add(-c.cfg.AnalyzeWindow))
	if err != nil {
		return fmt.Errorf("list instances: %w", err)
	}
	var errs []error
	pace := newPacer(span, len(insts))
	for i, in := range insts {
		if pace.wait(ctx, i) != nil {
			return nil
		}
		err := errors.Join(c.analyzeLeaks(ctx, in.Key(), now), c.analyzeGC(ctx, in.Key(), now))
		if err != nil {
			c.m.analyses.WithLabelValues("error").Inc()
			errs = append(errs, fmt.Errorf("%s/%s: %w", in.Service, in.ID, err))
		} else {
			c.m.analyses.WithLabelValues("ok").Inc()
		}
	}
	return errors.Join(errs...)
}

// AnalyzeNow runs one analysis pass immediately (tests and the API's
// refresh use it).
func (c *Collector) AnalyzeNow(ctx context.Context) error { return c.analyzeAll(ctx, 0) }

// pacer spreads the n steps of a background pass over a span: a pass over
// a thousand instances then costs ingest a steady few percent of a core
// instead of a second-long burst of a whole one, which on a 2-core
// collector queues every batch that arrives meanwhile.
type pacer struct {
	start time.Time
	step  time.Duration
}

func newPacer(span time.Duration, n int) pacer {
	p := pacer{start: time.Now()}
	if span > 0 && n > 0 {
		p.step = span / time.Duration(n)
	}
	return p
}

// wait returns when step i may start, or ctx's error.
func (p pacer) wait(ctx context.Context, i int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d := time.Until(p.start.Add(time.Duration(i) * p.step))
	if p.step == 0 || d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// leakDetails is the JSON stored with a goroutine-leak finding.
type leakDetails struct {
	State           string            `json:"state"`
	Count           int               `json:"count"`
	Counts          []int             `json:"counts"`
	GrowthPerMinute float64           `json:"growth_per_minute"`
	Evidence        []string          `json:"evidence"`
	Blocking        goroutine.Frame   `json:"blocking"`
	Frames          []goroutine.Frame `json:"frames"`
	CreatedBy       goroutine.Frame   `json:"created_by"`
	Snapshots       int               `json:"snapshots"`
	WindowSeconds   float64           `json:"window_seconds"`
}

func (c *Collector) analyzeLeaks(ctx context.Context, key store.InstanceKey, now time.Time) error {
	stored, err := c.st.GoroutineSnapshots(ctx, key, now.Add(-c.cfg.AnalyzeWindow).UnixMilli(), now.UnixMilli()+1, c.cfg.AnalyzeSnapshots)
	if err != nil {
		return fmt.Errorf("goroutine snapshots: %w", err)
	}
	if len(stored) == 0 {
		return nil
	}
	snaps := make([]*goroutine.Snapshot, len(stored))
	var bundles []string
	for i, s := range stored {
		snaps[i] = fromStoreSnapshot(s)
		if id, ok := strings.CutPrefix(s.Source, "bundle:"); ok {
			bundles = append(bundles, id)
		}
	}
	if len(bundles) > 3 {
		bundles = bundles[len(bundles)-3:]
	}
	rep := goroutine.Analyze(snaps, goroutine.AnalyzeOptions{})
	observed := map[string]bool{}
	for _, g := range rep.Groups {
		if g.Verdict != goroutine.VerdictLeak {
			continue
		}
		observed[g.Key] = true
		where := g.Blocking.Func
		if where == "" && len(g.Frames) > 0 {
			where = g.Frames[0].Func
		}
		det, _ := json.Marshal(leakDetails{
			State: g.State, Count: g.Count, Counts: g.Counts, GrowthPerMinute: g.GrowthPerMinute, Evidence: g.Evidence,
			Blocking: g.Blocking, Frames: g.Frames, CreatedBy: g.CreatedBy, Snapshots: rep.Snapshots, WindowSeconds: rep.Window.Seconds(),
		})
		summary := strings.Join(g.Evidence, " ")
		_, err := c.st.Observe(ctx, store.Observation{
			Instance: key, Kind: KindGoroutineLeak, Key: g.Key, Severity: "error",
			Title:   fmt.Sprintf("%d goroutines leak in %s (%s)", g.Count, where, g.State),
			Summary: summary, Details: det, BundleIDs: bundles, At: now,
		})
		if err != nil {
			return fmt.Errorf("observe leak %s: %w", g.Key, err)
		}
		c.m.findings.WithLabelValues(KindGoroutineLeak, "observed").Inc()
	}
	return c.resolveCleared(ctx, key, KindGoroutineLeak, observed, now, "the group no longer grows or has gone")
}

// resolveCleared resolves the open findings of kind whose keys were not
// observed in this pass.
func (c *Collector) resolveCleared(ctx context.Context, key store.InstanceKey, kind string, observed map[string]bool, now time.Time, note string) error {
	open, err := c.st.ListFindings(ctx, store.FindingFilter{Service: key.Service, Instance: key.ID, Kind: kind, State: store.FindingOpen, Limit: 1000})
	if err != nil {
		return fmt.Errorf("list open %s findings: %w", kind, err)
	}
	for _, f := range open {
		if observed[f.Key] {
			continue
		}
		if err := c.st.Resolve(ctx, f.ID, now, note); err != nil && !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("resolve finding %d: %w", f.ID, err)
		}
		c.m.findings.WithLabelValues(kind, "resolved").Inc()
	}
	return nil
}
