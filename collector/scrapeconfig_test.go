package collector

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseScrapeConfig(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []Target
		err      string // substring of the error; "" = success
	}{
		{name: "empty", in: "", want: nil},
		{name: "comments and blanks", in: "# targets\n\n   \t\n# end\n", want: nil},
		{name: "one", in: "api http://10.0.0.5:6060\n", want: []Target{{Name: "api", URL: "http://10.0.0.5:6060"}}},
		{name: "no final newline, CRLF, pprof suffix removed",
			in:   "api http://10.0.0.5:6060/debug/pprof/\r\nweb https://web.internal:8443/",
			want: []Target{{Name: "api", URL: "http://10.0.0.5:6060"}, {Name: "web", URL: "https://web.internal:8443"}}},
		{name: "overrides and a trailing comment",
			in:   "  api   http://h:1   goroutine=30s heap=10m vars=5s timeout=3s  # the API\n",
			want: []Target{{Name: "api", URL: "http://h:1", Intervals: Intervals{Goroutine: 30 * time.Second, Heap: 10 * time.Minute, Vars: 5 * time.Second, Timeout: 3 * time.Second}}}},
		{name: "same host, two services", in: "a http://h:1\nb http://h:1/x\n",
			want: []Target{{Name: "a", URL: "http://h:1"}, {Name: "b", URL: "http://h:1/x"}}},
		{name: "URL missing", in: "# x\napi\n", err: `scrape config line 2: "api": want NAME URL`},
		{name: "NAME=URL form", in: "api=http://h:1 x\n", err: `line 1: "api=http://h:1" is not a service name`},
		{name: "URL first", in: "http://h:1 api\n", err: `line 1: "http://h:1" is not a service name`},
		{name: "not http", in: "\n\napi ftp://h:1\n", err: `scrape config line 3: target api: URL "ftp://h:1" is not http(s)://host:port`},
		{name: "no host", in: "api http:///x\n", err: "line 1: target api: URL"},
		{name: "name too long", in: strings.Repeat("n", 129) + " http://h:1\n", err: "line 1: target name"},
		{name: "duplicate URL", in: "a http://h:1\n#\nb http://h:1/debug/pprof\n", err: `scrape config line 3: http://h:1 is already listed on line 1 (as "a")`},
		{name: "duplicate instance", in: "a http://h:1/x\na http://h:1/y\n", err: `scrape config line 2: service "a" already has a target at h:1 (line 1)`},
		{name: "bare word after URL", in: "a http://h:1 30s\n", err: `line 1: "30s": want key=duration`},
		{name: "unknown key", in: "a http://h:1 interval=30s\n", err: `line 1: unknown setting "interval" (known: goroutine, heap, vars, timeout)`},
		{name: "bad duration", in: "a http://h:1 heap=5\n", err: `line 1: heap="5": want a duration of at least 1s`},
		{name: "too short", in: "a http://h:1 vars=10ms\n", err: `vars="10ms": want a duration of at least 1s`},
		{name: "key twice", in: "a http://h:1 vars=1s vars=2s\n", err: "line 1: vars= given twice"},
		{name: "binary", in: "a http://h:1\n\xff\xfe\n", err: "scrape config line 2: not UTF-8 text"},
		{name: "long line", in: "a http://h:1\n" + strings.Repeat("x", 5000) + "\n", err: "scrape config line 2: line longer than 4096 bytes"},
		{name: "long last line", in: "a http://h:1\n" + strings.Repeat("x", 5000), err: "scrape config line 2: line longer than 4096 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseScrapeConfig(strings.NewReader(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestScrapeTargetIntervals: a target's own intervals override the
// collector's, field by field; duplicates across flags and file are caught
// by New.
func TestScrapeTargetIntervals(t *testing.T) {
	e := newEnv(t, nil)
	c, err := New(Config{Store: e.st, Intervals: Intervals{Vars: 7 * time.Second}, Scrape: []Target{
		{Name: "a", URL: "http://h:1"},
		{Name: "b", URL: "http://h:2", Intervals: Intervals{Goroutine: 3 * time.Second, Timeout: 2 * time.Second, LeakProfileMax: 5}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []Intervals{
		{Goroutine: time.Minute, Heap: 5 * time.Minute, Vars: 7 * time.Second, Timeout: 20 * time.Second, MaxBackoff: 5 * time.Minute, LeakProfileMax: 20_000},
		{Goroutine: 3 * time.Second, Heap: 5 * time.Minute, Vars: 7 * time.Second, Timeout: 2 * time.Second, MaxBackoff: 5 * time.Minute, LeakProfileMax: 20_000},
	} {
		if got := c.scrapers[i].iv; got != want {
			t.Errorf("target %d: %+v, want %+v", i, got, want)
		}
		if got := c.scrapers[i].tasks[0].interval; got != want.Goroutine {
			t.Errorf("target %d: goroutine task every %v, want %v", i, got, want.Goroutine)
		}
	}
	_, err = New(Config{Store: e.st, Scrape: []Target{{Name: "a", URL: "http://h:1/x"}, {Name: "a", URL: "http://h:1/debug/pprof/"}}})
	if err == nil || !strings.Contains(err.Error(), `service "a" already scrapes h:1`) {
		t.Errorf("two targets for one instance: %v", err)
	}
}

// formatScrapeConfig writes targets in the format ParseScrapeConfig reads.
func formatScrapeConfig(ts []Target) string {
	var b strings.Builder
	for _, t := range ts {
		fmt.Fprintf(&b, "%s %s", t.Name, t.URL)
		for _, kv := range []struct {
			k string
			d time.Duration
		}{{"goroutine", t.Intervals.Goroutine}, {"heap", t.Intervals.Heap}, {"vars", t.Intervals.Vars}, {"timeout", t.Intervals.Timeout}} {
			if kv.d > 0 {
				fmt.Fprintf(&b, " %s=%s", kv.k, kv.d)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// FuzzParseScrapeConfig: the parser never panics, refusals name a line,
// and what it accepts is valid, free of duplicates, and reads back the
// same when written out again.
func FuzzParseScrapeConfig(f *testing.F) {
	f.Add("api http://10.0.0.5:6060\n")
	f.Add("# c\n a  https://h:1/debug/pprof/ goroutine=30s heap=10m # x\r\nb http://h:2 vars=1s timeout=2s\n")
	f.Add("a http://h:1\na http://h:1/y\n")
	f.Add("a http://[::1]:6060/p?q=1#f\n")
	f.Fuzz(func(t *testing.T, in string) {
		ts, err := ParseScrapeConfig(strings.NewReader(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "scrape config line ") {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		for _, tg := range ts {
			v := tg
			if err := v.validate(); err != nil || v.URL != tg.URL {
				t.Fatalf("accepted %+v: validate %v, URL %q", tg, err, v.URL)
			}
		}
		again, err := ParseScrapeConfig(strings.NewReader(formatScrapeConfig(ts)))
		if err != nil || fmt.Sprint(again) != fmt.Sprint(ts) {
			t.Fatalf("round trip of %q:\n%+v\n%+v, %v", in, ts, again, err)
		}
	})
}
