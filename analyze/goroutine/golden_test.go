package goroutine

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.golden from the parser's output")

// renderSnapshot is the compact text the golden files hold.
func renderSnapshot(s *Snapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "format=%s goroutines=%d groups=%d bytes=%d skipped=%d truncated=%v\n",
		s.Format, s.Goroutines, len(s.Groups), s.Bytes, s.Skipped, s.Truncated)
	if s.TruncatedReason != "" {
		fmt.Fprintf(&b, "reason: %s\n", s.TruncatedReason)
	}
	for _, g := range s.Groups {
		fmt.Fprintf(&b, "\n%s count=%d state=%q", g.Key, g.Count, g.State)
		if len(g.IDs) > 0 {
			fmt.Fprintf(&b, " ids=%v", g.IDs)
		}
		if g.WaitKnown > 0 {
			fmt.Fprintf(&b, " wait=%v..%v(%d)", g.WaitMin, g.WaitMax, g.WaitKnown)
		}
		if g.Locked > 0 {
			fmt.Fprintf(&b, " locked=%d", g.Locked)
		}
		if g.Leaked > 0 {
			fmt.Fprintf(&b, " leaked=%d", g.Leaked)
		}
		if g.Elided {
			b.WriteString(" elided")
		}
		if len(g.Labels) > 0 {
			keys := make([]string, 0, len(g.Labels))
			for k := range g.Labels {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			b.WriteString(" labels={")
			for i, k := range keys {
				if i > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "%q:%q", k, g.Labels[k])
			}
			b.WriteString("}")
		}
		b.WriteString("\n")
		for _, f := range g.Frames {
			fmt.Fprintf(&b, "  %s %s:%d", f.Func, f.File, f.Line)
			if f.Args != "" {
				fmt.Fprintf(&b, " args=%s", f.Args)
			}
			b.WriteString("\n")
		}
		if g.CreatedBy.Func != "" {
			fmt.Fprintf(&b, "  created by %s %s:%d\n", g.CreatedBy.Func, g.CreatedBy.File, g.CreatedBy.Line)
		}
	}
	return b.String()
}

// TestGoldenReal parses every fixture captured from a real Go program
// (internal/testprog/dumps) and compares the grouped result.
func TestGoldenReal(t *testing.T) {
	files, err := filepath.Glob("testdata/real/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no fixtures in testdata/real")
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			snap, err := Parse(bytes.NewReader(data), Options{})
			if err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, snap)
			compareGolden(t, filepath.Join("testdata/golden", name+".golden"), renderSnapshot(snap))
		})
	}
}

func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != got {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := 0; i < max(len(gl), len(wl)); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s differs at line %d:\n got: %s\nwant: %s\n(go test -update rewrites it)", path, i+1, g, w)
			}
		}
	}
}

// checkInvariants holds for every snapshot Parse returns.
func checkInvariants(t testing.TB, s *Snapshot) {
	t.Helper()
	sum := 0
	keys := map[string]bool{}
	for i, g := range s.Groups {
		sum += g.Count
		if g.Count <= 0 {
			t.Fatalf("group %s has count %d", g.Key, g.Count)
		}
		if len(g.Key) != 16 {
			t.Fatalf("key %q is not 16 hex digits", g.Key)
		}
		if keys[g.Key] {
			t.Fatalf("duplicate key %s", g.Key)
		}
		keys[g.Key] = true
		if i > 0 {
			p := s.Groups[i-1]
			if p.Count < g.Count || p.Count == g.Count && p.Key >= g.Key {
				t.Fatalf("groups not sorted at %d", i)
			}
		}
		if !slices.IsSorted(g.IDs) {
			t.Fatalf("group %s IDs not ascending", g.Key)
		}
		if len(g.IDs) > g.Count {
			t.Fatalf("group %s has %d IDs for count %d", g.Key, len(g.IDs), g.Count)
		}
		if g.WaitKnown > g.Count || g.Locked > g.Count || g.Leaked > g.Count || g.WaitMin > g.WaitMax {
			t.Fatalf("group %s counters inconsistent: %+v", g.Key, g)
		}
	}
	if sum != s.Goroutines {
		t.Fatalf("groups sum to %d goroutines, snapshot says %d", sum, s.Goroutines)
	}
	if s.Truncated != (s.TruncatedReason != "") {
		t.Fatalf("Truncated=%v with reason %q", s.Truncated, s.TruncatedReason)
	}
}
