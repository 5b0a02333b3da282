// Package ui is gopulse's web UI: server-rendered html/template pages plus
// a small script bundle that draws the data it reads from the collector's
// JSON API (docs/API.md). The built assets under static/ are committed and
// embedded, so `go build` alone produces the whole UI; ui/web holds their
// sources and build script.
//
// The UI talks to the collector over HTTP only — every number on a page
// comes from /api/v1 — with two exceptions: flame graphs and trace
// summaries. Turning a pprof
// profile into a flame-graph tree in the browser would mean shipping a
// protobuf decoder and gunzip to it, so the UI serves
// /ui/api/profile, which reads the bundle file through the function the
// caller passes in (Options.OpenBundleFile) and parses it with
// github.com/google/pprof/profile. Likewise /ui/api/trace summarises a
// bundle's execution trace through Options.SummarizeTrace, which the
// collector implements with analyze/trace. The package imports none of
// gopulse's other packages; the collector adapts its store and analyses
// to those functions.
//
// The handler is mounted by the caller, never registered on import:
//
//	mux.Handle("/", ui.Handler(ui.Options{OpenBundleFile: open}))
package ui

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"sort"
	"strings"
)

//go:embed static
var staticFS embed.FS

//go:embed templates/*.html
var templateFS embed.FS

// Options configures Handler. The zero value serves the pages without
// flame graphs.
type Options struct {
	// OpenBundleFile streams one file of an evidence bundle; the profile
	// endpoint (flame graphs, goroutine groups of a profile) needs it.
	// nil answers that endpoint with 501.
	OpenBundleFile func(ctx context.Context, bundleID, name string) (io.ReadCloser, error)
	// IsNotFound reports whether an error of OpenBundleFile means the
	// bundle or file does not exist (answered 404, not 500).
	IsNotFound func(error) bool
	// Auth, when set, guards every page and endpoint except the static
	// assets (which hold no data): it returns nil when the request may read.
	// Give it the same function that guards /api/v1.
	Auth func(*http.Request) error
	// MaxProfileBytes bounds a profile read for the profile endpoint,
	// compressed (default 64 MiB).
	MaxProfileBytes int64
	// SummarizeTrace reads an execution trace (a bundle's trace.out) and
	// summarises it for the bundle page; errors wrapping ErrNotTrace are
	// answered 422. nil answers the trace endpoint with 501. The caller
	// passes it in so that this package needs no trace parser.
	SummarizeTrace func(r io.Reader) (TraceSummary, error)
	// MaxTraceBytes bounds a trace read for the trace endpoint (default
	// 256 MiB).
	MaxTraceBytes int64
}

// asset is one embedded static file with what its response needs.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

type handler struct {
	opts   Options
	mux    *http.ServeMux
	tmpl   map[string]*template.Template
	assets map[string]asset // by name under static/, e.g. "app.js"
	// version is a hash over all assets, appended to asset URLs so a
	// browser never mixes a cached old script with a new page.
	version string
}

// Handler returns the UI: "/" (fleet), "/instance/{service}/{id}",
// "/finding/{id}", "/bundle/{id}", "/static/…", "/ui/api/profile" and
// "/ui/api/trace". It
// expects to be mounted at the root of the server that also serves
// /api/v1.
func Handler(opts Options) http.Handler {
	if opts.MaxProfileBytes <= 0 {
		opts.MaxProfileBytes = 64 << 20
	}
	if opts.MaxTraceBytes <= 0 {
		opts.MaxTraceBytes = 256 << 20
	}
	h := &handler{opts: opts, mux: http.NewServeMux(), assets: map[string]asset{}, tmpl: map[string]*template.Template{}}
	if err := h.loadAssets(); err != nil {
		// The assets are compiled in; failing here means the binary was
		// built from a broken tree, which the package tests catch.
		panic(err)
	}
	if err := h.loadTemplates(); err != nil {
		panic(err)
	}
	h.mux.HandleFunc("GET /static/{name...}", h.serveStatic)
	h.mux.HandleFunc("GET /{$}", h.page("fleet", func(r *http.Request) (pageData, error) {
		return pageData{Title: "Fleet"}, nil
	}))
	h.mux.HandleFunc("GET /instance/{service}/{id}", h.page("instance", func(r *http.Request) (pageData, error) {
		s, id := r.PathValue("service"), r.PathValue("id")
		return pageData{Title: s + " / " + id, Service: s, Instance: id}, nil
	}))
	h.mux.HandleFunc("GET /finding/{id}", h.page("finding", func(r *http.Request) (pageData, error) {
		id := r.PathValue("id")
		if id == "" || strings.Trim(id, "0123456789") != "" {
			return pageData{}, errNotFound{fmt.Sprintf("finding %q: IDs are numbers", id)}
		}
		return pageData{Title: "Finding " + id, Finding: id}, nil
	}))
	h.mux.HandleFunc("GET /bundle/{id}", h.page("bundle", func(r *http.Request) (pageData, error) {
		id := r.PathValue("id")
		return pageData{Title: "Bundle " + id, Bundle: id}, nil
	}))
	h.mux.HandleFunc("GET /ui/api/profile", h.guard(h.serveProfile))
	h.mux.HandleFunc("GET /ui/api/trace", h.guard(h.serveTrace))
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.renderError(w, r, http.StatusNotFound, fmt.Sprintf("no page at %s", r.URL.Path))
	})
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *handler) loadAssets() error {
	sum := sha256.New()
	var names []string
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		names = append(names, p)
		return nil
	})
	if err != nil {
		return fmt.Errorf("ui: list embedded assets: %w", err)
	}
	sort.Strings(names)
	for _, p := range names {
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return fmt.Errorf("ui: read embedded %s: %w", p, err)
		}
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = http.DetectContentType(b)
		}
		fs := sha256.Sum256(b)
		name := strings.TrimPrefix(p, "static/")
		h.assets[name] = asset{body: b, contentType: ct, etag: `"` + hex.EncodeToString(fs[:8]) + `"`}
		sum.Write([]byte(name))
		sum.Write(fs[:])
	}
	h.version = hex.EncodeToString(sum.Sum(nil)[:6])
	return nil
}

// serveStatic serves the embedded bytes as they are. A request carrying
// the current ?v= may be cached for good; otherwise the browser revalidates
// with the ETag.
func (h *handler) serveStatic(w http.ResponseWriter, r *http.Request) {
	a, ok := h.assets[r.PathValue("name")]
	if !ok {
		http.Error(w, "no such asset", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", a.contentType)
	w.Header().Set("ETag", a.etag)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.URL.Query().Get("v") == h.version {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, "", zeroTime, bytes.NewReader(a.body))
}

// pageData is what a page template sees. Pages carry identifiers only; the
// script fetches the data from the API, so a page never shows numbers
// that the API would not.
type pageData struct {
	Page     string
	Title    string
	Version  string
	Service  string
	Instance string
	Finding  string
	Bundle   string
	Status   int
	Message  string
}

type errNotFound struct{ msg string }

func (e errNotFound) Error() string { return e.msg }

func (h *handler) loadTemplates() error {
	base, err := template.ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return fmt.Errorf("ui: parse layout: %w", err)
	}
	for _, name := range []string{"fleet", "instance", "finding", "bundle", "error"} {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("ui: parse template %s: %w", name, err)
		}
		h.tmpl[name] = t
	}
	return nil
}

func (h *handler) guard(fn http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if h.opts.Auth != nil {
			if err := h.opts.Auth(r); err != nil {
				w.Header().Set("WWW-Authenticate", `Basic realm="gopulse", charset="UTF-8"`)
				http.Error(w, "unauthenticated: "+err.Error(), http.StatusUnauthorized)
				return
			}
		}
		fn(w, r)
	}
}

func (h *handler) page(name string, data func(*http.Request) (pageData, error)) http.HandlerFunc {
	return h.guard(func(w http.ResponseWriter, r *http.Request) {
		d, err := data(r)
		if err != nil {
			status := http.StatusInternalServerError
			var nf errNotFound
			if errors.As(err, &nf) {
				status = http.StatusNotFound
			}
			h.renderError(w, r, status, err.Error())
			return
		}
		d.Page = name
		h.render(w, http.StatusOK, name, d)
	})
}

func (h *handler) renderError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h.render(w, status, "error", pageData{Page: "error", Title: http.StatusText(status), Status: status, Message: msg})
}

func (h *handler) render(w http.ResponseWriter, status int, name string, d pageData) {
	d.Version = h.version
	var buf bytes.Buffer
	if err := h.tmpl[name].ExecuteTemplate(&buf, "layout", d); err != nil {
		http.Error(w, "render "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// Everything the page loads comes from this server: no CDN, no inline
	// script, so a strict policy costs nothing.
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
