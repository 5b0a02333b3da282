// Package patterns holds the goroutine-leak corpus: small, faithful copies of
// the blocking bugs catalogued by "Understanding Real-World Concurrency Bugs in
// Go" (Tu et al., ASPLOS 2019) and of common production leaks, next to healthy
// programs whose goroutines wait legitimately.
//
// Each Pattern runs like a service serving requests: Run calls the pattern's
// request function every Pattern.Every until its context ends. A leaking
// pattern leaves goroutines blocked forever at a steady rate (LeakPerSecond);
// a healthy one keeps its goroutine count flat apart from request-scoped
// churn. The code lives in this importable package, not in a main package, so
// that the function names the runtime prints are stable and the scoring
// harness (internal/leakscore) can use them as ground truth.
//
// The leaking goroutines have, by design, no owner and no way to stop: a
// leaking pattern is meant to run in a process of its own
// (internal/testprog/leakcorpus) that is killed afterwards. Healthy patterns
// stop every goroutine they started when Run returns.
package patterns

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// Pkg is the import path the runtime prints before this package's functions.
const Pkg = "github.com/gopulse/gopulse/internal/testprog/leakcorpus/patterns"

// Pattern is one program of the corpus.
type Pattern struct {
	// Name is the flag value that selects the pattern, e.g. "timeout-partner-gone".
	Name string
	// Leaks is the ground truth: true when the pattern leaks goroutines.
	Leaks bool
	// Category is the study's classification of the blocking cause:
	// "chan", "select", "context", "mutex", "rwmutex", "waitgroup", "cond",
	// "io", "library".
	Category string
	// Bug is a one-line description of the real bug the pattern mimics (or,
	// for a healthy pattern, of the legitimate wait it shows).
	Bug string
	// Every is the period of the request loop.
	Every time.Duration
	// LeakPerSecond is the designed rate at which each leaking group grows,
	// in goroutines per second; 0 for healthy patterns. The rate of the
	// fastest group is given when groups grow at different rates.
	LeakPerSecond float64
	// LeakFuncs is the ground truth of a leaking pattern: each entry is a
	// function, fully qualified as the runtime prints it, whose presence in a
	// group's stack marks that group as a leaking group. Every entry is
	// expected to match at least one group; a leak that shows up as two groups
	// (a blocked holder and its blocked waiters, readLoop and writeLoop) lists
	// two functions. Nil for healthy patterns.
	LeakFuncs []string

	start func(ctx context.Context) (*instance, error)
}

// instance is a started pattern: its request function and how to stop what
// the pattern owns (servers, worker pools). Leaked goroutines are not owned.
type instance struct {
	request func(ctx context.Context, n int)
	stop    func()
}

// stateless wraps a request function that needs no setup.
func stateless(req func(ctx context.Context, n int)) func(context.Context) (*instance, error) {
	return func(context.Context) (*instance, error) {
		return &instance{request: req, stop: func() {}}, nil
	}
}

// fn qualifies a function name of this package as the runtime prints it.
func fn(name string) string { return Pkg + "." + name }

// Run starts the pattern and runs its request loop every p.Every until ctx is
// done, then stops what the pattern owns. Requests run one after another on
// the calling goroutine, like a single client; a request that needs
// concurrency starts its own goroutines.
func (p *Pattern) Run(ctx context.Context) error {
	inst, err := p.start(ctx)
	if err != nil {
		return fmt.Errorf("start pattern %s: %w", p.Name, err)
	}
	defer inst.stop()
	t := time.NewTicker(p.Every)
	defer t.Stop()
	for n := 0; ; n++ {
		inst.request(ctx, n)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// All returns every pattern, leaking ones first, each group sorted by name.
// The slice is new on every call; callers may modify it.
func All() []*Pattern {
	all := append(leaking(), healthy()...)
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].Leaks != all[j].Leaks {
			return all[i].Leaks
		}
		return all[i].Name < all[j].Name
	})
	return all
}

// Lookup returns the pattern with the given name.
func Lookup(name string) (*Pattern, bool) {
	for _, p := range All() {
		if p.Name == name {
			return p, true
		}
	}
	return nil, false
}
