package gc

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// The seed corpora under testdata/fuzz/ hold real captures and their
// truncations; f.Add adds the hand-picked edge cases.

func FuzzScanTrace(f *testing.F) {
	f.Add([]byte(realLine + "\n"))
	f.Add([]byte("GC forced\n" + realLine + " (forced)\n"))
	f.Add([]byte(realLine[:60] + "app\n" + realLine[60:]))
	f.Add([]byte("gc 1 @0.004s 3%: 0.010+0.52+0.002 ms clock, 0.040+0.11/0.27/0.59+0.010 ms cpu, 4->4->0 MB, 5 MB goal, 4 P\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var pass bytes.Buffer
		st, err := ScanTrace(bytes.NewReader(in), &pass, func(c Cycle) {
			if c.Procs <= 0 {
				t.Fatalf("cycle with %d P", c.Procs)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if !st.Truncated {
			if acc := st.Cycles + st.AppLines + st.ScavLines + st.ForcedGC + len(st.Problems); acc != st.Lines {
				t.Fatalf("lines %d, accounted %d", st.Lines, acc)
			}
		}
		if pass.Len() > len(in) {
			t.Fatalf("passed through %d bytes of %d", pass.Len(), len(in))
		}
		// Whatever parsed must summarise without panicking.
		tr, err := ParseTrace(bytes.NewReader(in), nil)
		if err == nil {
			if d, err := FromTrace(tr, Settings{}); err == nil {
				s := Summarize(d)
				_ = Advise(d, s, AdviceOptions{})
			}
		}
	})
}

func FuzzParseVars(f *testing.F) {
	f.Add([]byte(`{"cmdline":["x"],"memstats":{"NextGC":4194304,"HeapSys":8000000,"NumGC":3,"PauseNs":[100,200,300],"PauseEnd":[1,2,3]}}`))
	f.Add([]byte(`{"cmdline":["x"]}`))
	f.Add([]byte(`{"memstats":null}`))
	f.Add([]byte(`{"memstats":{"NumGC":4294967295,"NextGC":1,"PauseEnd":[1]}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := ParseVars(bytes.NewReader(in), time.Unix(1000, 0))
		if err != nil {
			return
		}
		d, err := FromMemStats([]VarsSnapshot{s, {Time: s.Time.Add(time.Second), MemStats: s.MemStats}}, Settings{})
		if err != nil {
			return
		}
		if len(d.Cycles) > 256 {
			t.Fatalf("%d cycles from one ring", len(d.Cycles))
		}
		_ = Summarize(d)
	})
}

func FuzzDecodeMetricSamples(f *testing.F) {
	f.Add([]byte(`{"t":"2026-11-24T02:00:00Z","v":{"/gc/cycles/total:gc-cycles":{"u":3},"/sched/pauses/total/gc:seconds":{"h":{"counts":[1,2],"buckets":[0,1e-5,1e-4]}}}}
{"t":"2026-11-24T02:00:01Z","v":{"/gc/cycles/total:gc-cycles":{"u":5},"/sched/pauses/total/gc:seconds":{"h":{"counts":[2,4],"buckets":[0,1e-5,1e-4]}}}}`))
	f.Add([]byte(`{"t":"2026-11-24T02:00:00Z","v":{"/gc/heap/live:bytes":{"f":1e9}}}`))
	f.Add([]byte(`{"t":"2026-11-24T02:00:00Z","v":{"x":{"h":{"counts":[1],"buckets":[0]}}}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		ss, err := DecodeMetricSamples(bytes.NewReader(in))
		if err != nil && !strings.Contains(err.Error(), "decode metric sample") {
			t.Fatalf("error without context: %v", err)
		}
		d, err := FromMetrics(ss, Settings{})
		if err != nil {
			return
		}
		_ = Summarize(d)
	})
}
