package goroutine

import "strings"

// PackagePath returns the import path of the package a function belongs to,
// as the runtime prints function names: "net/http.(*conn).serve" → "net/http",
// "github.com/a/b.(*T).M.func1" → "github.com/a/b", "main.main" → "main".
func PackagePath(fn string) string {
	// The package path ends at the first '.' after the last '/'; a '.' before
	// the last '/' belongs to a domain name ("github.com/…").
	slash := strings.LastIndexByte(fn, '/')
	dot := strings.IndexByte(fn[slash+1:], '.')
	if dot < 0 {
		return fn
	}
	return fn[:slash+1+dot]
}

// IsStdlib reports whether fn belongs to the Go runtime or standard library:
// its package path has no dot in its first element ("net/http",
// "internal/poll", "vendor/golang.org/x/net/…"), and it is not package main.
func IsStdlib(fn string) bool {
	p := PackagePath(fn)
	if p == "main" || strings.HasPrefix(p, "main.") || p == "command-line-arguments" {
		return false
	}
	first := p
	if i := strings.IndexByte(p, '/'); i >= 0 {
		first = p[:i]
	}
	return !strings.Contains(first, ".")
}

// isRuntime reports whether fn is the scheduler's own machinery, which is on
// top of every blocked stack and says nothing about who blocks.
func isRuntime(fn string) bool {
	p := PackagePath(fn)
	return p == "runtime" || strings.HasPrefix(p, "runtime/internal") || p == "internal/runtime" ||
		strings.HasPrefix(p, "internal/runtime/") || p == "internal/sync"
}

// BlockingFrame returns the frame where a stack waits from the user's point of
// view: the first frame of user code below the runtime and the standard
// library. When the whole stack is standard library (a Transport's
// connection reader, an HTTP server's connection), it returns the
// goroutine's own function — the bottom frame outside the runtime — since
// "net/http.(*persistConn).readLoop" says what the goroutine is for and
// "internal/poll.(*FD).Read" does not. ok is false for an empty stack.
func BlockingFrame(frames []Frame) (f Frame, ok bool) {
	for _, fr := range frames {
		if !IsStdlib(fr.Func) {
			return fr, true
		}
	}
	for i := len(frames) - 1; i >= 0; i-- {
		if !isRuntime(frames[i].Func) {
			return frames[i], true
		}
	}
	if len(frames) > 0 {
		return frames[0], true
	}
	return Frame{}, false
}

// userFrames returns the frames below the runtime's own, with runtime.goexit
// and similar dropped: the part of a stack that identifies a call site
// independently of how the dump format prints the scheduler frames.
func userFrames(frames []Frame) []Frame {
	i := 0
	for i < len(frames) && isRuntime(frames[i].Func) {
		i++
	}
	j := len(frames)
	for j > i && isRuntime(frames[j-1].Func) {
		j--
	}
	return frames[i:j]
}

// siteKey identifies a stack by its frames outside the runtime (function and
// line), the same whichever format the dump came in; it joins a group with
// the runtime's goroutineleak profile and with execution-trace stacks.
func siteKey(frames []Frame) string {
	var b strings.Builder
	for _, f := range userFrames(frames) {
		b.WriteString(f.Func)
		b.WriteByte(':')
		writeInt(&b, f.Line)
		b.WriteByte(';')
	}
	return b.String()
}

func writeInt(b *strings.Builder, n int) {
	var buf [20]byte
	i := len(buf)
	if n == 0 {
		b.WriteByte('0')
		return
	}
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		b.WriteByte('-')
	}
	b.Write(buf[i:])
}

// ShortPath trims a source path for display: the GOROOT prefix up to "src/"
// for the standard library, and for module paths everything before the
// module's host name ("/home/u/go/pkg/mod/github.com/a/b@v1/c.go" →
// "github.com/a/b@v1/c.go"). Other paths keep their last two elements.
func ShortPath(p string) string {
	if i := strings.LastIndex(p, "/pkg/mod/"); i >= 0 {
		return p[i+len("/pkg/mod/"):]
	}
	if i := strings.LastIndex(p, "/go/src/"); i >= 0 {
		return p[i+len("/go/src/"):]
	}
	if i := strings.LastIndex(p, "/src/"); i >= 0 && strings.Contains(p, "/go") {
		return p[i+len("/src/"):]
	}
	// Keep "dir/file.go": enough to find it, short enough to read.
	j := strings.LastIndexByte(p, '/')
	if j <= 0 {
		return p
	}
	k := strings.LastIndexByte(p[:j], '/')
	return p[k+1:]
}
