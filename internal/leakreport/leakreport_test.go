package leakreport

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopulse/gopulse/internal/leakcheck"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestRenderGolden renders the report of two real dumps (the fixture
// program, before and after the runtime's leak detector ran) in every format.
func TestRenderGolden(t *testing.T) {
	res, err := leakcheck.Files(pinned(t, "goroutine.debug2.txt", "goroutine.afterleak.debug2.txt"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	res.Target = "fixtures" // the paths differ between machines
	for _, tc := range []struct {
		name   string
		render func(*bytes.Buffer) error
	}{
		{"report.txt", func(b *bytes.Buffer) error { return Text(b, res) }},
		{"report.json", func(b *bytes.Buffer) error { return JSON(b, res) }},
		{"report.html", func(b *bytes.Buffer) error { return HTML(b, res) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.render(&b); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(b.Bytes(), want) {
				t.Errorf("%s differs from %s; run go test ./internal/leakreport -update and review the diff", tc.name, golden)
			}
		})
	}
}

// pinned copies fixtures into a temp dir with modification times one
// minute apart: the analysis takes snapshot times from them, and a
// checkout's own times vary.
func pinned(t *testing.T, names ...string) []string {
	t.Helper()
	dir := filepath.Join("..", "..", "analyze", "goroutine", "testdata", "real")
	tmp := t.TempDir()
	base := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	var out []string
	for i, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(tmp, n)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		mt := base.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// TestJSONStableFields checks the field names the issue promises.
func TestJSONStableFields(t *testing.T) {
	dir := filepath.Join("..", "..", "analyze", "goroutine", "testdata", "real")
	res, err := leakcheck.Files([]string{filepath.Join(dir, "goroutine.afterleak.debug2.txt")}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := JSON(&b, res); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"snapshots", "goroutines", "groups", "errors"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("top-level field %q missing", k)
		}
	}
	groups := doc["groups"].([]any)
	if len(groups) == 0 {
		t.Fatal("no groups")
	}
	g := groups[0].(map[string]any)
	for _, k := range []string{"id", "verdict", "state", "count", "counts", "wait", "frames", "created_by", "evidence"} {
		if _, ok := g[k]; !ok {
			t.Errorf("group field %q missing", k)
		}
	}
	f := g["frames"].([]any)[0].(map[string]any)
	for _, k := range []string{"func", "file", "line"} {
		if _, ok := f[k]; !ok {
			t.Errorf("frame field %q missing", k)
		}
	}
}
