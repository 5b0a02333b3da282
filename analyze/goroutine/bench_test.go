package goroutine

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"syscall"
	"testing"
)

// synthReader streams a debug=2 dump of n goroutines spread over `stacks`
// distinct stacks of 5-20 frames, in the runtime's exact syntax (per-
// goroutine arguments, wait durations on some, created-by lines). Streaming
// lets the 1M-goroutine benchmark run without holding the input.
type synthReader struct {
	rng   *rand.Rand
	n, id int
	all   []synthStack
	buf   bytes.Buffer
}

type synthFrame struct{ fn, file string }

type synthStack struct {
	state  string
	frames []synthFrame
	lines  []int
	cb     synthFrame
}

func newSynthReader(n, stacks int) *synthReader {
	rng := rand.New(rand.NewPCG(1, 2))
	states := []string{"chan receive", "select", "IO wait", "sync.Mutex.Lock", "sync.Cond.Wait", "sleep", "chan send"}
	pkgs := []string{"main", "github.com/acme/shop/internal/queue", "net/http", "google.golang.org/grpc/internal/transport", "database/sql"}
	all := make([]synthStack, stacks)
	for i := range all {
		st := synthStack{state: states[rng.IntN(len(states))]}
		nf := 5 + rng.IntN(16)
		for j := 0; j < nf; j++ {
			p := pkgs[rng.IntN(len(pkgs))]
			st.frames = append(st.frames, synthFrame{
				fn:   fmt.Sprintf("%s.(*handler%d).serve%d", p, rng.IntN(20), j),
				file: fmt.Sprintf("/src/%s/file%d.go", p, rng.IntN(30)),
			})
			st.lines = append(st.lines, 10+rng.IntN(900))
		}
		st.cb = synthFrame{fn: fmt.Sprintf("main.start%d", i%7), file: "/src/main/main.go"}
		all[i] = st
	}
	return &synthReader{rng: rng, n: n, all: all}
}

func (r *synthReader) Read(p []byte) (int, error) {
	for r.buf.Len() < len(p) && r.id < r.n {
		r.id++
		r.one()
	}
	if r.buf.Len() == 0 {
		return 0, io.EOF
	}
	return r.buf.Read(p)
}

func (r *synthReader) one() {
	rng, b := r.rng, &r.buf
	// Skewed: a few stacks hold most goroutines, as in a real leak.
	k := int(float64(len(r.all)) * rng.Float64() * rng.Float64())
	st := r.all[k]
	fmt.Fprintf(b, "goroutine %d [%s", r.id, st.state)
	if rng.IntN(4) == 0 {
		fmt.Fprintf(b, ", %d minutes", 1+rng.IntN(90))
	}
	b.WriteString("]:\n")
	for j, f := range st.frames {
		fmt.Fprintf(b, "%s(0xc%09x, 0x%x)\n\t%s:%d +0x%x\n", f.fn, rng.IntN(1<<30), rng.IntN(64), f.file, st.lines[j], 0x1d+j)
	}
	fmt.Fprintf(b, "created by %s in goroutine %d\n\t%s:%d +0x7c\n\n", st.cb.fn, 1+k%5, st.cb.file, 40+k)
}

func synthDump(n, stacks int) []byte {
	b, _ := io.ReadAll(newSynthReader(n, stacks))
	return b
}

// peakReader samples the heap as Parse reads, so the benchmark can report
// the peak heap above what was allocated before Parse started.
type peakReader struct {
	r       io.Reader
	n, next int64
	base    uint64
	peak    uint64
	sample  []metrics.Sample
}

func newPeakReader(r io.Reader) *peakReader {
	p := &peakReader{r: r, sample: []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}}
	metrics.Read(p.sample)
	p.base = p.sample[0].Value.Uint64()
	return p
}

func (p *peakReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.n >= p.next || err != nil {
		p.next = p.n + 1<<20
		metrics.Read(p.sample)
		if v := p.sample[0].Value.Uint64(); v > p.base && v-p.base > p.peak {
			p.peak = v - p.base
		}
	}
	return n, err
}

func benchParse(b *testing.B, n, stacks int, opts Options) {
	data := synthDump(n, stacks)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var peak uint64
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		runtime.GC()
		pr := newPeakReader(bytes.NewReader(data))
		snap, err := Parse(pr, opts)
		if err != nil {
			b.Fatal(err)
		}
		if snap.Goroutines != n {
			b.Fatalf("got %d goroutines, want %d", snap.Goroutines, n)
		}
		if opts.Similarity != ExactArgs && (len(snap.Groups) > stacks || len(snap.Groups) < stacks/2) {
			b.Fatalf("%d groups from %d distinct stacks", len(snap.Groups), stacks)
		}
		peak = max(peak, pr.peak)
		runtime.KeepAlive(snap)
	}
	b.StopTimer()
	// CPU time of the whole process per op: on a shared machine wall time
	// includes waiting for a core, CPU time does not.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
	b.ReportMetric(float64(len(data))/1e6, "input-MB")
	b.ReportMetric(float64(peak)/1e6, "peak-heap-MB")
}

// BenchmarkParseText is the product claim: 100,000 goroutines of debug=2
// text over 150 distinct stacks.
func BenchmarkParseText(b *testing.B) { benchParse(b, 100_000, 150, Options{}) }

// BenchmarkParseTextExactArgs keeps every argument string: the costly mode.
func BenchmarkParseTextExactArgs(b *testing.B) {
	benchParse(b, 100_000, 150, Options{Similarity: ExactArgs})
}

// BenchmarkParseText1M checks that a million goroutines (~1.5 GB of text,
// generated while it is read, so the input is never in memory) parse in
// bounded memory; the time includes generating the text. Run with
// -benchtime=1x.
func BenchmarkParseText1M(b *testing.B) {
	var peak uint64
	for i := 0; i < b.N; i++ {
		runtime.GC()
		pr := newPeakReader(newSynthReader(1_000_000, 200))
		snap, err := Parse(pr, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if snap.Goroutines != 1_000_000 {
			b.Fatalf("got %d goroutines", snap.Goroutines)
		}
		peak = max(peak, pr.peak)
		b.ReportMetric(float64(pr.n)/1e6, "input-MB")
	}
	b.ReportMetric(float64(peak)/1e6, "peak-heap-MB")
}

// BenchmarkScanText is the streaming scanner alone, without grouping.
func BenchmarkScanText(b *testing.B) {
	data := synthDump(100_000, 150)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := 0
		if _, err := Scan(bytes.NewReader(data), Options{}, func(g *Goroutine) error { n += len(g.Frames); return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseProto(b *testing.B) {
	data := mustRead(b, "testdata/real/goroutine.pb.gz")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Parse(bytes.NewReader(data), Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// cpuTime is the process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
