package patterns

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestRegistry(t *testing.T) {
	all := All()
	seen := map[string]bool{}
	var leaks, ok int
	for _, p := range all {
		if seen[p.Name] {
			t.Errorf("duplicate pattern name %q", p.Name)
		}
		seen[p.Name] = true
		if p.Bug == "" || p.Category == "" || p.start == nil {
			t.Errorf("%s: Bug, Category and start must be set", p.Name)
		}
		if p.Every < 10*time.Millisecond || p.Every > 200*time.Millisecond {
			t.Errorf("%s: Every %s outside 10–200 ms", p.Name, p.Every)
		}
		if got, ok := Lookup(p.Name); !ok || got.Name != p.Name {
			t.Errorf("Lookup(%q) failed", p.Name)
		}
		if !p.Leaks {
			ok++
			if len(p.LeakFuncs) > 0 || p.LeakPerSecond != 0 {
				t.Errorf("%s: a healthy pattern has no ground truth", p.Name)
			}
			if !strings.HasPrefix(p.Name, "ok-") {
				t.Errorf("%s: healthy pattern names start with ok-", p.Name)
			}
			continue
		}
		leaks++
		if p.LeakPerSecond < 1 || p.LeakPerSecond > 20 {
			t.Errorf("%s: LeakPerSecond %v outside 1–20", p.Name, p.LeakPerSecond)
		}
		if len(p.LeakFuncs) == 0 {
			t.Errorf("%s: leaking pattern without LeakFuncs", p.Name)
		}
		for _, f := range p.LeakFuncs {
			if !strings.HasPrefix(f, Pkg+".") && !strings.HasPrefix(f, "net/http.") {
				t.Errorf("%s: LeakFunc %q is not qualified as the runtime prints it", p.Name, f)
			}
		}
	}
	if leaks < 30 || ok < 20 {
		t.Errorf("corpus has %d leaking and %d healthy patterns, want ≥ 30 and ≥ 20", leaks, ok)
	}
	if _, ok := Lookup("no-such-pattern"); ok {
		t.Error("Lookup found a pattern that does not exist")
	}
}

// TestHealthyPatternsStop runs every healthy pattern in this process and
// checks that Run leaves no goroutine behind: a healthy pattern's goroutines
// all have an owner and a way to stop. (Leaking patterns are exercised in
// child processes by internal/leakscore.)
func TestHealthyPatternsStop(t *testing.T) {
	for _, p := range All() {
		if p.Leaks {
			continue
		}
		t.Run(p.Name, func(t *testing.T) {
			// signal.Notify starts a process-wide watcher once and keeps it.
			defer goleak.VerifyNone(t, goleak.IgnoreTopFunction("os/signal.signal_recv"),
				goleak.IgnoreAnyFunction("os/signal.loop"))
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			if err := p.Run(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}
