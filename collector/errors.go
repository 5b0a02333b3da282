package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gopulse/gopulse/store"
	"github.com/gopulse/gopulse/wire"
)

// kind classifies the collector's own errors; store sentinels are classified
// by errors.Is. statusOf is the one place both become HTTP statuses.
type kind int

const (
	kindInvalid kind = iota + 1
	kindUnauthenticated
	kindForbidden
	kindTooLarge
	kindRateLimited
	kindNotFound
	kindUnavailable
)

// apiError is an error with a kind and a message meant for the client.
type apiError struct {
	kind       kind
	msg        string
	retryAfter time.Duration
	err        error
}

func (e *apiError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

func (e *apiError) Unwrap() error { return e.err }

func errorf(k kind, format string, args ...any) error {
	return &apiError{kind: k, msg: fmt.Sprintf(format, args...)}
}

// ErrUnauthenticated is what a Config.ReadAuth returns (wrapped) for a
// request without valid credentials; the API answers 401.
var ErrUnauthenticated = errors.New("authentication required")

// errRetry is the Retry-After the collector suggests when storage is full:
// long enough for a Maintain run to free space.
const errRetry = 30 * time.Second

// statusOf maps every error kind the collector meets to an HTTP status, a
// Connect-style code and the Retry-After to send (0: none). It is the only
// place that does.
func statusOf(err error) (status int, code string, retryAfter time.Duration) {
	var ae *apiError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		switch ae.kind {
		case kindInvalid:
			return http.StatusBadRequest, "invalid_argument", 0
		case kindUnauthenticated:
			return http.StatusUnauthorized, "unauthenticated", 0
		case kindForbidden:
			return http.StatusForbidden, "permission_denied", 0
		case kindTooLarge:
			return http.StatusRequestEntityTooLarge, "resource_exhausted", 0
		case kindRateLimited:
			ra := ae.retryAfter
			if ra < time.Second {
				ra = time.Second
			}
			return http.StatusTooManyRequests, "resource_exhausted", ra
		case kindNotFound:
			return http.StatusNotFound, "not_found", 0
		case kindUnavailable:
			return http.StatusServiceUnavailable, "unavailable", errRetry
		}
	case errors.Is(err, ErrUnauthenticated):
		return http.StatusUnauthorized, "unauthenticated", 0
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, "resource_exhausted", 0
	case errors.Is(err, wire.ErrBadBundle):
		return http.StatusBadRequest, "invalid_argument", 0
	case errors.Is(err, store.ErrFull):
		return http.StatusServiceUnavailable, "unavailable", errRetry
	case errors.Is(err, store.ErrClosed):
		return http.StatusServiceUnavailable, "unavailable", 5 * time.Second
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "not_found", 0
	case errors.Is(err, store.ErrInvalid):
		return http.StatusBadRequest, "invalid_argument", 0
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict, "already_exists", 0
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "deadline_exceeded", 5 * time.Second
	case errors.Is(err, context.Canceled):
		// The client went away or the server is stopping: retryable.
		return http.StatusServiceUnavailable, "canceled", 5 * time.Second
	}
	return http.StatusInternalServerError, "internal", 0
}

// writeError answers with err as {"code": …, "message": …}, the Connect
// error shape, which the JSON API uses too.
func writeError(w http.ResponseWriter, err error) {
	status, code, ra := statusOf(err)
	if ra > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((ra+time.Second-1)/time.Second)))
	}
	msg := err.Error()
	if status == http.StatusInternalServerError {
		msg = "internal error: " + msg
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"code": code, "message": msg})
}
