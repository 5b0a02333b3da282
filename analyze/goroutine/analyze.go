package goroutine

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Thresholds of the verdicts. They are deliberately conservative: a leak
// verdict fails CI runs and pages people, so it needs growth that a healthy
// program does not show, or proof.
const (
	// defaultMinGrowth is the smallest net growth over the window that can
	// convict: below it, a pool that admitted one more worker looks the same
	// as a leak.
	defaultMinGrowth = 3
	// retainLeak is the share of an early snapshot's goroutines that must
	// still be in the group, same ID, at the end: leaked goroutines never
	// leave. It is well below 1 because a leaking line often also hosts
	// short, legitimate waits (the same send that sometimes succeeds).
	retainLeak = 0.6
	// retainSuspect is the share below which growth is mere turnover.
	retainSuspect = 0.3
	// cohortMin is the smallest group whose retention is meaningful.
	cohortMin = 4
	// steadyR2 is the fit a growth must reach to convict: leaks accumulate
	// at the rate of the code path that leaks, while a burst (0, 0, 1, 16)
	// or a pool filling up fits a line badly.
	steadyR2 = 0.75
)

// Analyze follows the groups of a sequence of snapshots of one process (in
// time order) and gives each a verdict with its evidence. A single snapshot
// convicts only on proof (a nil channel, select with no cases outside main, the
// runtime's leak profile); growth needs at least two snapshots.
func Analyze(snaps []*Snapshot, opts AnalyzeOptions) *Report {
	rep := &Report{Snapshots: len(snaps)}
	if len(snaps) == 0 {
		return rep
	}
	for i, s := range snaps {
		rep.Goroutines = append(rep.Goroutines, s.Goroutines)
		if s.Truncated {
			rep.Notes = append(rep.Notes, fmt.Sprintf("snapshot %d is truncated: %s", i+1, s.TruncatedReason))
		}
	}
	times := snapshotMinutes(snaps)
	if times != nil {
		rep.Window = snaps[len(snaps)-1].Time.Sub(snaps[0].Time)
	}

	tracks := buildTracks(snaps)
	leakSites := leakProfileSites(opts.LeakProfile)
	traceSites := traceSiteStats(opts.Trace)
	for _, t := range tracks {
		gr := t.judge(times, rep.Window, opts, leakSites, traceSites)
		rep.Groups = append(rep.Groups, gr)
	}
	if opts.OS != nil {
		rep.Notes = append(rep.Notes, osNotes(opts.OS)...)
	}
	if opts.LeakProfile != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the runtime's goroutine leak profile reported %d unreachable goroutines", opts.LeakProfile.Goroutines))
	}
	sort.SliceStable(rep.Groups, func(i, j int) bool {
		a, b := rep.Groups[i], rep.Groups[j]
		if ra, rb := verdictRank(a.Verdict), verdictRank(b.Verdict); ra != rb {
			return ra < rb
		}
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Key < b.Key
	})
	return rep
}

func verdictRank(v Verdict) int {
	switch v {
	case VerdictLeak:
		return 0
	case VerdictSuspect:
		return 1
	}
	return 2
}

// snapshotMinutes returns each snapshot's time in minutes since the first, or
// nil when any time is missing or they are out of order.
func snapshotMinutes(snaps []*Snapshot) []float64 {
	out := make([]float64, len(snaps))
	for i, s := range snaps {
		if s.Time.IsZero() || (i > 0 && !s.Time.After(snaps[i-1].Time)) {
			return nil
		}
		out[i] = s.Time.Sub(snaps[0].Time).Minutes()
	}
	return out
}

// track is one group followed across snapshots.
type track struct {
	key    string
	groups []*Group // per snapshot, nil where absent
	counts []int
	hasIDs bool
}

// buildTracks matches groups across snapshots. Within one format the group
// Key is exact; when formats differ (a protobuf profile beside a debug=2
// dump) the key falls back to the state and the frames outside the runtime,
// which both formats print alike.
func buildTracks(snaps []*Snapshot) []*track {
	mixed := false
	for _, s := range snaps[1:] {
		if s.Format != snaps[0].Format {
			mixed = true
		}
	}
	byKey := map[string]*track{}
	var order []*track
	for i, s := range snaps {
		for _, g := range s.Groups {
			k := g.Key
			if mixed {
				k = g.State + "|" + siteKey(g.Frames)
			}
			t := byKey[k]
			if t == nil {
				t = &track{key: k, groups: make([]*Group, len(snaps)), counts: make([]int, len(snaps))}
				byKey[k] = t
				order = append(order, t)
			}
			if t.groups[i] != nil {
				// Two groups of one snapshot fell on one mixed key: merge
				// counts, keep the larger as representative.
				t.counts[i] += g.Count
				if g.Count > t.groups[i].Count {
					t.groups[i] = g
				}
				continue
			}
			t.groups[i] = g
			t.counts[i] = g.Count
			if s.Format == FormatText {
				t.hasIDs = true
			}
		}
	}
	return order
}

// latest returns the group as last seen.
func (t *track) latest() *Group {
	for i := len(t.groups) - 1; i >= 0; i-- {
		if t.groups[i] != nil {
			return t.groups[i]
		}
	}
	return nil
}

// retention follows the goroutines of the earliest snapshot in which the
// group has at least cohortMin members (or any, if it never has) and returns
// how many of them are still in the group, by ID, in the last snapshot, and
// out of how many; from is that snapshot's index. ok is false without IDs or
// when the group is absent at the end or only appears there.
func (t *track) retention() (kept, of, from int, ok bool) {
	n := len(t.groups)
	if !t.hasIDs || n < 2 || t.groups[n-1] == nil {
		return 0, 0, 0, false
	}
	from = -1
	for i := 0; i < n-1; i++ {
		if g := t.groups[i]; g != nil && len(g.IDs) >= cohortMin {
			from = i
			break
		}
	}
	if from < 0 {
		for i := 0; i < n-1; i++ {
			if g := t.groups[i]; g != nil && len(g.IDs) > 0 {
				from = i
				break
			}
		}
	}
	if from < 0 {
		return 0, 0, 0, false
	}
	first := t.groups[from].IDs
	return countCommon(first, t.groups[n-1].IDs), len(first), from, true
}

// stuck counts the IDs present in the group in every snapshot; -1 without IDs.
func (t *track) stuck() int {
	if !t.hasIDs {
		return -1
	}
	var common []int64
	for i, g := range t.groups {
		if g == nil {
			return 0
		}
		if i == 0 {
			common = append([]int64(nil), g.IDs...)
			continue
		}
		common = intersect(common, g.IDs)
	}
	return len(common)
}

// countCommon counts values present in both ascending slices.
func countCommon(a, b []int64) int {
	n, i, j := 0, 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] == b[j]:
			n++
			i++
			j++
		case a[i] < b[j]:
			i++
		default:
			j++
		}
	}
	return n
}

func intersect(a, b []int64) []int64 {
	out := a[:0]
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] == b[j]:
			out = append(out, a[i])
			i++
			j++
		case a[i] < b[j]:
			i++
		default:
			j++
		}
	}
	return out
}

// fit returns the least-squares slope of ys over xs and its r². With a flat
// series r² is 0 by convention.
func fit(xs []float64, ys []int) (slope, r2 float64) {
	n := float64(len(xs))
	if len(xs) < 2 {
		return 0, 0
	}
	var sx, sy, sxx, sxy, syy float64
	for i, x := range xs {
		y := float64(ys[i])
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
		syy += y * y
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0, 0
	}
	slope = (n*sxy - sx*sy) / den
	vy := n*syy - sy*sy
	if vy <= 0 {
		return slope, 0
	}
	r := (n*sxy - sx*sy) / math.Sqrt(den*vy)
	return slope, r * r
}

// shape summarises how a count series moved.
type shape struct {
	delta    int // last − first
	rises    int // steps that went up
	falls    int // total of the downward steps
	max      int
	monotone bool // never fell by more than a tenth of its peak
}

func shapeOf(c []int) shape {
	s := shape{delta: c[len(c)-1] - c[0]}
	for i, v := range c {
		if v > s.max {
			s.max = v
		}
		if i == 0 {
			continue
		}
		switch d := v - c[i-1]; {
		case d > 0:
			s.rises++
		case d < 0:
			s.falls -= d
		}
	}
	s.monotone = s.falls*10 <= s.max
	return s
}

// judge decides one track's verdict.
func (t *track) judge(times []float64, window time.Duration, opts AnalyzeOptions, leakSites map[string]int, traceSites map[string]traceStat) *GroupReport {
	g := t.latest()
	gr := &GroupReport{Group: g, Counts: t.counts, Stuck: t.stuck(), Verdict: VerdictOK}
	gr.Blocking, _ = BlockingFrame(g.Frames)
	n := len(t.counts)
	xs := times
	if xs == nil {
		xs = make([]float64, n)
		for i := range xs {
			xs[i] = float64(i)
		}
	}
	slope, r2 := fit(xs, t.counts)
	if times != nil {
		gr.GrowthPerMinute, gr.R2 = slope, r2
	}
	sh := shapeOf(t.counts)
	site := siteKey(g.Frames)

	var proof []string
	var support []string
	leak, suspect := false, false

	// Proof from a single snapshot: waits that nothing can ever end.
	switch {
	case strings.Contains(g.State, "nil chan"):
		proof = append(proof, fmt.Sprintf("blocked on a nil channel (%s): nothing can ever wake it", g.State))
	case strings.HasPrefix(g.State, "select (no cases)") && g.CreatedBy.Func != "":
		proof = append(proof, "blocked in select {} outside main: nothing can ever wake it")
	}
	if g.Leaked > 0 {
		proof = append(proof, fmt.Sprintf("the runtime marked %d of these goroutines \"(leaked)\" in the dump: its leak detector found them unreachable from any runnable goroutine", g.Leaked))
	}
	if k, ok := leakSites[site]; ok && site != "" {
		proof = append(proof, fmt.Sprintf("the runtime's goroutine leak profile reports %d goroutines here as unreachable from any runnable goroutine", k))
	}
	if len(proof) > 0 {
		leak = true
	}

	// Growth across the window.
	grew := ""
	if n >= 2 && sh.delta > 0 {
		grew = growthSentence(t.counts, window, gr.GrowthPerMinute, gr.R2, times != nil)
	}
	minGrowth := opts.MinGrowth
	if minGrowth <= 0 {
		minGrowth = defaultMinGrowth
	}
	kept, of, from, hasRetention := t.retention()
	retain := -1.0
	if hasRetention && of > 0 {
		retain = float64(kept) / float64(of)
	}
	// Goroutines that are running or runnable are making progress, whatever
	// their number: a busy group is load, not a leak.
	progressing := g.State == "running" || g.State == "runnable" || strings.HasPrefix(g.State, "running")
	// A pool that grew to its cap grows fast and then stops; a leak keeps
	// growing. Compare the growth of the second half of the window with
	// the first.
	mid := (n - 1) / 2
	firstHalf, secondHalf := t.counts[mid]-t.counts[0], t.counts[n-1]-t.counts[mid]
	stopped := firstHalf >= minGrowth && secondHalf*4 < firstHalf
	retains := retain < 0 || retain >= retainLeak
	growing := n >= 3 && sh.delta >= minGrowth && sh.rises >= 2 && sh.monotone
	steady := r2 >= steadyR2
	switch {
	case growing && retains && !progressing && !stopped && steady:
		leak = true
		support = append(support, grew)
	case n >= 2 && sh.delta >= 2 && sh.falls*4 <= sh.max && (retain < 0 || retain >= retainSuspect) && (n == 2 || sh.rises >= 2 || sh.delta >= minGrowth):
		suspect = true
		support = append(support, grew)
		switch {
		case progressing:
			support = append(support, "but its goroutines are "+g.State+": busy, not blocked")
		case stopped:
			support = append(support, fmt.Sprintf("but the growth stopped (%+d, then %+d): a pool reaching its size?", firstHalf, secondHalf))
		case !sh.monotone:
			support = append(support, fmt.Sprintf("but it also shrank by %d along the way", sh.falls))
		case !steady && n >= 3:
			support = append(support, fmt.Sprintf("but irregularly (a straight line fits with r²=%.2f only): a burst?", r2))
		case retain >= 0 && retain < retainLeak:
			support = append(support, fmt.Sprintf("but only %d of the %d goroutines of snapshot %d were still here at the end", kept, of, from+1))
		case n == 2:
			support = append(support, "from only two snapshots; take more to confirm")
		default:
			support = append(support, "but too little to be sure")
		}
	}

	// Who stays: leaked goroutines never leave their blocking point.
	if hasRetention && (leak || suspect) && !(retain >= 0 && retain < retainLeak) {
		if kept == of {
			support = append(support, fmt.Sprintf("all %d goroutines here in snapshot %d were still blocked here at the end%s (by goroutine ID)", of, from+1, windowWords(window)))
		} else {
			support = append(support, fmt.Sprintf("%d of the %d goroutines here in snapshot %d were still blocked here at the end%s (by goroutine ID)", kept, of, from+1, windowWords(window)))
		}
	} else if hasRetention && !leak && !suspect && of > 0 && kept == 0 && sh.max > 0 {
		support = append(support, "its goroutines turn over: none stayed for the whole window")
	}

	// Time blocked, as the runtime printed it (from one minute on).
	if g.WaitKnown > 0 {
		support = append(support, waitSentence(g))
		if !leak && !suspect && n >= 1 && stuckLongOnPartner(g) {
			suspect = true
			support = append(support, "a send or lock that waits this long usually has lost its partner")
		}
	}

	// The execution trace of the window.
	if opts.Trace != nil {
		if s := traceSentence(t, g, opts.Trace, traceSites[site]); s != "" {
			support = append(support, s)
		}
	}
	if opts.OS != nil {
		if s := osSentence(g, opts.OS); s != "" {
			support = append(support, s)
		}
	}

	// Where it waits and who started it.
	where := fmt.Sprintf("blocked in %s (%s:%d)", gr.Blocking.Func, ShortPath(gr.Blocking.File), gr.Blocking.Line)
	if gr.Blocking.Func == "" {
		where = fmt.Sprintf("%s, no stack recorded", orDash(g.State))
	} else if g.State != "" {
		where = fmt.Sprintf("blocked at %s in %s (%s:%d)", g.State, gr.Blocking.Func, ShortPath(gr.Blocking.File), gr.Blocking.Line)
	}
	if g.CreatedBy.Func != "" {
		where += fmt.Sprintf("; created by %s (%s:%d)", g.CreatedBy.Func, ShortPath(g.CreatedBy.File), g.CreatedBy.Line)
	}

	if leak || suspect {
		if h := hintFor(g.Frames); h != "" && IsStdlib(gr.Blocking.Func) {
			where += "; " + h
		}
	}
	switch {
	case leak:
		gr.Verdict = VerdictLeak
	case suspect:
		gr.Verdict = VerdictSuspect
	default:
		support = append(support, okSentence(t.counts, n, sh))
	}
	gr.Evidence = append(gr.Evidence, proof...)
	for _, s := range support {
		if s != "" {
			gr.Evidence = append(gr.Evidence, s)
		}
	}
	gr.Evidence = append(gr.Evidence, where)
	return gr
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func windowWords(w time.Duration) string {
	if w <= 0 {
		return ""
	}
	return " (" + roundDuration(w).String() + ")"
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

func growthSentence(c []int, window time.Duration, perMin, r2 float64, timed bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "grew %d → %d", c[0], c[len(c)-1])
	if timed {
		fmt.Fprintf(&b, " in %s (%+.1f/min, r²=%.2f)", roundDuration(window), perMin, r2)
	} else {
		fmt.Fprintf(&b, " over %d snapshots", len(c))
	}
	if len(c) > 2 {
		parts := make([]string, len(c))
		for i, v := range c {
			parts[i] = fmt.Sprint(v)
		}
		fmt.Fprintf(&b, ": %s", strings.Join(parts, ", "))
	}
	return b.String()
}

func okSentence(c []int, n int, sh shape) string {
	switch {
	case n == 1:
		return "one snapshot: no growth to judge; take several (--samples) to see a trend"
	case sh.delta <= 0 && sh.falls == 0:
		return fmt.Sprintf("steady at %d across %d snapshots", c[n-1], n)
	case sh.delta <= 0:
		return fmt.Sprintf("went up and down (%s) without net growth", joinInts(c))
	}
	return fmt.Sprintf("changed %s: not the steady growth of a leak", joinInts(c))
}

func joinInts(c []int) string {
	parts := make([]string, len(c))
	for i, v := range c {
		parts[i] = fmt.Sprint(v)
	}
	return strings.Join(parts, ", ")
}

func waitSentence(g *Group) string {
	if g.WaitMin == g.WaitMax {
		return fmt.Sprintf("%d of %d blocked for %s (runtime-reported)", g.WaitKnown, g.Count, waitWords(g.WaitMax))
	}
	return fmt.Sprintf("%d of %d blocked for %s to %s (runtime-reported)", g.WaitKnown, g.Count, waitWords(g.WaitMin), waitWords(g.WaitMax))
}

func waitWords(d time.Duration) string {
	m := int(d / time.Minute)
	if m == 1 {
		return "1 minute"
	}
	return fmt.Sprintf("%d minutes", m)
}

// stuckLongOnPartner flags waits that healthy programs rarely show: several
// goroutines sending on a channel, or waiting for a lock or a WaitGroup, for
// minutes. Receivers are left out on purpose: idle workers receive for hours.
func stuckLongOnPartner(g *Group) bool {
	if g.WaitKnown < 5 || g.WaitMax < 5*time.Minute {
		return false
	}
	s := g.State
	return strings.HasPrefix(s, "chan send") || strings.HasPrefix(s, "sync.Mutex.Lock") ||
		strings.HasPrefix(s, "sync.RWMutex") || strings.HasPrefix(s, "sync.WaitGroup.Wait") ||
		strings.HasPrefix(s, "semacquire")
}

// leakProfileSites indexes the runtime's goroutineleak profile by site.
func leakProfileSites(p *Snapshot) map[string]int {
	if p == nil {
		return nil
	}
	m := map[string]int{}
	for _, g := range p.Groups {
		if k := siteKey(g.Frames); k != "" {
			m[k] += g.Count
		}
	}
	return m
}

type traceStat struct{ ran, idle int }

// traceSiteStats counts, by site, the traced goroutines that ran and those
// that did not: the join for formats without goroutine IDs.
func traceSiteStats(tv *TraceView) map[string]traceStat {
	if tv == nil {
		return nil
	}
	m := map[string]traceStat{}
	for _, tg := range tv.Goroutines {
		if len(tg.Frames) == 0 || tg.Created {
			continue
		}
		k := siteKey(tg.Frames)
		s := m[k]
		if tg.Ran {
			s.ran++
		} else {
			s.idle++
		}
		m[k] = s
	}
	return m
}

func traceSentence(t *track, g *Group, tv *TraceView, bySite traceStat) string {
	window := ""
	if tv.Window > 0 {
		window = " " + roundDuration(tv.Window).String()
	}
	if t.hasIDs && len(g.IDs) > 0 {
		// Only goroutines that already existed when the trace began say
		// anything: one started inside the window ran before it blocked.
		seen, ran := 0, 0
		for _, id := range g.IDs {
			if tg, ok := tv.Goroutines[id]; ok && !tg.Created {
				seen++
				if tg.Ran {
					ran++
				}
			}
		}
		if seen == 0 {
			return ""
		}
		if ran == 0 {
			return fmt.Sprintf("none of the %d that existed when the%s execution trace began ran during it", seen, window)
		}
		return fmt.Sprintf("%d of the %d that existed when the%s execution trace began ran during it: not all are stuck", ran, seen, window)
	}
	if bySite.ran+bySite.idle == 0 {
		return ""
	}
	if bySite.ran == 0 {
		return fmt.Sprintf("none of the %d goroutines the%s execution trace saw waiting at this site ran during it", bySite.idle, window)
	}
	return fmt.Sprintf("%d of the %d goroutines the%s execution trace saw at this site ran during it", bySite.ran, bySite.ran+bySite.idle, window)
}

// osSentence links a group blocked in network code to the sockets the
// process holds: goroutines parked on connections whose peers have closed
// show up as CLOSE_WAIT sockets nobody closes.
func osSentence(g *Group, osv *OSView) string {
	if !touchesNetwork(g.Frames) {
		return ""
	}
	cw := osv.TCP["CLOSE_WAIT"]
	if cw >= 3 && near(cw, g.Count) {
		return fmt.Sprintf("the process holds %d CLOSE_WAIT sockets (peer closed, never closed here): matches these %d goroutines", cw, g.Count)
	}
	est := osv.TCP["ESTABLISHED"]
	if est >= 3 && near(est, g.Count) {
		return fmt.Sprintf("the process holds %d ESTABLISHED TCP sockets: about one per goroutine here", est)
	}
	return ""
}

func near(a, b int) bool {
	d := a - b
	if d < 0 {
		d = -d
	}
	m := max(a, b)
	return d <= 2 || float64(d) <= 0.1*float64(m)
}

func touchesNetwork(frames []Frame) bool {
	for _, f := range frames {
		p := PackagePath(f.Func)
		if p == "net" || p == "net/http" || p == "internal/poll" || p == "crypto/tls" || strings.Contains(p, "/http2") {
			return true
		}
	}
	return false
}

func osNotes(o *OSView) []string {
	var notes []string
	if o.FDLimit > 0 {
		pct := 100 * float64(o.FDs) / float64(o.FDLimit)
		s := fmt.Sprintf("pid %d: %d open file descriptors of a limit of %d (%.0f%%)", o.PID, o.FDs, o.FDLimit, pct)
		if pct >= 80 {
			s += ": close to the limit"
		}
		notes = append(notes, s)
	} else {
		notes = append(notes, fmt.Sprintf("pid %d: %d open file descriptors", o.PID, o.FDs))
	}
	if o.Threads > 0 {
		notes = append(notes, fmt.Sprintf("pid %d: %d OS threads", o.PID, o.Threads))
	}
	if len(o.TCP) > 0 {
		states := make([]string, 0, len(o.TCP))
		for s := range o.TCP {
			states = append(states, s)
		}
		sort.Slice(states, func(i, j int) bool {
			return o.TCP[states[i]] > o.TCP[states[j]] || (o.TCP[states[i]] == o.TCP[states[j]] && states[i] < states[j])
		})
		parts := make([]string, len(states))
		for i, s := range states {
			parts[i] = fmt.Sprintf("%d %s", o.TCP[s], s)
		}
		notes = append(notes, fmt.Sprintf("pid %d: TCP sockets: %s", o.PID, strings.Join(parts, ", ")))
	}
	return notes
}
