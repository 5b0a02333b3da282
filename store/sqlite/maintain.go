package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/gopulse/gopulse/store"
)

// maintainBudget is the writer time one Maintain transaction may take:
// instances are maintained one after another in a transaction until it is
// spent (at least one instance each), so an Append queued behind Maintain
// waits about this long, however many instances there are.
const maintainBudget = 2 * time.Millisecond

// maintainPage is how many instance IDs Maintain reads at a time.
const maintainPage = 256

// retentionStep: per instance, retention deletes run again only once their
// cut has moved this far since they last ran (or on the first Maintain
// of the process). Each costs an index seek per series; run every minute
// they mostly found nothing. Data is kept at most this much longer than
// its retention.
const retentionStep = 5 * 60 * 1000

// keyDeleteBatch bounds the expired idempotency keys deleted per
// transaction (at 2,000 batches/s about 120,000 expire every minute).
const keyDeleteBatch = 1000

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

// instMaint is what Maintain keeps about an instance between runs. Only
// Maintain uses it, under maintainMu, in its own goroutine and in the
// writer functions it waits for; it is dropped when one of Maintain's
// transactions fails, as it may name rows that were undone.
type instMaint struct {
	// series: the instance's series rows, immutable once created; a piece
	// naming an id missing here makes Maintain reload them.
	series map[int64]seriesMeta
	// chunkMax is at least the max_t of every chunk of the instance:
	// minutes after it are read from blocks alone.
	chunkMax int64
	// The retention cuts last applied (0: not yet in this process).
	rawDone, rollDone, gcDone, grDone int64
}

// defaultMaintainDuty is Options.MaintainDuty's default.
const defaultMaintainDuty = 0.25

// pause sleeps so that the work since *since took at most duty of the
// time, then restarts the clock.
func pause(ctx context.Context, duty float64, since *time.Time) error {
	if duty <= 0 || duty >= 1 {
		return ctx.Err()
	}
	d := time.Duration(float64(time.Since(*since)) * (1/duty - 1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	*since = time.Now()
	return nil
}

// cuts are one Maintain run's time limits.
type cuts struct {
	until, compact, raw, roll, gc, gr int64
}

// Maintain implements store.Store. Per instance: it recomputes the
// rollups of minutes in [rolled_until, floor(now)) from the raw data
// (chunks and blocks), compacts the blocks of windows that ended before
// now − compactLag into per-series chunks, then deletes raw chunks older
// than both the raw retention and the rolled minutes (so nothing is
// deleted before it is rolled up), rollups past theirs, GC records and
// goroutine snapshots. Retention deletes run once their cut has moved by
// retentionStep. Instances are handled in transactions of about
// maintainBudget of writer time. Then it deletes expired idempotency keys
// (in bounded transactions), findings, stacks, bundles and orphan blobs.
func (s *Store) Maintain(ctx context.Context, now time.Time) (store.MaintainStats, error) {
	s.maintainMu.Lock()
	defer s.maintainMu.Unlock()
	var st store.MaintainStats
	worked := time.Now() // the start of the work since the last pause
	c := s.cutsAt(now)
	until := c.until
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
	var queue []int64
	tries := map[int64]int{}
	duty := cmp.Or(s.opts.MaintainDuty, defaultMaintainDuty)
	for {
		if err := pause(ctx, duty, &worked); err != nil {
			return st, err
		}
		if len(queue) == 0 {
			ids, err := s.instancePage(ctx, last)
			if err != nil {
				return st, fmt.Errorf("maintain: list instances: %w", err)
			}
			if len(ids) == 0 {
				break
			}
			last = ids[len(ids)-1]
			queue = ids
		}
		// Plan a few instances from one read snapshot, off the writer:
		// decoding, merging and encoding run beside ingest, not in front
		// of it.
		plans, err := s.planBatch(ctx, queue, c)
		if err != nil {
			clear(s.maint)
			return st, fmt.Errorf("maintain: %w", err)
		}
		queue = queue[len(plans):]
		for len(plans) > 0 {
			var part store.MaintainStats
			var again, stale []int64
			done := 0
			err := s.write(ctx, func(t *wtx) error {
				part, again, stale, done = store.MaintainStats{}, again[:0], stale[:0], 0
				start := time.Now()
				for _, p := range plans {
					done++
					inst := p.inst
					ok, err := s.apply(t, p, true, c, &part)
					if err == nil && !ok && tries[inst] >= maxStale {
						// Kept changing under us: plan in the writer,
						// where nothing can.
						if p, err = s.planInstance(t, inst, c); err == nil {
							ok, err = s.apply(t, p, false, c, &part)
						}
					}
					if err != nil {
						return fmt.Errorf("instance %d: %w", inst, err)
					}
					if !ok {
						stale = append(stale, inst)
					} else if p.more {
						again = append(again, inst)
					}
					if time.Since(start) >= maintainBudget {
						break
					}
				}
				return nil
			})
			if err != nil {
				clear(s.maint) // may name rows the failed transaction undid
				return st, fmt.Errorf("maintain: %w", err)
			}
			st.RolledUpSeries += part.RolledUpSeries
			st.DeletedChunks += part.DeletedChunks
			st.DeletedRollups += part.DeletedRollups
			st.DeletedGCRecords += part.DeletedGCRecords
			st.DeletedOther += part.DeletedOther
			if err := ctx.Err(); err != nil {
				return st, err
			}
			plans = plans[done:]
			// An instance with a backlog (a first run, hours of late data)
			// is worked off over several transactions, each bounded by
			// maxRollSpan / maxCompactWindows, queued again behind the
			// rest; so is one whose snapshot went stale.
			for _, id := range stale {
				tries[id]++
			}
			queue = append(append(queue, stale...), again...)
		}
	}

	// Expired keys go in bounded transactions: after a week at full
	// ingest, a minute's worth is ~10⁵ rows.
	for {
		var n int64
		err := s.write(ctx, func(t *wtx) error {
			res, err := t.exec(`DELETE FROM idempotency_keys WHERE rowid IN (SELECT rowid FROM idempotency_keys WHERE expires <= ? ORDER BY expires LIMIT ?)`, now.UnixMilli(), keyDeleteBatch)
			if err != nil {
				return err
			}
			n, _ = res.RowsAffected()
			return nil
		})
		if err != nil {
			return st, fmt.Errorf("maintain: delete expired idempotency keys: %w", err)
		}
		st.DeletedKeys += n
		if n < keyDeleteBatch {
			break
		}
		if err := ctx.Err(); err != nil {
			return st, err
		}
	}
	fCut := now.Add(-s.ret.Findings).UnixMilli()
	err := s.write(ctx, func(t *wtx) error {
		var other int64
		for _, q := range []struct {
			sql string
			arg int64
		}{
			{`DELETE FROM findings WHERE state = 'resolved' AND resolved_at < ?`, fCut},
			{`DELETE FROM goroutine_stacks WHERE last_used < ?`, c.gr},
		} {
			res, err := t.exec(q.sql, q.arg)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			other += n
		}
		st.DeletedOther += other
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

func (s *Store) cutsAt(now time.Time) cuts {
	until := floorMin(now.UnixMilli())
	return cuts{
		until:   until,
		compact: floorWin(until - compactLag),
		raw:     min(floorMin(now.Add(-s.ret.Raw).UnixMilli()), until),
		roll:    now.Add(-s.ret.Rollup).UnixMilli(),
		gc:      now.Add(-s.ret.Raw).UnixMilli(),
		gr:      now.Add(-s.ret.Goroutines).UnixMilli(),
	}
}

// instancePage returns up to maintainPage instance IDs after last.
func (s *Store) instancePage(ctx context.Context, last int64) ([]int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id FROM instances WHERE id > ? ORDER BY id LIMIT ?`, last, maintainPage)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
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

// querier runs Maintain's reads: in a read snapshot off the writer
// (planBatch) or in the writer's transaction.
type querier interface {
	query(q string, args ...any) (*sql.Rows, error)
	queryRow(q string, args ...any) *sql.Row
}

// rtx is a read transaction on the readers' pool with its statements
// prepared once.
type rtx = txStmts

// planBudget and planBatchMax bound the instances planned from one read
// snapshot: plans are applied after the whole batch is planned, and a
// block arriving for an instance meanwhile makes its plan stale.
const (
	planBudget   = 5 * time.Millisecond
	planBatchMax = 16
)

// maxStale is how many stale plans an instance may have in one Maintain
// before it is planned inside the writer.
const maxStale = 2

// planBatch plans the first instances of ids from one read snapshot.
func (s *Store) planBatch(ctx context.Context, ids []int64, c cuts) ([]*plan, error) {
	ids = ids[:min(len(ids), planBatchMax)]
	// Read before the snapshot begins (see Store.blockVer).
	vers := make([]uint64, len(ids))
	s.blockVerMu.Lock()
	for i, id := range ids {
		vers[i] = s.blockVer[id]
	}
	s.blockVerMu.Unlock()
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback()
	r := &rtx{tx: tx, stmts: map[string]*sql.Stmt{}}
	defer func() {
		for _, st := range r.stmts {
			st.Close()
		}
	}()
	start := time.Now()
	var plans []*plan
	for i, id := range ids {
		p, err := s.planInstance(r, id, c)
		if err != nil {
			return nil, fmt.Errorf("instance %d: %w", id, err)
		}
		p.ver = vers[i]
		plans = append(plans, p)
		if time.Since(start) >= planBudget {
			break
		}
	}
	return plans, nil
}

// plan is one step of Maintain for one instance: what to write, and the
// state it was computed from.
type plan struct {
	inst              int64
	rolled, compacted int64  // rolled_until, compacted_until as read
	packed            int64  // packed_until as read
	ver               uint64 // Store.blockVer of inst before the snapshot
	// Rollups: rows for the minutes in [rolled, rollTo).
	rollTo int64
	rows   []rollRow
	series int // series with data in those minutes
	// Compaction: chunks replacing the blocks with min_t and max_t below
	// blockCut (0: none) and the chunks in takes; compacted_until = cut.
	cut, blockCut int64
	takes         []chunkRange
	chunks        []chunkRow
	// Packing: the rows replacing the minute rollups of the hour at
	// packHour; packed_until = packTo.
	packHour, packTo int64
	packs            []packRow
	more             bool // work is left for another transaction
}

type chunkRange struct{ series, from, to int64 }

type chunkRow struct {
	series, minT, maxT int64
	data               []byte
}

// planInstance computes the instance's next Maintain step from q.
func (s *Store) planInstance(q querier, inst int64, c cuts) (*plan, error) {
	p := &plan{inst: inst}
	if err := q.queryRow(`SELECT rolled_until, compacted_until, packed_until FROM instances WHERE id = ?`, inst).Scan(&p.rolled, &p.compacted, &p.packed); err != nil {
		return nil, err
	}
	im, err := s.instMaint(q, inst)
	if err != nil {
		return nil, err
	}
	from := p.rolled
	p.rollTo = from
	if from < c.until {
		to := c.until
		if c.until-from > maxRollSpan {
			// A backlog (a new instance starts at 0, late data lowers
			// rolled_until): skip the minutes without data, then take an
			// hour at a time. A minute without data has no rollup to
			// recompute.
			next, err := nextData(q, im, inst, from)
			if err != nil {
				return nil, err
			}
			from = max(from, min(floorMin(next), c.until))
			to = min(c.until, from+maxRollSpan)
		}
		if from < to {
			pieces, err := readRaw(q, im, inst, from, to)
			if err != nil {
				return nil, err
			}
			if err := im.knowSeries(q, inst, pieces); err != nil {
				return nil, err
			}
			if p.rows, p.series, err = rollUp(im.series, pieces, from, to); err != nil {
				return nil, err
			}
		}
		if to < c.until {
			next, err := nextData(q, im, inst, to)
			if err != nil {
				return nil, err
			}
			if next >= c.until {
				to = c.until // nothing more to roll up
			}
		}
		p.rollTo, p.more = to, to < c.until
	}
	if err := planCompact(q, im, p, c.compact); err != nil {
		return nil, fmt.Errorf("compact: %w", err)
	}
	if err := planPack(q, im, p); err != nil {
		return nil, fmt.Errorf("pack rollups: %w", err)
	}
	return p, nil
}

// apply writes p. With verify it first checks that p's snapshot still
// holds and reports false (writing nothing) when it does not.
func (s *Store) apply(t *wtx, p *plan, verify bool, c cuts, st *store.MaintainStats) (bool, error) {
	if verify {
		// The plan holds if no block was added since its snapshot: blocks
		// are immutable, chunks and compacted_until change only in
		// Maintain (serialized by maintainMu), and rolled_until moves
		// down only with an Append that adds a block. Such an Append is
		// committed (blockVer moved) or earlier in this very group.
		s.blockVerMu.Lock()
		ver := s.blockVer[p.inst]
		s.blockVerMu.Unlock()
		if ver != p.ver || slices.Contains(t.blocksFor, p.inst) {
			return false, nil
		}
		var rolled, compacted, packed int64
		if err := t.queryRow(`SELECT rolled_until, compacted_until, packed_until FROM instances WHERE id = ?`, p.inst).Scan(&rolled, &compacted, &packed); err != nil {
			return false, err
		}
		if rolled != p.rolled || compacted != p.compacted || packed != p.packed {
			return false, nil
		}
	}
	im := s.maint[p.inst]
	if im == nil {
		return false, nil // forgotten since planned
	}
	inst := p.inst
	if err := upsertRollups(t, p.rows); err != nil {
		return false, err
	}
	st.RolledUpSeries += p.series
	if err := applyPack(t, p); err != nil {
		return false, err
	}
	if p.rollTo != p.rolled {
		if _, err := t.exec(`UPDATE instances SET rolled_until = ? WHERE id = ?`, p.rollTo, inst); err != nil {
			return false, err
		}
	}
	for _, r := range p.takes {
		if _, err := t.exec(`DELETE FROM chunks WHERE series = ? AND min_t >= ? AND min_t < ?`, r.series, r.from, r.to); err != nil {
			return false, err
		}
	}
	for _, ch := range p.chunks {
		if _, err := t.exec(`INSERT INTO chunks (series, min_t, max_t, data) VALUES (?, ?, ?, ?)`, ch.series, ch.minT, ch.maxT, ch.data); err != nil {
			return false, fmt.Errorf("insert chunk of series %d at %d: %w", ch.series, ch.minT, err)
		}
		im.chunkMax = max(im.chunkMax, ch.maxT)
	}
	if p.blockCut != 0 {
		if _, err := t.exec(`DELETE FROM blocks WHERE instance = ? AND min_t < ? AND max_t < ?`, inst, p.blockCut, p.blockCut); err != nil {
			return false, err
		}
	}
	if p.cut > p.compacted {
		if _, err := t.exec(`UPDATE instances SET compacted_until = ? WHERE id = ?`, p.cut, inst); err != nil {
			return false, err
		}
	}
	// Nothing is deleted before it is rolled up.
	if delCut := min(c.raw, p.rollTo); delCut >= im.rawDone+retentionStep || im.rawDone == 0 {
		res, err := t.exec(`DELETE FROM chunks WHERE series IN (SELECT id FROM series WHERE instance = ?) AND min_t < ? AND max_t < ?`, inst, delCut, delCut)
		if err != nil {
			return false, err
		}
		n, _ := res.RowsAffected()
		st.DeletedChunks += n
		im.rawDone = delCut
	}
	if c.roll >= im.rollDone+retentionStep || im.rollDone == 0 {
		res, err := t.exec(`DELETE FROM rollups WHERE series IN (SELECT id FROM series WHERE instance = ?) AND t < ?`, inst, c.roll)
		if err != nil {
			return false, err
		}
		n, _ := res.RowsAffected()
		st.DeletedRollups += n
		// A packed hour goes once all of it is past the cut (queries
		// never return its minutes before their range).
		if res, err = t.exec(`DELETE FROM rollup_hours WHERE series IN (SELECT id FROM series WHERE instance = ?) AND t < ?`, inst, c.roll-hourMs); err != nil {
			return false, err
		}
		n, _ = res.RowsAffected()
		st.DeletedRollups += n
		im.rollDone = c.roll
	}
	if c.gc >= im.gcDone+retentionStep || im.gcDone == 0 {
		for _, q := range []string{
			`DELETE FROM gc_cycles WHERE instance = ? AND end_time < ?`,
			`DELETE FROM gc_gaps WHERE instance = ? AND t < ?`,
		} {
			res, err := t.exec(q, inst, c.gc)
			if err != nil {
				return false, err
			}
			n, _ := res.RowsAffected()
			st.DeletedGCRecords += n
		}
		im.gcDone = c.gc
	}
	if c.gr >= im.grDone+retentionStep || im.grDone == 0 {
		res, err := t.exec(`DELETE FROM goroutine_snapshots WHERE instance = ? AND t < ?`, inst, c.gr)
		if err != nil {
			return false, err
		}
		n, _ := res.RowsAffected()
		st.DeletedOther += n
		im.grDone = c.gr
	}
	return true, nil
}

// loadSeries reads the series of one instance.
func loadSeries(q querier, inst int64) (map[int64]seriesMeta, error) {
	rows, err := q.query(`SELECT id, is_hist, boundaries FROM series WHERE instance = ?`, inst)
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

// instMaint returns the instance's Maintain state, loading it on first use
// in this process (or after a failed Maintain emptied the cache).
func (s *Store) instMaint(q querier, inst int64) (*instMaint, error) {
	if im := s.maint[inst]; im != nil {
		return im, nil
	}
	series, err := loadSeries(q, inst)
	if err != nil {
		return nil, fmt.Errorf("load series: %w", err)
	}
	// A chunk's max_t is below its min_t + maxChunkSpan, so the newest
	// chunks of each series (min_t within maxChunkSpan of its last)
	// hold the largest max_t: a few rows per series, not all of them.
	var cm sql.NullInt64
	if err := q.queryRow(`SELECT MAX(c.max_t) FROM series s JOIN chunks c ON c.series = s.id
AND c.min_t >= (SELECT MAX(min_t) FROM chunks WHERE series = s.id) - ? WHERE s.instance = ?`, maxChunkSpan, inst).Scan(&cm); err != nil {
		return nil, fmt.Errorf("newest chunk: %w", err)
	}
	im := &instMaint{series: series, chunkMax: math.MinInt64}
	if cm.Valid {
		im.chunkMax = cm.Int64
	}
	if len(s.maint) > maxCachedSeries/64 {
		clear(s.maint)
	}
	s.maint[inst] = im
	return im, nil
}

// knowSeries makes sure im names the series of every piece: a series
// created since im was loaded is read then.
func (im *instMaint) knowSeries(q querier, inst int64, pieces []rawPiece) error {
	for _, pc := range pieces {
		if _, ok := im.series[pc.series]; ok {
			continue
		}
		series, err := loadSeries(q, inst)
		if err != nil {
			return fmt.Errorf("load series: %w", err)
		}
		im.series = series
		return nil // a series still missing is reported by mergePieces
	}
	return nil
}

// readRaw returns the instance's chunks and block sections that may hold
// points in [from, to): min_t < to and max_t ≥ from. Only those rows' data
// is read, so a sample is decoded about once for the rollups.
func readRaw(q querier, im *instMaint, inst, from, to int64) ([]rawPiece, error) {
	var out []rawPiece
	if im.chunkMax >= from {
		rows, err := q.query(`SELECT series, min_t, data FROM chunks WHERE series IN (SELECT id FROM series WHERE instance = ?) AND min_t >= ? AND min_t < ? AND max_t >= ?`, inst, from-maxChunkSpan, to, from)
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
	}
	// A block holds one window, so one reaching from starts after from − window.
	blocks, err := readBlocks(q, `SELECT min_t, data FROM blocks WHERE instance = ? AND min_t >= ? AND min_t < ? AND max_t >= ?`, inst, from-window, to, from)
	return append(out, blocks...), err
}

func readBlocks(q querier, sql string, args ...any) ([]rawPiece, error) {
	rows, err := q.query(sql, args...)
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

// nextData is a lower bound of the first timestamp ≥ from in the
// instance's raw data, at least from (math.MaxInt64 when it has none):
// the smallest min_t of a block or chunk with max_t ≥ from.
func nextData(q querier, im *instMaint, inst, from int64) (int64, error) {
	var b, c sql.NullInt64
	if err := q.queryRow(`SELECT MIN(min_t) FROM blocks WHERE instance = ? AND min_t >= ? AND max_t >= ?`, inst, from-window, from).Scan(&b); err != nil {
		return 0, err
	}
	if im.chunkMax >= from {
		// Per series, the first chunk by min_t that reaches from: one
		// index range each.
		if err := q.queryRow(`SELECT MIN((SELECT min_t FROM chunks WHERE series = s.id AND min_t >= ? AND max_t >= ? ORDER BY min_t LIMIT 1)) FROM series s WHERE s.instance = ?`,
			from-maxChunkSpan, from, inst).Scan(&c); err != nil {
			return 0, err
		}
	}
	next := int64(math.MaxInt64)
	if b.Valid {
		next = b.Int64
	}
	if c.Valid {
		next = min(next, c.Int64)
	}
	return max(next, from), nil
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

// rollUp computes the rollups of the minutes in [from, until) from
// pieces and reports how many series had data there.
func rollUp(series map[int64]seriesMeta, pieces []rawPiece, from, until int64) ([]rollRow, int, error) {
	n := 0
	var out []rollRow
	err := mergePieces(series, pieces, func(id int64, pts []point) error {
		var a *rollAgg
		flush := func() {
			if a == nil {
				return
			}
			var hb []byte
			if series[id].hist && a.hist != nil {
				hb = encodeHist(a.hist)
			}
			out = append(out, rollRow{id, *a, hb})
		}
		any := false
		for _, p := range pts {
			if p.t < from || p.t >= until {
				continue
			}
			any = true
			if m := floorMin(p.t); a == nil || a.t != m {
				flush()
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
		flush()
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, n, nil
}

type rollRow struct {
	series int64
	a      rollAgg
	hist   []byte
}

// rollupSQL[k] upserts 2^k rollup rows in one statement: a minute of a
// whole instance is a few statements instead of one per series. At most
// 8 rows: the driver matches each of a statement's parameters to its
// arguments by a linear search, quadratic in their number.
var rollupSQL = func() (q [4]string) {
	for k := range q {
		var b strings.Builder
		b.WriteString(`INSERT INTO rollups (series, t, n, sum, min, max, last, last_t, hist) VALUES `)
		for i := range 1 << k {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?)")
		}
		b.WriteString(`
ON CONFLICT (series, t) DO UPDATE SET n = excluded.n, sum = excluded.sum, min = excluded.min, max = excluded.max,
  last = excluded.last, last_t = excluded.last_t, hist = excluded.hist`)
		q[k] = b.String()
	}
	return q
}()

func upsertRollups(t *wtx, rows []rollRow) error {
	args := make([]any, 0, 9<<(len(rollupSQL)-1))
	for len(rows) > 0 {
		k := len(rollupSQL) - 1
		for 1<<k > len(rows) {
			k--
		}
		args = args[:0]
		for _, r := range rows[:1<<k] {
			args = append(args, r.series, r.a.t, r.a.n, r.a.sum, r.a.min, r.a.max, r.a.last, r.a.lastT, r.hist)
		}
		if _, err := t.exec(rollupSQL[k], args...); err != nil {
			return fmt.Errorf("upsert rollups of series %d at %d: %w", rows[0].series, rows[0].a.t, err)
		}
		rows = rows[1<<k:]
	}
	return nil
}

// planCompact plans rewriting the instance's blocks of windows that
// ended before cut as per-series chunks, one per series and window (split
// at maxChunkPoints), at most maxCompactWindows windows per step (p.more
// when more are left). A window before compacted_until was compacted
// already: its late blocks are merged into the window's chunks.
func planCompact(q querier, im *instMaint, p *plan, cut int64) error {
	var oldest sql.NullInt64
	if err := q.queryRow(`SELECT MIN(min_t) FROM blocks WHERE instance = ?`, p.inst).Scan(&oldest); err != nil {
		return err
	}
	if oldest.Valid && floorWin(oldest.Int64)+maxCompactWindows*window < cut {
		cut, p.more = floorWin(oldest.Int64)+maxCompactWindows*window, true
	}
	p.cut = cut
	if !oldest.Valid || oldest.Int64 >= cut {
		return nil
	}
	pieces, err := readBlocks(q, `SELECT min_t, data FROM blocks WHERE instance = ? AND min_t < ? AND max_t < ?`, p.inst, cut, cut)
	if err != nil || len(pieces) == 0 {
		return err
	}
	if err := im.knowSeries(q, p.inst, pieces); err != nil {
		return err
	}
	p.blockCut = cut
	series := im.series
	return mergePieces(series, pieces, func(id int64, pts []point) error {
		for len(pts) > 0 {
			w := floorWin(pts[0].t)
			end := 1
			for end < len(pts) && floorWin(pts[end].t) == w {
				end++
			}
			win := pts[:end]
			pts = pts[end:]
			if w < p.compacted {
				old, err := readChunks(q, id, w, w+window)
				if err != nil {
					return err
				}
				if len(old) > 0 {
					p.takes = append(p.takes, chunkRange{id, w, w + window})
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
				p.chunks = append(p.chunks, chunkRow{id, c[0].t, c[len(c)-1].t, encodeChunk(nil, series[id].hist, c)})
			}
		}
		return nil
	})
}

func encodePiece(id int64, hist bool, pts []point) rawPiece {
	return rawPiece{series: id, minT: pts[0].t, data: encodeChunk(nil, hist, pts)}
}

// readChunks returns a series' chunks with min_t in [from, to).
func readChunks(q querier, id, from, to int64) ([]rawPiece, error) {
	rows, err := q.query(`SELECT min_t, data FROM chunks WHERE series = ? AND min_t >= ? AND min_t < ?`, id, from, to)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []rawPiece
	for rows.Next() {
		p := rawPiece{series: id}
		if err := rows.Scan(&p.minT, &p.data); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
