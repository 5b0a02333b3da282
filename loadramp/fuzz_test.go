package loadramp

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// Every parser of outside input has a fuzz target; seed corpora are under
// testdata/fuzz/<FuzzName>/.

func FuzzParseVars(f *testing.F) {
	f.Add([]byte(`{"memstats":{"NumGC":3,"PauseNs":[1,2,3],"GCCPUFraction":0.1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ParseVars(bytes.NewReader(b))
		if err != nil {
			return
		}
		// What parsed must survive a round trip through expvar's shape.
		enc, err := json.Marshal(map[string]any{"memstats": ms})
		if err != nil {
			return // NaN/Inf cannot be re-encoded; not a parser bug
		}
		again, err := ParseVars(bytes.NewReader(enc))
		if err != nil || again.NumGC != ms.NumGC || again.PauseNs != ms.PauseNs || again.HeapAlloc != ms.HeapAlloc {
			t.Fatalf("round trip of %q failed: %v", b, err)
		}
	})
}

func FuzzParseGoroutineTotal(f *testing.F) {
	f.Add([]byte("goroutine profile: total 12\n1 @ 0x1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseGoroutineTotal(bytes.NewReader(b))
		if err == nil && n < 0 {
			t.Fatalf("negative total %d", n)
		}
	})
}

func FuzzParseProcStat(f *testing.F) {
	f.Add([]byte("1 (go) S 0 1 1 0 -1 4194560 1 0 0 0 5 6 0 0 20 0 9 0 77 1 1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseProcStat(b)
	})
}

func FuzzParseSLO(f *testing.F) {
	f.Add("p99<50ms,errors<0.1%")
	f.Fuzz(func(t *testing.T, s string) {
		slo, err := ParseSLO(s)
		if err != nil {
			return
		}
		again, err := ParseSLO(slo.String())
		if err != nil && strings.Contains(slo.String(), "<") {
			t.Fatalf("%q parsed to %q which does not parse: %v", s, slo.String(), err)
		}
		if err == nil && again.String() != slo.String() {
			t.Fatalf("round trip %q → %q", slo.String(), again.String())
		}
	})
}

// fakeConn serves a fixed response and swallows writes.
type fakeConn struct {
	net.Conn
	r io.Reader
}

func (c *fakeConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *fakeConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *fakeConn) Close() error                     { return nil }
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

func FuzzRawResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"))
	p, err := prepare(Target{URL: "http://127.0.0.1:1/"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c := &fakeConn{r: bytes.NewReader(b)}
		rc := &rawClient{p: p, c: c, br: bufio.NewReaderSize(c, 16<<10)}
		status, _, err := rc.roundTrip(p.pick())
		if err == nil && (status < 100 || status > 999) {
			t.Fatalf("status %d accepted from %q", status, b)
		}
	})
}

func FuzzParseAgentStatus(f *testing.F) {
	f.Add([]byte(agentJSON))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseAgentStatus(bytes.NewReader(b))
		if err == nil && st == nil {
			t.Fatal("nil status without error")
		}
	})
}
