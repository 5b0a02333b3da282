package patterns

import (
	"context"
	"sync"
	"time"
)

// The leaks on sync primitives and contexts.

// requestScope keeps the cancel function of a request's context; the bug is
// that only one code path calls it.
type requestScope struct{ cancel context.CancelFunc }

// watchForCancel releases the request's resources when its context ends.
func watchForCancel(ctx context.Context) {
	<-ctx.Done()
}

// handleWithWatcher derives a cancellable context per request and starts a
// watcher on it, but only the success path cancels: the watcher of every
// failed request waits forever (the context is derived from the long-lived
// service context, so it never ends on its own).
func handleWithWatcher(ctx context.Context, n int) {
	ctx, cancel := context.WithCancel(ctx)
	scope := &requestScope{cancel: cancel}
	go watchForCancel(ctx)
	if n%2 == 0 {
		return // missing scope.cancel()
	}
	scope.cancel()
}

// keepSessionAlive renews a session until its context ends. The session's
// context has a one-hour timeout and its cancel is dropped, so every session
// keeps a renewer for an hour after the request is gone.
func keepSessionAlive(ctx context.Context, renew <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-renew:
		}
	}
}

func openSession(ctx context.Context, _ int) {
	ctx, cancel := context.WithTimeout(ctx, time.Hour)
	scope := &requestScope{cancel: cancel}
	_ = scope // the session is dropped without scope.cancel()
	go keepSessionAlive(ctx, make(chan struct{}))
}

// fanOutWithWG counts three workers into a WaitGroup, but a worker that skips
// its item returns without Done: the goroutine waiting on the group blocks
// forever (Docker #25384 and etcd #6857 are Add/Done mismatches).
func fanOutWithWG(_ context.Context, n int) {
	var wg sync.WaitGroup
	wg.Add(3)
	for i := 0; i < 3; i++ {
		go func(i int) {
			if n%2 == 0 && i == 1 {
				return // missing wg.Done()
			}
			wg.Done()
		}(i)
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Millisecond):
	}
}

// session publishes events to a listener while holding its mutex. When the
// listener was never started, publish blocks on the send with the lock held
// and every later heartbeat piles up on Lock (the "mutex held across a
// blocking channel operation" bugs of Docker and Kubernetes).
type session struct {
	mu     sync.Mutex
	events chan string
	state  int
}

func (s *session) publish(ev string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state++
	s.events <- ev
}

func (s *session) heartbeat() {
	s.mu.Lock()
	s.state++
	s.mu.Unlock()
}

func (s *session) listen() {
	<-s.events
}

type sessionServer struct{ prev *session }

func (ss *sessionServer) request(_ context.Context, n int) {
	s := &session{events: make(chan string)}
	if n%2 == 1 {
		go s.listen()
	}
	go s.publish("opened")
	if ss.prev != nil {
		// Later requests touch the previous session; by now its publish
		// holds the lock.
		go ss.prev.heartbeat()
		go ss.prev.heartbeat()
	}
	ss.prev = s
}

func startSessionServer(context.Context) (*instance, error) {
	ss := &sessionServer{}
	return &instance{request: ss.request, stop: func() {}}, nil
}

// registry takes a read lock and, inside it, calls a helper that read-locks
// again. If a writer arrives in between, Go's RWMutex blocks the second
// RLock behind the writer and the writer behind the first RLock (Kubernetes
// and BoltDB had this recursive-read deadlock).
type registry struct {
	mu sync.RWMutex
	m  map[int]int
}

func (r *registry) lookup(k int) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.m[k]
}

func (r *registry) lookupAll(started chan<- struct{}) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	close(started)
	time.Sleep(3 * time.Millisecond) // work under the read lock
	return r.lookup(1) + r.lookup(2)
}

func (r *registry) update(k int) {
	r.mu.Lock()
	r.m[k]++
	r.mu.Unlock()
}

func rwRecursiveRead(_ context.Context, n int) {
	r := &registry{m: map[int]int{}}
	started := make(chan struct{})
	go r.lookupAll(started)
	<-started
	go r.update(n)
}

// jobState is waited on with a sync.Cond; the cancel path sets done without
// Broadcast, so the waiter sleeps in Cond.Wait forever.
type jobState struct {
	mu   sync.Mutex
	cond *sync.Cond
	done bool
}

func (j *jobState) wait() {
	j.mu.Lock()
	for !j.done {
		j.cond.Wait()
	}
	j.mu.Unlock()
}

func (j *jobState) finish(broadcast bool) {
	j.mu.Lock()
	j.done = true
	j.mu.Unlock()
	if broadcast {
		j.cond.Broadcast()
	}
}

type jobServer struct{ prev *jobState }

func (js *jobServer) request(_ context.Context, n int) {
	j := &jobState{}
	j.cond = sync.NewCond(&j.mu)
	go j.wait()
	if js.prev != nil {
		js.prev.finish(n%3 != 0) // the cancel path forgets the Broadcast
	}
	js.prev = j
}

func startJobServer(context.Context) (*instance, error) {
	js := &jobServer{}
	return &instance{request: js.request, stop: func() {}}, nil
}

// account.withdraw holds the lock and calls audit, which locks again: a
// self-deadlock on a non-reentrant mutex (double locking is the most common
// mutex bug in the study).
type account struct {
	mu      sync.Mutex
	balance int
}

func (a *account) audit() {
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.balance
}

func (a *account) withdraw(x int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.balance < x {
		a.audit() // deadlock: a.mu is already held
		return
	}
	a.balance -= x
}

func withdrawOverdrawn(_ context.Context, n int) {
	a := &account{balance: 10}
	x := 5
	if n%2 == 0 {
		x = 50
	}
	go a.withdraw(x)
}

// ledger pairs are locked in opposite orders by moveFunds and refund: an AB/BA
// deadlock when both run at once (CockroachDB and etcd lock-order bugs).
type ledger struct {
	mu      sync.Mutex
	balance int
}

func moveFunds(from, to *ledger) {
	from.mu.Lock()
	defer from.mu.Unlock()
	time.Sleep(2 * time.Millisecond) // validate
	to.mu.Lock()
	defer to.mu.Unlock()
	from.balance--
	to.balance++
}

func refund(from, to *ledger) {
	to.mu.Lock()
	defer to.mu.Unlock()
	time.Sleep(2 * time.Millisecond) // look up the original transfer
	from.mu.Lock()
	defer from.mu.Unlock()
	to.balance--
	from.balance++
}

func transferAndRefund(_ context.Context, n int) {
	a, b := &ledger{balance: 100}, &ledger{balance: 100}
	go moveFunds(a, b)
	if n%2 == 0 {
		go refund(a, b) // concurrent refund: inverted lock order
	}
}

// cache publishes a batch of updates while holding its lock; the watcher,
// after the first update, calls back into the cache and needs the lock: a
// circular wait between a mutex and a channel.
type cache struct {
	mu      sync.Mutex
	updates chan int
	v       int
}

func (c *cache) publishBatch(vs []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range vs {
		c.v = v
		c.updates <- v
	}
}

func (c *cache) current() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.v
}

func (c *cache) watch(k int) {
	for i := 0; i < k; i++ {
		<-c.updates
		_ = c.current()
	}
}

func publishUpdates(_ context.Context, n int) {
	c := &cache{updates: make(chan int)}
	batch := []int{n}
	if n%2 == 0 {
		batch = append(batch, n+1)
	}
	go c.watch(len(batch))
	go c.publishBatch(batch)
}

// lazyConfig loads once; on the validation path load calls get again, which
// re-enters Once.Do and blocks on the Once's own mutex.
type lazyConfig struct {
	once  sync.Once
	n     int
	value int
}

func (c *lazyConfig) get() int {
	c.once.Do(c.load)
	return c.value
}

func (c *lazyConfig) load() {
	c.value = 1
	if c.n%3 == 0 {
		_ = c.get() // re-entrant Do: deadlock
	}
}

func loadConfig(_ context.Context, n int) {
	c := &lazyConfig{n: n}
	go c.get()
}
