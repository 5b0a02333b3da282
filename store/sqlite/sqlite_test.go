package sqlite

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopulse/gopulse/store"
	"github.com/gopulse/gopulse/store/storetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv("GOPULSE_STORE_CRASH_CHILD") != "" {
		crashChild()
		return
	}
	goleak.VerifyTestMain(m)
}

func openTemp(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t, Options{}) })
}

func TestConformanceFull(t *testing.T) {
	storetest.RunFull(t, func(t *testing.T) store.Store {
		return openTemp(t, Options{MaxDBBytes: 512 << 10, Retention: store.Retention{BundleBytes: 64 << 10}})
	})
}

func TestCodecRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := map[string]func(i int) float64{
		"constant": func(int) float64 { return 42 },
		"counter":  func(i int) float64 { return float64(1e9 + i*4096) },
		"gauge":    func(int) float64 { return rng.Float64() * 1e6 },
		"specials": func(i int) float64 {
			return []float64{0, math.Inf(1), math.Inf(-1), -0.0, math.MaxFloat64, math.SmallestNonzeroFloat64, 1 << 53, -(1 << 60)}[i%8]
		},
		"fractions": func(i int) float64 { return float64(i) / 3 },
	}
	for name, gen := range cases {
		t.Run(name, func(t *testing.T) {
			var pts []point
			tt := int64(1_700_000_000_000)
			for i := 0; i < 500; i++ {
				tt += 1000 + int64(rng.IntN(7)) - 3
				pts = append(pts, point{t: tt, v: gen(i)})
			}
			data := encodeChunk(nil, false, pts)
			var got []point
			if err := decodeChunk(data, pts[0].t, 0, func(p point) { got = append(got, p) }); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(pts) {
				t.Fatalf("%d points, want %d", len(got), len(pts))
			}
			for i := range pts {
				if got[i].t != pts[i].t || math.Float64bits(got[i].v) != math.Float64bits(pts[i].v) {
					t.Fatalf("point %d: %+v, want %+v", i, got[i], pts[i])
				}
			}
			t.Logf("%s: %.2f bytes/point", name, float64(len(data))/float64(len(pts)))
		})
	}
}

func FuzzDecodeChunk(f *testing.F) {
	f.Add(encodeChunk(nil, false, []point{{t: 1, v: 1}, {t: 1001, v: 2.5}}), 0)
	f.Add(encodeChunk(nil, true, []point{{t: 1, count: []uint64{1, 0, 3}}, {t: 2, count: []uint64{2, 0, 3}}}), 3)
	f.Fuzz(func(t *testing.T, data []byte, nb int) {
		if nb < 0 || nb > 1000 {
			return
		}
		decodeChunk(data, 0, nb, func(point) {}) // must not panic
	})
}

// TestReopen checks that data and the schema survive Close and Open.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	in := store.Instance{Service: "s", ID: "i", Source: store.SourceAgent}
	if _, err := s.Append(ctx, store.Batch{Key: "k", Instance: in, Samples: []store.Sample{{Name: "/a:x", T: time.Now().UnixMilli(), Value: 3}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Append(ctx, store.Batch{Instance: in}); err == nil {
		t.Fatal("Append after Close succeeded")
	}
	s, err = Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if seen, _ := s.Seen(ctx, "k"); !seen {
		t.Fatal("key lost across reopen")
	}
}

// The crash test: a child process appends batches as fast as it can and
// prints each batch's key once Append has returned; the parent kill -9s it
// mid-stream, reopens the directory, and checks every printed batch.

const crashMetrics = 20

func crashChild() {
	dir := os.Getenv("GOPULSE_STORE_CRASH_CHILD")
	ctx := context.Background()
	restartAt, _ := strconv.ParseInt(os.Getenv("GOPULSE_STORE_CRASH_WAL_RESTART"), 10, 64)
	s, err := Open(ctx, dir, Options{Synchronous: os.Getenv("GOPULSE_STORE_CRASH_SYNC"), walRestartBytes: restartAt})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	restarts := time.NewTicker(20 * time.Millisecond)
	defer restarts.Stop()
	t0 := time.Now().Add(-time.Hour).UnixMilli()
	results := make(chan string, 64)
	// Four concurrent writers so group commit is exercised.
	for w := 0; w < 4; w++ {
		go func(w int) {
			in := store.Instance{Service: "crash", ID: strconv.Itoa(w), Source: store.SourceAgent}
			for i := 0; ; i++ {
				b := store.Batch{Key: fmt.Sprintf("%d-%d", w, i), Instance: in}
				for k := 0; k < 10; k++ {
					for m := 0; m < crashMetrics; m++ {
						b.Samples = append(b.Samples, store.Sample{Name: fmt.Sprintf("/m%d:x", m), T: t0 + int64(i)*10_000 + int64(k)*1000, Value: float64(i*10 + k)})
					}
				}
				if _, err := s.Append(ctx, b); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				results <- b.Key
			}
		}(w)
	}
	for {
		select {
		case k := <-results:
			fmt.Fprintln(out, k)
		case <-restarts.C:
			fmt.Fprintf(out, "#restarts %d\n", s.walRestarts.Load())
		}
		out.Flush() // the parent must see exactly what was acknowledged
	}
}

// Every durability mode must keep what it acknowledged across kill -9
// (they differ only on power loss, which a test cannot cut).
func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test starts a child process")
	}
	for _, mode := range []string{"FULL", "NORMAL", "SQLITE-FULL"} {
		t.Run(mode, func(t *testing.T) { crashKill9(t, mode, 0) })
	}
	// With a WAL that starts over past 64 KiB (at every checkpointer tick), the kill
	// comes after several restarts and perhaps inside one.
	t.Run("FULL-wal-restarts", func(t *testing.T) { crashKill9(t, "FULL", 64<<10) })
}

// crashKill9 kills the child once it has acknowledged 400 batches and,
// with walRestart set, once its WAL has started over at least 3 times.
func crashKill9(t *testing.T, mode string, walRestart int64) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GOPULSE_STORE_CRASH_CHILD="+dir, "GOPULSE_STORE_CRASH_SYNC="+mode,
		"GOPULSE_STORE_CRASH_WAL_RESTART="+strconv.FormatInt(walRestart, 10))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	var restarts int64
	killed := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "#restarts "); ok {
			restarts, _ = strconv.ParseInt(n, 10, 64)
		} else {
			acked[sc.Text()] = true
		}
		if !killed && len(acked) >= 400 && (walRestart == 0 || restarts >= 3 || len(acked) >= 200_000) {
			// Mid-stream: writers are inside Append right now.
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if len(acked) < 400 {
		t.Fatalf("child stopped after %d batches: %v\n%s", len(acked), err, stderr.String())
	}
	if walRestart > 0 && restarts < 3 {
		t.Fatalf("the WAL started over %d times in %d batches, want at least 3 before the kill", restarts, len(acked))
	}
	t.Logf("killed after %d acknowledged batches, %d WAL restarts", len(acked), restarts)

	ctx := context.Background()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatalf("reopen after kill -9: %v", err)
	}
	defer s.Close()
	var ok string
	if err := s.r.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check = %q, %v", ok, err)
	}
	// The batches' samples are there too (the key is atomic with them):
	// each worker's last metric read once, points counted by batch.
	perBatch := map[string]int{}
	for w := 0; w < 4; w++ {
		pts, err := s.QuerySeries(ctx, store.SeriesQuery{Instance: store.InstanceKey{Service: "crash", ID: strconv.Itoa(w)}, Name: fmt.Sprintf("/m%d:x", crashMetrics-1), Start: 0, End: math.MaxInt64})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pts {
			perBatch[fmt.Sprintf("%d-%d", w, int(p.Value)/10)]++
		}
	}
	for key := range acked {
		seen, err := s.Seen(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if !seen {
			t.Errorf("acknowledged batch %s lost", key)
			continue
		}
		if n := perBatch[key]; n != 10 {
			t.Errorf("batch %s: %d of 10 samples", key, n)
		}
	}
	// The reopened store takes writes.
	if _, err := s.Append(ctx, store.Batch{Key: "after", Instance: store.Instance{Service: "crash", ID: "x", Source: store.SourceAgent}}); err != nil {
		t.Fatal(err)
	}
}
