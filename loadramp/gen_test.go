package loadramp

import (
	"context"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if capDir != "" {
		os.RemoveAll(capDir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func step(t *testing.T, tg Target, s StepSpec) *StepResult {
	t.Helper()
	g, err := NewGenerator(tg, 32)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	r, err := g.Step(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestStepOfferedRateIsSent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	for _, eng := range []Engine{EngineRaw, EngineNetHTTP} {
		t.Run(string(eng), func(t *testing.T) {
			g, err := NewGenerator(Target{URL: srv.URL, Engine: eng}, 32)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			r, err := g.Step(context.Background(), StepSpec{Rate: 1000, Warmup: 100 * time.Millisecond, Duration: 500 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if r.Intended != 500 {
				t.Errorf("intended %d requests in 0.5 s at 1000/s, want 500", r.Intended)
			}
			if r.Sent < r.Intended || r.OK+r.Dropped != r.Intended || r.ErrorCount() != r.Dropped {
				t.Errorf("sent %d ok %d dropped %d errors %v of %d intended", r.Sent, r.OK, r.Dropped, r.Errors, r.Intended)
			}
			if r.Corrected.Count() != uint64(r.Responses+r.Dropped) || r.Uncorrected.Count() != uint64(r.Responses) {
				t.Errorf("histogram counts %d/%d for %d responses", r.Corrected.Count(), r.Uncorrected.Count(), r.Responses)
			}
			if r.Corrected.Quantile(0.5) < r.Uncorrected.Quantile(0.5) {
				t.Errorf("corrected median %v below uncorrected %v", r.Corrected.Quantile(0.5), r.Uncorrected.Quantile(0.5))
			}
		})
	}
}

func TestErrorKinds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()

	handler := func(f http.HandlerFunc) string {
		srv := httptest.NewServer(f)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake failures are the point
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)

	tests := []struct {
		name, url string
		timeout   time.Duration
		want      string
	}{
		{"refused", refused, 0, ErrConnectRefused},
		{"5xx", handler(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }), 0, ErrHTTP5xx},
		{"4xx", handler(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(404) }), 0, ErrHTTP4xx},
		{"redirect", handler(func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/x", http.StatusFound) }), 0, ErrRedirect},
		{"closes", handler(func(w http.ResponseWriter, _ *http.Request) {
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
		}), 0, ErrClosed},
		{"timeout", handler(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(time.Second):
			}
		}), 50 * time.Millisecond, ErrTimeout},
		{"tls", tlsSrv.URL, 0, ErrTLS},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := step(t, Target{URL: tc.url, Timeout: tc.timeout}, StepSpec{Rate: 100, Duration: 200 * time.Millisecond, Conns: 2})
			if r.Errors[tc.want] == 0 || r.OK != 0 {
				t.Errorf("errors %v ok %d, want kind %q", r.Errors, r.OK, tc.want)
			}
		})
	}
}

func TestRawClientParsesBodies(t *testing.T) {
	tests := []struct {
		name string
		h    http.HandlerFunc
	}{
		{"chunked", func(w http.ResponseWriter, _ *http.Request) {
			for range 5 {
				w.Write([]byte(strings.Repeat("x", 3000)))
				w.(http.Flusher).Flush()
			}
		}},
		{"length", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(strings.Repeat("y", 40000))) }},
		{"empty 204", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }},
		{"close", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Connection", "close")
			w.Write([]byte("bye"))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.h)
			defer srv.Close()
			r := step(t, Target{URL: srv.URL, Method: "POST", Body: []byte("hello"), Header: http.Header{"X-A": {"1"}}},
				StepSpec{Rate: 200, Duration: 250 * time.Millisecond, Conns: 2})
			if r.OK != r.Intended || r.Intended != 50 {
				t.Errorf("ok %d of %d, errors %v", r.OK, r.Intended, r.Errors)
			}
		})
	}
}

func TestOverloadDropsInsteadOfQueueing(t *testing.T) {
	// One slow worker: 10 ms per request = 100/s with one connection.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(10 * time.Millisecond)
	}))
	defer srv.Close()
	g, err := NewGenerator(Target{URL: srv.URL}, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	r, err := g.Step(context.Background(), StepSpec{Rate: 2000, Duration: 600 * time.Millisecond, DropAfter: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.ConnsMax > 2 || !r.PoolExhausted {
		t.Errorf("conns %d exhausted %v, want capped at 2", r.ConnsMax, r.PoolExhausted)
	}
	if r.Dropped < r.Intended/2 {
		t.Errorf("dropped %d of %d at 10× overload", r.Dropped, r.Intended)
	}
	if r.Intended != 1200 {
		t.Errorf("intended %d, want 1200", r.Intended)
	}
	if q := r.Corrected.Quantile(0.99); q < 100*time.Millisecond {
		t.Errorf("corrected p99 %v hides the overload", q)
	}
}

func TestPrepareRejectsBadInput(t *testing.T) {
	for _, tg := range []Target{
		{URL: "ftp://x"}, {URL: "http://"}, {URL: "::"},
		{URL: "http://127.0.0.1:1", Header: http.Header{"X": {"a\r\nEvil: 1"}}},
		{URL: "http://127.0.0.1:1", Engine: "curl"},
	} {
		if _, err := NewGenerator(tg, 1); err == nil {
			t.Errorf("%+v: no error", tg)
		}
	}
}

func TestStepStopsWhenCancelled(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // hold every request until the client goes away
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	g, err := NewGenerator(Target{URL: srv.URL}, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = g.Step(ctx, StepSpec{Rate: 100, Duration: 10 * time.Second})
	if err == nil {
		t.Fatal("no error from a cancelled step")
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("step took %v to stop after cancellation", el)
	}
}

func TestArrivalSchedules(t *testing.T) {
	const rate, secs = 1000.0, 20
	tests := []struct {
		name         string
		arrivals     Arrivals
		cvLo, cvHi   float64 // coefficient of variation of the gaps
		countSlack   float64 // allowed |count/expected − 1|
		wantSchedule bool
	}{
		{"uniform", ArrivalsUniform, 0, 0.001, 0, false},
		// Poisson: exponential gaps have CV 1; 20,000 draws put the mean
		// and CV within ~1–2% (the seed is fixed, so this is not flaky).
		{"poisson", ArrivalsPoisson, 0.97, 1.03, 0.03, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &stepState{nsPerReq: 1e9 / rate, we: secs * int64(time.Second)}
			if tc.arrivals == ArrivalsPoisson {
				var err error
				if st.sched, err = poissonSchedule(st.nsPerReq, st.we, 7); err != nil {
					t.Fatal(err)
				}
			}
			if (st.sched != nil) != tc.wantSchedule {
				t.Fatalf("schedule %v", st.sched != nil)
			}
			var times []float64
			for n := int64(0); ; n++ {
				at, ok := st.at(n)
				if !ok {
					break
				}
				if at < 0 || at >= st.we || len(times) > 0 && float64(at) < times[len(times)-1] {
					t.Fatalf("slot %d at %d: out of order or outside the step", n, at)
				}
				times = append(times, float64(at))
				if got := st.slotAt(at); got > n || st.sched == nil && got != n {
					t.Fatalf("slotAt(at(%d)) = %d", n, got)
				}
			}
			want := rate * secs
			if c := float64(len(times)); c < want*(1-tc.countSlack)-1 || c > want*(1+tc.countSlack)+1 {
				t.Errorf("%d sends in %d s at %v/s", len(times), secs, rate)
			}
			var sum, sq float64
			for i := 1; i < len(times); i++ {
				g := times[i] - times[i-1]
				sum += g
				sq += g * g
			}
			n := float64(len(times) - 1)
			mean := sum / n
			cv := math.Sqrt(max(sq/n-mean*mean, 0)) / mean
			if cv < tc.cvLo || cv > tc.cvHi || math.Abs(mean/st.nsPerReq-1) > 0.03 {
				t.Errorf("gaps: mean %.0f ns (want %.0f), CV %.3f (want %v–%v)", mean, st.nsPerReq, cv, tc.cvLo, tc.cvHi)
			}
		})
	}
	if _, err := poissonSchedule(1, int64(time.Second), 1); err == nil {
		t.Error("a billion-send schedule was built")
	}
}

func TestStepPoissonArrivals(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer srv.Close()
	spec := StepSpec{Rate: 1000, Warmup: 100 * time.Millisecond, Duration: 500 * time.Millisecond, Arrivals: ArrivalsPoisson, Seed: 3}
	sched, err := poissonSchedule(1e6, int64(spec.Warmup+spec.Duration), spec.Seed)
	if err != nil {
		t.Fatal(err)
	}
	var due int64 // the schedule is seeded: exactly these fall in the window
	for _, at := range sched {
		if at >= int64(spec.Warmup) {
			due++
		}
	}
	r := step(t, Target{URL: srv.URL}, spec)
	if r.Intended != due || r.Sent < r.Intended || r.OK+r.Dropped != r.Intended {
		t.Errorf("intended %d (schedule says %d), sent %d, ok %d, dropped %d", r.Intended, due, r.Sent, r.OK, r.Dropped)
	}
	g, err := NewGenerator(Target{URL: srv.URL}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.Step(context.Background(), StepSpec{Rate: 10, Duration: time.Second, Arrivals: "bursty"}); err == nil {
		t.Error("unknown arrivals accepted")
	}
}

// TestOverloadDropsPoisson is the overload test with Poisson arrivals:
// the drop path jumps over late slots by search instead of arithmetic.
func TestOverloadDropsPoisson(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(10 * time.Millisecond)
	}))
	defer srv.Close()
	g, err := NewGenerator(Target{URL: srv.URL}, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	spec := StepSpec{Rate: 2000, Duration: 600 * time.Millisecond, DropAfter: 100 * time.Millisecond, Arrivals: ArrivalsPoisson, Seed: 5}
	sched, _ := poissonSchedule(1e9/2000, int64(spec.Duration), spec.Seed)
	r, err := g.Step(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if r.Intended != int64(len(sched)) || r.Dropped < r.Intended/2 || r.Responses+r.ErrorCount() != r.Intended {
		t.Errorf("intended %d (schedule %d), responses %d, dropped %d, errors %v", r.Intended, len(sched), r.Responses, r.Dropped, r.Errors)
	}
}
