package goroutine

import "time"

// Verdict is the analyzer's conclusion about one group.
type Verdict string

// The three verdicts. Leak is reserved for strong evidence; Suspect means
// "look at this" and never fails a CI run on its own.
const (
	VerdictLeak    Verdict = "leak"
	VerdictSuspect Verdict = "suspect"
	VerdictOK      Verdict = "ok"
)

// AnalyzeOptions carry the cross-checks gathered beside the snapshots. The
// zero value analyzes the snapshots alone.
type AnalyzeOptions struct {
	// LeakProfile is the runtime's goroutineleak profile
	// (/debug/pprof/goroutineleak), taken during the window. Goroutines it
	// reports are unreachable from anything runnable: proof of a leak.
	LeakProfile *Snapshot
	// Trace is what an execution trace of (part of) the window showed.
	Trace *TraceView
	// OS is the target's process view from /proc, when it runs on this host.
	OS *OSView
	// MinGrowth is the smallest net growth of a group over the window that
	// can make it a leak; 0 means 3.
	MinGrowth int
}

// TraceView is the part of an execution trace the verdicts use: which
// goroutines ran during the traced window. It is filled from analyze/trace
// by the caller, so this package does not depend on the trace parser.
type TraceView struct {
	// Window is the traced duration.
	Window time.Duration
	// Goroutines maps goroutine ID to what the trace saw of it.
	Goroutines map[int64]TraceGoroutine
}

// TraceGoroutine is one goroutine in a trace.
type TraceGoroutine struct {
	// Ran is true when the goroutine was running at any moment of the window.
	Ran bool
	// Created is true when the goroutine started inside the window: it ran
	// then, whatever it does afterwards, so it says nothing about being stuck.
	Created bool
	// Frames is its stack where the trace recorded one (when it blocked, or
	// at the start of the trace), top first; nil when unknown.
	Frames []Frame
}

// OSView is the target process seen from /proc.
type OSView struct {
	PID     int
	FDs     int // open file descriptors
	FDLimit int // RLIMIT_NOFILE soft limit, 0 when unknown
	Threads int
	// TCP counts the process's TCP sockets by state name as in the kernel:
	// "ESTABLISHED", "CLOSE_WAIT", "TIME_WAIT", "LISTEN"…
	TCP map[string]int
}

// Report is the result of Analyze.
type Report struct {
	// Snapshots is how many snapshots were analyzed.
	Snapshots int
	// Window is the time between the first and last snapshot, 0 when unknown.
	Window time.Duration
	// Goroutines is the goroutine count of each snapshot, in order.
	Goroutines []int
	// Groups are ordered leak, suspect, ok; within a verdict by count.
	Groups []*GroupReport
	// Notes are report-wide observations (truncated dumps, OS facts).
	Notes []string
}

// GroupReport is one group followed across the snapshots.
type GroupReport struct {
	// Group is the group as seen in the last snapshot it appeared in.
	*Group
	// Verdict and the sentences that justify it.
	Verdict  Verdict
	Evidence []string
	// Counts is the group's size in each snapshot (0 where absent).
	Counts []int
	// GrowthPerMinute is the least-squares slope of Counts over time, and R2
	// its coefficient of determination; both 0 without timestamps.
	GrowthPerMinute float64
	R2              float64
	// Stuck counts goroutines seen (by ID) in this group in every snapshot:
	// they never left the blocking point during the window. -1 when the
	// format has no IDs.
	Stuck int
	// Blocking is the first frame of user code: where the group waits.
	Blocking Frame
}
