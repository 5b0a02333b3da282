package gc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"
)

// MemStats is the part of runtime.MemStats that /debug/vars publishes and
// the analysis uses (same JSON names).
type MemStats struct {
	TotalAlloc    uint64
	Sys           uint64
	HeapAlloc     uint64
	HeapSys       uint64
	HeapIdle      uint64
	HeapInuse     uint64
	HeapReleased  uint64
	StackInuse    uint64
	NextGC        uint64
	LastGC        uint64
	PauseTotalNs  uint64
	PauseNs       [256]uint64
	PauseEnd      [256]uint64
	NumGC         uint32
	NumForcedGC   uint32
	GCCPUFraction float64
	EnableGC      bool
}

// VarsSnapshot is one read of /debug/vars.
type VarsSnapshot struct {
	Time     time.Time
	Cmdline  []string
	MemStats MemStats
}

// ErrNoMemStats: the /debug/vars document has no "memstats" object.
var ErrNoMemStats = errors.New(`no "memstats" in /debug/vars (does the program import expvar, and not replace its handler?)`)

// ParseVars decodes a /debug/vars JSON document taken at time t. Other
// published variables are ignored.
func ParseVars(r io.Reader, t time.Time) (VarsSnapshot, error) {
	var doc struct {
		Cmdline  []string        `json:"cmdline"`
		MemStats json.RawMessage `json:"memstats"`
	}
	if err := json.NewDecoder(io.LimitReader(r, 64<<20)).Decode(&doc); err != nil {
		return VarsSnapshot{}, fmt.Errorf("decode /debug/vars: %w", err)
	}
	if len(doc.MemStats) == 0 || string(doc.MemStats) == "null" {
		return VarsSnapshot{}, ErrNoMemStats
	}
	s := VarsSnapshot{Time: t, Cmdline: doc.Cmdline}
	if err := json.Unmarshal(doc.MemStats, &s.MemStats); err != nil {
		return VarsSnapshot{}, fmt.Errorf("decode /debug/vars memstats: %w", err)
	}
	if s.MemStats.NextGC == 0 && s.MemStats.HeapSys == 0 {
		return VarsSnapshot{}, fmt.Errorf("decode /debug/vars memstats: all heap fields are zero: %w", ErrNoMemStats)
	}
	return s, nil
}

// ringCycles returns the cycles recorded in the PauseNs/PauseEnd ring of
// one snapshot with numbers in (after, NumGC], oldest first. The ring
// holds the last 256 cycles: PauseNs[(N+255)%256] is cycle N's pause.
func ringCycles(m *MemStats, after uint32) []Cycle {
	n := m.NumGC
	if after >= n {
		return nil
	}
	lo := after + 1
	if n >= 256 && lo < n-255 {
		lo = n - 255
	}
	if lo == 0 {
		lo = 1
	}
	var out []Cycle
	for k := lo; k <= n && k >= lo; k++ {
		i := (k + 255) % 256
		c := Cycle{N: int64(k), Pause: time.Duration(m.PauseNs[i])}
		if m.PauseEnd[i] != 0 {
			c.End = time.Unix(0, int64(m.PauseEnd[i]))
		}
		out = append(out, c)
	}
	return out
}

// FromMemStats turns /debug/vars snapshots into Data. One snapshot gives
// the exact pauses and end times of the last 256 cycles (so cycles/s over
// them) and the process-lifetime GC CPU fraction; two or more add the
// allocation rate and every cycle in between (pauses of cycles that fell
// out of the 256-entry ring between snapshots are lost and the result is
// marked partial). memstats has no live-heap figure: it is estimated from
// the heap goal and GOGC (given, or the default 100).
func FromMemStats(snaps []VarsSnapshot, set Settings) (*Data, error) {
	if len(snaps) == 0 {
		return nil, ErrNoMemStats
	}
	ss := append([]VarsSnapshot(nil), snaps...)
	sort.SliceStable(ss, func(i, j int) bool { return ss[i].Time.Before(ss[j].Time) })
	d := &Data{Source: "memstats", Settings: set, LimiterEngagements: -1}
	first, last := ss[0], ss[len(ss)-1]
	// Cycles from the ring of each snapshot, without repeats.
	var prevN uint32
	for i, s := range ss {
		if s.MemStats.NumGC < prevN {
			return nil, fmt.Errorf("memstats snapshot %d: NumGC went from %d to %d (the process restarted?)", i+1, prevN, s.MemStats.NumGC)
		}
		after := prevN
		if i == 0 {
			after = 0
		} else if s.MemStats.NumGC-prevN > 256 {
			d.Partial = true
			d.note("%d cycles between snapshots %d and %d exceed memstats' 256-entry pause ring; their pauses are lost (sample more often)", s.MemStats.NumGC-prevN-256, i, i+1)
		}
		d.Cycles = append(d.Cycles, ringCycles(&s.MemStats, after)...)
		prevN = s.MemStats.NumGC
	}
	m := last.MemStats
	if len(d.Cycles) >= 2 {
		a, b := d.Cycles[0], d.Cycles[len(d.Cycles)-1]
		if !a.End.IsZero() && b.End.After(a.End) {
			d.Window = b.End.Sub(a.End)
			d.NumCycles = len(d.Cycles) - 1
		}
	}
	if len(ss) >= 2 && last.Time.After(first.Time) {
		w := last.Time.Sub(first.Time)
		if d.Window == 0 || m.NumGC-first.MemStats.NumGC >= 2 {
			d.Window = w
			d.NumCycles = int(m.NumGC - first.MemStats.NumGC)
			d.ForcedCycles = int(m.NumForcedGC - first.MemStats.NumForcedGC)
		}
		d.AllocBytes = float64(m.TotalAlloc - first.MemStats.TotalAlloc)
		if d.Window != w {
			d.AllocBytes *= float64(d.Window) / float64(w)
		}
	} else {
		d.Unknown = append(d.Unknown, "alloc_bytes_per_second")
		d.note("one /debug/vars snapshot: allocation rate needs two")
	}
	if d.Window == 0 {
		d.Partial = true
		d.Unknown = append(d.Unknown, "cycles_per_second")
		d.note("fewer than two GC cycles seen: no cycle rate")
	}
	d.CPUFractionSinceStart = m.GCCPUFraction
	d.note("GC CPU fraction is memstats' GCCPUFraction: the whole process life, idle-priority marking excluded")
	d.Unknown = append(d.Unknown, "assist_fraction", "limiter_engagements", "gomemlimit_bytes")
	d.HeapGoal = m.NextGC
	d.PeakHeap = m.HeapAlloc
	for _, s := range ss {
		d.PeakHeap = max(d.PeakHeap, s.MemStats.HeapAlloc)
	}
	d.RuntimeBytes = m.Sys - m.HeapReleased
	d.GOGCSource, d.MemLimitSource = "given", "given"
	g := 100
	if set.GOGCKnown && set.GOGC > 0 {
		g = set.GOGC
	} else {
		d.Settings.GOGC, d.Settings.GOGCKnown = 100, true
		d.GOGCSource = "assumed (the default; memstats does not show it)"
	}
	// goal = live×(1+GOGC/100) unless the memory limit lowered it.
	d.LiveHeap = uint64(float64(m.NextGC) / (1 + float64(g)/100))
	d.note("live heap estimated as heap goal ÷ (1+GOGC/100) = %s", fmtBytes(float64(d.LiveHeap)))
	if !set.MemLimitKnown {
		d.MemLimitSource = "unknown (memstats does not show it)"
	}
	return d, nil
}
