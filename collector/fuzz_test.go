package collector

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
)

// FuzzDecodeBatch feeds arbitrary bodies to the ingest decoder: it must
// never panic, and everything it refuses must be a 400 with a reason.
func FuzzDecodeBatch(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	for _, n := range []int{0, 1, 3} {
		b, _ := proto.Marshal(testBatch("seed", "svc", "i", now, n))
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		var dc descCache
		b, err := decodeBatch(body, now, &dc, nil)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.kind != kindInvalid || ae.msg == "" {
				t.Fatalf("refusal is not a 400 with a reason: %v", err)
			}
			return
		}
		for _, s := range b.Samples {
			if s.Name == "" || (s.Hist != nil && len(s.Hist.Boundaries) != len(s.Hist.Counts)+1) {
				t.Fatalf("accepted an inconsistent sample %+v", s)
			}
		}
		for _, s := range b.Series {
			nb := len(s.Boundaries) - 1
			if s.Name == "" || (s.Boundaries == nil && len(s.Values) != len(s.T)) || (s.Boundaries != nil && (nb < 1 || len(s.Counts) != nb*len(s.T))) {
				t.Fatalf("accepted an inconsistent series %+v", s)
			}
		}
	})
}
