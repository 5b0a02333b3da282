package ui

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// TraceSummary is what the bundle page shows of an execution trace: the
// stop-the-world periods and the goroutines that waited longest. The
// caller fills it (Options.SummarizeTrace) so that this package needs no
// trace parser of its own.
type TraceSummary struct {
	// Version is the trace format's Go version ("1.26").
	Version         string  `json:"version"`
	DurationSeconds float64 `json:"duration_seconds"`
	// Truncated is set when the trace ended early; Problem says how.
	Truncated  bool   `json:"truncated,omitempty"`
	Problem    string `json:"problem,omitempty"`
	Goroutines int    `json:"goroutines"`
	// GCCycles counts GC mark phases that began in the window; GCSTW are
	// the GC's own stops, OtherSTW every other stop (goroutine dumps,
	// ReadMemStats, starting the trace …).
	GCCycles int         `json:"gc_cycles"`
	GCSTW    TracePauses `json:"gc_stw"`
	OtherSTW TracePauses `json:"other_stw"`
	// LongestWaiting are the goroutines that spent the most time blocked,
	// longest first.
	LongestWaiting []TraceGoroutine `json:"longest_waiting"`
}

// TracePauses summarises a set of stop-the-world periods.
type TracePauses struct {
	Count        int     `json:"count"`
	TotalSeconds float64 `json:"total_seconds"`
	MaxSeconds   float64 `json:"max_seconds"`
}

// TraceGoroutine is one goroutine of a TraceSummary.
type TraceGoroutine struct {
	ID              int64   `json:"id"`
	WaitingSeconds  float64 `json:"waiting_seconds"`
	RunningSeconds  float64 `json:"running_seconds"`
	RunnableSeconds float64 `json:"runnable_seconds"`
	Blocks          int     `json:"blocks"`
	// Ran is false for a goroutine that never ran in the window.
	Ran bool `json:"ran"`
	// LastReason is why it last blocked ("chan receive", "select" …), ""
	// when it was parked for the whole window.
	LastReason string       `json:"last_reason,omitempty"`
	EndState   string       `json:"end_state,omitempty"`
	Stack      []TraceFrame `json:"stack,omitempty"`
}

// TraceFrame is one call of a TraceGoroutine's stack, innermost first.
type TraceFrame struct {
	Func string `json:"func"`
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
}

// ErrNotTrace is what Options.SummarizeTrace should wrap when the input
// is not an execution trace it can read; the endpoint answers 422.
var ErrNotTrace = errors.New("not a readable Go execution trace")

// serveTrace answers /ui/api/trace?bundle=ID&file=trace.out with the
// TraceSummary of that bundle file.
func (h *handler) serveTrace(w http.ResponseWriter, r *http.Request) {
	id, file, rc, ok := h.openBundleFile(w, r, "/ui/api/trace?bundle=ID&file=trace.out", h.opts.SummarizeTrace != nil)
	if !ok {
		return
	}
	defer rc.Close()
	sum, err := h.opts.SummarizeTrace(io.LimitReader(rc, h.opts.MaxTraceBytes))
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, ErrNotTrace) {
			status = http.StatusUnprocessableEntity
		}
		jsonError(w, status, fmt.Sprintf("%s of bundle %s: %v", file, id, err))
		return
	}
	if sum.LongestWaiting == nil {
		sum.LongestWaiting = []TraceGoroutine{}
	}
	w.Header().Set("Content-Type", "application/json")
	// A bundle file never changes once committed.
	w.Header().Set("Cache-Control", "private, max-age=3600")
	json.NewEncoder(w).Encode(sum)
}
