package goroutine

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParse feeds any bytes through Parse: it must not panic, and what it
// returns must be self-consistent. Seeds: testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte("goroutine 1 [running]:\nmain.main()\n\t/a.go:1 +0x1\n"))
	f.Add([]byte("goroutine profile: total 1\n1 @ 0x1 0x2\n#\t0x1\tmain.f+0x1\t/a.go:1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, sim := range []Similarity{SameLines, SameFuncs, ExactArgs} {
			s, err := Parse(bytes.NewReader(data), Options{Similarity: sim, KeepIDs: 3, MaxBytes: 1 << 20})
			if err != nil {
				if s != nil {
					t.Fatal("snapshot and error")
				}
				continue
			}
			checkInvariants(t, s)
			if s.Bytes > int64(len(data)) {
				t.Fatalf("Bytes=%d, input %d", s.Bytes, len(data))
			}
			for _, g := range s.Groups {
				if len(g.IDs) > 3 {
					t.Fatalf("KeepIDs=3 kept %d", len(g.IDs))
				}
			}
		}
	})
}

// FuzzScanText drives the text scanner with a valid dump around the fuzzed
// bytes, so the fuzzer spends its time inside goroutine blocks. It checks
// Scan's counting and that a goroutine never carries a blank function name.
func FuzzScanText(f *testing.F) {
	f.Add([]byte("main.f(0x1)\n\t/a.go:12 +0x1d\n"), uint8(0))
	f.Add([]byte("created by main.g in goroutine 3\n\t/b.go:7 +0x2\n"), uint8(1))
	f.Add([]byte("...53 frames elided...\n"), uint8(2))
	f.Fuzz(func(t *testing.T, body []byte, variant uint8) {
		var in bytes.Buffer
		prefix := []string{"", "app | ", "2026-11-24T02:07:00.000000000Z "}[variant%3]
		in.WriteString(prefix + "goroutine 1 [chan receive, 3 minutes]:\n")
		for _, l := range bytes.SplitAfter(body, []byte("\n")) {
			in.WriteString(prefix)
			in.Write(l)
		}
		in.WriteString("\n" + prefix + "goroutine 2 [select]:\n" + prefix + "main.h()\n" + prefix + "\t/c.go:1 +0x1\n")
		n := 0
		info, err := Scan(bytes.NewReader(in.Bytes()), Options{MaxBytes: 1 << 20}, func(g *Goroutine) error {
			n += g.Count
			if g.Count != 1 || g.ID <= 0 {
				t.Fatalf("text goroutine with count %d id %d", g.Count, g.ID)
			}
			for _, fr := range g.Frames {
				if fr.Func == "" {
					t.Fatalf("frame without function in %+v", g)
				}
			}
			return nil
		})
		if err != nil {
			if errors.Is(err, ErrTooLarge) {
				return
			}
			t.Fatalf("valid dump around fuzz input failed: %v", err)
		}
		if n != info.Goroutines || n == 0 {
			t.Fatalf("fn saw %d goroutines, info says %d", n, info.Goroutines)
		}
	})
}
