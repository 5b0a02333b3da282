package leakscore

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gopulse/gopulse/internal/testprog/leakcorpus/patterns"
)

// shortPatterns is the -short selection: one of each kind of hard case.
var shortPatterns = []string{
	"timeout-partner-gone",   // the classic
	"http-body-not-closed",   // two groups inside net/http
	"mutex-held-across-send", // holder and waiters
	"dial-retry-stuck",       // slowest leak (1/s), in netpoll
	"ok-pool-warmup",         // growth that stops at a cap
	"ok-http-server-keepalive",
	"ok-cond-queue",
}

// TestCorpus runs the corpus (all patterns at once, 4 snapshots 2 s apart)
// and holds the analyzer to precision and recall of 0.95. It also checks the
// corpus itself: every ground-truth function of a leaking pattern grows.
func TestCorpus(t *testing.T) {
	defer goleak.VerifyNone(t)
	cfg := Config{Samples: 4, Interval: 2 * time.Second}
	if testing.Short() {
		cfg.Patterns = shortPatterns
	}
	n := len(cfg.Patterns)
	if n == 0 {
		n = len(patterns.All())
	}
	cfg.Parallel = n
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", buf.String())

	for _, r := range s.Failed() {
		t.Errorf("pattern %s did not run: %s", r.Pattern, r.Err)
	}
	for _, r := range s.Rows {
		for _, tr := range r.Truth {
			if len(tr.Counts) < 2 || tr.Counts[len(tr.Counts)-1] <= tr.Counts[0] {
				t.Errorf("corpus: %s: ground truth %s did not grow (%v): the pattern does not leak as declared", r.Pattern, tr.Func, tr.Counts)
			}
		}
	}
	if s.Precision < 0.95 || s.Recall < 0.95 {
		t.Errorf("precision %.3f, recall %.3f: want both ≥ 0.95 (see the table above)", s.Precision, s.Recall)
	}
}

// TestRunKillsChildren cancels a run midway and checks that no corpus
// process outlives Run.
func TestRunKillsChildren(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	defer goleak.VerifyNone(t)
	bin := filepath.Join(t.TempDir(), "leakcorpus")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := Build(ctx, "", bin); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer stop()
	s, err := Run(runCtx, Config{Binary: bin, Patterns: shortPatterns, Parallel: 3, Samples: 4, Interval: 2 * time.Second})
	if err == nil {
		t.Fatalf("Run returned %+v after its context ended, want an error", s)
	}
	if pids := processesOf(t, bin); len(pids) > 0 {
		t.Errorf("corpus processes still running after Run returned: %v", pids)
	}
}

// processesOf lists the PIDs whose executable is bin.
func processesOf(t *testing.T, bin string) []string {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, e := range entries {
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err == nil && strings.TrimSuffix(exe, " (deleted)") == bin {
			pids = append(pids, e.Name())
		}
	}
	return pids
}
