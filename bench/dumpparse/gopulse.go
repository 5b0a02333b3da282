package main

import (
	"fmt"
	"os"

	"github.com/gopulse/gopulse/analyze/goroutine"
)

func init() { parsers["gopulse"] = parseGopulse }

// parseGopulse is the product's path: Parse with zero Options, i.e.
// SameLines grouping (arguments ignored), format sniffed.
func parseGopulse(f *os.File) (groups, goroutines int, err error) {
	snap, err := goroutine.Parse(f, goroutine.Options{})
	if err != nil {
		return 0, 0, fmt.Errorf("goroutine.Parse: %w", err)
	}
	return len(snap.Groups), snap.Goroutines, nil
}
