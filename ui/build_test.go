package ui

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// sumFiles hashes name + "\n" + content of each file, in order — the same
// digest ui/web/build.mjs writes to ui/web/build.sum.
func sumFiles(t *testing.T, dir string, names []string) string {
	t.Helper()
	h := sha256.New()
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		h.Write([]byte(n + "\n"))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// TestBuildIsFresh fails when ui/web's sources changed after the last
// build, or ui/static was edited by hand — without needing node. (CI also
// runs `ui/web/build.sh --check`, which rebuilds and compares bytes.)
func TestBuildIsFresh(t *testing.T) {
	b, err := os.ReadFile("web/build.sum")
	if err != nil {
		t.Fatalf("read web/build.sum: %v (run ui/web/build.sh)", err)
	}
	want := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, _ := strings.Cut(line, " ")
		want[k] = v
	}
	inputs := []string{"build.mjs", "package-lock.json"}
	for _, n := range listDir(t, "web/src") {
		inputs = append(inputs, "src/"+n)
	}
	if got := sumFiles(t, "web", inputs); got != want["inputs"] {
		t.Errorf("ui/web sources changed since ui/static was built: run ui/web/build.sh and commit ui/static and ui/web/build.sum")
	}
	if got := sumFiles(t, "static", listDir(t, "static")); got != want["outputs"] {
		t.Errorf("ui/static differs from what ui/web/build.sh wrote: do not edit it by hand; run ui/web/build.sh")
	}
}
