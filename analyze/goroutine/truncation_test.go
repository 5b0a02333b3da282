package goroutine

import (
	"bytes"
	"os"
	"testing"
)

// TestTruncationEveryCut cuts a real dump at every byte of its last
// goroutine: whenever the cut leaves an unterminated last line, the parser
// must say the dump is truncated (a cut at a line end can look complete).
func TestTruncationEveryCut(t *testing.T) {
	full, err := os.ReadFile("testdata/real/goroutine.debug2.txt")
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.LastIndex(full, []byte("\ngoroutine ")) + 1
	end := len(bytes.TrimRight(full, "\n"))
	for cut := start + 1; cut < end; cut++ {
		if full[cut-1] == '\n' {
			continue
		}
		s, err := Parse(bytes.NewReader(full[:cut]), Options{})
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		if !s.Truncated {
			t.Errorf("cut at %d (…%q) not reported as truncated", cut, full[max(start, cut-30):cut])
		}
	}
}
