package goroutine

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ScanInfo describes what Scan read.
type ScanInfo struct {
	// Format is the format found; FormatText also for a dump inside a log.
	Format Format
	// Bytes is how many bytes were read from the reader (compressed bytes for
	// gzipped input).
	Bytes int64
	// Goroutines is the number of goroutines passed to fn, counting an
	// aggregated stack as its Count.
	Goroutines int
	// Skipped counts non-blank lines that were not part of a dump: log text,
	// panic messages, register dumps, and lines longer than the line limit.
	Skipped int
	// Truncated is true when the dump was cut: it ended inside a goroutine
	// (which is then dropped, not passed to fn), or it is exactly the 64 MiB
	// at which the runtime stops writing debug=2 output.
	Truncated bool
	// TruncatedReason says where and why, in a sentence meant for a person.
	TruncatedReason string
}

const (
	defaultMaxBytes  = 4 << 30
	defaultMaxGroups = 1_000_000
	// readBufSize is the bufio buffer; lines up to maxLine are gathered
	// beyond it, longer lines are skipped and counted, so memory stays
	// bounded.
	readBufSize = 64 << 10
	maxLine     = 1 << 20
	// sniffSize is how much of the input is peeked at to choose a parser.
	sniffSize = 16 << 10
	// stackCap is the size at which runtime/pprof's writeGoroutineStacks
	// stops growing its buffer and writes what fits: a debug=2 dump of
	// exactly this size was cut by the runtime.
	stackCap = 64 << 20
	// maxIntern bounds the intern table on adversarial input; past it names
	// are still parsed, just not shared.
	maxIntern = 1 << 20
)

// Scan reads a goroutine dump in any format and calls fn once per goroutine
// (FormatText) or per distinct stack with its Count (FormatDebug1,
// FormatProto), in input order. The *Goroutine and its slices and map are
// reused between calls: copy what you keep. An error from fn stops the scan
// and is returned wrapped.
//
// Scan never panics on bad input. Lines that are not part of a dump are
// counted in ScanInfo.Skipped; input with no dump at all returns ErrNotDump;
// input past opts.MaxBytes returns ErrTooLarge. A cut text dump is not an
// error: ScanInfo.Truncated says so.
func Scan(r io.Reader, opts Options, fn func(*Goroutine) error) (ScanInfo, error) {
	s := newScanner(opts)
	s.emit = func(s *scanner) error { return fn(&s.g) }
	return s.run(r)
}

// frameHash holds the content hashes of a frame's interned strings, so that
// grouping mixes three words per frame instead of rehashing every byte.
type frameHash struct{ fn, file uint64 }

type internEntry struct {
	s string
	h uint64
}

// scanner is shared by the three formats: it owns the reused Goroutine, the
// intern table and the counters.
type scanner struct {
	opts   Options
	emit   func(*scanner) error
	g      Goroutine
	fh     []frameHash // parallel to g.Frames
	cbh    frameHash   // hash of g.CreatedBy
	stateH uint64      // hash of g.State
	intern map[string]internEntry
	info   ScanInfo
	lr     lineReader
	// labels is the map handed out in g.Labels, cleared between goroutines.
	labels map[string]string
	// fast is a direct-mapped cache in front of the intern map, indexed by
	// a word-at-a-time hash of the name: a hit costs
	// one memcmp instead of a full hash and map probe.
	fast *[fastSize]internEntry
}

const fastSize = 1 << 13

// strFast is str through the direct-mapped cache.
func (s *scanner) strFast(b []byte) internEntry {
	n := len(b)
	if n < 8 {
		return s.str(b)
	}
	if s.fast == nil {
		s.fast = new([fastSize]internEntry)
	}
	k := uint64(n) * 0x9E3779B97F4A7C15
	for i := 0; i+8 <= n; i += 8 {
		k = (k ^ binary.LittleEndian.Uint64(b[i:])) * 0xC2B2AE3D27D4EB4F
		k ^= k >> 29
	}
	k = (k ^ binary.LittleEndian.Uint64(b[n-8:])) * 0x94D049BB133111EB
	k ^= k >> 32
	slot := &s.fast[k>>(64-13)]
	if slot.s == string(b) && len(slot.s) == n {
		return *slot
	}
	e := s.str(b)
	*slot = e
	return e
}

func newScanner(opts Options) *scanner {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = defaultMaxBytes
	}
	if opts.MaxGroups <= 0 {
		opts.MaxGroups = defaultMaxGroups
	}
	return &scanner{opts: opts, intern: make(map[string]internEntry, 1024)}
}

// str interns b: the map lookup with string(b) does not allocate, so a name
// seen before costs no memory.
func (s *scanner) str(b []byte) internEntry {
	if e, ok := s.intern[string(b)]; ok {
		return e
	}
	e := internEntry{s: string(b), h: fnvBytes(fnvOffset, b)}
	if len(s.intern) < maxIntern {
		s.intern[e.s] = e
	}
	return e
}

func (s *scanner) internString(str string) internEntry {
	if e, ok := s.intern[str]; ok {
		return e
	}
	e := internEntry{s: str, h: fnvString(fnvOffset, str)}
	if len(s.intern) < maxIntern {
		s.intern[str] = e
	}
	return e
}

func (s *scanner) setState(b []byte) {
	e := s.strFast(b)
	s.g.State = e.s
	s.stateH = e.h
}

func (s *scanner) resetGoroutine() {
	g := &s.g
	g.ID, g.State, g.Wait, g.Locked, g.Elided = 0, "", 0, false, false
	g.Leaked = false
	g.Frames = g.Frames[:0]
	g.CreatedBy, g.CreatorID, g.Count, g.Labels = Frame{}, 0, 1, nil
	s.fh = s.fh[:0]
	s.cbh = frameHash{}
	s.stateH = 0
}

func (s *scanner) addFrame(fn, file internEntry, line int, args string) {
	s.g.Frames = append(s.g.Frames, Frame{Func: fn.s, File: file.s, Line: line, Args: args})
	s.fh = append(s.fh, frameHash{fn.h, file.h})
}

// setLabel adds a label to the reused map.
func (s *scanner) setLabel(k, v string) {
	if s.labels == nil {
		s.labels = make(map[string]string)
	}
	if s.g.Labels == nil {
		clear(s.labels)
		s.g.Labels = s.labels
	}
	s.labels[k] = v
}

func (s *scanner) deliver() error {
	s.normalizeFrames()
	s.info.Goroutines += s.g.Count
	if err := s.emit(s); err != nil {
		return err
	}
	return nil
}

// normalizeFrames makes one stack look the same whichever format it came
// from. The convention is the frames that debug=2 text prints at the default
// traceback level: runtime.goexit and unexported runtime.* functions are
// dropped (except runtime.gopanic below the top, and the finalizer/cleanup
// runners, which the runtime always shows); if that leaves nothing, every
// frame but runtime.goexit is kept, as the runtime does. The profile and
// GOTRACEBACK=system/crash output include the runtime frames; debug=1 hides
// the leading ones.
func (s *scanner) normalizeFrames() {
	fr := s.g.Frames
	keepAll := true
	for i := range fr {
		if !showFrameName(fr[i].Func, i == 0) || hiddenWrapper(fr, i) {
			keepAll = false
			break
		}
	}
	if keepAll {
		return
	}
	visible := false
	for i := range fr {
		if showFrameName(fr[i].Func, i == 0) {
			visible = true
			break
		}
	}
	w := 0
	for i := range fr {
		if visible && !showFrameName(fr[i].Func, i == 0) || fr[i].Func == "runtime.goexit" || hiddenWrapper(fr, i) {
			continue
		}
		fr[w] = fr[i]
		s.fh[w] = s.fh[i]
		w++
	}
	s.g.Frames = fr[:w]
	s.fh = s.fh[:w]
}

// hiddenWrapper reports a compiler-generated wrapper ("-fm" method values,
// promoted methods), which tracebacks at level 1 and the profile hide
// unless it called a panic function (runtime.elideWrapperCalling).
func hiddenWrapper(fr []Frame, i int) bool {
	if fr[i].File != "<autogenerated>" {
		return false
	}
	if i == 0 {
		return false
	}
	switch fr[i-1].Func {
	case "runtime.gopanic", "runtime.sigpanic", "runtime.panicwrap":
		return false
	}
	return true
}

// printName shortens type arguments the way the runtime prints function
// names: "main.F[go.shape.string]" becomes "main.F[...]", so a generic
// function has one name in every format.
func printName(name string) string {
	i := strings.IndexByte(name, '[')
	if i < 0 {
		return name
	}
	var b strings.Builder
	depth := 0
	for j := 0; j < len(name); j++ {
		c := name[j]
		switch {
		case c == '[':
			if depth == 0 {
				b.WriteString("[...]")
			}
			depth++
		case c == ']' && depth > 0:
			depth--
		case depth == 0:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// showFrameName mirrors runtime.showfuncinfo at traceback level 1.
func showFrameName(name string, first bool) bool {
	const rt = "runtime."
	if len(name) < len(rt) || name[:len(rt)] != rt {
		return true
	}
	switch name {
	case "runtime.goexit":
		return false
	case "runtime.gopanic":
		return !first
	case "runtime.runFinalizers", "runtime.runCleanups":
		return true
	}
	return exportedRuntimeName(name[len(rt):])
}

// exportedRuntimeName mirrors runtime.isExportedRuntime on the name after
// "runtime.": exported functions and exported methods of exported types.
func exportedRuntimeName(name string) bool {
	rcvr := ""
	i := len(name) - 1
	for i >= 0 && name[i] != '.' {
		i--
	}
	if i >= 0 {
		rcvr = name[:i]
		name = name[i+1:]
		if len(rcvr) >= 3 && rcvr[0] == '(' && rcvr[1] == '*' && rcvr[len(rcvr)-1] == ')' {
			rcvr = rcvr[2 : len(rcvr)-1]
		}
	}
	return len(name) > 0 && 'A' <= name[0] && name[0] <= 'Z' && (len(rcvr) == 0 || 'A' <= rcvr[0] && rcvr[0] <= 'Z')
}

// run picks the parser from the first bytes and drives it.
func (s *scanner) run(r io.Reader) (ScanInfo, error) {
	cr := &countingReader{r: r, max: s.opts.MaxBytes}
	br := bufio.NewReaderSize(cr, readBufSize)
	head, _ := br.Peek(sniffSize)
	var err error
	var src io.Reader = br
	if isGzip(head) {
		zr, zerr := gzip.NewReader(br)
		if zerr != nil {
			return s.finishInfo(cr), fmt.Errorf("parse goroutine dump: gzip header: %w", s.mapErr(zerr, cr))
		}
		zr.Multistream(false)
		// The limit applies to the decompressed size too: a gzip bomb must
		// not run for ever.
		src = bufio.NewReaderSize(&countingReader{r: zr, max: s.opts.MaxBytes}, readBufSize)
		head, _ = src.(*bufio.Reader).Peek(sniffSize)
	}
	switch {
	case Sniff(head) == FormatProto:
		s.info.Format = FormatProto
		err = s.scanProto(src, cr)
	default:
		err = s.scanLines(src.(*bufio.Reader))
	}
	info := s.finishInfo(cr)
	if err != nil {
		return info, s.mapErr(err, cr)
	}
	return info, nil
}

func (s *scanner) finishInfo(cr *countingReader) ScanInfo {
	s.info.Bytes = cr.n
	if s.info.Bytes > s.opts.MaxBytes {
		s.info.Bytes = s.opts.MaxBytes
	}
	return s.info
}

// mapErr turns the reader's limit error into ErrTooLarge with advice.
func (s *scanner) mapErr(err error, cr *countingReader) error {
	if errors.Is(err, errLimit) {
		return fmt.Errorf("parse goroutine dump: input is larger than Options.MaxBytes (%d bytes); raise the limit if the dump is genuine: %w", s.opts.MaxBytes, ErrTooLarge)
	}
	return err
}

var errLimit = errors.New("read limit reached")

// countingReader counts bytes and fails once more than max were read.
type countingReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n > c.max {
		return 0, errLimit
	}
	if rem := c.max - c.n + 1; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		return n, errLimit
	}
	return n, err
}

// gunzipPrefix decompresses what it can of a gzipped prefix.
func gunzipPrefix(b []byte) []byte {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	out := make([]byte, 0, 4096)
	buf := make([]byte, 4096)
	for len(out) < sniffSize {
		n, err := zr.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			break
		}
	}
	return out
}

// FNV-1a, 64 bits: the per-string hashes and the group keys are built from
// it, so keys are the same in every process.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvBytes(h uint64, b []byte) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// fnvWord mixes a 64-bit word in: an FNV-1a step over the whole word, then
// a shift so high bits reach the low ones. Deterministic, so keys are the
// same in every process; collisions are resolved by comparing stacks.
func fnvWord(h, w uint64) uint64 {
	h = (h ^ w) * fnvPrime
	return h ^ h>>29
}

// quote80 shortens a line for an error message.
func quote80(b []byte) string {
	if len(b) > 80 {
		return string(b[:77]) + "..."
	}
	return string(b)
}
