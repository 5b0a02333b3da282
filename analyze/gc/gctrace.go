package gc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"
)

// Cycle is one completed GC cycle. Fields a source cannot provide are zero;
// Source says which source filled it in.
type Cycle struct {
	// N is the runtime's cycle number (1-based, counts every cycle).
	N int64
	// Start is the time the cycle began, from process start (gctrace's
	// "@s"); for sources with wall clocks it is End minus the cycle's
	// duration or zero.
	Start time.Duration
	// End is the wall-clock end of the cycle when the source has one
	// (memstats PauseEnd); zero otherwise.
	End time.Time
	// Pause is the total stop-the-world time of the cycle (sweep
	// termination + mark termination): exact per cycle.
	Pause time.Duration
	// Mark is the wall time of the concurrent mark phase.
	Mark time.Duration

	// CPU time of the cycle by kind (gctrace only). Idle marking runs on
	// Ps that had nothing else to do.
	STWCPU, AssistCPU, BackgroundCPU, IdleCPU time.Duration

	// Heap sizes in bytes. gctrace prints MiB, so these are multiples
	// of 1 MiB from that source (truncated, as the runtime does).
	HeapStart, HeapEnd, HeapLive, HeapGoal, Stacks, Globals uint64

	// Procs is GOMAXPROCS during the cycle.
	Procs int
	// Forced: runtime.GC() or debug.FreeOSMemory started the cycle.
	Forced bool
	// Periodic: the 2-minute forced GC of sysmon ("GC forced" line before).
	Periodic bool
	// LeakCheck: a goroutine leak profile collection (Go 1.26+).
	LeakCheck bool
	// CumulativeCPUPercent is gctrace's "#%": GC CPU (without idle
	// marking) since program start, as a percentage of CPU capacity.
	CumulativeCPUPercent int
	// Line is the 1-based input line the cycle came from (gctrace only).
	Line int
}

// GCCPU is the CPU the cycle took from the program: stop-the-world,
// assists and background marking. Idle-priority marking (IdleCPU) is left
// out, as the runtime's GCCPUFraction and its GC CPU limiter leave it out:
// it runs only on Ps with nothing else to do, and it grows with how long
// marking takes rather than with how much there is to mark.
func (c Cycle) GCCPU() time.Duration {
	return c.STWCPU + c.AssistCPU + c.BackgroundCPU
}

// LineProblem is a line of a gctrace log that looked like GC output but
// could not be parsed. Every such line is reported, never dropped.
type LineProblem struct {
	Line   int    // 1-based
	Text   string // the line, truncated to 200 bytes
	Reason string
}

func (p LineProblem) String() string {
	return fmt.Sprintf("line %d: %s: %q", p.Line, p.Reason, p.Text)
}

// TraceStats counts what a gctrace scan saw.
type TraceStats struct {
	Lines      int // all lines
	Cycles     int // parsed gc lines
	AppLines   int // lines that were not GC output (passed through)
	ScavLines  int // scavenger lines ("scav …")
	ForcedGC   int // sysmon's "GC forced" lines
	Problems   []LineProblem
	LongLines  int // lines longer than the scan buffer, passed through in pieces
	Truncated  bool
	lastForced bool
}

// maxProblems bounds memory on a log that is nothing but garbage; the
// count past it is still kept in DroppedProblems.
const maxProblems = 1000

// ErrNoCycles is returned when a log holds no GC cycle at all.
var ErrNoCycles = errors.New("no GC cycles found (was the program run with GODEBUG=gctrace=1, and did it run long enough to collect?)")

// ScanTrace reads GODEBUG=gctrace=1 output (usually a program's stderr,
// mixed with its own output) line by line. Each gc line becomes a Cycle
// passed to fn; lines that are not GC output are copied to pass (if not
// nil) unchanged; lines that look like GC output but do not parse are
// recorded in the returned stats. The gc line may follow a prefix (a log
// timestamp, or application text printed without a newline). Memory does
// not grow with input size beyond the problem list.
//
// Formats: Go 1.19 and later ("… MB stacks, … MB globals, # P"), the
// shorter Go 1.11–1.18 line, "(forced)" and Go 1.26's "(checking for
// goroutine leaks)".
func ScanTrace(r io.Reader, pass io.Writer, fn func(Cycle)) (TraceStats, error) {
	var st TraceStats
	br := bufio.NewReaderSize(r, 64<<10)
	inLong := false
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if errors.Is(err, bufio.ErrBufferFull) {
				// A line longer than 64 KiB is application output
				// (a gc line is ~150 bytes); pass it on in pieces.
				if !inLong {
					st.Lines++
					st.AppLines++
					st.LongLines++
				}
				inLong = true
				if pass != nil {
					if _, werr := pass.Write(line); werr != nil {
						return st, fmt.Errorf("pass through application output: %w", werr)
					}
				}
				continue
			}
			if inLong {
				inLong = false
				if pass != nil {
					if _, werr := pass.Write(line); werr != nil {
						return st, fmt.Errorf("pass through application output: %w", werr)
					}
				}
			} else {
				st.Lines++
				if err := st.line(line, pass, fn); err != nil {
					return st, err
				}
			}
		}
		if err == io.EOF {
			return st, nil
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return st, fmt.Errorf("read gctrace at line %d: %w", st.Lines+1, err)
		}
	}
}

var (
	litGC        = []byte("gc ")
	litScav      = []byte("scav ")
	litGCForced  = []byte("GC forced")
	litClock     = []byte(" ms clock, ")
	litMBGoal    = []byte(" MB goal")
	litLeakCheck = []byte(" (checking for goroutine leaks)")
)

func (st *TraceStats) line(line []byte, pass io.Writer, fn func(Cycle)) error {
	text := bytes.TrimRight(line, "\r\n")
	// Find a gc line start: "gc " + digit + … " @". Most lines start with
	// it, so try offset 0 before searching.
	at := -1
	if isGCStart(text, 0) {
		at = 0
	} else if i := indexGCStart(text); i >= 0 {
		at = i
	}
	if at >= 0 {
		c, err := parseGCLine(text[at:])
		if err != nil {
			st.problem(text, err.Error())
			return nil
		}
		c.Line = st.Lines
		if st.lastForced {
			c.Periodic = true
			st.lastForced = false
		}
		st.Cycles++
		if fn != nil {
			fn(c)
		}
		return nil
	}
	switch {
	case bytes.HasPrefix(text, litScav):
		st.ScavLines++
		return nil
	case bytes.Equal(text, litGCForced):
		st.ForcedGC++
		st.lastForced = true
		return nil
	case bytes.Contains(text, litClock) || bytes.Contains(text, litMBGoal):
		// The tail of a gc line whose head was cut off by other output.
		st.problem(text, "fragment of a gc line (its start was interleaved with other output)")
		return nil
	}
	st.AppLines++
	if pass != nil {
		if _, err := pass.Write(line); err != nil {
			return fmt.Errorf("pass through application output: %w", err)
		}
	}
	return nil
}

func (st *TraceStats) problem(text []byte, reason string) {
	if len(st.Problems) >= maxProblems {
		st.Truncated = true
		return
	}
	if len(text) > 200 {
		text = text[:200]
	}
	st.Problems = append(st.Problems, LineProblem{Line: st.Lines, Text: string(text), Reason: reason})
}

func isGCStart(b []byte, i int) bool {
	if len(b)-i < 6 || b[i] != 'g' || b[i+1] != 'c' || b[i+2] != ' ' {
		return false
	}
	j := i + 3
	k := j
	for k < len(b) && b[k] >= '0' && b[k] <= '9' {
		k++
	}
	return k > j && k+1 < len(b) && b[k] == ' ' && b[k+1] == '@'
}

func indexGCStart(b []byte) int {
	off := 0
	for {
		i := bytes.Index(b[off:], litGC)
		if i < 0 {
			return -1
		}
		if isGCStart(b, off+i) {
			return off + i
		}
		off += i + 1
	}
}

// lp is a cursor over one gc line.
type lp struct {
	b   []byte
	i   int
	err string
}

func (p *lp) fail(what string) {
	if p.err == "" {
		if p.i >= len(p.b) {
			p.err = "truncated: line ends before " + what
		} else {
			p.err = fmt.Sprintf("unknown format: want %s at column %d", what, p.i+1)
		}
	}
}

func (p *lp) lit(s string) {
	if p.err != "" {
		return
	}
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		if len(p.b)-p.i < len(s) && string(p.b[p.i:]) == s[:len(p.b)-p.i] {
			p.i = len(p.b)
		}
		p.fail(fmt.Sprintf("%q", s))
		return
	}
	p.i += len(s)
}

func (p *lp) has(s string) bool {
	return p.err == "" && len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s
}

func (p *lp) uint(what string) uint64 {
	if p.err != "" {
		return 0
	}
	j := p.i
	var v uint64
	for j < len(p.b) && p.b[j] >= '0' && p.b[j] <= '9' {
		if v > (1<<63)/10 {
			p.fail(what + " (number too large)")
			return 0
		}
		v = v*10 + uint64(p.b[j]-'0')
		j++
	}
	if j == p.i {
		p.fail(what)
		return 0
	}
	p.i = j
	return v
}

var pow10 = [...]float64{1, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9}

// dec parses "12", "0.026" or "1.2e+03"-free decimals as the runtime prints them.
func (p *lp) dec(what string) float64 {
	iv := p.uint(what)
	if p.err != "" {
		return 0
	}
	v := float64(iv)
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		j := p.i
		var f uint64
		for j < len(p.b) && p.b[j] >= '0' && p.b[j] <= '9' && j-p.i < 9 {
			f = f*10 + uint64(p.b[j]-'0')
			j++
		}
		if j == p.i {
			p.fail(what + " (digits after '.')")
			return 0
		}
		v += float64(f) * pow10[j-p.i]
		for j < len(p.b) && p.b[j] >= '0' && p.b[j] <= '9' {
			j++
		}
		p.i = j
	}
	return v
}

func ms(v float64) time.Duration { return time.Duration(v*1e6 + 0.5) }

// parseGCLine parses one gc line starting at "gc ".
//
//	gc 4 @0.563s 48%: 0.37+303+0.10 ms clock, 0.75+191/68/121+0.20 ms cpu, 54->61->38 MB, 64 MB goal, 0 MB stacks, 0 MB globals, 2 P (forced)
func parseGCLine(b []byte) (Cycle, error) {
	var c Cycle
	p := lp{b: b}
	p.lit("gc ")
	c.N = int64(p.uint("cycle number"))
	p.lit(" @")
	c.Start = time.Duration(p.dec("start time")*1e9 + 0.5)
	p.lit("s ")
	c.CumulativeCPUPercent = int(p.uint("GC CPU percent"))
	p.lit("%")
	if p.has(string(litLeakCheck)) {
		c.LeakCheck = true
		p.i += len(litLeakCheck)
	}
	p.lit(": ")
	stw1 := ms(p.dec("sweep termination clock"))
	p.lit("+")
	c.Mark = ms(p.dec("mark clock"))
	p.lit("+")
	stw2 := ms(p.dec("mark termination clock"))
	c.Pause = stw1 + stw2
	p.lit(" ms clock, ")
	cpu1 := ms(p.dec("sweep termination cpu"))
	p.lit("+")
	c.AssistCPU = ms(p.dec("assist cpu"))
	p.lit("/")
	c.BackgroundCPU = ms(p.dec("background mark cpu"))
	p.lit("/")
	c.IdleCPU = ms(p.dec("idle mark cpu"))
	p.lit("+")
	cpu2 := ms(p.dec("mark termination cpu"))
	c.STWCPU = cpu1 + cpu2
	p.lit(" ms cpu, ")
	c.HeapStart = p.uint("heap at start") << 20
	p.lit("->")
	c.HeapEnd = p.uint("heap at end") << 20
	p.lit("->")
	c.HeapLive = p.uint("live heap") << 20
	p.lit(" MB, ")
	c.HeapGoal = p.uint("heap goal") << 20
	p.lit(" MB goal, ")
	if p.err == "" && p.i < len(b) && b[p.i] >= '0' && b[p.i] <= '9' {
		// Go 1.19+: "# MB stacks, # MB globals, # P"; before: "# P".
		n := p.uint("stacks or P")
		if p.has(" MB stacks, ") {
			c.Stacks = n << 20
			p.i += len(" MB stacks, ")
			c.Globals = p.uint("globals") << 20
			p.lit(" MB globals, ")
			n = p.uint("GOMAXPROCS")
		}
		c.Procs = int(n)
		p.lit(" P")
	} else {
		p.fail("stacks or GOMAXPROCS")
	}
	if p.err == "" && p.i < len(b) {
		rest := b[p.i:]
		switch {
		case string(rest) == " (forced)":
			c.Forced = true
		default:
			p.fail("end of line or \" (forced)\"")
		}
	}
	if p.err != "" {
		return Cycle{}, errors.New(p.err)
	}
	if c.Procs == 0 {
		return Cycle{}, errors.New("unknown format: GOMAXPROCS is 0")
	}
	return c, nil
}

// Trace is a whole gctrace log, parsed.
type Trace struct {
	Cycles []Cycle
	Stats  TraceStats
}

// ParseTrace reads a whole gctrace log; see ScanTrace. It fails with
// ErrNoCycles when the log holds no cycle.
func ParseTrace(r io.Reader, pass io.Writer) (*Trace, error) {
	t := &Trace{}
	st, err := ScanTrace(r, pass, func(c Cycle) { t.Cycles = append(t.Cycles, c) })
	t.Stats = st
	if err != nil {
		return t, err
	}
	if len(t.Cycles) == 0 {
		if len(st.Problems) > 0 {
			return t, fmt.Errorf("%w; %d gc-like lines failed to parse, first %s", ErrNoCycles, len(st.Problems), st.Problems[0])
		}
		return t, ErrNoCycles
	}
	return t, nil
}
