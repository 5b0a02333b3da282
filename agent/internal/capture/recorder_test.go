package capture

import (
	"testing"
	"time"
)

func TestRecorderArmedDutyCap(t *testing.T) {
	tests := []struct {
		name string
		mode Mode
		duty float64
		// elevated per one-second step
		elevated  func(step int) bool
		steps     int
		wantMaxOn int // most steps the recorder may be running
		wantMinOn int
	}{
		{"off never records", Off, 0, func(int) bool { return true }, 20, 0, 0},
		{"on always records", On, 0, func(int) bool { return false }, 20, 20, 20},
		{"armed calm never records", Armed, 0.06, func(int) bool { return false }, 20, 0, 0},
		{"armed follows the signal plus MinAge", Armed, 0, func(i int) bool { return i == 5 }, 20, 2, 2},
		// Elevated all the time: the bucket (burst 10s, starting at 5s)
		// allows ~5 s, then ~0.5 s per 10 s.
		{"armed duty cap bounds recording", Armed, 0.05, func(int) bool { return true }, 100, 15, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Recorder{Mode: tt.mode, MinAge: 2 * time.Second, MaxSize: 1 << 20, Duty: tt.duty, MaxBurst: 10 * time.Second}
			defer r.Stop()
			t0 := time.Now()
			on := 0
			for i := 0; i < tt.steps; i++ {
				r.Set(tt.elevated(i), t0.Add(time.Duration(i)*time.Second))
				if r.Running() {
					on++
				}
			}
			if on > tt.wantMaxOn || on < tt.wantMinOn {
				t.Fatalf("recording during %d of %d steps, want %d..%d (err %v)", on, tt.steps, tt.wantMinOn, tt.wantMaxOn, r.Err())
			}
		})
	}
}
