// Package ship delivers metric batches and evidence bundles to the
// collector: at least once, with idempotency keys, exponential backoff with
// jitter, distinct handling of 5xx/429/413/401, and a bounded on-disk spool
// while the collector is unreachable.
package ship

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gopulse/gopulse/wire"
)

// Config configures a Shipper.
type Config struct {
	URL    string // collector base URL
	Token  string // sent as "Authorization: Bearer <token>" when set
	Client *http.Client
	Spool  *Spool // nil: memory queue only
	// MemQueue bounds the batches held in memory while the spool is
	// unusable; the oldest is dropped (and counted) beyond it.
	MemQueue                    int
	BaseBackoff, MaxBackoff     time.Duration
	BatchTimeout, BundleTimeout time.Duration
	Logf                        func(format string, args ...any)
	Now                         func() time.Time
}

// Stats are cumulative counters.
type Stats struct {
	BatchesSent, BundlesSent       uint64
	Failures                       uint64
	DroppedBatches, DroppedBundles uint64
	SpoolBytes                     int64
	SpoolItems                     int
	SpoolEvictedItems              uint64
	SpoolEvictedBytes              uint64
	SpoolCorrupt                   uint64
	LastError                      string
}

type item struct {
	key     string
	payload []byte
}

// Shipper owns all network I/O to the collector. Run drives it; Enqueue
// and the bundle methods may be called from any goroutine.
type Shipper struct {
	cfg  Config
	wake chan struct{}

	mu       sync.Mutex
	queue    []item
	stats    Stats
	failures int
	until    time.Time // no sends before this (backoff)
	failing  bool
}

// New returns a Shipper; call Run to start delivering.
func New(cfg Config) *Shipper {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			ResponseHeaderTimeout: 30 * time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   2,
		}}
	}
	if cfg.MemQueue <= 0 {
		cfg.MemQueue = 64
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Shipper{cfg: cfg, wake: make(chan struct{}, 1)}
}

func (s *Shipper) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Stats returns a snapshot of the counters.
func (s *Shipper) Stats() Stats {
	s.mu.Lock()
	st := s.stats
	s.mu.Unlock()
	if sp := s.cfg.Spool; sp != nil {
		sp.mu.Lock()
		st.SpoolBytes = sp.size
		st.SpoolEvictedItems, st.SpoolEvictedBytes, st.SpoolCorrupt = sp.EvictedItems, sp.EvictedBytes, sp.Corrupt
		sp.mu.Unlock()
		st.SpoolItems = len(sp.Files())
	}
	return st
}

// Enqueue queues one batch for delivery.
func (s *Shipper) Enqueue(b *wire.MetricBatch) error {
	payload, err := proto.Marshal(b)
	if err != nil {
		return fmt.Errorf("marshal batch %s: %w", b.GetBatchId(), err)
	}
	s.mu.Lock()
	s.queue = append(s.queue, item{b.GetBatchId(), payload})
	if over := len(s.queue) - s.cfg.MemQueue; over > 0 {
		s.stats.DroppedBatches += uint64(over)
		s.queue = append(s.queue[:0], s.queue[over:]...)
		s.cfg.Logf("gopulse agent: warning: dropped %d metric batches: memory queue full (%d) and the spool is unusable", over, s.cfg.MemQueue)
	}
	s.mu.Unlock()
	s.poke()
	return nil
}

// Run delivers until ctx is done, then moves what is still queued in
// memory to the spool.
func (s *Shipper) Run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		s.drain(ctx)
		if ctx.Err() != nil {
			if s.cfg.Spool != nil {
				s.spillQueue()
			}
			return
		}
		s.mu.Lock()
		wait := time.Until(s.until)
		s.mu.Unlock()
		if wait <= 0 {
			wait = time.Minute // re-check spool expiry now and then
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-t.C:
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
	}
}

// Flush tries once to deliver everything queued, within ctx, ignoring
// backoff. Used by Stop.
func (s *Shipper) Flush(ctx context.Context) {
	s.mu.Lock()
	s.until = time.Time{}
	s.mu.Unlock()
	s.drain(ctx)
	s.spillQueue()
}

// spillQueue moves the memory queue into the spool.
func (s *Shipper) spillQueue() {
	sp := s.cfg.Spool
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return
	}
	if sp == nil {
		s.stats.DroppedBatches += uint64(len(s.queue))
		s.cfg.Logf("gopulse agent: warning: %d undelivered metric batches lost: no usable spool", len(s.queue))
		s.queue = nil
		return
	}
	for i, it := range s.queue {
		if err := sp.AppendBatch(it.payload, s.cfg.Now()); err != nil {
			s.cfg.Logf("gopulse agent: warning: spool: %v; keeping %d batches in memory", err, len(s.queue)-i)
			s.queue = append(s.queue[:0], s.queue[i:]...)
			return
		}
	}
	s.queue = s.queue[:0]
}

type outcome int

const (
	delivered    outcome = iota
	retry                // 5xx, network error, timeout: back off
	retryAfter           // 429: the server said when
	unauthorized         // 401/403: keep data, back off to the maximum
	tooLarge             // 413: the item will never fit; drop it
	rejected             // other 4xx: the item is bad; drop it
)

type sendErr struct {
	out   outcome
	after time.Duration
	err   error
}

func (e *sendErr) Error() string { return e.err.Error() }

// drain sends spooled items (oldest first), then the memory queue, until
// something fails or all is sent.
func (s *Shipper) drain(ctx context.Context) {
	if sp := s.cfg.Spool; sp != nil {
		sp.Expire(s.cfg.Now())
	}
	for ctx.Err() == nil {
		s.mu.Lock()
		blocked := s.cfg.Now().Before(s.until)
		s.mu.Unlock()
		if blocked {
			return
		}
		if sp := s.cfg.Spool; sp != nil && sp.Pending() {
			// Keep order: new batches queue behind the spooled ones.
			s.spillQueue()
			if !s.drainSpool(ctx, sp) {
				return
			}
			continue
		}
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.mu.Unlock()
			return
		}
		it := s.queue[0]
		s.mu.Unlock()
		err := s.postBatch(ctx, it.key, it.payload)
		if !s.settle(err, "batch "+it.key) {
			if s.cfg.Spool != nil {
				s.spillQueue()
			}
			return
		}
		s.mu.Lock()
		if len(s.queue) > 0 && s.queue[0].key == it.key {
			s.queue = s.queue[1:]
		}
		s.mu.Unlock()
	}
}

// drainSpool returns false when a send failed (and backoff is set).
func (s *Shipper) drainSpool(ctx context.Context, sp *Spool) bool {
	for _, name := range sp.Files() {
		if ctx.Err() != nil {
			return false
		}
		if strings.HasPrefix(name, "bnd-") {
			err := s.postBundleFile(ctx, filepath.Join(sp.Dir, name), EventIDOf(name))
			if !s.settle(err, "bundle "+EventIDOf(name)) {
				return false
			}
			sp.Remove(name)
			continue
		}
		for {
			rec, next, err := sp.NextRecord(name)
			if err == io.EOF {
				if !sp.Active(name) {
					sp.Remove(name)
				}
				break
			}
			if err != nil {
				s.cfg.Logf("gopulse agent: warning: spool segment %s unreadable, dropping it: %v", name, err)
				sp.Remove(name)
				break
			}
			b := &wire.MetricBatch{}
			key := ""
			if proto.Unmarshal(rec, b) == nil {
				key = b.GetBatchId()
			}
			if !s.settle(s.postBatch(ctx, key, rec), "spooled batch "+key) {
				return false
			}
			sp.MarkSent(name, next)
		}
	}
	return true
}

// settle records the outcome of one send. It returns true when the item is
// done with (delivered or dropped) and false when it must be retried later.
func (s *Shipper) settle(err error, what string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		if s.failing {
			s.cfg.Logf("gopulse agent: collector %s reachable again after %d failed attempts", s.cfg.URL, s.failures)
		}
		s.failing, s.failures = false, 0
		if strings.Contains(what, "bundle") {
			s.stats.BundlesSent++
		} else {
			s.stats.BatchesSent++
		}
		return true
	}
	s.stats.Failures++
	s.stats.LastError = err.Error()
	var se *sendErr
	if !errors.As(err, &se) {
		se = &sendErr{out: retry, err: err}
	}
	switch se.out {
	case tooLarge, rejected:
		if strings.Contains(what, "bundle") {
			s.stats.DroppedBundles++
		} else {
			s.stats.DroppedBatches++
		}
		s.cfg.Logf("gopulse agent: warning: collector refused %s, dropping it: %v", what, err)
		return true
	}
	s.failures++
	d := s.backoff()
	switch se.out {
	case retryAfter:
		if se.after > 0 {
			d = se.after
		}
	case unauthorized:
		d = s.cfg.MaxBackoff
	}
	s.until = s.cfg.Now().Add(d)
	if !s.failing || s.failures%10 == 0 {
		s.cfg.Logf("gopulse agent: warning: sending %s to %s failed (attempt %d), retrying in %v; data is kept: %v", what, s.cfg.URL, s.failures, d.Round(time.Millisecond), err)
	}
	s.failing = true
	return false
}

// backoff is exponential with "equal jitter": half fixed, half random, so
// agents that lost the collector together do not retry together.
func (s *Shipper) backoff() time.Duration {
	d := s.cfg.BaseBackoff
	for i := 1; i < s.failures && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	if d > s.cfg.MaxBackoff {
		d = s.cfg.MaxBackoff
	}
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

func (s *Shipper) newRequest(ctx context.Context, path, key, ct string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(s.cfg.URL, "/")+path, body)
	if err != nil {
		return nil, &sendErr{out: rejected, err: fmt.Errorf("build request: %w", err)}
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set(wire.HeaderIdempotencyKey, key)
	req.Header.Set("User-Agent", "gopulse-agent")
	if s.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.cfg.Token)
	}
	return req, nil
}

func (s *Shipper) postBatch(ctx context.Context, key string, payload []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.BatchTimeout)
	defer cancel()
	req, err := s.newRequest(ctx, wire.PathPushMetrics, key, wire.ContentTypeProto, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set(wire.HeaderConnectProtocol, "1")
	return s.do(req, key)
}

func (s *Shipper) postBundleFile(ctx context.Context, path, eventID string) error {
	f, err := os.Open(path)
	if err != nil {
		return &sendErr{out: rejected, err: fmt.Errorf("open spooled bundle: %w", err)}
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.BundleTimeout)
	defer cancel()
	req, err := s.newRequest(ctx, wire.PathPushBundle, eventID, wire.ContentTypeBundle, f)
	if err != nil {
		return err
	}
	if info, err := f.Stat(); err == nil {
		req.ContentLength = info.Size()
	}
	req.Header.Set("Content-Encoding", "gzip")
	return s.do(req, eventID)
}

// do sends req and maps the answer to an outcome. Statuses are mapped here
// and nowhere else.
func (s *Shipper) do(req *http.Request, key string) error {
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return &sendErr{out: retry, err: fmt.Errorf("POST %s: %w", req.URL.Path, err)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusOK:
		ack := &wire.Ack{}
		if err := proto.Unmarshal(body, ack); err != nil || ack.GetIdempotencyKey() != key {
			// The server took the request; a garbled ack must not cause
			// endless resends, so it counts as delivered but is logged.
			s.cfg.Logf("gopulse agent: warning: collector answered %s with an unexpected ack (%q)", key, truncate(body))
		}
		return nil
	case resp.StatusCode == http.StatusTooManyRequests:
		return &sendErr{out: retryAfter, after: retryAfterOf(resp.Header.Get("Retry-After"), s.cfg.Now()), err: fmt.Errorf("collector is rate limiting (429): %s", truncate(body))}
	case resp.StatusCode == http.StatusRequestEntityTooLarge:
		return &sendErr{out: tooLarge, err: fmt.Errorf("collector says %d-byte body is too large (413); raise its request limit", req.ContentLength)}
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return &sendErr{out: unauthorized, err: fmt.Errorf("collector refused the token (%d): check GOPULSE_TOKEN / Options.Token", resp.StatusCode)}
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout:
		return &sendErr{out: retry, err: fmt.Errorf("collector error %d: %s", resp.StatusCode, truncate(body))}
	default:
		return &sendErr{out: rejected, err: fmt.Errorf("collector rejected the request with %d: %s", resp.StatusCode, truncate(body))}
	}
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// retryAfterOf parses Retry-After (seconds or an HTTP date), capped at an
// hour so a bad header cannot silence the agent for days.
func retryAfterOf(v string, now time.Time) time.Duration {
	var d time.Duration
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d < 0 {
		d = 0
	}
	if d > time.Hour {
		d = time.Hour
	}
	return d
}

// SpoolBundle writes a bundle (produce writes the uncompressed stream) into
// the spool, then wakes Run to deliver it.
func (s *Shipper) SpoolBundle(eventID string, produce func(io.Writer) error) error {
	sp := s.cfg.Spool
	if sp == nil {
		return errors.New("no spool")
	}
	f, commit, err := sp.CreateBundle(eventID)
	if err != nil {
		return err
	}
	gz := gzip.NewWriter(f)
	perr := produce(gz)
	if perr == nil {
		perr = gz.Close()
	}
	if err := commit(perr, s.cfg.Now()); err != nil {
		return fmt.Errorf("spool bundle %s: %w", eventID, err)
	}
	s.poke()
	return nil
}

// StreamBundle sends a bundle straight to the collector through an
// io.Pipe and gzip, for when the spool is unusable: one attempt, since the
// evidence cannot be captured twice. The bundle is never whole in memory;
// a failed send makes produce's writes fail so capture stops early.
func (s *Shipper) StreamBundle(ctx context.Context, eventID string, produce func(io.Writer) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.BundleTimeout)
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		gz := gzip.NewWriter(pw)
		err := produce(gz)
		if err == nil {
			err = gz.Close()
		}
		pw.CloseWithError(err)
		done <- err
	}()
	req, err := s.newRequest(ctx, wire.PathPushBundle, eventID, wire.ContentTypeBundle, pr)
	if err == nil {
		req.Header.Set("Content-Encoding", "gzip")
		err = s.do(req, eventID)
	}
	pr.CloseWithError(fmt.Errorf("bundle upload ended: %v", err))
	perr := <-done
	if err == nil && perr != nil {
		err = perr
	}
	if err != nil {
		s.mu.Lock()
		s.stats.DroppedBundles++
		s.stats.Failures++
		s.stats.LastError = err.Error()
		s.mu.Unlock()
		s.cfg.Logf("gopulse agent: warning: bundle %s lost: no spool and the collector did not take it: %v", eventID, err)
		return err
	}
	s.mu.Lock()
	s.stats.BundlesSent++
	s.mu.Unlock()
	return nil
}

// DiscardQueue empties the memory queue (for benchmarks of batch building).
func (s *Shipper) DiscardQueue() {
	s.mu.Lock()
	s.queue = s.queue[:0]
	s.mu.Unlock()
}
