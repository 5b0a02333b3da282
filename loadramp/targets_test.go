package loadramp

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseTargets(t *testing.T) {
	files := map[string]string{"user.json": `{"name":"a"}`}
	readFile := func(p string) ([]byte, error) {
		if b, ok := files[p]; ok {
			return []byte(b), nil
		}
		return nil, errors.New("no such file " + p)
	}
	tests := []struct {
		name    string
		in      string
		want    []Request
		wantErr string
	}{
		{"one line", "GET http://127.0.0.1:8080/\n", []Request{{Method: "GET", URL: "http://127.0.0.1:8080/"}}, ""},
		{"headers, body, comments, blank lines", `
# the read path
GET http://127.0.0.1:8080/users/1
X-Trace: on
accept:  application/json

POST http://127.0.0.1:8080/users
Content-Type: application/json
@user.json
`, []Request{
			{Method: "GET", URL: "http://127.0.0.1:8080/users/1", Header: http.Header{"X-Trace": {"on"}, "Accept": {"application/json"}}},
			{Method: "POST", URL: "http://127.0.0.1:8080/users", Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"name":"a"}`)},
		}, ""},
		{"request lines back to back", "GET http://h/a\nHEAD http://h/b\n",
			[]Request{{Method: "GET", URL: "http://h/a"}, {Method: "HEAD", URL: "http://h/b"}}, ""},
		{"empty", "\n# nothing\n", nil, "no request line"},
		{"header first", "X-A: 1\nGET http://h/\n", nil, `line 1 "X-A: 1": want a request line`},
		{"bad header", "GET http://h/\nnot a header\n", nil, "line 2"},
		{"header after body", "POST http://h/\n@user.json\nX-A: 1\n", nil, "line 3"},
		{"missing body file", "POST http://h/\n@nope.json\n", nil, "no such file nope.json"},
		{"bad scheme", "GET ftp://h/\n", nil, "scheme must be http or https"},
		{"lower-case method is not a request line", "get http://h/\n", nil, "line 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseTargets(strings.NewReader(tc.in), readFile)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, %v\nwant %+v", got, err, tc.want)
			}
		})
	}
	if _, err := ParseTargets(strings.NewReader("POST http://h/\n@user.json\n"), nil); err == nil {
		t.Error("a body file read without a readFile")
	}
}

func FuzzParseTargets(f *testing.F) {
	f.Add([]byte("GET http://127.0.0.1:8080/\n"))
	f.Add([]byte("POST http://h/x\nContent-Type: a/b\n@body\n\nGET http://h/y\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		reqs, err := ParseTargets(bytes.NewReader(b), func(string) ([]byte, error) { return []byte("body"), nil })
		if err != nil {
			return
		}
		if len(reqs) == 0 {
			t.Fatal("no requests without an error")
		}
		for _, r := range reqs {
			// Whatever parses must also render, or the ramp fails late.
			if _, err := prepare(Target{URL: r.URL, Mix: []Request{r}}); err != nil && !strings.Contains(err.Error(), "line break") {
				t.Fatalf("parsed %+v but cannot prepare it: %v", r, err)
			}
		}
	})
}

// TestMixRoundRobin sends a two-request mix through both engines and
// checks the server saw each request, with its own method, headers and
// body, in turn.
func TestMixRoundRobin(t *testing.T) {
	var (
		mu   sync.Mutex
		seen = map[string]int{}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body bytes.Buffer
		body.ReadFrom(r.Body)
		mu.Lock()
		seen[fmt.Sprintf("%s %s %s %s", r.Method, r.URL.Path, r.Header.Get("X-Who"), body.String())]++
		mu.Unlock()
	}))
	defer srv.Close()
	mix := []Request{
		{URL: srv.URL + "/a", Header: http.Header{"X-Who": {"reader"}}},
		{Method: "POST", URL: srv.URL + "/b", Header: http.Header{"X-Who": {"writer"}}, Body: []byte("hello")},
	}
	for _, eng := range []Engine{EngineRaw, EngineNetHTTP} {
		t.Run(string(eng), func(t *testing.T) {
			clear(seen)
			r := step(t, Target{URL: srv.URL, Mix: mix, Engine: eng}, StepSpec{Rate: 400, Duration: 250 * time.Millisecond})
			mu.Lock()
			defer mu.Unlock()
			a, b := seen["GET /a reader "], seen["POST /b writer hello"]
			if len(seen) != 2 || a+b != int(r.Sent) || a-b > 1 || b-a > 1 {
				t.Errorf("server saw %v for %d sent; want the two requests alternating", seen, r.Sent)
			}
		})
	}
	if _, err := NewGenerator(Target{URL: srv.URL, Mix: []Request{{URL: "http://192.0.2.1/"}}}, 1); err == nil || !strings.Contains(err.Error(), "one origin") {
		t.Errorf("a mix across origins: %v", err)
	}
}
