package sqlite

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// TestGroupIsolation: requests run in shared group transactions, each in
// its own savepoint, so one that fails leaves no trace and costs the
// others of its group nothing, and every caller gets its own answer.
func TestGroupIsolation(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"FULL", Options{}},
		{"FULL-no-delay", Options{CommitDelay: -1}},
		{"NORMAL", Options{Synchronous: "NORMAL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openTemp(t, tc.opts)
			defer s.Close()
			ctx := context.Background()
			const writers, each = 16, 40
			boom := errors.New("boom")
			errs := make([][]error, writers)
			var wg sync.WaitGroup
			for w := range writers {
				errs[w] = make([]error, each)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						key := fmt.Sprintf("g-%d-%d", w, i)
						errs[w][i] = s.write(ctx, func(t *wtx) error {
							if _, err := t.exec(`INSERT INTO meta (k, v) VALUES (?, ?)`, key, i); err != nil {
								return err
							}
							if (w+i)%3 == 0 {
								return boom // after its insert: the savepoint must undo it
							}
							return nil
						})
					}
				}()
			}
			wg.Wait()
			for w := range writers {
				for i := range each {
					var v int
					err := s.r.QueryRowContext(ctx, `SELECT v FROM meta WHERE k = ?`, fmt.Sprintf("g-%d-%d", w, i)).Scan(&v)
					failing := (w+i)%3 == 0
					switch {
					case failing && !errors.Is(errs[w][i], boom):
						t.Errorf("request %d/%d: error %v, want boom", w, i, errs[w][i])
					case failing && err == nil:
						t.Errorf("request %d/%d failed but its row is stored", w, i)
					case !failing && (errs[w][i] != nil || err != nil || v != i):
						t.Errorf("request %d/%d: error %v, row %d (%v)", w, i, errs[w][i], v, err)
					}
				}
			}
			if n := s.commits.Load(); n >= writers*each {
				t.Errorf("%d group transactions for %d concurrent requests: no request shared one", n, writers*each)
			}
			t.Logf("%d requests in %d group transactions", writers*each, s.commits.Load())
		})
	}
}
