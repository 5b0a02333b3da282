package leakcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Endpoint is a service's net/http/pprof base, e.g. http://127.0.0.1:6060.
type Endpoint struct {
	base   *url.URL
	client *http.Client
}

// NewEndpoint accepts a base URL with or without the /debug/pprof path (and
// with a profile name after it), so users can paste what they have.
func NewEndpoint(raw string, client *http.Client) (*Endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("target %q is neither a file nor an http(s) URL such as http://127.0.0.1:6060", raw)
	}
	if i := strings.Index(u.Path, "/debug/pprof"); i >= 0 {
		u.Path = u.Path[:i]
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	if client == nil {
		client = &http.Client{}
	}
	return &Endpoint{base: u, client: client}, nil
}

// String returns the base URL.
func (e *Endpoint) String() string { return e.base.String() }

// Host returns the host:port of the endpoint.
func (e *Endpoint) Host() string { return e.base.Host }

// URL returns the address of a pprof path, e.g. "goroutine?debug=2".
func (e *Endpoint) URL(path string) string { return e.base.String() + "/debug/pprof/" + path }

// errNotFound marks an endpoint the target does not serve (404), which for
// optional profiles (goroutineleak) is an answer, not a failure.
var errNotFound = errors.New("not served by the target")

// get fetches a pprof path; the caller closes the body. timeout bounds the
// whole request including the body, so a target that stalls mid-body cannot
// hang us.
func (e *Endpoint) get(ctx context.Context, path string, timeout time.Duration) (io.ReadCloser, context.CancelFunc, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	u := e.URL(path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("build request %s: %w", u, err)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		cancel()
		return nil, nil, describeNetError(u, timeout, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		resp.Body.Close()
		cancel()
		if resp.StatusCode == http.StatusNotFound {
			return nil, nil, fmt.Errorf("GET %s: 404: %w", u, errNotFound)
		}
		return nil, nil, fmt.Errorf("GET %s: HTTP %d %s", u, resp.StatusCode, oneLine(string(msg)))
	}
	return &timeoutBody{ReadCloser: resp.Body, u: u, timeout: timeout, ctx: ctx}, cancel, nil
}

// timeoutBody turns a deadline hit while reading into an error that names the
// URL and the limit, instead of a bare "context deadline exceeded".
type timeoutBody struct {
	io.ReadCloser
	u       string
	timeout time.Duration
	ctx     context.Context
}

func (b *timeoutBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = describeNetError(b.u, b.timeout, err)
		if b.ctx.Err() != nil {
			err = fmt.Errorf("%s stopped sending within %s: %w", b.u, b.timeout, b.ctx.Err())
		}
	}
	return n, err
}

func describeNetError(u string, timeout time.Duration, err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return fmt.Errorf("%s did not answer within %s (target hung?): %w", u, timeout, err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot connect to %s: connection refused; is the service running and serving net/http/pprof?", u)
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%s dropped the connection: %w", u, err)
	}
	return fmt.Errorf("GET %s: %w", u, err)
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}
