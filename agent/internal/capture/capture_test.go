package capture

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"go.uber.org/goleak"
	"golang.org/x/exp/trace"

	"github.com/gopulse/gopulse/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/gopulse/gopulse/agent/internal/capture.leakForTest.func1"))
}

// readBundle decodes a bundle stream into its manifest and files.
func readBundle(t *testing.T, r io.Reader) (*wire.BundleManifest, map[string][]byte) {
	t.Helper()
	br, err := wire.NewBundleReader(r)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	var cur string
	for {
		f, err := br.Next()
		if err != nil {
			t.Fatalf("bundle: %v", err)
		}
		switch fr := f.Frame.(type) {
		case *wire.BundleFrame_FileStart:
			cur = fr.FileStart.Name
			files[cur] = []byte{}
		case *wire.BundleFrame_Chunk:
			files[cur] = append(files[cur], fr.Chunk...)
		case *wire.BundleFrame_Manifest:
			return fr.Manifest, files
		}
	}
}

// CheckFiles opens every file the way go tool pprof / go tool trace would.
func checkFiles(t *testing.T, files map[string][]byte) {
	t.Helper()
	for name, b := range files {
		switch {
		case strings.HasSuffix(name, ".pb.gz"):
			if _, err := profile.ParseData(b); err != nil {
				t.Errorf("%s does not parse as a pprof profile: %v", name, err)
			}
		case name == "trace.out":
			r, err := trace.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Errorf("trace.out: %v", err)
				continue
			}
			n := 0
			for {
				_, err := r.ReadEvent()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Errorf("trace.out event %d: %v", n, err)
					break
				}
				n++
			}
			if n == 0 {
				t.Errorf("trace.out has no events")
			}
		case strings.HasSuffix(name, ".json"):
			if !json.Valid(b) {
				t.Errorf("%s is not valid JSON", name)
			}
		}
	}
}

func spin(d time.Duration) {
	end := time.Now().Add(d)
	x := 0
	for time.Now().Before(end) {
		x++
	}
	_ = x
}

func TestCaptureFilesOpen(t *testing.T) {
	rec := &Recorder{Mode: On, MinAge: time.Second, MaxSize: 1 << 20}
	rec.Set(false, time.Now())
	defer rec.Stop()
	if !rec.Running() {
		t.Fatalf("recorder did not start: %v", rec.Err())
	}
	spin(200 * time.Millisecond)
	var buf bytes.Buffer
	spec := Spec{
		Manifest:    &wire.BundleManifest{EventId: "e1", Rule: "manual"},
		CPUProfile:  300 * time.Millisecond,
		Debug2Limit: 10000,
		Mutex:       true, Block: true,
		Recorder: rec,
		Facts:    map[string]int{"x": 1},
	}
	done := make(chan struct{})
	go func() { spin(300 * time.Millisecond); close(done) }()
	m, err := Capture(context.Background(), &buf, spec)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	gotM, files := readBundle(t, &buf)
	for _, want := range []string{"trace.out", "goroutine.pb.gz", "goroutines.txt", "heap.pb.gz", "mutex.pb.gz", "block.pb.gz", "metrics.json", "facts.json", "cpu.pb.gz"} {
		if _, ok := files[want]; !ok {
			t.Errorf("bundle lacks %s (notes %q)", want, m.Notes)
		}
	}
	if gotM.EventId != "e1" || len(gotM.Files) != len(files) {
		t.Errorf("manifest %v", gotM)
	}
	checkFiles(t, files)
}

func TestCaptureSkips(t *testing.T) {
	tests := []struct {
		name     string
		spec     Spec
		busyCPU  bool
		wantNote string
		absent   string
	}{
		{"debug=2 above limit", Spec{Debug2Limit: 1}, false, "goroutines.txt: skipped", "goroutines.txt"},
		{"no recorder", Spec{}, false, "flight recorder was not running", "trace.out"},
		{"cpu profile busy", Spec{CPUProfile: 50 * time.Millisecond}, true, "already running", "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.busyCPU {
				var sink bytes.Buffer
				if err := startCPU(&sink); err != nil {
					t.Skip("cannot start a CPU profile here:", err)
				}
				defer stopCPU()
			}
			tt.spec.Manifest = &wire.BundleManifest{EventId: "e"}
			var buf bytes.Buffer
			m, err := Capture(context.Background(), &buf, tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(m.Notes, "\n"), tt.wantNote) {
				t.Errorf("notes %q lack %q", m.Notes, tt.wantNote)
			}
			_, files := readBundle(t, &buf)
			if _, ok := files[tt.absent]; ok {
				t.Errorf("%s present", tt.absent)
			}
			checkFiles(t, files)
		})
	}
}

type failAfter struct{ n int }

func (f *failAfter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestCaptureDestinationFails(t *testing.T) {
	for _, n := range []int{0, 100, 5000} {
		_, err := Capture(context.Background(), &failAfter{n}, Spec{Manifest: &wire.BundleManifest{EventId: "e"}})
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("after %d bytes: err = %v, want disk full", n, err)
		}
	}
}

func TestCaptureCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	start := time.Now()
	var buf bytes.Buffer
	m, err := Capture(ctx, &buf, Spec{Manifest: &wire.BundleManifest{EventId: "e"}, CPUProfile: time.Hour})
	if time.Since(start) > time.Minute {
		t.Fatal("cancel did not end the hour-long CPU profile")
	}
	if err != nil {
		// Cancelled before the profile started: the capture stops.
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		return
	}
	if !strings.Contains(strings.Join(m.Notes, "\n"), "cut short") {
		t.Fatalf("notes %q do not say the profile was cut short", m.Notes)
	}
	_, files := readBundle(t, &buf)
	checkFiles(t, files)
}

// leakForTest starts n goroutines blocked on channels nothing else can
// reach: what the runtime's leak profile reports. They never end, which is
// why TestMain's goleak check ignores this function.
func leakForTest(n int) {
	for i := 0; i < n; i++ {
		go func() {
			ch := make(chan int)
			<-ch
		}()
	}
}

// TestCaptureLeakProfile runs on whatever runtime the tests run on: on Go
// 1.26 without GOEXPERIMENT=goroutineleakprofile the bundle says why the
// profile is missing; where the runtime has it (.ci/run runs this test
// with the experiment too) the file is there and names the leaked
// goroutines.
func TestCaptureLeakProfile(t *testing.T) {
	available := pprof.Lookup("goroutineleak") != nil
	t.Logf("runtime %s has the goroutine leak profile: %v", runtime.Version(), available)
	if available {
		leakForTest(3)
	}
	tests := []struct {
		name     string
		limit    int
		wantFile bool
		wantNote string // "" = no note about the profile
	}{
		{"off", 0, false, ""},
		{"above limit", 1, false, "goroutines > limit 1"},
		{"within limit", 1_000_000, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantFile, wantNote := tt.wantFile && available, tt.wantNote
			if !available && tt.limit > 0 {
				wantNote = "this runtime has no goroutine leak profile"
			}
			var buf bytes.Buffer
			m, err := Capture(context.Background(), &buf, Spec{Manifest: &wire.BundleManifest{EventId: "e"}, LeakProfileLimit: tt.limit})
			if err != nil {
				t.Fatal(err)
			}
			var notes []string
			for _, n := range m.Notes {
				if strings.HasPrefix(n, "goroutineleak.pb.gz") {
					notes = append(notes, n)
				}
			}
			if wantNote == "" && len(notes) > 0 || wantNote != "" && (len(notes) != 1 || !strings.Contains(notes[0], wantNote)) {
				t.Errorf("notes about the leak profile %q, want one containing %q", notes, wantNote)
			}
			_, files := readBundle(t, &buf)
			b, ok := files["goroutineleak.pb.gz"]
			if ok != wantFile {
				t.Fatalf("goroutineleak.pb.gz present %v, want %v", ok, wantFile)
			}
			if !ok {
				return
			}
			checkFiles(t, files)
			p, err := profile.ParseData(b)
			if err != nil {
				t.Fatal(err)
			}
			leaked := int64(0)
			for _, s := range p.Sample {
				for _, loc := range s.Location {
					for _, l := range loc.Line {
						if strings.Contains(l.Function.Name, "leakForTest") {
							leaked += s.Value[0]
						}
					}
				}
			}
			if len(p.SampleType) == 0 || p.SampleType[0].Type != "goroutineleak" || leaked < 3 {
				t.Errorf("profile %v: %d goroutines of leakForTest, want ≥ 3", p.SampleType, leaked)
			}
		})
	}
}
