package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gopulse/gopulse/store"
	"github.com/gopulse/gopulse/store/sqlite"
	"github.com/gopulse/gopulse/wire"
)

// Until main.go's switch names "server" and "token", the end-to-end tests
// run them through the test binary itself: this init turns a child started
// with GOPULSE_TEST_CHILD=1 into the command, before TestMain.
func init() {
	if os.Getenv("GOPULSE_TEST_CHILD") != "1" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	args := os.Args[1:]
	var err error
	switch {
	case len(args) > 0 && args[0] == "server":
		err = runServer(ctx, args[1:], os.Stdin, os.Stdout, os.Stderr)
	case len(args) > 0 && args[0] == "token":
		err = runToken(ctx, args[1:], os.Stdin, os.Stdout, os.Stderr)
	default:
		err = run(ctx, args, os.Stdin, os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(exitStatus(err, os.Stderr))
}

var (
	serverBinOnce sync.Once
	serverBin     string
	serverEnv     []string
)

// gopulseCmd returns a command running `gopulse args...`: the built
// binary when it knows the server command, else the test binary as child.
func gopulseCmd(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	serverBinOnce.Do(func() {
		out, _ := exec.Command(binary, "server", "-h").CombinedOutput()
		if strings.Contains(string(out), "--listen") || strings.Contains(string(out), "-listen") {
			serverBin = binary
			return
		}
		serverBin, serverEnv = os.Args[0], []string{"GOPULSE_TEST_CHILD=1"}
	})
	cmd := exec.Command(serverBin, args...)
	cmd.Env = append(os.Environ(), serverEnv...)
	return cmd
}

type server struct {
	cmd    *exec.Cmd
	url    string
	data   string
	stderr *bytes.Buffer
	mu     *sync.Mutex
	done   chan struct{}
}

type lockedBuf struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// startServer starts `gopulse server` on 127.0.0.1:0 with data in dir and
// waits for /healthz.
func startServer(t *testing.T, dir string, args ...string) *server {
	t.Helper()
	s := &server{data: dir, stderr: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	s.cmd = gopulseCmd(t, append([]string{"server", "--listen", "127.0.0.1:0", "--data", dir}, args...)...)
	s.cmd.Stderr = lockedBuf{s.mu, s.stderr}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on ") {
				select {
				case lines <- sc.Text():
				default:
				}
			}
		}
		io.Copy(io.Discard, out)
	}()
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() { s.stop(t) })
	select {
	case l := <-lines:
		s.url = regexp.MustCompile(`https?://\S+`).FindString(l)
	case <-s.done:
		t.Fatalf("server exited: %s", s.logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not start: %s", s.logs())
	}
	waitFor(t, 10*time.Second, "healthz", func() bool {
		resp, err := http.Get(s.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return s
}

func (s *server) logs() string { s.mu.Lock(); defer s.mu.Unlock(); return s.stderr.String() }

func (s *server) stop(t *testing.T) {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		t.Errorf("server did not stop within 20 s of SIGTERM")
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func apiGet(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 && v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v: %s", url, err, b)
		}
	}
	return resp.StatusCode
}

type apiInstances struct {
	Instances []struct {
		Service, ID, Source string
	}
}

func TestServerShowsItself(t *testing.T) {
	s := startServer(t, t.TempDir(), "--self-batch-interval", "1s")
	var insts apiInstances
	apiGet(t, s.url+"/api/v1/instances", &insts)
	if len(insts.Instances) != 1 || insts.Instances[0].Service != "gopulse" || insts.Instances[0].ID == "" {
		t.Fatalf("fresh server lists %+v, want itself", insts)
	}
	id := insts.Instances[0].ID
	// The in-process agent's batches arrive through the real ingest path.
	waitFor(t, 20*time.Second, "the server's own metrics", func() bool {
		var v struct{ Points []struct{ Value float64 } }
		apiGet(t, s.url+"/api/v1/instances/gopulse/"+id+"/series?name=/sched/goroutines:goroutines&start=5m", &v)
		return len(v.Points) > 0 && v.Points[0].Value > 0
	})
	resp, err := http.Get(s.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `gopulse_ingest_batches_total{result="stored"}`) || !strings.Contains(string(body), "go_goroutines") {
		t.Errorf("/metrics lacks the ingest counter or Go metrics:\n%.2000s", body)
	}
}

// buildExample builds examples/pprofonly once.
var pprofOnly = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "pprofonly")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "pprofonly")
	out, err := exec.Command("go", "build", "-o", bin, "../../examples/pprofonly").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, out)
	}
	return bin, nil
})

// startTarget starts a process that prints "pprof http://ADDR/debug/pprof/"
// and returns ADDR's base URL.
func startTarget(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { <-done }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		close(done)
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := regexp.MustCompile(`pprof (http://[^/\s]+)`).FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, out)
	}()
	select {
	case u := <-found:
		return u
	case <-time.After(30 * time.Second):
		t.Fatal("target did not print its pprof address")
	}
	return ""
}

func TestServerScrapesPprofOnly(t *testing.T) {
	bin, err := pprofOnly()
	if err != nil {
		t.Fatal(err)
	}
	target := startTarget(t, exec.Command(bin, "--listen", "127.0.0.1:0"))
	// The target comes from a scrape config file whose own intervals
	// replace the defaults (1 min, 10 s, 5 min), which the wait below
	// would not see in 30 s.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "scrape.conf")
	if err := os.WriteFile(cfg, []byte("# agentless services\nplain "+target+"/debug/pprof/ goroutine=1s vars=1s heap=1s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, filepath.Join(dir, "data"), "--no-self-monitoring", "--scrape-config", cfg)
	host := strings.TrimPrefix(target, "http://")
	waitFor(t, 30*time.Second, "scraped memstats, GC cycles and a heap profile", func() bool {
		var ms struct{ Points []struct{ Value float64 } }
		apiGet(t, s.url+"/api/v1/instances/plain/"+host+"/series?name=/memstats/heap-alloc:bytes&start=5m", &ms)
		var gc struct{ Cycles []struct{ Cycle uint32 } }
		apiGet(t, s.url+"/api/v1/instances/plain/"+host+"/gc?start=1h", &gc)
		var bs struct{ Bundles []struct{ ID, Rule string } }
		apiGet(t, s.url+"/api/v1/bundles?service=plain&instance="+host, &bs)
		heap := false
		for _, b := range bs.Bundles {
			heap = heap || strings.HasPrefix(b.ID, "scrape-heap-")
		}
		return len(ms.Points) >= 2 && len(gc.Cycles) > 0 && heap
	})
	var insts apiInstances
	apiGet(t, s.url+"/api/v1/instances?service=plain", &insts)
	if len(insts.Instances) != 1 || insts.Instances[0].Source != "scraped" {
		t.Fatalf("instances %+v, want one scraped", insts)
	}
	var snaps struct{ Snapshots []struct{ Goroutines int } }
	apiGet(t, s.url+"/api/v1/instances/plain/"+host+"/goroutines", &snaps)
	if len(snaps.Snapshots) == 0 || snaps.Snapshots[0].Goroutines < 2 {
		t.Errorf("goroutine snapshots %+v", snaps)
	}
	// The stored heap profile opens in go tool pprof straight from the API.
	var bs struct{ Bundles []struct{ ID string } }
	apiGet(t, s.url+"/api/v1/bundles?service=plain&instance="+host, &bs)
	var heapID string
	for _, b := range bs.Bundles {
		if strings.HasPrefix(b.ID, "scrape-heap-") {
			heapID = b.ID
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", s.url+"/api/v1/bundles/"+heapID+"/heap").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "flat%") {
		t.Errorf("go tool pprof: %v\n%s", err, out)
	}
}

func TestServerFindsDemoLeak(t *testing.T) {
	demo := startTarget(t, gopulseCmd(t, "demo", "leaky", "--listen", "127.0.0.1:0"))
	s := startServer(t, t.TempDir(), "--no-self-monitoring", "--scrape", "checkout="+demo,
		"--scrape-goroutine-interval", "1s", "--scrape-vars-interval", "2s", "--analyze-interval", "1s")
	type finding struct {
		ID                 int64
		Kind, State, Title string
		BundleIDs          []string `json:"bundle_ids"`
	}
	var got []finding
	waitFor(t, 90*time.Second, "a goroutine-leak finding", func() bool {
		var v struct{ Findings []finding }
		apiGet(t, s.url+"/api/v1/findings?kind=goroutine-leak&state=open", &v)
		got = v.Findings
		return len(got) > 0
	})
	t.Logf("findings: %+v", got)
	if len(got[0].BundleIDs) == 0 {
		t.Errorf("leak finding links no evidence: %+v", got[0])
	}
	var one struct {
		History []struct{ State string }
	}
	if apiGet(t, fmt.Sprintf("%s/api/v1/findings/%d", s.url, got[0].ID), &one); len(one.History) == 0 || one.History[0].State != "open" {
		t.Errorf("finding history %+v", one)
	}
}

// TestServerKill9 sends batches hard, kills the server with SIGKILL and
// checks that every acknowledged batch survived, then that it restarts.
func TestServerKill9(t *testing.T) {
	dir := t.TempDir()
	out, err := gopulseCmd(t, "token", "create", "--service", "load", "--data", dir).Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	token := strings.TrimSpace(string(out))
	s := startServer(t, dir, "--no-self-monitoring", "--batch-rate", "1000")
	var acked sync.Map
	var nacked atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("w%d-b%d", w, i)
				mb := &wire.MetricBatch{BatchId: key, Instance: &wire.Instance{Service: "load", InstanceId: fmt.Sprint("w", w)},
					Descriptors: []*wire.MetricDescriptor{{Name: "/test/seq:batches", Kind: wire.MetricKind_METRIC_KIND_UINT64}},
					Samples:     []*wire.Sample{{TimeUnixNano: time.Now().UnixNano(), Values: []*wire.MetricValue{{Index: 0, Value: &wire.MetricValue_Uint64Value{Uint64Value: uint64(i)}}}}}}
				body, _ := proto.Marshal(mb)
				req, _ := http.NewRequest("POST", s.url+wire.PathPushMetrics, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", wire.ContentTypeProto)
				req.Header.Set(wire.HeaderIdempotencyKey, key)
				resp, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					acked.Store(key, mb.Samples[0].TimeUnixNano/1e6)
					nacked.Add(1)
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	s.cmd.Process.Kill()
	<-s.done
	close(stop)
	wg.Wait()
	if nacked.Load() < 50 {
		t.Fatalf("only %d batches acknowledged before the kill: load too light to mean anything", nacked.Load())
	}
	// Every acknowledged batch is in the database, data and key.
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		t.Fatalf("reopen after kill -9: %v", err)
	}
	var missing []string
	acked.Range(func(k, v any) bool {
		key := k.(string)
		w := strings.TrimPrefix(strings.Split(key, "-")[0], "w")
		pts, err := st.QuerySeries(ctx, store.SeriesQuery{Instance: store.InstanceKey{Service: "load", ID: "w" + w}, Name: "/test/seq:batches", Start: v.(int64), End: v.(int64) + 1})
		if seen, _ := st.Seen(ctx, key); err != nil || len(pts) == 0 || !seen {
			missing = append(missing, key)
		}
		return true
	})
	st.Close()
	if len(missing) > 0 {
		t.Fatalf("%d of %d acknowledged batches lost after kill -9, e.g. %v", len(missing), nacked.Load(), missing[:min(5, len(missing))])
	}
	t.Logf("%d acknowledged batches all present after kill -9", nacked.Load())
	// The server starts again on the same data.
	s2 := startServer(t, dir, "--no-self-monitoring")
	var insts apiInstances
	if apiGet(t, s2.url+"/api/v1/instances?service=load", &insts); len(insts.Instances) != 8 {
		t.Errorf("after restart: %d load instances, want 8", len(insts.Instances))
	}
}

func TestServerFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "0.0.0.0:0"}, "reachable from other machines"},
		{[]string{"--listen", "nonsense"}, "want HOST:PORT"},
		{[]string{"--tls-cert", "x"}, "go together"},
		{[]string{"--scrape", "novalue"}, "NAME=http"},
		{[]string{"--scrape", "x=ftp://h"}, "is not http(s)"},
		{[]string{"extra"}, "no arguments"},
		{[]string{"--scrape", "a=http://h:1", "--scrape", "a=http://h:1/debug/pprof/"}, "listed twice"},
	} {
		err := runServer(context.Background(), append(tc.args, "--data", t.TempDir()), nil, io.Discard, io.Discard)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want a usage error saying %q", tc.args, err, tc.want)
		}
	}
}

// TestServerScrapeConfigErrors: a --scrape-config that cannot be used
// stops the server at start, saying which line is wrong.
func TestServerScrapeConfigErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name  string
		args  []string
		want  string
		usage bool
	}{
		{"missing file", []string{"--scrape-config", filepath.Join(dir, "nope.conf")}, "--scrape-config: open", false},
		{"bad line", []string{"--scrape-config", write("bad.conf", "api http://h:1\nweb ftp://h:2\n")}, "bad.conf: scrape config line 2: target web: URL \"ftp://h:2\" is not http(s)", false},
		{"duplicate in file", []string{"--scrape-config", write("dup.conf", "a http://h:1\nb http://h:1\n")}, "line 2: http://h:1 is already listed on line 1", false},
		{"flag and file", []string{"--scrape", "a=http://h:1", "--scrape-config", write("one.conf", "a http://h:1/debug/pprof\n")}, "listed twice", true},
	} {
		data := filepath.Join(dir, "data-"+strings.ReplaceAll(tc.name, " ", "-"))
		err := runServer(context.Background(), append(tc.args, "--data", data, "--no-self-monitoring", "--listen", "127.0.0.1:0"), nil, io.Discard, io.Discard)
		var ue usageError
		if err == nil || !strings.Contains(err.Error(), tc.want) || errors.As(err, &ue) != tc.usage {
			t.Errorf("%s: %v (usage error: %v), want one saying %q (usage error: %v)", tc.name, err, errors.As(err, &ue), tc.want, tc.usage)
		}
	}
}

// syncWriter lets the test read what runServer printed.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
func (w *syncWriter) String() string { w.mu.Lock(); defer w.mu.Unlock(); return w.b.String() }

// TestServerInProcessTLSAndAuth runs the server in-process with TLS and an
// API token on all interfaces, then cancels it: it must stop cleanly and
// leave no goroutine behind (TestMain checks with goleak).
func TestServerInProcessTLSAndAuth(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncWriter{}
	errc := make(chan error, 1)
	go func() {
		errc <- runServer(ctx, []string{"--listen", "0.0.0.0:0", "--data", dir, "--tls-cert", cert, "--tls-key", key,
			"--api-token", "s3cret", "--self-batch-interval", "1s"}, nil, out, io.Discard)
	}()
	var url string
	waitFor(t, 20*time.Second, "the listening line", func() bool {
		url = regexp.MustCompile(`https://\S+`).FindString(out.String())
		return url != ""
	})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(url, "https://"))
	url = "https://127.0.0.1:" + port
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	get := func(path, token string) int {
		req, _ := http.NewRequest("GET", url+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get("/api/v1/instances", ""); got != 401 {
		t.Errorf("API without token: %d, want 401", got)
	}
	if got := get("/api/v1/instances", "s3cret"); got != 200 {
		t.Errorf("API with token: %d, want 200", got)
	}
	if got := get("/healthz", ""); got != 200 {
		t.Errorf("healthz: %d", got)
	}
	// The self agent reaches the server over TLS.
	waitFor(t, 20*time.Second, "self-monitoring over TLS", func() bool {
		st := get("/metrics", "")
		return st == 200 && func() bool {
			resp, err := c.Get(url + "/metrics")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return strings.Contains(string(b), `gopulse_ingest_batches_total{result="stored"}`)
		}()
	})
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("runServer after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("runServer did not return after cancel")
	}
}

func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gopulse-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}
