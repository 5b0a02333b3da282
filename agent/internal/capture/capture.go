// Package capture writes evidence bundles: profiles, the flight-recorder
// trace, a runtime/metrics snapshot and facts, streamed into a
// wire.BundleWriter one file at a time so no file sits whole in memory.
package capture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/gopulse/gopulse/agent/internal/sample"
	"github.com/gopulse/gopulse/wire"
)

// Content types of bundle files.
const (
	ContentTypePprof = "application/vnd.google.protobuf+pprof"
	ContentTypeTrace = "application/vnd.go.trace"
	ContentTypeText  = "text/plain; charset=utf-8"
	ContentTypeJSON  = "application/json"
)

// Spec describes one capture.
type Spec struct {
	Manifest *wire.BundleManifest // event id, rule, values; Files are filled in
	// CPUProfile is how long the CPU profile after the trigger runs; 0 skips.
	CPUProfile time.Duration
	// Debug2Limit: the stop-the-world debug=2 goroutine dump is taken only
	// when there are at most this many goroutines; 0 never.
	Debug2Limit int
	// LeakProfileLimit: the runtime's goroutine leak profile (Go 1.27, or
	// 1.26 built with GOEXPERIMENT=goroutineleakprofile) is taken only when
	// the runtime has it and there are at most this many goroutines, since
	// it runs a special GC cycle whose cost grows with them; 0 never.
	LeakProfileLimit int
	Mutex            bool
	Block            bool
	Recorder         *Recorder // may be nil
	// Facts is written as facts.json (process, cgroup, settings).
	Facts any
}

// otherPauses reads /sched/pauses/total/other:seconds: the non-GC
// stop-the-world time, which is where a goroutine dump's pause lands.
func otherPauses() float64 {
	s := []metrics.Sample{{Name: sample.NamePausesOther}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return 0
	}
	return sample.HistSum(s[0].Value.Float64Histogram())
}

// pipeFile streams what produce writes into the bundle as one file. The
// producer runs in its own goroutine and is always waited for; if the
// bundle stops accepting bytes the pipe is closed so the producer returns.
func pipeFile(bw *wire.BundleWriter, name, ct string, produce func(io.Writer) error) error {
	pr, pw := io.Pipe()
	var wg sync.WaitGroup
	var perr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		perr = produce(pw)
		pw.CloseWithError(perr)
	}()
	f, err := bw.WriteFile(name, ct, pr)
	pr.CloseWithError(errors.New("bundle closed"))
	wg.Wait()
	if f == nil && err != nil {
		return &writeErr{err}
	}
	if perr != nil {
		return fmt.Errorf("write %s: %w", name, perr)
	}
	return nil
}

// Capture writes a complete bundle to w and returns its manifest. An error
// from one evidence file is noted in the manifest and the capture goes on;
// only a failure of w itself (or ctx) ends it with an error.
func Capture(ctx context.Context, w io.Writer, spec Spec) (*wire.BundleManifest, error) {
	m := spec.Manifest
	bw, err := wire.NewBundleWriter(w)
	if err != nil {
		return nil, err
	}
	note := func(format string, args ...any) { m.Notes = append(m.Notes, fmt.Sprintf(format, args...)) }
	// fatal distinguishes a broken destination from a failed profile.
	fatal := func(err error) bool {
		var perr *writeErr
		return errors.As(err, &perr) || ctx.Err() != nil
	}
	add := func(name, ct string, produce func(io.Writer) error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := pipeFile(bw, name, ct, produce); err != nil {
			if fatal(err) {
				return err
			}
			note("%s: %v", name, err)
		}
		return nil
	}
	stw0 := otherPauses()

	// The trace first: it holds the seconds before the trigger, and waiting
	// would push them out of the recorder's window.
	if spec.Recorder != nil && spec.Recorder.Running() {
		if err := add("trace.out", ContentTypeTrace, spec.Recorder.WriteTrace); err != nil {
			return nil, err
		}
	} else {
		note("trace.out: flight recorder was not running (mode %s)", spec.Recorder.ModeString())
	}
	n := runtime.NumGoroutine()
	if err := add("goroutine.pb.gz", ContentTypePprof, func(w io.Writer) error { return pprof.Lookup("goroutine").WriteTo(w, 0) }); err != nil {
		return nil, err
	}
	if spec.Debug2Limit > 0 && n <= spec.Debug2Limit {
		if err := add("goroutines.txt", ContentTypeText, func(w io.Writer) error { return pprof.Lookup("goroutine").WriteTo(w, 2) }); err != nil {
			return nil, err
		}
	} else {
		note("goroutines.txt: skipped, %d goroutines > limit %d (a debug=2 dump stops the world for its whole length)", n, spec.Debug2Limit)
	}
	switch lp := pprof.Lookup("goroutineleak"); {
	case spec.LeakProfileLimit <= 0:
	case lp == nil:
		note("goroutineleak.pb.gz: skipped, this runtime has no goroutine leak profile (Go 1.27, or 1.26 built with GOEXPERIMENT=goroutineleakprofile)")
	case n > spec.LeakProfileLimit:
		note("goroutineleak.pb.gz: skipped, %d goroutines > limit %d (its GC cycle grows with the goroutines)", n, spec.LeakProfileLimit)
	default:
		if err := add("goroutineleak.pb.gz", ContentTypePprof, func(w io.Writer) error { return lp.WriteTo(w, 0) }); err != nil {
			return nil, err
		}
	}
	if err := add("heap.pb.gz", ContentTypePprof, func(w io.Writer) error { return pprof.Lookup("heap").WriteTo(w, 0) }); err != nil {
		return nil, err
	}
	if spec.Mutex {
		if err := add("mutex.pb.gz", ContentTypePprof, func(w io.Writer) error { return pprof.Lookup("mutex").WriteTo(w, 0) }); err != nil {
			return nil, err
		}
	}
	if spec.Block {
		if err := add("block.pb.gz", ContentTypePprof, func(w io.Writer) error { return pprof.Lookup("block").WriteTo(w, 0) }); err != nil {
			return nil, err
		}
	}
	if err := add("metrics.json", ContentTypeJSON, writeMetrics); err != nil {
		return nil, err
	}
	if spec.Facts != nil {
		if err := add("facts.json", ContentTypeJSON, func(w io.Writer) error {
			e := json.NewEncoder(w)
			e.SetIndent("", "  ")
			return e.Encode(spec.Facts)
		}); err != nil {
			return nil, err
		}
	}
	m.CaptureStwSeconds = otherPauses() - stw0
	if spec.CPUProfile > 0 {
		if err := cpuProfile(ctx, bw, spec.CPUProfile, note); err != nil {
			return nil, err
		}
	}
	if err := bw.Close(m); err != nil {
		return nil, &writeErr{err}
	}
	return m, nil
}

// writeErr marks errors of the bundle destination (not of a profile).
type writeErr struct{ err error }

func (e *writeErr) Error() string { return e.err.Error() }
func (e *writeErr) Unwrap() error { return e.err }

// ErrCPUProfileBusy is reported (as a note) when someone else's CPU
// profile is running: the runtime allows one at a time.
var ErrCPUProfileBusy = errors.New("a CPU profile is already running (another profiler owns it); skipped")

// cpuProfile records the CPU profile of the next d into the bundle. It
// starts the profiler before opening the file so a busy profiler leaves no
// empty file behind. A cancelled ctx ends the profile early; what was
// recorded is still a valid profile.
func cpuProfile(ctx context.Context, bw *wire.BundleWriter, d time.Duration, note func(string, ...any)) error {
	pr, pw := io.Pipe()
	if err := pprof.StartCPUProfile(pw); err != nil {
		note("cpu.pb.gz: %v", ErrCPUProfileBusy)
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			note("cpu.pb.gz: cut short by cancellation")
		}
		pprof.StopCPUProfile()
		pw.Close()
	}()
	f, err := bw.WriteFile("cpu.pb.gz", ContentTypePprof, pr)
	pr.CloseWithError(errors.New("bundle closed"))
	<-done
	if f == nil && err != nil {
		return &writeErr{err}
	}
	return nil
}

type jsonHist struct {
	Buckets []string `json:"buckets"`
	Counts  []uint64 `json:"counts"`
}

// writeMetrics writes every runtime/metrics value as a JSON object keyed by
// metric name. Histogram boundaries are strings so ±Inf survive JSON.
func writeMetrics(w io.Writer) error {
	descs := metrics.All()
	s := make([]metrics.Sample, len(descs))
	for i, d := range descs {
		s[i].Name = d.Name
	}
	metrics.Read(s)
	out := make(map[string]any, len(s))
	for _, x := range s {
		switch x.Value.Kind() {
		case metrics.KindUint64:
			out[x.Name] = x.Value.Uint64()
		case metrics.KindFloat64:
			v := x.Value.Float64()
			if math.IsInf(v, 0) || math.IsNaN(v) {
				out[x.Name] = fmt.Sprint(v)
			} else {
				out[x.Name] = v
			}
		case metrics.KindFloat64Histogram:
			h := x.Value.Float64Histogram()
			jh := jsonHist{Counts: h.Counts, Buckets: make([]string, len(h.Buckets))}
			for i, b := range h.Buckets {
				jh.Buckets[i] = fmt.Sprint(b)
			}
			out[x.Name] = jh
		}
	}
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(map[string]any{"time": time.Now().UTC(), "go_version": runtime.Version(), "metrics": out})
}
