-- gopulse store, schema version 2: per-instance blocks.
--
-- Append writes one row per batch per instance (a block holding a section
-- per series, see codec.go) instead of one chunk row per series: ingest
-- costs a handful of row writes per batch, not ~80. Maintain compacts
-- blocks of completed 15-minute windows into the per-series chunks of
-- schema 1, which range queries read. seq tells apart two blocks of one
-- instance that start at the same millisecond.
CREATE TABLE blocks (
    instance INTEGER NOT NULL,
    min_t    INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    max_t    INTEGER NOT NULL,
    data     BLOB    NOT NULL,
    PRIMARY KEY (instance, min_t, seq)
) WITHOUT ROWID;

-- Rollups are now computed per instance: rollups are complete for minutes
-- before rolled_until (series.rolled_until is no longer maintained).
-- Blocks before compacted_until were compacted; a late block for such a
-- window is merged into the window's chunks.
ALTER TABLE instances ADD COLUMN rolled_until INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN compacted_until INTEGER NOT NULL DEFAULT 0;
-- min_t of the instance's newest block, kept by Append at no extra
-- statement: the fleet summary reads that block with one seek.
ALTER TABLE instances ADD COLUMN last_block INTEGER NOT NULL DEFAULT 0;
UPDATE instances SET rolled_until = COALESCE((SELECT MIN(s.rolled_until) FROM series s WHERE s.instance = instances.id), 0);

-- The fleet summary looks series up by name across instances; covering,
-- so no table row is visited.
CREATE INDEX series_name ON series (name, instance, id, is_hist, boundaries);

-- Chunks move to a rowid table. A WITHOUT ROWID row keeps at most ~1 KB of
-- a 4 KB page locally and leaves its last overflow page part empty (~2 KB
-- lost per compacted chunk, ~30% of the raw data); a rowid table keeps the
-- remainder locally and fills its overflow pages.
CREATE TABLE chunks_rowid (
    id     INTEGER PRIMARY KEY,
    series INTEGER NOT NULL,
    min_t  INTEGER NOT NULL,
    max_t  INTEGER NOT NULL,
    data   BLOB    NOT NULL
);
INSERT INTO chunks_rowid (series, min_t, max_t, data) SELECT series, min_t, max_t, data FROM chunks ORDER BY series, min_t;
DROP TABLE chunks;
ALTER TABLE chunks_rowid RENAME TO chunks;
CREATE UNIQUE INDEX chunks_series ON chunks (series, min_t);
