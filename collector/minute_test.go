package collector

import "testing"

func TestMinuteAlignment(t *testing.T) {
	for _, tc := range []struct {
		t, floor, ceil int64
	}{
		{0, 0, 0},
		{1, 0, 60000},
		{60000, 60000, 60000},
		{119999, 60000, 120000},
		{-1, -60000, 0},
		{-60000, -60000, -60000},
	} {
		if f, c := floorMinute(tc.t), ceilMinute(tc.t); f != tc.floor || c != tc.ceil {
			t.Errorf("t=%d: floor %d ceil %d, want %d %d", tc.t, f, c, tc.floor, tc.ceil)
		}
	}
	for _, tc := range []struct {
		start, end, wantStart, wantStep int64
	}{
		{10_000, 310_000, 60_000, 300_000}, // from the next boundary, one bucket to the end
		{60_000, 360_000, 60_000, 300_000},
		{10_000, 100_000, 10_000, 90_000}, // under a minute after the boundary: left as is
	} {
		if s, st := minuteSpan(tc.start, tc.end); s != tc.wantStart || st != tc.wantStep {
			t.Errorf("minuteSpan(%d, %d) = %d, %d; want %d, %d", tc.start, tc.end, s, st, tc.wantStart, tc.wantStep)
		}
	}
	if got := rolledEnd(185_000); got != 120_000 {
		t.Errorf("rolledEnd(185000) = %d, want 120000", got)
	}
}
