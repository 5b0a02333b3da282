package loadramp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

// Error kinds, the keys of StepResult.Errors. They are stable strings
// because they appear in the JSON report.
const (
	ErrConnectRefused = "connect_refused" // nothing listens on the port
	ErrConnect        = "connect"         // any other dial failure (DNS, unreachable, dial timeout)
	ErrTimeout        = "timeout"         // no complete response within Target.Timeout
	ErrReset          = "reset"           // connection reset or broken pipe
	ErrClosed         = "closed"          // the server closed the connection mid-response
	ErrTLS            = "tls"             // handshake or certificate failure
	ErrProtocol       = "protocol"        // a response that is not valid HTTP/1.1
	ErrRedirect       = "redirect"        // 3xx: redirects are not followed
	ErrHTTP4xx        = "http_4xx"
	ErrHTTP5xx        = "http_5xx"
	ErrOther          = "other"
)

// opError carries the kind an error was classified as.
type opError struct {
	kind string
	err  error
}

func (e *opError) Error() string { return e.kind + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// statusKind maps an HTTP status to an error kind, "" for success.
func statusKind(status int) string {
	switch {
	case status >= 200 && status < 300:
		return ""
	case status >= 300 && status < 400:
		return ErrRedirect
	case status >= 400 && status < 500:
		return ErrHTTP4xx
	case status >= 500:
		return ErrHTTP5xx
	}
	return ErrProtocol
}

func kindOf(err error) string {
	var oe *opError
	if errors.As(err, &oe) {
		return oe.kind
	}
	return classifyAny(err)
}

func classifyDial(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return ErrConnectRefused
	case isTimeout(err):
		return ErrConnect
	}
	return ErrConnect
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
}

func classifyIO(err error) string {
	switch {
	case isTimeout(err):
		return ErrTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return ErrReset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ErrClosed
	case isTLS(err):
		return ErrTLS
	}
	return ErrOther
}

func isTLS(err error) bool {
	var (
		rh  tls.RecordHeaderError
		ae  tls.AlertError
		ue  x509.UnknownAuthorityError
		he  x509.HostnameError
		ce  x509.CertificateInvalidError
		cve *tls.CertificateVerificationError
	)
	return errors.As(err, &rh) || errors.As(err, &ae) || errors.As(err, &ue) || errors.As(err, &he) ||
		errors.As(err, &ce) || errors.As(err, &cve) || strings.Contains(err.Error(), "tls: ")
}

// classifyAny handles errors from net/http, whose wrapping hides the
// phase; the dial phase shows as a *net.OpError with Op "dial".
func classifyAny(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return classifyDial(err)
	}
	if isTLS(err) {
		return ErrTLS
	}
	return classifyIO(err)
}
