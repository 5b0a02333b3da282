package main

import (
	"fmt"
	"io"
	"os"

	"github.com/maruel/panicparse/v2/stack"
)

// parsePanicparse is panicparse's documented way to read and group a dump:
// ScanSnapshot with DefaultOpts (which also guesses paths and reads the
// referenced sources, as its CLI does), then Aggregate(AnyPointer), the
// grouping that ignores pointer values but compares other arguments.
func parsePanicparse(f *os.File) (groups, goroutines int, err error) {
	snap, _, err := stack.ScanSnapshot(f, io.Discard, stack.DefaultOpts())
	if err != nil && err != io.EOF {
		return 0, 0, fmt.Errorf("panicparse ScanSnapshot: %w", err)
	}
	if snap == nil {
		return 0, 0, errNoDump
	}
	agg := snap.Aggregate(stack.AnyPointer)
	return len(agg.Buckets), len(snap.Goroutines), nil
}
