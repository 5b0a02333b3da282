package rules

import (
	"math"
	"testing"
	"time"

	"github.com/gopulse/gopulse/agent/internal/sample"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// series builds one point per second from f(i).
func series(n int, f func(i int, p *sample.Point)) []sample.Point {
	w := make([]sample.Point, n)
	for i := range w {
		w[i] = sample.Point{Time: t0.Add(time.Duration(i) * time.Second), MemLimit: math.MaxInt64, Goroutines: 100}
		f(i, &w[i])
	}
	return w
}

func fired(rs []Result, rule string) (Result, bool) {
	for _, r := range rs {
		if r.Rule == rule {
			return r, r.Fired
		}
	}
	return Result{}, false
}

func TestRules(t *testing.T) {
	tests := []struct {
		name string
		th   func(*Thresholds)
		w    []sample.Point
		rule string
		want bool
	}{
		{"pause below threshold", nil, series(3, func(i int, p *sample.Point) { p.MaxPause = 49 * time.Millisecond }), GCPause, false},
		{"pause at threshold", nil, series(3, func(i int, p *sample.Point) {
			if i == 2 {
				p.MaxPause = 50 * time.Millisecond
			}
		}), GCPause, true},
		{"old pause does not refire", nil, series(3, func(i int, p *sample.Point) {
			if i == 0 {
				p.MaxPause = time.Second
			}
		}), GCPause, false},
		{"pause rule disabled", func(th *Thresholds) { th.GCPause = -1 }, series(2, func(i int, p *sample.Point) { p.MaxPause = time.Second }), GCPause, false},

		// gc_cpu_fraction is GC (idle marking left out) over capacity:
		// two Ps for 30 s are 60 s of capacity.
		{"gc cpu 30% of capacity", nil, series(31, func(i int, p *sample.Point) {
			p.TotalCPU, p.IdleCPU, p.GCCPU = float64(2*i), float64(i), 0.6*float64(i)
		}), GCCPU, true},
		{"gc cpu 20% of capacity", nil, series(31, func(i int, p *sample.Point) {
			p.TotalCPU, p.IdleCPU, p.GCCPU = float64(2*i), float64(i), 0.4*float64(i)
		}), GCCPU, false},
		{"gc cpu 30% of capacity once idle marking is left out", nil, series(31, func(i int, p *sample.Point) {
			p.TotalCPU, p.IdleCPU, p.GCCPU, p.GCIdleMarkCPU = float64(2*i), 0.2*float64(i), 0.8*float64(i), 0.2*float64(i)
		}), GCCPU, true},
		// The old busy-time figure read 75% here (0.3 of 0.4 busy s/s);
		// of capacity it is 2.5%.
		{"20% busy service whose GC is mostly idle marking", nil, series(31, func(i int, p *sample.Point) {
			p.TotalCPU, p.IdleCPU, p.GCCPU, p.GCIdleMarkCPU = float64(2*i), 1.6*float64(i), 0.3*float64(i), 0.25*float64(i)
		}), GCCPU, false},
		{"gc cpu burst older than window ignored", nil, series(61, func(i int, p *sample.Point) {
			p.TotalCPU = float64(i)
			if i < 20 {
				p.GCCPU = float64(i)
			} else {
				p.GCCPU = 20
			}
		}), GCCPU, false},
		{"gc cpu high but only 5s of history", nil, series(6, func(i int, p *sample.Point) {
			p.TotalCPU, p.GCCPU = float64(i), float64(i)
		}), GCCPU, false},
		{"gc cpu idle process", nil, series(31, func(i int, p *sample.Point) {}), GCCPU, false},

		{"goroutines +50% and +1000", nil, series(300, func(i int, p *sample.Point) { p.Goroutines = 2000 + uint64(i)*5 }), Goroutines, true},
		{"goroutines +1000 but only +20%", nil, series(300, func(i int, p *sample.Point) { p.Goroutines = 5000 + uint64(i)*4 }), Goroutines, false},
		{"goroutines +100% but only +100", nil, series(300, func(i int, p *sample.Point) { p.Goroutines = 100 + uint64(i)/3 }), Goroutines, false},
		{"goroutines grew long ago, flat now", nil, series(600, func(i int, p *sample.Point) {
			p.Goroutines = 100
			if i > 100 {
				p.Goroutines = 5000
			}
		}), Goroutines, false},
		{"goroutines from zero", nil, series(10, func(i int, p *sample.Point) { p.Goroutines = uint64(i) * 200 }), Goroutines, true},

		{"heap 90% of GOMEMLIMIT", nil, series(2, func(i int, p *sample.Point) { p.MemLimit, p.HeapLive = 1000, 900 }), HeapLimit, true},
		{"heap 90% of GOMEMLIMIT but cgroup tighter", nil, series(2, func(i int, p *sample.Point) { p.MemLimit, p.CgroupLimit, p.HeapLive = 1000, 800, 700 }), HeapLimit, true},
		{"heap 50% of cgroup", nil, series(2, func(i int, p *sample.Point) { p.CgroupLimit, p.HeapLive = 1000, 500 }), HeapLimit, false},
		{"no limit at all", nil, series(2, func(i int, p *sample.Point) { p.HeapLive = 1 << 40 }), HeapLimit, false},

		{"sched p99 12ms", nil, series(2, func(i int, p *sample.Point) { p.SchedP99 = 12 * time.Millisecond }), SchedLatency, true},
		{"sched p99 5ms", nil, series(2, func(i int, p *sample.Point) { p.SchedP99 = 5 * time.Millisecond }), SchedLatency, false},

		{"fds 85%", nil, series(2, func(i int, p *sample.Point) { p.FDs, p.FDLimit = 850, 1000 }), FDs, true},
		{"fds 10%", nil, series(2, func(i int, p *sample.Point) { p.FDs, p.FDLimit = 100, 1000 }), FDs, false},
		{"fds unknown limit", nil, series(2, func(i int, p *sample.Point) { p.FDs = 100 }), FDs, false},

		{"limiter engaged", nil, series(3, func(i int, p *sample.Point) { p.LimiterLast = uint64(7 + i/2) }), GCLimiter, true},
		{"limiter engaged long ago", nil, series(3, func(i int, p *sample.Point) { p.LimiterLast = 7 }), GCLimiter, false},
		{"limiter rule off", func(th *Thresholds) { th.GCLimiter = false }, series(3, func(i int, p *sample.Point) { p.LimiterLast = uint64(i) }), GCLimiter, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := Defaults()
			if tt.th != nil {
				tt.th(&th)
			}
			r, got := fired(Evaluate(nil, th, tt.w), tt.rule)
			if got != tt.want {
				t.Fatalf("%s fired=%v, want %v (result %+v)", tt.rule, got, tt.want, r)
			}
			if got && (len(r.Values()) == 0 || r.Reason() == "" || r.Reason() == r.Rule) {
				t.Fatalf("fired without values or reason: %+v", r)
			}
		})
	}
}

// TestGCCPUValue checks the figure the gc_cpu rule reports (and ships in
// the bundle's RuleValue) for the cpu-class deltas every surface's test
// uses: one definition, (gc − idle mark) ÷ total.
func TestGCCPUValue(t *testing.T) {
	tests := []struct {
		name                      string
		total, idle, gc, idleMark float64 // deltas over the 30 s window
		want                      float64
	}{
		{"20% busy with idle marking", 40, 32, 3, 2, 0.025},
		{"cpu-bound, no idle marking", 40, 0, 10, 0, 0.25},
		{"no GC", 40, 20, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := series(31, func(i int, p *sample.Point) {
				f := float64(i) / 30
				p.TotalCPU, p.IdleCPU, p.GCCPU, p.GCIdleMarkCPU = tt.total*f, tt.idle*f, tt.gc*f, tt.idleMark*f
			})
			r, _ := fired(Evaluate(nil, Defaults(), w), GCCPU)
			if r.NVals == 0 || math.Abs(r.Vals[0].Value-tt.want) > 1e-9 || r.Vals[0].Name != "gc_cpu_fraction" {
				t.Fatalf("gc_cpu value %+v, want gc_cpu_fraction %v", r.Values(), tt.want)
			}
			if math.Abs(r.Level-tt.want/0.25) > 1e-9 {
				t.Fatalf("level %v, want %v", r.Level, tt.want/0.25)
			}
		})
	}
}

func TestLimiter(t *testing.T) {
	type call struct {
		rule string
		at   time.Duration
		want bool
	}
	tests := []struct {
		name  string
		calls []call
	}{
		{"cooldown per rule", []call{{"a", 0, true}, {"a", time.Minute, false}, {"b", time.Minute, true}, {"a", 5 * time.Minute, true}}},
		{"hourly cap", []call{{"a", 0, true}, {"b", 1, true}, {"c", 2, true}, {"d", 3, false}, {"d", time.Hour + 1, true}}},
		{"clock jumps back", []call{{"a", time.Hour, true}, {"b", 0, true}, {"c", 0, true}, {"d", 0, true}, {"e", 0, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &Limiter{Cooldown: 5 * time.Minute, MaxPerHour: 3}
			for i, c := range tt.calls {
				if got := l.Allow(c.rule, t0.Add(c.at)); got != c.want {
					t.Fatalf("call %d %+v: got %v", i, c, got)
				}
			}
		})
	}
}

func TestEvaluateAllocatesNothing(t *testing.T) {
	w := series(300, func(i int, p *sample.Point) {
		p.Goroutines, p.TotalCPU, p.GCCPU, p.FDs, p.FDLimit, p.CgroupLimit, p.HeapLive = uint64(100+i), float64(i), float64(i)/10, 10, 1000, 1<<30, 1<<20
	})
	dst := make([]Result, 0, 16)
	if a := testing.AllocsPerRun(100, func() { dst = Evaluate(dst[:0], Defaults(), w) }); a != 0 {
		t.Fatalf("Evaluate allocates %v per call", a)
	}
	if len(dst) != 7 {
		t.Fatalf("%d results, want one per rule (7)", len(dst))
	}
}
