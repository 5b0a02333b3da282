package patterns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// The leaks in I/O and in library code: goroutines parked in netpoll or inside
// net/http, which the runtime's goroutineleak profile cannot see.

// localServer serves h on 127.0.0.1 and owns the server goroutines.
type localServer struct {
	srv *http.Server
	url string
	wg  sync.WaitGroup
}

func startLocalServer(h http.Handler, idle time.Duration) (*localServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on 127.0.0.1: %w", err)
	}
	s := &localServer{
		srv: &http.Server{Handler: h, IdleTimeout: idle, ReadHeaderTimeout: 5 * time.Second},
		url: "http://" + ln.Addr().String(),
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

func (s *localServer) close() {
	_ = s.srv.Close()
	s.wg.Wait()
}

// probeHealth checks a dependency's status code and never closes the body:
// the Transport cannot reuse or free the connection, so each probe leaves a
// readLoop and a writeLoop goroutine behind (the most reported net/http leak).
func probeHealth(c *http.Client, url string) bool {
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	return resp.StatusCode == http.StatusOK // missing resp.Body.Close()
}

func startBodyNotClosed(context.Context) (*instance, error) {
	srv, err := startLocalServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	}), 2*time.Second)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{}
	c := &http.Client{Transport: tr}
	return &instance{
		request: func(_ context.Context, _ int) { probeHealth(c, srv.url+"/healthz") },
		stop:    func() { tr.CloseIdleConnections(); srv.close() },
	}, nil
}

// serveProbe accepts on a listener that nothing ever closes: each request
// that opens a probe listener leaves an accept goroutine (and a socket).
func serveProbe(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_ = c.Close()
	}
}

func openProbeListener(_ context.Context, n int) {
	if n%3 != 0 {
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return
	}
	go serveProbe(ln) // missing ln.Close() when the probe is done
}

// pollStatus refreshes on a ticker forever: no Stop and no way out of the
// loop, one per request that enabled polling.
func pollStatus(n int) {
	t := time.NewTicker(500 * time.Millisecond)
	for range t.C {
		n++
	}
}

func startPolling(_ context.Context, n int) {
	if n%4 == 0 {
		go pollStatus(n)
	}
}

// silentPeer accepts connections and keeps them open without ever writing:
// a stuck dependency.
type silentPeer struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func (p *silentPeer) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		p.mu.Unlock()
	}
}

func (p *silentPeer) close() {
	_ = p.ln.Close()
	p.wg.Wait()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
}

// readGreeting reads the peer's greeting with no deadline: against a peer
// that never writes it waits in netpoll forever.
func readGreeting(addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer c.Close()
	buf := make([]byte, 64)
	_, _ = c.Read(buf) // missing c.SetReadDeadline
}

func startSilentPeer(context.Context) (*instance, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on 127.0.0.1: %w", err)
	}
	p := &silentPeer{ln: ln}
	p.wg.Add(1)
	go p.accept()
	addr := ln.Addr().String()
	return &instance{
		request: func(_ context.Context, n int) {
			if n%4 == 0 {
				go readGreeting(addr)
			}
		},
		stop: p.close,
	}, nil
}

// enqueueHandler hands each request to a background consumer through an
// unbuffered channel, but the consumer died at startup, and the handler does
// not select on r.Context().Done(): every such request leaves its connection
// goroutine parked in the handler after the client gave up.
type enqueueHandler struct{ queue chan string }

func (h *enqueueHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/enqueue" {
		h.queue <- r.URL.RawQuery
	}
	_, _ = io.WriteString(w, "ok\n")
}

func startBlockedHandler(context.Context) (*instance, error) {
	h := &enqueueHandler{queue: make(chan string)}
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
			resp, err := c.Get(fmt.Sprintf("%s%s?n=%d", srv.url, path, n))
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		},
		stop: func() { tr.CloseIdleConnections(); srv.close() },
	}, nil
}

// uploadFrom streams what the producer writes into the pipe; the producer's
// error path returns without CloseWithError, so the uploader waits for data
// forever.
func uploadFrom(pr *io.PipeReader) {
	_, _ = io.Copy(io.Discard, pr)
}

var errEncode = errors.New("encode failed")

func writeRecords(_ context.Context, n int) {
	pr, pw := io.Pipe()
	go uploadFrom(pr)
	for i := 0; i < 3; i++ {
		if n%3 == 0 && i == 1 {
			_ = fmt.Errorf("record %d: %w", i, errEncode)
			return // missing pw.CloseWithError(err)
		}
		_, _ = fmt.Fprintf(pw, "record %d\n", i)
	}
	_ = pw.Close()
}
