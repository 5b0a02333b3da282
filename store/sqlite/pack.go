package sqlite

import (
	"database/sql"
	"fmt"
	"maps"
	"slices"
)

// Packing rollups by the hour (schema version 3): a minute row costs ~47
// bytes, a packed minute a handful, and rollups are kept 14 days.

// packLag is how long after an hour has been rolled up it is packed: late
// data for it (an agent's spool replay) usually arrives within that and is
// then re-rolled into minute rows without touching a packed hour.
const packLag = 15 * 60000

// packRow is one series' packed hour, replacing its minute rows.
type packRow struct {
	series int64
	data   []byte
}

// planPack plans packing the instance's next unpacked hour that ended
// packLag before rolled_until (p.rolled, as read), one hour per plan so
// a writer transaction stays short; p.more asks for another. Minute rows
// of an hour packed before (late data re-rolled) are merged into its
// packed row.
func planPack(q querier, im *instMaint, p *plan) error {
	p.packTo = p.packed
	// Late data lowered rolled_until below packed hours: their minutes
	// are being rolled up again into minute rows, to be packed again.
	if h := floorHour(p.rolled); h < p.packTo {
		p.packTo = h
	}
	// Only hours rolled up before this plan: its own rollups are not in
	// the snapshot. Hours its rollups complete are packed by another
	// plan of the same run.
	defer func() {
		p.more = p.more || floorHour(p.rollTo-packLag) > p.packTo
	}()
	cut := floorHour(p.rolled - packLag)
	if p.packTo >= cut {
		return nil
	}
	var next sql.NullInt64
	// One index seek per series: a MIN over the instance's rows at once
	// would scan every minute row from packTo on.
	if err := q.queryRow(`SELECT MIN((SELECT MIN(r.t) FROM rollups r WHERE r.series = s.id AND r.t >= ?)) FROM series s WHERE s.instance = ?`, p.packTo, p.inst).Scan(&next); err != nil {
		return fmt.Errorf("next rollup to pack: %w", err)
	}
	if !next.Valid || next.Int64 >= cut {
		p.packTo = cut // no minute rows left before cut
		return nil
	}
	hour := floorHour(next.Int64)
	aggs, err := minuteRollups(q, im, p.inst, hour)
	if err != nil {
		return err
	}
	if err := mergePacked(q, im, p.inst, hour, aggs); err != nil {
		return err
	}
	for _, id := range slices.Sorted(maps.Keys(aggs)) {
		p.packs = append(p.packs, packRow{series: id, data: encodeRollHour(nil, hour, im.series[id].hist, aggs[id])})
	}
	p.packHour, p.packTo = hour, hour+hourMs
	return nil
}

// minuteRollups reads the instance's minute rows of the hour, by series.
func minuteRollups(q querier, im *instMaint, inst, hour int64) (map[int64][]rollAgg, error) {
	rows, err := q.query(`SELECT series, t, n, sum, min, max, last, last_t, hist FROM rollups WHERE series IN (SELECT id FROM series WHERE instance = ?) AND t >= ? AND t < ? ORDER BY series, t`, inst, hour, hour+hourMs)
	if err != nil {
		return nil, fmt.Errorf("read rollups of hour %d: %w", hour, err)
	}
	defer rows.Close()
	aggs := map[int64][]rollAgg{}
	for rows.Next() {
		var id int64
		var a rollAgg
		var hb []byte
		if err := rows.Scan(&id, &a.t, &a.n, &a.sum, &a.min, &a.max, &a.last, &a.lastT, &hb); err != nil {
			return nil, err
		}
		meta, ok := im.series[id]
		if !ok {
			if im.series, err = loadSeries(q, inst); err != nil {
				return nil, fmt.Errorf("load series: %w", err)
			}
			if meta, ok = im.series[id]; !ok {
				return nil, fmt.Errorf("rollup of unknown series %d", id)
			}
		}
		if meta.hist && hb != nil {
			if a.hist, err = decodeHist(hb, len(meta.bounds)-1); err != nil {
				return nil, fmt.Errorf("rollup of series %d at %d: %w", id, a.t, err)
			}
		}
		aggs[id] = append(aggs[id], a)
	}
	return aggs, rows.Err()
}

// mergePacked merges the minutes of the hour's packed rows that the
// minute rows in aggs do not replace into aggs; a series without minute
// rows keeps its packed row as it is.
func mergePacked(q querier, im *instMaint, inst, hour int64, aggs map[int64][]rollAgg) error {
	rows, err := q.query(`SELECT series, data FROM rollup_hours WHERE series IN (SELECT id FROM series WHERE instance = ?) AND t = ?`, inst, hour)
	if err != nil {
		return fmt.Errorf("read packed hour %d: %w", hour, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var data []byte
		if err := rows.Scan(&id, &data); err != nil {
			return err
		}
		newer, ok := aggs[id]
		if !ok {
			continue
		}
		nb := -1
		if m := im.series[id]; m.hist {
			nb = len(m.bounds) - 1
		}
		var old []rollAgg
		if err := decodeRollHour(data, hour, nb, func(a rollAgg) { old = append(old, a) }); err != nil {
			return fmt.Errorf("packed hour %d of series %d: %w", hour, id, err)
		}
		aggs[id] = mergeAggs(old, newer)
	}
	return rows.Err()
}

// mergeAggs merges two ascending minute lists; newer wins a minute both
// have.
func mergeAggs(old, newer []rollAgg) []rollAgg {
	out := make([]rollAgg, 0, len(old)+len(newer))
	i, j := 0, 0
	for i < len(old) || j < len(newer) {
		switch {
		case j == len(newer) || (i < len(old) && old[i].t < newer[j].t):
			out = append(out, old[i])
			i++
		case i == len(old) || newer[j].t < old[i].t:
			out = append(out, newer[j])
			j++
		default:
			out = append(out, newer[j])
			i++
			j++
		}
	}
	return out
}

// applyPack writes p's packed hour and deletes the minute rows it holds.
func applyPack(t *wtx, p *plan) error {
	for _, r := range p.packs {
		if _, err := t.exec(`INSERT INTO rollup_hours (series, t, data) VALUES (?, ?, ?) ON CONFLICT (series, t) DO UPDATE SET data = excluded.data`, r.series, p.packHour, r.data); err != nil {
			return fmt.Errorf("pack rollups of series %d at %d: %w", r.series, p.packHour, err)
		}
	}
	if len(p.packs) > 0 {
		if _, err := t.exec(`DELETE FROM rollups WHERE series IN (SELECT id FROM series WHERE instance = ?) AND t >= ? AND t < ?`, p.inst, p.packHour, p.packHour+hourMs); err != nil {
			return fmt.Errorf("delete packed minute rollups: %w", err)
		}
	}
	if p.packTo != p.packed {
		if _, err := t.exec(`UPDATE instances SET packed_until = ? WHERE id = ?`, p.packTo, p.inst); err != nil {
			return err
		}
	}
	return nil
}
