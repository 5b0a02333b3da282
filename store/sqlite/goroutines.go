package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/gopulse/gopulse/store"
)

// PutGoroutineSnapshot implements store.Goroutines.
func (s *Store) PutGoroutineSnapshot(ctx context.Context, gs store.GoroutineSnapshot) error {
	if gs.Instance.Service == "" || gs.Instance.ID == "" {
		return fmt.Errorf("%w: goroutine snapshot needs an instance", store.ErrInvalid)
	}
	return s.write(ctx, func(t *wtx) error {
		var inst int64
		err := t.queryRow(`SELECT id FROM instances WHERE service = ? AND instance_id = ?`, gs.Instance.Service, gs.Instance.ID).Scan(&inst)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("goroutine snapshot of %s/%s: instance %w", gs.Instance.Service, gs.Instance.ID, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		var id int64
		err = t.queryRow(`INSERT INTO goroutine_snapshots (instance, t, source, goroutines) VALUES (?, ?, ?, ?)
ON CONFLICT (instance, t) DO NOTHING RETURNING id`, inst, gs.Time, gs.Source, gs.Goroutines).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // duplicate: first wins
		}
		if err != nil {
			return fmt.Errorf("insert goroutine snapshot: %w", err)
		}
		for _, g := range gs.Groups {
			if _, err := t.exec(`INSERT INTO goroutine_groups (snapshot, gkey, state, n, leaked, wait_max_ms) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (snapshot, gkey) DO NOTHING`, id, g.Key, g.State, g.Count, g.Leaked, g.WaitMaxMs); err != nil {
				return fmt.Errorf("insert goroutine group %s: %w", g.Key, err)
			}
			if g.Stack != nil {
				if _, err := t.exec(`INSERT INTO goroutine_stacks (gkey, stack, last_used) VALUES (?, ?, ?)
ON CONFLICT (gkey) DO UPDATE SET last_used = CASE WHEN excluded.last_used > goroutine_stacks.last_used THEN excluded.last_used ELSE goroutine_stacks.last_used END`,
					g.Key, g.Stack, gs.Time); err != nil {
					return fmt.Errorf("insert goroutine stack %s: %w", g.Key, err)
				}
			}
		}
		return nil
	})
}

// GoroutineSnapshots implements store.Goroutines.
func (s *Store) GoroutineSnapshots(ctx context.Context, key store.InstanceKey, start, end int64, limit int) ([]store.GoroutineSnapshot, error) {
	id, err := s.instanceID(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	q := `SELECT id, t, source, goroutines FROM goroutine_snapshots WHERE instance = ? AND t >= ? AND t < ? ORDER BY t DESC`
	args := []any{id, start, end}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query goroutine snapshots: %w", err)
	}
	var out []store.GoroutineSnapshot
	var ids []int64
	for rows.Next() {
		gs := store.GoroutineSnapshot{Instance: key}
		var sid int64
		if err := rows.Scan(&sid, &gs.Time, &gs.Source, &gs.Goroutines); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, gs)
		ids = append(ids, sid)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i, sid := range ids {
		grows, err := s.r.QueryContext(ctx, `SELECT g.gkey, g.state, g.n, g.leaked, g.wait_max_ms, st.stack
FROM goroutine_groups g LEFT JOIN goroutine_stacks st ON st.gkey = g.gkey WHERE g.snapshot = ? ORDER BY g.n DESC, g.gkey`, sid)
		if err != nil {
			return nil, err
		}
		for grows.Next() {
			var g store.GoroutineGroup
			if err := grows.Scan(&g.Key, &g.State, &g.Count, &g.Leaked, &g.WaitMaxMs, &g.Stack); err != nil {
				grows.Close()
				return nil, err
			}
			out[i].Groups = append(out[i].Groups, g)
		}
		grows.Close()
		if err := grows.Err(); err != nil {
			return nil, err
		}
	}
	// Ascending time, as documented; the query took the newest `limit`.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}
