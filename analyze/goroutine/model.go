// Package goroutine reads goroutine dumps in every form Go produces, groups
// goroutines that wait at the same place, follows the groups across snapshots
// of one process and decides which of them leak.
//
// The input formats are the runtime's own: the text of
// /debug/pprof/goroutine?debug=2 (also SIGQUIT and panic output, and dumps
// buried in logs), the aggregated text of ?debug=1, and the pprof protobuf
// goroutine profile (?debug=0), gzipped or not. The format is sniffed.
//
// Parsing streams: memory grows with the number of distinct stacks, not with
// the number of goroutines, so a 1,000,000-goroutine dump parses in bounded
// memory.
//
//	snap, err := goroutine.Parse(f, goroutine.Options{})
//	...
//	report := goroutine.Analyze([]*goroutine.Snapshot{s1, s2, s3, s4}, goroutine.AnalyzeOptions{})
//	for _, g := range report.Groups { fmt.Println(g.Verdict, g.Count, g.Evidence) }
package goroutine

import (
	"errors"
	"time"
)

// Format names the form a goroutine dump came in.
type Format int

const (
	// FormatUnknown is what Sniff returns for input that is no dump.
	FormatUnknown Format = iota
	// FormatText is one entry per goroutine: /debug/pprof/goroutine?debug=2,
	// runtime.Stack(buf, true), SIGQUIT and panic output.
	FormatText
	// FormatDebug1 is the aggregated text of /debug/pprof/goroutine?debug=1:
	// one entry per distinct stack with a count and pprof labels.
	FormatDebug1
	// FormatProto is the pprof protobuf goroutine profile (?debug=0, or the
	// goroutineleak profile), gzipped or not.
	FormatProto
)

// String returns the name used in reports and JSON.
func (f Format) String() string {
	switch f {
	case FormatText:
		return "text"
	case FormatDebug1:
		return "debug1"
	case FormatProto:
		return "proto"
	}
	return "unknown"
}

// Sentinel errors. Parse wraps them with the line or offset that failed.
var (
	// ErrNotDump means the input holds no goroutine dump in any known format.
	ErrNotDump = errors.New("no goroutine dump found")
	// ErrTooLarge means the input passed Options.MaxBytes.
	ErrTooLarge = errors.New("input larger than the configured limit")
	// ErrTooManyStacks means the input has more distinct stacks than
	// Options.MaxGroups; it is the guard that keeps memory bounded on
	// adversarial input.
	ErrTooManyStacks = errors.New("too many distinct stacks")
)

// Frame is one function call in a stack.
type Frame struct {
	// Func is the fully qualified function name as the runtime prints it,
	// e.g. "net/http.(*conn).serve" or "main.worker.func1".
	Func string `json:"func"`
	// File is the absolute source path, "" when unknown.
	File string `json:"file"`
	// Line is the line number in File, 0 when unknown.
	Line int `json:"line"`
	// Args is the raw argument text "(0xc000012345, 0x1)" — kept only with
	// Similarity ExactArgs, since it is per goroutine and costs memory.
	Args string `json:"-"`
}

// Goroutine is one goroutine, or with Count > 1 one stack shared by Count
// goroutines (the aggregated formats), as the streaming scanner sees it.
// The value and its slices are reused: copy what you keep.
type Goroutine struct {
	// ID is the goroutine ID, 0 when the format has none (debug=1, proto).
	ID int64
	// State is the wait reason as printed: "running", "chan receive",
	// "chan send (nil chan)", "select", "IO wait", "semacquire"...
	// For the aggregated formats, where no state is printed, it is derived
	// from the top frames (see StateFromFrames).
	State string
	// Wait is how long the goroutine has been blocked, as the runtime prints it
	// ("[chan receive, 12 minutes]"); the runtime shows it only from one
	// minute on, so 0 means "under a minute or unknown".
	Wait time.Duration
	// Locked is true for "locked to thread".
	Locked bool
	// Leaked is true when the header carried the runtime's "(leaked)" mark:
	// a goroutineleak profile run (GOEXPERIMENT=goroutineleakprofile in Go
	// 1.26) proved it unreachable. State does not include the mark, so the
	// goroutine groups with its stack from earlier snapshots.
	Leaked bool
	// Frames lists the stack top first.
	Frames []Frame
	// Elided is true when the runtime cut the stack
	// ("...additional frames elided...").
	Elided bool
	// CreatedBy is the go statement that started the goroutine; zero Func
	// for goroutines the runtime started itself (main, init).
	CreatedBy Frame
	// CreatorID is the goroutine that ran the go statement
	// ("created by ... in goroutine 7"), 0 when not printed.
	CreatorID int64
	// Count is 1 for FormatText; the number of goroutines that share the
	// stack for the aggregated formats.
	Count int
	// Labels are the pprof labels (debug=1 and proto only), nil when none.
	Labels map[string]string
}

// Similarity says how alike two stacks must be to share a group. The zero
// value, SameLines, ignores arguments, which are per-goroutine noise (every
// sync.Cond waiter has its own ticket number).
type Similarity int

const (
	// SameLines groups goroutines with the same state, the same functions at
	// the same file:line in the same order, and the same created-by site.
	SameLines Similarity = iota
	// SameFuncs ignores line numbers too: useful to match snapshots taken
	// across two builds of a service.
	SameFuncs
	// ExactArgs also compares the raw argument text, like panicparse's
	// ExactFlags: finest grouping, most groups.
	ExactArgs
)

// Options tune Parse. The zero value works.
type Options struct {
	// Similarity chooses the grouping; default SameLines.
	Similarity Similarity
	// MaxBytes bounds the input; 0 means 4 GiB. Past it Parse returns
	// ErrTooLarge.
	MaxBytes int64
	// MaxGroups bounds distinct groups; 0 means 1,000,000.
	MaxGroups int
	// KeepIDs limits how many goroutine IDs each group keeps; 0 keeps all.
	// IDs let Analyze follow individual goroutines across snapshots.
	KeepIDs int
	// Time is the moment the dump was taken, copied into the Snapshot.
	Time time.Time
}

// Group is a set of goroutines with equivalent stacks (per Similarity).
type Group struct {
	// Key identifies the group's stack, stable across snapshots and
	// processes: a hex hash of state, frames and created-by site (under
	// SameLines the frames' func, file and line).
	Key string
	// State is the shared wait reason.
	State string
	// Frames is the stack, top first.
	Frames []Frame
	// Elided is true when the runtime cut the stack.
	Elided bool
	// CreatedBy is the go statement that started these goroutines.
	CreatedBy Frame
	// Count is the number of goroutines in the group.
	Count int
	// IDs are the goroutine IDs, ascending, when the format has them.
	IDs []int64
	// WaitMin and WaitMax bound the printed wait durations; WaitKnown counts
	// the goroutines that printed one (the runtime prints it from 1 minute).
	WaitMin, WaitMax time.Duration
	WaitKnown        int
	// Locked counts goroutines locked to their thread.
	Locked int
	// Leaked counts goroutines the runtime marked "(leaked)".
	Leaked int
	// Labels are the pprof labels of the first goroutine seen, nil when none.
	Labels map[string]string
}

// Snapshot is one goroutine dump of one process, grouped.
type Snapshot struct {
	// Time is Options.Time, zero when unknown.
	Time time.Time
	// Format is the format Parse found.
	Format Format
	// Goroutines is the total number of goroutines in the dump.
	Goroutines int
	// Groups are sorted by Count, largest first, ties by Key.
	Groups []*Group
	// Truncated is true when the dump ended inside a goroutine, or stopped at
	// the runtime's 64 MB cap on debug=2 output; TruncatedReason says which.
	Truncated       bool
	TruncatedReason string
	// Bytes is the size of the input read.
	Bytes int64
	// Skipped counts lines that were not part of the dump (log text around it).
	Skipped int
}
