package sqlite

import (
	"context"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/gopulse/gopulse/store"
)

// TestRollHourRoundTrip: a packed hour decodes to the minutes it was made
// from, scalar and histogram, including values the integer path and the
// XOR path each take.
func TestRollHourRoundTrip(t *testing.T) {
	hour := floorHour(time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC).UnixMilli())
	for _, tc := range []struct {
		name string
		hist bool
		aggs []rollAgg
	}{
		{"empty", false, nil},
		{"one minute", false, []rollAgg{{t: hour, n: 60, sum: 1800, min: 0, max: 59, last: 59, lastT: hour + 59000}}},
		{"counter with gaps", false, []rollAgg{
			{t: hour + 60000, n: 6, sum: 6e9, min: 1e9, max: 1e9 + 5, last: 1e9 + 5, lastT: hour + 60000 + 50001},
			{t: hour + 5*60000, n: 6, sum: 6e9 + 36, min: 1e9 + 6, max: 1e9 + 11, last: 1e9 + 11, lastT: hour + 5*60000 + 59999},
			{t: hour + 59*60000, n: 1, sum: 0.25, min: 0.25, max: 0.25, last: 0.25, lastT: hour + 59*60000},
		}},
		{"floats", false, []rollAgg{
			{t: hour, n: 2, sum: math.Pi, min: -math.SmallestNonzeroFloat64, max: math.MaxFloat64, last: math.Inf(1), lastT: hour},
			{t: hour + 60000, n: 2, sum: math.Pi / 3, min: -1.5, max: 1e-300, last: math.Inf(-1), lastT: hour + 60001},
		}},
		{"histogram", true, []rollAgg{
			{t: hour, n: 60, lastT: hour + 59000, hist: []uint64{0, 3, 7, 0}},
			{t: hour + 60000, n: 60, lastT: hour + 119000},
			{t: hour + 120000, n: 60, lastT: hour + 179000, hist: []uint64{1, 3, 9, 1 << 40}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := encodeRollHour(nil, hour, tc.hist, tc.aggs)
			nb := -1
			if tc.hist {
				nb = 4
			}
			var got []rollAgg
			if err := decodeRollHour(data, hour, nb, func(a rollAgg) { got = append(got, a) }); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.aggs) || (len(got) > 0 && !reflect.DeepEqual(got, tc.aggs)) {
				t.Errorf("decoded\n%+v\nwant\n%+v", got, tc.aggs)
			}
		})
	}
}

// FuzzRollHour: any bytes decode to an error or to minutes inside the
// hour, never a panic; minutes that decode encode back to a row that
// decodes the same.
func FuzzRollHour(f *testing.F) {
	hour := int64(1_796_000_400_000) - int64(1_796_000_400_000)%hourMs
	f.Add(encodeRollHour(nil, hour, false, []rollAgg{{t: hour, n: 3, sum: 3, min: 1, max: 1, last: 1, lastT: hour + 2000}}), false)
	f.Add(encodeRollHour(nil, hour, true, []rollAgg{{t: hour + 60000, n: 1, lastT: hour + 60000, hist: []uint64{1, 0, 2, 0}}}), true)
	f.Add([]byte{1, 61}, false)
	f.Fuzz(func(t *testing.T, data []byte, hist bool) {
		nb := -1
		if hist {
			nb = 4
		}
		var got []rollAgg
		if err := decodeRollHour(data, hour, nb, func(a rollAgg) { got = append(got, a) }); err != nil {
			return
		}
		for i, a := range got {
			if a.t < hour || a.t >= hour+hourMs || (i > 0 && a.t <= got[i-1].t) {
				t.Fatalf("minute %d at %d outside its hour or out of order", i, a.t)
			}
		}
		var again []rollAgg
		if err := decodeRollHour(encodeRollHour(nil, hour, hist, got), hour, nb, func(a rollAgg) { again = append(again, a) }); err != nil {
			t.Fatalf("re-encoded minutes do not decode: %v", err)
		}
		if len(again) != len(got) || (len(got) > 0 && !sameAggs(again, got)) {
			t.Fatalf("re-encoded\n%+v\nwant\n%+v", again, got)
		}
	})
}

// sameAggs compares bit for bit, so NaNs read back compare equal.
func sameAggs(a, b []rollAgg) bool {
	bits := func(f float64) uint64 { return math.Float64bits(f) }
	for i := range a {
		x, y := a[i], b[i]
		if x.t != y.t || x.n != y.n || x.lastT != y.lastT || bits(x.sum) != bits(y.sum) || bits(x.min) != bits(y.min) ||
			bits(x.max) != bits(y.max) || bits(x.last) != bits(y.last) || !reflect.DeepEqual(x.hist, y.hist) {
			return false
		}
	}
	return true
}

// TestPackRollups: hours rolled up packLag ago are packed into one row per
// series and hour, their minute rows deleted, and a minute-step query
// answers exactly as it did from the minute rows; late data for a packed
// hour is re-rolled into minute rows that win, then packed again; packed
// hours go with the rollup retention.
func TestPackRollups(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	defer s.Close()
	in := store.Instance{Service: "svc", ID: "i", Source: store.SourceAgent}
	key := in.Key()
	now := time.Now()
	t0 := floorHour(now.Add(-4 * time.Hour).UnixMilli())
	bounds := []float64{math.Inf(-1), 0, 1, 2, math.Inf(1)}
	// 3 hours at 1 s: a counter, a gauge and a histogram.
	for i := 0; i < 3*3600; i += 10 {
		b := store.Batch{Instance: in}
		for k := i; k < i+10; k++ {
			tk := t0 + int64(k)*1000 + 500 // mid-second: see the reference below
			b.Samples = append(b.Samples,
				store.Sample{Name: "/c:bytes", T: tk, Value: float64(k * 4096)},
				store.Sample{Name: "/g:bytes", T: tk, Value: 5e7 + float64(k%97)*1.5},
				store.Sample{Name: "/h:seconds", T: tk, Hist: &store.Histogram{Boundaries: bounds, Counts: []uint64{0, uint64(k), uint64(k / 3), 1}}})
		}
		if _, err := s.Append(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	end := t0 + 3*hourMs
	query := func(name string) []store.Point {
		t.Helper()
		pts, err := s.QuerySeries(ctx, store.SeriesQuery{Instance: key, Name: name, Start: t0, End: end, Step: 60000})
		if err != nil {
			t.Fatal(err)
		}
		return pts
	}
	count := func(q string, args ...any) int {
		t.Helper()
		var n int
		if err := s.r.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	names := []string{"/c:bytes", "/g:bytes", "/h:seconds"}
	at := time.UnixMilli(end + 60000)
	maintainAll := func(at time.Time) {
		t.Helper()
		if _, err := s.Maintain(ctx, at); err != nil {
			t.Fatal(err)
		}
	}
	maintainAll(time.UnixMilli(t0 + hourMs + packLag - 60000)) // rolls the first hour, packs nothing
	if n := count(`SELECT COUNT(*) FROM rollup_hours`); n != 0 {
		t.Fatalf("%d packed rows before any hour is packLag old", n)
	}
	maintainAll(at)
	// Hours 0 and 1 ended packLag before rolled_until; hour 2 did not.
	if n := count(`SELECT COUNT(*) FROM rollup_hours`); n != 2*len(names) {
		t.Fatalf("%d packed rows, want %d (2 hours × %d series)", n, 2*len(names), len(names))
	}
	if n := count(`SELECT COUNT(*) FROM rollups WHERE t < ?`, t0+2*hourMs); n != 0 {
		t.Errorf("%d minute rows left in the packed hours", n)
	}
	packed := map[string][]store.Point{}
	for _, n := range names {
		packed[n] = query(n)
		if len(packed[n]) != 180 {
			t.Fatalf("%s: %d minutes, want 180", n, len(packed[n]))
		}
	}
	// The reference: the same minutes computed from the raw samples. A
	// query whose start is not minute-aligned does not read rollups; at
	// t0+1 its buckets hold the same mid-second samples as the minutes.
	for _, n := range names {
		raw, err := s.QuerySeries(ctx, store.SeriesQuery{Instance: key, Name: n, Start: t0 + 1, End: end, Step: 60000})
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) != 180 {
			t.Fatalf("%s: %d raw minutes", n, len(raw))
		}
		for i := range 180 {
			raw[i].T-- // the bucket's start, t0+1 + i min
			if !reflect.DeepEqual(raw[i], packed[n][i]) {
				t.Errorf("%s minute %d: packed rollups %+v, the raw samples' minute %+v", n, i, packed[n][i], raw[i])
				break
			}
		}
	}

	// Late data in the first (packed) hour: one more sample in minute 5.
	late := t0 + 5*60000 + 250
	if _, err := s.Append(ctx, store.Batch{Instance: in, Samples: []store.Sample{{Name: "/c:bytes", T: late, Value: 1}}}); err != nil {
		t.Fatal(err)
	}
	maintainAll(at) // re-rolls from minute 5 into minute rows
	got := query("/c:bytes")
	if got[5].Count != packed["/c:bytes"][5].Count+1 || got[5].Min != 1 {
		t.Errorf("minute 5 after late data: %+v, want one more sample with min 1", got[5])
	}
	if !reflect.DeepEqual(got[6:], packed["/c:bytes"][6:]) || !reflect.DeepEqual(got[:5], packed["/c:bytes"][:5]) {
		t.Errorf("other minutes changed by a late sample in minute 5")
	}
	maintainAll(at.Add(time.Minute)) // packs the re-rolled hours again
	if n := count(`SELECT COUNT(*) FROM rollups WHERE t < ?`, t0+2*hourMs); n != 0 {
		t.Errorf("%d minute rows left after repacking", n)
	}
	if again := query("/c:bytes"); !reflect.DeepEqual(again, got) {
		t.Errorf("repacked hour answers differently")
	}

	// Between a re-roll and the repacking a query merges: a minute row
	// wins over the packed minute it replaces.
	var cid int64
	if err := s.r.QueryRowContext(ctx, `SELECT id FROM series WHERE name = '/c:bytes'`).Scan(&cid); err != nil {
		t.Fatal(err)
	}
	m7 := rollAgg{t: t0 + 7*60000, n: 2, sum: 3, min: 1, max: 2, last: 2, lastT: t0 + 7*60000 + 9}
	if err := s.write(ctx, func(w *wtx) error { return upsertRollups(w, []rollRow{{series: cid, a: m7}}) }); err != nil {
		t.Fatal(err)
	}
	merged := query("/c:bytes")
	want := store.Point{T: m7.t, Value: 2, LastT: m7.lastT, Min: 1, Max: 2, Sum: 3, Count: 2}
	if len(merged) != 180 || !reflect.DeepEqual(merged[7], want) || !reflect.DeepEqual(merged[8:], got[8:]) || !reflect.DeepEqual(merged[:7], got[:7]) {
		t.Errorf("minute row over a packed minute: got %+v, want %+v and the rest unchanged", merged[7], want)
	}

	// Rollup retention: 14 days later every packed hour is gone.
	maintainAll(at.Add(store.Retention{}.WithDefaults().Rollup + 2*time.Hour))
	if n := count(`SELECT COUNT(*) FROM rollup_hours`); n != 0 {
		t.Errorf("%d packed rows after the rollup retention", n)
	}
}
