package goroutine

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
)

// debug1State is the debug=1 parser's state. The format, written by
// runtime/pprof's printCountProfile:
//
//	goroutine profile: total 40
//	4 @ 0x48528e 0x486dd3 0x486db3 0x490ab3 0x542116 0x542419 0x48c6e1
//	# labels: {"tenant":"acme", "worker":"a"}
//	#	0x486db2	sync.runtime_notifyListWait+0x192	/usr/local/go/src/runtime/sema.go:617
//	#	0x490ab2	sync.(*Cond).Wait+0x72			/usr/local/go/src/sync/cond.go:71
//
// The "@" line holds every PC, but the "#" lines hide runtime.goexit and
// the runtime frames at the top (runtime.gopark, runtime.chanrecv…), so the
// wait reason of a channel operation cannot be told; inlined calls get a
// "#" line each.
type debug1State struct {
	inRecord  bool
	firstPC   uint64
	firstHash uint64
	haveHash  bool
}

var (
	errDebug1Count = errors.New(`debug=1 count line: want "N @ 0x… 0x…"`)
	errDebug1Frame = errors.New("debug=1 frame line: want \"#\\t0xPC\\tfunc+0xOFF\\tfile:line\"")
	errDebug1Stray = errors.New(`debug=1 frame line before any "N @ 0x…" count line`)
)

func (s *scanner) startDebug1(t *textState) error {
	t.st = stDebug1
	t.d1 = debug1State{}
	if !t.sawHeader {
		t.sawHeader = true
		t.firstOff = s.lr.lineOff
	}
	if s.info.Format == FormatUnknown {
		s.info.Format = FormatDebug1
	}
	return nil
}

func (s *scanner) debug1Line(t *textState, line []byte) error {
	body, in := t.stripPrefix(line)
	if !in {
		if err := s.endDebug1(t); err != nil {
			return err
		}
		return s.outsideLine(t, line)
	}
	if isBlank(body) {
		return s.endRecord(t)
	}
	switch c := body[0]; {
	case c == '#':
		if !t.d1.inRecord {
			return errDebug1Stray
		}
		if bytes.HasPrefix(body, []byte("# labels: ")) {
			s.parseLabels(body[len("# labels: "):], false)
			return nil
		}
		if !bytes.HasPrefix(body, []byte("#\t")) {
			return nil // a comment of some later Go version
		}
		return s.debug1Frame(t, body[2:])
	case c >= '0' && c <= '9':
		if err := s.endRecord(t); err != nil {
			return err
		}
		return s.debug1Count(t, body)
	}
	// The profile ended; what follows is log text or another dump.
	if err := s.endDebug1(t); err != nil {
		return err
	}
	return s.outsideLine(t, line)
}

func (s *scanner) debug1Count(t *textState, b []byte) error {
	i := bytes.Index(b, []byte(" @ "))
	if i < 0 {
		i = bytes.Index(b, []byte(" @"))
		if i < 0 || i+2 != len(b) {
			return errDebug1Count
		}
	}
	n, ok := atoi(b[:i])
	if !ok || n > 1<<40 {
		return errDebug1Count
	}
	s.resetGoroutine()
	s.g.Count = n
	t.d1 = debug1State{inRecord: true}
	pcs := b[min(i+3, len(b)):]
	if j := bytes.IndexByte(pcs, ' '); j >= 0 {
		pcs = pcs[:j]
	}
	if len(pcs) > 0 {
		pc, err := parseHex(pcs)
		if err != nil {
			return errDebug1Count
		}
		t.d1.firstPC = pc
	}
	return nil
}

func parseHex(b []byte) (uint64, error) {
	if len(b) < 3 || b[0] != '0' || b[1] != 'x' {
		return 0, strconv.ErrSyntax
	}
	var v uint64
	for _, c := range b[2:] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, strconv.ErrSyntax
		}
		if v>>60 != 0 {
			return 0, strconv.ErrRange
		}
		v = v<<4 | uint64(c)
	}
	return v, nil
}

// debug1Frame parses "0x486db2\tsync.runtime_notifyListWait+0x192\t\t/path/sema.go:617"
// (tabwriter may pad with several tabs), or a bare "0x486db2" for a PC
// without symbol.
func (s *scanner) debug1Frame(t *textState, b []byte) error {
	pcText := b
	rest := []byte(nil)
	if i := bytes.IndexByte(b, '\t'); i >= 0 {
		pcText, rest = b[:i], bytes.TrimLeft(b[i:], "\t")
	}
	pc, err := parseHex(pcText)
	if err != nil {
		return errDebug1Frame
	}
	if !t.d1.haveHash {
		t.d1.haveHash, t.d1.firstHash = true, pc
	}
	if len(rest) == 0 {
		s.addFrame(s.str(pcText), internEntry{}, 0, "")
		return nil
	}
	fn := rest
	var loc []byte
	if i := bytes.IndexByte(rest, '\t'); i >= 0 {
		fn, loc = rest[:i], bytes.TrimLeft(rest[i:], "\t")
	}
	if i := bytes.LastIndex(fn, []byte("+0x")); i > 0 {
		fn = fn[:i]
	}
	if len(fn) == 0 {
		return errDebug1Frame
	}
	var file []byte
	line := 0
	if len(loc) > 0 {
		c := bytes.LastIndexByte(loc, ':')
		if c <= 0 {
			return errDebug1Frame
		}
		n, ok := atoi(bytes.TrimRight(loc[c+1:], " "))
		if !ok {
			return errDebug1Frame
		}
		file, line = loc[:c], n
	}
	var fe internEntry
	if file != nil {
		fe = s.str(file)
	}
	s.addFrame(s.str(fn), fe, line, "")
	return nil
}

// endRecord delivers the stack being read.
func (s *scanner) endRecord(t *textState) error {
	if !t.d1.inRecord {
		return nil
	}
	t.d1.inRecord = false
	st := deriveState(s.g.Frames, false)
	if st == "" {
		// Hidden leading runtime frames mean the goroutine was parked in
		// the runtime; which operation parked it is not printed.
		d := t.d1
		if len(s.g.Frames) > 0 && strings.HasPrefix(s.g.Frames[0].Func, "runtime/pprof.") {
			st = "running" // the goroutine writing this profile
		} else if d.haveHash && d.firstPC != d.firstHash && d.firstPC != d.firstHash+1 {
			st = "waiting"
		} else {
			st = "running"
		}
	}
	s.setStateString(st)
	if s.g.Count == 0 {
		return nil
	}
	return s.deliver()
}

func (s *scanner) endDebug1(t *textState) error {
	err := s.endRecord(t)
	t.st = stOutside
	return err
}

func (s *scanner) setStateString(st string) {
	e := s.internString(st)
	s.g.State, s.stateH = e.s, e.h
}
