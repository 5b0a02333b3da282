package collector

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gopulse/gopulse/analyze/goroutine"
	"github.com/gopulse/gopulse/store"
	"github.com/gopulse/gopulse/wire"
)

func ack(w http.ResponseWriter, key string, dup bool) {
	b, _ := proto.Marshal(&wire.Ack{IdempotencyKey: key, Duplicate: dup})
	w.Header().Set("Content-Type", wire.ContentTypeProto)
	w.Write(b)
}

// pushMetrics receives one MetricBatch (Connect unary, protobuf).
func (c *Collector) pushMetrics(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { c.m.ingestSeconds.WithLabelValues("batch").Observe(time.Since(start).Seconds()) }()
	dup, err := c.ingestBatch(w, r)
	if err != nil {
		status, _, _ := statusOf(err)
		c.m.batches.WithLabelValues(strconv.Itoa(status)).Inc()
		writeError(w, err)
		return
	}
	if dup {
		c.m.batches.WithLabelValues("duplicate").Inc()
	} else {
		c.m.batches.WithLabelValues("stored").Inc()
	}
	ack(w, r.Header.Get(wire.HeaderIdempotencyKey), dup)
}

func (c *Collector) ingestBatch(w http.ResponseWriter, r *http.Request) (dup bool, err error) {
	tok, err := c.authenticate(r)
	if err != nil {
		return false, err
	}
	if ct := r.Header.Get("Content-Type"); ct != wire.ContentTypeProto {
		return false, errorf(kindInvalid, "content type %q: a metric batch is sent as %q", trunc(ct), wire.ContentTypeProto)
	}
	if enc := r.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
		return false, errorf(kindInvalid, "content encoding %q is not supported for metric batches", trunc(enc))
	}
	key := r.Header.Get(wire.HeaderIdempotencyKey)
	if key == "" {
		return false, errorf(kindInvalid, "missing %s header (the batch_id)", wire.HeaderIdempotencyKey)
	}
	if r.ContentLength > c.cfg.MaxBatchBytes {
		return false, errorf(kindTooLarge, "batch of %d bytes exceeds the limit of %d bytes", r.ContentLength, c.cfg.MaxBatchBytes)
	}
	// A retry of an already stored batch is decoded again and then found
	// by its key in the same transaction that would store it: one lookup
	// fewer per batch than asking first, and retries are rare.
	buf := getBody(r.ContentLength)
	defer putBody(buf)
	body, err := readBody(buf, http.MaxBytesReader(w, r.Body, c.cfg.MaxBatchBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return false, errorf(kindTooLarge, "batch body exceeds the limit of %d bytes", c.cfg.MaxBatchBytes)
		}
		return false, errorf(kindInvalid, "read batch body: %v", err)
	}
	*buf = body
	now := c.now()
	sl := slabPool.Get().(*slabs)
	defer putSlabs(sl)
	b, err := decodeBatch(body, now, &c.descs, sl)
	if err != nil {
		return false, err
	}
	if b.Key != key {
		return false, errorf(kindInvalid, "%s %q does not match batch_id %q", wire.HeaderIdempotencyKey, trunc(key), trunc(b.Key))
	}
	if err := authorizeService(tok, b.Instance.Service); err != nil {
		return false, err
	}
	if ok, wait := c.batchLim.allow(b.Instance.Service+"\x00"+b.Instance.ID, now); !ok {
		return false, &apiError{kind: kindRateLimited, msg: fmt.Sprintf("instance %s/%s sends batches faster than %.3g/s (burst %d)", b.Instance.Service, b.Instance.ID, c.cfg.BatchRate, c.cfg.BatchBurst), retryAfter: wait}
	}
	res, err := c.st.Append(r.Context(), b)
	if err != nil {
		return false, fmt.Errorf("store batch %s: %w", key, err)
	}
	if !res.Duplicate {
		n := len(b.Samples)
		for _, s := range b.Series {
			n += len(s.T)
		}
		c.m.samples.Add(float64(n - res.Dropped))
	}
	return res.Duplicate, nil
}

// bodyPool recycles batch bodies: at thousands of batches a second, a
// fresh 20 kB buffer grown by io.ReadAll per request is a good part of the
// collector's garbage. Nothing decoded from a body points into it.
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 32<<10); return &b }}

// slabPool recycles the columns of decoded batches; the store keeps no
// reference to them once Append returns.
var slabPool = sync.Pool{New: func() any { return new(slabs) }}

// maxPooledSlab keeps the columns of rare huge batches out of the pool.
const maxPooledSlab = 1 << 20

func putSlabs(s *slabs) {
	if cap(s.t) <= maxPooledSlab && cap(s.v) <= maxPooledSlab && cap(s.c) <= maxPooledSlab {
		slabPool.Put(s)
	}
}

// maxPooledBody keeps rare huge bodies out of the pool.
const maxPooledBody = 256 << 10

func getBody(contentLength int64) *[]byte {
	p := bodyPool.Get().(*[]byte)
	if contentLength > 0 && contentLength <= maxPooledBody && int64(cap(*p)) < contentLength+1 {
		*p = make([]byte, 0, contentLength+1)
	}
	return p
}

func putBody(p *[]byte) {
	if cap(*p) <= maxPooledBody {
		*p = (*p)[:0]
		bodyPool.Put(p)
	}
}

// readBody reads r to its end into buf's storage, growing it as needed.
func readBody(buf *[]byte, r io.Reader) ([]byte, error) {
	b := (*buf)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// pushBundle receives one bundle stream, streaming each file into the store.
func (c *Collector) pushBundle(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { c.m.ingestSeconds.WithLabelValues("bundle").Observe(time.Since(start).Seconds()) }()
	dup, err := c.ingestBundle(w, r)
	if err != nil {
		status, _, _ := statusOf(err)
		c.m.bundles.WithLabelValues(strconv.Itoa(status)).Inc()
		if status >= 500 {
			c.log.Warn("gopulse: bundle refused", "err", err)
		}
		writeError(w, err)
		return
	}
	if dup {
		c.m.bundles.WithLabelValues("duplicate").Inc()
	} else {
		c.m.bundles.WithLabelValues("stored").Inc()
	}
	ack(w, r.Header.Get(wire.HeaderIdempotencyKey), dup)
}

// countingReader counts bytes and fails past a limit, bounding what a
// small gzip body may decompress to.
type countingReader struct {
	r     io.Reader
	n     int64
	limit int64
}

func (cr *countingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	cr.n += int64(n)
	if cr.n > cr.limit {
		return n, errorf(kindTooLarge, "bundle decompresses to more than %d bytes", cr.limit)
	}
	return n, err
}

func (c *Collector) ingestBundle(w http.ResponseWriter, r *http.Request) (dup bool, err error) {
	tok, err := c.authenticate(r)
	if err != nil {
		return false, err
	}
	if ct := r.Header.Get("Content-Type"); ct != wire.ContentTypeBundle {
		return false, errorf(kindInvalid, "content type %q: a bundle is sent as %q", trunc(ct), wire.ContentTypeBundle)
	}
	key := r.Header.Get(wire.HeaderIdempotencyKey)
	if key == "" {
		return false, errorf(kindInvalid, "missing %s header (the bundle's event_id)", wire.HeaderIdempotencyKey)
	}
	if r.ContentLength > c.cfg.MaxBundleBytes {
		return false, errorf(kindTooLarge, "bundle of %d bytes exceeds the limit of %d bytes", r.ContentLength, c.cfg.MaxBundleBytes)
	}
	if seen, err := c.st.Seen(r.Context(), key); err != nil {
		return false, fmt.Errorf("check idempotency key: %w", err)
	} else if seen {
		return true, nil
	}
	now := c.now()
	if ok, wait := c.bundleLim.allow("token\x00"+tok.ID, now); !ok {
		return false, &apiError{kind: kindRateLimited, msg: fmt.Sprintf("token %s sends bundles faster than %.3g/s (burst %d)", tok.ID, c.cfg.BundleRate, c.cfg.BundleBurst), retryAfter: wait}
	}
	var body io.Reader = http.MaxBytesReader(w, r.Body, c.cfg.MaxBundleBytes)
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "", "identity":
	case "gzip":
		gz, err := gzip.NewReader(body)
		if err != nil {
			return false, errorf(kindInvalid, "bundle body is not gzip: %v", err)
		}
		defer gz.Close()
		body = gz
	default:
		return false, errorf(kindInvalid, "content encoding %q is not supported (use gzip or none)", trunc(enc))
	}
	body = &countingReader{r: body, limit: c.cfg.MaxBundleBytes}
	br, err := wire.NewBundleReader(body)
	if err != nil {
		return false, bundleErr(err)
	}
	bw, err := c.st.BeginBundle(r.Context())
	if err != nil {
		return false, fmt.Errorf("begin bundle: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			// Abort with a fresh context: the request's may be gone, and
			// the partial files must not stay behind.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			bw.Abort(ctx)
			cancel()
		}
	}()
	var manifest *wire.BundleManifest
	var total int64
	for manifest == nil {
		f, err := br.Next()
		if err != nil {
			return false, bundleErr(err)
		}
		switch fr := f.Frame.(type) {
		case *wire.BundleFrame_FileStart:
			fs := fr.FileStart
			fi, err := bw.WriteFile(r.Context(), fs.Name, fs.ContentType, &frameReader{br: br})
			if err != nil {
				return false, bundleErr(fmt.Errorf("bundle %s: file %q: %w", key, trunc(fs.Name), err))
			}
			total += fi.Size
		case *wire.BundleFrame_Manifest:
			manifest = fr.Manifest
		default:
			return false, errorf(kindInvalid, "bundle %s: unexpected frame %T between files", key, f.Frame)
		}
	}
	if _, err := br.Next(); err != io.EOF {
		return false, bundleErr(fmt.Errorf("bundle %s: after the manifest: %w", key, err))
	}
	if manifest.EventId != key {
		return false, errorf(kindInvalid, "%s %q does not match the manifest's event_id %q", wire.HeaderIdempotencyKey, trunc(key), trunc(manifest.EventId))
	}
	inst, err := validInstance(manifest.Instance, "bundle "+key)
	if err != nil {
		return false, err
	}
	if err := authorizeService(tok, inst.Service); err != nil {
		return false, err
	}
	b := store.Bundle{
		ID: key, Instance: inst.Key(), Rule: manifest.Rule, Reason: manifest.Reason,
		ReceivedAt: now, Notes: manifest.Notes, CaptureSTWSeconds: manifest.CaptureStwSeconds,
	}
	if manifest.FiredAtUnixNano > 0 {
		b.FiredAt = time.Unix(0, manifest.FiredAtUnixNano).UTC()
	} else {
		b.FiredAt = now
	}
	for _, v := range manifest.Values {
		b.Values = append(b.Values, store.RuleValue{Name: v.Name, Value: v.Value, Threshold: v.Threshold, Unit: v.Unit})
	}
	b.Files = make([]store.BundleFile, 0, len(manifest.Files))
	for _, f := range manifest.Files {
		bf := store.BundleFile{Name: f.Name, ContentType: f.ContentType, Size: int64(f.Size), Note: f.Note}
		copy(bf.SHA256[:], f.Sha256)
		b.Files = append(b.Files, bf)
	}
	if err := c.st.UpsertInstance(r.Context(), inst, now); err != nil {
		return false, fmt.Errorf("bundle %s: record instance: %w", key, err)
	}
	dup, err = bw.Commit(r.Context(), b)
	committed = true
	if err != nil {
		return false, fmt.Errorf("commit bundle %s: %w", key, err)
	}
	if !dup {
		c.m.bundleBytes.Add(float64(total))
		c.snapshotFromBundle(r.Context(), b)
	}
	return dup, nil
}

// bundleErr keeps the kind of err when it has one and makes malformed
// streams (including a client that stopped mid-stream) a 400.
func bundleErr(err error) error {
	var ae *apiError
	var mbe *http.MaxBytesError
	if errors.As(err, &ae) || errors.As(err, &mbe) {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) {
		return &apiError{kind: kindInvalid, msg: "bundle stream cut or corrupt", err: err}
	}
	return err
}

// frameReader presents the chunks of the current file of a bundle stream
// as an io.Reader, ending at its FileEnd frame.
type frameReader struct {
	br   *wire.BundleReader
	cur  []byte
	done bool
}

func (fr *frameReader) Read(p []byte) (int, error) {
	for len(fr.cur) == 0 {
		if fr.done {
			return 0, io.EOF
		}
		f, err := fr.br.Next()
		if err != nil {
			if err == io.EOF {
				err = fmt.Errorf("%w: stream ended inside a file", wire.ErrBadBundle)
			}
			return 0, err
		}
		switch x := f.Frame.(type) {
		case *wire.BundleFrame_Chunk:
			fr.cur = x.Chunk
		case *wire.BundleFrame_FileEnd:
			fr.done = true
		default:
			return 0, fmt.Errorf("%w: unexpected frame %T inside a file", wire.ErrBadBundle, f.Frame)
		}
	}
	n := copy(p, fr.cur)
	fr.cur = fr.cur[n:]
	return n, nil
}

// snapshotFromBundle records the goroutine groups of a bundle's goroutine
// profile, so the leak analysis sees bundles and scrapes alike, with the
// runtime's own verdicts when the bundle carries its goroutine leak
// profile. Failures are logged: the bundle itself is stored.
func (c *Collector) snapshotFromBundle(ctx context.Context, b store.Bundle) {
	var hasProfile, hasLeaks bool
	for _, f := range b.Files {
		hasProfile = hasProfile || f.Name == "goroutine.pb.gz"
		hasLeaks = hasLeaks || f.Name == "goroutineleak.pb.gz"
	}
	if !hasProfile {
		return
	}
	var snap *goroutine.Snapshot
	err := c.readBundleFile(ctx, b, "goroutine.pb.gz", func(r io.Reader) (err error) {
		snap, err = goroutine.Parse(r, goroutine.Options{Time: b.FiredAt, MaxBytes: maxDumpBytes})
		return err
	})
	if err != nil {
		c.log.Warn("gopulse: bundle goroutine profile", "bundle", b.ID, "err", err)
		return
	}
	ss := toStoreSnapshot(b.Instance, snap, "bundle:"+b.ID)
	if hasLeaks {
		// Without its verdicts the snapshot still counts: the analyzer
		// falls back to growth and persistence.
		err := c.readBundleFile(ctx, b, "goroutineleak.pb.gz", func(r io.Reader) error { return markLeaked(&ss, r) })
		if err != nil {
			c.log.Warn("gopulse: bundle goroutine leak profile", "bundle", b.ID, "err", err)
		}
	}
	if err := c.st.PutGoroutineSnapshot(ctx, ss); err != nil {
		c.log.Warn("gopulse: store bundle goroutine snapshot", "bundle", b.ID, "err", err)
	}
}

// readBundleFile hands one stored file of a bundle to fn.
func (c *Collector) readBundleFile(ctx context.Context, b store.Bundle, name string, fn func(io.Reader) error) error {
	rc, _, err := c.st.OpenBundleFile(ctx, b.ID, name)
	if err != nil {
		return fmt.Errorf("open %s: %w", name, err)
	}
	defer rc.Close()
	if err := fn(rc); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
