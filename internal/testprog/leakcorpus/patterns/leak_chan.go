package patterns

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// The channel and select leaks: a goroutine blocked on a channel operation
// whose partner is gone. They make up most of the blocking bugs in Tu et al.

var errInvalid = errors.New("invalid request")

// slowBackend stands for an RPC whose latency is usually short and sometimes
// past the caller's timeout.
func slowBackend(n int, slowEvery int) string {
	if n%slowEvery == 0 {
		time.Sleep(40 * time.Millisecond)
	} else {
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Sprint("result-", n)
}

// fetchWithTimeout is Kubernetes #5316 and the most common leak in the study:
// the result channel is unbuffered, so once the caller gave up after the
// timeout the worker blocks on its send forever.
func fetchWithTimeout(_ context.Context, n int) {
	ch := make(chan string)
	go func() {
		ch <- slowBackend(n, 3)
	}()
	select {
	case v := <-ch:
		_ = v
	case <-time.After(20 * time.Millisecond):
	}
}

// resolveAndValidate starts the lookup before validating its input and
// returns early on a validation error, leaving the lookup's sender blocked
// (Docker #24007 style: an error path that forgets the in-flight goroutine).
func resolveAndValidate(_ context.Context, n int) {
	res := make(chan int)
	go func() {
		time.Sleep(time.Millisecond)
		res <- n * 2
	}()
	if n%2 == 0 {
		_ = fmt.Errorf("resolve %d: %w", n, errInvalid)
		return
	}
	<-res
}

// batchConsumer forgets to close the channel its consumer ranges over, so the
// consumer waits for a next value forever.
func batchConsumer(_ context.Context, n int) {
	ch := make(chan int)
	var mu sync.Mutex
	sum := 0
	go func() {
		for v := range ch {
			mu.Lock()
			sum += v
			mu.Unlock()
		}
	}()
	for i := 0; i < 3; i++ {
		ch <- n + i
	}
	// Missing close(ch).
}

// shutdown is a server-wide channel that is closed only when the whole
// service stops: watching it instead of the request's context is the bug of
// streamWithDeadline.
var shutdown = make(chan struct{})

// streamWithDeadline is the gRPC pattern of the study: the producer selects
// on the output and on the server's shutdown but not on the request's
// ctx.Done(), so when the caller's deadline passes it blocks forever.
func streamWithDeadline(ctx context.Context, n int) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Millisecond)
	defer cancel()
	out := make(chan string)
	go func() {
		v := slowBackend(n, 4)
		select {
		case out <- v:
		case <-shutdown:
		}
	}()
	select {
	case <-out:
	case <-ctx.Done():
	}
}

// fanOutFirstError is the errgroup-like fan-out that returns on the first
// error without reading the other results from the unbuffered channel.
func fanOutFirstError(_ context.Context, n int) {
	errs := make(chan error)
	for i := 0; i < 4; i++ {
		go func(i int) {
			if i == 0 && n%2 == 0 {
				time.Sleep(500 * time.Microsecond)
				errs <- fmt.Errorf("shard %d: %w", i, errInvalid)
				return
			}
			time.Sleep(3 * time.Millisecond)
			errs <- nil
		}(i)
	}
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil {
			return
		}
	}
}

// produceRecords sends parsed records to its consumer and closes the channel
// at the end; it leaks when the consumer stops early.
func produceRecords(out chan<- int, n int) {
	for i := 0; i < 10; i++ {
		out <- n*10 + i
	}
	close(out)
}

// consumeUntilBad is the consumer that returns on the first bad record
// without draining or cancelling the producer.
func consumeUntilBad(_ context.Context, n int) {
	recs := make(chan int)
	go produceRecords(recs, n)
	for r := range recs {
		if n%5 == 0 && r%10 == 2 {
			return
		}
	}
}

// notifier's channel is created only when a listener is configured: the
// notify goroutine sends on a nil channel otherwise.
type notifier struct{ ch chan int }

func (nt *notifier) notify(v int) { nt.ch <- v }

func notifyNil(_ context.Context, n int) {
	nt := &notifier{}
	if n%2 == 1 {
		nt.ch = make(chan int, 1)
	}
	go nt.notify(n)
}

// watchdog waits for done, which is only made when the option is enabled: a
// receive from a nil channel.
type watchdog struct{ done chan struct{} }

func (w *watchdog) waitDone() {
	<-w.done
}

func startWatchdog(_ context.Context, n int) {
	w := &watchdog{}
	if n%3 != 0 {
		w.done = make(chan struct{})
		close(w.done)
	}
	go w.waitDone()
}

// parkForever is a background helper meant to be started once per process,
// but started per request: `select {}` never returns.
func parkForever(_ context.Context, n int) {
	if n%5 != 0 {
		return
	}
	go func() {
		select {}
	}()
}

// pendingCalls maps call IDs to the channel their caller waits on; the
// janitor deletes expired entries without closing the channel, so the waiter
// never wakes (a gRPC/etcd shaped leak).
type pendingCalls struct {
	mu sync.Mutex
	m  map[int]chan string
}

func (p *pendingCalls) awaitReply(ch chan string) {
	v := <-ch
	_ = v
}

func (p *pendingCalls) request(_ context.Context, n int) {
	ch := make(chan string)
	p.mu.Lock()
	p.m[n] = ch
	prev, ok := p.m[n-1]
	delete(p.m, n-1)
	p.mu.Unlock()
	go p.awaitReply(ch)
	if ok && n%2 == 0 {
		prev <- "reply" // the reply for n-1 arrived in time
	}
	// else: n-1 expired; its entry is deleted but its channel never closed.
}

func startPendingCalls(context.Context) (*instance, error) {
	p := &pendingCalls{m: map[int]chan string{}}
	return &instance{request: p.request, stop: func() {}}, nil
}

// pipelineSource and pipelineSquare are stages of a pipeline whose consumer
// takes what it needs and walks away without cancelling the stages.
func pipelineSource(out chan<- int) {
	for i := 0; i < 100; i++ {
		out <- i
	}
	close(out)
}

func pipelineSquare(in <-chan int, out chan<- int) {
	for v := range in {
		out <- v * v
	}
	close(out)
}

func firstSquares(_ context.Context, _ int) {
	src := make(chan int)
	sq := make(chan int)
	go pipelineSource(src)
	go pipelineSquare(src, sq)
	<-sq
	<-sq
}

// worker's quit channel is closed by Close, which the request never calls.
type worker struct {
	jobs chan int
	quit chan struct{}
}

func (w *worker) loop() {
	for {
		select {
		case j := <-w.jobs:
			_ = j * j
		case <-w.quit:
			return
		}
	}
}

func (w *worker) Close() { close(w.quit) }

func useWorkerNoClose(_ context.Context, n int) {
	w := &worker{jobs: make(chan int), quit: make(chan struct{})}
	go w.loop()
	w.jobs <- n
	// Missing w.Close().
}

// reportMetrics fills a buffered channel whose drainer was never started
// (disabled in config); once the buffer is full the sender blocks.
func reportMetrics(out chan<- int, n int) {
	for i := 0; i < 4; i++ {
		out <- n + i
	}
}

func reportToFullBuffer(_ context.Context, n int) {
	out := make(chan int, 3)
	go reportMetrics(out, n)
}

// semaphore has four slots; handleWithSemaphore forgets to release its slot
// on the error path, so after a few errors every later request blocks on
// acquire.
type semaphore chan struct{}

func (s semaphore) handleWithSemaphore(n int) {
	s <- struct{}{}
	if n%5 == 0 {
		return // missing <-s
	}
	time.Sleep(time.Millisecond)
	<-s
}

func startSemaphoreLeak(context.Context) (*instance, error) {
	s := make(semaphore, 4)
	return &instance{
		request: func(_ context.Context, n int) { go s.handleWithSemaphore(n) },
		stop:    func() {},
	}, nil
}

// dispatcher serves calls that carry their own reply channel; under overload
// it drops a call without replying, and the caller waits forever.
type dispatchCall struct {
	n     int
	reply chan int
}

type dispatcher struct {
	calls chan dispatchCall
	done  chan struct{}
}

func (d *dispatcher) serve() {
	for {
		select {
		case c := <-d.calls:
			if c.n%4 == 0 {
				continue // shed load: missing reply
			}
			c.reply <- c.n
		case <-d.done:
			return
		}
	}
}

func (d *dispatcher) call(n int) int {
	reply := make(chan int)
	d.calls <- dispatchCall{n: n, reply: reply}
	return <-reply
}

func startDispatcher(context.Context) (*instance, error) {
	d := &dispatcher{calls: make(chan dispatchCall), done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); d.serve() }()
	return &instance{
		request: func(_ context.Context, n int) { go d.call(n) },
		stop:    func() { close(d.done); wg.Wait() },
	}, nil
}

// flightGroup deduplicates concurrent loads of a key; the leader's error path
// returns without closing done, so the followers wait forever.
type flight struct{ done chan struct{} }

type flightGroup struct{}

func (g *flightGroup) lead(f *flight, n int) {
	time.Sleep(time.Millisecond)
	if n%3 == 0 {
		return // missing close(f.done)
	}
	close(f.done)
}

func (g *flightGroup) wait(f *flight) {
	<-f.done
}

func (g *flightGroup) request(_ context.Context, n int) {
	f := &flight{done: make(chan struct{})}
	go g.lead(f, n)
	for i := 0; i < 3; i++ {
		go g.wait(f)
	}
}
