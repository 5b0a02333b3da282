-- gopulse store, schema version 3: rollups packed by the hour.
--
-- A 1-minute rollup row costs ~47 bytes; kept 14 days they were two
-- thirds of an instance's storage. Maintain now packs each series' minutes
-- of an hour that ended more than packLag before rolled_until into one row
-- (the format is in codec.go), and deletes their minute rows. Minute rows
-- of a packed hour (late data re-rolled) override its packed minutes until
-- the hour is packed again. Hours before packed_until were packed.
--
-- A rowid table, unlike rollups: a packed hour is 0.5–2 kB, past what a
-- WITHOUT ROWID (index) b-tree keeps in its page (~1 kB of 4 kB), so each
-- would spill into an overflow page of its own and cost 4–5 kB.
CREATE TABLE rollup_hours (
    series INTEGER NOT NULL,
    t      INTEGER NOT NULL,
    data   BLOB    NOT NULL,
    UNIQUE (series, t)
);

ALTER TABLE instances ADD COLUMN packed_until INTEGER NOT NULL DEFAULT 0;
