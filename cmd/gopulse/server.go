package main

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gopulse/gopulse/agent"
	"github.com/gopulse/gopulse/collector"
	"github.com/gopulse/gopulse/store"
	"github.com/gopulse/gopulse/store/sqlite"
)

const serverUsage = `usage: gopulse server [flags]

Runs the collector: ingests from agents, scrapes net/http/pprof services
(--scrape, --scrape-config), analyzes, and serves the JSON API
(docs/API.md), /metrics and /healthz. Data lives in an embedded SQLite
database under --data.

A --scrape-config file lists one target per line, "NAME URL" with optional
per-target intervals ("api http://10.0.0.5:6060 goroutine=30s heap=10m
vars=5s timeout=3s"); # starts a comment. It is read once at start.

Ingest needs a token: gopulse token create --service NAME --data DIR.
On a non-loopback address the API needs --api-token or --basic-auth
(or --insecure to serve it open).

flags:
`

// scrapeFlags collects repeated --scrape NAME=URL.
type scrapeFlags []collector.Target

func (s *scrapeFlags) String() string { return fmt.Sprint(*s) }
func (s *scrapeFlags) Set(v string) error {
	name, u, ok := strings.Cut(v, "=")
	if !ok || name == "" || u == "" {
		return fmt.Errorf("want NAME=http://host:port, got %q", v)
	}
	*s = append(*s, collector.Target{Name: name, URL: u})
	return nil
}

type serverFlags struct {
	listen, data          string
	scrape                scrapeFlags
	scrapeConfig          string
	iv                    collector.Intervals
	analyze               time.Duration
	tlsCert, tlsKey       string
	insecure              bool
	apiToken, basicAuth   string
	noSelf                bool
	selfBatch, selfSample time.Duration
	maxBatch, maxBundle   int64
	bundleCap             int64
	synchronous           string
	batchRate             float64
	demo                  bool
}

func parseServerFlags(args []string, stderr io.Writer) (*serverFlags, error) {
	f := &serverFlags{}
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, serverUsage); fs.PrintDefaults() }
	fs.StringVar(&f.listen, "listen", "127.0.0.1:7070", "address to serve on")
	fs.StringVar(&f.data, "data", "./gopulse-data", "data directory (created if missing)")
	fs.Var(&f.scrape, "scrape", "scrape a net/http/pprof service: NAME=http://host:port (repeatable)")
	fs.StringVar(&f.scrapeConfig, "scrape-config", "", "file of scrape targets, one \"NAME URL [goroutine=D] [heap=D] [vars=D] [timeout=D]\" per line (read once at start)")
	fs.DurationVar(&f.iv.Goroutine, "scrape-goroutine-interval", time.Minute, "goroutine profile scrape interval")
	fs.DurationVar(&f.iv.Heap, "scrape-heap-interval", 5*time.Minute, "heap profile scrape interval")
	fs.DurationVar(&f.iv.Vars, "scrape-vars-interval", 10*time.Second, "/debug/vars memstats scrape interval")
	fs.DurationVar(&f.iv.Timeout, "scrape-timeout", 20*time.Second, "timeout of one scrape request")
	fs.IntVar(&f.iv.LeakProfileMax, "scrape-leak-profile-max", 20000, "request /debug/pprof/goroutineleak only below this many goroutines (-1: never)")
	fs.DurationVar(&f.analyze, "analyze-interval", 30*time.Second, "how often the leak and GC analyses run")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM; needs --tls-key)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "private key (PEM) for --tls-cert")
	fs.BoolVar(&f.insecure, "insecure", false, "allow a non-loopback --listen without API authentication")
	fs.StringVar(&f.apiToken, "api-token", os.Getenv("GOPULSE_API_TOKEN"), "bearer token required by the read API (default $GOPULSE_API_TOKEN)")
	fs.StringVar(&f.basicAuth, "basic-auth", os.Getenv("GOPULSE_BASIC_AUTH"), "USER:PASSWORD required by the read API (default $GOPULSE_BASIC_AUTH)")
	fs.BoolVar(&f.noSelf, "no-self-monitoring", false, "do not run the agent on the server itself")
	fs.DurationVar(&f.selfBatch, "self-batch-interval", 10*time.Second, "batch interval of the self-monitoring agent")
	fs.DurationVar(&f.selfSample, "self-sample-interval", time.Second, "sample interval of the self-monitoring agent")
	fs.Int64Var(&f.maxBatch, "max-batch-bytes", 4<<20, "largest metric batch accepted")
	fs.Int64Var(&f.maxBundle, "max-bundle-bytes", 512<<20, "largest evidence bundle accepted")
	fs.Int64Var(&f.bundleCap, "bundle-cap-bytes", 10<<30, "total size of stored bundles; the oldest are evicted past it")
	fs.StringVar(&f.synchronous, "sync", "FULL", "SQLite synchronous mode: FULL (survives power loss) or NORMAL (survives a crash)")
	fs.Float64Var(&f.batchRate, "batch-rate", 2, "metric batches per second allowed per agent instance")
	fs.BoolVar(&f.demo, "demo", false, "also start the leaky and the healthy demo services and scrape them (goroutines every 10 s)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err.Error()}
	}
	if len(pos) > 0 {
		return nil, usageError{fmt.Sprintf("server takes no arguments, got %q", pos)}
	}
	if f.demo && !flagSet(fs, "scrape-goroutine-interval") {
		// The demo leaks fast; a leak finding needs three snapshots.
		f.iv.Goroutine = 10 * time.Second
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return nil, usageError{"--tls-cert and --tls-key go together"}
	}
	if f.basicAuth != "" && !strings.Contains(f.basicAuth, ":") {
		return nil, usageError{"--basic-auth wants USER:PASSWORD"}
	}
	host, _, err := net.SplitHostPort(f.listen)
	if err != nil {
		return nil, usageError{fmt.Sprintf("--listen %q: want HOST:PORT such as 127.0.0.1:7070", f.listen)}
	}
	if !isLoopback(host) && f.apiToken == "" && f.basicAuth == "" && !f.insecure {
		return nil, usageError{fmt.Sprintf("--listen %s is reachable from other machines, and the API would serve your services' data to anyone: set --api-token or --basic-auth (or GOPULSE_API_TOKEN / GOPULSE_BASIC_AUTH), or pass --insecure if the network is trusted", f.listen)}
	}
	return f, nil
}

// readScrapeConfig reads the --scrape-config file.
func readScrapeConfig(path string) ([]collector.Target, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--scrape-config: %w", err)
	}
	defer file.Close()
	ts, err := collector.ParseScrapeConfig(file)
	if err != nil {
		return nil, fmt.Errorf("--scrape-config %s: %w", path, err)
	}
	return ts, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// readAuth returns the read-API guard for the flags, nil when open.
func (f *serverFlags) readAuth() func(*http.Request) error {
	if f.apiToken == "" && f.basicAuth == "" {
		return nil
	}
	return func(r *http.Request) error {
		if f.apiToken != "" {
			if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") &&
				subtle.ConstantTimeCompare([]byte(strings.TrimSpace(h[7:])), []byte(f.apiToken)) == 1 {
				return nil
			}
		}
		if f.basicAuth != "" {
			if u, p, ok := r.BasicAuth(); ok && subtle.ConstantTimeCompare([]byte(u+":"+p), []byte(f.basicAuth)) == 1 {
				return nil
			}
		}
		return errAPIAuth
	}
}

var errAPIAuth = fmt.Errorf("%w: send the --api-token as \"Authorization: Bearer TOKEN\" or use basic auth", collector.ErrUnauthenticated)

// runServer is `gopulse server`.
func runServer(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	f, err := parseServerFlags(args, stderr)
	if err != nil {
		return err
	}
	if f.scrapeConfig != "" {
		ts, err := readScrapeConfig(f.scrapeConfig)
		if err != nil {
			return err
		}
		f.scrape = append(f.scrape, ts...)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := os.MkdirAll(f.data, 0o700); err != nil {
		return fmt.Errorf("create data directory %s: %w", f.data, err)
	}
	st, err := sqlite.Open(ctx, f.data, sqlite.Options{Synchronous: f.synchronous,
		Retention: store.Retention{BundleBytes: f.bundleCap}})
	if err != nil {
		return fmt.Errorf("open store in %s: %w", f.data, err)
	}
	defer st.Close()

	if f.demo {
		for _, v := range []string{"leaky", "healthy"} {
			url, stop, err := startDemo(ctx, v, stderr)
			if err != nil {
				return err
			}
			defer stop()
			f.scrape = append(f.scrape, collector.Target{Name: "demo-" + v, URL: strings.TrimSuffix(url, "/debug/pprof/")})
		}
	}

	c, err := collector.New(collector.Config{
		Store: st, Logger: log, Scrape: f.scrape, Intervals: f.iv, AnalyzeInterval: f.analyze,
		MaxBatchBytes: f.maxBatch, MaxBundleBytes: f.maxBundle, BatchRate: f.batchRate, ReadAuth: f.readAuth(),
	})
	if err != nil {
		return usageError{err.Error()}
	}

	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (pick another with --listen)", f.listen, err)
	}
	srv := &http.Server{Handler: c.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	scheme := "http"
	if f.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("load --tls-cert/--tls-key: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
		scheme = "https"
	}
	addr := ln.Addr().String()

	var wg sync.WaitGroup
	serveErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
		}
	}()
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.Run(runCtx)
	}()

	var self *agent.Agent
	if !f.noSelf {
		self, err = startSelf(ctx, st, f, scheme, addr, log)
		if err != nil {
			log.Warn("gopulse: self-monitoring disabled", "err", err)
		}
	}
	c.SetReady()
	fmt.Fprintf(stdout, "gopulse server listening on %s://%s (data %s)\nopen %s://%s/ in a browser\n", scheme, addr, f.data, scheme, addr)

	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	// Stop the agent first, while the server still takes its last batch.
	if self != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		self.Stop(sctx)
		cancel()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if serr := srv.Shutdown(sctx); serr != nil {
		srv.Close()
	}
	cancel()
	stopRun()
	wg.Wait()
	if cerr := st.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close store: %w", cerr)
	}
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	return nil
}

// selfService is the service name the server files itself under.
const selfService = "gopulse"

// startSelf runs the agent in-process against the server's own address,
// with a token created for it (earlier self tokens are revoked), and
// records the instance at once so a fresh server lists itself before the
// first batch arrives.
func startSelf(ctx context.Context, st store.Store, f *serverFlags, scheme, addr string, log *slog.Logger) (*agent.Agent, error) {
	now := time.Now()
	old, err := st.ListTokens(ctx, selfService)
	if err != nil {
		return nil, err
	}
	for _, t := range old {
		if strings.HasPrefix(t.ID, "self-") && t.RevokedAt.IsZero() {
			st.RevokeToken(ctx, t.ID, now)
		}
	}
	secret, err := collector.NewTokenSecret()
	if err != nil {
		return nil, err
	}
	id := fmt.Sprintf("self-%d-%d", now.UnixNano(), os.Getpid())
	if err := st.CreateToken(ctx, store.Token{ID: id, Service: selfService, Note: "self-monitoring, created by gopulse server", CreatedAt: now},
		store.HashToken(secret)); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	instID := fmt.Sprintf("%s-%d-%x", host, os.Getpid(), now.UnixNano()&0xffffff)
	if err := st.UpsertInstance(ctx, store.Instance{Service: selfService, ID: instID, Host: host, PID: int64(os.Getpid()),
		Source: store.SourceAgent, StartTime: now}, now); err != nil {
		return nil, err
	}
	h, port, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
		h = "127.0.0.1"
	}
	opts := agent.Options{
		Service: selfService, Collector: scheme + "://" + net.JoinHostPort(h, port), Token: secret, InstanceID: instID,
		SampleInterval: f.selfSample, BatchInterval: f.selfBatch, SpoolDir: filepath.Join(f.data, "self-spool"),
		Logger: log, RetryBase: 500 * time.Millisecond, RetryMax: 30 * time.Second,
	}
	if scheme == "https" {
		// The agent talks to this very process; its certificate may be
		// self-signed or name another host, so verification proves nothing.
		opts.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	}
	return agent.Start(ctx, opts)
}
