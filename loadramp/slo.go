package loadramp

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SLO is what a step must meet to count as sustained. Latency objectives
// apply to the coordinated-omission-corrected latency.
type SLO struct {
	// Latency maps a quantile (0.99) to its bound.
	Latency map[float64]time.Duration
	// MaxErrorRate is the largest tolerated share of failed requests
	// (errors of every kind plus dropped sends), e.g. 0.001. Negative
	// means unchecked.
	MaxErrorRate float64
}

// DefaultSLO is p99 < 100 ms and errors < 0.1%.
func DefaultSLO() SLO {
	return SLO{Latency: map[float64]time.Duration{0.99: 100 * time.Millisecond}, MaxErrorRate: 0.001}
}

// ParseSLO parses "p99<50ms,p50<10ms,errors<0.1%". Quantiles are p50,
// p90, p99, p99.9 (any pNN[.N]); durations use Go syntax; the error
// bound is a percentage.
func ParseSLO(s string) (SLO, error) {
	slo := SLO{Latency: map[float64]time.Duration{}, MaxErrorRate: -1}
	if strings.TrimSpace(s) == "" {
		return SLO{}, fmt.Errorf("empty SLO: want e.g. p99<50ms,errors<0.1%%")
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		name, val, ok := strings.Cut(part, "<")
		if !ok {
			return SLO{}, fmt.Errorf("SLO term %q: want NAME<VALUE, e.g. p99<50ms or errors<0.1%%", part)
		}
		name, val = strings.TrimSpace(strings.ToLower(name)), strings.TrimSpace(val)
		switch {
		case name == "errors":
			pct, ok := strings.CutSuffix(val, "%")
			if !ok {
				return SLO{}, fmt.Errorf("SLO term %q: the error bound is a percentage, e.g. errors<0.1%%", part)
			}
			f, err := strconv.ParseFloat(pct, 64)
			if err != nil || f < 0 || f > 100 {
				return SLO{}, fmt.Errorf("SLO term %q: bad percentage", part)
			}
			slo.MaxErrorRate = f / 100
		case strings.HasPrefix(name, "p"):
			q, err := strconv.ParseFloat(name[1:], 64)
			if err != nil || q <= 0 || q >= 100 {
				return SLO{}, fmt.Errorf("SLO term %q: bad percentile %q (want p50, p99, p99.9 …)", part, name)
			}
			d, err := time.ParseDuration(val)
			if err != nil || d <= 0 {
				return SLO{}, fmt.Errorf("SLO term %q: bad duration %q (want e.g. 50ms)", part, val)
			}
			slo.Latency[q/100] = d
		default:
			return SLO{}, fmt.Errorf("SLO term %q: unknown objective %q (want pNN or errors)", part, name)
		}
	}
	return slo, nil
}

// String formats the SLO the way ParseSLO reads it.
func (s SLO) String() string {
	var parts []string
	for _, q := range sortedKeys(s.Latency) {
		parts = append(parts, fmt.Sprintf("p%s<%s", strconv.FormatFloat(q*100, 'f', -1, 64), s.Latency[q]))
	}
	if s.MaxErrorRate >= 0 {
		parts = append(parts, fmt.Sprintf("errors<%s%%", strconv.FormatFloat(s.MaxErrorRate*100, 'f', -1, 64)))
	}
	return strings.Join(parts, ",")
}

// maxLatency is the largest latency bound, used to size DropAfter.
func (s SLO) maxLatency() time.Duration {
	var m time.Duration
	for _, d := range s.Latency {
		m = max(m, d)
	}
	return m
}

// minLatency is the tightest latency bound, 0 when there is none.
func (s SLO) minLatency() time.Duration {
	var m time.Duration
	for _, d := range s.Latency {
		if m == 0 || d < m {
			m = d
		}
	}
	return m
}
