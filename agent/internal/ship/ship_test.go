package ship

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gopulse/gopulse/wire"
	"github.com/gopulse/gopulse/wire/wiretest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type logBuf struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuf) Logf(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *logBuf) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.lines {
		if strings.Contains(x, s) {
			return true
		}
	}
	return false
}

func newShipper(t *testing.T, url string, sp *Spool, log *logBuf) (*Shipper, func()) {
	t.Helper()
	s := New(Config{URL: url, Spool: sp, BaseBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		BatchTimeout: 300 * time.Millisecond, BundleTimeout: 2 * time.Second, Logf: log.Logf})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	return s, func() {
		cancel()
		<-done
		s.cfg.Client.CloseIdleConnections()
		if sp != nil {
			sp.Close()
		}
	}
}

func bundleProducer(id string) func(io.Writer) error {
	return func(w io.Writer) error {
		bw, err := wire.NewBundleWriter(w)
		if err != nil {
			return err
		}
		if _, err := bw.WriteFile("x.txt", "text/plain", strings.NewReader(strings.Repeat("evidence ", 20000))); err != nil {
			return err
		}
		return bw.Close(&wire.BundleManifest{EventId: id, Rule: "manual"})
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCollectorDownThenUp: while the collector is down, batches and bundles
// keep coming; after it returns, each arrives exactly once after
// de-duplication, and none is missing.
func TestCollectorDownThenUp(t *testing.T) {
	srv, err := wiretest.New()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	sp, err := OpenSpool(t.TempDir(), 64<<20, 7*24*time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	log := &logBuf{}
	s, stop := newShipper(t, srv.URL, sp, log)
	defer stop()

	nb, nbd := 0, 0
	send := func() {
		nb++
		if err := s.Enqueue(&wire.MetricBatch{BatchId: fmt.Sprintf("b%d", nb), Sequence: uint64(nb)}); err != nil {
			t.Fatal(err)
		}
	}
	send()
	waitFor(t, "first batch", func() bool { return len(srv.Batches()) == 1 })
	srv.Down()
	downFor := 1500 * time.Millisecond
	end := time.Now().Add(downFor)
	for time.Now().Before(end) {
		send()
		if nb%5 == 0 {
			nbd++
			if err := s.SpoolBundle(fmt.Sprintf("e%d", nbd), bundleProducer(fmt.Sprintf("e%d", nbd))); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := len(srv.Batches()); got != 1 {
		t.Fatalf("%d batches arrived while down", got)
	}
	if !log.has("failed") {
		t.Fatalf("no warning logged while the collector was down: %q", log.lines)
	}
	if err := srv.Up(); err != nil {
		t.Fatal(err)
	}
	send()
	waitFor(t, "all batches and bundles", func() bool { return len(srv.Batches()) == nb && len(srv.Bundles()) == nbd })
	seen := map[string]bool{}
	for i, b := range srv.Batches() {
		if seen[b.BatchId] {
			t.Fatalf("batch %s twice", b.BatchId)
		}
		seen[b.BatchId] = true
		if b.Sequence != uint64(i+1) {
			t.Errorf("batch %d arrived out of order: sequence %d", i, b.Sequence)
		}
	}
	for _, bd := range srv.Bundles() {
		if len(bd.Files["x.txt"]) != len("evidence ")*20000 || bd.Encoding != "gzip" {
			t.Errorf("bundle %s damaged", bd.Manifest.EventId)
		}
	}
	waitFor(t, "spool drained", func() bool { return len(sp.Files()) <= 1 }) // the active segment may stay
	if !log.has("reachable again") {
		t.Errorf("recovery not logged")
	}
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name    string
		fault   wiretest.Fault
		logs    string
		dropped bool // the item is refused for good
	}{
		{"5xx", wiretest.Fault{Status: 503}, "collector error 503", false},
		{"429 with Retry-After", wiretest.Fault{Status: 429, RetryAfter: "0"}, "rate limiting", false},
		{"401", wiretest.Fault{Status: 401}, "refused the token", false},
		{"413", wiretest.Fault{Status: 413}, "too large", true},
		{"400", wiretest.Fault{Status: 400}, "rejected", true},
		{"hanging", wiretest.Fault{Hang: true}, "failed", false},
		{"connection reset", wiretest.Fault{Reset: true}, "failed", false},
	}
	for _, tt := range tests {
		for _, spooled := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/spool=%v", tt.name, spooled), func(t *testing.T) {
				srv, err := wiretest.New()
				if err != nil {
					t.Fatal(err)
				}
				defer srv.Close()
				var sp *Spool
				if spooled {
					if sp, err = OpenSpool(t.TempDir(), 1<<20, time.Hour, time.Hour); err != nil {
						t.Fatal(err)
					}
				}
				log := &logBuf{}
				f := tt.fault
				srv.SetFault(&f)
				s, stop := newShipper(t, srv.URL, sp, log)
				defer stop()
				s.Enqueue(&wire.MetricBatch{BatchId: "k1"})
				waitFor(t, "warning "+tt.logs, func() bool { return log.has(tt.logs) })
				srv.SetFault(nil)
				s.Enqueue(&wire.MetricBatch{BatchId: "k2"})
				want := 2
				if tt.dropped {
					want = 1
				}
				waitFor(t, "delivery after the fault", func() bool { return len(srv.Batches()) == want })
				st := s.Stats()
				if tt.dropped != (st.DroppedBatches == 1) {
					t.Fatalf("dropped = %d, want dropped=%v", st.DroppedBatches, tt.dropped)
				}
				if st.Failures == 0 || st.LastError == "" {
					t.Fatalf("failure not counted: %+v", st)
				}
			})
		}
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	srv, _ := wiretest.New()
	defer srv.Close()
	srv.SetFault(&wiretest.Fault{Status: 429, RetryAfter: "1"})
	log := &logBuf{}
	s, stop := newShipper(t, srv.URL, nil, log)
	defer stop()
	s.Enqueue(&wire.MetricBatch{BatchId: "k"})
	waitFor(t, "first 429", func() bool { r, _, _, _ := srv.Counts(); return r >= 1 })
	time.Sleep(500 * time.Millisecond)
	if r, _, _, _ := srv.Counts(); r != 1 {
		t.Fatalf("%d requests within Retry-After: 1s (max backoff is 100ms)", r)
	}
	if !log.has("retrying in 1s") {
		t.Fatalf("log does not show the server's delay: %q", log.lines)
	}
}

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"5", 5 * time.Second},
		{"", 0},
		{"-3", 0},
		{"junk", 0},
		{"999999", time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
	}
	for _, tt := range tests {
		if got := retryAfterOf(tt.in, now); got != tt.want {
			t.Errorf("retryAfterOf(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestMemoryQueueBounded(t *testing.T) {
	srv, _ := wiretest.New()
	defer srv.Close()
	srv.Down()
	log := &logBuf{}
	s := New(Config{URL: srv.URL, MemQueue: 5, BaseBackoff: time.Hour, MaxBackoff: time.Hour, BatchTimeout: time.Second, Logf: log.Logf})
	for i := 0; i < 12; i++ {
		s.Enqueue(&wire.MetricBatch{BatchId: fmt.Sprint(i)})
	}
	if st := s.Stats(); st.DroppedBatches != 7 || len(s.queue) != 5 {
		t.Fatalf("dropped %d, queued %d", st.DroppedBatches, len(s.queue))
	}
	if !log.has("memory queue full") {
		t.Fatal("drop not logged")
	}
}

func TestSpoolUnwritable(t *testing.T) {
	if os.Geteuid() == 0 {
		// root ignores directory permissions: use a path under a file.
		f := filepath.Join(t.TempDir(), "file")
		os.WriteFile(f, nil, 0o600)
		if _, err := OpenSpool(filepath.Join(f, "spool"), 1<<20, time.Hour, time.Hour); err == nil || !strings.Contains(err.Error(), "spool dir") {
			t.Fatalf("err = %v", err)
		}
		return
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o500)
	defer os.Chmod(dir, 0o700)
	if _, err := OpenSpool(dir, 1<<20, time.Hour, time.Hour); err == nil || !strings.Contains(err.Error(), "not writable") {
		t.Fatalf("err = %v", err)
	}
}

func TestSpoolEvictionAndRotation(t *testing.T) {
	dir := t.TempDir()
	sp, err := OpenSpool(dir, 3000, 7*24*time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	payload := make([]byte, 492) // 500 bytes with the header
	for i := 0; i < 4; i++ {
		if err := sp.AppendBatch(payload, t0.Add(time.Duration(i)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(sp.Files()); n != 4 {
		t.Fatalf("%d segments after 4 hours, want 4 (hourly rotation)", n)
	}
	// Three more records in hour 4: 3500 bytes > cap 3000 → oldest evicted.
	for i := 0; i < 3; i++ {
		sp.AppendBatch(payload, t0.Add(3*time.Hour))
	}
	if sp.EvictedItems != 1 || sp.Size() > 3000 {
		t.Fatalf("evicted %d items, size %d", sp.EvictedItems, sp.Size())
	}
	if files := sp.Files(); !strings.HasSuffix(files[0], "2026010111.seg") {
		t.Fatalf("oldest left is %s, want the 11:00 segment", files[0])
	}
	if err := sp.AppendBatch(make([]byte, 5000), t0); err == nil {
		t.Fatal("an item over the cap was accepted")
	}
	// A clock jump back does not reorder: the new segment sorts last.
	sp.AppendBatch(payload, t0.Add(-48*time.Hour))
	files := sp.Files()
	if !strings.Contains(files[len(files)-1], "2025123010") {
		t.Fatalf("segment after clock jump is not last: %v", files)
	}
	// Age limit.
	for _, f := range files {
		old := t0.Add(-8 * 24 * time.Hour)
		os.Chtimes(filepath.Join(dir, f), old, old)
	}
	sp.Expire(t0)
	if n := len(sp.Files()); n != 0 {
		t.Fatalf("%d files older than 7 days left", n)
	}
}

func TestSpoolTornTail(t *testing.T) {
	dir := t.TempDir()
	sp, _ := OpenSpool(dir, 1<<20, time.Hour, time.Hour)
	now := time.Now()
	sp.AppendBatch([]byte("one"), now)
	sp.AppendBatch([]byte("two"), now)
	name := sp.Files()[0]
	sp.Close()
	f, _ := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{0, 0, 0, 9, 1, 2}) // torn header
	f.Close()
	sp2, _ := OpenSpool(dir, 1<<20, time.Hour, time.Hour)
	var got []string
	for {
		rec, next, err := sp2.NextRecord(name)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(rec))
		sp2.MarkSent(name, next)
	}
	if strings.Join(got, ",") != "one,two" {
		t.Fatalf("records %q", got)
	}
}

func TestStreamBundleWithoutSpool(t *testing.T) {
	tests := []struct {
		name  string
		fault *wiretest.Fault
		ok    bool
	}{
		{"healthy", nil, true},
		{"hanging collector", &wiretest.Fault{Hang: true}, false},
		{"reset", &wiretest.Fault{Reset: true}, false},
		{"5xx", &wiretest.Fault{Status: 500}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := wiretest.New()
			defer srv.Close()
			srv.SetFault(tt.fault)
			log := &logBuf{}
			s := New(Config{URL: srv.URL, BundleTimeout: 500 * time.Millisecond, BatchTimeout: time.Second, Logf: log.Logf})
			defer s.cfg.Client.CloseIdleConnections()
			err := s.StreamBundle(context.Background(), "ev", bundleProducer("ev"))
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v", err)
			}
			if tt.ok && len(srv.Bundles()) != 1 {
				t.Fatal("bundle not received")
			}
			if !tt.ok && (s.Stats().DroppedBundles != 1 || !log.has("lost")) {
				t.Fatalf("loss not counted/logged: %+v %q", s.Stats(), log.lines)
			}
		})
	}
}
