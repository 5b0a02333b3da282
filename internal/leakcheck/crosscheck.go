package leakcheck

import (
	"context"
	"fmt"
	"time"

	"github.com/gopulse/gopulse/analyze/goroutine"
	"github.com/gopulse/gopulse/analyze/trace"
	"github.com/gopulse/gopulse/internal/procfs"
)

// fetchTrace takes an execution trace of d from the target and keeps what
// the verdicts need: which goroutines ran.
func fetchTrace(ctx context.Context, ep *Endpoint, d, timeout time.Duration) (*goroutine.TraceView, error) {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	body, cancel, err := ep.get(ctx, fmt.Sprintf("trace?seconds=%d", secs), d+timeout)
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer body.Close()
	act, err := trace.Goroutines(body)
	if err != nil {
		return nil, err
	}
	return traceView(act), nil
}

// traceView converts the trace analyzer's result into the verdicts' input;
// the two analyzers do not import each other.
func traceView(act *trace.Activity) *goroutine.TraceView {
	tv := &goroutine.TraceView{Window: act.Duration, Goroutines: make(map[int64]goroutine.TraceGoroutine, len(act.Goroutines))}
	for _, g := range act.Goroutines {
		tg := goroutine.TraceGoroutine{Ran: g.Ran, Created: g.Created}
		for _, f := range g.Stack {
			tg.Frames = append(tg.Frames, goroutine.Frame{Func: f.Func, File: f.File, Line: f.Line})
		}
		tv.Goroutines[g.ID] = tg
	}
	return tv
}

// pidForPort finds the local process listening on port.
func pidForPort(port int) (int, error) { return procfs.PIDByListenPort(port) }

// readOS reads the /proc view of pid into the verdicts' input.
func readOS(pid int) (*goroutine.OSView, error) {
	p, err := procfs.Read(pid)
	if p == nil {
		return nil, err
	}
	// A partial read (another user's fd table) still has the counts it
	// could read; the error travels with it.
	v := &goroutine.OSView{PID: p.PID, FDs: p.OpenFDs, Threads: p.Threads, TCP: p.TCP}
	// An unlimited soft limit (RLIM_INFINITY) is reported as no limit.
	if p.FDLimit.Soft > 0 && p.FDLimit.Soft < 1<<31 {
		v.FDLimit = int(p.FDLimit.Soft)
	}
	return v, err
}
