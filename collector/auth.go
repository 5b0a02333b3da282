package collector

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gopulse/gopulse/store"
)

// tokenEntry caches a token lookup: ingest at thousands of batches per
// second should not pay a SQLite lookup for each.
type tokenEntry struct {
	tok     store.Token
	err     error
	expires time.Time
}

// tokenTTL bounds how long a revoked token keeps working. `gopulse token
// revoke` writes the database from its own process, so the server learns
// of it only by looking again: each token in use is looked up at most
// once per tokenTTL (an indexed point query, ≈ 20–50 µs), which at one
// batch per agent every 10 s is at most one lookup per batch.
const tokenTTL = time.Second

// NewTokenSecret returns a fresh random token secret (32 bytes, hex) with
// the "gpt_" prefix that makes leaked tokens easy to grep for.
func NewTokenSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return "gpt_" + hex.EncodeToString(b[:]), nil
}

// bearer returns the bearer token of r, "" when none.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// authenticate resolves the request's bearer token to a stored token.
func (c *Collector) authenticate(r *http.Request) (store.Token, error) {
	secret := bearer(r)
	if secret == "" {
		return store.Token{}, errorf(kindUnauthenticated, "missing ingest token: send \"Authorization: Bearer <token>\" (create one with `gopulse token create --service NAME`)")
	}
	h := store.HashToken(secret)
	now := c.now()
	c.tokMu.Lock()
	e, ok := c.tokCache[h]
	c.tokMu.Unlock()
	if !ok || now.After(e.expires) {
		tok, err := c.st.LookupToken(r.Context(), h)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return store.Token{}, fmt.Errorf("look up token: %w", err)
		}
		e = tokenEntry{tok: tok, err: err, expires: now.Add(tokenTTL)}
		c.tokMu.Lock()
		if len(c.tokCache) > 100_000 {
			clear(c.tokCache) // bound memory against floods of random tokens
		}
		c.tokCache[h] = e
		c.tokMu.Unlock()
	}
	if e.err != nil {
		return store.Token{}, errorf(kindUnauthenticated, "unknown or revoked token")
	}
	return e.tok, nil
}

// authorizeService checks that tok may write data of service.
func authorizeService(tok store.Token, service string) error {
	if tok.Service != "" && tok.Service != service {
		return errorf(kindForbidden, "token %s is for service %q, not %q", tok.ID, tok.Service, service)
	}
	return nil
}
