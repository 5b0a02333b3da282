package ship

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzSpoolSegment feeds arbitrary bytes to the segment reader as a
// spooled segment left by an earlier run: it must return records or
// io.EOF, never panic or allocate without bound.
func FuzzSpoolSegment(f *testing.F) {
	f.Add([]byte{0, 0, 0, 3, 0x35, 0x2b, 0x28, 0x5d, 'o', 'n', 'e'})
	f.Add([]byte{0, 0, 0, 9, 1, 2})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		name := "seg-000000000001-2026010100.seg"
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
		sp, err := OpenSpool(dir, 1<<20, time.Hour, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		defer sp.Close()
		for i := 0; i < len(b)+1; i++ {
			rec, next, err := sp.NextRecord(name)
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(rec)) > int64(len(b)) {
				t.Fatalf("record of %d bytes from %d input bytes", len(rec), len(b))
			}
			sp.MarkSent(name, next)
		}
		t.Fatal("reader did not reach the end")
	})
}
