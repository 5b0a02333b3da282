package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"

	"github.com/gopulse/gopulse/internal/demo"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:6060", "address to serve the demo and its net/http/pprof on")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: gopulse demo [--listen ADDR] leaky|healthy\n\nA self-driving \"checkout\" service serving net/http/pprof: 'leaky' leaks goroutines\nat a visible rate, 'healthy' does not. Then: gopulse leaks http://ADDR\n\n")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if len(pos) != 1 {
		fs.Usage()
		return usageError{"give one demo: leaky or healthy"}
	}
	v := demo.Variant(pos[0])
	if v != demo.Leaky && v != demo.Healthy {
		return usageError{fmt.Sprintf("unknown demo %q: want leaky or healthy", pos[0])}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("demo: listen on %s: %w (pick another with --listen)", *listen, err)
	}
	return demo.Run(ctx, v, ln, stdout)
}
