// Command sockets is a fixture program for internal/procfs: it leaves TCP
// sockets on 127.0.0.1 in known states and holds them until its standard
// input closes, so a test can compare what /proc shows with what it did.
//
// It listens on 127.0.0.1:0 and connects -n clients to itself, then:
//
//   - for -close-wait of them the client closes and the server never does:
//     the server's end stays in CLOSE_WAIT (the bug pattern: a peer hung up
//     and the program forgot to close);
//   - for -time-wait of them the server closes first, then the client: the
//     server's end goes to TIME_WAIT, with no descriptor, on the listening
//     port;
//   - the rest stay open: two ESTABLISHED sockets each, client and server.
//
// It prints "listening <port>" and then "ready" on stdout, and exits when
// stdin reaches EOF.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sockets:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("n", 10, "client connections to open")
	closeWait := flag.Int("close-wait", 3, "connections to leave in CLOSE_WAIT on the server side")
	timeWait := flag.Int("time-wait", 2, "connections the server closes first, leaving TIME_WAIT")
	flag.Parse()
	if *closeWait+*timeWait > *n {
		return fmt.Errorf("-close-wait %d plus -time-wait %d exceed -n %d", *closeWait, *timeWait, *n)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "listening %d\n", ln.Addr().(*net.TCPAddr).Port)
	if err := out.Flush(); err != nil {
		return err
	}

	// Dial and accept one connection at a time so each client is paired
	// with the server end that accepted it.
	clients := make([]net.Conn, *n)
	servers := make([]net.Conn, *n)
	for i := range *n {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			return fmt.Errorf("dial %d: %w", i, err)
		}
		s, err := ln.Accept()
		if err != nil {
			return fmt.Errorf("accept %d: %w", i, err)
		}
		clients[i], servers[i] = c, s
	}

	for i := range *closeWait {
		if err := clients[i].Close(); err != nil {
			return err
		}
	}
	for i := *closeWait; i < *closeWait+*timeWait; i++ {
		if err := servers[i].Close(); err != nil {
			return err
		}
		// Wait for the client to see the server's FIN before closing it,
		// so the server's end, not the client's, ends in TIME_WAIT.
		if err := clients[i].SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			return err
		}
		if _, err := clients[i].Read(make([]byte, 1)); err != io.EOF {
			return fmt.Errorf("client %d: want EOF after the server closed, got %v", i, err)
		}
		if err := clients[i].Close(); err != nil {
			return err
		}
	}
	fmt.Fprintln(out, "ready")
	if err := out.Flush(); err != nil {
		return err
	}

	// Hold everything until the parent is done looking.
	_, err = io.Copy(io.Discard, os.Stdin)
	for i := range *n {
		clients[i].Close()
		servers[i].Close()
	}
	return err
}
