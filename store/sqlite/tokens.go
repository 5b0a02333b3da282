package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/gopulse/gopulse/store"
)

// CreateToken implements store.Tokens.
func (s *Store) CreateToken(ctx context.Context, tk store.Token, hash [sha256.Size]byte) error {
	if tk.ID == "" || tk.CreatedAt.IsZero() {
		return fmt.Errorf("%w: token needs an ID and CreatedAt", store.ErrInvalid)
	}
	return s.write(ctx, func(t *wtx) error {
		_, err := t.exec(`INSERT INTO tokens (id, hash, service, note, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)`,
			tk.ID, hash[:], tk.Service, tk.Note, ms(tk.CreatedAt), ms(tk.RevokedAt))
		if isConstraint(err) {
			return fmt.Errorf("create token %s: %w: ID or hash exists", tk.ID, store.ErrConflict)
		}
		return err
	})
}

func scanToken(sc interface{ Scan(...any) error }) (store.Token, error) {
	var tk store.Token
	var created, revoked int64
	err := sc.Scan(&tk.ID, &tk.Service, &tk.Note, &created, &revoked)
	tk.CreatedAt, tk.RevokedAt = fromMs(created), fromMs(revoked)
	return tk, err
}

// LookupToken implements store.Tokens.
func (s *Store) LookupToken(ctx context.Context, hash [sha256.Size]byte) (store.Token, error) {
	tk, err := scanToken(s.r.QueryRowContext(ctx, `SELECT id, service, note, created_at, revoked_at FROM tokens WHERE hash = ? AND revoked_at = 0`, hash[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return tk, fmt.Errorf("token: %w", store.ErrNotFound)
	}
	return tk, err
}

// ListTokens implements store.Tokens.
func (s *Store) ListTokens(ctx context.Context, service string) ([]store.Token, error) {
	q := `SELECT id, service, note, created_at, revoked_at FROM tokens`
	var args []any
	if service != "" {
		q += ` WHERE service = ?`
		args = append(args, service)
	}
	rows, err := s.r.QueryContext(ctx, q+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []store.Token
	for rows.Next() {
		tk, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, tk)
	}
	return out, rows.Err()
}

// RevokeToken implements store.Tokens.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	return s.write(ctx, func(t *wtx) error {
		res, err := t.exec(`UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at = 0`, ms(at), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var one int
			if err := t.queryRow(`SELECT 1 FROM tokens WHERE id = ?`, id).Scan(&one); errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("revoke token %s: %w", id, store.ErrNotFound)
			}
		}
		return nil
	})
}
