package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gopulse/gopulse/store"
)

// maxChunkSpan bounds max_t − min_t of one chunk, so a range query can
// start its index scan at Start − maxChunkSpan. Schema 1 wrote chunks of up
// to an hour; compaction writes chunks within one window.
const maxChunkSpan = 60 * 60 * 1000

// maxChunkPoints bounds the points per chunk (and so a chunk's size).
const maxChunkPoints = 4096

// window is the compaction window (ms): every block and every compacted
// chunk holds points of one window [k·window, (k+1)·window) only, so a
// query starts its block scan at Start − window, and Maintain compacts a
// window's blocks once it is complete. 15 minutes keeps the blocks a query
// reads for recent data below ~100 per instance and a chunk near 900
// points at 1 s sampling.
const window = 15 * 60 * 1000

func floorWin(t int64) int64 {
	w := t - t%window
	if t < 0 && t%window != 0 {
		w -= window
	}
	return w
}

const upsertInstanceSQL = `INSERT INTO instances (service, instance_id, host, pid, go_version, agent_version, start_time, labels, source, first_seen, last_seen)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (service, instance_id) DO UPDATE SET
  host = excluded.host, pid = excluded.pid, go_version = excluded.go_version,
  agent_version = excluded.agent_version, start_time = excluded.start_time,
  labels = excluded.labels, source = excluded.source,
  last_seen = CASE WHEN excluded.last_seen > instances.last_seen THEN excluded.last_seen ELSE instances.last_seen END,
  rolled_until = CASE WHEN ?12 < instances.rolled_until THEN ?12 ELSE instances.rolled_until END,
  last_block = CASE WHEN ?13 > instances.last_block THEN ?13 ELSE instances.last_block END
RETURNING id`

func validInstance(inst store.Instance) error {
	if inst.Service == "" || inst.ID == "" {
		return fmt.Errorf("%w: instance needs a service and an ID (got service %q, id %q)", store.ErrInvalid, inst.Service, inst.ID)
	}
	switch inst.Source {
	case store.SourceAgent, store.SourceScraped:
	default:
		return fmt.Errorf("%w: instance source %q (want %q or %q)", store.ErrInvalid, inst.Source, store.SourceAgent, store.SourceScraped)
	}
	return nil
}

// knownInstance is the writer's copy of an instance row's descriptive
// fields, so a batch that changes none of them updates only the columns
// that move (see touchInstance).
type knownInstance struct {
	id   int64
	inst store.Instance
}

func sameInstance(a, b store.Instance) bool {
	return a.Host == b.Host && a.PID == b.PID && a.GoVersion == b.GoVersion && a.AgentVersion == b.AgentVersion &&
		ms(a.StartTime) == ms(b.StartTime) && a.Source == b.Source && maps.Equal(a.Labels, b.Labels)
}

const touchInstanceSQL = `UPDATE instances SET
  last_seen = CASE WHEN ?1 > last_seen THEN ?1 ELSE last_seen END,
  rolled_until = CASE WHEN ?2 < rolled_until THEN ?2 ELSE rolled_until END,
  last_block = CASE WHEN ?3 > last_block THEN ?3 ELSE last_block END
WHERE id = ?4`

// touchInstance is upsertInstance for Append: when the writer has seen the
// instance with the same descriptive fields, an UPDATE by row id replaces
// the upsert (its JSON encoding, unique-index probe and full-row rewrite).
func (s *Store) touchInstance(t *wtx, inst store.Instance, seen time.Time, late, lastBlock int64) (int64, error) {
	k := inst.Key()
	if ki, ok := s.insts[k]; ok && sameInstance(ki.inst, inst) {
		res, err := t.exec(touchInstanceSQL, ms(seen), late, lastBlock, ki.id)
		if err != nil {
			return 0, fmt.Errorf("update instance %s/%s: %w", inst.Service, inst.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return ki.id, nil
		}
	}
	id, err := upsertInstance(t, inst, seen, late, lastBlock)
	if err != nil {
		return 0, err
	}
	if len(s.insts) > maxCachedSeries/64 {
		clear(s.insts)
	}
	inst.Labels = maps.Clone(inst.Labels)
	s.insts[k] = knownInstance{id, inst}
	return id, nil
}

// noLate is upsertInstance's late argument when no rolled minute is touched.
const noLate = math.MaxInt64

// upsertInstance creates or updates the instance and returns its row id.
// late is the first minute the write touches that Maintain may have rolled
// up already (noLate for none): rolled_until is lowered to it, so the next
// Maintain recomputes those minutes.
// lastBlock is the min_t of the newest block the write adds (0 for none).
func upsertInstance(t *wtx, inst store.Instance, seen time.Time, late, lastBlock int64) (int64, error) {
	labels := "{}"
	if len(inst.Labels) > 0 {
		b, err := json.Marshal(inst.Labels)
		if err != nil {
			return 0, err
		}
		labels = string(b)
	}
	var id int64
	err := t.queryRow(upsertInstanceSQL, inst.Service, inst.ID, inst.Host, inst.PID, inst.GoVersion, inst.AgentVersion,
		ms(inst.StartTime), labels, string(inst.Source), ms(seen), ms(seen), late, lastBlock).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("upsert instance %s/%s: %w", inst.Service, inst.ID, err)
	}
	return id, nil
}

// UpsertInstance implements store.Instances.
func (s *Store) UpsertInstance(ctx context.Context, inst store.Instance, seen time.Time) error {
	if err := validInstance(inst); err != nil {
		return err
	}
	return s.write(ctx, func(t *wtx) error {
		delete(s.insts, inst.Key()) // its descriptive fields may change
		_, err := upsertInstance(t, inst, seen, noLate, 0)
		return err
	})
}

const instanceCols = `i.id, i.service, i.instance_id, i.host, i.pid, i.go_version, i.agent_version, i.start_time, i.labels, i.source, i.first_seen, i.last_seen`

func scanInstance(sc interface{ Scan(...any) error }) (int64, store.Instance, error) {
	var (
		id                 int64
		in                 store.Instance
		start, first, last int64
		labels, source     string
	)
	if err := sc.Scan(&id, &in.Service, &in.ID, &in.Host, &in.PID, &in.GoVersion, &in.AgentVersion, &start, &labels, &source, &first, &last); err != nil {
		return 0, in, err
	}
	in.StartTime, in.FirstSeen, in.LastSeen = fromMs(start), fromMs(first), fromMs(last)
	in.Source = store.Source(source)
	if labels != "" && labels != "{}" {
		if err := json.Unmarshal([]byte(labels), &in.Labels); err != nil {
			return 0, in, fmt.Errorf("instance %s/%s labels: %w", in.Service, in.ID, err)
		}
	}
	return id, in, nil
}

// GetInstance implements store.Instances.
func (s *Store) GetInstance(ctx context.Context, key store.InstanceKey) (store.Instance, error) {
	_, in, err := scanInstance(s.r.QueryRowContext(ctx, `SELECT `+instanceCols+` FROM instances i WHERE i.service = ? AND i.instance_id = ?`, key.Service, key.ID))
	if errors.Is(err, sql.ErrNoRows) {
		return in, fmt.Errorf("instance %s/%s: %w", key.Service, key.ID, store.ErrNotFound)
	}
	return in, err
}

func (s *Store) instanceID(ctx context.Context, key store.InstanceKey) (int64, error) {
	var id int64
	err := s.r.QueryRowContext(ctx, `SELECT id FROM instances WHERE service = ? AND instance_id = ?`, key.Service, key.ID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("instance %s/%s: %w", key.Service, key.ID, store.ErrNotFound)
	}
	return id, err
}

// ListInstances implements store.Instances.
func (s *Store) ListInstances(ctx context.Context, service string, since time.Time) ([]store.Instance, error) {
	_, list, err := s.listInstances(ctx, service, ms(since))
	return list, err
}

func (s *Store) listInstances(ctx context.Context, service string, since int64) ([]int64, []store.Instance, error) {
	q := `SELECT ` + instanceCols + ` FROM instances i WHERE i.last_seen >= ?`
	args := []any{since}
	if service != "" {
		q += ` AND i.service = ?`
		args = append(args, service)
	}
	q += ` ORDER BY i.service, i.instance_id`
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("list instances: %w", err)
	}
	defer rows.Close()
	var ids []int64
	var out []store.Instance
	for rows.Next() {
		id, in, err := scanInstance(rows)
		if err != nil {
			return nil, nil, err
		}
		ids = append(ids, id)
		out = append(out, in)
	}
	return ids, out, rows.Err()
}

// ListServices implements store.Instances.
func (s *Store) ListServices(ctx context.Context) ([]store.Service, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT service, COUNT(*), MAX(last_seen) FROM instances GROUP BY service ORDER BY service`)
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	defer rows.Close()
	var out []store.Service
	for rows.Next() {
		var sv store.Service
		var last int64
		if err := rows.Scan(&sv.Name, &sv.Instances, &last); err != nil {
			return nil, err
		}
		sv.LastSeen = fromMs(last)
		out = append(out, sv)
	}
	return out, rows.Err()
}

type recentSeries struct {
	names []string
	infos []*seriesInfo
}

// maxCachedSeries bounds the writer's series caches: instance IDs are
// drawn per process start, so over months the set of series only grows.
const maxCachedSeries = 1 << 20

// forgetSeries empties the writer's series caches, which may name rows a
// rollback just undid.
func (s *Store) forgetSeries() {
	clear(s.series)
	clear(s.recent)
	clear(s.insts)
}

// batchSeries returns the series row of the j-th chunk of a batch of
// instance inst, trying the instance's previous batch first.
func (s *Store) batchSeries(t *wtx, inst int64, j int, c *encChunk) (*seriesInfo, error) {
	rc := s.recent[inst]
	if rc == nil {
		if len(s.recent) > maxCachedSeries/64 {
			clear(s.recent)
		}
		rc = &recentSeries{}
		s.recent[inst] = rc
	}
	if j < len(rc.names) && rc.names[j] == c.name {
		si := rc.infos[j]
		return si, checkKind(si, c)
	}
	si, err := s.seriesFor(t, inst, c)
	if err != nil {
		return nil, err
	}
	if j < len(rc.names) {
		rc.names[j], rc.infos[j] = c.name, si
	} else if j == len(rc.names) {
		rc.names, rc.infos = append(rc.names, c.name), append(rc.infos, si)
	}
	return si, nil
}

// checkKind checks a chunk against its stored series. Boundaries that
// equal the stored ones are remembered as si.seen, so the next batch
// carrying the same slice (the collector's descriptor cache) costs one
// pointer comparison instead of ~130 float comparisons.
func checkKind(si *seriesInfo, c *encChunk) error {
	if si.hist != c.hist {
		return fmt.Errorf("%w: metric %s is stored as %s, got a %s sample", store.ErrConflict, c.name, kindName(si.hist), kindName(c.hist))
	}
	if si.hist && !sameBacking(si.seen, c.bounds) {
		if !slices.Equal(si.bounds, c.bounds) {
			return fmt.Errorf("%w: histogram %s has other bucket boundaries than stored", store.ErrConflict, c.name)
		}
		si.seen = c.bounds
	}
	return nil
}

// seriesFor returns the series row for (inst, name), creating it. It runs
// in the writer.
func (s *Store) seriesFor(t *wtx, inst int64, c *encChunk) (*seriesInfo, error) {
	if len(s.series) > maxCachedSeries {
		clear(s.series)
	}
	k := seriesKey{inst, c.name}
	si, ok := s.series[k]
	if !ok {
		var hist int
		var bounds []byte
		var id int64
		err := t.queryRow(`SELECT id, is_hist, boundaries FROM series WHERE instance = ? AND name = ?`, inst, c.name).Scan(&id, &hist, &bounds)
		if err == nil {
			si = &seriesInfo{id: id, hist: hist == 1, bounds: decodeFloats(bounds)}
		} else if errors.Is(err, sql.ErrNoRows) {
			var b []byte
			h := 0
			if c.hist {
				b, h = encodeFloats(c.bounds), 1
			}
			if err := t.queryRow(`INSERT INTO series (instance, name, is_hist, boundaries, rolled_until) VALUES (?, ?, ?, ?, 0) RETURNING id`, inst, c.name, h, b).Scan(&id); err != nil {
				return nil, fmt.Errorf("create series %s: %w", c.name, err)
			}
			// A copy: the caller's slice is only compared (checkKind), so
			// the cache never depends on the caller leaving it unchanged.
			si = &seriesInfo{id: id, hist: c.hist, bounds: slices.Clone(c.bounds)}
		} else {
			return nil, fmt.Errorf("look up series %s: %w", c.name, err)
		}
		s.series[k] = si
	}
	return si, checkKind(si, c)
}

func kindName(hist bool) string {
	if hist {
		return "histogram"
	}
	return "scalar"
}

// Append implements store.Metrics.
func (s *Store) Append(ctx context.Context, b store.Batch) (store.AppendResult, error) {
	var res store.AppendResult
	if err := validInstance(b.Instance); err != nil {
		return res, err
	}
	if err := s.checkFull(ctx); err != nil {
		return res, err
	}
	now := s.opts.Now()
	if b.ReceivedAt.IsZero() {
		b.ReceivedAt = now
	}
	prep := preparers.Get().(*preparer)
	// The chunks alias prep's buffers: it goes back to the pool only after
	// the write, which s.write waits for even when ctx ends.
	defer prep.release()
	chunks, dropped, err := prep.prepare(b.Samples, b.Series, floorMin(now.Add(-s.ret.Raw).UnixMilli()))
	if err != nil {
		return res, fmt.Errorf("batch %q from %s/%s: %w", b.Key, b.Instance.Service, b.Instance.ID, err)
	}
	res.Dropped = dropped
	batchMin, lastBlock := int64(math.MaxInt64), int64(0)
	for i := range chunks {
		batchMin = min(batchMin, chunks[i].minT)
		if i == 0 || chunks[i].win != chunks[i-1].win {
			lastBlock = 0 // chunks are sorted by window: a new block begins
		}
		if lastBlock == 0 || chunks[i].minT < lastBlock {
			lastBlock = chunks[i].minT
		}
	}
	err = s.write(ctx, func(t *wtx) error {
		if b.Key != "" {
			fresh, err := claimKey(t, b.Key, now, now.Add(s.ret.Idempotency))
			if err != nil || !fresh {
				res.Duplicate = !fresh
				return err
			}
		}
		// Read the mark here, in the writer: Maintain raises it before its
		// rollup transactions, which this one is serialized with.
		late := int64(noLate)
		if batchMin < s.rollMark.Load() {
			late = floorMin(batchMin)
		}
		inst, err := s.touchInstance(t, b.Instance, b.ReceivedAt, late, lastBlock)
		if err != nil {
			return err
		}
		j := 0
		for start := 0; start < len(chunks); {
			end := start
			secs := t.secs[:0]
			minT, maxT := int64(math.MaxInt64), int64(math.MinInt64)
			for ; end < len(chunks) && chunks[end].win == chunks[start].win; end++ {
				c := &chunks[end]
				si, err := s.batchSeries(t, inst, j, c)
				j++
				if err != nil {
					return err
				}
				secs = append(secs, blockSection{series: si.id, minT: c.minT, data: c.data})
				minT, maxT = min(minT, c.minT), max(maxT, c.maxT)
			}
			t.secs = secs
			t.buf = encodeBlock(t.buf[:0], minT, secs)
			if err := insertBlock(t, inst, minT, maxT, t.buf); err != nil {
				return err
			}
			t.blocksFor = append(t.blocksFor, inst)
			start = end
		}
		if err := insertGCCycles(t, inst, b.GCCycles); err != nil {
			return err
		}
		for _, g := range b.GCGaps {
			if _, err := t.exec(`INSERT INTO gc_gaps (instance, first_cycle, last_cycle, t, reason) VALUES (?, ?, ?, ?, ?) ON CONFLICT (instance, first_cycle) DO NOTHING`,
				inst, int64(g.FirstCycle), int64(g.LastCycle), g.Time, g.Reason); err != nil {
				return fmt.Errorf("insert GC gap %d: %w", g.FirstCycle, err)
			}
		}
		return nil
	})
	if err != nil {
		return store.AppendResult{}, fmt.Errorf("append batch %q from %s/%s: %w", b.Key, b.Instance.Service, b.Instance.ID, err)
	}
	return res, nil
}

// gcInsertRows is the most GC cycles one INSERT carries: an agent's batch
// holds a few to a few dozen, and one statement for several rows costs
// far less than a statement each (prepared at Open, see hotSQL).
const gcInsertRows = 8

// gcInsertSQL[n-1] inserts n GC cycles; a cycle already stored is kept.
var gcInsertSQL = func() (qs [gcInsertRows]string) {
	for n := 1; n <= gcInsertRows; n++ {
		q := `INSERT INTO gc_cycles (instance, cycle, end_time, pause_ns, heap_known, heap_live, heap_goal, gc_cpu_seconds, cpu_seconds, forced) VALUES `
		q += strings.Repeat(`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?), `, n-1) + `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
		qs[n-1] = q + ` ON CONFLICT (instance, cycle) DO NOTHING`
	}
	return qs
}()

// insertGCCycles stores cs, up to gcInsertRows per statement. Of two
// records of one cycle, in cs or already stored, the first is kept.
func insertGCCycles(t *wtx, inst int64, cs []store.GCCycle) error {
	args := make([]any, 0, 10*min(len(cs), gcInsertRows))
	for len(cs) > 0 {
		part := cs[:min(len(cs), gcInsertRows)]
		cs = cs[len(part):]
		args = args[:0]
		for _, g := range part {
			args = append(args, inst, int64(g.Cycle), g.EndTime, g.PauseNs, boolInt(g.HeapKnown), int64(g.HeapLiveBytes), int64(g.HeapGoalBytes), g.GCCPUSeconds, g.TotalCPUSeconds, boolInt(g.Forced))
		}
		if _, err := t.exec(gcInsertSQL[len(part)-1], args...); err != nil {
			return fmt.Errorf("insert GC cycles %d–%d: %w", part[0].Cycle, part[len(part)-1].Cycle, err)
		}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

const insertBlockSQL = `INSERT INTO blocks (instance, min_t, seq, max_t, data) VALUES (?, ?, 0, ?, ?) ON CONFLICT DO NOTHING`

const claimKeySQL = `INSERT INTO idempotency_keys (k, expires) VALUES (?, ?)
ON CONFLICT (k) DO UPDATE SET expires = excluded.expires WHERE idempotency_keys.expires <= ?`

// insertBlock stores one block. Two blocks of an instance may start at the
// same millisecond (overlapping deliveries without a key): the second gets
// the next seq, unless it is byte-identical to a stored one (a repeat).
func insertBlock(t *wtx, inst, minT, maxT int64, data []byte) error {
	res, err := t.exec(insertBlockSQL, inst, minT, maxT, data)
	if err != nil {
		return fmt.Errorf("insert block at %d: %w", minT, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	rows, err := t.query(`SELECT seq, data FROM blocks WHERE instance = ? AND min_t = ?`, inst, minT)
	if err != nil {
		return fmt.Errorf("insert block at %d: %w", minT, err)
	}
	next := int64(0)
	for rows.Next() {
		var seq int64
		var old []byte
		if err := rows.Scan(&seq, &old); err != nil {
			rows.Close()
			return err
		}
		if bytes.Equal(old, data) {
			rows.Close()
			return nil
		}
		next = max(next, seq+1)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if _, err := t.exec(`INSERT INTO blocks (instance, min_t, seq, max_t, data) VALUES (?, ?, ?, ?, ?)`, inst, minT, next, maxT, data); err != nil {
		return fmt.Errorf("insert block at %d: %w", minT, err)
	}
	return nil
}

// claimKey remembers key unless an unexpired copy is stored; it reports
// whether the key is new (the batch must be written). One statement
// instead of a lookup and an insert: the savepoint undoes it if the batch
// then fails.
func claimKey(t *wtx, key string, now, expires time.Time) (bool, error) {
	res, err := t.exec(claimKeySQL, key, expires.UnixMilli(), now.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("remember idempotency key: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("remember idempotency key: %w", err)
	}
	return n == 1, nil
}

func rememberTx(t *wtx, key string, expires time.Time) error {
	_, err := t.exec(`INSERT INTO idempotency_keys (k, expires) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET expires = excluded.expires`, key, expires.UnixMilli())
	if err != nil {
		return fmt.Errorf("remember idempotency key: %w", err)
	}
	return nil
}

// Seen implements store.Idempotency.
func (s *Store) Seen(ctx context.Context, key string) (bool, error) {
	var exp int64
	err := s.r.QueryRowContext(ctx, `SELECT expires FROM idempotency_keys WHERE k = ?`, key).Scan(&exp)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check idempotency key: %w", err)
	}
	return exp > s.opts.Now().UnixMilli(), nil
}

type seriesRow struct {
	id      int64
	inst    int64
	hist    bool
	bounds  []float64
	rolled  int64 // the instance's rolled_until
	present bool
}

func (s *Store) lookupSeries(ctx context.Context, key store.InstanceKey, name string) (seriesRow, error) {
	var r seriesRow
	var hist int
	var b []byte
	err := s.r.QueryRowContext(ctx, `SELECT s.id, s.is_hist, s.boundaries, i.id, i.rolled_until FROM series s JOIN instances i ON i.id = s.instance
WHERE i.service = ? AND i.instance_id = ? AND s.name = ?`, key.Service, key.ID, name).Scan(&r.id, &hist, &b, &r.inst, &r.rolled)
	if errors.Is(err, sql.ErrNoRows) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("look up series %s of %s/%s: %w", name, key.Service, key.ID, err)
	}
	r.present, r.hist = true, hist == 1
	if r.hist {
		r.bounds = decodeFloats(b)
	}
	return r, nil
}

// rawPoints returns the stored points of a series in [start, end),
// ascending, one per timestamp: the compacted chunks, then the blocks not
// compacted yet.
func (s *Store) rawPoints(ctx context.Context, sr seriesRow, start, end int64) ([]point, error) {
	type piece struct {
		minT int64
		data []byte
	}
	var pieces []piece
	total := 0
	// min_t bounds the index range; max_t skips, without reading their
	// data, the chunks and blocks that end before start (an hour of chunks
	// and 15 minutes of blocks would otherwise be read for the last minute).
	rows, err := s.r.QueryContext(ctx, `SELECT min_t, data FROM chunks WHERE series = ? AND min_t >= ? AND min_t < ? AND max_t >= ? ORDER BY min_t`, sr.id, start-maxChunkSpan, end, start)
	if err != nil {
		return nil, fmt.Errorf("query samples: %w", err)
	}
	for rows.Next() {
		var p piece
		if err := rows.Scan(&p.minT, &p.data); err != nil {
			rows.Close()
			return nil, err
		}
		pieces = append(pieces, p)
		total += chunkLen(p.data)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query samples: %w", err)
	}
	rows, err = s.r.QueryContext(ctx, `SELECT min_t, data FROM blocks WHERE instance = ? AND min_t > ? AND min_t < ? AND max_t >= ? ORDER BY min_t`, sr.inst, start-window, end, start)
	if err != nil {
		return nil, fmt.Errorf("query samples: %w", err)
	}
	for rows.Next() {
		var minT int64
		var data sql.RawBytes
		if err := rows.Scan(&minT, &data); err != nil {
			rows.Close()
			return nil, err
		}
		err := forEachSection(data, minT, func(sc blockSection) bool {
			if sc.series == sr.id {
				pieces = append(pieces, piece{sc.minT, bytes.Clone(sc.data)})
				total += chunkLen(sc.data)
			}
			return true
		})
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("block of instance %d at %d: %w", sr.inst, minT, err)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query samples: %w", err)
	}
	pts := make([]point, 0, total)
	sorted := true
	nb := len(sr.bounds) - 1
	for _, pc := range pieces {
		err := decodeChunk(pc.data, pc.minT, nb, func(p point) {
			if p.t < start || p.t >= end {
				return
			}
			if n := len(pts); n > 0 && pts[n-1].t >= p.t {
				sorted = false
			}
			pts = append(pts, p)
		})
		if err != nil {
			return nil, fmt.Errorf("series %d data at %d: %w", sr.id, pc.minT, err)
		}
	}
	if !sorted { // overlapping chunks (late or repeated data)
		sort.SliceStable(pts, func(i, j int) bool { return pts[i].t < pts[j].t })
		pts = slices.CompactFunc(pts, func(a, b point) bool { return a.t == b.t })
	}
	return pts, nil
}

func (sr seriesRow) histOf(counts []uint64) *store.Histogram {
	if counts == nil {
		return nil
	}
	return &store.Histogram{Boundaries: sr.bounds, Counts: counts}
}

// QuerySeries implements store.Metrics.
func (s *Store) QuerySeries(ctx context.Context, q store.SeriesQuery) ([]store.Point, error) {
	if q.Step < 0 || q.End < q.Start {
		return nil, fmt.Errorf("%w: query needs Start ≤ End and Step ≥ 0 (got %d, %d, %d)", store.ErrInvalid, q.Start, q.End, q.Step)
	}
	sr, err := s.lookupSeries(ctx, q.Instance, q.Name)
	if err != nil || !sr.present || q.End == q.Start {
		return nil, err
	}
	if q.Step == 0 {
		pts, err := s.rawPoints(ctx, sr, q.Start, q.End)
		if err != nil {
			return nil, err
		}
		out := make([]store.Point, len(pts))
		var hs []store.Histogram
		if sr.hist {
			hs = make([]store.Histogram, len(pts)) // one allocation, not one per point
		}
		for i, p := range pts {
			out[i] = store.Point{T: p.t, Value: p.v, LastT: p.t, Min: p.v, Max: p.v, Sum: p.v, Count: 1}
			if p.count != nil {
				hs[i] = store.Histogram{Boundaries: sr.bounds, Counts: p.count}
				out[i].Hist = &hs[i]
			}
		}
		return out, nil
	}
	var out []store.Point
	add := func(t int64, n int64, sum, min, max, last float64, lastT int64, hist []uint64) {
		b := q.Start + (t-q.Start)/q.Step*q.Step
		if k := len(out); k > 0 && out[k-1].T == b {
			p := &out[k-1]
			p.Count += n
			p.Sum += sum
			p.Min = minf(p.Min, min)
			p.Max = maxf(p.Max, max)
			p.Value, p.LastT = last, lastT
			if hist != nil {
				p.Hist = sr.histOf(hist)
			}
			return
		}
		out = append(out, store.Point{T: b, Value: last, LastT: lastT, Min: min, Max: max, Sum: sum, Count: n, Hist: sr.histOf(hist)})
	}
	rawFrom := q.Start
	if q.Step%60000 == 0 && q.Start%60000 == 0 && sr.rolled > q.Start {
		rawFrom = min(sr.rolled, q.End)
		if err := s.rollupPoints(ctx, sr, q.Start, rawFrom, add); err != nil {
			return nil, err
		}
	}
	if rawFrom < q.End {
		pts, err := s.rawPoints(ctx, sr, rawFrom, q.End)
		if err != nil {
			return nil, err
		}
		for _, p := range pts {
			add(p.t, 1, p.v, p.v, p.v, p.v, p.t, p.count)
		}
	}
	return out, nil
}

// rollupPoints calls add for each 1-minute rollup of sr in [start, end):
// packed hours merged with minute rows, a minute row winning over the
// packed minute it re-rolled (late data; see 0003_rollup_hours.sql).
func (s *Store) rollupPoints(ctx context.Context, sr seriesRow, start, end int64, add func(t, n int64, sum, min, max, last float64, lastT int64, hist []uint64)) error {
	nb := -1
	if sr.hist {
		nb = len(sr.bounds) - 1
	}
	var packed []rollAgg
	hrows, err := s.r.QueryContext(ctx, `SELECT t, data FROM rollup_hours WHERE series = ? AND t >= ? AND t < ? ORDER BY t`, sr.id, floorHour(start), end)
	if err != nil {
		return fmt.Errorf("query packed rollups: %w", err)
	}
	for hrows.Next() {
		var h int64
		var data []byte
		if err := hrows.Scan(&h, &data); err != nil {
			hrows.Close()
			return err
		}
		if err := decodeRollHour(data, h, nb, func(a rollAgg) {
			if a.t >= start && a.t < end {
				packed = append(packed, a)
			}
		}); err != nil {
			hrows.Close()
			return fmt.Errorf("packed rollups of series %d at %d: %w", sr.id, h, err)
		}
	}
	hrows.Close()
	if err := hrows.Err(); err != nil {
		return err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT t, n, sum, min, max, last, last_t, hist FROM rollups WHERE series = ? AND t >= ? AND t < ? ORDER BY t`, sr.id, start, end)
	if err != nil {
		return fmt.Errorf("query rollups: %w", err)
	}
	defer rows.Close()
	emit := func(a rollAgg) { add(a.t, a.n, a.sum, a.min, a.max, a.last, a.lastT, a.hist) }
	i := 0
	for rows.Next() {
		var a rollAgg
		var hb []byte
		if err := rows.Scan(&a.t, &a.n, &a.sum, &a.min, &a.max, &a.last, &a.lastT, &hb); err != nil {
			return err
		}
		if sr.hist && hb != nil {
			if a.hist, err = decodeHist(hb, nb); err != nil {
				return fmt.Errorf("rollup of series %d at %d: %w", sr.id, a.t, err)
			}
		}
		for ; i < len(packed) && packed[i].t < a.t; i++ {
			emit(packed[i])
		}
		if i < len(packed) && packed[i].t == a.t {
			i++
		}
		emit(a)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for ; i < len(packed); i++ {
		emit(packed[i])
	}
	return nil
}

func minf(a, b float64) float64 {
	if b < a {
		return b
	}
	return a
}

func maxf(a, b float64) float64 {
	if b > a {
		return b
	}
	return a
}

// SeriesNames implements store.Metrics.
func (s *Store) SeriesNames(ctx context.Context, key store.InstanceKey) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT s.name FROM series s JOIN instances i ON i.id = s.instance WHERE i.service = ? AND i.instance_id = ? ORDER BY s.name`, key.Service, key.ID)
	if err != nil {
		return nil, fmt.Errorf("list series of %s/%s: %w", key.Service, key.ID, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// Fleet implements store.Metrics. An instance's newest values are the last
// points of its newest block (one index seek per instance, decoding only
// the sections asked for); a series missing from it is looked up in older
// blocks, then in its newest chunk. Blocks overlapping in time (a late
// delivery) are not compared: the block that starts last wins.
func (s *Store) Fleet(ctx context.Context, q store.FleetQuery) ([]store.InstanceSummary, error) {
	ids, insts, err := s.listInstances(ctx, q.Service, q.Since)
	out := make([]store.InstanceSummary, len(insts))
	pos := make(map[int64]int, len(ids))
	for i := range insts {
		pos[ids[i]] = i
		out[i] = store.InstanceSummary{Instance: insts[i], Latest: map[string]store.Latest{}}
	}
	if err != nil || len(insts) == 0 || len(q.Names) == 0 {
		return out, err
	}
	ph := strings.TrimSuffix(strings.Repeat("?, ", len(q.Names)), ", ")
	args := []any{q.Since}
	for _, n := range q.Names {
		args = append(args, n)
	}
	svc := ""
	if q.Service != "" {
		svc = ` AND i.service = ?`
		args = append(args, q.Service)
	}
	type want struct {
		inst  int64
		name  string
		sr    seriesRow
		found bool
	}
	wanted := map[int64]*want{}
	// One range of the series_name index per name; instances outside
	// the summary are skipped here rather than joined.
	rows, err := s.r.QueryContext(ctx, `SELECT id, instance, name, is_hist, boundaries FROM series INDEXED BY series_name WHERE name IN (`+ph+`)`, args[1:1+len(q.Names)]...)
	if err != nil {
		return nil, fmt.Errorf("fleet summary: %w", err)
	}
	bounds := map[string][]float64{} // histograms of one kind share boundaries
	for rows.Next() {
		w := &want{}
		var hist int
		var b []byte
		if err := rows.Scan(&w.sr.id, &w.inst, &w.name, &hist, &b); err != nil {
			rows.Close()
			return nil, err
		}
		if _, ok := pos[w.inst]; !ok {
			continue
		}
		w.sr.hist = hist == 1
		if w.sr.hist {
			bs, ok := bounds[string(b)]
			if !ok {
				bs = decodeFloats(b)
				bounds[string(b)] = bs
			}
			w.sr.bounds = bs
		}
		wanted[w.sr.id] = w
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fleet summary: %w", err)
	}
	if len(wanted) == 0 {
		return out, nil
	}
	// take records the newest point of section sc if it is a wanted series
	// and newer than what was found before.
	take := func(sc blockSection) error {
		w := wanted[sc.series]
		if w == nil {
			return nil
		}
		last, ok, err := lastPoint(sc.data, sc.minT, len(w.sr.bounds)-1)
		if err != nil {
			return fmt.Errorf("fleet summary: %s: %w", w.name, err)
		}
		if i, in := pos[w.inst]; ok && in && last.t >= q.Since && (!w.found || last.t > out[i].Latest[w.name].T) {
			w.found = true
			out[i].Latest[w.name] = store.Latest{T: last.t, Value: last.v, Hist: w.sr.histOf(last.count)}
		}
		return nil
	}
	eachBlock := func(rows *sql.Rows, fn func(inst, minT int64, data []byte) (more bool, err error)) error {
		defer rows.Close()
		for rows.Next() {
			var inst, minT int64
			var data sql.RawBytes
			if err := rows.Scan(&inst, &minT, &data); err != nil {
				return err
			}
			more, err := fn(inst, minT, data)
			if err != nil || !more {
				return err
			}
		}
		return rows.Err()
	}
	rows, err = s.r.QueryContext(ctx, `SELECT b.instance, b.min_t, b.data FROM instances i JOIN blocks b ON b.instance = i.id AND b.min_t = i.last_block
WHERE i.last_seen >= ?`+svc, append([]any{q.Since}, args[1+len(q.Names):]...)...)
	if err != nil {
		return nil, fmt.Errorf("fleet summary: %w", err)
	}
	// The few series wanted of each instance, compared directly: cheaper
	// than a map probe for each of a block's ~80 sections.
	byInst := map[int64][]int64{}
	for id, w := range wanted {
		byInst[w.inst] = append(byInst[w.inst], id)
	}
	var ferr error
	err = eachBlock(rows, func(inst, minT int64, data []byte) (bool, error) {
		ids := byInst[inst]
		left := len(ids)
		return true, forEachSection(data, minT, func(sc blockSection) bool {
			if !slices.Contains(ids, sc.series) {
				return true
			}
			ferr = take(sc)
			left--
			return ferr == nil && left > 0
		})
	})
	if err = errors.Join(err, ferr); err != nil {
		return nil, fmt.Errorf("fleet summary: %w", err)
	}
	// Series the newest blocks lack (or whose newest block was compacted):
	// the newest older block holding them, and their newest chunk.
	missing := map[int64][]*want{}
	for _, w := range wanted {
		if !w.found {
			missing[w.inst] = append(missing[w.inst], w)
		}
	}
	for inst, ws := range missing {
		left := len(ws)
		inBlock := map[int64]bool{}
		rows, err := s.r.QueryContext(ctx, `SELECT instance, min_t, data FROM blocks WHERE instance = ? AND max_t >= ? ORDER BY min_t DESC`, inst, q.Since)
		if err != nil {
			return nil, fmt.Errorf("fleet summary: %w", err)
		}
		err = eachBlock(rows, func(inst, minT int64, data []byte) (bool, error) {
			err := forEachSection(data, minT, func(sc blockSection) bool {
				if w := wanted[sc.series]; w != nil && !w.found && !inBlock[sc.series] {
					inBlock[sc.series] = true
					if ferr = take(sc); ferr != nil {
						return false
					}
					left--
				}
				return true
			})
			return left > 0, errors.Join(err, ferr)
		})
		if err != nil {
			return nil, fmt.Errorf("fleet summary: %w", err)
		}
		for _, w := range ws {
			var minT int64
			var data []byte
			err := s.r.QueryRowContext(ctx, `SELECT min_t, data FROM chunks WHERE series = ? AND max_t >= ? ORDER BY min_t DESC LIMIT 1`, w.sr.id, q.Since).Scan(&minT, &data)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err == nil {
				err = take(blockSection{series: w.sr.id, minT: minT, data: data})
			}
			if err != nil {
				return nil, fmt.Errorf("fleet summary: %w", err)
			}
		}
	}
	return out, nil
}

// GCCycles implements store.Metrics.
func (s *Store) GCCycles(ctx context.Context, key store.InstanceKey, start, end int64) ([]store.GCCycle, []store.GCGap, error) {
	id, err := s.instanceID(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT cycle, end_time, pause_ns, heap_known, heap_live, heap_goal, gc_cpu_seconds, cpu_seconds, forced
FROM gc_cycles WHERE instance = ? AND end_time >= ? AND end_time < ? ORDER BY cycle`, id, start, end)
	if err != nil {
		return nil, nil, fmt.Errorf("query GC cycles: %w", err)
	}
	defer rows.Close()
	var cycles []store.GCCycle
	for rows.Next() {
		var g store.GCCycle
		var cyc, live, goal int64
		var known, forced int
		if err := rows.Scan(&cyc, &g.EndTime, &g.PauseNs, &known, &live, &goal, &g.GCCPUSeconds, &g.TotalCPUSeconds, &forced); err != nil {
			return nil, nil, err
		}
		g.Cycle, g.HeapLiveBytes, g.HeapGoalBytes = uint32(cyc), uint64(live), uint64(goal)
		g.HeapKnown, g.Forced = known == 1, forced == 1
		cycles = append(cycles, g)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	grows, err := s.r.QueryContext(ctx, `SELECT first_cycle, last_cycle, t, reason FROM gc_gaps WHERE instance = ? AND t >= ? AND t < ? ORDER BY first_cycle`, id, start, end)
	if err != nil {
		return nil, nil, fmt.Errorf("query GC gaps: %w", err)
	}
	defer grows.Close()
	var gaps []store.GCGap
	for grows.Next() {
		var g store.GCGap
		var f, l int64
		if err := grows.Scan(&f, &l, &g.Time, &g.Reason); err != nil {
			return nil, nil, err
		}
		g.FirstCycle, g.LastCycle = uint32(f), uint32(l)
		gaps = append(gaps, g)
	}
	return cycles, gaps, grows.Err()
}
