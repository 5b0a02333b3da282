package leakcheck

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixture reads a real dump captured by internal/testprog/dumps.
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "analyze", "goroutine", "testdata", "real", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakePprof serves fixed bodies per pprof path, so each live step can be
// made to fail in a chosen way.
type fakePprof struct {
	debug0, debug2, leak []byte
	traceHang            bool
	hits                 atomic.Int32
}

func (f *fakePprof) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	switch {
	case r.URL.Path == "/debug/pprof/goroutine" && r.URL.Query().Get("debug") == "2":
		w.Write(f.debug2)
	case r.URL.Path == "/debug/pprof/goroutine":
		w.Write(f.debug0)
	case r.URL.Path == "/debug/pprof/goroutineleak" && f.leak != nil:
		w.Write(f.leak)
	case r.URL.Path == "/debug/pprof/trace" && f.traceHang:
		<-r.Context().Done()
	default:
		http.NotFound(w, r)
	}
}

func TestLiveSteps(t *testing.T) {
	debug2 := fixture(t, "goroutine.debug2.txt")
	// Cut the dump inside its last goroutine, as a capped dump would be.
	cut := debug2[:bytes.LastIndex(debug2, []byte("\ngoroutine "))+40]
	tests := []struct {
		name      string
		srv       *fakePprof
		wantErr   string // in Result.Errors
		wantNoErr bool
		wantLeak  string // evidence substring of some leak group
	}{
		{
			name:     "truncated debug=2 dump names what is missing",
			srv:      &fakePprof{debug0: fixture(t, "goroutine.pb.gz"), debug2: cut},
			wantErr:  "missing",
			wantLeak: "nil channel",
		},
		{
			name:      "no leak profile served is no error",
			srv:       &fakePprof{debug0: fixture(t, "goroutine.pb.gz"), debug2: debug2},
			wantNoErr: true,
		},
		{
			name:     "the runtime's leak profile convicts",
			srv:      &fakePprof{debug0: fixture(t, "goroutine.pb.gz"), debug2: debug2, leak: fixture(t, "goroutineleak.pb.gz")},
			wantLeak: "goroutine leak profile reports",
		},
		{
			name:    "a hanging trace is reported, the report stands",
			srv:     &fakePprof{debug0: fixture(t, "goroutine.pb.gz"), debug2: debug2, traceHang: true},
			wantErr: "execution trace",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := httptest.NewServer(tt.srv)
			defer ts.Close()
			cfg := Config{Samples: 2, Interval: 10 * time.Millisecond, Trace: -1, PID: -1, Timeout: 5 * time.Second}
			if tt.srv.traceHang {
				cfg.Trace, cfg.Timeout = time.Second, time.Second
			}
			res, err := Live(context.Background(), ts.URL+"/debug/pprof/", cfg)
			if err != nil {
				t.Fatal(err)
			}
			errs := strings.Join(res.Errors, " | ")
			if tt.wantErr != "" && !strings.Contains(errs, tt.wantErr) {
				t.Errorf("errors %q lack %q", errs, tt.wantErr)
			}
			if tt.wantNoErr && errs != "" {
				t.Errorf("unexpected errors: %s", errs)
			}
			if tt.wantLeak != "" {
				found := false
				for _, g := range res.Report.Groups {
					if g.Verdict == "leak" && strings.Contains(strings.Join(g.Evidence, "|"), tt.wantLeak) {
						found = true
					}
				}
				if !found {
					t.Errorf("no leak group with evidence %q", tt.wantLeak)
				}
			}
			if res.Report.Snapshots != 2 {
				t.Errorf("%d snapshots, want 2", res.Report.Snapshots)
			}
		})
	}
}

func TestLiveChoosesProtobufAboveLimit(t *testing.T) {
	srv := &fakePprof{debug0: fixture(t, "goroutine.pb.gz"), debug2: []byte("must not be fetched")}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	res, err := Live(context.Background(), ts.URL, Config{Samples: 2, Interval: time.Millisecond, Trace: -1, PID: -1, FullDumpMax: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.Mode, "protobuf") {
		t.Errorf("mode %q, want protobuf above --full-dump-max", res.Mode)
	}
}

func TestNewEndpoint(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"http://127.0.0.1:6060", "http://127.0.0.1:6060", ""},
		{"http://127.0.0.1:6060/", "http://127.0.0.1:6060", ""},
		{"http://127.0.0.1:6060/debug/pprof/", "http://127.0.0.1:6060", ""},
		{"http://h:1/app/debug/pprof/goroutine?debug=2", "http://h:1/app", ""},
		{"ftp://h", "", "neither a file nor"},
		{"http://", "", "neither a file nor"},
	}
	for _, tt := range tests {
		ep, err := NewEndpoint(tt.in, nil)
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("NewEndpoint(%q) error %v, want %q", tt.in, err, tt.err)
			}
		case err != nil:
			t.Errorf("NewEndpoint(%q): %v", tt.in, err)
		case ep.String() != tt.want:
			t.Errorf("NewEndpoint(%q) = %s, want %s", tt.in, ep, tt.want)
		}
	}
}

func TestFilesUsesIncreasingModTimes(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	base := time.Now().Add(-time.Hour)
	for i := 0; i < 3; i++ {
		p := filepath.Join(dir, fmt.Sprintf("d%d.txt", i))
		if err := os.WriteFile(p, fixture(t, "goroutine.debug2.txt"), 0o644); err != nil {
			t.Fatal(err)
		}
		mt := base.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	res, err := Files(paths, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Report.Window != 2*time.Minute {
		t.Errorf("window %s, want 2m from the files' modification times", res.Report.Window)
	}
}
