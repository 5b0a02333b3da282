package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gopulse/gopulse/store"
)

const findingCols = `f.id, i.service, i.instance_id, f.kind, f.fkey, f.severity, f.title, f.summary, f.details, f.bundle_ids, f.state, f.opened_at, f.last_seen, f.resolved_at`

func scanFinding(sc interface{ Scan(...any) error }) (store.Finding, error) {
	var f store.Finding
	var bundles, state string
	var opened, last, resolved int64
	if err := sc.Scan(&f.ID, &f.Instance.Service, &f.Instance.ID, &f.Kind, &f.Key, &f.Severity, &f.Title, &f.Summary, &f.Details, &bundles, &state, &opened, &last, &resolved); err != nil {
		return f, err
	}
	f.State = store.FindingState(state)
	f.OpenedAt, f.LastSeen, f.ResolvedAt = fromMs(opened), fromMs(last), fromMs(resolved)
	if err := json.Unmarshal([]byte(bundles), &f.BundleIDs); err != nil {
		return f, fmt.Errorf("finding %d bundle ids: %w", f.ID, err)
	}
	return f, nil
}

func addEvent(t *wtx, id int64, at time.Time, state store.FindingState, note string) error {
	_, err := t.exec(`INSERT INTO finding_events (finding, seq, at, state, note)
VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM finding_events WHERE finding = ?), ?, ?, ?)`, id, id, ms(at), string(state), note)
	return err
}

// Observe implements store.Findings.
func (s *Store) Observe(ctx context.Context, o store.Observation) (store.Finding, error) {
	if o.Instance.Service == "" || o.Instance.ID == "" || o.Kind == "" || o.At.IsZero() {
		return store.Finding{}, fmt.Errorf("%w: observation needs Instance, Kind and At", store.ErrInvalid)
	}
	var id int64
	err := s.write(ctx, func(t *wtx) error {
		var inst int64
		err := t.queryRow(`SELECT id FROM instances WHERE service = ? AND instance_id = ?`, o.Instance.Service, o.Instance.ID).Scan(&inst)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("observe %s on %s/%s: instance %w", o.Kind, o.Instance.Service, o.Instance.ID, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		var state, bundles string
		err = t.queryRow(`SELECT id, state, bundle_ids FROM findings WHERE instance = ? AND kind = ? AND fkey = ?`, inst, o.Kind, o.Key).Scan(&id, &state, &bundles)
		if errors.Is(err, sql.ErrNoRows) {
			ids := o.BundleIDs
			if ids == nil {
				ids = []string{}
			}
			b, _ := json.Marshal(ids)
			err := t.queryRow(`INSERT INTO findings (instance, kind, fkey, severity, title, summary, details, bundle_ids, state, opened_at, last_seen, resolved_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0) RETURNING id`, inst, o.Kind, o.Key, o.Severity, o.Title, o.Summary, o.Details, string(b), string(store.FindingOpen), ms(o.At), ms(o.At)).Scan(&id)
			if err != nil {
				return fmt.Errorf("insert finding: %w", err)
			}
			return addEvent(t, id, o.At, store.FindingOpen, "")
		}
		if err != nil {
			return err
		}
		var ids []string
		if err := json.Unmarshal([]byte(bundles), &ids); err != nil {
			return err
		}
		for _, b := range o.BundleIDs {
			if !slices.Contains(ids, b) {
				ids = append(ids, b)
			}
		}
		b, _ := json.Marshal(ids)
		if _, err := t.exec(`UPDATE findings SET severity = ?, title = ?, summary = ?, details = ?, bundle_ids = ?, state = ?, resolved_at = 0,
last_seen = CASE WHEN ? > last_seen THEN ? ELSE last_seen END WHERE id = ?`,
			o.Severity, o.Title, o.Summary, o.Details, string(b), string(store.FindingOpen), ms(o.At), ms(o.At), id); err != nil {
			return fmt.Errorf("update finding %d: %w", id, err)
		}
		if state != string(store.FindingOpen) {
			return addEvent(t, id, o.At, store.FindingOpen, "reopened")
		}
		return nil
	})
	if err != nil {
		return store.Finding{}, err
	}
	return s.GetFinding(ctx, id)
}

// Resolve implements store.Findings.
func (s *Store) Resolve(ctx context.Context, id int64, at time.Time, note string) error {
	return s.write(ctx, func(t *wtx) error {
		var state string
		err := t.queryRow(`SELECT state FROM findings WHERE id = ?`, id).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("resolve finding %d: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if state != string(store.FindingOpen) {
			return fmt.Errorf("resolve finding %d: %w: it is %s", id, store.ErrConflict, state)
		}
		if _, err := t.exec(`UPDATE findings SET state = ?, resolved_at = ? WHERE id = ?`, string(store.FindingResolved), ms(at), id); err != nil {
			return err
		}
		return addEvent(t, id, at, store.FindingResolved, note)
	})
}

// GetFinding implements store.Findings.
func (s *Store) GetFinding(ctx context.Context, id int64) (store.Finding, error) {
	f, err := scanFinding(s.r.QueryRowContext(ctx, `SELECT `+findingCols+` FROM findings f JOIN instances i ON i.id = f.instance WHERE f.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return f, fmt.Errorf("finding %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return f, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT at, state, note FROM finding_events WHERE finding = ? ORDER BY seq`, id)
	if err != nil {
		return f, err
	}
	defer rows.Close()
	for rows.Next() {
		var e store.FindingEvent
		var at int64
		var state string
		if err := rows.Scan(&at, &state, &e.Note); err != nil {
			return f, err
		}
		e.At, e.State = fromMs(at), store.FindingState(state)
		f.History = append(f.History, e)
	}
	return f, rows.Err()
}

// ListFindings implements store.Findings.
func (s *Store) ListFindings(ctx context.Context, ff store.FindingFilter) ([]store.Finding, error) {
	q := `SELECT ` + findingCols + ` FROM findings f JOIN instances i ON i.id = f.instance WHERE 1 = 1`
	var args []any
	if ff.Service != "" {
		q += ` AND i.service = ?`
		args = append(args, ff.Service)
		if ff.Instance != "" {
			q += ` AND i.instance_id = ?`
			args = append(args, ff.Instance)
		}
	}
	if ff.Kind != "" {
		q += ` AND f.kind = ?`
		args = append(args, ff.Kind)
	}
	if ff.State != "" {
		q += ` AND f.state = ?`
		args = append(args, string(ff.State))
	}
	limit := ff.Limit
	if limit <= 0 {
		limit = 100
	}
	q += ` ORDER BY f.last_seen DESC, f.id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list findings: %w", err)
	}
	defer rows.Close()
	var out []store.Finding
	for rows.Next() {
		f, err := scanFinding(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}
