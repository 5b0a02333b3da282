package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestList(t *testing.T) {
	var b strings.Builder
	if err := run(context.Background(), []string{"-list"}, &b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"timeout-partner-gone", "ok-pool-warmup", "RATE/s"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("-list output lacks %q", want)
		}
	}
}

func TestUnknownPattern(t *testing.T) {
	err := run(context.Background(), []string{"-pattern", "nope"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-list") {
		t.Errorf("err = %v, want an unknown-pattern error pointing at -list", err)
	}
}

// TestServesPprof runs a healthy pattern and fetches its goroutine dump from
// the printed address.
func TestServesPprof(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-pattern", "ok-worker-pool-idle", "-duration", "1m"}, pw)
		_ = pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	if !sc.Scan() {
		t.Fatal("no output")
	}
	base, ok := strings.CutPrefix(sc.Text(), "pprof ")
	if !ok {
		t.Fatalf("first line %q, want \"pprof http://ADDR\"", sc.Text())
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(base + "/debug/pprof/goroutine?debug=2")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), "patterns.(*pool).work") {
		t.Errorf("dump lacks the pool's workers:\n%.2000s", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}
