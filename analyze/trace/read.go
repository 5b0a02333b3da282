package trace

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	xtrace "golang.org/x/exp/trace"
)

// Goroutines reads an execution trace from r and summarises each goroutine
// in it.
//
// A trace that is cut short after at least one complete generation is not an
// error: Goroutines returns what it read with Activity.Truncated set. Input
// that is no trace, a trace version x/exp/trace cannot read, and a trace with
// no complete generation are errors wrapping ErrNotTrace,
// ErrUnsupportedVersion, ErrTruncated or ErrCorrupt.
//
// Goroutines never panics on bad input: a panic inside x/exp/trace is
// returned as an error.
func Goroutines(r io.Reader) (*Activity, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	minor, err := sniffVersion(br)
	if err != nil {
		return nil, err
	}
	a := newAnalysis(minor)
	stopErr := a.read(br)
	if stopErr != nil && a.generations() == 0 {
		return nil, describeFailure(minor, stopErr)
	}
	if a.generations() == 0 {
		return nil, fmt.Errorf("%w: the trace has a header but no events; capture it again and let it run to the end", ErrTruncated)
	}
	act := a.finalize()
	if stopErr != nil {
		act.Truncated = true
		if isTruncation(stopErr) {
			act.Problem = fmt.Sprintf("the trace is cut short after %d complete generations (%s); the events after them are lost", act.Generations, brief(stopErr))
		} else {
			act.Problem = fmt.Sprintf("the trace is malformed after %d complete generations (%s); the events after them are lost", act.Generations, brief(stopErr))
		}
	}
	return act, nil
}

// Supported trace format versions, as Go 1.N minor numbers. They are the
// ones golang.org/x/exp/trace (at the version pinned in go.mod) parses: 11,
// 19 and 21 through its converter for the pre-1.22 format, 22 onwards
// natively. A format version is shared by the Go releases up to the next one.
var supportedVersions = []int{11, 19, 21, 22, 23, 25, 26}

// releases names the Go releases that write a format version.
func releases(minor int) string {
	i := slices.Index(supportedVersions, minor)
	if i < 0 || i == len(supportedVersions)-1 {
		if i >= 0 {
			return fmt.Sprintf("Go 1.%d or newer", minor)
		}
		return fmt.Sprintf("Go 1.%d", minor)
	}
	next := supportedVersions[i+1] - 1
	if next == minor {
		return fmt.Sprintf("Go 1.%d", minor)
	}
	return fmt.Sprintf("Go 1.%d to 1.%d", minor, next)
}

const headerLen = 16 // "go 1.NN trace\x00\x00\x00"

var headerRE = regexp.MustCompile(`^go 1\.([0-9]{1,3}) trace\x00\x00\x00`)

// sniffVersion checks the trace header without consuming it, so that the
// errors for the common mistakes (wrong file, too-old Go) are ours, with
// advice, rather than x/exp/trace's.
func sniffVersion(br *bufio.Reader) (int, error) {
	head, err := br.Peek(headerLen)
	if err != nil && err != io.EOF {
		return 0, fmt.Errorf("read trace header: %w", err)
	}
	if len(head) == 0 {
		return 0, fmt.Errorf("%w: the input is empty", ErrNotTrace)
	}
	m := headerRE.FindSubmatch(head)
	if m == nil {
		if len(head) < headerLen && headerPrefix(head) {
			return 0, fmt.Errorf("%w: the input ends inside the trace header (%d bytes)", ErrTruncated, len(head))
		}
		return 0, fmt.Errorf("%w: it starts with %s, not \"go 1.N trace\"; pass the output of /debug/pprof/trace, runtime/trace or a flight recorder",
			ErrNotTrace, quote(head))
	}
	minor, _ := strconv.Atoi(string(m[1]))
	if slices.Contains(supportedVersions, minor) {
		return minor, nil
	}
	newest := supportedVersions[len(supportedVersions)-1]
	if minor > newest {
		return 0, fmt.Errorf("%w: the trace was written by Go 1.%d, whose format is newer than this gopulse reads (up to the Go 1.%d format); use a gopulse built with a newer golang.org/x/exp/trace",
			ErrUnsupportedVersion, minor, newest)
	}
	if minor < supportedVersions[0] {
		return 0, fmt.Errorf("%w: the trace was written by Go 1.%d; gopulse reads traces from Go 1.%d on (best from Go 1.22, whose traces are complete per goroutine); trace a build made with a newer Go",
			ErrUnsupportedVersion, minor, supportedVersions[0])
	}
	return 0, fmt.Errorf("%w: header %s names a format version no Go release writes", ErrNotTrace, quote(head))
}

// headerPrefix reports whether b could be the start of a trace header.
func headerPrefix(b []byte) bool {
	const lead = "go 1."
	if len(b) <= len(lead) {
		return bytes.HasPrefix([]byte(lead), b)
	}
	if !bytes.HasPrefix(b, []byte(lead)) {
		return false
	}
	return bytes.HasPrefix([]byte(" trace\x00\x00\x00"), bytes.TrimLeft(b[len(lead):], "0123456789"))
}

func quote(b []byte) string {
	const max = 24
	if len(b) > max {
		b = b[:max]
	}
	return strconv.QuoteToASCII(string(b))
}

// describeFailure turns an error that stopped reading before any complete
// generation into one that says what to do.
func describeFailure(minor int, err error) error {
	if isTruncation(err) {
		return fmt.Errorf("%w before its first complete generation (%v): the trace was cut while downloading or writing, or covers too short a window; capture it again, and with ?seconds=N let it run to the end",
			ErrTruncated, brief(err))
	}
	return fmt.Errorf("%w: a trace in the %s format that golang.org/x/exp/trace rejects: %s", ErrCorrupt, releases(minor), brief(err))
}

// brief keeps the first line of an x/exp/trace error, whose "broken trace"
// messages append a dump of the parser's state that can run to pages.
func brief(err error) string {
	s, _, _ := strings.Cut(strings.TrimSpace(err.Error()), "\n")
	const max = 300
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// isTruncation tells a stream that simply ends early from one that is
// malformed. x/exp/trace does not wrap all of its read errors, hence the
// message checks.
func isTruncation(err error) bool {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "failed to read full batch") ||
		strings.Contains(msg, "EOF") ||
		strings.Contains(msg, "truncated")
}

// goState is the bookkeeping for one goroutine while the trace is read.
type goState struct {
	Goroutine
	state xtrace.GoState
	since xtrace.Time
	// pending is the newest stack handle not yet copied into Goroutine.Stack.
	// Copying is deferred to the end of each generation so that a goroutine
	// that blocks thousands of times costs one copy per generation, and a
	// handle is never kept past the generation that owns its table.
	pending    xtrace.Stack
	pendingSrc StackSource
}

type rangeKey struct {
	name  string
	scope xtrace.ResourceID
}

type analysis struct {
	version    string
	syncs      int
	started    bool
	start, end xtrace.Time
	wallStart  time.Time
	gs         map[xtrace.GoID]*goState
	ranges     map[rangeKey]xtrace.Time
	gc         GC
	stacks     map[string][]Frame // interned by PC sequence
	keyBuf     []byte
}

func newAnalysis(minor int) *analysis {
	return &analysis{
		version: "1." + strconv.Itoa(minor),
		gs:      make(map[xtrace.GoID]*goState),
		ranges:  make(map[rangeKey]xtrace.Time),
		stacks:  make(map[string][]Frame),
	}
}

// generations is the number of generations read to their end: every
// generation opens with a Sync event, and the reader emits one more when the
// stream ends or fails.
func (a *analysis) generations() int {
	return max(a.syncs-1, 0)
}

// read feeds every event of the trace to the analysis. It returns the error
// that stopped reading early, nil at the end of a complete trace. A panic in
// x/exp/trace, which an experimental parser fed hostile input may have, is
// turned into an error.
func (a *analysis) read(r io.Reader) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("golang.org/x/exp/trace failed on this input: %v", p)
		}
	}()
	tr, err := xtrace.NewReader(r)
	if err != nil {
		return err
	}
	for {
		ev, err := tr.ReadEvent()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		a.event(&ev)
	}
}

func (a *analysis) event(ev *xtrace.Event) {
	t := ev.Time()
	if !a.started {
		a.started = true
		a.start = t
	}
	a.end = max(a.end, t)
	switch ev.Kind() {
	case xtrace.EventSync:
		a.syncs++
		if a.wallStart.IsZero() {
			if cs := ev.Sync().ClockSnapshot; cs != nil {
				a.wallStart = cs.Wall.Add(-time.Duration(cs.Trace - a.start))
			}
		}
		a.flushStacks()
	case xtrace.EventStateTransition:
		st := ev.StateTransition()
		if st.Resource.Kind == xtrace.ResourceGoroutine {
			a.transition(t, st)
		}
	case xtrace.EventRangeBegin, xtrace.EventRangeActive:
		r := ev.Range()
		begin := t
		if ev.Kind() == xtrace.EventRangeActive {
			// Already in progress when the window opened.
			begin = a.start
		}
		a.ranges[rangeKey{r.Name, r.Scope}] = begin
		if r.Name == "GC concurrent mark phase" && ev.Kind() == xtrace.EventRangeBegin {
			a.gc.Cycles++
		}
	case xtrace.EventRangeEnd:
		r := ev.Range()
		k := rangeKey{r.Name, r.Scope}
		if begin, ok := a.ranges[k]; ok {
			delete(a.ranges, k)
			a.rangeDone(r.Name, time.Duration(t-begin))
		}
	}
}

func (a *analysis) rangeDone(name string, d time.Duration) {
	reason, ok := strings.CutPrefix(name, "stop-the-world (")
	if !ok {
		return
	}
	if strings.HasPrefix(reason, "GC ") {
		a.gc.STW.add(d)
	} else {
		a.gc.OtherSTW.add(d)
	}
}

func (a *analysis) transition(t xtrace.Time, st xtrace.StateTransition) {
	id := st.Resource.Goroutine()
	if id < 0 {
		return
	}
	from, to := st.Goroutine()
	g := a.gs[id]
	if g == nil {
		g = &goState{Goroutine: Goroutine{ID: int64(id)}}
		a.gs[id] = g
		switch from {
		case xtrace.GoNotExist:
			g.Created = true
			g.state, g.since = xtrace.GoNotExist, t
		case xtrace.GoUndetermined:
			// The first event about a goroutine that existed before the
			// window is its status: it has been in that state since the
			// window opened.
			g.state, g.since = to, a.start
			g.StartState = stateName(to)
		default:
			g.state, g.since = from, a.start
			g.StartState = stateName(from)
		}
	}
	a.account(g, t)
	if from != xtrace.GoUndetermined && from != xtrace.GoNotExist && to != from {
		if to == xtrace.GoWaiting {
			g.Blocks++
		}
		if to == xtrace.GoNotExist {
			g.Ended = true
		}
	}
	g.state = to
	if to == xtrace.GoRunning {
		g.Ran = true
	}
	if st.Reason != "" {
		g.LastReason = st.Reason
	}
	if st.Stack == xtrace.NoStack {
		return
	}
	var src StackSource
	switch {
	case from == xtrace.GoNotExist:
		if g.pendingSrc != StackNone || g.StackSource != StackNone {
			return
		}
		src = StackCreate
	case from == to || from == xtrace.GoUndetermined:
		src = StackStatus
	case to == xtrace.GoWaiting:
		src = StackBlock
	case to == xtrace.GoSyscall:
		src = StackSyscall
	case to == xtrace.GoRunnable:
		src = StackPreempt
	default:
		return
	}
	g.pending, g.pendingSrc = st.Stack, src
}

// account charges the time since the goroutine's last transition to the
// state it was in.
func (a *analysis) account(g *goState, t xtrace.Time) {
	if t < g.since {
		return
	}
	d := time.Duration(t - g.since)
	switch g.state {
	case xtrace.GoRunning:
		g.Running += d
	case xtrace.GoRunnable:
		g.Runnable += d
	case xtrace.GoWaiting:
		g.Waiting += d
	case xtrace.GoSyscall:
		g.Syscall += d
	}
	g.since = t
}

// flushStacks copies pending stack handles into frames while their
// generation's tables are still the current ones.
func (a *analysis) flushStacks() {
	for _, g := range a.gs {
		if g.pendingSrc == StackNone {
			continue
		}
		g.Stack, g.StackSource = a.frames(g.pending), g.pendingSrc
		g.pending, g.pendingSrc = xtrace.NoStack, StackNone
	}
}

func (a *analysis) frames(s xtrace.Stack) []Frame {
	key := a.keyBuf[:0]
	for f := range s.Frames() {
		key = fmt.Appendf(key, "%x;%s;%s;%d\n", f.PC, f.Func, f.File, f.Line)
	}
	a.keyBuf = key
	if fr, ok := a.stacks[string(key)]; ok {
		return fr
	}
	var fr []Frame
	for f := range s.Frames() {
		fr = append(fr, Frame{Func: f.Func, File: f.File, Line: int(f.Line)})
	}
	a.stacks[string(key)] = fr
	return fr
}

func (a *analysis) finalize() *Activity {
	a.flushStacks()
	act := &Activity{
		Version:     a.version,
		Start:       int64(a.start),
		End:         int64(a.end),
		WallStart:   a.wallStart,
		Duration:    time.Duration(a.end - a.start),
		Generations: a.generations(),
		GC:          a.gc,
		Goroutines:  make([]Goroutine, 0, len(a.gs)),
	}
	// Stops still in progress when the window closed count up to its end,
	// so a trace taken during a long pause still shows it.
	for k, begin := range a.ranges {
		a.rangeDone(k.name, time.Duration(a.end-begin))
	}
	act.GC = a.gc
	for _, g := range a.gs {
		a.account(g, a.end)
		if !g.Ended {
			g.EndState = stateName(g.state)
		}
		act.Goroutines = append(act.Goroutines, g.Goroutine)
	}
	slices.SortFunc(act.Goroutines, func(x, y Goroutine) int { return cmp.Compare(x.ID, y.ID) })
	return act
}

func stateName(s xtrace.GoState) string {
	switch s {
	case xtrace.GoRunning:
		return "running"
	case xtrace.GoRunnable:
		return "runnable"
	case xtrace.GoWaiting:
		return "waiting"
	case xtrace.GoSyscall:
		return "syscall"
	case xtrace.GoNotExist:
		return ""
	}
	return "unknown"
}
