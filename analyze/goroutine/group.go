package goroutine

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
)

// Parse reads a goroutine dump in any format (see Scan) and groups its
// goroutines by opts.Similarity. Memory grows with the number of distinct
// stacks plus 8 bytes per goroutine ID kept, not with the input size.
//
// Group keys are FNV-1a hashes of what the similarity compares, so the same
// stack has the same Key in every snapshot of every process; the aggregated
// formats have no created-by site, so their keys differ from the text
// format's for the same stack (Frames and State agree).
func Parse(r io.Reader, opts Options) (*Snapshot, error) {
	s := newScanner(opts)
	gr := &grouper{
		sim:       s.opts.Similarity,
		maxGroups: s.opts.MaxGroups,
		keepIDs:   opts.KeepIDs,
		byHash:    make(map[uint64]*groupAcc),
	}
	s.emit = gr.add
	info, err := s.run(r)
	if err != nil {
		return nil, err
	}
	return &Snapshot{
		Time:            opts.Time,
		Format:          info.Format,
		Goroutines:      info.Goroutines,
		Groups:          gr.finish(),
		Truncated:       info.Truncated,
		TruncatedReason: info.TruncatedReason,
		Bytes:           info.Bytes,
		Skipped:         info.Skipped,
	}, nil
}

type groupAcc struct {
	Group
	waitSet bool
}

type grouper struct {
	sim       Similarity
	maxGroups int
	keepIDs   int
	byHash    map[uint64]*groupAcc
	groups    []*groupAcc
}

// hash mixes the per-string hashes the scanner computed while parsing: a
// few words per frame, however long the names.
func (gr *grouper) hash(s *scanner) uint64 {
	g, fh, cbh := &s.g, s.fh, s.cbh
	h := fnvWord(fnvOffset, s.stateH)
	lines := gr.sim != SameFuncs
	for i := range g.Frames {
		f := &g.Frames[i]
		h = fnvWord(h, fh[i].fn)
		h = fnvWord(h, fh[i].file)
		if lines {
			h = fnvWord(h, uint64(f.Line))
		}
		if gr.sim == ExactArgs {
			h = fnvWord(fnvString(h, f.Args), 0)
		}
	}
	if g.Elided {
		h = fnvWord(h, 1)
	}
	h = fnvWord(h, cbh.fn)
	h = fnvWord(h, cbh.file)
	if lines {
		h = fnvWord(h, uint64(g.CreatedBy.Line))
	}
	return h
}

func (gr *grouper) same(a *Group, g *Goroutine) bool {
	if a.State != g.State || a.Elided != g.Elided || len(a.Frames) != len(g.Frames) ||
		!gr.sameFrame(&a.CreatedBy, &g.CreatedBy) {
		return false
	}
	for i := range a.Frames {
		if !gr.sameFrame(&a.Frames[i], &g.Frames[i]) {
			return false
		}
	}
	return true
}

func (gr *grouper) sameFrame(a, b *Frame) bool {
	if a.Func != b.Func || a.File != b.File {
		return false
	}
	switch gr.sim {
	case SameFuncs:
		return true
	case ExactArgs:
		return a.Line == b.Line && a.Args == b.Args
	}
	return a.Line == b.Line
}

// add is the scanner's emit callback under Parse.
func (gr *grouper) add(s *scanner) error {
	return gr.addHashed(&s.g, gr.hash(s))
}

func (gr *grouper) addHashed(g *Goroutine, h uint64) error {
	var acc *groupAcc
	for {
		acc = gr.byHash[h]
		if acc == nil {
			if len(gr.groups) >= gr.maxGroups {
				return fmt.Errorf("more than Options.MaxGroups (%d) distinct stacks; raise it, or group coarser with SameFuncs: %w", gr.maxGroups, ErrTooManyStacks)
			}
			acc = gr.newGroup(g, h)
			break
		}
		if gr.same(&acc.Group, g) {
			break
		}
		h++ // a 64-bit collision: probe on, deterministically
	}
	a := &acc.Group
	a.Count += g.Count
	if g.ID != 0 {
		a.IDs = append(a.IDs, g.ID)
		if k := gr.keepIDs; k > 0 && len(a.IDs) >= 2*k {
			slices.Sort(a.IDs)
			a.IDs = a.IDs[:k]
		}
	}
	if g.Wait > 0 {
		if !acc.waitSet || g.Wait < a.WaitMin {
			a.WaitMin = g.Wait
		}
		if !acc.waitSet || g.Wait > a.WaitMax {
			a.WaitMax = g.Wait
		}
		acc.waitSet = true
		a.WaitKnown += g.Count
	}
	if g.Locked {
		a.Locked += g.Count
	}
	if g.Leaked {
		a.Leaked += g.Count
	}
	if a.Labels == nil && len(g.Labels) > 0 {
		a.Labels = maps.Clone(g.Labels)
	}
	return nil
}

func (gr *grouper) newGroup(g *Goroutine, h uint64) *groupAcc {
	acc := &groupAcc{Group: Group{
		Key:       keyString(h),
		State:     g.State,
		Frames:    slices.Clone(g.Frames),
		Elided:    g.Elided,
		CreatedBy: g.CreatedBy,
	}}
	if gr.sim != ExactArgs {
		for i := range acc.Frames {
			acc.Frames[i].Args = ""
		}
	}
	gr.byHash[h] = acc
	gr.groups = append(gr.groups, acc)
	return acc
}

func keyString(h uint64) string {
	s := strconv.FormatUint(h, 16)
	for len(s) < 16 {
		s = "0" + s
	}
	return s
}

// finish sorts IDs and groups: Count descending, then Key.
func (gr *grouper) finish() []*Group {
	out := make([]*Group, len(gr.groups))
	for i, acc := range gr.groups {
		slices.Sort(acc.IDs)
		if k := gr.keepIDs; k > 0 && len(acc.IDs) > k {
			acc.IDs = slices.Clip(acc.IDs[:k])
		}
		out[i] = &acc.Group
	}
	slices.SortFunc(out, func(a, b *Group) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		if a.Key < b.Key {
			return -1
		}
		if a.Key > b.Key {
			return 1
		}
		return 0
	})
	return out
}
