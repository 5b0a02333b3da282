// Package trace summarises Go execution traces per goroutine: which
// goroutines ran during the traced window, how long each one waited and on
// what, and where it was parked, so a goroutine that never ran in the window
// can be told from one that is merely waiting a lot.
//
// The input is the runtime's own trace format, as served by net/http/pprof at
// /debug/pprof/trace?seconds=N or written by runtime/trace.Start and
// trace.FlightRecorder.WriteTo. It is read with golang.org/x/exp/trace, one
// event at a time:
//
//	act, err := trace.Goroutines(f)
//	if err != nil { ... }
//	for _, g := range act.Goroutines {
//		if !g.Ran && g.EndState == "waiting" {
//			fmt.Println(g.ID, g.Waiting, g.Stack[0].Func)
//		}
//	}
//
// Goroutine IDs are the runtime's goids: the numbers a goroutine dump
// ("goroutine 18 [chan receive]:") prints, so the two can be joined.
//
// Memory: golang.org/x/exp/trace holds one generation of the trace (about one
// second of events) at a time; this package keeps a fixed amount per
// goroutine plus one copy of each distinct stack. Traces written by Go 1.21
// and older are converted by x/exp/trace as a whole, in memory.
package trace

// The fixtures in testdata come from internal/testprog/traced. Regenerate
// them, then the golden files and fuzz seeds, with:
//
//	go generate ./analyze/trace && go test ./analyze/trace -update
//
//go:generate sh -c "go run ../../internal/testprog/traced -trace testdata/start.trace -dump testdata/start.dump > testdata/start.parked"
//go:generate sh -c "go run ../../internal/testprog/traced -mode flight -trace testdata/flight.trace -dump testdata/flight.dump > testdata/flight.parked"

import (
	"cmp"
	"errors"
	"slices"
	"time"
)

// Sentinel errors. Goroutines wraps them with what it found; test with
// errors.Is.
var (
	// ErrNotTrace means the input does not start with a Go execution trace
	// header.
	ErrNotTrace = errors.New("not a Go execution trace")
	// ErrUnsupportedVersion means the trace format version is one that
	// golang.org/x/exp/trace, at the version gopulse is built with, cannot
	// read.
	ErrUnsupportedVersion = errors.New("unsupported execution trace version")
	// ErrTruncated means the trace ends before its first complete
	// generation, so nothing in it can be read.
	ErrTruncated = errors.New("execution trace truncated")
	// ErrCorrupt means the trace is malformed before anything could be read.
	ErrCorrupt = errors.New("execution trace malformed")
)

// Frame is one call in a stack, innermost first in a Stack.
type Frame struct {
	Func string `json:"func"`
	File string `json:"file"`
	Line int    `json:"line"`
}

// StackSource says which trace event a goroutine's stack was taken from. It
// matters for reading the stack: only "block" and "status" stacks show where
// a goroutine is parked.
type StackSource string

const (
	// StackNone: the trace recorded no stack for the goroutine.
	StackNone StackSource = ""
	// StackBlock: the goroutine's most recent transition to waiting.
	StackBlock StackSource = "block"
	// StackStatus: the status the runtime writes once per generation for a
	// goroutine that did nothing in that generation, e.g. one parked for the
	// whole window.
	StackStatus StackSource = "status"
	// StackPreempt: the goroutine's most recent stop while still runnable
	// (preempted, yield).
	StackPreempt StackSource = "preempt"
	// StackSyscall: the goroutine's most recent entry into a system call.
	StackSyscall StackSource = "syscall"
	// StackCreate: only the entry function the goroutine was created with;
	// it did nothing else that recorded a stack.
	StackCreate StackSource = "create"
)

// Goroutine is what the trace says about one goroutine during the window.
type Goroutine struct {
	// ID is the runtime's goroutine ID, the number goroutine dumps print.
	ID int64 `json:"id"`
	// Ran is true when the goroutine was running Go code at some moment of
	// the window: it was scheduled, or was already running when the window
	// opened. Time spent only in a system call does not count.
	Ran bool `json:"ran"`
	// Created and Ended are true when the goroutine was created, or exited,
	// inside the window.
	Created bool `json:"created"`
	Ended   bool `json:"ended"`
	// StartState is the state the goroutine had when the window opened
	// ("running", "runnable", "waiting", "syscall"), or "" if it was created
	// inside the window. EndState is its state when the window closed, or
	// "" if it ended.
	StartState string `json:"start_state"`
	EndState   string `json:"end_state"`
	// Time spent in each state inside the window. Waiting is time blocked
	// on channels, locks, the network, timers and the like.
	Running  time.Duration `json:"running_ns"`
	Runnable time.Duration `json:"runnable_ns"`
	Waiting  time.Duration `json:"waiting_ns"`
	Syscall  time.Duration `json:"syscall_ns"`
	// Blocks counts transitions into waiting inside the window.
	Blocks int `json:"blocks"`
	// LastReason is the reason x/exp/trace gave for the goroutine's most
	// recent block or stop ("chan receive", "select", "sync", "network",
	// "sleep", "preempted" …). The trace records no reason for a goroutine
	// that was already parked when the window opened and never moved:
	// LastReason is then "" and a goroutine dump has the wait reason.
	LastReason string `json:"last_reason,omitempty"`
	// Stack is the most recent stack the trace recorded for the goroutine
	// itself, innermost first; StackSource says where it came from.
	Stack       []Frame     `json:"stack,omitempty"`
	StackSource StackSource `json:"stack_source,omitempty"`
}

// Pauses summarises a set of stop-the-world periods.
type Pauses struct {
	Count int           `json:"count"`
	Total time.Duration `json:"total_ns"`
	Max   time.Duration `json:"max_ns"`
}

func (p *Pauses) add(d time.Duration) {
	p.Count++
	p.Total += d
	p.Max = max(p.Max, d)
}

// GC summarises garbage collection inside the window.
type GC struct {
	// Cycles counts GC mark phases that began inside the window.
	Cycles int `json:"cycles"`
	// STW covers the GC's own stop-the-world periods (sweep termination and
	// mark termination: two per cycle).
	STW Pauses `json:"stw"`
	// OtherSTW covers stops for anything else: starting the trace, goroutine
	// dumps, ReadMemStats, GOMAXPROCS changes …
	OtherSTW Pauses `json:"other_stw"`
}

// Activity is the summary of one trace.
type Activity struct {
	// Version is the trace format's Go version ("1.26"): traces carry
	// the version of the format, which is shared by several Go releases.
	Version string `json:"version"`
	// Start and End bound the window on the trace clock, in nanoseconds.
	// Only differences between them are meaningful; WallStart is the wall
	// clock time of Start when the trace carries a clock snapshot (Go 1.25+),
	// zero otherwise.
	Start     int64         `json:"start"`
	End       int64         `json:"end"`
	WallStart time.Time     `json:"wall_start,omitzero"`
	Duration  time.Duration `json:"duration_ns"`
	// Generations is the number of complete generations read. The runtime
	// flushes a generation about once a second.
	Generations int `json:"generations"`
	// Truncated is true when reading stopped before the end of the trace
	// (typically a download cut short); what was read before is reported
	// and Problem says what went wrong.
	Truncated bool   `json:"truncated,omitempty"`
	Problem   string `json:"problem,omitempty"`
	// Goroutines is every goroutine the trace mentions, sorted by ID.
	Goroutines []Goroutine `json:"goroutines"`
	GC         GC          `json:"gc"`
}

// Goroutine returns the goroutine with the given ID, if the trace has it.
func (a *Activity) Goroutine(id int64) (Goroutine, bool) {
	lo, hi := 0, len(a.Goroutines)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if a.Goroutines[m].ID < id {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(a.Goroutines) && a.Goroutines[lo].ID == id {
		return a.Goroutines[lo], true
	}
	return Goroutine{}, false
}

// LongestWaiting returns up to n goroutines with the most time waiting,
// longest first, ties broken by ID.
func (a *Activity) LongestWaiting(n int) []Goroutine {
	var out []Goroutine
	for _, g := range a.Goroutines {
		if g.Waiting > 0 {
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(x, y Goroutine) int {
		if c := cmp.Compare(y.Waiting, x.Waiting); c != 0 {
			return c
		}
		return cmp.Compare(x.ID, y.ID)
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}
