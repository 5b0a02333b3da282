package loadramp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Engine selects the HTTP client the generator uses.
type Engine string

const (
	// EngineRaw is a minimal HTTP/1.1 client over net.Conn: one pre-built
	// request written with a single Write, responses parsed in place from a
	// bufio.Reader without allocating. It is the default because it costs
	// about half the CPU per request of net/http (see bench/loadgen).
	EngineRaw Engine = "raw"
	// EngineNetHTTP uses a tuned net/http Transport (one idle keep-alive
	// connection per worker, no compression, redirects not followed).
	EngineNetHTTP Engine = "nethttp"
)

// Target is what the generator sends.
type Target struct {
	URL    string
	Method string      // default GET
	Header http.Header // extra request headers
	Body   []byte
	// Mix, if set, replaces Method, Header and Body: successive requests
	// take its entries in turn. Every entry's URL must have URL's scheme
	// and host:port, since all share one connection pool; an empty entry
	// URL means URL. ParseTargets reads a mix from a targets file.
	Mix []Request
	// Timeout bounds one request, connect included. Default 10 s.
	Timeout time.Duration
	// InsecureSkipVerify disables TLS certificate checks.
	InsecureSkipVerify bool
	Engine             Engine // default EngineRaw
}

// Request is one entry of Target.Mix.
type Request struct {
	Method string      // default GET
	URL    string      // default Target.URL
	Header http.Header // extra request headers
	Body   []byte
}

// preparedTarget holds what every request reuses.
type preparedTarget struct {
	u       *url.URL
	addr    string // host:port to dial
	tls     *tls.Config
	reqs    []preparedReq // one, or Target.Mix in order
	next    atomic.Uint64 // round robin over reqs
	timeout time.Duration
	t       Target
}

// preparedReq is one request ready to send.
type preparedReq struct {
	method string
	u      *url.URL
	head   bool
	raw    []byte // the whole HTTP/1.1 request, for EngineRaw
	header http.Header
	body   []byte
}

// pick returns the request to send next.
func (p *preparedTarget) pick() *preparedReq {
	if len(p.reqs) == 1 {
		return &p.reqs[0]
	}
	return &p.reqs[(p.next.Add(1)-1)%uint64(len(p.reqs))]
}

func parseTargetURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("target URL %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("target URL %q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("target URL %q: no host", raw)
	}
	return u, nil
}

func prepare(t Target) (*preparedTarget, error) {
	u, err := parseTargetURL(t.URL)
	if err != nil {
		return nil, err
	}
	p := &preparedTarget{u: u, t: t, timeout: t.Timeout}
	if p.timeout <= 0 {
		p.timeout = 10 * time.Second
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	p.addr = net.JoinHostPort(u.Hostname(), port)
	if u.Scheme == "https" {
		p.tls = &tls.Config{ServerName: u.Hostname(), InsecureSkipVerify: t.InsecureSkipVerify, NextProtos: []string{"http/1.1"}}
	}
	if len(t.Mix) == 0 {
		r, err := buildRequest(t.Method, u, t.Header, t.Body)
		if err != nil {
			return nil, err
		}
		p.reqs = []preparedReq{r}
		return p, nil
	}
	for i, m := range t.Mix {
		mu := u
		if m.URL != "" {
			if mu, err = parseTargetURL(m.URL); err != nil {
				return nil, fmt.Errorf("request %d of the mix: %w", i+1, err)
			}
			if mu.Scheme != u.Scheme || mu.Host != u.Host {
				return nil, fmt.Errorf("request %d of the mix: %s is not on %s://%s; every request of a mix goes to one origin", i+1, m.URL, u.Scheme, u.Host)
			}
		}
		r, err := buildRequest(m.Method, mu, m.Header, m.Body)
		if err != nil {
			return nil, fmt.Errorf("request %d of the mix: %w", i+1, err)
		}
		p.reqs = append(p.reqs, r)
	}
	return p, nil
}

// buildRequest renders one HTTP/1.1 request.
func buildRequest(method string, u *url.URL, h http.Header, body []byte) (preparedReq, error) {
	r := preparedReq{method: strings.ToUpper(method), u: u, header: h, body: body}
	if r.method == "" {
		r.method = http.MethodGet
	}
	if strings.ContainsAny(r.method, " \t\r\n") {
		return preparedReq{}, fmt.Errorf("method %q: contains white space", r.method)
	}
	r.head = r.method == http.MethodHead
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", r.method, u.RequestURI(), u.Host)
	if h.Get("User-Agent") == "" {
		b.WriteString("User-Agent: gopulse-ramp\r\n")
	}
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.EqualFold(k, "Host") || strings.EqualFold(k, "Content-Length") {
			continue
		}
		for _, v := range h[k] {
			if strings.ContainsAny(k+v, "\r\n") {
				return preparedReq{}, fmt.Errorf("header %q: contains a line break", k)
			}
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	if len(body) > 0 || r.method == http.MethodPost || r.method == http.MethodPut || r.method == http.MethodPatch {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.Write(body)
	r.raw = b.Bytes()
	return r, nil
}

// client sends one request at a time over (at most) one connection. do
// and close belong to the worker that owns the client; abort may be called
// from another goroutine to unblock a do in progress.
type client interface {
	do(ctx context.Context) (status int, err error)
	close()
	abort()
}

// rawClient is the EngineRaw client: HTTP/1.1 keep-alive, no pipelining.
type rawClient struct {
	mu       sync.Mutex // guards writes of c against abort's read
	p        *preparedTarget
	dialer   net.Dialer
	c        net.Conn
	br       *bufio.Reader
	used     bool // the connection already carried a response
	deadline time.Time
	dials    int
}

func newRawClient(p *preparedTarget) *rawClient {
	return &rawClient{p: p, dialer: net.Dialer{Timeout: p.timeout, KeepAlive: -1}}
}

func (rc *rawClient) close() {
	if rc.c != nil {
		rc.c.Close()
		rc.mu.Lock()
		rc.c = nil
		rc.mu.Unlock()
	}
}

func (rc *rawClient) abort() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.c != nil {
		rc.c.Close() // the worker's read fails; the worker clears the field
	}
}

func (rc *rawClient) dial(ctx context.Context) error {
	c, err := rc.dialer.DialContext(ctx, "tcp", rc.p.addr)
	if err != nil {
		return &opError{kind: classifyDial(err), err: err}
	}
	rc.dials++
	if rc.p.tls != nil {
		tc := tls.Client(c, rc.p.tls)
		tc.SetDeadline(time.Now().Add(rc.p.timeout))
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return &opError{kind: ErrTLS, err: err}
		}
		c = tc
	}
	rc.mu.Lock()
	rc.c = c
	rc.mu.Unlock()
	rc.used = false
	rc.deadline = time.Time{}
	if rc.br == nil {
		rc.br = bufio.NewReaderSize(c, 16<<10)
	} else {
		rc.br.Reset(c)
	}
	return nil
}

func (rc *rawClient) do(ctx context.Context) (int, error) {
	req := rc.p.pick()
	for attempt := 0; ; attempt++ {
		if rc.c == nil {
			if err := rc.dial(ctx); err != nil {
				return 0, err
			}
		}
		reused := rc.used
		status, gotBytes, err := rc.roundTrip(req)
		if err == nil {
			return status, nil
		}
		rc.close()
		// A keep-alive connection the server closed while idle fails
		// before any response byte: resend once on a fresh connection,
		// as net/http does, rather than count the server's idle timeout.
		if reused && !gotBytes && attempt == 0 && ctx.Err() == nil {
			continue
		}
		return 0, err
	}
}

func (rc *rawClient) roundTrip(req *preparedReq) (status int, gotBytes bool, err error) {
	c := rc.c
	// Refresh the deadline only when less than 90% of the timeout is
	// left: a request is then bounded by 0.9–1× Timeout, and a busy
	// connection re-arms its timer about once per Timeout/10 instead of
	// on every request.
	if now := time.Now(); rc.deadline.Sub(now) < rc.p.timeout*9/10 {
		rc.deadline = now.Add(rc.p.timeout)
		c.SetDeadline(rc.deadline)
	}
	if _, err := c.Write(req.raw); err != nil {
		return 0, false, &opError{kind: classifyIO(err), err: err}
	}
	br := rc.br
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, len(line) > 0, &opError{kind: classifyIO(err), err: err}
	}
	rc.used = true
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, true, &opError{kind: ErrProtocol, err: fmt.Errorf("bad status line %q", trunc(line))}
	}
	status, ok := atoi3(line[9:12])
	if !ok || status < 100 {
		return 0, true, &opError{kind: ErrProtocol, err: fmt.Errorf("bad status code in %q", trunc(line))}
	}
	http10 := line[7] == '0'
	clen := int64(-1)
	chunked, closeConn := false, http10
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return 0, true, &opError{kind: classifyIO(err), err: fmt.Errorf("read response headers: %w", err)}
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		colon := bytes.IndexByte(h, ':')
		if colon <= 0 {
			return 0, true, &opError{kind: ErrProtocol, err: fmt.Errorf("bad header line %q", trunc(h))}
		}
		name, val := h[:colon], bytes.TrimSpace(h[colon+1:])
		switch {
		case asciiEqualFold(name, "content-length"):
			n, err := strconv.ParseInt(string(val), 10, 64)
			if err != nil || n < 0 {
				return 0, true, &opError{kind: ErrProtocol, err: fmt.Errorf("bad Content-Length %q", trunc(val))}
			}
			clen = n
		case asciiEqualFold(name, "transfer-encoding"):
			chunked = bytes.Contains(bytes.ToLower(val), []byte("chunked"))
		case asciiEqualFold(name, "connection"):
			if asciiEqualFold(val, "close") {
				closeConn = true
			} else if asciiEqualFold(val, "keep-alive") {
				closeConn = false
			}
		}
	}
	noBody := req.head || status == 204 || status == 304 || status/100 == 1
	switch {
	case noBody:
	case chunked:
		if err := discardChunked(br); err != nil {
			return 0, true, err
		}
	case clen >= 0:
		if _, err := br.Discard(int(clen)); err != nil {
			return 0, true, &opError{kind: classifyIO(err), err: fmt.Errorf("read body: %w", err)}
		}
	default:
		// No length: the body runs to EOF, and the connection is done.
		if _, err := io.Copy(io.Discard, br); err != nil {
			return 0, true, &opError{kind: classifyIO(err), err: fmt.Errorf("read body: %w", err)}
		}
		closeConn = true
	}
	if status/100 == 1 {
		return 0, true, &opError{kind: ErrProtocol, err: fmt.Errorf("unexpected informational status %d", status)}
	}
	if closeConn {
		rc.close()
	}
	return status, true, nil
}

func discardChunked(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return &opError{kind: classifyIO(err), err: fmt.Errorf("read chunk size: %w", err)}
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil || n < 0 {
			return &opError{kind: ErrProtocol, err: fmt.Errorf("bad chunk size %q", trunc(line))}
		}
		if n == 0 {
			for { // trailers until the empty line
				t, err := br.ReadSlice('\n')
				if err != nil {
					return &opError{kind: classifyIO(err), err: fmt.Errorf("read trailer: %w", err)}
				}
				if len(bytes.TrimRight(t, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if _, err := br.Discard(int(n) + 2); err != nil {
			return &opError{kind: classifyIO(err), err: fmt.Errorf("read chunk: %w", err)}
		}
	}
}

func atoi3(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func trunc(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "…"
	}
	return string(b)
}

// netHTTPClient is the EngineNetHTTP client. All workers share one
// Transport; each worker has at most one request in flight, so the
// Transport keeps one idle connection per worker.
type netHTTPClient struct {
	p  *preparedTarget
	hc *http.Client
}

func newNetHTTPTransport(p *preparedTarget, maxConns int) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: p.timeout, KeepAlive: -1}).DialContext,
		TLSClientConfig:     p.tls,
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		MaxConnsPerHost:     maxConns,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       p.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (c *netHTTPClient) do(ctx context.Context) (int, error) {
	r := c.p.pick()
	var body io.Reader
	if len(r.body) > 0 {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.u.String(), body)
	if err != nil {
		return 0, &opError{kind: ErrProtocol, err: err}
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "gopulse-ramp")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, &opError{kind: classifyAny(err), err: err}
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, &opError{kind: classifyIO(err), err: err}
	}
	return resp.StatusCode, nil
}

func (c *netHTTPClient) close() {}

// abort is not needed: the request's context cancels it.
func (c *netHTTPClient) abort() {}
