package gc

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(math.Abs(a), math.Abs(b)) }

func TestPredictArithmetic(t *testing.T) {
	m := Model{LiveHeap: 100 << 20, Roots: 0, AllocRate: 200 << 20, Procs: 2,
		FixedCost: 0.001, MarkPerByte: 0.05 / (100 << 20), Runway: 1, Overshoot: 1.05, NonHeap: 10 << 20}
	tests := []struct {
		name                string
		gogc                int
		limit               int64
		goal, cps, cpu      float64
		limited, deathSpirl bool
	}{
		// goal = 100 MiB·(1+1) = 200; runway 100 MiB; 2 cycles/s; cost 0.051 s → 0.051 of 2 CPUs.
		{"GOGC=100", 100, NoLimit, 200 << 20, 2, 2 * 0.051 / 2, false, false},
		{"GOGC=400", 400, NoLimit, 500 << 20, 0.5, 0.5 * 0.051 / 2, false, false},
		// limit 300 MiB: goal = (300−10)·0.97 = 281.3 MiB < 500.
		{"GOGC=400 limited", 400, 300 << 20, (290 << 20) * 0.97, 200 / (290*0.97 - 100), 200 / (290*0.97 - 100) * 0.051 / 2, true, false},
		// limit 115 MiB: goal 101.85 MiB, runway 1.85 MiB → 108/s → spiral.
		{"death spiral", 100, 115 << 20, (105 << 20) * 0.97, 200 / (105*0.97 - 100), 200 / (105*0.97 - 100) * 0.051 / 2, true, true},
		{"GOGC=off no limit", -1, NoLimit, math.Inf(1), 0, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := m.Predict(tt.gogc, tt.limit)
			if !(near(p.HeapGoal, tt.goal, 1e-9) || p.HeapGoal == tt.goal) || !near(p.CyclesPerSecond+1e-12, tt.cps+1e-12, 1e-9) || !near(p.GCCPUFraction+1e-12, tt.cpu+1e-12, 1e-9) {
				t.Errorf("got goal %.4g cps %.4g cpu %.4g; want %.4g %.4g %.4g", p.HeapGoal, p.CyclesPerSecond, p.GCCPUFraction, tt.goal, tt.cps, tt.cpu)
			}
			if p.MemoryLimited != tt.limited || p.DeathSpiral != tt.deathSpirl {
				t.Errorf("limited %v spiral %v", p.MemoryLimited, p.DeathSpiral)
			}
		})
	}
}

func loadTrace(t *testing.T, name string, set Settings) *Data {
	t.Helper()
	f, err := os.Open("testdata/real/" + name + ".txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr, err := ParseTrace(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := FromTrace(tr, set)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestCalibrateRealTrace(t *testing.T) {
	d := loadTrace(t, "steady", Settings{GOGC: 100, GOGCKnown: true, MemLimit: NoLimit, MemLimitKnown: true})
	m, err := Calibrate(d)
	if err != nil {
		t.Fatal(err)
	}
	// Calibration must reproduce what it was fitted on.
	p := m.Predict(100, NoLimit)
	if !near(p.CyclesPerSecond, m.CyclesPerSecond, 0.1) || !near(p.GCCPUFraction, m.GCCPUFraction, 0.1) {
		t.Errorf("self-prediction %.3g/s %.3g, measured %.3g/s %.3g", p.CyclesPerSecond, p.GCCPUFraction, m.CyclesPerSecond, m.GCCPUFraction)
	}
	// Doubling GOGC roughly halves the cycle rate.
	p4 := m.Predict(200, NoLimit)
	if r := p.CyclesPerSecond / p4.CyclesPerSecond; r < 1.8 || r > 2.2 {
		t.Errorf("GOGC 100→200 changes cycles/s by %.2f×, want ~2", r)
	}
}

func TestCalibrateRefuses(t *testing.T) {
	d := loadTrace(t, "gogc50", Settings{})
	_, err := Calibrate(d)
	if !errors.Is(err, ErrCannotModel) || !strings.Contains(err.Error(), "need 2s") {
		t.Fatalf("err = %v, want a refusal naming the short window", err)
	}
	d = loadTrace(t, "forced", Settings{})
	if _, err := Calibrate(d); !errors.Is(err, ErrCannotModel) {
		t.Fatalf("forced: err = %v", err)
	}
	adv := Advise(d, Summarize(d), AdviceOptions{})
	if len(adv) == 0 || adv[len(adv)-1].Kind != "refused" || adv[len(adv)-1].GOGC != nil {
		t.Fatalf("advice on unmodelable data: %+v", adv)
	}
}

func TestAdviseDeathSpiral(t *testing.T) {
	d := loadTrace(t, "memlimit", Settings{GOGC: 400, GOGCKnown: true, MemLimit: 72 << 20, MemLimitKnown: true})
	var warned, tuned bool
	for _, a := range Advise(d, Summarize(d), AdviceOptions{}) {
		if a.Kind == "warning" && strings.Contains(a.Text, "eath-spiral zone") {
			warned = true
		}
		if a.Kind == "tune" {
			tuned = true
			if a.GOMEMLIMITBytes == nil || *a.GOMEMLIMITBytes <= 72<<20 || a.GCCPUFraction == nil {
				t.Errorf("tune advice must raise the limit with a prediction: %+v", a)
			}
			if a.GOGC != nil {
				t.Errorf("raising GOGC does not help a memory-limited program: %s", a.Text)
			}
		}
	}
	if !warned || !tuned {
		t.Fatal("want a death-spiral warning and a limit suggestion")
	}
}

func TestAdviseHighGCCPU(t *testing.T) {
	d := loadTrace(t, "steady", Settings{GOGC: 100, GOGCKnown: true, MemLimit: NoLimit, MemLimitKnown: true, ContainerLimit: 1 << 30})
	adv := Advise(d, Summarize(d), AdviceOptions{TargetGCCPU: 0.05})
	var got *Advice
	for i := range adv {
		if adv[i].Kind == "tune" && adv[i].GOGC != nil {
			got = &adv[i]
		}
	}
	if got == nil {
		t.Fatalf("no GOGC advice for 18%% GC CPU: %+v", adv)
	}
	if *got.GOGC <= 100 || *got.GOMEMLIMITBytes != 966367641 || *got.PeakHeapBytes > 0.9*float64(1<<30) {
		t.Errorf("advice %s", got.Text)
	}
}

func TestFitPower(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	gen := func(n int, fmin, fmax, noise float64) []FreqPoint {
		var pts []FreqPoint
		for i := 0; i < n; i++ {
			f := fmin * math.Pow(fmax/fmin, float64(i)/float64(n-1))
			u := 0.3 + 0.4*rng.Float64()
			cpu := 0.01*math.Pow(f, 1.38) + 0.02*u
			pts = append(pts, FreqPoint{Freq: f, CPU: cpu * (1 + noise*rng.NormFloat64()), HeapUtil: u})
		}
		return pts
	}
	f := FitPower(gen(40, 0.5, 20, 0.02))
	if !f.OK || f.Beta < 1.3 || f.Beta > 1.46 || f.BetaLow > 1.38 || f.BetaHigh < 1.38 {
		t.Errorf("fit %+v, want β≈1.38 inside its interval", f)
	}
	if f := FitPower(gen(40, 5, 6, 0.02)); f.OK || !strings.Contains(f.Reason, "varies only") {
		t.Errorf("narrow frequency range must be refused: %+v", f)
	}
	if f := FitPower(gen(5, 0.5, 20, 0.02)); f.OK {
		t.Errorf("5 points must be refused: %+v", f)
	}
	if f := FitPower(gen(40, 0.5, 20, 3)); f.OK {
		t.Errorf("pure noise must be refused: %+v", f)
	}
	// A steeper relation than the grid holds: the interval touches 4.
	var steep []FreqPoint
	for i := 0; i < 20; i++ {
		f := 0.5 * math.Pow(4, float64(i)/19)
		steep = append(steep, FreqPoint{Freq: f, CPU: 0.001 * math.Pow(f, 5) * (1 + 0.01*rng.NormFloat64()), HeapUtil: 0.5})
	}
	if f := FitPower(steep); f.OK || !strings.Contains(f.Reason, "search bounds") {
		t.Errorf("β beyond the grid must be refused: %+v", f)
	}
}

func TestRealMemStats(t *testing.T) {
	var snaps []VarsSnapshot
	for i, name := range []string{"vars1.json", "vars2.json"} {
		f, err := os.Open("testdata/real/" + name)
		if err != nil {
			t.Fatal(err)
		}
		s, err := ParseVars(f, time.Unix(0, 0).Add(time.Duration(i)*time.Second))
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, s)
	}
	d, err := FromMemStats(snaps, Settings{})
	if err != nil {
		t.Fatal(err)
	}
	s := Summarize(d)
	if len(d.Cycles) != int(snaps[1].MemStats.NumGC) || !s.PausesExact || s.PauseMaxSeconds <= 0 {
		t.Errorf("cycles %d of %d, pauses exact %v max %g", len(d.Cycles), snaps[1].MemStats.NumGC, s.PausesExact, s.PauseMaxSeconds)
	}
	if s.AllocBytesPerSecond <= 0 || s.GCCPUFraction <= 0 || s.HeapGoalBytes != snaps[1].MemStats.NextGC {
		t.Errorf("summary %+v", s)
	}
	// One snapshot: pauses and cycle rate from the ring, no alloc rate.
	d1, err := FromMemStats(snaps[1:], Settings{})
	if err != nil {
		t.Fatal(err)
	}
	if s1 := Summarize(d1); s1.CyclesPerSecond <= 0 || s1.AllocBytesPerSecond != 0 {
		t.Errorf("one snapshot: %+v", s1)
	}
	if _, err := ParseVars(strings.NewReader(`{"cmdline":["x"]}`), time.Now()); !errors.Is(err, ErrNoMemStats) {
		t.Errorf("vars without memstats: %v", err)
	}
}

func TestRingWrap(t *testing.T) {
	var m MemStats
	m.NumGC = 300
	for k := uint32(45); k <= 300; k++ {
		m.PauseNs[(k+255)%256] = uint64(k)
		m.PauseEnd[(k+255)%256] = uint64(k) * 1e9
	}
	cs := ringCycles(&m, 0)
	if len(cs) != 256 || cs[0].N != 45 || cs[255].N != 300 || cs[0].Pause != 45 || cs[255].Pause != 300 {
		t.Fatalf("ring: %d cycles, first %+v last %+v", len(cs), cs[0], cs[len(cs)-1])
	}
	if cs := ringCycles(&m, 290); len(cs) != 10 || cs[0].N != 291 {
		t.Fatalf("after 290: %+v", cs)
	}
}

// TestRealMetrics samples this process's own runtime/metrics while it
// allocates, so the input is the real format of the Go under test.
func TestRealMetrics(t *testing.T) {
	ss := make([]metrics.Sample, len(MetricNames))
	for i, n := range MetricNames {
		ss[i].Name = n
	}
	var series []MetricSample
	var sink [][]byte
	for i := 0; i < 4; i++ {
		metrics.Read(ss)
		series = append(series, SampleFromRuntime(time.Now(), ss))
		for j := 0; j < 2000; j++ {
			sink = append(sink, make([]byte, 8<<10))
			if len(sink) > 500 {
				sink = sink[:0]
			}
		}
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	if *update {
		// A real series as a fuzz seed.
		var buf strings.Builder
		for _, s := range series {
			b, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			buf.Write(b)
			buf.WriteByte('\n')
		}
		dir := "testdata/fuzz/FuzzDecodeMetricSamples"
		os.MkdirAll(dir, 0o755)
		if err := os.WriteFile(dir+"/real-series", []byte("go test fuzz v1\n[]byte("+strconv.Quote(buf.String())+")\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The JSON form round-trips, infinities included.
	var enc strings.Builder
	for _, s := range series {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		enc.Write(b)
	}
	back, err := DecodeMetricSamples(strings.NewReader(enc.String()))
	if err != nil || len(back) != len(series) {
		t.Fatalf("round trip: %d samples, %v", len(back), err)
	}
	d, err := FromMetrics(back, Settings{})
	if err != nil {
		t.Fatal(err)
	}
	s := Summarize(d)
	if s.Cycles < 3 || s.ForcedCycles < 3 || s.AllocBytesPerSecond <= 0 || s.GCCPUFraction <= 0 || s.PauseMaxSeconds <= 0 || s.GOGC != 100 || s.LiveHeapBytes == 0 {
		t.Errorf("summary from real metrics: %+v", s)
	}
	if s.PausesExact {
		t.Error("histogram pauses reported as exact")
	}
	if _, err := FromMetrics(series[:1], Settings{}); !errors.Is(err, ErrNoSamples) {
		t.Errorf("one sample: %v", err)
	}
}

func TestPredictAssists(t *testing.T) {
	// 64 MiB scanned, 100 MiB/s, 80 ms of marking at 25% of 2 Ps; the
	// whole mark work is 160 ms per cycle. Calibrated at GOGC=100 (gap
	// 64 MiB): marking may take 0.3·64/100 = 192 ms > 80 ms, no shortage.
	m := Model{LiveHeap: 64 << 20, AllocRate: 100 << 20, Procs: 2, FixedCost: 0.001,
		MarkPerByte: 0.041 / (64 << 20), WorkPerByte: 0.160 / (64 << 20), BackgroundUtil: 0.25,
		MarkWall: 80 * time.Millisecond, Runway: 1, Overshoot: 1, CalibGap: 64 << 20}
	tests := []struct {
		name         string
		gogc         int
		limit        int64
		cost, assist float64 // CPU-seconds per cycle
	}{
		{"calibration point", 100, NoLimit, 0.001 + 0.04, 0},
		{"long runway", 400, NoLimit, 0.001 + 0.04, 0},
		// gap 16 MiB: (19/64)·16/100 s = 47.5 ms of 80 → 40.6% of 160 ms
		// assisted; background only for 47.5 ms: 0.25·2·0.0475.
		{"GOGC=25", 25, NoLimit, 0.001 + 0.5*0.0475 + (1-0.0475/0.08)*0.160, (1 - 0.0475/0.08) * 0.160},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := m.Predict(tt.gogc, tt.limit)
			cost := p.GCCPUFraction * 2 / p.CyclesPerSecond
			assist := p.AssistFraction * 2 / p.CyclesPerSecond
			if !near(cost, tt.cost, 0.01) || math.Abs(assist-tt.assist) > 1e-6 {
				t.Errorf("cost %.4f assist %.4f per cycle; want %.4f %.4f", cost, assist, tt.cost, tt.assist)
			}
			if work := p.GCWorkFraction * 2 / p.CyclesPerSecond; !near(work, 0.161, 1e-6) {
				t.Errorf("work %.4f per cycle, want 0.161: assists move work, they do not add it", work)
			}
		})
	}
	// A calibration already short of runway keeps its own assists at its
	// own setting.
	m.CalibGap = 16 << 20
	m.AssistPerCycle = 0.05
	p := m.Predict(25, NoLimit)
	if a := p.AssistFraction * 2 / p.CyclesPerSecond; !near(a, 0.05, 1e-9) {
		t.Errorf("self-prediction of assists %.4f, want 0.05", a)
	}
}

// A CPU-bound program pays for the GC out of its own throughput: the
// closed loop f = k/(1+k), k = a·c ÷ runway.
func TestPredictCPUBound(t *testing.T) {
	const mib = 1 << 20
	// a = 100 MiB per mutator P-second, c = 0.05 s per cycle, κ = 1, 1 P.
	m := Model{LiveHeap: 50 * mib, AllocRate: 80 * mib, Procs: 1, FixedCost: 0.001, MarkPerByte: 0.049 / (50 * mib),
		Runway: 1, Overshoot: 1, CPUBound: true, MutatorAllocRate: 100 * mib, NonHeap: 5 * mib}
	tests := []struct {
		name      string
		gogc      int
		limit     int64
		gap       float64 // goal − live, MiB
		saturated bool
	}{
		{"GOGC=100", 100, NoLimit, 50, false},
		{"GOGC=400", 400, NoLimit, 200, false},
		{"GOGC=25", 25, NoLimit, 12.5, false},
		// limit 60 MiB: goal (60−5)·0.97 = 53.35 MiB, gap 3.35 MiB: k = 100·0.05/3.35 ≈ 1.49.
		{"tight limit", 100, 60 * mib, 55*0.97 - 50, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := m.Predict(tt.gogc, tt.limit)
			k := 100 * 0.05 / tt.gap
			f := k / (1 + k)
			rate := 100 * (1 - f) // MiB/s
			if !near(p.GCCPUFraction, f, 1e-9) || !near(p.CyclesPerSecond, rate/tt.gap, 1e-9) {
				t.Errorf("f %.4f cps %.4f, want %.4f %.4f", p.GCCPUFraction, p.CyclesPerSecond, f, rate/tt.gap)
			}
			if p.GCWorkFraction != p.GCCPUFraction {
				t.Errorf("work %.4f ≠ GC CPU %.4f: with no idle P all GC work is accounted", p.GCWorkFraction, p.GCCPUFraction)
			}
			if p.Saturated != tt.saturated {
				t.Errorf("saturated %v, want %v", p.Saturated, tt.saturated)
			}
		})
	}
	// The open-loop model on the same numbers would charge k, not k/(1+k).
	open := m
	open.CPUBound, open.AllocRate = false, m.MutatorAllocRate
	if po, pc := open.Predict(25, NoLimit), m.Predict(25, NoLimit); po.GCCPUFraction <= pc.GCCPUFraction*1.2 {
		t.Errorf("open loop %.3f vs closed %.3f: the closed loop should be well below", po.GCCPUFraction, pc.GCCPUFraction)
	}
}

func TestCalibrateCPUBoundTrace(t *testing.T) {
	set := Settings{GOGC: 100, GOGCKnown: true, MemLimit: NoLimit, MemLimitKnown: true}
	tests := []struct {
		name     string
		cpuBound bool
	}{
		{"cpubound", true}, // GOMAXPROCS=1, -rate 0: never idle
		{"steady", false},  // paced, mostly asleep: idle Ps mark
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := set
			m, err := Calibrate(loadTrace(t, tt.name, g))
			if err != nil {
				t.Fatal(err)
			}
			if m.CPUBound != tt.cpuBound {
				t.Fatalf("CPUBound = %v, want %v", m.CPUBound, tt.cpuBound)
			}
			// Calibration reproduces what it was fitted on, either loop.
			p := m.Predict(g.GOGC, NoLimit)
			if !near(p.CyclesPerSecond, m.CyclesPerSecond, 0.1) || !near(p.GCCPUFraction, m.GCCPUFraction, 0.15) {
				t.Errorf("self-prediction %.3g/s %.3g, measured %.3g/s %.3g", p.CyclesPerSecond, p.GCCPUFraction, m.CyclesPerSecond, m.GCCPUFraction)
			}
			if !tt.cpuBound {
				return
			}
			// Raising GOGC gives the program CPU back: more allocation, so
			// cycles/s falls by less than the runway grows.
			p4 := m.Predict(400, NoLimit)
			if ratio := p.CyclesPerSecond / p4.CyclesPerSecond; ratio >= 4 || ratio < 2 {
				t.Errorf("cycles/s GOGC=100 ÷ GOGC=400 = %.2f, want in [2, 4)", ratio)
			}
		})
	}
}
