package gctuner

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// sim drives decide with a fake clock: each step advances time by dt and
// adds GC CPU at the given fraction of a 2-CPU capacity.
type sim struct {
	s      *state
	now    time.Time
	o      obs
	pinned bool // the heap goal is held by the memory limit
}

func newSim(cfg Config, gogc int, limit int64, hard uint64) *sim {
	if err := cfg.defaults(); err != nil {
		panic(err)
	}
	s := &state{cfg: cfg, gogc: gogc, limit: limit, hard: hard}
	sm := &sim{s: s, now: time.Unix(1000, 0), o: obs{live: 100 << 20, goal: uint64(float64(100<<20) * (1 + float64(gogc)/100))}}
	sm.o.now = sm.now
	s.decide(sm.o)
	return sm
}

func (sm *sim) step(dt time.Duration, gcFrac float64) []Event {
	sm.now = sm.now.Add(dt)
	sm.o.now = sm.now
	sm.o.totalCPU += 2 * dt.Seconds()
	sm.o.gcCPU += 2 * dt.Seconds() * gcFrac
	if !sm.pinned {
		sm.o.goal = uint64(float64(sm.o.live) * (1 + float64(sm.s.gogc)/100))
		if sm.s.limit != noLimit {
			sm.o.goal = min(sm.o.goal, uint64(float64(sm.s.limit)*0.97))
		}
	}
	return sm.s.decide(sm.o)
}

func kinds(es []Event) string {
	var k []string
	for _, e := range es {
		k = append(k, e.Kind)
	}
	return strings.Join(k, ",")
}

var (
	hardG  = float64(1 << 30)
	ceil98 = int64(hardG * 0.98)
	lim2g  = int64(2 * hardG * 0.9)
	lim1g  = int64(hardG * 0.9)
	lim512 = int64(hardG / 2 * 0.9)
)

func TestDecide(t *testing.T) {
	cfg := Config{TargetGCCPU: 0.05, Hysteresis: 0.25, MinChangeInterval: 10 * time.Second, Interval: time.Second,
		MinGOGC: 50, MaxGOGC: 800, MaxStep: 2, GiveUpGCCPU: 0.3, GiveUpAfter: 30 * time.Second}

	t.Run("within the hysteresis band nothing changes", func(t *testing.T) {
		sm := newSim(cfg, 100, 900<<20, 1<<30)
		for i := 0; i < 60; i++ {
			if es := sm.step(time.Second, 0.058); len(es) > 0 {
				t.Fatalf("changed at %d: %v", i, es)
			}
		}
	})
	t.Run("rate limit and bounded step", func(t *testing.T) {
		sm := newSim(cfg, 100, 900<<20, 1<<30)
		var changes []Event
		for i := 0; i < 25; i++ {
			changes = append(changes, sm.step(time.Second, 0.20)...)
		}
		// 0.20 is 4× the target: each step at most ×2, at most one per 10 s.
		// Changes at 1 s, 11 s, 21 s.
		if len(changes) != 3 || changes[0].NewGOGC != 200 || changes[1].NewGOGC != 400 || changes[2].NewGOGC != 800 {
			t.Fatalf("changes %+v", changes)
		}
		for i := 1; i < len(changes); i++ {
			if d := changes[i].Time.Sub(changes[i-1].Time); d < 10*time.Second {
				t.Errorf("changes %v apart, rate limit 10s", d)
			}
		}
	})
	t.Run("bounds", func(t *testing.T) {
		sm := newSim(cfg, 600, 900<<20, 1<<30)
		var last int
		for i := 0; i < 40; i++ {
			for _, e := range sm.step(time.Second, 0.5) {
				last = e.NewGOGC
			}
		}
		if last != 800 {
			t.Errorf("GOGC %d, want capped at MaxGOGC 800", last)
		}
		sm = newSim(cfg, 60, 900<<20, 1<<30)
		for i := 0; i < 120; i++ {
			for _, e := range sm.step(time.Second, 0.001) {
				last = e.NewGOGC
			}
		}
		if last != 50 {
			t.Errorf("GOGC %d, want floored at MinGOGC 50", last)
		}
	})
	t.Run("bursty load does not pull GOGC down between bursts", func(t *testing.T) {
		sm := newSim(cfg, 100, 900<<20, 1<<30)
		var gogcs []int
		for i := 0; i < 200; i++ {
			frac := 0.005 // lull
			if i%8 < 2 {
				frac = 0.2 // 2 s burst every 8 s
			}
			for _, e := range sm.step(time.Second, frac) {
				gogcs = append(gogcs, e.NewGOGC)
			}
		}
		for i := 1; i < len(gogcs); i++ {
			if gogcs[i] < gogcs[i-1] {
				t.Fatalf("GOGC went down between bursts: %v", gogcs)
			}
		}
		if len(gogcs) == 0 || gogcs[len(gogcs)-1] <= 100 {
			t.Fatalf("GOGC never rose: %v", gogcs)
		}
	})
	t.Run("no memory limit caps GOGC at 200", func(t *testing.T) {
		sm := newSim(cfg, 100, noLimit, 0)
		var last int
		for i := 0; i < 60; i++ {
			for _, e := range sm.step(time.Second, 0.4) {
				last = e.NewGOGC
			}
		}
		if last != 200 {
			t.Errorf("GOGC %d without a limit, want 200", last)
		}
	})
	t.Run("at the limit GOGC is not raised; give-up raises the limit", func(t *testing.T) {
		sm := newSim(cfg, 100, 900<<20, 1<<30)
		sm.o.goal, sm.pinned = 110<<20, true // pinned by the limit, well below live×2
		var es []Event
		for i := 0; i < 29; i++ {
			es = append(es, sm.step(time.Second, 0.45)...)
		}
		if len(es) != 0 {
			t.Fatalf("before GiveUpAfter: %v", kinds(es))
		}
		es = sm.step(time.Second, 0.45)
		if kinds(es) != "giveup" || es[0].NewLimit <= es[0].OldLimit || es[0].NewLimit > ceil98 {
			t.Fatalf("at 30 s: %+v", es)
		}
		// Keep burning: the limit climbs to 98% of the hard limit, then
		// the process is reported unhealthy.
		var all []Event
		for i := 0; i < 400; i++ {
			all = append(all, sm.step(time.Second, 0.45)...)
		}
		k := kinds(all)
		if !strings.HasSuffix(k, "giveup,unhealthy") || sm.s.limit != ceil98 {
			t.Fatalf("events %s, limit %d", k, sm.s.limit)
		}
		// Recovery once the average over GiveUpAfter is back under half
		// the threshold.
		var rec []Event
		for i := 0; i < 40; i++ {
			rec = append(rec, sm.step(time.Second, 0.01)...)
		}
		if !strings.Contains(kinds(rec), "healthy") {
			t.Fatalf("recovery: %v", kinds(rec))
		}
	})
	t.Run("give-up report mode", func(t *testing.T) {
		c := cfg
		c.GiveUp = GiveUpReport
		sm := newSim(c, 100, 900<<20, 1<<30)
		sm.o.goal, sm.pinned = 110<<20, true
		sm.o.limiterLast = 5
		var es []Event
		for i := 0; i < 31; i++ {
			es = append(es, sm.step(time.Second, 0.45)...)
		}
		if kinds(es) != "unhealthy" || sm.s.limit != 900<<20 {
			t.Fatalf("events %s limit %d", kinds(es), sm.s.limit)
		}
	})
	t.Run("intermittent GC load at the limit does not give up", func(t *testing.T) {
		sm := newSim(cfg, 100, 900<<20, 1<<30)
		sm.o.goal, sm.pinned = 110<<20, true
		var es []Event
		for i := 0; i < 200; i++ {
			frac := 0.45
			if i%10 >= 5 {
				frac = 0.0 // half the time quiet: 22% on average
			}
			es = append(es, sm.step(time.Second, frac)...)
		}
		for _, e := range es {
			if e.Kind == "giveup" || e.Kind == "unhealthy" {
				t.Fatalf("fired at 22%% average: %v", kinds(es))
			}
		}
	})
	t.Run("leaving the limit resets the give-up clock", func(t *testing.T) {
		sm := newSim(cfg, 100, 900<<20, 1<<30)
		var es []Event
		for i := 0; i < 100; i++ {
			// 20 s at the limit, then 1 s with room, repeatedly.
			sm.pinned = i%21 != 20
			if sm.pinned {
				sm.o.goal = 110 << 20
			}
			es = append(es, sm.step(time.Second, 0.45)...)
		}
		for _, e := range es {
			if e.Kind == "giveup" || e.Kind == "unhealthy" {
				t.Fatalf("fired: %v", kinds(es))
			}
		}
	})
	t.Run("container limit change", func(t *testing.T) {
		sm := newSim(cfg, 100, 900<<20, 1<<30)
		es := sm.s.setHard(2<<30, sm.now, sm.o)
		if len(es) != 1 || es[0].NewLimit != lim2g {
			t.Fatalf("%+v", es)
		}
		if es := sm.s.setHard(2<<30, sm.now, sm.o); es != nil {
			t.Fatalf("unchanged limit: %v", es)
		}
	})
}

func TestConfigValidation(t *testing.T) {
	for _, c := range []Config{{Ratio: 1.5}, {TargetGCCPU: 0.9}, {MinGOGC: 200, MaxGOGC: 100}, {MaxStep: 1}, {Ratio: 0.9, HardLimitRatio: 0.5}} {
		if _, err := Start(context.Background(), c); err == nil || !strings.Contains(err.Error(), "Config.") {
			t.Errorf("%+v: err %v", c, err)
		}
	}
}

var sink []byte

// TestRealRuntime runs the tuner in this process against a cgroup tree in
// a temp dir, and checks what the runtime itself reports.
func TestRealRuntime(t *testing.T) {
	defer goleak.VerifyNone(t)
	if os.Getenv("GOMEMLIMIT") != "" {
		t.Skip("GOMEMLIMIT set in the environment")
	}
	root := t.TempDir()
	write := func(name, data string) {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("proc/self/mountinfo", mountsV2)
	write("proc/self/cgroup", "0::/app\n")
	write("sys/fs/cgroup/app/memory.max", "max\n")
	write("sys/fs/cgroup/memory.max", "1073741824\n")

	origGOGC := debug.SetGCPercent(100)
	debug.SetGCPercent(origGOGC)
	origLimit := debug.SetMemoryLimit(-1)

	var mu sync.Mutex
	var events []Event
	// runtimeGOGC records the runtime's GOGC as each event is delivered:
	// OnEvent runs on the tuner's goroutine right after it applied the
	// decision, so this is the setting the event describes even if a later
	// decision raises GOGC again before the test looks.
	runtimeGOGC := map[time.Time]int{}
	got := make(chan Event, 100)
	tu, err := Start(context.Background(), Config{
		FS: os.DirFS(root), LimitInterval: 20 * time.Millisecond, Interval: 20 * time.Millisecond,
		MinChangeInterval: 50 * time.Millisecond, TargetGCCPU: 0.01, MaxGOGC: 400,
		OnEvent: func(e Event) {
			gogc := []metrics.Sample{{Name: "/gc/gogc:percent"}}
			metrics.Read(gogc)
			mu.Lock()
			events = append(events, e)
			runtimeGOGC[e.Time] = int(gogc[0].Value.Uint64())
			mu.Unlock()
			select {
			case got <- e:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if l := debug.SetMemoryLimit(-1); l != lim1g {
		t.Fatalf("GOMEMLIMIT %d after Start, want 90%% of 1 GiB", l)
	}
	// The container limit changes: the tuner notices and follows.
	write("sys/fs/cgroup/app/memory.max", "536870912\n")
	waitFor(t, got, func(e Event) bool { return e.Kind == "memlimit" && e.ContainerLimit == 512<<20 })
	if l := debug.SetMemoryLimit(-1); l != lim512 {
		t.Fatalf("GOMEMLIMIT %d after the change, want 90%% of 512 MiB", l)
	}
	// Real GC work well above the 1% target: GOGC goes up.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		live := make([][]byte, 2000)
		for i := range live {
			live[i] = make([]byte, 8<<10)
		}
		for i := 0; ; i++ {
			select {
			case <-stop:
				runtime.KeepAlive(live)
				return
			default:
			}
			sink = make([]byte, 32<<10)
			live[i%len(live)] = make([]byte, 8<<10)
		}
	}()
	e := waitFor(t, got, func(e Event) bool { return e.Kind == "gogc" && e.NewGOGC > e.OldGOGC })
	close(stop)
	wg.Wait()
	mu.Lock()
	g := runtimeGOGC[e.Time]
	mu.Unlock()
	if g != e.NewGOGC {
		t.Errorf("runtime GOGC %d when the event arrived, event says %d", g, e.NewGOGC)
	}
	tu.Stop()
	if g, l := debug.SetGCPercent(origGOGC), debug.SetMemoryLimit(-1); g != origGOGC || l != origLimit {
		t.Errorf("after Stop: GOGC %d limit %d, want %d %d restored", g, l, origGOGC, origLimit)
	}
	mu.Lock()
	defer mu.Unlock()
	if events[0].Kind != "start" {
		t.Errorf("first event %v", events[0])
	}
}

func waitFor(t *testing.T, ch <-chan Event, ok func(Event) bool) Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case e := <-ch:
			if ok(e) {
				return e
			}
		case <-deadline:
			t.Fatal("event did not arrive within 20s")
		}
	}
}
