package main

import (
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// kind is how a goroutine of a shape blocks.
type kind int

const (
	kChanRecv  kind = iota // "chan receive"
	kChanSend              // "chan send"
	kNilChan               // "chan receive (nil chan)"
	kSelect                // "select"
	kMutex                 // "sync.Mutex.Lock"
	kRWMutex               // "sync.RWMutex.RLock"
	kCond                  // "sync.Cond.Wait", each waiter with its own ticket
	kWaitGroup             // "sync.WaitGroup.Wait"
	kSleep                 // "sleep"
	kNetServer             // "IO wait", server side of a 127.0.0.1 connection
	kNetClient             // "IO wait", client side
)

// kindPlan says how many of the ~100 shapes block each way, and how many
// frames the blocking itself adds below our layers (runtime frames hidden
// by the default traceback included), so that a shape's total depth lands
// in [minDepth, maxDepth].
var kindPlan = []struct {
	k           kind
	shapes      int
	blockFrames int
}{
	{kChanRecv, 22, 2},
	{kChanSend, 10, 2},
	{kNilChan, 4, 2},
	{kSelect, 16, 2},
	{kMutex, 8, 6},
	{kRWMutex, 6, 4},
	{kCond, 8, 4},
	{kWaitGroup, 8, 4},
	{kSleep, 12, 3},
	{kNetServer, 3, 8},
	{kNetClient, 3, 8},
}

// shape is one distinct stack: the same call path and blocking site for all
// of its goroutines. The primitives the goroutines block on live here.
type shape struct {
	id          int
	kind        kind
	path        []uint8 // indexes into layers, outermost first
	count       int
	leaked      bool // unreachable from globals once spawned: the leak profile reports it
	ch, ch2     chan int
	nilCh       chan int
	mu          sync.Mutex
	rw          sync.RWMutex
	condMu      sync.Mutex
	cond        *sync.Cond
	wg          sync.WaitGroup
	serverConns []net.Conn // for kNetServer: handed to goroutines one by one
}

// task is the per-goroutine argument: a pointer, so tools that ignore
// pointer values (panicparse's AnyPointer) group goroutines of a shape, as
// they would in a real service.
type task struct {
	s    *shape
	conn net.Conn
}

// planShapes lays out the shapes, each with a total depth drawn uniformly
// from [minDepth, maxDepth] (the created-by frame not counted), and splits n
// goroutines over them with a skewed (log-normal) distribution: a few large
// groups, many small ones, as in real services. conns bounds the goroutines
// in IO wait (each holds a file descriptor). The layout depends only on seed.
func planShapes(n, conns, minDepth, maxDepth int, leakFrac float64, seed uint64) []*shape {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var shapes []*shape
	for _, kp := range kindPlan {
		for range kp.shapes {
			s := &shape{id: len(shapes), kind: kp.k}
			depth := minDepth + rng.IntN(maxDepth-minDepth+1)
			nl := max(depth-kp.blockFrames, 1)
			s.path = make([]uint8, nl)
			for j := range s.path {
				s.path[j] = uint8(rng.IntN(len(layers)))
			}
			shapes = append(shapes, s)
		}
	}
	// IO-wait goroutines come in pairs (server and client side of one
	// connection), bounded by conns.
	var netServer, netClient, other []*shape
	for _, s := range shapes {
		switch s.kind {
		case kNetServer:
			netServer = append(netServer, s)
		case kNetClient:
			netClient = append(netClient, s)
		default:
			other = append(other, s)
		}
	}
	conns = min(conns, n/2)
	split(netServer, conns, rng)
	split(netClient, conns, rng)
	split(other, n-2*conns, rng)
	// Mark roughly leakFrac of the goroutines in channel/sync shapes as
	// leaked, shape by shape in a seeded order.
	var leakable []*shape
	total := 0
	for _, s := range other {
		if s.kind != kSleep {
			leakable = append(leakable, s)
			total += s.count
		}
	}
	rng.Shuffle(len(leakable), func(i, j int) { leakable[i], leakable[j] = leakable[j], leakable[i] })
	// A receive from a nil channel can never proceed: those goroutines
	// leak whatever references them.
	target := int(leakFrac * float64(total))
	for _, s := range leakable {
		if s.kind == kNilChan {
			s.leaked = true
			target -= s.count
		}
	}
	for _, s := range leakable {
		if target <= 0 {
			break
		}
		if !s.leaked && s.count <= target {
			s.leaked = true
			target -= s.count
		}
	}
	return shapes
}

// split shares n goroutines over shapes with log-normal weights, at least
// one each when n allows.
func split(shapes []*shape, n int, rng *rand.Rand) {
	if len(shapes) == 0 {
		return
	}
	w := make([]float64, len(shapes))
	var sum float64
	for i := range w {
		w[i] = math.Exp(1.3 * rng.NormFloat64())
		sum += w[i]
	}
	left := n
	for i, s := range shapes {
		s.count = 0
		if left > 0 {
			s.count = max(1, int(float64(n)*w[i]/sum))
			s.count = min(s.count, left)
		}
		left -= s.count
	}
	// Rounding leftovers go to the largest shape.
	if left > 0 {
		big := shapes[0]
		for _, s := range shapes {
			if s.count > big.count {
				big = s
			}
		}
		big.count += left
	}
}

// prepare sets up the primitives the shape's goroutines will block on.
// Nothing in it ever wakes them: they stay until the process exits.
func (s *shape) prepare() {
	switch s.kind {
	case kChanRecv, kChanSend, kSelect:
		s.ch = make(chan int)
		s.ch2 = make(chan int)
	case kMutex:
		s.mu.Lock()
	case kRWMutex:
		s.rw.Lock()
	case kCond:
		s.cond = sync.NewCond(&s.condMu)
	case kWaitGroup:
		s.wg.Add(1)
	}
}

type layerFunc func(t *task, i int)

// layers are the functions stacks are built from, named like the layers of
// a service. Each calls the next layer of its shape's path, or blocks.
var layers [12]layerFunc

func init() {
	layers = [...]layerFunc{serveConn, handleRequest, routeRequest, authorize,
		loadSession, runQuery, fetchRows, decodeBatch, publishEvent, processJob,
		retryLoop, withTimeout}
}

//go:noinline
func serveConn(t *task, i int) {
	if i < len(t.s.path) {
		layers[t.s.path[i]](t, i+1)
		return
	}
	block(t)
}

//go:noinline
func handleRequest(t *task, i int) {
	if i < len(t.s.path) {
		layers[t.s.path[i]](t, i+1)
		return
	}
	block(t)
}

//go:noinline
func routeRequest(t *task, i int) {
	if i < len(t.s.path) {
		layers[t.s.path[i]](t, i+1)
		return
	}
	block(t)
}

//go:noinline
func authorize(t *task, i int) {
	if i < len(t.s.path) {
		layers[t.s.path[i]](t, i+1)
		return
	}
	block(t)
}

//go:noinline
func loadSession(t *task, i int) {
	if i < len(t.s.path) {
		layers[t.s.path[i]](t, i+1)
		return
	}
	block(t)
}

//go:noinline
func runQuery(t *task, i int) {
	if i < len(t.s.path) {
		layers[t.s.path[i]](t, i+1)
		return
	}
	block(t)
}

//go:noinline
func fetchRows(t *task, i int) {
	if i < len(t.s.path) {
		layers[t.s.path[i]](t, i+1)
		return
	}
	block(t)
}

//go:noinline
func decodeBatch(t *task, i int) {
	if i < len(t.s.path) {
		layers[t.s.path[i]](t, i+1)
		return
	}
	block(t)
}

//go:noinline
func publishEvent(t *task, i int) {
	if i < len(t.s.path) {
		layers[t.s.path[i]](t, i+1)
		return
	}
	block(t)
}

//go:noinline
func processJob(t *task, i int) {
	if i < len(t.s.path) {
		layers[t.s.path[i]](t, i+1)
		return
	}
	block(t)
}

//go:noinline
func retryLoop(t *task, i int) {
	if i < len(t.s.path) {
		layers[t.s.path[i]](t, i+1)
		return
	}
	block(t)
}

//go:noinline
func withTimeout(t *task, i int) {
	if i < len(t.s.path) {
		layers[t.s.path[i]](t, i+1)
		return
	}
	block(t)
}

// block is one frame between the last layer and the kind's own blocking
// function; kindPlan.blockFrames counts it.
//
//go:noinline
func block(t *task) {
	switch t.s.kind {
	case kChanRecv:
		waitForResult(t.s.ch)
	case kChanSend:
		sendResult(t.s.ch)
	case kNilChan:
		awaitReply(t.s.nilCh)
	case kSelect:
		pollEvents(t.s.ch, t.s.ch2)
	case kMutex:
		lockAccount(&t.s.mu)
	case kRWMutex:
		readConfig(&t.s.rw)
	case kCond:
		waitForSlot(t.s.cond)
	case kWaitGroup:
		waitForPeers(&t.s.wg)
	case kSleep:
		backoff(24 * time.Hour)
	case kNetServer, kNetClient:
		readFrame(t.conn)
	}
}

//go:noinline
func waitForResult(ch chan int) int { return <-ch }

//go:noinline
func sendResult(ch chan int) { ch <- 1 }

//go:noinline
func awaitReply(ch chan int) int { return <-ch }

//go:noinline
func pollEvents(a, b chan int) int {
	select {
	case v := <-a:
		return v
	case v := <-b:
		return v
	}
}

//go:noinline
func lockAccount(mu *sync.Mutex) {
	mu.Lock()
	mu.Unlock()
}

//go:noinline
func readConfig(rw *sync.RWMutex) {
	rw.RLock()
	rw.RUnlock()
}

//go:noinline
func waitForSlot(c *sync.Cond) {
	c.L.Lock()
	c.Wait()
	c.L.Unlock()
}

//go:noinline
func waitForPeers(wg *sync.WaitGroup) { wg.Wait() }

//go:noinline
func backoff(d time.Duration) { time.Sleep(d) }

//go:noinline
func readFrame(c net.Conn) {
	var buf [512]byte
	_, _ = c.Read(buf[:])
}
