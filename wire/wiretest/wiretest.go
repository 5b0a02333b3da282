// Package wiretest is an in-process collector speaking the wire protocol,
// for tests and benchmarks of the agent: it stores batches and bundles,
// de-duplicates by idempotency key, and injects faults (down, 5xx, 413,
// 401, 429, hanging, connection resets). It listens on 127.0.0.1 only.
package wiretest

import (
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gopulse/gopulse/wire"
)

// Fault is what the server does instead of answering normally.
type Fault struct {
	Status     int    // answer with this status
	RetryAfter string // Retry-After header with Status
	Hang       bool   // never answer (until the client gives up or Close)
	Reset      bool   // drop the connection without an answer
	// Paths limits the fault to these paths; empty means all.
	Paths []string
}

// Bundle is one received bundle.
type Bundle struct {
	Manifest *wire.BundleManifest
	Files    map[string][]byte
	Encoding string
}

// Server is the in-test collector.
type Server struct {
	URL   string
	Token string // if set, requests must carry "Bearer <Token>"

	addr string
	srv  *http.Server
	wg   sync.WaitGroup
	hang chan struct{}

	connMu sync.Mutex
	conns  map[net.Conn]struct{}

	mu            sync.Mutex
	ln            net.Listener
	fault         *Fault
	batches       map[string]*wire.MetricBatch
	order         []string
	bundles       map[string]*Bundle
	DupBatches    int
	DupBundles    int
	Requests      int
	BadRequests   []string
	BundleOrder   []string
	maxBatchBytes int64
}

// New starts a server on 127.0.0.1 on a free port.
func New() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s := &Server{
		addr: ln.Addr().String(), batches: map[string]*wire.MetricBatch{}, bundles: map[string]*Bundle{},
		hang: make(chan struct{}),
	}
	s.URL = "http://" + s.addr
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+wire.PathPushMetrics, s.pushMetrics)
	mux.HandleFunc("POST "+wire.PathPushBundle, s.pushBundle)
	s.conns = map[net.Conn]struct{}{}
	s.srv = &http.Server{Handler: s.faulty(mux), ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(c net.Conn, st http.ConnState) {
			s.connMu.Lock()
			defer s.connMu.Unlock()
			switch st {
			case http.StateNew:
				s.conns[c] = struct{}{}
			case http.StateClosed, http.StateHijacked:
				delete(s.conns, c)
			}
		}}
	s.serve(ln)
	return s, nil
}

func (s *Server) serve(ln net.Listener) {
	s.ln = ln
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.srv.Serve(ln)
	}()
}

// Down closes the listener so connections are refused, like a collector
// that is not running. Open connections are closed too.
func (s *Server) Down() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
	s.wg.Wait()
	// Kept-alive connections would still reach the handlers: cut them.
	s.connMu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.connMu.Unlock()
}

// Up listens again on the same address.
func (s *Server) Up() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("relisten on %s: %w", s.addr, err)
	}
	s.serve(ln)
	return nil
}

// Close stops the server and unblocks hanging handlers.
func (s *Server) Close() {
	close(s.hang)
	s.srv.Close()
	s.wg.Wait()
}

// SetFault makes the server misbehave; nil restores normal answers.
func (s *Server) SetFault(f *Fault) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

// SetMaxBatchBytes makes batches larger than n answer 413 (0 = no limit).
func (s *Server) SetMaxBatchBytes(n int64) {
	s.mu.Lock()
	s.maxBatchBytes = n
	s.mu.Unlock()
}

func (s *Server) faulty(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.Requests++
		f := s.fault
		s.mu.Unlock()
		if s.Token != "" && r.Header.Get("Authorization") != "Bearer "+s.Token {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		if f != nil && (len(f.Paths) == 0 || contains(f.Paths, r.URL.Path)) {
			switch {
			case f.Hang:
				select {
				case <-r.Context().Done():
				case <-s.hang:
				}
				return
			case f.Reset:
				if hj, ok := w.(http.Hijacker); ok {
					if c, _, err := hj.Hijack(); err == nil {
						if tc, ok := c.(*net.TCPConn); ok {
							tc.SetLinger(0) // RST instead of FIN
						}
						c.Close()
						return
					}
				}
				panic(http.ErrAbortHandler)
			case f.Status != 0:
				if f.RetryAfter != "" {
					w.Header().Set("Retry-After", f.RetryAfter)
				}
				http.Error(w, "injected fault", f.Status)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (s *Server) bad(w http.ResponseWriter, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.BadRequests = append(s.BadRequests, msg)
	s.mu.Unlock()
	http.Error(w, msg, http.StatusBadRequest)
}

func ack(w http.ResponseWriter, key string, dup bool) {
	b, _ := proto.Marshal(&wire.Ack{IdempotencyKey: key, Duplicate: dup})
	w.Header().Set("Content-Type", wire.ContentTypeProto)
	w.Write(b)
}

func (s *Server) pushMetrics(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != wire.ContentTypeProto {
		s.bad(w, "content type %q", ct)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		return
	}
	s.mu.Lock()
	limit := s.maxBatchBytes
	s.mu.Unlock()
	if limit > 0 && int64(len(body)) > limit {
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
		return
	}
	b := &wire.MetricBatch{}
	if err := proto.Unmarshal(body, b); err != nil {
		s.bad(w, "unmarshal batch: %v", err)
		return
	}
	key := r.Header.Get(wire.HeaderIdempotencyKey)
	if key == "" || key != b.GetBatchId() {
		s.bad(w, "idempotency key %q does not match batch id %q", key, b.GetBatchId())
		return
	}
	s.mu.Lock()
	_, dup := s.batches[key]
	if dup {
		s.DupBatches++
	} else {
		s.batches[key] = b
		s.order = append(s.order, key)
	}
	s.mu.Unlock()
	ack(w, key, dup)
}

func (s *Server) pushBundle(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get(wire.HeaderIdempotencyKey)
	s.mu.Lock()
	_, dup := s.bundles[key]
	if dup {
		s.DupBundles++
	}
	s.mu.Unlock()
	if dup {
		ack(w, key, true) // dropped before reading the body
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(r.Body)
		if err != nil {
			s.bad(w, "gzip: %v", err)
			return
		}
		body = gz
	}
	br, err := wire.NewBundleReader(body)
	if err != nil {
		s.bad(w, "%v", err)
		return
	}
	bd := &Bundle{Files: map[string][]byte{}, Encoding: r.Header.Get("Content-Encoding")}
	var cur string
	for {
		f, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if strings.Contains(err.Error(), "unexpected EOF") || r.Context().Err() != nil {
				return // client went away mid-stream
			}
			s.bad(w, "%v", err)
			return
		}
		switch fr := f.Frame.(type) {
		case *wire.BundleFrame_FileStart:
			cur = fr.FileStart.Name
			bd.Files[cur] = []byte{}
		case *wire.BundleFrame_Chunk:
			bd.Files[cur] = append(bd.Files[cur], fr.Chunk...)
		case *wire.BundleFrame_Manifest:
			bd.Manifest = fr.Manifest
		}
	}
	if bd.Manifest.GetEventId() != key {
		s.bad(w, "idempotency key %q does not match event id %q", key, bd.Manifest.GetEventId())
		return
	}
	s.mu.Lock()
	if _, dup := s.bundles[key]; dup {
		s.DupBundles++
	} else {
		s.bundles[key] = bd
		s.BundleOrder = append(s.BundleOrder, key)
	}
	s.mu.Unlock()
	ack(w, key, false)
}

// Batches returns the distinct batches received, in arrival order.
func (s *Server) Batches() []*wire.MetricBatch {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*wire.MetricBatch, 0, len(s.order))
	for _, k := range s.order {
		out = append(out, s.batches[k])
	}
	return out
}

// Bundles returns the distinct bundles received, in arrival order.
func (s *Server) Bundles() []*Bundle {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Bundle, 0, len(s.BundleOrder))
	for _, k := range s.BundleOrder {
		out = append(out, s.bundles[k])
	}
	return out
}

// Counts returns request, duplicate and bad-request counters.
func (s *Server) Counts() (requests, dupBatches, dupBundles int, bad []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Requests, s.DupBatches, s.DupBundles, append([]string(nil), s.BadRequests...)
}
