package collector

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gopulse/gopulse/store"
	"github.com/gopulse/gopulse/store/sqlite"
	"github.com/gopulse/gopulse/wire"
)

// TestTokenRevocation: a token revoked through a second handle on the
// database — what `gopulse token revoke` does from its own process — stops
// working within tokenTTL (1 s), and a token in use costs at most one
// lookup per tokenTTL.
func TestTokenRevocation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, dir, sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fs := &fullStore{Store: st}
	var clock atomic.Int64
	t0 := time.Now()
	clock.Store(t0.UnixNano())
	c, err := New(Config{Store: fs, BatchRate: 1000, BatchBurst: 1000, Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	secret, err := NewTokenSecret()
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateToken(ctx, store.Token{ID: "tok-a", Service: "checkout", CreatedAt: t0}, store.HashToken(secret)); err != nil {
		t.Fatal(err)
	}
	seq := 0
	push := func() int {
		t.Helper()
		seq++
		id := fmt.Sprintf("b%d", seq)
		body, _ := proto.Marshal(testBatch(id, "checkout", "i1", t0, 1))
		resp := post(t, srv.URL+wire.PathPushMetrics, secret, wire.ContentTypeProto, id, body, nil)
		readAll(t, resp)
		return resp.StatusCode
	}
	at := func(d time.Duration) { clock.Store(t0.Add(d).UnixNano()) }

	for i := range 20 {
		at(time.Duration(i) * 40 * time.Millisecond) // 0–760 ms: one lookup
		if code := push(); code != 200 {
			t.Fatalf("push %d before revocation: %d", i, code)
		}
	}
	if n := fs.lookupCalls.Load(); n != 1 {
		t.Errorf("20 batches within 1 s: %d token lookups, want 1", n)
	}

	other, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	at(900 * time.Millisecond)
	if err := other.RevokeToken(ctx, "tok-a", time.Unix(0, clock.Load())); err != nil {
		t.Fatal(err)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   time.Duration
		want int
	}{
		{950 * time.Millisecond, 200},  // still cached: the 1 s bound, not immediate
		{1001 * time.Millisecond, 401}, // looked up again: revoked
		{1500 * time.Millisecond, 401}, // the refusal is cached too
		{10 * time.Second, 401},
	} {
		at(tc.at)
		if code := push(); code != tc.want {
			t.Errorf("%v after the first lookup (revoked at 900 ms): %d, want %d", tc.at, code, tc.want)
		}
	}
}
