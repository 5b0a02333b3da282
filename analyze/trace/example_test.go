package trace_test

import (
	"fmt"
	"log"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/gopulse/gopulse/analyze/trace"
)

// Goroutines that waited through the whole window without running, with
// the function they wait in: the candidates a leak report starts from.
func ExampleGoroutines() {
	f, err := os.Open("testdata/start.trace")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	act, err := trace.Goroutines(f)
	if err != nil {
		log.Fatal(err)
	}
	parked := map[string]int{}
	for _, g := range act.Goroutines {
		if g.Ran || g.Waiting != act.Duration {
			continue
		}
		for _, fr := range g.Stack {
			if strings.HasPrefix(fr.Func, "main.") {
				parked[fr.Func+" (stack from "+string(g.StackSource)+")"]++
				break
			}
		}
	}
	for _, where := range slices.Sorted(maps.Keys(parked)) {
		fmt.Println(parked[where], "never ran, parked in", where)
	}
	// Output:
	// 3 never ran, parked in main.run.func1 (stack from status)
	// 3 never ran, parked in main.run.func2 (stack from status)
	// 3 never ran, parked in main.run.func3 (stack from status)
}
