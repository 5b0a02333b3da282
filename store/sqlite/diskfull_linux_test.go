package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopulse/gopulse/store"
)

// smallDisk mounts a tmpfs of size bytes and returns its path. Mounting
// needs root: without it the test is skipped, unless
// GOPULSE_REQUIRE_DISKFULL=1 (CI runs as root and sets it), which makes a
// failed mount a failure.
func smallDisk(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		if os.Getenv("GOPULSE_REQUIRE_DISKFULL") == "1" {
			t.Fatalf("mount a %d-byte tmpfs: %v", size, err)
		}
		t.Skipf("mount a %d-byte tmpfs: %v (needs root; GOPULSE_REQUIRE_DISKFULL=1 makes this a failure)", size, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// TestDiskFull fills a real file system: with no free-space reserve,
// SQLite's and the bundle writer's own ENOSPC must come back as
// store.ErrFull, leave every acknowledged batch intact and the database
// sound, and the store must take writes again once space is freed.
func TestDiskFull(t *testing.T) {
	disk := smallDisk(t, 24<<20)
	// Ballast to free later, as an operator would clean up the disk.
	ballast := filepath.Join(disk, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dir := filepath.Join(disk, "data")
	s, err := Open(ctx, dir, Options{MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()

	rng := rand.New(rand.NewPCG(1, 2))
	in := store.Instance{Service: "full", ID: "a", Source: store.SourceAgent}
	t0 := time.Now().Add(-3 * time.Hour).UnixMilli()
	batch := func(i int) store.Batch {
		b := store.Batch{Key: fmt.Sprintf("b-%d", i), Instance: in}
		ts := make([]int64, 10)
		for k := range ts {
			ts[k] = t0 + int64(i)*10_000 + int64(k)*1000
		}
		for m := range 40 {
			vs := make([]float64, len(ts))
			for k := range vs {
				vs[k] = rng.Float64() // incompressible: the disk fills fast
			}
			b.Series = append(b.Series, store.Series{Name: fmt.Sprintf("/m%d:x", m), T: ts, Values: vs})
		}
		return b
	}
	var acked []int
	var fullErr error
	for i := 0; i < 100_000 && fullErr == nil; i++ {
		_, err := s.Append(ctx, batch(i))
		switch {
		case err == nil:
			acked = append(acked, i)
		case errors.Is(err, store.ErrFull):
			fullErr = err
		default:
			t.Fatalf("append %d: %v, want nil or ErrFull", i, err)
		}
	}
	if fullErr == nil || len(acked) == 0 {
		t.Fatalf("%d batches stored, full: %v", len(acked), fullErr)
	}
	t.Logf("ErrFull after %d batches: %v", len(acked), fullErr)
	// Still full: refused again, not wedged in a half-done transaction.
	if _, err := s.Append(ctx, batch(len(acked)+1)); !errors.Is(err, store.ErrFull) {
		t.Fatalf("append on a full disk: %v, want ErrFull", err)
	}
	// A bundle body on the full disk is refused the same way, and aborted.
	w, err := s.BeginBundle(ctx)
	if err == nil {
		_, err = w.WriteFile(ctx, "heap", "application/octet-stream", io.LimitReader(rng2{rng}, 8<<20))
		w.Abort(ctx)
	}
	if !errors.Is(err, store.ErrFull) {
		t.Fatalf("bundle on a full disk: %v, want ErrFull", err)
	}

	check := func(s *Store, what string) {
		t.Helper()
		var ok string
		if err := s.r.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
			t.Fatalf("%s: integrity_check = %q, %v", what, ok, err)
		}
		pts, err := s.QuerySeries(ctx, store.SeriesQuery{Instance: in.Key(), Name: "/m39:x", Start: t0, End: t0 + int64(len(acked)+2)*10_000})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if len(pts) < 10*len(acked) {
			t.Fatalf("%s: %d points of the last metric, want at least %d (%d acknowledged batches)", what, len(pts), 10*len(acked), len(acked))
		}
		for _, i := range acked {
			if seen, err := s.Seen(ctx, fmt.Sprintf("b-%d", i)); err != nil || !seen {
				t.Fatalf("%s: acknowledged batch %d: seen %v, %v", what, i, seen, err)
			}
		}
	}
	check(s, "on the full disk")

	// Space freed: the same store takes writes again.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, batch(len(acked)+2)); err != nil {
		t.Fatalf("append after freeing space: %v", err)
	}
	if err := s.Close(); err != nil && !strings.Contains(err.Error(), "closed") {
		t.Logf("close: %v", err)
	}
	s2, err := Open(ctx, dir, Options{MinFreeBytes: -1})
	if err != nil {
		t.Fatalf("reopen after the disk was full: %v", err)
	}
	s = s2
	check(s2, "reopened")
}

// rng2 reads random bytes.
type rng2 struct{ r *rand.Rand }

func (r rng2) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r.r.Uint32())
	}
	return len(p), nil
}
