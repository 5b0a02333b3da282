package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/gopulse/gopulse/store"
)

// maintainBatch is the number of instances handled per write transaction
// (about 80 series each), so ingest waits at most one batch's work behind
// Maintain.
const maintainBatch = 4

// compactLag delays compacting a finished window, so the last batches of
// the window (delivered up to a few seconds after it ends) are compacted
// with it rather than merged in later.
const compactLag = 2 * 60 * 1000

type rollAgg struct {
	t                   int64
	n                   int64
	sum, min, max, last float64
	lastT               int64
	hist                []uint64
}

// Maintain implements store.Store. Per instance, in one transaction: it
// recomputes the rollups of minutes in [rolled_until, floor(now)) from the
// raw data (chunks and blocks), compacts the blocks of windows that ended
// before now − compactLag into per-series chunks, then deletes raw chunks
// older than both the raw retention and the rolled minutes (so nothing is
// deleted before it is rolled up), and rollups past theirs. Then GC
// records, idempotency keys, findings, goroutine snapshots, bundles and
// orphan blobs.
func (s *Store) Maintain(ctx context.Context, now time.Time) (store.MaintainStats, error) {
	s.maintainMu.Lock()
	defer s.maintainMu.Unlock()
	var st store.MaintainStats
	until := floorMin(now.UnixMilli())
	rawCut := min(floorMin(now.Add(-s.ret.Raw).UnixMilli()), until)
	rollCut := now.Add(-s.ret.Rollup).UnixMilli()
	compactCut := floorWin(until - compactLag)
	// Raise the mark before the first instance is rolled: an Append
	// committed after that instance's transaction then lowers its
	// rolled_until (see Append).
	if s.rollMark.Load() < until {
		s.rollMark.Store(until)
	}
	if err := s.write(ctx, func(t *wtx) error {
		_, err := t.exec(`INSERT INTO meta (k, v) VALUES ('rollup_mark', ?) ON CONFLICT (k) DO UPDATE SET v = CASE WHEN excluded.v > meta.v THEN excluded.v ELSE meta.v END`, until)
		return err
	}); err != nil {
		return st, fmt.Errorf("maintain: %w", err)
	}
	var last int64
	for {
		rows, err := s.r.QueryContext(ctx, `SELECT id FROM instances WHERE id > ? ORDER BY id LIMIT ?`, last, maintainBatch)
		if err != nil {
			return st, fmt.Errorf("maintain: list instances: %w", err)
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return st, err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return st, err
		}
		if len(ids) == 0 {
			break
		}
		last = ids[len(ids)-1]
		// An instance with a backlog (a first run, hours of late data) is
		// worked off over several transactions, so ingest never waits
		// behind more than maxRollSpan / maxCompactWindows of one.
		for pending := ids; len(pending) > 0; {
			var part store.MaintainStats
			var more []int64
			err = s.write(ctx, func(t *wtx) error {
				part, more = store.MaintainStats{}, more[:0]
				for _, id := range pending {
					again, err := maintainInstance(t, id, until, compactCut, rawCut, rollCut, &part)
					if err != nil {
						return fmt.Errorf("instance %d: %w", id, err)
					}
					if again {
						more = append(more, id)
					}
				}
				return nil
			})
			if err != nil {
				return st, fmt.Errorf("maintain: %w", err)
			}
			st.RolledUpSeries += part.RolledUpSeries
			st.DeletedChunks += part.DeletedChunks
			st.DeletedRollups += part.DeletedRollups
			if err := ctx.Err(); err != nil {
				return st, err
			}
			pending = more
		}
	}

	nowMs := now.UnixMilli()
	gcCut := now.Add(-s.ret.Raw).UnixMilli()
	grCut := now.Add(-s.ret.Goroutines).UnixMilli()
	fCut := now.Add(-s.ret.Findings).UnixMilli()
	err := s.write(ctx, func(t *wtx) error {
		st.DeletedGCRecords, st.DeletedKeys, st.DeletedOther = 0, 0, 0
		rows, err := t.query(`SELECT id FROM instances`)
		if err != nil {
			return err
		}
		var insts []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			insts = append(insts, id)
		}
		rows.Close()
		for _, id := range insts {
			for _, q := range []string{
				`DELETE FROM gc_cycles WHERE instance = ? AND end_time < ?`,
				`DELETE FROM gc_gaps WHERE instance = ? AND t < ?`,
			} {
				res, err := t.exec(q, id, gcCut)
				if err != nil {
					return err
				}
				n, _ := res.RowsAffected()
				st.DeletedGCRecords += n
			}
			res, err := t.exec(`DELETE FROM goroutine_snapshots WHERE instance = ? AND t < ?`, id, grCut)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			st.DeletedOther += n
		}
		res, err := t.exec(`DELETE FROM idempotency_keys WHERE expires <= ?`, nowMs)
		if err != nil {
			return err
		}
		st.DeletedKeys, _ = res.RowsAffected()
		for _, q := range []struct {
			sql string
			arg int64
		}{
			{`DELETE FROM findings WHERE state = 'resolved' AND resolved_at < ?`, fCut},
			{`DELETE FROM goroutine_stacks WHERE last_used < ?`, grCut},
		} {
			res, err := t.exec(q.sql, q.arg)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			st.DeletedOther += n
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("maintain: %w", err)
	}
	n, err := s.evictBundles(ctx, now.Add(-s.ret.Bundles))
	st.DeletedBundles = n
	if err != nil {
		return st, fmt.Errorf("maintain: %w", err)
	}
	orphans, err := s.sweepOrphans(ctx, 6*time.Hour)
	st.DeletedOther += orphans
	if err != nil {
		return st, fmt.Errorf("maintain: %w", err)
	}
	s.full.Store(nil) // re-measure on the next write
	return st, nil
}

type seriesMeta struct {
	hist   bool
	bounds []float64
}

// rawPiece is one chunk, or one series' section of a block.
type rawPiece struct {
	series, minT int64
	data         []byte
}

// instanceSeries loads the series of one instance.
func instanceSeries(t *wtx, inst int64) (map[int64]seriesMeta, error) {
	rows, err := t.query(`SELECT id, is_hist, boundaries FROM series WHERE instance = ?`, inst)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]seriesMeta{}
	for rows.Next() {
		var id int64
		var hist int
		var b []byte
		if err := rows.Scan(&id, &hist, &b); err != nil {
			return nil, err
		}
		m := seriesMeta{hist: hist == 1}
		if m.hist {
			m.bounds = decodeFloats(b)
		}
		out[id] = m
	}
	return out, rows.Err()
}

// readRaw returns the chunks of the instance's series with min_t in
// [from, to) and the sections of its blocks with min_t in [bfrom, to).
func readRaw(t *wtx, inst, from, bfrom, to int64) ([]rawPiece, error) {
	var out []rawPiece
	rows, err := t.query(`SELECT series, min_t, data FROM chunks WHERE series IN (SELECT id FROM series WHERE instance = ?) AND min_t >= ? AND min_t < ?`, inst, from, to)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var p rawPiece
		if err := rows.Scan(&p.series, &p.minT, &p.data); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	blocks, err := readBlocks(t, `SELECT min_t, data FROM blocks WHERE instance = ? AND min_t >= ? AND min_t < ?`, inst, bfrom, to)
	return append(out, blocks...), err
}

func readBlocks(t *wtx, q string, args ...any) ([]rawPiece, error) {
	rows, err := t.query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []rawPiece
	for rows.Next() {
		var minT int64
		var data []byte
		if err := rows.Scan(&minT, &data); err != nil {
			return nil, err
		}
		err := forEachSection(data, minT, func(sc blockSection) bool {
			out = append(out, rawPiece{sc.series, sc.minT, sc.data})
			return true
		})
		if err != nil {
			return nil, fmt.Errorf("block at %d: %w", minT, err)
		}
	}
	return out, rows.Err()
}

// maxRollSpan and maxCompactWindows bound one instance's work in one
// transaction (about an hour of its data).
const (
	maxRollSpan       = 60 * 60 * 1000
	maxCompactWindows = 4
)

// maintainInstance rolls up, compacts and applies raw retention for one
// instance. It reports whether work is left (a backlog larger than one
// transaction's share).
func maintainInstance(t *wtx, inst, until, compactCut, rawCut, rollCut int64, st *store.MaintainStats) (bool, error) {
	var from, compacted int64
	if err := t.queryRow(`SELECT rolled_until, compacted_until FROM instances WHERE id = ?`, inst).Scan(&from, &compacted); err != nil {
		return false, err
	}
	series, err := instanceSeries(t, inst)
	if err != nil {
		return false, err
	}
	more := false
	if from < until {
		to := until
		if until-from > maxRollSpan {
			// Skip the minutes before the instance's oldest data (a new
			// instance starts at 0), then take an hour at a time.
			oldest, err := oldestData(t, inst)
			if err != nil {
				return false, err
			}
			from = max(from, min(floorMin(oldest), until))
			to = min(until, from+maxRollSpan)
		}
		if from < to {
			pieces, err := readRaw(t, inst, from-maxChunkSpan, from-window, to)
			if err != nil {
				return false, err
			}
			n, err := rollUp(t, series, pieces, from, to)
			if err != nil {
				return false, err
			}
			st.RolledUpSeries += n
		}
		if _, err := t.exec(`UPDATE instances SET rolled_until = ? WHERE id = ?`, to, inst); err != nil {
			return false, err
		}
		from, more = to, to < until
	}
	again, err := compact(t, inst, series, compactCut, compacted)
	if err != nil {
		return false, fmt.Errorf("compact: %w", err)
	}
	// Nothing is deleted before it is rolled up.
	delCut := min(rawCut, from)
	res, err := t.exec(`DELETE FROM chunks WHERE series IN (SELECT id FROM series WHERE instance = ?) AND min_t < ? AND max_t < ?`, inst, delCut, delCut)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	st.DeletedChunks += n
	res, err = t.exec(`DELETE FROM rollups WHERE series IN (SELECT id FROM series WHERE instance = ?) AND t < ?`, inst, rollCut)
	if err != nil {
		return false, err
	}
	n, _ = res.RowsAffected()
	st.DeletedRollups += n
	return more || again, nil
}

// oldestData is the first timestamp of the instance's raw data
// (math.MaxInt64 when it has none).
func oldestData(t *wtx, inst int64) (int64, error) {
	var b, c sql.NullInt64
	if err := t.queryRow(`SELECT MIN(min_t) FROM blocks WHERE instance = ?`, inst).Scan(&b); err != nil {
		return 0, err
	}
	if err := t.queryRow(`SELECT MIN((SELECT MIN(min_t) FROM chunks WHERE series = s.id)) FROM series s WHERE s.instance = ?`, inst).Scan(&c); err != nil {
		return 0, err
	}
	oldest := int64(math.MaxInt64)
	if b.Valid {
		oldest = b.Int64
	}
	if c.Valid {
		oldest = min(oldest, c.Int64)
	}
	return oldest, nil
}

// mergePieces decodes pieces and calls fn per series with its points in
// ascending time, one per timestamp (pieces may overlap: late or repeated
// deliveries).
func mergePieces(series map[int64]seriesMeta, pieces []rawPiece, fn func(id int64, pts []point) error) error {
	byID := map[int64][]point{}
	var ids []int64
	for _, pc := range pieces {
		meta, ok := series[pc.series]
		if !ok {
			return fmt.Errorf("%w: data of unknown series %d", errCorrupt, pc.series)
		}
		pts, seen := byID[pc.series]
		if !seen {
			ids = append(ids, pc.series)
		}
		err := decodeChunk(pc.data, pc.minT, len(meta.bounds)-1, func(p point) { pts = append(pts, p) })
		if err != nil {
			return fmt.Errorf("series %d at %d: %w", pc.series, pc.minT, err)
		}
		byID[pc.series] = pts
	}
	slices.Sort(ids)
	for _, id := range ids {
		pts := byID[id]
		if !slices.IsSortedFunc(pts, func(a, b point) int { return cmp.Compare(a.t, b.t) }) {
			slices.SortStableFunc(pts, func(a, b point) int { return cmp.Compare(a.t, b.t) })
		}
		pts = slices.CompactFunc(pts, func(a, b point) bool { return a.t == b.t })
		if err := fn(id, pts); err != nil {
			return err
		}
	}
	return nil
}

// rollUp recomputes the rollups of the minutes in [from, until) from
// pieces and reports how many series had data there.
func rollUp(t *wtx, series map[int64]seriesMeta, pieces []rawPiece, from, until int64) (int, error) {
	n := 0
	err := mergePieces(series, pieces, func(id int64, pts []point) error {
		var a *rollAgg
		flush := func() error {
			if a == nil {
				return nil
			}
			var hb []byte
			if series[id].hist && a.hist != nil {
				hb = encodeHist(a.hist)
			}
			_, err := t.exec(`INSERT INTO rollups (series, t, n, sum, min, max, last, last_t, hist) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (series, t) DO UPDATE SET n = excluded.n, sum = excluded.sum, min = excluded.min, max = excluded.max,
  last = excluded.last, last_t = excluded.last_t, hist = excluded.hist`,
				id, a.t, a.n, a.sum, a.min, a.max, a.last, a.lastT, hb)
			return err
		}
		any := false
		for _, p := range pts {
			if p.t < from || p.t >= until {
				continue
			}
			any = true
			if m := floorMin(p.t); a == nil || a.t != m {
				if err := flush(); err != nil {
					return err
				}
				a = &rollAgg{t: m, min: p.v, max: p.v}
			}
			a.n++
			a.sum += p.v
			a.min = minf(a.min, p.v)
			a.max = maxf(a.max, p.v)
			a.last, a.lastT, a.hist = p.v, p.t, p.count
		}
		if any {
			n++
		}
		return flush()
	})
	return n, err
}

// compact rewrites the instance's blocks of windows that ended before cut
// as per-series chunks, one per series and window (split at
// maxChunkPoints), at most maxCompactWindows windows per call; it reports
// whether more are left. A window before compacted was compacted already:
// its late blocks are merged into the window's chunks.
func compact(t *wtx, inst int64, series map[int64]seriesMeta, cut, compacted int64) (bool, error) {
	var oldest sql.NullInt64
	if err := t.queryRow(`SELECT MIN(min_t) FROM blocks WHERE instance = ?`, inst).Scan(&oldest); err != nil {
		return false, err
	}
	more := false
	if oldest.Valid && floorWin(oldest.Int64)+maxCompactWindows*window < cut {
		cut, more = floorWin(oldest.Int64)+maxCompactWindows*window, true
	}
	pieces, err := readBlocks(t, `SELECT min_t, data FROM blocks WHERE instance = ? AND min_t < ? AND max_t < ?`, inst, cut, cut)
	if err != nil {
		return false, err
	}
	if len(pieces) > 0 {
		err = mergePieces(series, pieces, func(id int64, pts []point) error {
			for len(pts) > 0 {
				w := floorWin(pts[0].t)
				end := 1
				for end < len(pts) && floorWin(pts[end].t) == w {
					end++
				}
				win := pts[:end]
				pts = pts[end:]
				if w < compacted {
					old, err := takeChunks(t, id, w, w+window)
					if err != nil {
						return err
					}
					if len(old) > 0 {
						if err := mergePieces(series, append(old, encodePiece(id, series[id].hist, win)), func(_ int64, merged []point) error {
							win = merged
							return nil
						}); err != nil {
							return err
						}
					}
				}
				for len(win) > 0 {
					k := min(len(win), maxChunkPoints)
					c := win[:k]
					win = win[k:]
					if _, err := t.exec(`INSERT INTO chunks (series, min_t, max_t, data) VALUES (?, ?, ?, ?)`,
						id, c[0].t, c[len(c)-1].t, encodeChunk(nil, series[id].hist, c)); err != nil {
						return fmt.Errorf("insert chunk of series %d at %d: %w", id, c[0].t, err)
					}
				}
			}
			return nil
		})
		if err != nil {
			return false, err
		}
		if _, err := t.exec(`DELETE FROM blocks WHERE instance = ? AND min_t < ? AND max_t < ?`, inst, cut, cut); err != nil {
			return false, err
		}
	}
	if cut > compacted {
		if _, err := t.exec(`UPDATE instances SET compacted_until = ? WHERE id = ?`, cut, inst); err != nil {
			return false, err
		}
	}
	return more, nil
}

func encodePiece(id int64, hist bool, pts []point) rawPiece {
	return rawPiece{series: id, minT: pts[0].t, data: encodeChunk(nil, hist, pts)}
}

// takeChunks deletes and returns a series' chunks with min_t in [from, to).
func takeChunks(t *wtx, id, from, to int64) ([]rawPiece, error) {
	rows, err := t.query(`SELECT min_t, data FROM chunks WHERE series = ? AND min_t >= ? AND min_t < ?`, id, from, to)
	if err != nil {
		return nil, err
	}
	var out []rawPiece
	for rows.Next() {
		p := rawPiece{series: id}
		if err := rows.Scan(&p.minT, &p.data); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) > 0 {
		if _, err := t.exec(`DELETE FROM chunks WHERE series = ? AND min_t >= ? AND min_t < ?`, id, from, to); err != nil {
			return nil, err
		}
	}
	return out, nil
}
