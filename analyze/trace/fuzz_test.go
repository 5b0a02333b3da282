package trace

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// FuzzGoroutines feeds arbitrary bytes to Goroutines: it must never panic,
// must fail with one of the package's sentinel errors, or return an Activity
// that satisfies checkInvariants. The committed corpus in
// testdata/fuzz/FuzzGoroutines holds truncations of the fixtures and odd
// headers; the full fixtures are added here.
//
// Inputs are traces of ~15 KB, which the fuzzer's default minimisation (up to
// 60 s per new input) makes look stalled; run it as
//
//	go test ./analyze/trace -run '^$' -fuzz FuzzGoroutines -fuzztime 60s -fuzzminimizetime 2s
func FuzzGoroutines(f *testing.F) {
	for _, name := range fixtures {
		data, err := os.ReadFile(filepath.Join("testdata", name+".trace"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		act, err := Goroutines(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrNotTrace) && !errors.Is(err, ErrUnsupportedVersion) &&
				!errors.Is(err, ErrTruncated) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		if err := checkInvariants(act); err != nil {
			t.Fatal(err)
		}
	})
}

// fuzzSeeds are the committed corpus entries, written by go test -update.
func fuzzSeeds(t *testing.T) map[string][]byte {
	start, err := os.ReadFile("testdata/start.trace")
	if err != nil {
		t.Fatal(err)
	}
	flight, err := os.ReadFile("testdata/flight.trace")
	if err != nil {
		t.Fatal(err)
	}
	seeds := map[string][]byte{
		"header-only":      []byte("go 1.26 trace\x00\x00\x00"),
		"header-go1.21":    []byte("go 1.21 trace\x00\x00\x00\x00\x01\x02\x03"),
		"header-go1.22":    []byte("go 1.22 trace\x00\x00\x00\x00\x01\x02\x03"),
		"start-first-3k":   start[:3000],
		"flight-first-5k":  flight[:5000],
		"start-minus-1":    start[:len(start)-1],
		"flight-minus-200": flight[:len(flight)-200],
	}
	return seeds
}

func writeFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzGoroutines")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range fuzzSeeds(t) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(data)))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFuzzSeeds keeps the committed corpus in step with the fixtures.
func TestFuzzSeeds(t *testing.T) {
	if *update {
		writeFuzzSeeds(t)
		return
	}
	for name := range fuzzSeeds(t) {
		if _, err := os.Stat(filepath.Join("testdata", "fuzz", "FuzzGoroutines", name)); err != nil {
			t.Errorf("seed %s missing: %v (go test -update writes it)", name, err)
		}
	}
}
