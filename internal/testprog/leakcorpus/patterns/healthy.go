package patterns

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"time"
)

// The healthy patterns: goroutines that wait, sometimes in large numbers, for
// legitimate reasons. Each stops everything it started when its stop runs.

// pool is a fixed set of workers ranging over a job channel.
type pool struct {
	jobs chan func()
	wg   sync.WaitGroup
}

func newPool(workers, buffer int) *pool {
	p := &pool{jobs: make(chan func(), buffer)}
	for i := 0; i < workers; i++ {
		p.grow()
	}
	return p
}

func (p *pool) grow() {
	p.wg.Add(1)
	go p.work()
}

func (p *pool) work() {
	defer p.wg.Done()
	for j := range p.jobs {
		j()
	}
}

func (p *pool) close() {
	close(p.jobs)
	p.wg.Wait()
}

func startIdlePool(context.Context) (*instance, error) {
	p := newPool(8, 0)
	var done atomic.Int64
	return &instance{
		request: func(_ context.Context, _ int) { p.jobs <- func() { done.Add(1) } },
		stop:    p.close,
	}, nil
}

func startBurstyPool(context.Context) (*instance, error) {
	p := newPool(16, 64)
	return &instance{
		request: func(_ context.Context, n int) {
			burst := (n * 7) % 31
			for i := 0; i < burst; i++ {
				d := time.Duration(i%5) * time.Millisecond
				p.jobs <- func() { time.Sleep(d) }
			}
		},
		stop: p.close,
	}, nil
}

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
}

// getAndDrain is the correct client: read to EOF and close, so the
// connection goes back to the idle pool.
func getAndDrain(c *http.Client, url string) {
	resp, err := c.Get(url)
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
}

func concurrentGets(c *http.Client, url string, k int) {
	var wg sync.WaitGroup
	for i := 0; i < k; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			getAndDrain(c, url)
		}()
	}
	wg.Wait()
}

func startKeepAliveServer(context.Context) (*instance, error) {
	srv, err := startLocalServer(okHandler(), time.Second)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	c := &http.Client{Transport: tr}
	return &instance{
		request: func(_ context.Context, n int) {
			concurrentGets(c, srv.url, 1+n%3)
			if n%25 == 0 {
				tr.CloseIdleConnections() // connections come and go
			}
		},
		stop: func() { tr.CloseIdleConnections(); srv.close() },
	}, nil
}

func startIdleReuse(context.Context) (*instance, error) {
	srv, err := startLocalServer(okHandler(), 90*time.Second)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	c := &http.Client{Transport: tr}
	return &instance{
		request: func(_ context.Context, _ int) { concurrentGets(c, srv.url, 4) },
		stop:    func() { tr.CloseIdleConnections(); srv.close() },
	}, nil
}

// group runs owned background goroutines that stop when done is closed.
type group struct {
	done chan struct{}
	wg   sync.WaitGroup
}

func newGroup() *group { return &group{done: make(chan struct{})} }

func (g *group) goFunc(f func(done <-chan struct{})) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f(g.done)
	}()
}

func (g *group) stop() {
	close(g.done)
	g.wg.Wait()
}

// tickerLoop does periodic work until done.
func tickerLoop(d time.Duration, counter *atomic.Int64, done <-chan struct{}) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			counter.Add(1)
		case <-done:
			return
		}
	}
}

func startTickerLoops(context.Context) (*instance, error) {
	g := newGroup()
	var ticks atomic.Int64
	for _, d := range []time.Duration{20 * ms, 100 * ms, time.Second} {
		g.goFunc(func(done <-chan struct{}) { tickerLoop(d, &ticks, done) })
	}
	return &instance{request: func(context.Context, int) { _ = ticks.Load() }, stop: g.stop}, nil
}

func startAfterFuncs(context.Context) (*instance, error) {
	var fired atomic.Int64
	var mu sync.Mutex
	timers := make([]*time.Timer, 16)
	return &instance{
		request: func(_ context.Context, n int) {
			d := time.Duration(n%7) * 30 * ms
			t := time.AfterFunc(d, func() { fired.Add(1) })
			if n%3 == 0 {
				t.Stop()
			}
			mu.Lock()
			timers[n%len(timers)] = t
			mu.Unlock()
		},
		stop: func() {
			mu.Lock()
			defer mu.Unlock()
			for _, t := range timers {
				if t != nil {
					t.Stop()
				}
			}
			time.Sleep(10 * ms) // let a callback that already started finish
		},
	}, nil
}

func startSignalHandler(context.Context) (*instance, error) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, notifySignal)
	g := newGroup()
	var got atomic.Int64
	g.goFunc(func(done <-chan struct{}) {
		for {
			select {
			case <-ch:
				got.Add(1)
			case <-done:
				return
			}
		}
	})
	return &instance{
		request: func(_ context.Context, n int) {
			if n%10 == 0 {
				_ = raiseSignal()
			}
		},
		stop: func() { signal.Stop(ch); g.stop() },
	}, nil
}

// condQueue is a queue whose consumers wait on a sync.Cond; each waiter has
// its own ticket in the Cond's notify list.
type condQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []int
	closed bool
	wg     sync.WaitGroup
}

func (q *condQueue) consume() {
	defer q.wg.Done()
	for {
		q.mu.Lock()
		for len(q.items) == 0 && !q.closed {
			q.cond.Wait()
		}
		if q.closed {
			q.mu.Unlock()
			return
		}
		q.items = q.items[1:]
		q.mu.Unlock()
	}
}

func (q *condQueue) push(v int) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	q.cond.Signal()
}

func (q *condQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
	q.wg.Wait()
}

func startCondQueue(context.Context) (*instance, error) {
	q := &condQueue{}
	q.cond = sync.NewCond(&q.mu)
	for i := 0; i < 6; i++ {
		q.wg.Add(1)
		go q.consume()
	}
	return &instance{
		request: func(_ context.Context, n int) {
			for i := 0; i < n%4; i++ {
				q.push(i)
			}
		},
		stop: q.close,
	}, nil
}

// serveUntilCancelled selects on a context that stays live for the service's
// lifetime, and on its work.
func serveUntilCancelled(ctx context.Context, work <-chan int) {
	for {
		select {
		case <-ctx.Done():
			return
		case v := <-work:
			_ = v
		}
	}
}

func startLiveCtx(ctx context.Context) (*instance, error) {
	ctx, cancel := context.WithCancel(ctx)
	work := make(chan int)
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); serveUntilCancelled(ctx, work) }()
	}
	return &instance{
		request: func(ctx context.Context, n int) {
			select {
			case work <- n:
			case <-ctx.Done():
			}
		},
		stop: func() { cancel(); wg.Wait() },
	}, nil
}

// broker runs one goroutine per subscriber; the set is bounded and churns.
type broker struct {
	mu   sync.Mutex
	subs map[int]chan string
	next int
	wg   sync.WaitGroup
}

func (b *broker) deliver(ch <-chan string) {
	defer b.wg.Done()
	for m := range ch {
		_ = m
	}
}

func (b *broker) subscribe() {
	ch := make(chan string, 8)
	b.mu.Lock()
	b.subs[b.next] = ch
	b.next++
	b.mu.Unlock()
	b.wg.Add(1)
	go b.deliver(ch)
}

func (b *broker) unsubscribeOldest() {
	b.mu.Lock()
	defer b.mu.Unlock()
	oldest := -1
	for id := range b.subs {
		if oldest < 0 || id < oldest {
			oldest = id
		}
	}
	if oldest >= 0 {
		close(b.subs[oldest])
		delete(b.subs, oldest)
	}
}

func (b *broker) publish(m string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ch := range b.subs {
		select {
		case ch <- m:
		default: // slow subscriber: drop
		}
	}
}

func (b *broker) size() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

func startSubscriberChurn(context.Context) (*instance, error) {
	b := &broker{subs: map[int]chan string{}}
	for i := 0; i < 30; i++ {
		b.subscribe()
	}
	return &instance{
		request: func(_ context.Context, n int) {
			b.publish(fmt.Sprint("event ", n))
			if (n*7)%10 < 5 && b.size() < 40 {
				b.subscribe()
			} else if b.size() > 20 {
				b.unsubscribeOldest()
			}
		},
		stop: func() {
			b.mu.Lock()
			for id, ch := range b.subs {
				close(ch)
				delete(b.subs, id)
			}
			b.mu.Unlock()
			b.wg.Wait()
		},
	}, nil
}

func fanOutAndWait(_ context.Context, _ int) {
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			time.Sleep(time.Duration(i+1) * time.Millisecond)
		}(i)
	}
	wg.Wait()
}

func startSemaphoreChurn(context.Context) (*instance, error) {
	sem := make(chan struct{}, 5)
	var wg sync.WaitGroup
	return &instance{
		request: func(ctx context.Context, _ int) {
			for i := 0; i < 3; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					select {
					case sem <- struct{}{}:
					case <-ctx.Done():
						return
					}
					defer func() { <-sem }()
					time.Sleep(5 * time.Millisecond)
				}()
			}
		},
		stop: wg.Wait,
	}, nil
}

// fanOutAllRead is the fixed errgroup: every result is read even after an
// error, so no sender is left behind.
func fanOutAllRead(_ context.Context, n int) {
	errs := make(chan error)
	for i := 0; i < 4; i++ {
		go func(i int) {
			time.Sleep(time.Duration(i) * time.Millisecond)
			if i == 0 && n%2 == 0 {
				errs <- fmt.Errorf("shard %d: %w", i, errInvalid)
				return
			}
			errs <- nil
		}(i)
	}
	var first error
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	_ = first
}

// flushBuffer is appended to by requests and flushed by one background
// goroutine on a ticker.
type flushBuffer struct {
	mu      sync.Mutex
	pending []string
	flushed int
}

func (f *flushBuffer) flushLoop(done <-chan struct{}) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			f.mu.Lock()
			f.flushed += len(f.pending)
			f.pending = f.pending[:0]
			f.mu.Unlock()
		case <-done:
			return
		}
	}
}

func startFlusher(context.Context) (*instance, error) {
	f := &flushBuffer{}
	g := newGroup()
	g.goFunc(f.flushLoop)
	return &instance{
		request: func(_ context.Context, n int) {
			f.mu.Lock()
			f.pending = append(f.pending, fmt.Sprint("line ", n))
			f.mu.Unlock()
		},
		stop: g.stop,
	}, nil
}

// echoServer runs one goroutine per connection; echoClient holds one
// connection and serves calls over it, reconnecting now and then.
type echoServer struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func (s *echoServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go s.echo(c)
	}
}

func (s *echoServer) echo(c net.Conn) {
	defer s.wg.Done()
	_, _ = io.Copy(c, c)
	_ = c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *echoServer) close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

type echoCall struct {
	line      string
	reconnect bool
	done      chan struct{}
}

func echoClient(addr string, calls <-chan echoCall) {
	var c net.Conn
	var r *bufio.Reader
	defer func() {
		if c != nil {
			_ = c.Close()
		}
	}()
	for call := range calls {
		if c != nil && call.reconnect {
			_ = c.Close()
			c = nil
		}
		if c == nil {
			var err error
			if c, err = net.Dial("tcp", addr); err != nil {
				close(call.done)
				continue
			}
			r = bufio.NewReader(c)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, call.line+"\n"); err == nil {
			_, _ = r.ReadString('\n')
		}
		close(call.done)
	}
}

func startEchoConns(context.Context) (*instance, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on 127.0.0.1: %w", err)
	}
	s := &echoServer{ln: ln, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.accept()
	const clients = 6
	var cwg sync.WaitGroup
	chans := make([]chan echoCall, clients)
	for i := range chans {
		chans[i] = make(chan echoCall)
		cwg.Add(1)
		go func(ch chan echoCall) { defer cwg.Done(); echoClient(ln.Addr().String(), ch) }(chans[i])
	}
	return &instance{
		request: func(_ context.Context, n int) {
			call := echoCall{line: fmt.Sprint("ping ", n), reconnect: n%40 == 0, done: make(chan struct{})}
			chans[n%clients] <- call
			<-call.done
		},
		stop: func() {
			for _, ch := range chans {
				close(ch)
			}
			cwg.Wait()
			s.close()
		},
	}, nil
}

// sleepLoop is a rate-limited background loop paced by time.Sleep.
func sleepLoop(counter *atomic.Int64, done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		default:
		}
		time.Sleep(100 * time.Millisecond)
		counter.Add(1)
	}
}

func startSleepLoops(context.Context) (*instance, error) {
	g := newGroup()
	var n atomic.Int64
	for i := 0; i < 2; i++ {
		g.goFunc(func(done <-chan struct{}) { sleepLoop(&n, done) })
	}
	return &instance{request: func(context.Context, int) { _ = n.Load() }, stop: g.stop}, nil
}

// drainedSource and drainedSquare close their outputs, and the consumer
// reads to the end: nothing is left blocked.
func drainedSource(out chan<- int, k int) {
	for i := 0; i < k; i++ {
		out <- i
	}
	close(out)
}

func drainedSquare(in <-chan int, out chan<- int) {
	for v := range in {
		out <- v * v
	}
	close(out)
}

func drainPipeline(_ context.Context, n int) {
	src, sq := make(chan int), make(chan int)
	go drainedSource(src, 5+n%20)
	go drainedSquare(src, sq)
	sum := 0
	for v := range sq {
		sum += v
	}
}

// startWarmPool pre-warms a pool by one worker per request until it reaches
// its cap of 64 (about 2.6 s at 40 ms per request), then stays flat.
func startWarmPool(context.Context) (*instance, error) {
	p := newPool(0, 0)
	const capacity = 64
	size := 0
	return &instance{
		request: func(_ context.Context, n int) {
			if size < capacity {
				p.grow()
				size++
			}
			p.jobs <- func() {}
		},
		stop: p.close,
	}, nil
}

func startCtxAfterFunc(context.Context) (*instance, error) {
	var cleaned atomic.Int64
	return &instance{
		request: func(ctx context.Context, n int) {
			ctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			stop := context.AfterFunc(ctx, func() {
				cleaned.Add(1)
				close(done)
			})
			if n%3 == 0 && stop() {
				close(done) // unregistered before it ran
			}
			cancel()
			<-done
		},
		stop: func() {},
	}, nil
}

// startPipeReader keeps one goroutine reading a pipe whose writer stays open,
// like a process reading its stdin.
func startPipeReader(context.Context) (*instance, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			_ = sc.Text()
		}
	}()
	return &instance{
		request: func(_ context.Context, n int) {
			if n%10 == 0 {
				_, _ = fmt.Fprintf(w, "line %d\n", n)
			}
		},
		stop: func() { _ = w.Close(); wg.Wait(); _ = r.Close() },
	}, nil
}

// fetchWithTimeoutBuffered is the fix of fetchWithTimeout: a result channel
// with room for the one result, so the late sender never blocks.
func fetchWithTimeoutBuffered(_ context.Context, n int) {
	ch := make(chan string, 1)
	go func() {
		ch <- slowBackend(n, 3)
	}()
	select {
	case <-ch:
	case <-time.After(20 * time.Millisecond):
	}
}

// releaseOnDone waits for a context that its request always cancels.
func releaseOnDone(ctx context.Context) {
	<-ctx.Done()
}

func timeoutCancelled(ctx context.Context, _ int) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	go releaseOnDone(ctx)
	time.Sleep(time.Millisecond)
}

func contendOnMutex(_ context.Context, _ int) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mu.Lock()
			time.Sleep(time.Millisecond)
			mu.Unlock()
		}()
	}
	wg.Wait()
}

// versioned is long-polled by a fixed set of pollers waiting on a Cond for
// the next version.
type versioned struct {
	mu      sync.Mutex
	cond    *sync.Cond
	version int
	closed  bool
	wg      sync.WaitGroup
}

func (v *versioned) longPoll() {
	defer v.wg.Done()
	v.mu.Lock()
	defer v.mu.Unlock()
	seen := v.version
	for !v.closed {
		for v.version == seen && !v.closed {
			v.cond.Wait()
		}
		seen = v.version
	}
}

func startLongPoll(context.Context) (*instance, error) {
	v := &versioned{}
	v.cond = sync.NewCond(&v.mu)
	for i := 0; i < 10; i++ {
		v.wg.Add(1)
		go v.longPoll()
	}
	return &instance{
		request: func(context.Context, int) {
			v.mu.Lock()
			v.version++
			v.mu.Unlock()
			v.cond.Broadcast()
		},
		stop: func() {
			v.mu.Lock()
			v.closed = true
			v.mu.Unlock()
			v.cond.Broadcast()
			v.wg.Wait()
		},
	}, nil
}

// ctxAwareHandler is the fix of enqueueHandler: it gives up when the client
// does.
type ctxAwareHandler struct{ queue chan string }

func (h *ctxAwareHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/enqueue" {
		select {
		case h.queue <- r.URL.RawQuery:
		case <-r.Context().Done():
			return
		}
	}
	_, _ = io.WriteString(w, "ok\n")
}

func startCtxAwareHandler(context.Context) (*instance, error) {
	h := &ctxAwareHandler{queue: make(chan string)}
	srv, err := startLocalServer(h, 5*time.Second)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{}
	c := &http.Client{Transport: tr, Timeout: 30 * time.Millisecond}
	return &instance{
		request: func(_ context.Context, n int) {
			path := "/status"
			if n%2 == 0 {
				path = "/enqueue"
			}
			getAndDrain(c, fmt.Sprintf("%s%s?n=%d", srv.url, path, n))
		},
		stop: func() { tr.CloseIdleConnections(); srv.close() },
	}, nil
}

// healthy lists the patterns whose goroutines must not be called leaks.
func healthy() []*Pattern {
	return []*Pattern{
		{Name: "ok-worker-pool-idle", Category: "chan", Every: 200 * ms,
			Bug: "fixed pool of 8 workers idle on a job channel", start: startIdlePool},
		{Name: "ok-worker-pool-bursty", Category: "chan", Every: 100 * ms,
			Bug: "fixed pool of 16 workers under bursts of 0–30 jobs: idle/busy counts fluctuate", start: startBurstyPool},
		{Name: "ok-http-server-keepalive", Category: "library", Every: 50 * ms,
			Bug: "net/http server (1 s idle timeout) with 1–3 concurrent keep-alive clients; connections come and go", start: startKeepAliveServer},
		{Name: "ok-http-client-idle-reuse", Category: "library", Every: 100 * ms,
			Bug: "http.Client reusing 4 idle keep-alive connections, bodies drained and closed", start: startIdleReuse},
		{Name: "ok-http-handler-ctx-aware", Category: "library", Every: 100 * ms,
			Bug: "handler selects on r.Context().Done() and returns when the client times out", start: startCtxAwareHandler},
		{Name: "ok-ticker-loops", Category: "library", Every: 150 * ms,
			Bug: "three background loops on time.Ticker (20 ms, 100 ms, 1 s)", start: startTickerLoops},
		{Name: "ok-afterfunc-timers", Category: "library", Every: 30 * ms,
			Bug: "time.AfterFunc per request (0–180 ms), a third stopped before firing", start: startAfterFuncs},
		{Name: "ok-signal-notify", Category: "library", Every: 100 * ms,
			Bug: "signal.Notify handler goroutine, signalled every tenth request", start: startSignalHandler},
		{Name: "ok-cond-queue", Category: "cond", Every: 40 * ms,
			Bug: "6 consumers waiting on a sync.Cond queue, each with its own ticket", start: startCondQueue},
		{Name: "ok-cond-long-poll", Category: "cond", Every: 100 * ms,
			Bug: "10 long-pollers woken by Broadcast on every new version", start: startLongPoll},
		{Name: "ok-live-ctx-select", Category: "context", Every: 50 * ms,
			Bug: "5 goroutines selecting on a live service context and a work channel", start: startLiveCtx},
		{Name: "ok-ctx-timeout-cancelled", Category: "context", Every: 100 * ms,
			Bug: "WithTimeout + defer cancel: the Done watcher exits with its request", start: stateless(timeoutCancelled)},
		{Name: "ok-context-afterfunc", Category: "context", Every: 50 * ms,
			Bug: "context.AfterFunc per request, run on cancel or unregistered", start: startCtxAfterFunc},
		{Name: "ok-subscriber-churn", Category: "chan", Every: 60 * ms,
			Bug: "one goroutine per subscriber, 20–40 subscribers with subscribe/unsubscribe churn", start: startSubscriberChurn},
		{Name: "ok-fanout-wait", Category: "waitgroup", Every: 20 * ms,
			Bug: "request-scoped fan-out of 5 goroutines joined with a WaitGroup", start: stateless(fanOutAndWait)},
		{Name: "ok-semaphore-churn", Category: "chan", Every: 30 * ms,
			Bug: "bounded semaphore of 5 with 3 acquirers per request, always released", start: startSemaphoreChurn},
		{Name: "ok-errgroup-all-read", Category: "chan", Every: 100 * ms,
			Bug: "fan-out that reads every result even after an error", start: stateless(fanOutAllRead)},
		{Name: "ok-buffered-result-timeout", Category: "chan", Every: 50 * ms,
			Bug: "timeout with a result channel buffered for the one result: late senders finish", start: stateless(fetchWithTimeoutBuffered)},
		{Name: "ok-background-flusher", Category: "mutex", Every: 20 * ms,
			Bug: "requests append under a mutex, one background goroutine flushes every 100 ms", start: startFlusher},
		{Name: "ok-mutex-contention", Category: "mutex", Every: 50 * ms,
			Bug: "4 goroutines per request contend briefly on one mutex", start: stateless(contendOnMutex)},
		{Name: "ok-tcp-echo-steady", Category: "io", Every: 30 * ms,
			Bug: "6 clients on a local TCP echo server (goroutine per connection), reconnecting now and then", start: startEchoConns},
		{Name: "ok-sleep-loop", Category: "library", Every: 200 * ms,
			Bug: "two rate-limited background loops paced by time.Sleep", start: startSleepLoops},
		{Name: "ok-pipeline-drains", Category: "chan", Every: 50 * ms,
			Bug: "two-stage pipeline that closes its channels and is drained to the end", start: stateless(drainPipeline)},
		{Name: "ok-pool-warmup", Category: "chan", Every: 40 * ms,
			Bug: "pool pre-warmed by one worker per request to its cap of 64 (~2.6 s), then flat", start: startWarmPool},
		{Name: "ok-pipe-reader-open", Category: "io", Every: 100 * ms,
			Bug: "one goroutine reading a pipe whose writer stays open, like a stdin reader", start: startPipeReader},
	}
}
