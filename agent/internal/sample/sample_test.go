package sample

import (
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSampleAllocatesNothing(t *testing.T) {
	s, _ := New(Config{Interval: time.Second, SchedWindow: 30 * time.Second})
	defer s.Close()
	var slot Slot
	for i := 0; i < 3; i++ { // grow buffers
		s.Sample(time.Now(), &slot)
	}
	allocs := testing.AllocsPerRun(50, func() { s.Sample(time.Now(), &slot) })
	if allocs != 0 {
		t.Fatalf("steady-state Sample allocates %v times per call, want 0", allocs)
	}
	if slot.Point.Goroutines == 0 || slot.Point.TotalCPU == 0 && slot.Point.HeapGoal == 0 {
		t.Fatalf("point looks empty: %+v", slot.Point)
	}
	if runtime.GOOS == "linux" && (slot.Proc.RSS == 0 || slot.Proc.FDs == 0 || slot.Proc.FDLimit == 0 || slot.Proc.Threads == 0) {
		t.Fatalf("process facts missing: %+v", slot.Proc)
	}
}

func TestFDCount(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("linux only")
	}
	p := OpenProc("/proc")
	defer p.Close()
	var f ProcFacts
	p.Read(&f)
	before := f.FDs
	var files []*os.File
	for i := 0; i < 10; i++ {
		fh, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, fh)
	}
	p.Read(&f)
	for _, fh := range files {
		fh.Close()
	}
	if f.FDs != before+10 {
		t.Fatalf("fds went %d → %d after opening 10 files", before, f.FDs)
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want ProcFacts
	}{
		{"plain", "42 (app) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 100 123456 300 18446744073709551615",
			ProcFacts{CPUUser: 2.5, CPUSystem: 0.5, Threads: 7, RSS: 300 * 4096}},
		{"name with spaces and parens", "42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 100 0 0 0 20 0 3 0 100 123456 2 0",
			ProcFacts{CPUUser: 1, Threads: 3, RSS: 2 * 4096}},
		{"truncated", "42 (app) S 1 42", ProcFacts{}},
		{"garbage", "no parens here", ProcFacts{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f ProcFacts
			parseStat([]byte(tt.in), 100, 4096, &f)
			if f != tt.want {
				t.Fatalf("got %+v, want %+v", f, tt.want)
			}
		})
	}
}

func writeTree(t *testing.T, files map[string]string) string {
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCgroupDiscovery(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  CgroupFacts
	}{
		{"v2 tightest limit up the hierarchy", map[string]string{
			"proc/self/mountinfo":                            "30 1 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n",
			"proc/self/cgroup":                               "0::/kubepods/pod1/ctr\n",
			"sys/fs/cgroup/kubepods/memory.max":              "1073741824\n",
			"sys/fs/cgroup/kubepods/pod1/memory.max":         "536870912\n",
			"sys/fs/cgroup/kubepods/pod1/ctr/memory.max":     "max\n",
			"sys/fs/cgroup/kubepods/pod1/ctr/memory.current": "1000\n",
			"sys/fs/cgroup/kubepods/pod1/ctr/memory.stat":    "anon 700\nfile 300\ninactive_file 200\n",
			"sys/fs/cgroup/kubepods/pod1/ctr/cpu.max":        "150000 100000\n",
			"sys/fs/cgroup/kubepods/pod1/cpu.max":            "max 100000\n",
			"sys/fs/cgroup/kubepods/pod1/ctr/cpu.stat":       "usage_usec 5\nnr_throttled 4\nthrottled_usec 2500000\n",
		}, CgroupFacts{Version: 2, Path: "/kubepods/pod1/ctr", MemLimit: 536870912, MemUsage: 1000, WorkingSet: 800, CPUQuotaCores: 1.5, NrThrottled: 4, ThrottledSeconds: 2.5}},
		{"v2 namespaced root", map[string]string{
			"proc/self/mountinfo":          "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
			"proc/self/cgroup":             "0::/\n",
			"sys/fs/cgroup/memory.max":     "2048\n",
			"sys/fs/cgroup/memory.current": "1024\n",
		}, CgroupFacts{Version: 2, Path: "/", MemLimit: 2048, MemUsage: 1024}},
		{"v1 hybrid with no limit", map[string]string{
			"proc/self/mountinfo": "30 1 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n" +
				"31 1 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n" +
				"32 1 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n",
			"proc/self/cgroup": "5:memory:/user.slice\n4:cpu,cpuacct:/user.slice\n0::/user.slice\n",
			"sys/fs/cgroup/memory/user.slice/memory.limit_in_bytes":  "9223372036854771712\n",
			"sys/fs/cgroup/memory/user.slice/memory.usage_in_bytes":  "4096\n",
			"sys/fs/cgroup/memory/user.slice/memory.stat":            "total_inactive_file 96\nhierarchical_memory_limit 9223372036854771712\n",
			"sys/fs/cgroup/cpu,cpuacct/user.slice/cpu.cfs_quota_us":  "-1\n",
			"sys/fs/cgroup/cpu,cpuacct/user.slice/cpu.cfs_period_us": "100000\n",
		}, CgroupFacts{Version: 1, Path: "/user.slice", MemUsage: 4096, WorkingSet: 4000}},
		{"v1 limit via hierarchical_memory_limit", map[string]string{
			"proc/self/mountinfo": "31 1 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
			"proc/self/cgroup":    "5:memory:/docker/abc\n",
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "9223372036854771712\n",
			"sys/fs/cgroup/memory/docker/abc/memory.stat":           "hierarchical_memory_limit 268435456\n",
		}, CgroupFacts{Version: 1, Path: "/docker/abc", MemLimit: 268435456}},
		{"no cgroup", map[string]string{
			"proc/self/mountinfo": "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n",
			"proc/self/cgroup":    "",
		}, CgroupFacts{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, tt.files)
			cg, err := DiscoverCgroup(root+"/proc", root)
			if err != nil {
				t.Fatal(err)
			}
			defer cg.Close()
			var f CgroupFacts
			cg.Read(&f)
			if f != tt.want {
				t.Fatalf("got  %+v\nwant %+v", f, tt.want)
			}
		})
	}
}

func TestQuantile(t *testing.T) {
	b := []float64{math.Inf(-1), 0.001, 0.01, 0.1, math.Inf(1)}
	tests := []struct {
		name      string
		prev, cur []uint64
		q, want   float64
	}{
		{"empty", nil, []uint64{0, 0, 0, 0}, 0.99, 0},
		{"all fast", nil, []uint64{0, 100, 0, 0}, 0.99, 0.01},
		{"tail in 10-100ms", nil, []uint64{0, 98, 0, 2}, 0.99, 0.1},
		{"delta excludes old slow", []uint64{0, 0, 0, 50}, []uint64{0, 100, 0, 50}, 0.99, 0.01},
		{"overflow bucket", nil, []uint64{0, 0, 0, 0}, 0.5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Quantile(tt.prev, tt.cur, b, tt.q); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	if got := Quantile(nil, []uint64{0, 0, 0, 1}, []float64{0, 1, 2, 3, math.Inf(1)}, 0.99); got != 3 {
		t.Fatalf("+Inf bucket: got %v, want its lower bound 3", got)
	}
}

func TestGCTrackerRecordsEveryCycle(t *testing.T) {
	tests := []struct {
		name    string
		gcs     int
		wantGap bool
	}{
		{"few cycles", 5, false},
		{"more than the runtime keeps", 300, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewGCTracker()
			defer g.Stop()
			for i := 0; i < tt.gcs; i++ {
				runtime.GC()
			}
			time.Sleep(10 * time.Millisecond) // let the finalizer goroutine observe the last cycle
			cycles, gaps := g.Collect(nil, nil)
			total := len(cycles)
			for _, gp := range gaps {
				total += int(gp.Last - gp.First + 1)
			}
			if total < tt.gcs {
				t.Fatalf("%d cycles + gaps reported for %d GCs", total, tt.gcs)
			}
			if (len(gaps) > 0) != tt.wantGap {
				t.Fatalf("gaps = %v, want gap %v", gaps, tt.wantGap)
			}
			for i := 1; i < len(cycles); i++ {
				if cycles[i].N != cycles[i-1].N+1 {
					t.Fatalf("cycles not consecutive: %d then %d", cycles[i-1].N, cycles[i].N)
				}
			}
			if len(gaps) > 0 && gaps[len(gaps)-1].Last+1 != cycles[0].N {
				t.Fatalf("gap %v does not end before first cycle %d", gaps, cycles[0].N)
			}
			last := cycles[len(cycles)-1]
			if !last.HeapKnown || last.Goal == 0 || last.End.IsZero() {
				t.Fatalf("last cycle lacks heap facts: %+v", last)
			}
			if !last.Forced {
				t.Fatalf("runtime.GC cycle not marked forced: %+v", last)
			}
		})
	}
}

// gcCPUCases are the cpu-class deltas every surface's test feeds (rules,
// agent Status, collector, loadramp): the same deltas must give the same
// gc_cpu_fraction everywhere. The first is the discriminating one: a
// service 20% busy whose GC is mostly idle marking reads 2.5% of capacity
// but read 37.5% as GC ÷ busy.
var gcCPUCases = []struct {
	name                              string
	total, idle, gc, idleMark, assist float64 // deltas, cpu-seconds
	fraction, busyShare, assistShare  float64
}{
	{"20% busy with idle marking", 40, 32, 3, 2, 0.5, 0.025, 0.125, 0.5},
	{"cpu-bound, no idle marking", 40, 0, 10, 0, 4, 0.25, 0.25, 0.4},
	{"no GC", 40, 20, 0, 0, 0, 0, 0, 0},
}

func TestGCCPUBetween(t *testing.T) {
	for _, tt := range gcCPUCases {
		t.Run(tt.name, func(t *testing.T) {
			// Cumulative counters from an arbitrary start, as the runtime gives them.
			old := Point{TotalCPU: 100, IdleCPU: 50, GCCPU: 7, GCIdleMarkCPU: 3, GCAssistCPU: 1}
			cur := Point{TotalCPU: old.TotalCPU + tt.total, IdleCPU: old.IdleCPU + tt.idle, GCCPU: old.GCCPU + tt.gc,
				GCIdleMarkCPU: old.GCIdleMarkCPU + tt.idleMark, GCAssistCPU: old.GCAssistCPU + tt.assist}
			g := GCCPUBetween(old, cur)
			f, ok1 := g.Fraction()
			b, ok2 := g.BusyShare()
			a, ok3 := g.AssistShare()
			if !ok1 || !ok2 || !ok3 || !near(f, tt.fraction) || !near(b, tt.busyShare) || !near(a, tt.assistShare) {
				t.Fatalf("fraction %v %v, busy share %v %v, assist share %v %v; want %v %v %v",
					f, ok1, b, ok2, a, ok3, tt.fraction, tt.busyShare, tt.assistShare)
			}
		})
	}
	// No cycle ended between the two points: the counters did not move,
	// and nothing is known.
	p := Point{TotalCPU: 10, GCCPU: 1}
	if _, ok := GCCPUBetween(p, p).Fraction(); ok {
		t.Fatal("a fraction from counters that did not move")
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// TestGCTrackerCPUDefinition checks the per-cycle CPU figures against the
// runtime's counters: summed over the observed cycles they are exactly
// (gc/total − gc/mark/idle) and /cpu/classes/total between the tracker's
// start and the last cycle end, so a collector summing cycles computes
// gc_cpu_fraction as the series do.
func TestGCTrackerCPUDefinition(t *testing.T) {
	g := NewGCTracker()
	defer g.Stop()
	g.mu.Lock()
	start := g.prevCPU
	g.mu.Unlock()
	var sink [][]byte
	for i := 0; i < 5; i++ {
		for j := 0; j < 1000; j++ {
			sink = append(sink, make([]byte, 1024))
		}
		runtime.GC()
		sink = sink[:0]
	}
	// A background cycle between reading the counters and collecting
	// would misalign them; the cycle count tells, and a retry realigns.
	s := []metrics.Sample{{Name: NameGCCPU}, {Name: NameGCIdleMarkCPU}, {Name: NameTotalCPU}, {Name: NameGCCycles}}
	var cycles []Cycle
	for try := 0; ; try++ {
		time.Sleep(10 * time.Millisecond) // let the finalizer goroutine observe the last cycle
		metrics.Read(s)
		cycles, _ = g.Collect(cycles, nil)
		if len(cycles) > 0 && uint64(cycles[len(cycles)-1].N) == s[3].Value.Uint64() {
			break
		}
		if try == 3 {
			t.Fatalf("cycles collected (%d) never matched the runtime's count %d", len(cycles), s[3].Value.Uint64())
		}
	}
	if !cycles[len(cycles)-1].HeapKnown {
		t.Fatalf("last cycle not observed: %+v", cycles[len(cycles)-1])
	}
	var gc, total float64
	for _, c := range cycles {
		if c.HeapKnown {
			gc += c.GCCPU
			total += c.TotalCPU
		}
	}
	wantGC := (s[0].Value.Float64() - s[1].Value.Float64()) - (start.GCCPU - start.GCIdleMarkCPU)
	wantTotal := s[2].Value.Float64() - start.TotalCPU
	if math.Abs(gc-wantGC) > 1e-6 || math.Abs(total-wantTotal) > 1e-6 || total <= 0 || gc > total {
		t.Fatalf("cycles sum to GC %v of %v capacity; counters say %v of %v", gc, total, wantGC, wantTotal)
	}
}
