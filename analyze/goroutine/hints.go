package goroutine

import "strings"

// A hint explains a leak whose stack shows only library code, where the
// user's mistake is elsewhere: the goroutines of an http.Transport
// connection say nothing about the handler that forgot to close a body.
type hint struct {
	frame string // a function that must be in the stack
	text  string
}

var hints = []hint{
	{"net/http.(*persistConn).readLoop", "these are an http.Transport's connection goroutines: the usual cause is a response Body that is never closed (or a new http.Transport per request)"},
	{"net/http.(*persistConn).writeLoop", "these are an http.Transport's connection goroutines: the usual cause is a response Body that is never closed (or a new http.Transport per request)"},
	{"net/http.(*conn).serve", "server connections piling up idle: clients that keep connections open (bodies never closed, a Transport per request) or a server without IdleTimeout"},
	{"net.(*TCPListener).Accept", "accept loops piling up: listeners that are never closed"},
	{"time.Sleep", "sleeping goroutines piling up: a retry or poll loop that never exits"},
	{"database/sql.(*DB).connectionOpener", "a sql.DB per request that is never closed: open one DB and share it"},
	{"google.golang.org/grpc.(*ClientConn)", "gRPC client connections that are never closed: close the ClientConn or share one"},
}

// hintFor returns advice for a known library leak signature, "" if none.
func hintFor(frames []Frame) string {
	for _, h := range hints {
		for _, f := range frames {
			if f.Func == h.frame || strings.HasPrefix(f.Func, h.frame) {
				return h.text
			}
		}
	}
	return ""
}
