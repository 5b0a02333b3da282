package goroutine

import (
	"fmt"
	"strings"
)

// A dump from a log: the goroutines blocked at the same place form one
// group, whatever their IDs and arguments.
func ExampleParse() {
	dump := `2026/11/24 02:07:00 GET /debug/pprof/goroutine?debug=2
goroutine 1 [running]:
main.main()
	/app/main.go:12 +0x1d

goroutine 7 [chan receive, 12 minutes]:
main.worker(0xc000012345)
	/app/worker.go:40 +0x2d
created by main.main in goroutine 1
	/app/main.go:9 +0x7c

goroutine 8 [chan receive, 14 minutes]:
main.worker(0xc000067890)
	/app/worker.go:40 +0x2d
created by main.main in goroutine 1
	/app/main.go:9 +0x7c
`
	snap, err := Parse(strings.NewReader(dump), Options{})
	if err != nil {
		panic(err)
	}
	fmt.Println(snap.Format, snap.Goroutines, "goroutines,", len(snap.Groups), "groups,", snap.Skipped, "log line skipped")
	g := snap.Groups[0]
	fmt.Printf("%d × [%s] at %s:%d, IDs %v, waiting %v to %v\n", g.Count, g.State, g.Frames[0].File, g.Frames[0].Line, g.IDs, g.WaitMin, g.WaitMax)
	// Output:
	// text 3 goroutines, 2 groups, 1 log line skipped
	// 2 × [chan receive] at /app/worker.go:40, IDs [7 8], waiting 12m0s to 14m0s
}

// Scan streams: one call per goroutine, nothing kept.
func ExampleScan() {
	dump := "goroutine profile: total 5\n5 @ 0x1 0x2\n#\t0x1\tsync.runtime_notifyListWait+0x1\t/go/src/runtime/sema.go:617\n#\t0x2\tmain.wait+0x2\t/app/main.go:3\n"
	info, err := Scan(strings.NewReader(dump), Options{}, func(g *Goroutine) error {
		fmt.Println(g.Count, g.State, g.Frames[1].Func)
		return nil
	})
	fmt.Println(info.Format, info.Goroutines, err)
	// Output:
	// 5 sync.Cond.Wait main.wait
	// debug1 5 <nil>
}
