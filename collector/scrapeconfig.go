package collector

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of a scrape config file, so a wrong file (a binary, a log) fails
// fast with a clear message instead of scraping thousands of targets.
const (
	maxScrapeLineBytes = 4096
	maxScrapeTargets   = 10_000
)

// ParseScrapeConfig reads a scrape config: one target per line,
//
//	# comment
//	NAME URL [goroutine=DURATION] [heap=DURATION] [vars=DURATION] [timeout=DURATION]
//
// NAME is the service the instance is filed under, URL the base of its
// net/http/pprof (http or https; a trailing /debug/pprof/ is removed).
// The optional key=value fields override that target's scrape intervals
// (Go durations, at least 1s). Blank lines are skipped; a field starting
// with # begins a comment. A target listed twice (the same NAME and host,
// or the same URL) is an error, as is anything else the file cannot mean;
// errors name the line ("scrape config line 3: …"). The file is read once:
// changing it takes a restart.
func ParseScrapeConfig(r io.Reader) ([]Target, error) {
	var out []Target
	type seenAt struct {
		line int
		name string
	}
	byURL := map[string]seenAt{}
	byKey := map[string]int{}
	sc := bufio.NewScanner(r)
	// Room for the longest allowed line and its "\r\n"; longer is an error.
	sc.Buffer(make([]byte, 0, 512), maxScrapeLineBytes+2)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if len(line) > maxScrapeLineBytes {
			return nil, fmt.Errorf("scrape config line %d: %w", n, errScrapeLineTooLong)
		}
		t, ok, perr := parseScrapeLine(line)
		if perr != nil {
			return nil, fmt.Errorf("scrape config line %d: %w", n, perr)
		}
		if !ok {
			continue
		}
		if prev, dup := byURL[t.URL]; dup {
			return nil, fmt.Errorf("scrape config line %d: %s is already listed on line %d (as %q)", n, t.URL, prev.line, prev.name)
		}
		u, _ := url.Parse(t.URL) // validated by parseScrapeLine
		key := t.Name + " " + u.Host
		if prev, dup := byKey[key]; dup {
			return nil, fmt.Errorf("scrape config line %d: service %q already has a target at %s (line %d); one host:port is one instance", n, t.Name, u.Host, prev)
		}
		if len(out) == maxScrapeTargets {
			return nil, fmt.Errorf("scrape config line %d: more than %d targets", n, maxScrapeTargets)
		}
		byURL[t.URL], byKey[key] = seenAt{n, t.Name}, n
		out = append(out, t)
	}
	switch err := sc.Err(); {
	case errors.Is(err, bufio.ErrTooLong):
		return nil, fmt.Errorf("scrape config line %d: %w", n+1, errScrapeLineTooLong)
	case err != nil:
		return nil, fmt.Errorf("scrape config line %d: read: %w", n+1, err)
	}
	return out, nil
}

// errScrapeLineTooLong is a line over maxScrapeLineBytes.
var errScrapeLineTooLong = fmt.Errorf("line longer than %d bytes: is this a scrape config?", maxScrapeLineBytes)

// parseScrapeLine parses one line; ok is false for a blank or comment line.
func parseScrapeLine(line []byte) (t Target, ok bool, err error) {
	if !utf8.Valid(line) {
		return t, false, errors.New("not UTF-8 text")
	}
	fields := strings.Fields(string(line))
	for i, f := range fields {
		if strings.HasPrefix(f, "#") {
			fields = fields[:i]
			break
		}
	}
	switch len(fields) {
	case 0:
		return t, false, nil
	case 1:
		return t, false, fmt.Errorf("%q: want NAME URL [key=duration …], e.g. api http://10.0.0.5:6060", trunc(fields[0]))
	}
	t.Name, t.URL = fields[0], fields[1]
	if strings.Contains(t.Name, "=") || strings.Contains(t.Name, "://") {
		return t, false, fmt.Errorf("%q is not a service name: the line starts with NAME, then the URL", trunc(t.Name))
	}
	if err := t.validate(); err != nil {
		return t, false, err
	}
	seen := map[string]bool{}
	for _, f := range fields[2:] {
		k, v, found := strings.Cut(f, "=")
		if !found {
			return t, false, fmt.Errorf("%q: want key=duration after the URL (keys: goroutine, heap, vars, timeout)", trunc(f))
		}
		var p *time.Duration
		switch k {
		case "goroutine":
			p = &t.Intervals.Goroutine
		case "heap":
			p = &t.Intervals.Heap
		case "vars":
			p = &t.Intervals.Vars
		case "timeout":
			p = &t.Intervals.Timeout
		default:
			return t, false, fmt.Errorf("unknown setting %q (known: goroutine, heap, vars, timeout)", trunc(k))
		}
		if seen[k] {
			return t, false, fmt.Errorf("%s= given twice", k)
		}
		seen[k] = true
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			return t, false, fmt.Errorf("%s=%q: want a duration of at least 1s, like 30s or 5m", k, trunc(v))
		}
		*p = d
	}
	return t, true, nil
}
