package collector

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/gopulse/gopulse/store"
)

// Query limits of the API, so one request cannot ask for unbounded work.
const (
	maxPoints   = 11_000
	maxListSize = 1000
)

func (c *Collector) apiRoutes(mux *http.ServeMux) {
	h := func(pattern string, fn func(w http.ResponseWriter, r *http.Request) (any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if c.cfg.ReadAuth != nil {
				if err := c.cfg.ReadAuth(r); err != nil {
					w.Header().Set("WWW-Authenticate", `Basic realm="gopulse", charset="UTF-8"`)
					writeError(w, err)
					return
				}
			}
			v, err := fn(w, r)
			if err != nil {
				writeError(w, err)
				return
			}
			if v == nil {
				return // the handler wrote the body
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			enc := json.NewEncoder(w)
			enc.Encode(v)
		})
	}
	h("GET /api/v1/services", c.apiServices)
	h("GET /api/v1/instances", c.apiInstances)
	h("GET /api/v1/instances/{service}/{id}", c.apiInstance)
	h("GET /api/v1/instances/{service}/{id}/series", c.apiSeries)
	h("GET /api/v1/instances/{service}/{id}/gc", c.apiGC)
	h("GET /api/v1/instances/{service}/{id}/goroutines", c.apiGoroutines)
	h("GET /api/v1/fleet", c.apiFleet)
	h("GET /api/v1/findings", c.apiFindings)
	h("GET /api/v1/findings/{id}", c.apiFinding)
	h("GET /api/v1/bundles", c.apiBundles)
	h("GET /api/v1/bundles/{id}", c.apiBundle)
	h("GET /api/v1/bundles/{id}/{file}", c.apiBundleFile)
}

// Instance is an instance as the API returns it.
type Instance struct {
	Service      string            `json:"service"`
	ID           string            `json:"id"`
	Host         string            `json:"host,omitempty"`
	PID          int64             `json:"pid,omitempty"`
	GoVersion    string            `json:"go_version,omitempty"`
	AgentVersion string            `json:"agent_version,omitempty"`
	StartTime    *time.Time        `json:"start_time,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	Source       string            `json:"source"`
	FirstSeen    time.Time         `json:"first_seen"`
	LastSeen     time.Time         `json:"last_seen"`
}

func apiInstance(in store.Instance) Instance {
	out := Instance{Service: in.Service, ID: in.ID, Host: in.Host, PID: in.PID, GoVersion: in.GoVersion,
		AgentVersion: in.AgentVersion, Labels: in.Labels, Source: string(in.Source), FirstSeen: in.FirstSeen, LastSeen: in.LastSeen}
	if !in.StartTime.IsZero() {
		t := in.StartTime
		out.StartTime = &t
	}
	return out
}

// parseTime accepts Unix milliseconds, RFC 3339, or a duration meaning
// "that long before now" ("1h", "15m").
func parseTime(v string, now time.Time, def time.Time) (time.Time, error) {
	if v == "" {
		return def, nil
	}
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(strings.TrimPrefix(v, "-")); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, errorf(kindInvalid, "time %q: want Unix milliseconds, RFC 3339 or a duration before now like 1h", trunc(v))
}

func parseLimit(v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxListSize {
		return 0, errorf(kindInvalid, "limit %q: want 1–%d", trunc(v), maxListSize)
	}
	return n, nil
}

func (c *Collector) apiServices(w http.ResponseWriter, r *http.Request) (any, error) {
	svcs, err := c.st.ListServices(r.Context())
	if err != nil {
		return nil, err
	}
	type svc struct {
		Name      string    `json:"name"`
		Instances int       `json:"instances"`
		LastSeen  time.Time `json:"last_seen"`
	}
	out := make([]svc, 0, len(svcs))
	for _, s := range svcs {
		out = append(out, svc{s.Name, s.Instances, s.LastSeen})
	}
	return map[string]any{"services": out}, nil
}

func (c *Collector) apiInstances(w http.ResponseWriter, r *http.Request) (any, error) {
	q := r.URL.Query()
	since, err := parseTime(q.Get("since"), c.now(), time.Time{})
	if err != nil {
		return nil, err
	}
	insts, err := c.st.ListInstances(r.Context(), q.Get("service"), since)
	if err != nil {
		return nil, err
	}
	out := make([]Instance, 0, len(insts))
	for _, in := range insts {
		out = append(out, apiInstance(in))
	}
	return map[string]any{"instances": out}, nil
}

func instanceKey(r *http.Request) store.InstanceKey {
	return store.InstanceKey{Service: r.PathValue("service"), ID: r.PathValue("id")}
}

func (c *Collector) apiInstance(w http.ResponseWriter, r *http.Request) (any, error) {
	key := instanceKey(r)
	in, err := c.st.GetInstance(r.Context(), key)
	if err != nil {
		return nil, err
	}
	names, err := c.st.SeriesNames(r.Context(), key)
	if err != nil {
		return nil, err
	}
	return map[string]any{"instance": apiInstance(in), "series": names}, nil
}

// Point is one point of a series in the API.
type Point struct {
	T     int64    `json:"t"`
	Value float64  `json:"value"`
	Min   *float64 `json:"min,omitempty"`
	Max   *float64 `json:"max,omitempty"`
	Sum   *float64 `json:"sum,omitempty"`
	Count int64    `json:"count,omitempty"`
	// Hist is set for histogram series.
	Hist *Histogram `json:"hist,omitempty"`
}

// Histogram is a cumulative histogram; infinite boundaries are written as
// the strings "-Inf" and "+Inf" since JSON has no infinities.
type Histogram struct {
	Boundaries []any    `json:"boundaries"`
	Counts     []uint64 `json:"counts"`
}

func apiHist(h *store.Histogram) *Histogram {
	if h == nil {
		return nil
	}
	out := &Histogram{Counts: h.Counts, Boundaries: make([]any, len(h.Boundaries))}
	for i, b := range h.Boundaries {
		switch {
		case b > 1.7e308:
			out.Boundaries[i] = "+Inf"
		case b < -1.7e308:
			out.Boundaries[i] = "-Inf"
		default:
			out.Boundaries[i] = b
		}
	}
	return out
}

func (c *Collector) apiSeries(w http.ResponseWriter, r *http.Request) (any, error) {
	q := r.URL.Query()
	name := q.Get("name")
	if name == "" {
		return nil, errorf(kindInvalid, "missing name: the metric, e.g. name=/gc/heap/live:bytes (list them at /api/v1/instances/SERVICE/ID)")
	}
	now := c.now()
	end, err := parseTime(q.Get("end"), now, now)
	if err != nil {
		return nil, err
	}
	start, err := parseTime(q.Get("start"), now, end.Add(-time.Hour))
	if err != nil {
		return nil, err
	}
	if !start.Before(end) {
		return nil, errorf(kindInvalid, "start %s is not before end %s", start.Format(time.RFC3339), end.Format(time.RFC3339))
	}
	var step time.Duration
	if v := q.Get("step"); v != "" {
		if step, err = time.ParseDuration(v); err != nil || step < 0 {
			if ms, err2 := strconv.ParseInt(v, 10, 64); err2 == nil && ms >= 0 {
				step, err = time.Duration(ms)*time.Millisecond, nil
			} else {
				return nil, errorf(kindInvalid, "step %q: want a duration like 1m or milliseconds", trunc(v))
			}
		}
	}
	if step > 0 && end.Sub(start)/step > maxPoints {
		return nil, errorf(kindInvalid, "range / step is %d points, limit %d: raise step", end.Sub(start)/step, maxPoints)
	}
	sq := store.SeriesQuery{Instance: instanceKey(r), Name: name, Start: start.UnixMilli(), End: end.UnixMilli(), Step: step.Milliseconds()}
	if step >= time.Minute && step%time.Minute == 0 {
		// Minute-aligned start lets the store answer from rollups past the
		// raw retention.
		sq.Start -= sq.Start % 60000
	}
	pts, err := c.st.QuerySeries(r.Context(), sq)
	if err != nil {
		return nil, err
	}
	out := make([]Point, len(pts))
	for i, p := range pts {
		out[i] = Point{T: p.T, Value: p.Value, Hist: apiHist(p.Hist)}
		if sq.Step > 0 && p.Hist == nil {
			p := p
			out[i].Min, out[i].Max, out[i].Sum, out[i].Count = &p.Min, &p.Max, &p.Sum, p.Count
		}
	}
	return map[string]any{"name": name, "start": sq.Start, "end": sq.End, "step": sq.Step, "points": out}, nil
}

func (c *Collector) apiGC(w http.ResponseWriter, r *http.Request) (any, error) {
	q := r.URL.Query()
	now := c.now()
	end, err := parseTime(q.Get("end"), now, now)
	if err != nil {
		return nil, err
	}
	start, err := parseTime(q.Get("start"), now, end.Add(-c.cfg.GCWindow))
	if err != nil {
		return nil, err
	}
	key := instanceKey(r)
	if _, err := c.st.GetInstance(r.Context(), key); err != nil {
		return nil, err
	}
	cycles, gaps, err := c.st.GCCycles(r.Context(), key, start.UnixMilli(), end.UnixMilli())
	if err != nil {
		return nil, err
	}
	health, err := c.GCHealthOf(r.Context(), key, end.Sub(start), end)
	if err != nil {
		return nil, err
	}
	type cyc struct {
		Cycle         uint32  `json:"cycle"`
		EndTime       int64   `json:"end_time"`
		PauseNs       int64   `json:"pause_ns"`
		HeapKnown     bool    `json:"heap_known"`
		HeapLiveBytes uint64  `json:"heap_live_bytes,omitempty"`
		HeapGoalBytes uint64  `json:"heap_goal_bytes,omitempty"`
		GCCPUSeconds  float64 `json:"gc_cpu_seconds,omitempty"`
		TotalCPU      float64 `json:"total_cpu_seconds,omitempty"`
		Forced        bool    `json:"forced,omitempty"`
	}
	type gap struct {
		First  uint32 `json:"first_cycle"`
		Last   uint32 `json:"last_cycle"`
		Time   int64  `json:"time"`
		Reason string `json:"reason"`
	}
	oc := make([]cyc, len(cycles))
	for i, x := range cycles {
		oc[i] = cyc{x.Cycle, x.EndTime, x.PauseNs, x.HeapKnown, x.HeapLiveBytes, x.HeapGoalBytes, x.GCCPUSeconds, x.TotalCPUSeconds, x.Forced}
	}
	og := make([]gap, len(gaps))
	for i, x := range gaps {
		og[i] = gap{x.FirstCycle, x.LastCycle, x.Time, x.Reason}
	}
	adv, err := c.GCAdviceOf(r.Context(), key, end.Sub(start), end)
	if err != nil {
		return nil, err
	}
	return map[string]any{"cycles": oc, "gaps": og, "health": health, "advice": adv}, nil
}

func (c *Collector) apiGoroutines(w http.ResponseWriter, r *http.Request) (any, error) {
	q := r.URL.Query()
	limit, err := parseLimit(q.Get("limit"))
	if err != nil {
		return nil, err
	}
	if limit == 0 {
		limit = 10
	}
	now := c.now()
	start, err := parseTime(q.Get("start"), now, now.Add(-24*time.Hour))
	if err != nil {
		return nil, err
	}
	snaps, err := c.st.GoroutineSnapshots(r.Context(), instanceKey(r), start.UnixMilli(), now.UnixMilli()+1, limit)
	if err != nil {
		return nil, err
	}
	type group struct {
		Key    string          `json:"key"`
		State  string          `json:"state"`
		Count  int             `json:"count"`
		Leaked int             `json:"leaked,omitempty"`
		Stack  json.RawMessage `json:"stack,omitempty"`
	}
	type snap struct {
		Time       int64   `json:"time"`
		Source     string  `json:"source"`
		Goroutines int     `json:"goroutines"`
		Groups     []group `json:"groups"`
	}
	out := make([]snap, len(snaps))
	for i, s := range snaps {
		out[i] = snap{Time: s.Time, Source: s.Source, Goroutines: s.Goroutines}
		for _, g := range s.Groups {
			out[i].Groups = append(out[i].Groups, group{g.Key, g.State, g.Count, g.Leaked, json.RawMessage(g.Stack)})
		}
	}
	return map[string]any{"snapshots": out}, nil
}

// fleetRow is one instance of GET /api/v1/fleet.
type fleetRow struct {
	Instance
	// Latest holds the newest values of the names= asked for.
	Latest       map[string]fleetLatest `json:"latest,omitempty"`
	OpenFindings int                    `json:"open_findings"`
	OpenLeaks    int                    `json:"open_leaks"`

	// figuresJSON is the windowed part (fleetFigures, fleetSummary),
	// encoded as a JSON object.
	figuresJSON []byte
	key         store.InstanceKey
}

// fleetFigures is the windowed part of a fleet row.
type fleetFigures struct {
	GC           FleetGC `json:"gc"`
	HeapBytes    float64 `json:"heap_bytes"`
	LimitBytes   float64 `json:"limit_bytes"`
	LimitSource  string  `json:"limit_source,omitempty"`
	HeapFraction float64 `json:"heap_fraction"`
	// Goroutines is the newest count, −1 when unknown.
	Goroutines       float64      `json:"goroutines"`
	GoroutinesSeries [][2]float64 `json:"goroutines_series"`
	// Error says why this instance's figures are unknown.
	Error string `json:"error,omitempty"`
}

// appendFleetJSON appends the fleet answer. A row is its own fields merged
// with its figures, which were encoded when they were computed: the ~60,000
// sparkline numbers of a 1,000-instance fleet are then encoded once per
// refresh instead of once per page load.
func appendFleetJSON(buf []byte, window time.Duration, at time.Time, rows []fleetRow) ([]byte, error) {
	buf = append(buf, `{"window_seconds":`...)
	buf = strconv.AppendFloat(buf, window.Seconds(), 'g', -1, 64)
	buf = append(buf, `,"computed_at":`...)
	buf = strconv.AppendInt(buf, at.UnixMilli(), 10)
	buf = append(buf, `,"instances":[`...)
	for i := range rows {
		if i > 0 {
			buf = append(buf, ',')
		}
		head, err := json.Marshal(&rows[i])
		if err != nil {
			return nil, fmt.Errorf("encode fleet row %s/%s: %w", rows[i].Service, rows[i].ID, err)
		}
		// Both are JSON objects with at least one field: drop the head's
		// closing brace and the figures' opening one.
		buf = append(buf, head[:len(head)-1]...)
		buf = append(buf, ',')
		buf = append(buf, rows[i].figuresJSON[1:]...)
	}
	return append(buf, "]}\n"...), nil
}

type fleetLatest struct {
	T     int64   `json:"t"`
	Value float64 `json:"value"`
}

// fleetSummaryNames are read from the newest values for every row, on top
// of the names the caller asks for.
var fleetSummaryNames = []string{nameGoroutines, nameHeapLive, nameMSHeapAlloc, nameMemLimit, nameCgMemLimit}

func (c *Collector) apiFleet(w http.ResponseWriter, r *http.Request) (any, error) {
	q := r.URL.Query()
	now := c.now()
	since, err := parseTime(q.Get("since"), now, now.Add(-15*time.Minute))
	if err != nil {
		return nil, err
	}
	window := 15 * time.Minute
	if v := q.Get("window"); v != "" {
		if window, err = time.ParseDuration(v); err != nil || window < time.Minute || window > 24*time.Hour {
			return nil, errorf(kindInvalid, "window %q: want a duration from 1m to 24h", trunc(v))
		}
	}
	// The newest values of named metrics only when asked: they cost one
	// store lookup per instance and name, too slow for a fleet page.
	var names []string
	if v := q.Get("names"); v != "" {
		names = strings.Split(v, ",")
		if len(names) > 50 {
			return nil, errorf(kindInvalid, "%d names, limit 50", len(names))
		}
	}
	insts, err := c.st.ListInstances(r.Context(), q.Get("service"), since)
	if err != nil {
		return nil, err
	}
	latest := map[store.InstanceKey]map[string]store.Latest{}
	if len(names) > 0 {
		rows, err := c.st.Fleet(r.Context(), store.FleetQuery{Service: q.Get("service"), Names: names, Since: since.UnixMilli()})
		if err != nil {
			return nil, err
		}
		for _, x := range rows {
			latest[x.Instance.Key()] = x.Latest
		}
	}
	out := make([]fleetRow, len(insts))
	for i, in := range insts {
		out[i] = fleetRow{Instance: apiInstance(in), key: in.Key()}
		if len(names) > 0 {
			out[i].Latest = map[string]fleetLatest{}
			for n, l := range latest[in.Key()] {
				out[i].Latest[n] = fleetLatest{l.T, l.Value}
			}
		}
	}
	at, err := c.fleetSummary(r.Context(), out, window, now)
	if err != nil {
		return nil, err
	}
	body, err := appendFleetJSON(make([]byte, 0, 512*len(out)+64), window, at, out)
	if err != nil {
		return nil, err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(body)
	return nil, nil
}

// Finding is a finding as the API returns it.
type Finding struct {
	ID         int64           `json:"id"`
	Service    string          `json:"service"`
	Instance   string          `json:"instance"`
	Kind       string          `json:"kind"`
	Key        string          `json:"key"`
	Severity   string          `json:"severity"`
	Title      string          `json:"title"`
	Summary    string          `json:"summary"`
	Details    json.RawMessage `json:"details,omitempty"`
	BundleIDs  []string        `json:"bundle_ids,omitempty"`
	State      string          `json:"state"`
	OpenedAt   time.Time       `json:"opened_at"`
	LastSeen   time.Time       `json:"last_seen"`
	ResolvedAt *time.Time      `json:"resolved_at,omitempty"`
	History    []FindingEvent  `json:"history,omitempty"`
}

// FindingEvent is one lifecycle change of a finding.
type FindingEvent struct {
	At    time.Time `json:"at"`
	State string    `json:"state"`
	Note  string    `json:"note,omitempty"`
}

func apiFinding(f store.Finding) Finding {
	out := Finding{ID: f.ID, Service: f.Instance.Service, Instance: f.Instance.ID, Kind: f.Kind, Key: f.Key, Severity: f.Severity,
		Title: f.Title, Summary: f.Summary, BundleIDs: f.BundleIDs, State: string(f.State), OpenedAt: f.OpenedAt, LastSeen: f.LastSeen}
	if json.Valid(f.Details) {
		out.Details = f.Details
	}
	if !f.ResolvedAt.IsZero() {
		t := f.ResolvedAt
		out.ResolvedAt = &t
	}
	for _, e := range f.History {
		out.History = append(out.History, FindingEvent{e.At, string(e.State), e.Note})
	}
	return out
}

func (c *Collector) apiFindings(w http.ResponseWriter, r *http.Request) (any, error) {
	q := r.URL.Query()
	limit, err := parseLimit(q.Get("limit"))
	if err != nil {
		return nil, err
	}
	st := store.FindingState(q.Get("state"))
	if st != "" && st != store.FindingOpen && st != store.FindingResolved {
		return nil, errorf(kindInvalid, "state %q: want open or resolved", trunc(string(st)))
	}
	if q.Get("instance") != "" && q.Get("service") == "" {
		return nil, errorf(kindInvalid, "instance= needs service=")
	}
	fs, err := c.st.ListFindings(r.Context(), store.FindingFilter{Service: q.Get("service"), Instance: q.Get("instance"), Kind: q.Get("kind"), State: st, Limit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]Finding, len(fs))
	for i, f := range fs {
		out[i] = apiFinding(f)
	}
	return map[string]any{"findings": out}, nil
}

func (c *Collector) apiFinding(w http.ResponseWriter, r *http.Request) (any, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return nil, errorf(kindInvalid, "finding ID %q is not a number", trunc(r.PathValue("id")))
	}
	f, err := c.st.GetFinding(r.Context(), id)
	if err != nil {
		return nil, err
	}
	return apiFinding(f), nil
}

// Bundle is a bundle's metadata as the API returns it.
type Bundle struct {
	ID                string            `json:"id"`
	Service           string            `json:"service"`
	Instance          string            `json:"instance"`
	Rule              string            `json:"rule"`
	Reason            string            `json:"reason,omitempty"`
	FiredAt           time.Time         `json:"fired_at"`
	ReceivedAt        time.Time         `json:"received_at"`
	Values            []store.RuleValue `json:"values,omitempty"`
	Notes             []string          `json:"notes,omitempty"`
	CaptureSTWSeconds float64           `json:"capture_stw_seconds,omitempty"`
	Files             []BundleFile      `json:"files"`
	Size              int64             `json:"size"`
}

// BundleFile is one file of a bundle; URL fetches it.
type BundleFile struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	Note        string `json:"note,omitempty"`
	URL         string `json:"url"`
}

func apiBundle(b store.Bundle) Bundle {
	out := Bundle{ID: b.ID, Service: b.Instance.Service, Instance: b.Instance.ID, Rule: b.Rule, Reason: b.Reason, FiredAt: b.FiredAt,
		ReceivedAt: b.ReceivedAt, Values: b.Values, Notes: b.Notes, CaptureSTWSeconds: b.CaptureSTWSeconds, Size: b.Size, Files: []BundleFile{}}
	for _, f := range b.Files {
		out.Files = append(out.Files, BundleFile{Name: f.Name, ContentType: f.ContentType, Size: f.Size,
			SHA256: fmt.Sprintf("%x", f.SHA256), Note: f.Note, URL: "/api/v1/bundles/" + b.ID + "/" + f.Name})
	}
	return out
}

func (c *Collector) apiBundles(w http.ResponseWriter, r *http.Request) (any, error) {
	q := r.URL.Query()
	limit, err := parseLimit(q.Get("limit"))
	if err != nil {
		return nil, err
	}
	since, err := parseTime(q.Get("since"), c.now(), time.Time{})
	if err != nil {
		return nil, err
	}
	if q.Get("instance") != "" && q.Get("service") == "" {
		return nil, errorf(kindInvalid, "instance= needs service=")
	}
	bs, err := c.st.ListBundles(r.Context(), store.BundleFilter{Service: q.Get("service"), Instance: q.Get("instance"), Since: since, Limit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]Bundle, len(bs))
	for i, b := range bs {
		out[i] = apiBundle(b)
	}
	return map[string]any{"bundles": out}, nil
}

func (c *Collector) apiBundle(w http.ResponseWriter, r *http.Request) (any, error) {
	b, err := c.st.GetBundle(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return apiBundle(b), nil
}

// apiBundleFile streams one file. The name may omit its extension
// ("heap" for "heap.pb.gz"), so `go tool pprof URL/heap` reads naturally.
func (c *Collector) apiBundleFile(w http.ResponseWriter, r *http.Request) (any, error) {
	id, name := r.PathValue("id"), r.PathValue("file")
	b, err := c.st.GetBundle(r.Context(), id)
	if err != nil {
		return nil, err
	}
	found := ""
	for _, f := range b.Files {
		if f.Name == name {
			found = f.Name
			break
		}
		if base, _, ok := strings.Cut(f.Name, "."); ok && base == name && found == "" {
			found = f.Name
		}
	}
	if found == "" {
		return nil, errorf(kindNotFound, "bundle %s has no file %q", id, trunc(name))
	}
	rc, f, err := c.st.OpenBundleFile(r.Context(), id, found)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	ct := f.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.FormatInt(f.Size, 10))
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", path.Base(b.ID+"-"+f.Name)))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	io.Copy(w, rc)
	return nil, nil
}
