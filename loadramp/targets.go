package loadramp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strings"
)

// maxTargets bounds a targets file: a mix is a handful of endpoints, and
// every entry is kept rendered in memory.
const maxTargets = 10_000

// ParseTargets reads a targets file in vegeta's format: each target is a
// request line "METHOD URL", then optional "Name: value" header lines,
// then an optional "@path" line naming a file whose contents are the body.
// Blank lines separate targets and lines starting with '#' are comments:
//
//	GET http://127.0.0.1:8080/users/1
//	X-Trace: on
//
//	POST http://127.0.0.1:8080/users
//	Content-Type: application/json
//	@new-user.json
//
// readFile loads "@path" bodies (resolve relative paths there); nil
// rejects them. Errors name the line and quote it.
func ParseTargets(r io.Reader, readFile func(path string) ([]byte, error)) ([]Request, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	var (
		out  []Request
		cur  *Request
		body bool // cur already has its @body line
		n    int
	)
	bad := func(line, why string) error {
		return fmt.Errorf("targets line %d %q: %s", n, trunc([]byte(line)), why)
	}
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
			cur = nil // a blank line ends a target
			continue
		case strings.HasPrefix(line, "#"):
			continue
		}
		if method, target, ok := requestLine(line); ok {
			if len(out) == maxTargets {
				return nil, bad(line, fmt.Sprintf("more than %d targets", maxTargets))
			}
			u, err := parseTargetURL(target)
			if err != nil {
				return nil, bad(line, err.Error())
			}
			out = append(out, Request{Method: method, URL: u.String()})
			cur, body = &out[len(out)-1], false
			continue
		}
		if cur == nil {
			return nil, bad(line, `want a request line "METHOD URL" (a header or body must follow one)`)
		}
		if body {
			return nil, bad(line, "nothing may follow the @body line of a target; separate targets with a blank line")
		}
		if path, ok := strings.CutPrefix(line, "@"); ok {
			if readFile == nil {
				return nil, bad(line, "request bodies from files are not allowed here")
			}
			b, err := readFile(strings.TrimSpace(path))
			if err != nil {
				return nil, fmt.Errorf("targets line %d: read body: %w", n, err)
			}
			cur.Body, body = b, true
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		k = strings.TrimSpace(k)
		if !ok || k == "" || !validHeaderName(k) {
			return nil, bad(line, `want a header "Name: value", a body "@file", or a blank line`)
		}
		if cur.Header == nil {
			cur.Header = http.Header{}
		}
		cur.Header.Add(textproto.CanonicalMIMEHeaderKey(k), strings.TrimSpace(v))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("targets line %d: %w", n+1, err)
	}
	if len(out) == 0 {
		return nil, errors.New("targets: no request line (want lines like \"GET http://127.0.0.1:8080/\")")
	}
	return out, nil
}

// requestLine splits "METHOD URL": an upper-case token, one run of
// spaces, and a URL with a scheme. A header ("Name: value") never matches
// because its first token ends in ':'.
func requestLine(line string) (method, target string, ok bool) {
	method, target, ok = strings.Cut(line, " ")
	if !ok || method == "" {
		return "", "", false
	}
	for _, c := range method {
		if c < 'A' || c > 'Z' {
			return "", "", false
		}
	}
	target = strings.TrimSpace(target)
	if !strings.Contains(target, "://") || strings.ContainsAny(target, " \t") {
		return "", "", false
	}
	return method, target, true
}

func validHeaderName(k string) bool {
	for _, c := range k {
		// RFC 9110 token characters.
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", c)) {
			return false
		}
	}
	return true
}
