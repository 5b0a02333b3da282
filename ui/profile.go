package ui

import (
	"encoding/json"

	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"

	"github.com/google/pprof/profile"
)

// flameNode is one frame of the flame graph; children are sorted by name
// so the picture is stable between loads. N indexes Names.
type flameNode struct {
	N int          `json:"n"`
	V int64        `json:"v"`
	C []*flameNode `json:"c,omitempty"`

	kids map[int]*flameNode
}

// ProfileJSON is the answer of /ui/api/profile: one sample type of one
// pprof profile folded into a call tree, plus the heaviest distinct stacks.
type profileJSON struct {
	Bundle      string       `json:"bundle"`
	File        string       `json:"file"`
	SampleTypes []sampleType `json:"sample_types"`
	// Index is the sample type shown (the profile's default unless ?si=).
	Index int   `json:"index"`
	Total int64 `json:"total"`
	// Names holds function names once; nodes refer to them by index.
	Names []string   `json:"names"`
	Root  *flameNode `json:"root"`
	// Pruned counts frames left out because each was below MinValue.
	Pruned   int     `json:"pruned"`
	MinValue int64   `json:"min_value"`
	Stacks   []stack `json:"stacks"`
	// DurationNanos and PeriodType describe a CPU profile's window.
	DurationNanos int64 `json:"duration_nanos,omitempty"`
}

type sampleType struct {
	Type string `json:"type"`
	Unit string `json:"unit"`
}

type stackFrame struct {
	Func string `json:"func"`
	File string `json:"file,omitempty"`
	Line int64  `json:"line,omitempty"`
}

// stack is one distinct call stack (leaf first) with its summed value —
// for a goroutine profile, a group of goroutines.
type stack struct {
	Value  int64        `json:"value"`
	Frames []stackFrame `json:"frames"`
	Labels string       `json:"labels,omitempty"`
}

// maxStacks bounds the stack list; maxNodes the flame tree, by raising the
// pruning threshold: a frame under 1/maxNodes of the total is too narrow to
// draw anyway.
const (
	maxStacks = 200
	maxNodes  = 20000
)

// openBundleFile opens the bundle file named by the request's bundle= and
// file= parameters, answering the error itself when it cannot (ok false).
// available is false when the server was built without what the endpoint
// needs.
func (h *handler) openBundleFile(w http.ResponseWriter, r *http.Request, example string, available bool) (id, file string, rc io.ReadCloser, ok bool) {
	q := r.URL.Query()
	id, file = q.Get("bundle"), q.Get("file")
	if id == "" || file == "" {
		jsonError(w, http.StatusBadRequest, "need bundle= and file=, e.g. "+example)
		return "", "", nil, false
	}
	if !available || h.opts.OpenBundleFile == nil {
		jsonError(w, http.StatusNotImplemented, "this server was built without access to this bundle view")
		return "", "", nil, false
	}
	rc, err := h.opts.OpenBundleFile(r.Context(), id, file)
	if err != nil {
		if h.opts.IsNotFound != nil && h.opts.IsNotFound(err) {
			jsonError(w, http.StatusNotFound, fmt.Sprintf("bundle %s has no file %s", id, file))
			return "", "", nil, false
		}
		jsonError(w, http.StatusInternalServerError, fmt.Sprintf("open %s of bundle %s: %v", file, id, err))
		return "", "", nil, false
	}
	return id, file, rc, true
}

func (h *handler) serveProfile(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id, file, rc, ok := h.openBundleFile(w, r, "/ui/api/profile?bundle=ID&file=heap.pb.gz", h.opts.OpenBundleFile != nil)
	if !ok {
		return
	}
	defer rc.Close()
	p, err := profile.Parse(io.LimitReader(rc, h.opts.MaxProfileBytes))
	if err != nil {
		jsonError(w, http.StatusUnprocessableEntity, fmt.Sprintf("%s of bundle %s is not a pprof profile: %v", file, id, err))
		return
	}
	si := -1
	if v := q.Get("si"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n >= len(p.SampleType) {
			jsonError(w, http.StatusBadRequest, fmt.Sprintf("si %q: want 0–%d (the sample type)", v, len(p.SampleType)-1))
			return
		}
		si = n
	}
	out := foldProfile(p, si)
	out.Bundle, out.File = id, file
	w.Header().Set("Content-Type", "application/json")
	// A bundle file never changes once committed.
	w.Header().Set("Cache-Control", "private, max-age=3600")
	json.NewEncoder(w).Encode(out)
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	code := map[int]string{400: "invalid_argument", 404: "not_found", 422: "invalid_argument", 501: "unimplemented"}[status]
	if code == "" {
		code = "internal"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"code": code, "message": msg})
}

// defaultIndex picks the sample type a person looks at first: the
// profile's declared default, else the last one (inuse_space for heap,
// cpu nanoseconds for CPU).
func defaultIndex(p *profile.Profile) int {
	for i, st := range p.SampleType {
		if p.DefaultSampleType != "" && st.Type == p.DefaultSampleType {
			return i
		}
	}
	return len(p.SampleType) - 1
}

// frames returns a sample's stack leaf first, inlined calls expanded.
func frames(s *profile.Sample) []stackFrame {
	var out []stackFrame
	for _, loc := range s.Location {
		if len(loc.Line) == 0 {
			out = append(out, stackFrame{Func: fmt.Sprintf("0x%x", loc.Address)})
			continue
		}
		for _, ln := range loc.Line {
			f := stackFrame{Func: "?", Line: ln.Line}
			if ln.Function != nil {
				f.Func, f.File = ln.Function.Name, ln.Function.Filename
			}
			out = append(out, f)
		}
	}
	return out
}

func foldProfile(p *profile.Profile, si int) profileJSON {
	out := profileJSON{DurationNanos: p.DurationNanos, Names: []string{"root"}}
	for _, st := range p.SampleType {
		out.SampleTypes = append(out.SampleTypes, sampleType{st.Type, st.Unit})
	}
	if len(p.SampleType) == 0 {
		out.Root = &flameNode{}
		return out
	}
	if si < 0 {
		si = defaultIndex(p)
	}
	out.Index = si
	nameIdx := map[string]int{"root": 0}
	root := &flameNode{kids: map[int]*flameNode{}}
	stacks := map[string]*stack{}
	nodes := 1
	for _, s := range p.Sample {
		v := s.Value[si]
		if v == 0 {
			continue
		}
		fr := frames(s)
		root.V += v
		n := root
		for i := len(fr) - 1; i >= 0; i-- {
			idx, ok := nameIdx[fr[i].Func]
			if !ok {
				idx = len(out.Names)
				nameIdx[fr[i].Func] = idx
				out.Names = append(out.Names, fr[i].Func)
			}
			k := n.kids[idx]
			if k == nil {
				k = &flameNode{N: idx, kids: map[int]*flameNode{}}
				n.kids[idx] = k
				nodes++
			}
			k.V += v
			n = k
		}
		key := fmt.Sprint(fr)
		if st := stacks[key]; st != nil {
			st.Value += v
		} else {
			stacks[key] = &stack{Value: v, Frames: fr}
		}
	}
	out.Total = root.V
	if nodes > maxNodes && root.V > 0 {
		out.MinValue = root.V / maxNodes
	}
	out.Root = root
	finish(root, out.MinValue, &out.Pruned, out.Names)
	for _, s := range stacks {
		out.Stacks = append(out.Stacks, *s)
	}
	sort.Slice(out.Stacks, func(i, j int) bool {
		if out.Stacks[i].Value != out.Stacks[j].Value {
			return out.Stacks[i].Value > out.Stacks[j].Value
		}
		return fmt.Sprint(out.Stacks[i].Frames) < fmt.Sprint(out.Stacks[j].Frames)
	})
	if len(out.Stacks) > maxStacks {
		out.Stacks = out.Stacks[:maxStacks]
	}
	if out.Stacks == nil {
		out.Stacks = []stack{}
	}
	return out
}

// finish turns the child maps into sorted slices, dropping frames below
// min.
func finish(n *flameNode, min int64, pruned *int, names []string) {
	for _, k := range n.kids {
		if k.V < min || k.V == 0 {
			*pruned++
			continue
		}
		n.C = append(n.C, k)
		finish(k, min, pruned, names)
	}
	n.kids = nil
	sort.Slice(n.C, func(i, j int) bool { return names[n.C[i].N] < names[n.C[j].N] })
}
