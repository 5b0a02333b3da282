package capture

import (
	"fmt"
	"io"
	"runtime/trace"
	"sync"
	"time"
)

// Mode is how the flight recorder runs.
type Mode int

const (
	// Off never records an execution trace.
	Off Mode = iota
	// Armed records only while an early-warning signal is elevated.
	Armed
	// On records all the time (costs several % CPU; see the README).
	On
)

func (m Mode) String() string {
	switch m {
	case Off:
		return "off"
	case Armed:
		return "armed"
	case On:
		return "on"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Recorder owns the process's runtime/trace.FlightRecorder (there can be
// one per process) and starts/stops it according to its Mode.
type Recorder struct {
	Mode    Mode
	MinAge  time.Duration
	MaxSize uint64

	mu      sync.Mutex
	fr      *trace.FlightRecorder
	lastErr error
	armedAt time.Time
	// Started counts recorder starts.
	Started uint64

	// Duty caps, in Armed mode, the long-run fraction of time the recorder
	// runs (0 = no cap): a token bucket gains Duty seconds per second, up
	// to MaxBurst, and loses one per second of recording. With the
	// recorder's measured +8–17% CPU, Duty 0.06 bounds its average cost
	// near 1% however often the signals are elevated.
	Duty     float64
	MaxBurst time.Duration
	tokens   float64 // seconds of recording allowed
	lastSet  time.Time
	// Capped counts how often the duty cap kept or stopped the recorder.
	Capped uint64
}

// ModeString is nil-safe.
func (r *Recorder) ModeString() string {
	if r == nil {
		return Off.String()
	}
	return r.Mode.String()
}

// Running reports whether the recorder is recording.
func (r *Recorder) Running() bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fr != nil && r.fr.Enabled()
}

// Err returns the last start failure (for example another trace running).
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

// Set starts or stops the recorder. elevated says whether an early-warning
// signal is past its arm level; it matters only in Armed mode, where the
// recorder keeps running for at least MinAge after the last elevated
// sample so a trigger just after calming down still has its trace.
func (r *Recorder) Set(elevated bool, now time.Time) {
	if r == nil {
		return
	}
	want := r.Mode == On
	if r.Mode == Armed {
		if elevated {
			r.armedAt = now
		}
		want = elevated || (!r.armedAt.IsZero() && now.Sub(r.armedAt) < r.MinAge)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	running := r.fr != nil
	if r.Mode == Armed && r.Duty > 0 {
		burst := r.MaxBurst.Seconds()
		if r.lastSet.IsZero() {
			r.tokens = burst / 2
		} else if dt := now.Sub(r.lastSet).Seconds(); dt > 0 {
			r.tokens = min(burst, r.tokens+dt*r.Duty)
			if running {
				r.tokens -= dt
			}
		}
		r.lastSet = now
		if want && r.tokens <= 0 {
			want = false
			r.Capped++
		}
	}
	switch {
	case want && !running:
		fr := trace.NewFlightRecorder(trace.FlightRecorderConfig{MinAge: r.MinAge, MaxBytes: r.MaxSize})
		if err := fr.Start(); err != nil {
			r.lastErr = fmt.Errorf("start flight recorder: %w", err)
			return
		}
		r.fr, r.lastErr = fr, nil
		r.Started++
	case !want && running:
		r.fr.Stop()
		r.fr = nil
	}
}

// Starts returns how many times the recorder was started.
func (r *Recorder) Starts() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.Started
}

// Stop stops the recorder if running.
func (r *Recorder) Stop() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fr != nil {
		r.fr.Stop()
		r.fr = nil
	}
}

// WriteTrace writes the recorded window. The lock keeps Stop from racing it
// (the runtime allows one WriteTo at a time and none after Stop).
func (r *Recorder) WriteTrace(w io.Writer) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fr == nil {
		return fmt.Errorf("flight recorder not running")
	}
	_, err := r.fr.WriteTo(w)
	return err
}
