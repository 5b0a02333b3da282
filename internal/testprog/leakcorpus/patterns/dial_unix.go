//go:build unix

package patterns

import (
	"context"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

// backlogListener is a TCP socket listening with a backlog of 0 that never
// accepts: once its accept queue is full the kernel drops further SYNs, so a
// Dial without a timeout hangs in connect (a dependency that stopped
// accepting). The standard library always listens with somaxconn, hence the
// raw socket.
type backlogListener struct {
	fd    int
	addr  string
	held  []net.Conn
	probe time.Duration
}

func newBacklogListener() (*backlogListener, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("bind 127.0.0.1:0: %w", err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("listen: %w", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("getsockname: %w", err)
	}
	l := &backlogListener{fd: fd, addr: fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)}
	// Fill the accept queue so that the next SYNs are dropped.
	for i := 0; i < 8; i++ {
		c, err := net.DialTimeout("tcp", l.addr, 200*time.Millisecond)
		if err != nil {
			return l, nil
		}
		l.held = append(l.held, c)
	}
	l.close()
	return nil, fmt.Errorf("listener with backlog 0 at %s kept accepting connections: the kernel does not drop SYNs on a full queue here", l.addr)
}

func (l *backlogListener) close() {
	for _, c := range l.held {
		_ = c.Close()
	}
	_ = syscall.Close(l.fd)
}

// connectWithRetry retries the dial until it succeeds, with no timeout on the
// dial and no context: against a peer that stopped accepting it spends its
// life inside connect.
func connectWithRetry(addr string) {
	backoff := 10 * time.Millisecond
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
			return
		}
		time.Sleep(backoff)
		if backoff < time.Second {
			backoff *= 2
		}
	}
}

func startDialRetry(context.Context) (*instance, error) {
	l, err := newBacklogListener()
	if err != nil {
		return nil, err
	}
	return &instance{
		request: func(_ context.Context, n int) {
			if n%5 == 0 {
				go connectWithRetry(l.addr)
			}
		},
		stop: l.close,
	}, nil
}

// notifySignal is the signal the signal-notify pattern handles.
var notifySignal os.Signal = syscall.SIGUSR1

// raiseSignal sends notifySignal to this process.
func raiseSignal() error { return syscall.Kill(os.Getpid(), syscall.SIGUSR1) }
