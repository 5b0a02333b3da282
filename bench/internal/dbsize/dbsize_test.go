package dbsize

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gopulse/gopulse/store"
	"github.com/gopulse/gopulse/store/sqlite"
)

// TestTables: a store with samples spends pages on its block table, the
// figure grows with what is written, and every table named exists.
func TestTables(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	before, err := Tables(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	for i := 0; i < 200; i++ {
		b := store.Batch{Key: fmt.Sprintf("batch-%d", i),
			Instance: store.Instance{Service: "s", ID: "i", Source: store.SourceAgent}}
		for m := 0; m < 50; m++ {
			b.Samples = append(b.Samples, store.Sample{Name: fmt.Sprintf("/m%d:bytes", m), T: now + int64(i)*1000, Value: float64(i * m)})
		}
		if _, err := st.Append(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	after, err := Tables(dir)
	if err != nil {
		t.Fatal(err)
	}
	if after["blocks"] <= before["blocks"] {
		t.Errorf("blocks %d → %d bytes: want growth", before["blocks"], after["blocks"])
	}
	for _, name := range []string{"blocks", "chunks", "rollups", "idempotency_keys", "gc_cycles"} {
		if after[name] <= 0 {
			t.Errorf("table %s: %d bytes, want its pages counted", name, after[name])
		}
	}
	if _, err := Tables(t.TempDir()); err == nil {
		t.Error("no database: want an error")
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
