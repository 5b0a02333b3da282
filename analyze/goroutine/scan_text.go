package goroutine

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"time"
)

// lineReader yields lines without their "\n" from a bufio.Reader, whose
// buffer is the longest line kept: longer lines are skipped whole.
type lineReader struct {
	br     *bufio.Reader
	lineNo int
	// offset is the number of bytes consumed from the stream.
	offset int64
	// lineOff is the offset of the line last returned.
	lineOff int64
	// noNL is true when the line last returned ended at EOF without "\n".
	noNL bool
	// long counts lines skipped for their length.
	long int
	// big holds a line longer than the bufio buffer.
	big []byte
	err error
}

func (lr *lineReader) next() ([]byte, bool) {
	for {
		lr.lineOff = lr.offset
		line, err := lr.br.ReadSlice('\n')
		lr.offset += int64(len(line))
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: gather it up to maxLine,
			// skip it whole past that.
			lr.big = append(lr.big[:0], line...)
			for err == bufio.ErrBufferFull {
				line, err = lr.br.ReadSlice('\n')
				lr.offset += int64(len(line))
				if len(lr.big)+len(line) <= maxLine {
					lr.big = append(lr.big, line...)
				} else {
					lr.big = lr.big[:maxLine+1]
				}
			}
			if len(lr.big) > maxLine {
				lr.lineNo++
				lr.long++
				if err != nil {
					if err != io.EOF {
						lr.err = err
					}
					return nil, false
				}
				continue
			}
			line = lr.big
		}
		if err != nil {
			if err != io.EOF {
				lr.err = err
				return nil, false
			}
			if len(line) == 0 {
				return nil, false
			}
			lr.lineNo++
			lr.noNL = true
			return line, true
		}
		lr.lineNo++
		return line[:len(line)-1], true
	}
}

const (
	stOutside = iota
	stGoroutine
	stAncestors // "[originating from goroutine N]:" blocks: not this goroutine's stack
	stDebug1
)

// textState is the text parser's state between lines.
type textState struct {
	st int
	// pending is 1 after a function line, 2 after "created by", while the
	// "\tfile:line" line is awaited.
	pending  int
	pendFn   internEntry
	pendArgs string
	// prefix is what stands before "goroutine N [" on the header line of a
	// dump inside a log ("app | ", a timestamp); every dump line carries it.
	prefix    []byte
	skipG     bool // goroutine 0 (an M's g0 in SIGQUIT output): not a goroutine
	noStack   bool // "goroutine running on other thread; stack unavailable"
	sawHeader bool
	firstOff  int64 // stream offset of the first header
	hdrLine   int   // line number of the current goroutine's header
	lastLine  []byte
	lastFile  bool // last line was a file line with its "+0x" offset
	scratch   []byte
	d1        debug1State
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' {
			return false
		}
	}
	return true
}

// stripPrefix removes the dump's log prefix from line. A prefix matches
// when it is equal up to the digits: a run of digits inside the prefix
// matches a run of any length (timestamps whose trailing zeros are trimmed,
// counters, PIDs); a run that ends the prefix must keep its width, so a
// debug=1 count right after it is not eaten. A line that is the prefix minus
// trailing spaces is blank.
func (t *textState) stripPrefix(line []byte) ([]byte, bool) {
	p := t.prefix
	if len(p) == 0 {
		return line, true
	}
	if len(line) >= len(p) && bytes.Equal(line[:len(p)], p) {
		return line[len(p):], true
	}
	if j, ok := matchPrefix(p, line); ok {
		return line[j:], true
	}
	tp := bytes.TrimRight(p, " \t")
	if len(line) == len(tp) && bytes.Equal(line, tp) {
		return nil, true
	}
	return nil, false
}

// matchPrefix returns the length of line's prefix that matches p.
func matchPrefix(p, line []byte) (int, bool) {
	i, j := 0, 0
	for i < len(p) {
		c := p[i]
		if !isDigit(c) {
			if j >= len(line) || line[j] != c {
				return 0, false
			}
			i++
			j++
			continue
		}
		pi := i
		for i < len(p) && isDigit(p[i]) {
			i++
		}
		lj := j
		for j < len(line) && isDigit(line[j]) {
			j++
		}
		if j == lj {
			return 0, false
		}
		if i == len(p) {
			// The final run keeps its width.
			if j-lj < i-pi {
				return 0, false
			}
			j = lj + (i - pi)
		}
	}
	return j, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanLines parses text: debug=2 dumps (also in logs, panics, SIGQUIT
// output) and debug=1 profiles, which it switches to at their header.
func (s *scanner) scanLines(br *bufio.Reader) error {
	s.lr = lineReader{br: br}
	t := &textState{}
	s.info.Format = FormatUnknown
	for {
		raw, ok := s.lr.next()
		if !ok {
			break
		}
		line := trimCR(raw)
		t.lastLine = line
		t.lastFile = false
		var err error
		switch t.st {
		case stOutside:
			err = s.outsideLine(t, line)
		case stGoroutine, stAncestors:
			body, in := t.stripPrefix(line)
			if !in {
				if err = s.endGoroutine(t); err == nil {
					err = s.outsideLine(t, line)
				}
			} else {
				err = s.goroutineLine(t, body, line)
			}
		case stDebug1:
			err = s.debug1Line(t, line)
		}
		if err != nil {
			return s.lineErr(err, line)
		}
	}
	s.info.Skipped += s.lr.long
	if s.lr.err != nil {
		return s.lr.err
	}
	if err := s.atEOF(t); err != nil {
		return s.lineErr(err, t.lastLine)
	}
	if !t.sawHeader {
		return fmt.Errorf("%w: read %d lines, none a goroutine header like \"goroutine 1 [running]:\" or \"goroutine profile: total 1\"", ErrNotDump, s.lr.lineNo)
	}
	return nil
}

func (s *scanner) lineErr(err error, line []byte) error {
	return fmt.Errorf("parse goroutine dump line %d %q: %w", s.lr.lineNo, quote80(line), err)
}

func (s *scanner) outsideLine(t *textState, line []byte) error {
	if isBlank(line) {
		return nil
	}
	if len(t.prefix) > 0 {
		if body, ok := t.stripPrefix(line); ok && len(body) > len("goroutine ") && headerStart(body) {
			return s.header(t, body)
		}
	}
	if i := findHeader(line); i >= 0 {
		t.prefix = append(t.prefix[:0], line[:i]...)
		return s.header(t, line[i:])
	}
	if i, ok := debug1Header(line); ok {
		t.prefix = append(t.prefix[:0], line[:i]...)
		return s.startDebug1(t)
	}
	s.info.Skipped++
	return nil
}

// header parses "goroutine 7 [chan receive, 12 minutes, locked to thread]:",
// with the GOTRACEBACK=system fields "gp=0x… m=3 mp=0x…" before the bracket
// and the GODEBUG=tracebacklabels=1 labels inside it. A line that looks like
// a header but is not well formed is skipped as log text.
func (s *scanner) header(t *textState, b []byte) error {
	p := len("goroutine ")
	id := int64(0)
	for ; p < len(b) && b[p] >= '0' && b[p] <= '9'; p++ {
		id = id*10 + int64(b[p]-'0')
		if id > 1<<53 {
			s.info.Skipped++
			return nil
		}
	}
	p++ // the space
	if p < len(b) && b[p] != '[' {
		// "gp=0x… m=… mp=0x…": runtime-internal fields.
		i := bytes.IndexByte(b[p:], '[')
		if i < 0 {
			s.info.Skipped++
			return nil
		}
		p += i
	}
	end := len(b)
	for end > 0 && b[end-1] == ' ' {
		end--
	}
	if p >= len(b) || b[p] != '[' || end-p < 3 || b[end-1] != ':' || b[end-2] != ']' {
		s.info.Skipped++
		return nil
	}
	body := b[p+1 : end-2]

	s.resetGoroutine()
	t.pending, t.noStack, t.skipG = 0, false, id == 0
	t.hdrLine = s.lr.lineNo
	if !t.sawHeader {
		t.sawHeader = true
		t.firstOff = s.lr.lineOff
		s.info.Format = FormatText
	}
	t.st = stGoroutine
	g := &s.g
	g.ID = id

	if i := bytes.Index(body, []byte(" labels:{")); i >= 0 {
		s.parseLabels(body[i+len(" labels:{")-1:], true)
		body = body[:i]
	}
	status := body
	var rest []byte
	if i := bytes.Index(body, []byte(", ")); i >= 0 {
		status, rest = body[:i], body[i+2:]
	}
	for len(rest) > 0 {
		item := rest
		if i := bytes.Index(rest, []byte(", ")); i >= 0 {
			item, rest = rest[:i], rest[i+2:]
		} else {
			rest = nil
		}
		switch {
		case bytes.Equal(item, []byte("locked to thread")):
			g.Locked = true
		case bytes.HasSuffix(item, []byte(" minutes")):
			if n, ok := atoi(item[:len(item)-len(" minutes")]); ok && n < 1<<30 {
				g.Wait = time.Duration(n) * time.Minute
			}
		}
		// "synctest bubble N" and anything newer is not part of the state.
	}
	// "(leaked)" and the GC's transient "(scan)" follow the wait reason;
	// neither is part of where the goroutine waits.
	if bytes.Contains(status, []byte(" (")) {
		if i := bytes.Index(status, []byte(" (leaked)")); i >= 0 {
			g.Leaked = true
			t.scratch = append(append(t.scratch[:0], status[:i]...), status[i+len(" (leaked)"):]...)
			status = t.scratch
		}
		if i := bytes.Index(status, []byte(" (scan)")); i >= 0 {
			tmp := append(append([]byte(nil), status[:i]...), status[i+len(" (scan)"):]...)
			t.scratch = append(t.scratch[:0], tmp...)
			status = t.scratch
		}
	}
	s.setState(status)
	return nil
}

// parseLabels reads {"k":"v", "k2": "v2"} (debug=1 prints no space after
// the colon, the traceback header prints one). Bad syntax ends it quietly:
// labels are decoration, not structure.
func (s *scanner) parseLabels(b []byte, _ bool) {
	if len(b) == 0 || b[0] != '{' {
		return
	}
	b = b[1:]
	for {
		b = bytes.TrimLeft(b, " ,")
		if len(b) == 0 || b[0] == '}' {
			return
		}
		k, rest, ok := quotedPrefix(b)
		if !ok {
			return
		}
		rest = bytes.TrimLeft(rest, " ")
		if len(rest) == 0 || rest[0] != ':' {
			return
		}
		rest = bytes.TrimLeft(rest[1:], " ")
		v, rest2, ok := quotedPrefix(rest)
		if !ok {
			return
		}
		s.setLabel(k, v)
		b = rest2
	}
}

// quotedPrefix unquotes the Go-quoted string at the start of b.
func quotedPrefix(b []byte) (string, []byte, bool) {
	if len(b) == 0 || b[0] != '"' {
		return "", nil, false
	}
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			v, err := strconv.Unquote(string(b[:i+1]))
			if err != nil {
				return "", nil, false
			}
			return v, b[i+1:], true
		}
	}
	return "", nil, false
}

func atoi(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

var (
	createdBy   = []byte("created by ")
	inGoroutine = []byte(" in goroutine ")
	plusHex     = []byte(" +0x")
	fpEq        = []byte(" fp=")
	onOther     = []byte("\tgoroutine running on other thread")
	originating = []byte("[originating from goroutine ")
)

// goroutineLine handles one line of a goroutine's block, body without the
// log prefix, line with it.
func (s *scanner) goroutineLine(t *textState, body, line []byte) error {
	if isBlank(body) {
		if s.lr.noNL && len(body) > 0 && t.pending != 0 {
			// "\t" and no more: cut where a file:line was due.
			return nil
		}
		return s.endGoroutine(t)
	}
	if t.st == stAncestors {
		// Ancestors end at the blank line; a new header also ends them.
		if len(body) > len("goroutine ") && headerStart(body) {
			if err := s.endGoroutine(t); err != nil {
				return err
			}
			return s.header(t, body)
		}
		return nil
	}
	switch c := body[0]; {
	case c == '\t':
		switch t.pending {
		case 1:
			t.pending = 0
			file, ln, off, ok := parseFileLine(body)
			if !ok {
				if s.lr.noNL {
					// A cut last line: keep the frame pending so the end
					// of input reports the truncation.
					t.pending = 1
					return nil
				}
				s.info.Skipped++
				s.addFrame(t.pendFn, internEntry{}, 0, t.pendArgs)
				return nil
			}
			t.lastFile = off
			s.addFrame(t.pendFn, s.strFast(file), ln, t.pendArgs)
		case 2:
			t.pending = 0
			file, ln, off, ok := parseFileLine(body)
			if !ok {
				if !s.lr.noNL { // a cut last line is reported as truncation
					s.info.Skipped++
				}
				t.pending = 2
				return nil
			}
			t.lastFile = off
			e := s.strFast(file)
			s.g.CreatedBy.File, s.g.CreatedBy.Line = e.s, ln
			s.cbh.file = e.h
		default:
			if bytes.HasPrefix(body, onOther) {
				t.noStack = true
				return nil
			}
			s.info.Skipped++
		}
		return nil
	case c == 'c' && bytes.HasPrefix(body, createdBy):
		s.flushPending(t)
		name := body[len(createdBy):]
		if i := bytes.Index(name, inGoroutine); i >= 0 {
			if n, ok := atoi(name[i+len(inGoroutine):]); ok {
				s.g.CreatorID = int64(n)
			}
			name = name[:i]
		}
		e := s.strFast(name)
		s.g.CreatedBy = Frame{Func: e.s}
		s.cbh = frameHash{fn: e.h}
		t.pending = 2
		return nil
	case c == '.' && bytes.HasPrefix(body, []byte("...")) && bytes.HasSuffix(body, []byte("elided...")):
		// Go 1.26 prints "...N frames elided..." in the middle of stacks
		// deeper than 100 frames; "...additional frames elided..." at the
		// end of ancestor stacks.
		s.flushPending(t)
		s.g.Elided = true
		return nil
	case c == '[' && bytes.HasPrefix(body, originating):
		s.flushPending(t)
		t.st = stAncestors
		return nil
	case c == 'g' && len(body) > len("goroutine ") && headerStart(body):
		if err := s.endGoroutine(t); err != nil {
			return err
		}
		return s.header(t, body)
	}
	if name, args, ok := splitFuncLine(body); ok {
		s.flushPending(t)
		if len(name) == 5 && string(name) == "panic" {
			// printFuncName prints runtime.gopanic as "panic".
			t.pendFn = s.internString("runtime.gopanic")
		} else {
			t.pendFn = s.strFast(name)
		}
		t.pendArgs = ""
		if s.opts.Similarity == ExactArgs {
			t.pendArgs = string(args)
		}
		t.pending = 1
		return nil
	}
	if s.lr.noNL {
		// The input's last line, cut before its newline, where a frame was
		// due: the dump was cut inside this goroutine, not followed by text.
		t.st = stOutside
		s.truncate(fmt.Sprintf("the dump ends inside goroutine %d (header on line %d): its last line is cut; that goroutine is not counted", s.g.ID, t.hdrLine))
		return nil
	}
	// Not a dump line: the dump (or this goroutine) ended without a blank
	// line, e.g. "exit status 2" or log text right after.
	if err := s.endGoroutine(t); err != nil {
		return err
	}
	return s.outsideLine(t, line)
}

// flushPending keeps a function line that had no file line (cgo frames).
func (s *scanner) flushPending(t *textState) {
	if t.pending == 1 {
		s.addFrame(t.pendFn, internEntry{}, 0, t.pendArgs)
	}
	t.pending = 0
}

// splitFuncLine splits "pkg.(*T).M(0x1, {0x2, 0x3})" into name and args.
// Names contain no spaces; the argument list is the last parenthesis.
func splitFuncLine(b []byte) (name, args []byte, ok bool) {
	if len(b) < 3 || b[len(b)-1] != ')' {
		return nil, nil, false
	}
	o := bytes.LastIndexByte(b, '(')
	if o <= 0 {
		return nil, nil, false
	}
	name = b[:o]
	if bytes.IndexByte(name, ' ') >= 0 || bytes.IndexByte(name, '\t') >= 0 {
		return nil, nil, false
	}
	return name, b[o:], true
}

// parseFileLine reads "\t/path/file.go:12 +0x1d fp=0x… sp=0x… pc=0x…";
// the offset and frame fields are optional. off reports a "+0x" offset,
// which proves the line number before it is complete.
func parseFileLine(b []byte) (file []byte, line int, off, ok bool) {
	rest := b[1:]
	end := len(rest)
	if i := bytes.Index(rest, plusHex); i >= 0 {
		end, off = i, true
	} else if i := bytes.Index(rest, fpEq); i >= 0 {
		end = i
	}
	seg := rest[:end]
	for len(seg) > 0 && seg[len(seg)-1] == ' ' {
		seg = seg[:len(seg)-1]
	}
	c := bytes.LastIndexByte(seg, ':')
	if c <= 0 {
		return nil, 0, false, false
	}
	n, ok := atoi(seg[c+1:])
	if !ok {
		return nil, 0, false, false
	}
	return seg[:c], n, off, true
}

// endGoroutine delivers the goroutine being read, if any.
func (s *scanner) endGoroutine(t *textState) error {
	if t.st != stGoroutine && t.st != stAncestors {
		return nil
	}
	s.flushPending(t)
	t.st = stOutside
	if t.skipG {
		return nil
	}
	return s.deliver()
}

// atEOF decides whether the dump was cut and delivers the last goroutine
// when it was not.
func (s *scanner) atEOF(t *textState) error {
	switch t.st {
	case stDebug1:
		return s.endDebug1(t)
	case stGoroutine, stAncestors:
		why := ""
		switch {
		case s.lr.noNL && !t.lastFile:
			why = "its last line is cut"
		case t.pending == 1:
			why = "a function line has no file:line after it"
		case t.pending == 2:
			why = "its \"created by\" line has no file:line after it"
		case len(s.g.Frames) == 0 && !t.noStack && t.st == stGoroutine:
			why = "its header has no stack after it"
		}
		if why == "" {
			if s.lr.noNL {
				// The runtime ends every line with a newline. A last file
				// line without one is complete enough to keep, but may have
				// been cut inside "file.go:243" (read as line 24): say so.
				s.truncate(fmt.Sprintf("the dump does not end with a newline: it may have been cut inside the last line of goroutine %d (line %d)", s.g.ID, s.lr.lineNo))
			}
			if err := s.endGoroutine(t); err != nil {
				return err
			}
			break
		}
		t.st = stOutside
		s.truncate(fmt.Sprintf("the dump ends inside goroutine %d (header on line %d): %s; that goroutine is not counted", s.g.ID, t.hdrLine, why))
	case stOutside:
		if t.sawHeader && s.lr.noNL {
			if b, ok := t.stripPrefix(t.lastLine); ok && len(b) > 0 && (bytes.HasPrefix([]byte("goroutine "), b) || bytes.HasPrefix(b, []byte("goroutine "))) && !isBlank(b) {
				s.info.Skipped--
				s.truncate(fmt.Sprintf("the dump ends inside a goroutine header on line %d", s.lr.lineNo))
			}
		}
	}
	if t.sawHeader && s.info.Format == FormatText && (s.lr.offset == stackCap || s.lr.offset-t.firstOff == stackCap) {
		reason := fmt.Sprintf("the dump is exactly 64 MiB: the runtime's 64 MB cap on debug=2 output (runtime/pprof writeGoroutineStacks, behind /debug/pprof/goroutine?debug=2) cut it silently, so goroutines after the %d read are missing; take the protobuf profile (?debug=0) for complete counts", s.info.Goroutines)
		if s.info.TruncatedReason != "" {
			reason += "; " + s.info.TruncatedReason
		}
		s.info.Truncated, s.info.TruncatedReason = true, reason
	}
	return nil
}

func (s *scanner) truncate(reason string) {
	s.info.Truncated = true
	if s.info.TruncatedReason == "" {
		s.info.TruncatedReason = reason
	}
}
