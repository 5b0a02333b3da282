package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"

	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// Every embedded asset is served byte for byte, with a type and an ETag
// that revalidates; nothing else is served under /static/.
func TestStaticServesEmbeddedAssets(t *testing.T) {
	h := Handler(Options{})
	n := 0
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		want, _ := staticFS.ReadFile(p)
		url := "/" + p
		w := get(t, h, url)
		if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), want) {
			t.Errorf("GET %s: %d, %d bytes; want 200 and the %d embedded bytes", url, w.Code, w.Body.Len(), len(want))
		}
		if ct := w.Header().Get("Content-Type"); ct == "" || (strings.HasSuffix(p, ".js") && !strings.Contains(ct, "javascript")) {
			t.Errorf("GET %s: Content-Type %q", url, ct)
		}
		etag := w.Header().Get("ETag")
		if w2 := get(t, h, url, "If-None-Match", etag); w2.Code != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: %d, want 304", url, w2.Code)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{"app.js", "app.css", "theme.js"} {
		if _, err := staticFS.ReadFile("static/" + must); err != nil {
			t.Errorf("static/%s is not embedded: run ui/web/build.sh", must)
		}
	}
	if n == 0 {
		t.Fatal("no embedded assets")
	}
	for _, p := range []string{"/static/nope.js", "/static/../ui.go", "/static/"} {
		if w := get(t, h, p); w.Code == 200 {
			t.Errorf("GET %s: 200, want an error", p)
		}
	}
}

// Asset URLs in pages carry the build version, and such a URL is cached
// for good while a bare one revalidates.
func TestStaticCaching(t *testing.T) {
	h := Handler(Options{}).(*handler)
	page := get(t, h, "/").Body.String()
	if !strings.Contains(page, "/static/app.js?v="+h.version) {
		t.Fatalf("page does not reference app.js?v=%s", h.version)
	}
	if cc := get(t, h, "/static/app.js?v="+h.version).Header().Get("Cache-Control"); !strings.Contains(cc, "immutable") {
		t.Errorf("versioned asset Cache-Control %q, want immutable", cc)
	}
	if cc := get(t, h, "/static/app.js").Header().Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("bare asset Cache-Control %q, want no-cache", cc)
	}
}

func TestPages(t *testing.T) {
	h := Handler(Options{})
	for _, tc := range []struct {
		path   string
		status int
		page   string
		has    string
	}{
		{"/", 200, "fleet", `id="fleet"`},
		{"/instance/checkout/abc-123", 200, "instance", `data-instance="abc-123"`},
		{"/instance/demo/127.0.0.1:6060", 200, "instance", `data-instance="127.0.0.1:6060"`},
		{"/instance/we%3Cird/x", 200, "instance", `data-service="we&lt;ird"`},
		{"/finding/42", 200, "finding", `data-finding="42"`},
		{"/finding/4x2", 404, "error", "IDs are numbers"},
		{"/bundle/scrape-heap-demo-1", 200, "bundle", `data-bundle="scrape-heap-demo-1"`},
		{"/nope", 404, "error", "no page at /nope"},
		{"/instance/only-service", 404, "error", ""},
	} {
		w := get(t, h, tc.path)
		body := w.Body.String()
		if w.Code != tc.status || !strings.Contains(body, `data-page="`+tc.page+`"`) || !strings.Contains(body, tc.has) {
			t.Errorf("GET %s: %d, want %d with page %q containing %q\n%s", tc.path, w.Code, tc.status, tc.page, tc.has, body)
		}
		if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", tc.path, ct)
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: CSP %q", tc.path, csp)
		}
	}
}

func TestAuth(t *testing.T) {
	h := Handler(Options{Auth: func(r *http.Request) error {
		if r.Header.Get("Authorization") == "Bearer ok" {
			return nil
		}
		return errors.New("API credentials missing")
	}})
	for _, p := range []string{"/", "/instance/a/b", "/finding/1", "/bundle/x", "/ui/api/profile?bundle=x&file=y"} {
		if w := get(t, h, p); w.Code != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials: %d, want 401", p, w.Code)
		}
	}
	if w := get(t, h, "/", "Authorization", "Bearer ok"); w.Code != 200 {
		t.Errorf("GET / with credentials: %d", w.Code)
	}
	// Assets hold no data and the 401 page needs its stylesheet.
	if w := get(t, h, "/static/app.css"); w.Code != 200 {
		t.Errorf("GET /static/app.css without credentials: %d, want 200", w.Code)
	}
}

var sink [][]byte

// heapProfile returns a real heap profile of this test process, with
// allocations from a known function.
func heapProfile(t testing.TB) []byte {
	old := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	defer func() { runtime.MemProfileRate = old }()
	for i := 0; i < 200; i++ {
		sink = append(sink, make([]byte, 4096))
	}
	runtime.GC()
	var buf bytes.Buffer
	if err := pprof.Lookup("heap").WriteTo(&buf, 0); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type notFound struct{}

func (notFound) Error() string { return "not found" }

func TestProfileEndpoint(t *testing.T) {
	heap := heapProfile(t)
	h := Handler(Options{
		OpenBundleFile: func(ctx context.Context, id, name string) (io.ReadCloser, error) {
			switch {
			case id == "b1" && name == "heap.pb.gz":
				return io.NopCloser(bytes.NewReader(heap)), nil
			case id == "b1" && name == "notes.txt":
				return io.NopCloser(strings.NewReader("not a profile")), nil
			}
			return nil, notFound{}
		},
		IsNotFound: func(err error) bool { return errors.As(err, new(notFound)) },
	})
	w := get(t, h, "/ui/api/profile?bundle=b1&file=heap.pb.gz&si=1")
	if w.Code != 200 {
		t.Fatalf("profile: %d %s", w.Code, w.Body)
	}
	var p profileJSON
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if len(p.SampleTypes) != 4 || p.SampleTypes[1].Type != "alloc_space" || p.Index != 1 {
		t.Errorf("sample types %v index %d, want heap's four with alloc_space chosen", p.SampleTypes, p.Index)
	}
	if p.Total < 200*4096 || p.Root.V != p.Total {
		t.Errorf("total %d root %d, want ≥ %d and equal", p.Total, p.Root.V, 200*4096)
	}
	var sum int64
	for _, c := range p.Root.C {
		sum += c.V
	}
	if sum > p.Root.V {
		t.Errorf("children sum %d exceeds root %d", sum, p.Root.V)
	}
	found := false
	for _, n := range p.Names {
		found = found || strings.HasSuffix(n, "ui.heapProfile")
	}
	if !found || len(p.Stacks) == 0 {
		t.Errorf("ui.heapProfile not among %d names or no stacks", len(p.Names))
	}
	for _, tc := range []struct {
		q    string
		code int
	}{
		{"bundle=b1", 400},
		{"bundle=b1&file=heap.pb.gz&si=9", 400},
		{"bundle=b2&file=heap.pb.gz", 404},
		{"bundle=b1&file=notes.txt", 422},
	} {
		if w := get(t, h, "/ui/api/profile?"+tc.q); w.Code != tc.code || !strings.Contains(w.Body.String(), `"message"`) {
			t.Errorf("profile?%s: %d %s, want %d with a message", tc.q, w.Code, w.Body, tc.code)
		}
	}
	if w := get(t, Handler(Options{}), "/ui/api/profile?bundle=b1&file=x"); w.Code != http.StatusNotImplemented {
		t.Errorf("without OpenBundleFile: %d, want 501", w.Code)
	}
}

func FuzzFoldProfile(f *testing.F) {
	f.Add(heapProfile(f))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h := Handler(Options{OpenBundleFile: func(ctx context.Context, id, name string) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(b)), nil
		}})
		w := get(t, h, "/ui/api/profile?bundle=x&file=y")
		if w.Code != 200 && w.Code != 422 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	})
}
