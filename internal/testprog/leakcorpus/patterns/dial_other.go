//go:build !unix

package patterns

import (
	"context"
	"errors"
	"os"
)

func connectWithRetry(addr string) {}

func startDialRetry(context.Context) (*instance, error) {
	return nil, errors.New("the dial-retry-stuck pattern needs a unix socket API to listen with a backlog of 0")
}

var notifySignal os.Signal = os.Interrupt

func raiseSignal() error { return nil }
