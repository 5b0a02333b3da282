-- gopulse store, schema version 1.
-- Times are Unix milliseconds in INTEGER columns. Statements are kept to
-- what PostgreSQL also accepts, except WITHOUT ROWID (a storage hint with no
-- portable form; a PostgreSQL schema simply drops it) and INTEGER PRIMARY KEY
-- (PostgreSQL: BIGINT GENERATED ALWAYS AS IDENTITY).

CREATE TABLE instances (
    id            INTEGER PRIMARY KEY,
    service       TEXT    NOT NULL,
    instance_id   TEXT    NOT NULL,
    host          TEXT    NOT NULL,
    pid           INTEGER NOT NULL,
    go_version    TEXT    NOT NULL,
    agent_version TEXT    NOT NULL,
    start_time    INTEGER NOT NULL,
    labels        TEXT    NOT NULL,
    source        TEXT    NOT NULL,
    first_seen    INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL,
    UNIQUE (service, instance_id)
);
CREATE INDEX instances_last_seen ON instances (last_seen);

-- One row per (instance, metric). rolled_until: rollups are complete for
-- minutes before it.
CREATE TABLE series (
    id           INTEGER PRIMARY KEY,
    instance     INTEGER NOT NULL REFERENCES instances (id),
    name         TEXT    NOT NULL,
    is_hist      INTEGER NOT NULL,
    boundaries   BLOB,
    rolled_until INTEGER NOT NULL,
    UNIQUE (instance, name)
);

-- Full-resolution samples, a compressed chunk per series per write (see
-- codec.go for the data format). max_t lets queries and retention skip
-- chunks without decoding them.
CREATE TABLE chunks (
    series INTEGER NOT NULL,
    min_t  INTEGER NOT NULL,
    max_t  INTEGER NOT NULL,
    data   BLOB    NOT NULL,
    PRIMARY KEY (series, min_t)
) WITHOUT ROWID;

-- One row per series per minute (t = minute start). last/last_t: the newest
-- sample in the minute; hist: that sample's histogram (histogram series).
CREATE TABLE rollups (
    series INTEGER NOT NULL,
    t      INTEGER NOT NULL,
    n      INTEGER NOT NULL,
    sum    REAL    NOT NULL,
    min    REAL    NOT NULL,
    max    REAL    NOT NULL,
    last   REAL    NOT NULL,
    last_t INTEGER NOT NULL,
    hist   BLOB,
    PRIMARY KEY (series, t)
) WITHOUT ROWID;

CREATE TABLE gc_cycles (
    instance       INTEGER NOT NULL,
    cycle          INTEGER NOT NULL,
    end_time       INTEGER NOT NULL,
    pause_ns       INTEGER NOT NULL,
    heap_known     INTEGER NOT NULL,
    heap_live      INTEGER NOT NULL,
    heap_goal      INTEGER NOT NULL,
    gc_cpu_seconds REAL    NOT NULL,
    cpu_seconds    REAL    NOT NULL,
    forced         INTEGER NOT NULL,
    PRIMARY KEY (instance, cycle)
) WITHOUT ROWID;
CREATE INDEX gc_cycles_time ON gc_cycles (instance, end_time);

CREATE TABLE gc_gaps (
    instance    INTEGER NOT NULL,
    first_cycle INTEGER NOT NULL,
    last_cycle  INTEGER NOT NULL,
    t           INTEGER NOT NULL,
    reason      TEXT    NOT NULL,
    PRIMARY KEY (instance, first_cycle)
) WITHOUT ROWID;

CREATE TABLE idempotency_keys (
    k       TEXT    PRIMARY KEY,
    expires INTEGER NOT NULL
);
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires);

-- Bundle bodies live in the blob store under blob_prefix; these rows are
-- the index.
CREATE TABLE bundles (
    id          TEXT    PRIMARY KEY,
    instance    INTEGER NOT NULL REFERENCES instances (id),
    rule        TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    fired_at    INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    rule_values TEXT    NOT NULL,
    notes       TEXT    NOT NULL,
    capture_stw REAL    NOT NULL,
    size        INTEGER NOT NULL,
    blob_prefix TEXT    NOT NULL
);
CREATE INDEX bundles_fired ON bundles (fired_at);
CREATE INDEX bundles_instance ON bundles (instance, fired_at);
CREATE INDEX bundles_received ON bundles (received_at);

CREATE TABLE bundle_files (
    bundle       TEXT    NOT NULL REFERENCES bundles (id) ON DELETE CASCADE,
    idx          INTEGER NOT NULL,
    name         TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    sha256       BLOB    NOT NULL,
    note         TEXT    NOT NULL,
    blob_key     TEXT    NOT NULL,
    PRIMARY KEY (bundle, idx),
    UNIQUE (bundle, name)
);

CREATE TABLE findings (
    id          INTEGER PRIMARY KEY,
    instance    INTEGER NOT NULL REFERENCES instances (id),
    kind        TEXT    NOT NULL,
    fkey        TEXT    NOT NULL,
    severity    TEXT    NOT NULL,
    title       TEXT    NOT NULL,
    summary     TEXT    NOT NULL,
    details     BLOB,
    bundle_ids  TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    opened_at   INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    resolved_at INTEGER NOT NULL,
    UNIQUE (instance, kind, fkey)
);
CREATE INDEX findings_last_seen ON findings (last_seen);

CREATE TABLE finding_events (
    finding INTEGER NOT NULL REFERENCES findings (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    state   TEXT    NOT NULL,
    note    TEXT    NOT NULL,
    PRIMARY KEY (finding, seq)
);

CREATE TABLE goroutine_snapshots (
    id         INTEGER PRIMARY KEY,
    instance   INTEGER NOT NULL REFERENCES instances (id),
    t          INTEGER NOT NULL,
    source     TEXT    NOT NULL,
    goroutines INTEGER NOT NULL,
    UNIQUE (instance, t)
);

CREATE TABLE goroutine_groups (
    snapshot    INTEGER NOT NULL REFERENCES goroutine_snapshots (id) ON DELETE CASCADE,
    gkey        TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    n           INTEGER NOT NULL,
    leaked      INTEGER NOT NULL,
    wait_max_ms INTEGER NOT NULL,
    PRIMARY KEY (snapshot, gkey)
);

-- Stacks are large and repeat across snapshots: kept once per group key.
CREATE TABLE goroutine_stacks (
    gkey  TEXT PRIMARY KEY,
    stack BLOB NOT NULL,
    last_used INTEGER NOT NULL
);

CREATE TABLE tokens (
    id         TEXT    PRIMARY KEY,
    hash       BLOB    NOT NULL UNIQUE,
    service    TEXT    NOT NULL,
    note       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL
);

CREATE TABLE meta (
    k TEXT PRIMARY KEY,
    v INTEGER NOT NULL
);
