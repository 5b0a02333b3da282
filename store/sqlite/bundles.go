package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gopulse/gopulse/store"
)

// Bundle bodies are blobs under bundles/<upload>/<n>, where upload is
// random per BeginBundle; the bundles row records the prefix. Blobs whose
// prefix no row names are leftovers of an aborted or crashed upload and
// are removed by sweepOrphans.

type bundleWriter struct {
	s      *Store
	upload string
	files  []store.BundleFile
	keys   []string
	total  int64
	done   bool
}

// BeginBundle implements store.Bundles.
func (s *Store) BeginBundle(ctx context.Context) (store.BundleWriter, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	return &bundleWriter{s: s, upload: hex.EncodeToString(b[:])}, nil
}

func (w *bundleWriter) prefix() string { return "bundles/" + w.upload }

// WriteFile implements store.BundleWriter.
func (w *bundleWriter) WriteFile(ctx context.Context, name, contentType string, r io.Reader) (store.BundleFile, error) {
	if w.done {
		return store.BundleFile{}, fmt.Errorf("%w: bundle writer already committed or aborted", store.ErrInvalid)
	}
	if name == "" || len(name) > 255 {
		return store.BundleFile{}, fmt.Errorf("%w: bundle file name %q (want 1–255 bytes)", store.ErrInvalid, name)
	}
	for _, f := range w.files {
		if f.Name == name {
			return store.BundleFile{}, fmt.Errorf("%w: bundle file %q written twice", store.ErrInvalid, name)
		}
	}
	if err := w.s.checkDisk(ctx); err != nil {
		return store.BundleFile{}, err
	}
	key := fmt.Sprintf("%s/%d", w.prefix(), len(w.files))
	left := w.s.ret.BundleBytes - w.total
	if left <= 0 {
		return store.BundleFile{}, fmt.Errorf("%w: bundle exceeds the bundle size cap of %d bytes", store.ErrFull, w.s.ret.BundleBytes)
	}
	n, sum, err := w.s.blobs.Put(ctx, key, r, left)
	if err != nil {
		if errors.Is(err, store.ErrFull) {
			err = fmt.Errorf("bundle file %s: %w (bundle size cap %d bytes)", name, err, w.s.ret.BundleBytes)
		}
		return store.BundleFile{}, err
	}
	f := store.BundleFile{Name: name, ContentType: contentType, Size: n, SHA256: sum}
	w.files = append(w.files, f)
	w.keys = append(w.keys, key)
	w.total += n
	return f, nil
}

// Abort implements store.BundleWriter.
func (w *bundleWriter) Abort(ctx context.Context) error {
	if w.done {
		return nil
	}
	w.done = true
	return w.deleteBlobs(ctx)
}

func (w *bundleWriter) deleteBlobs(ctx context.Context) error {
	var errs []error
	for _, k := range w.keys {
		errs = append(errs, w.s.blobs.Delete(context.WithoutCancel(ctx), k))
	}
	return errors.Join(errs...)
}

// Commit implements store.BundleWriter.
func (w *bundleWriter) Commit(ctx context.Context, b store.Bundle) (bool, error) {
	if w.done {
		return false, fmt.Errorf("%w: bundle writer already committed or aborted", store.ErrInvalid)
	}
	fail := func(err error) (bool, error) {
		w.done = true
		return false, errors.Join(err, w.deleteBlobs(ctx))
	}
	if b.ID == "" || b.Instance.Service == "" || b.Instance.ID == "" || b.ReceivedAt.IsZero() {
		return fail(fmt.Errorf("%w: bundle needs ID, Instance and ReceivedAt (got %q, %s/%s)", store.ErrInvalid, b.ID, b.Instance.Service, b.Instance.ID))
	}
	files := w.files
	if b.Files != nil {
		merged, err := matchManifest(w.files, b.Files)
		if err != nil {
			return fail(fmt.Errorf("bundle %s: %w", b.ID, err))
		}
		files = merged
	}
	values, _ := json.Marshal(b.Values)
	notes, _ := json.Marshal(b.Notes)
	var dup bool
	err := w.s.write(ctx, func(t *wtx) error {
		var one int
		err := t.queryRow(`SELECT 1 FROM bundles WHERE id = ?`, b.ID).Scan(&one)
		if err == nil {
			dup = true
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var inst int64
		err = t.queryRow(`SELECT id FROM instances WHERE service = ? AND instance_id = ?`, b.Instance.Service, b.Instance.ID).Scan(&inst)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("bundle %s: instance %s/%s: %w (UpsertInstance first)", b.ID, b.Instance.Service, b.Instance.ID, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if _, err := t.exec(`UPDATE instances SET last_seen = ? WHERE id = ? AND last_seen < ?`, ms(b.ReceivedAt), inst, ms(b.ReceivedAt)); err != nil {
			return err
		}
		if _, err := t.exec(`INSERT INTO bundles (id, instance, rule, reason, fired_at, received_at, rule_values, notes, capture_stw, size, blob_prefix)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, b.ID, inst, b.Rule, b.Reason, ms(b.FiredAt), ms(b.ReceivedAt), string(values), string(notes), b.CaptureSTWSeconds, w.total, w.prefix()); err != nil {
			return fmt.Errorf("insert bundle %s: %w", b.ID, err)
		}
		for i, f := range files {
			if _, err := t.exec(`INSERT INTO bundle_files (bundle, idx, name, content_type, size, sha256, note, blob_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				b.ID, i, f.Name, f.ContentType, f.Size, f.SHA256[:], f.Note, w.keys[indexOf(w.files, f.Name)]); err != nil {
				return fmt.Errorf("insert bundle %s file %s: %w", b.ID, f.Name, err)
			}
		}
		return rememberTx(t, b.ID, w.s.opts.Now().Add(w.s.ret.Idempotency))
	})
	if err != nil {
		return fail(err)
	}
	w.done = true
	if dup {
		return true, w.deleteBlobs(ctx)
	}
	if w.s.bundleBytes.Add(w.total) > w.s.ret.BundleBytes {
		if _, err := w.s.evictBundles(context.WithoutCancel(ctx), time.Time{}); err != nil {
			return false, fmt.Errorf("bundle %s stored, but evicting old bundles failed: %w", b.ID, err)
		}
	}
	return false, nil
}

func indexOf(files []store.BundleFile, name string) int {
	for i, f := range files {
		if f.Name == name {
			return i
		}
	}
	return -1
}

// matchManifest checks the sender's manifest against the files written and
// returns the files in manifest order with the manifest's notes and types.
func matchManifest(written, manifest []store.BundleFile) ([]store.BundleFile, error) {
	if len(manifest) != len(written) {
		return nil, fmt.Errorf("%w: manifest lists %d files, %d were received", store.ErrInvalid, len(manifest), len(written))
	}
	var zero [32]byte
	out := make([]store.BundleFile, 0, len(manifest))
	for _, m := range manifest {
		i := indexOf(written, m.Name)
		if i < 0 {
			return nil, fmt.Errorf("%w: manifest lists file %q that was not received", store.ErrInvalid, m.Name)
		}
		f := written[i]
		if m.Size != f.Size {
			return nil, fmt.Errorf("%w: file %q: manifest says %d bytes, received %d", store.ErrInvalid, m.Name, m.Size, f.Size)
		}
		if m.SHA256 != zero && m.SHA256 != f.SHA256 {
			return nil, fmt.Errorf("%w: file %q: SHA-256 differs from the manifest", store.ErrInvalid, m.Name)
		}
		if m.ContentType != "" {
			f.ContentType = m.ContentType
		}
		f.Note = m.Note
		out = append(out, f)
	}
	return out, nil
}

// evictBundles deletes bundles received before olderThan, then the oldest
// ones until the total size is within the cap. Index rows go first, blobs
// after: a crash in between leaves only orphan blobs for sweepOrphans.
func (s *Store) evictBundles(ctx context.Context, olderThan time.Time) (int, error) {
	type victim struct {
		id, prefix string
		size       int64
	}
	var victims []victim
	err := s.write(ctx, func(t *wtx) error {
		victims = victims[:0]
		rows, err := t.query(`SELECT id, blob_prefix, size, received_at FROM bundles ORDER BY received_at, id`)
		if err != nil {
			return err
		}
		total := s.bundleBytes.Load()
		cut := ms(olderThan)
		for rows.Next() {
			var v victim
			var recv int64
			if err := rows.Scan(&v.id, &v.prefix, &v.size, &recv); err != nil {
				rows.Close()
				return err
			}
			if recv >= cut && total <= s.ret.BundleBytes {
				break
			}
			victims = append(victims, v)
			total -= v.size
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, v := range victims {
			if _, err := t.exec(`DELETE FROM bundles WHERE id = ?`, v.id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("evict bundles: %w", err)
	}
	var errs []error
	for _, v := range victims {
		s.bundleBytes.Add(-v.size)
		errs = append(errs, s.blobs.List(ctx, v.prefix+"/", func(key string, _ int64, _ time.Time) error {
			return s.blobs.Delete(ctx, key)
		}))
	}
	return len(victims), errors.Join(errs...)
}

// sweepOrphans deletes bundle blobs that no bundle row names and that are
// older than minAge (uploads in progress are younger).
func (s *Store) sweepOrphans(ctx context.Context, minAge time.Duration) (int64, error) {
	type blob struct {
		key string
		mod time.Time
	}
	byPrefix := map[string][]blob{}
	err := s.blobs.List(ctx, "bundles/", func(key string, _ int64, mod time.Time) error {
		parts := strings.SplitN(key, "/", 3)
		if len(parts) == 3 {
			p := parts[0] + "/" + parts[1]
			byPrefix[p] = append(byPrefix[p], blob{key, mod})
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("list bundle blobs: %w", err)
	}
	var n int64
	cut := time.Now().Add(-minAge)
	for p, blobs := range byPrefix {
		var one int
		err := s.r.QueryRowContext(ctx, `SELECT 1 FROM bundles WHERE blob_prefix = ?`, p).Scan(&one)
		if err == nil {
			continue
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return n, err
		}
		for _, b := range blobs {
			if minAge > 0 && b.mod.After(cut) {
				continue
			}
			if err := s.blobs.Delete(ctx, b.key); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

const bundleCols = `b.id, i.service, i.instance_id, b.rule, b.reason, b.fired_at, b.received_at, b.rule_values, b.notes, b.capture_stw, b.size`

func scanBundle(sc interface{ Scan(...any) error }) (store.Bundle, error) {
	var b store.Bundle
	var fired, recv int64
	var values, notes string
	if err := sc.Scan(&b.ID, &b.Instance.Service, &b.Instance.ID, &b.Rule, &b.Reason, &fired, &recv, &values, &notes, &b.CaptureSTWSeconds, &b.Size); err != nil {
		return b, err
	}
	b.FiredAt, b.ReceivedAt = fromMs(fired), fromMs(recv)
	if err := json.Unmarshal([]byte(values), &b.Values); err != nil {
		return b, fmt.Errorf("bundle %s values: %w", b.ID, err)
	}
	if err := json.Unmarshal([]byte(notes), &b.Notes); err != nil {
		return b, fmt.Errorf("bundle %s notes: %w", b.ID, err)
	}
	return b, nil
}

func (s *Store) bundleFiles(ctx context.Context, id string) ([]store.BundleFile, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, content_type, size, sha256, note FROM bundle_files WHERE bundle = ? ORDER BY idx`, id)
	if err != nil {
		return nil, fmt.Errorf("bundle %s files: %w", id, err)
	}
	defer rows.Close()
	var out []store.BundleFile
	for rows.Next() {
		var f store.BundleFile
		var sum []byte
		if err := rows.Scan(&f.Name, &f.ContentType, &f.Size, &sum, &f.Note); err != nil {
			return nil, err
		}
		copy(f.SHA256[:], sum)
		out = append(out, f)
	}
	return out, rows.Err()
}

// GetBundle implements store.Bundles.
func (s *Store) GetBundle(ctx context.Context, id string) (store.Bundle, error) {
	b, err := scanBundle(s.r.QueryRowContext(ctx, `SELECT `+bundleCols+` FROM bundles b JOIN instances i ON i.id = b.instance WHERE b.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return b, fmt.Errorf("bundle %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return b, err
	}
	b.Files, err = s.bundleFiles(ctx, id)
	return b, err
}

// OpenBundleFile implements store.Bundles.
func (s *Store) OpenBundleFile(ctx context.Context, id, name string) (io.ReadCloser, store.BundleFile, error) {
	var f store.BundleFile
	var sum []byte
	var key string
	err := s.r.QueryRowContext(ctx, `SELECT name, content_type, size, sha256, note, blob_key FROM bundle_files WHERE bundle = ? AND name = ?`, id, name).
		Scan(&f.Name, &f.ContentType, &f.Size, &sum, &f.Note, &key)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, f, fmt.Errorf("bundle %s file %s: %w", id, name, store.ErrNotFound)
	}
	if err != nil {
		return nil, f, err
	}
	copy(f.SHA256[:], sum)
	rc, err := s.blobs.Open(ctx, key)
	if err != nil {
		return nil, f, fmt.Errorf("bundle %s file %s: %w", id, name, err)
	}
	return rc, f, nil
}

// ListBundles implements store.Bundles.
func (s *Store) ListBundles(ctx context.Context, f store.BundleFilter) ([]store.Bundle, error) {
	q := `SELECT ` + bundleCols + ` FROM bundles b JOIN instances i ON i.id = b.instance WHERE b.fired_at >= ?`
	args := []any{ms(f.Since)}
	if f.Service != "" {
		q += ` AND i.service = ?`
		args = append(args, f.Service)
		if f.Instance != "" {
			q += ` AND i.instance_id = ?`
			args = append(args, f.Instance)
		}
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	q += ` ORDER BY b.fired_at DESC, b.id LIMIT ?`
	args = append(args, limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list bundles: %w", err)
	}
	var out []store.Bundle
	for rows.Next() {
		b, err := scanBundle(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		if out[i].Files, err = s.bundleFiles(ctx, out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}
