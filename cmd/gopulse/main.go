// Command gopulse finds out why a Go service is slow, leaking or near its
// limit, and shows the evidence.
//
//	gopulse leaks [flags] TARGET...   goroutine leak report for a live service or dump files
//	gopulse demo leaky|healthy        a self-driving demo service serving net/http/pprof
//
// Run `gopulse help` for details.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitStatus(err, os.Stderr))
}

// errLeaksFound makes `gopulse leaks` exit 1: a finding, not a failure.
var errLeaksFound = errors.New("leaks found")

// usageError is bad command-line input: exit 2 with the message.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// exitStatus maps run's result to the process exit status: 0 fine, 1 leaks
// found, 2 anything that went wrong (printed as one line).
func exitStatus(err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errLeaksFound):
		return 1
	case errors.Is(err, flag.ErrHelp):
		return 0
	}
	fmt.Fprintf(stderr, "gopulse: %v\n", err)
	return 2
}

const usage = `gopulse — diagnostics for Go services

usage:
  gopulse server [flags]            the collector: API, ingest, scraping (run 'gopulse server -h')
  gopulse token create --service S  create an ingest token for a service's agents
  gopulse leaks [flags] TARGET...   goroutine leak report (run 'gopulse leaks -h')
  gopulse gc [flags] TARGET         GC analysis and advice (run 'gopulse gc -h')
  gopulse ramp [flags] URL          capacity limit under a latency SLO (run 'gopulse ramp -h')
  gopulse demo leaky|healthy        run a demo service serving net/http/pprof
  gopulse version                   print the version

try:
  gopulse leaks --demo              start the leaky demo and find its leaks
`

// run is the whole program minus os.Exit, so tests can drive it in-process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "leaks":
		return runLeaks(ctx, args[1:], stdin, stdout, stderr)
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr)
	case "server":
		return runServer(ctx, args[1:], stdin, stdout, stderr)
	case "token":
		return runToken(ctx, args[1:], stdin, stdout, stderr)
	case "gc":
		return runGC(ctx, args[1:], stdin, stdout, stderr)
	case "ramp":
		return runRamp(ctx, args[1:], stdin, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

// parseInterspersed parses flags that may come before or after the
// positional arguments ("gopulse leaks URL --format json"), which the flag
// package alone does not allow.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
		if pos[len(pos)-1] == "--" {
			return append(pos[:len(pos)-1], args...), nil
		}
	}
}
