package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/gopulse/gopulse/collector"
	"github.com/gopulse/gopulse/store"
	"github.com/gopulse/gopulse/store/sqlite"
)

const tokenUsage = `usage:
  gopulse token create --service NAME [--note TEXT] [--data DIR]   print a new ingest token (shown once)
  gopulse token list [--service NAME] [--data DIR]
  gopulse token revoke [--data DIR] ID

Tokens are stored hashed in the server's data directory. Agents send them
as GOPULSE_TOKEN (agent.Options.Token).
`

// runToken is `gopulse token`.
func runToken(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, tokenUsage)
		return usageError{"token: want create, list or revoke"}
	}
	fs := flag.NewFlagSet("token "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, tokenUsage) }
	data := fs.String("data", "./gopulse-data", "the server's data directory")
	service := fs.String("service", "", "the service the token may write")
	note := fs.String("note", "", "a note kept with the token")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	open := func() (*sqlite.Store, error) {
		st, err := sqlite.Open(ctx, *data, sqlite.Options{})
		if err != nil {
			return nil, fmt.Errorf("open data directory %s: %w (is --data right?)", *data, err)
		}
		return st, nil
	}
	switch args[0] {
	case "create":
		if *service == "" || len(pos) > 0 {
			return usageError{"token create: --service NAME is required (and nothing else)"}
		}
		st, err := open()
		if err != nil {
			return err
		}
		defer st.Close()
		secret, err := collector.NewTokenSecret()
		if err != nil {
			return err
		}
		now := time.Now()
		id := fmt.Sprintf("tok-%s-%x", now.UTC().Format("20060102T150405"), now.UnixNano()&0xffffff)
		if err := st.CreateToken(ctx, store.Token{ID: id, Service: *service, Note: *note, CreatedAt: now}, store.HashToken(secret)); err != nil {
			return fmt.Errorf("store token: %w", err)
		}
		fmt.Fprintln(stdout, secret)
		fmt.Fprintf(stderr, "token %s for service %q created; it is shown only now. Agents use it as GOPULSE_TOKEN.\n", id, *service)
		return nil
	case "list":
		st, err := open()
		if err != nil {
			return err
		}
		defer st.Close()
		toks, err := st.ListTokens(ctx, *service)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSERVICE\tCREATED\tREVOKED\tNOTE")
		for _, t := range toks {
			rev := "-"
			if !t.RevokedAt.IsZero() {
				rev = t.RevokedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Service, t.CreatedAt.Format(time.RFC3339), rev, t.Note)
		}
		return tw.Flush()
	case "revoke":
		if len(pos) != 1 {
			return usageError{"token revoke: give exactly one token ID (see gopulse token list)"}
		}
		st, err := open()
		if err != nil {
			return err
		}
		defer st.Close()
		if err := st.RevokeToken(ctx, pos[0], time.Now()); err != nil {
			return fmt.Errorf("revoke %s: %w", pos[0], err)
		}
		fmt.Fprintf(stdout, "token %s revoked (servers stop accepting it within 1 s)\n", pos[0])
		return nil
	}
	fmt.Fprint(stderr, tokenUsage)
	return usageError{fmt.Sprintf("token: unknown subcommand %q", args[0])}
}
