// Package sqlite is the embedded store.Store: one SQLite database (through
// modernc.org/sqlite, pure Go) plus bundle bodies as files, both in one data
// directory.
//
// Layout of the data directory:
//
//	gopulse.db, -wal, -shm   the database (WAL mode)
//	blobs/bundles/<upload>/<n>  bundle file bodies (see FileBlobs)
//	blobs/tmp/               bodies being written; emptied at Open
//
// Durability (Options.Synchronous):
//
//   - "FULL", the default: an acknowledged write survives kill -9, a kernel
//     crash and a power cut. Every write goes through one writer goroutine
//     that runs requests as they arrive inside one open transaction and
//     commits it when no request is waiting (group commit), holding it open
//     up to Options.CommitDelay (1 ms) while requests stream in faster than
//     one per half of that, and while the syncer is busy with an fsync (a
//     commit then would be acknowledged no sooner). SQLite runs with
//     synchronous=NORMAL, so COMMIT writes
//     the group's WAL frames without fsync; the syncer goroutine then
//     fsyncs the WAL file and only after that answers the group's callers.
//     This is the guarantee of SQLite's own synchronous=FULL in WAL mode (an
//     fsync of the WAL after each commit, before anyone is told), with the
//     fsync moved off the writer: while the disk flushes group N the writer
//     already runs group N+1, and one fsync covers every group committed
//     before it started. WAL recovery stops at the first frame that is not
//     intact, so a later group can never survive without an earlier one.
//     If the fsync fails the callers get an error although the data is
//     committed; their retry is then answered as a duplicate (idempotency
//     key), never stored twice.
//   - "NORMAL": callers are answered right after COMMIT, without waiting
//     for an fsync. Survives kill -9 of the server (the WAL frames are in
//     the kernel's page cache before the answer); a power cut or kernel
//     crash may lose the groups committed since the last checkpoint synced
//     the WAL (at most ~checkpointInterval of writes), never corrupting the
//     database. Agents delete acknowledged batches from their spool, so
//     this is not the default.
//   - "SQLITE-FULL": SQLite's synchronous=FULL, the fsync inside COMMIT on
//     the writer. Same guarantee as FULL, slower; kept for comparison.
//
// Checkpoints (copying the WAL into the database file) run on their own
// connection every checkpointInterval, never inside a writer's commit.
//
// Samples: Append stores one block per batch per instance — a row holding
// a compressed section per series (codec.go) — so a batch of 80 metrics is
// a handful of row writes. Maintain (the collector calls it every minute)
// rolls the minutes up per instance and compacts the blocks of each
// finished 15-minute window into one chunk per series, which range queries
// read; the newest ~17 minutes stay in blocks.
//
// Maintain keeps the single writer free for ingest: it plans each
// instance's step (reading, decoding, aggregating, re-encoding) from a read
// snapshot in its own goroutine, then hands the writer only the writes, a
// ~2 ms transaction at a time. A plan is written only if no block reached
// its instance since the snapshot (Store.blockVer); otherwise it is planned
// again, and after two such misses inside the writer. It reads only the
// blocks and chunks that reach the minutes being rolled up (max_t ≥ the
// first of them), skips stretches without data in one step, keeps each
// instance's series and newest chunk time in memory, and runs retention
// deletes only when their cut moved by 5 minutes.
package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gopulse/gopulse/store"
	sqlitedrv "modernc.org/sqlite"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options tune Open. The zero value works.
type Options struct {
	// Retention; zero fields take store.Retention's defaults.
	Retention store.Retention
	// MaxDBBytes caps the database's used size; past it Append and the other
	// metric writes fail with store.ErrFull until Maintain frees space.
	// 0 = no cap.
	MaxDBBytes int64
	// MinFreeBytes is the free disk space to keep; below it writes fail with
	// store.ErrFull rather than filling the disk. 0 = 64 MiB; < 0 = no check.
	MinFreeBytes int64
	// Synchronous is "FULL" (default: acknowledged writes survive a power
	// cut), "NORMAL" (survives a process kill, not a power cut) or
	// "SQLITE-FULL" (as FULL, with the fsync inside SQLite's commit). See
	// the package doc.
	Synchronous string
	// Blobs stores bundle bodies; nil = FileBlobs under <dir>/blobs.
	Blobs store.BlobStore
	// Now is the clock for retention of incoming samples; nil = time.Now.
	Now func() time.Time
	// MaxGroup bounds the requests committed together; 0 = 512.
	MaxGroup int
	// MaintainDuty is the share of wall time a Maintain pass spends
	// working; it pauses between instances for the rest. Maintain is
	// CPU-heavy (decoding, merging and encoding each instance's minute),
	// and a pass at full speed takes a whole core for seconds, which on a
	// small collector queues ingest behind it. 0 = 0.25; ≥ 1 = no pauses.
	MaintainDuty float64
	// CommitDelay is the longest a group transaction stays open for more
	// requests while they arrive faster than one per CommitDelay/2 (see
	// the package doc); 0 = 1 ms, < 0 = never: each group commits as soon
	// as no request is waiting.
	CommitDelay time.Duration

	// walRestartBytes replaces the const of that name (tests make the WAL
	// start over every few batches); 0 = the const.
	walRestartBytes int64
}

// Store is the SQLite implementation of store.Store.
type Store struct {
	dir   string
	w     *sql.DB // one connection, used only by the writer goroutine
	r     *sql.DB // readers
	blobs store.BlobStore
	opts  Options
	ret   store.Retention

	closeMu sync.RWMutex
	closed  bool
	reqs    chan *wreq
	done    chan struct{}

	// Owned by the writer goroutine.
	series map[seriesKey]*seriesInfo
	// recent is, per instance, the series of its last batch in batch
	// order: agents send the same metrics in the same order every time,
	// so a batch's series are found by comparing names, not hashing them.
	recent map[int64]*recentSeries
	insts  map[store.InstanceKey]knownInstance
	// syncWAL: acknowledge writes only after the syncer has fsynced the
	// WAL holding their commit (Synchronous FULL). The writer hands each
	// committed group to the syncer on synced and goes on with the next
	// group while the fsync runs; syncDone says the syncer ended.
	syncWAL  bool
	synced   chan []ack
	syncDone chan struct{}
	// commitDelay is Options.CommitDelay with its default applied.
	commitDelay time.Duration
	// syncIdle holds a signal while the syncer waits for work: the
	// writer's cue to commit its open group (see writer).
	syncIdle chan struct{}

	// hot are the writer's frequent statements, prepared at Open on its one
	// connection: a group then binds them instead of parsing SQL again.
	hot map[string]*sql.Stmt

	// The checkpointer copies the WAL into the database off the commit
	// path (see checkpointer); ckStop ends it, ckDone says it ended.
	ck     *sql.DB
	ckStop chan struct{}
	ckDone chan struct{}
	// dbFile is the database file, held open for the checkpointer's
	// fsyncs (see syncCopied) and closed only after every connection:
	// closing a descriptor of the file would drop the process's POSIX
	// locks on it, SQLite's included.
	dbFile *os.File
	// restartWAL asks the writer for the last checkpoint step before the
	// WAL can start over (see checkpointer).
	restartWAL atomic.Bool
	// commits counts the writer's group transactions (tests).
	commits atomic.Int64
	// walRestarts counts the times the checkpointer saw the WAL start over.
	walRestarts atomic.Int64

	rollMark    atomic.Int64 // rollups may be complete up to here (see Maintain)
	bundleBytes atomic.Int64
	full        atomic.Pointer[fullState]
	maintainMu  sync.Mutex
	// maint is Maintain's per-instance state (see instMaint), guarded by
	// maintainMu.
	maint map[int64]*instMaint
	// blockVer counts, per instance, the committed groups that added
	// blocks to it: Maintain plans from a read snapshot and writes the
	// plan only if the count has not moved since before the snapshot
	// (see plan). Never reset, so a count cannot come back to an old
	// value; one entry per instance seen by this process.
	blockVerMu sync.Mutex
	blockVer   map[int64]uint64
}

var _ store.Store = (*Store)(nil)

type fullState struct {
	checked time.Time
	db      error // MaxDBBytes reached
	disk    error // MinFreeBytes reserve reached
}

type seriesKey struct {
	inst int64
	name string
}

type seriesInfo struct {
	id     int64
	hist   bool
	bounds []float64
	// seen is the caller's boundaries slice last found equal to bounds.
	seen []float64
}

// ack is the answer owed to one request once its group is durable.
type ack struct {
	r   *wreq
	err error
}

type wreq struct {
	ctx context.Context
	fn  func(*wtx) error
	err chan error
}

// txStmts is a transaction with its statements prepared once: the
// writer's groups (wtx) and Maintain's read snapshots (rtx) both use it.
type txStmts struct {
	tx    *sql.Tx
	hot   map[string]*sql.Stmt // prepared once on the writer's connection; nil for readers
	stmts map[string]*sql.Stmt
}

// wtx is a write transaction with statements prepared once per group.
type wtx struct {
	txStmts
	// Scratch space reused by the requests of a group.
	secs []blockSection
	buf  []byte
	// blocksFor lists the instances the group added blocks to (see
	// Store.blockVer).
	blocksFor []int64
}

func (t *txStmts) exec(q string, args ...any) (sql.Result, error) {
	st, err := t.stmt(q)
	if err != nil {
		return nil, err
	}
	return st.Exec(args...)
}

func (t *txStmts) queryRow(q string, args ...any) *sql.Row {
	st, err := t.stmt(q)
	if err != nil {
		return t.tx.QueryRow(q, args...) // reports the same error on Scan
	}
	return st.QueryRow(args...)
}

func (t *txStmts) query(q string, args ...any) (*sql.Rows, error) {
	st, err := t.stmt(q)
	if err != nil {
		return nil, err
	}
	return st.Query(args...)
}

func (t *txStmts) stmt(q string) (*sql.Stmt, error) {
	if st, ok := t.stmts[q]; ok {
		return st, nil
	}
	if h := t.hot[q]; h != nil {
		// Reuses the statement already prepared on this connection.
		st := t.tx.Stmt(h)
		t.stmts[q] = st
		return st, nil
	}
	st, err := t.tx.Prepare(q)
	if err != nil {
		return nil, fmt.Errorf("prepare %q: %w", firstLine(q), err)
	}
	t.stmts[q] = st
	return st, nil
}

func firstLine(q string) string {
	q = strings.TrimSpace(q)
	if i := strings.IndexByte(q, '\n'); i >= 0 {
		q = q[:i]
	}
	return q
}

// Open opens (creating if needed) the store in dir, applies pending
// migrations, removes bundle bodies left by an interrupted upload and
// starts the writer. Close releases it.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if dir == "" {
		return nil, fmt.Errorf("open store: %w: empty data directory", store.ErrInvalid)
	}
	syncMode := strings.ToUpper(opts.Synchronous)
	switch syncMode {
	case "":
		syncMode = "FULL"
	case "FULL", "NORMAL", "SQLITE-FULL":
	default:
		return nil, fmt.Errorf("open store: %w: Synchronous %q (want FULL or NORMAL)", store.ErrInvalid, opts.Synchronous)
	}
	if opts.MinFreeBytes == 0 {
		opts.MinFreeBytes = 64 << 20
	}
	if opts.MaxGroup <= 0 {
		opts.MaxGroup = 512
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open store: create data directory: %w", mapErr(err))
	}
	path := filepath.Join(dir, "gopulse.db")
	// FULL is SQLite's NORMAL (commits write the WAL without fsync) plus
	// an fsync of the WAL by the syncer before the acknowledgement; see the
	// package doc.
	sqliteSync := map[string]string{"FULL": "NORMAL", "NORMAL": "NORMAL", "SQLITE-FULL": "FULL"}[syncMode]
	base := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(" + sqliteSync + ")"
	// The writer never checkpoints (wal_autocheckpoint=0): an automatic
	// checkpoint runs inside the commit that crosses the threshold and
	// stalls every Append of that group behind copying and fsyncing the
	// database file. The checkpointer goroutine does it instead.
	// Its page cache is larger than SQLite's 2 MB default: Maintain's
	// rollup upserts touch one leaf page per series, and reading them back
	// from the file cost a system call each. temp_store(MEMORY) keeps each
	// request's savepoint journal in memory: past 64 KiB SQLite would
	// spill it to a temporary file, created and written per savepoint.
	w, err := sql.Open("sqlite", base+"&_txlock=immediate&_pragma=wal_autocheckpoint(0)&_pragma=cache_size(-32768)&_pragma=mmap_size(1073741824)&_pragma=temp_store(MEMORY)")
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, mapErr(err))
	}
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", base+"&_pragma=query_only(1)&_pragma=mmap_size(1073741824)&_pragma=cache_size(-16384)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	// The checkpointer's busy timeout is short: while a RESTART or
	// TRUNCATE checkpoint waits for readers it also holds off the writer,
	// so it gives up after ckBusyTimeout and tries again on a later tick.
	ck, err := sql.Open("sqlite", strings.Replace(base, "busy_timeout(10000)", "busy_timeout("+strconv.Itoa(int(ckBusyTimeout/time.Millisecond))+")", 1))
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	ck.SetMaxOpenConns(1)
	ck.SetMaxIdleConns(1)
	dbFile, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		w.Close()
		r.Close()
		ck.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	hot := map[string]*sql.Stmt{}
	for _, q := range hotSQL {
		st, err := w.PrepareContext(ctx, q)
		if err != nil {
			for _, st := range hot {
				st.Close()
			}
			w.Close()
			r.Close()
			ck.Close()
			dbFile.Close()
			return nil, fmt.Errorf("open store %s: prepare %q: %w", path, firstLine(q), err)
		}
		hot[q] = st
	}
	s := &Store{
		syncWAL:     syncMode == "FULL",
		synced:      make(chan []ack, 64),
		syncDone:    make(chan struct{}),
		syncIdle:    make(chan struct{}, 1),
		commitDelay: cmp.Or(opts.CommitDelay, time.Millisecond),
		hot:         hot,
		ck:          ck,
		dbFile:      dbFile,
		ckStop:      make(chan struct{}),
		ckDone:      make(chan struct{}),
		dir:         dir,
		w:           w,
		r:           r,
		blobs:       opts.Blobs,
		opts:        opts,
		ret:         opts.Retention.WithDefaults(),
		reqs:        make(chan *wreq, opts.MaxGroup),
		done:        make(chan struct{}),
		series:      map[seriesKey]*seriesInfo{},
		recent:      map[int64]*recentSeries{},
		insts:       map[store.InstanceKey]knownInstance{},
		maint:       map[int64]*instMaint{},
		blockVer:    map[int64]uint64{},
	}
	if s.blobs == nil {
		fb, err := NewFileBlobs(filepath.Join(dir, "blobs"))
		if err != nil {
			s.closeDBs()
			return nil, fmt.Errorf("open store: %w", err)
		}
		s.blobs = fb
	}
	var mark, total sql.NullInt64
	if err := w.QueryRowContext(ctx, `SELECT v FROM meta WHERE k = 'rollup_mark'`).Scan(&mark); err != nil && !errors.Is(err, sql.ErrNoRows) {
		s.closeDBs()
		return nil, fmt.Errorf("open store: read rollup mark: %w", err)
	}
	s.rollMark.Store(mark.Int64)
	if err := w.QueryRowContext(ctx, `SELECT SUM(size) FROM bundles`).Scan(&total); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("open store: sum bundle sizes: %w", err)
	}
	s.bundleBytes.Store(total.Int64)
	s.syncIdle <- struct{}{} // the syncer starts idle
	go s.writer()
	go s.syncer()
	go s.checkpointer()
	if _, err := s.sweepOrphans(ctx, 0); err != nil {
		s.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	return s, nil
}

// hotSQL are the statements prepared once at Open (see Store.hot).
var hotSQL = append([]string{
	`SAVEPOINT w`, `RELEASE SAVEPOINT w`, `ROLLBACK TO SAVEPOINT w`,
	upsertInstanceSQL, touchInstanceSQL, claimKeySQL, insertBlockSQL,
}, append(rollupSQL[:], gcInsertSQL[:]...)...)

func (s *Store) closeDBs() {
	for _, st := range s.hot {
		st.Close()
	}
	s.w.Close()
	s.r.Close()
	s.ck.Close()
	s.dbFile.Close()
}

// checkpointInterval is how often the checkpointer runs. Under heavy
// ingest (≈ 50 MB/s of WAL at 2,000 batches/s) a PASSIVE checkpoint copies
// some 12 MB each time.
const checkpointInterval = 250 * time.Millisecond

// walRestartBytes: past this WAL size the checkpointer has the writer
// start the WAL over. Under continuous writes a PASSIVE checkpoint never
// finds the WAL fully copied (the writer appends while it copies), and
// SQLite starts the WAL over only at a write transaction that finds it
// so, so without help the WAL grows without bound.
const walRestartBytes = 256 << 20

// walRestartRemainder is the most WAL the writer's own checkpoint should
// find still to copy, and maxCatchUp bounds the PASSIVE rounds that bring
// it there.
const (
	walRestartRemainder = 1 << 20
	maxCatchUp          = 6
)

// walTruncateBytes: past this size (restarts kept failing because readers
// held old snapshots) the checkpointer truncates the file, holding the
// writer off for up to ckBusyTimeout while it waits for them.
const walTruncateBytes = 1 << 30

// ckBusyTimeout bounds how long a TRUNCATE checkpoint waits for the writer
// and for readers; the writer waits behind it meanwhile.
const ckBusyTimeout = 20 * time.Millisecond

// checkpointer copies committed WAL frames into the database file every
// checkpointInterval with a PASSIVE checkpoint, which runs beside the
// writer and the readers without blocking them. Once the WAL holds more
// than walRestartBytes it copies ahead until little is left and asks the
// writer to copy that last bit itself, between two groups: with nothing
// appended meanwhile that checkpoint completes, and the writer's next
// transaction starts the WAL over (if no reader still holds an old
// snapshot; else a later round tries again). The writer then waits for a
// small copy and sync only, where a blocking checkpoint from here waited
// out readers through SQLite's busy-handler sleeps (≈ 50 ms per restart)
// and a TRUNCATE of a 256 MB WAL held ingest up for ≈ 250 ms every 4 s at
// 2,000 batches/s. Durability does not depend on checkpoints: a commit is
// durable once its WAL frames are (see the package doc).
func (s *Store) checkpointer() {
	defer close(s.ckDone)
	tick := time.NewTicker(checkpointInterval)
	defer tick.Stop()
	wal := filepath.Join(s.dir, "gopulse.db-wal")
	restartAt := cmp.Or(s.opts.walRestartBytes, walRestartBytes)
	var pageSize int64
	var lastSalt uint32
	var haveSalt bool
	for {
		select {
		case <-s.ckStop:
			return
		case <-tick.C:
		}
		// Errors (SQLITE_BUSY when readers or the writer hold on past
		// ckBusyTimeout) only mean the next tick tries again.
		var busy, frames, copied int64
		if err := s.ck.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied); err != nil {
			continue
		}
		s.syncCopied(copied)
		if salt, ok := walSalt1(wal); ok {
			if haveSalt {
				s.walRestarts.Add(int64(salt - lastSalt))
			}
			lastSalt, haveSalt = salt, true
		}
		if pageSize == 0 {
			if err := s.ck.QueryRow(`PRAGMA page_size`).Scan(&pageSize); err != nil {
				continue
			}
		}
		// The frames in use, not the file's size: a restarted WAL keeps
		// its file and is written from the start again.
		if frames*(pageSize+24) <= restartAt {
			continue
		}
		// Copy ahead with more PASSIVE rounds until little is left: each
		// round leaves what the writer added while it ran, which shrinks
		// as long as copying outpaces ingest.
		for range maxCatchUp {
			if (frames-copied)*(pageSize+24) <= walRestartRemainder {
				break
			}
			if err := s.ck.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied); err != nil {
				break
			}
			s.syncCopied(copied)
		}
		if st, err := os.Stat(wal); err == nil && st.Size() > walTruncateBytes {
			s.ck.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
			continue
		}
		s.restartWAL.Store(true)
	}
}

// walSalt1 reads salt-1 from the header of the WAL file at path. SQLite
// adds one to it each time the WAL starts over (and writes the header with
// the first frame after that), so its changes count the restarts.
func walSalt1(path string) (uint32, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var h [32]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return 0, false
	}
	return binary.BigEndian.Uint32(h[16:20]), true
}

// syncCopied fsyncs the database file after a checkpoint round that left
// copied frames of the WAL backfilled. SQLite fsyncs the database only
// after a checkpoint that finds, when it ends, nothing more to copy; under
// continuous writes a PASSIVE round never does, so everything it copied
// stayed dirty in the page cache until the writer's restart checkpoint
// (see checkpointer) fsynced it all, 20–50 ms measured at 2,000
// batches/s with every request waiting. Syncing here, off the writer,
// leaves that checkpoint the last few milliseconds of frames to flush. A
// failed sync is harmless: the frames are still in the WAL, and SQLite
// syncs again before the WAL starts over.
func (s *Store) syncCopied(copied int64) {
	if copied > 0 && s.dbFile != nil {
		s.dbFile.Sync()
	}
}

// migrate applies migrations/NNNN_*.sql in order, each in a transaction.
func migrate(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", mapErr(err))
	}
	var cur sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&cur); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	type mig struct {
		v    int64
		name string
	}
	var ms []mig
	for _, n := range names {
		base := filepath.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil {
			return fmt.Errorf("migration %s: name must start with a number and '_'", base)
		}
		ms = append(ms, mig{v, n})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].v < ms[j].v })
	for _, m := range ms {
		if m.v <= cur.Int64 {
			continue
		}
		body, err := migrations.ReadFile(m.name)
		if err != nil {
			return err
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.name, mapErr(err))
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", m.name, mapErr(err))
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, m.v, time.Now().UnixMilli()); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", m.name, mapErr(err))
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %s: commit: %w", m.name, mapErr(err))
		}
	}
	return nil
}

// Close waits for queued writes, stops the writer and closes the database.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	close(s.reqs)
	s.closeMu.Unlock()
	<-s.done
	close(s.ckStop)
	<-s.ckDone
	s.maintainMu.Lock() // a running Maintain finishes its read first
	defer s.maintainMu.Unlock()
	for _, st := range s.hot {
		st.Close()
	}
	err1 := s.r.Close()
	err2 := s.ck.Close()
	err3 := s.w.Close()
	err4 := s.dbFile.Close()
	return errors.Join(err1, err2, err3, err4)
}

// write runs fn in the writer goroutine inside a group transaction and
// returns when that transaction has committed (or fn failed). fn runs in a
// savepoint: its failure undoes only its own writes.
func (s *Store) write(ctx context.Context, fn func(*wtx) error) error {
	req := &wreq{ctx: ctx, fn: fn, err: make(chan error, 1)}
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return store.ErrClosed
	}
	select {
	case s.reqs <- req:
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return ctx.Err()
	}
	s.closeMu.RUnlock()
	// Once queued the request runs (unless its context ends first): wait for
	// it, so a caller never sees "canceled" for a write that was committed.
	return <-req.err
}

// writer runs every write request, one at a time, in group transactions
// (group commit). A request runs as soon as it arrives, inside the open
// transaction; the transaction commits when no request is waiting (see
// next for when it waits a little), or when it holds MaxGroup requests.
// Each commit has fixed costs whatever it holds — the WAL frames of the
// pages every batch touches (the instance row, index pages, the newest
// leaf of each b-tree) and SQLite's page-cache bookkeeping — and the
// writer alone is fast enough to commit nearly every batch on its own, so
// holding a group open briefly while requests stream in saves most of
// them: at 2,000 batches/s, one group per ~4 batches instead of ~1.2
// took the collector's CPU per batch from 583 to 398 µs (bench/ingest).
func (s *Store) writer() {
	defer close(s.done)
	var g *wgroup
	gap := time.Hour // moving average of the time between requests
	var last time.Time
	wait := time.NewTimer(time.Hour)
	wait.Stop()
	for {
		var r *wreq
		ok := true
		if g == nil {
			if r, ok = <-s.reqs; !ok {
				break
			}
			if s.restartWAL.Swap(false) {
				// Between groups, so nothing is appended while it copies
				// the little the checkpointer left (see checkpointer).
				// Errors leave the WAL as it was.
				s.w.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
			}
			g = s.beginGroup()
		} else {
			if r, ok = s.next(g, gap, wait); !ok {
				break
			}
			if r == nil {
				s.commitGroup(g)
				g = nil
				continue
			}
		}
		now := time.Now()
		if !last.IsZero() {
			gap += (now.Sub(last) - gap) / 8
		}
		last = now
		g.run(s, r)
		if len(g.reqs) >= s.opts.MaxGroup {
			s.commitGroup(g)
			g = nil
		}
	}
	if g != nil {
		s.commitGroup(g)
	}
	close(s.synced)
	<-s.syncDone
}

// next returns the next request for the open group g, or nil when g should
// commit now (ok false: the store is closing). With nothing waiting, g
// still stays open
//
//   - up to CommitDelay from its start while requests arrive faster than
//     one per half of it (gap is their moving average): the next one is
//     likely to come in time, and at a lower rate nobody waits for nothing;
//   - under FULL, while the syncer is busy with an fsync: a group
//     committed now would be acknowledged only after the next fsync, no
//     sooner than one committed once the syncer is free, so it takes what
//     arrives meanwhile.
func (s *Store) next(g *wgroup, gap time.Duration, wait *time.Timer) (*wreq, bool) {
	select {
	case r, ok := <-s.reqs:
		return r, ok
	default:
	}
	if delay := s.commitDelay; delay > 0 && gap < delay/2 {
		if d := time.Until(g.start.Add(delay)); d > 0 {
			wait.Reset(d)
			select {
			case r, ok := <-s.reqs:
				wait.Stop()
				return r, ok
			case <-wait.C:
			}
		}
	}
	if !s.syncWAL {
		return nil, true
	}
	select {
	case r, ok := <-s.reqs:
		return r, ok
	case <-s.syncIdle:
		return nil, true
	}
}

// wgroup is the writer's open transaction and the requests run in it.
type wgroup struct {
	start time.Time
	tx    *sql.Tx
	t     *wtx
	err   error // BEGIN failed: every request of the group gets it
	reqs  []*wreq
	errs  []error
	ran   int
}

func (s *Store) beginGroup() *wgroup {
	g := &wgroup{start: time.Now()}
	tx, err := s.w.Begin()
	if err != nil {
		g.err = fmt.Errorf("begin: %w", mapErr(err))
		return g
	}
	g.tx = tx
	g.t = &wtx{txStmts: txStmts{tx: tx, hot: s.hot, stmts: map[string]*sql.Stmt{}}}
	return g
}

// run runs r in its own savepoint, so a failed request leaves the others
// of the group intact.
func (g *wgroup) run(s *Store, r *wreq) {
	g.reqs = append(g.reqs, r)
	if g.err != nil {
		g.errs = append(g.errs, g.err)
		return
	}
	if err := r.ctx.Err(); err != nil {
		g.errs = append(g.errs, err)
		return
	}
	t := g.t
	if _, err := t.exec(`SAVEPOINT w`); err != nil {
		g.errs = append(g.errs, mapErr(err))
		return
	}
	var rerr error
	if err := r.fn(t); err != nil {
		rerr = mapErr(err)
		if _, err := t.exec(`ROLLBACK TO SAVEPOINT w`); err != nil {
			rerr = errors.Join(rerr, err)
		}
		// The series cache may name rows that were just rolled back.
		s.forgetSeries()
	} else {
		g.ran++
	}
	if _, err := t.exec(`RELEASE SAVEPOINT w`); err != nil && rerr == nil {
		rerr = mapErr(err)
	}
	g.errs = append(g.errs, rerr)
}

// commitGroup commits g and hands its answers to the syncer.
func (s *Store) commitGroup(g *wgroup) {
	// This commit is the syncer's next work: an idle signal from before
	// it is used up.
	select {
	case <-s.syncIdle:
	default:
	}
	var cerr error
	if g.tx != nil {
		t := g.t
		for _, st := range t.stmts {
			st.Close()
		}
		s.commits.Add(1)
		if g.ran == 0 {
			g.tx.Rollback()
		} else if err := g.tx.Commit(); err != nil {
			cerr = fmt.Errorf("commit: %w", mapErr(err))
			s.forgetSeries()
		} else if len(t.blocksFor) > 0 {
			// After the commit, so a count a reader saw before its
			// snapshot began cannot include a block the snapshot lacks.
			s.blockVerMu.Lock()
			for _, inst := range t.blocksFor {
				s.blockVer[inst]++
			}
			s.blockVerMu.Unlock()
		}
	}
	acks := make([]ack, len(g.reqs))
	for i, r := range g.reqs {
		err := g.errs[i]
		if err == nil && cerr != nil {
			err = cerr
		}
		acks[i] = ack{r, err}
	}
	s.synced <- acks
}

// syncer acknowledges committed groups. With syncWAL it first fsyncs the
// WAL, once for all the groups waiting, so the fsync of one group overlaps
// the SQL of the next instead of stalling the writer; a group is
// acknowledged only after an fsync that started after its commit. The
// writer closes synced when it stops.
func (s *Store) syncer() {
	defer close(s.syncDone)
	var wal *os.File
	defer func() {
		if wal != nil {
			wal.Close()
		}
	}()
	var pending [][]ack
	for acks := range s.synced {
		pending = append(pending[:0], acks)
	more:
		for {
			select {
			case a, ok := <-s.synced:
				if !ok {
					break more
				}
				pending = append(pending, a)
			default:
				break more
			}
		}
		var err error
		if s.syncWAL {
			wal, err = s.syncWALFile(wal)
			if err != nil {
				// The data is committed but perhaps not durable: the caller
				// retries, and the idempotency key reports it as a duplicate.
				err = fmt.Errorf("sync the write-ahead log: %w", mapErr(err))
			}
		}
		for _, acks := range pending {
			for _, a := range acks {
				if a.err == nil {
					a.err = err
				}
				a.r.err <- a.err
			}
		}
		if len(s.synced) == 0 {
			// Nothing committed meanwhile: the writer may commit now
			// (see writer). A signal already there stays one.
			select {
			case s.syncIdle <- struct{}{}:
			default:
			}
		}
	}
}

// syncWALFile fsyncs the WAL through f, (re)opening it when f is nil or no
// longer names the file at the WAL's path (SQLite deletes the WAL when the
// last connection closes; fsyncing an unlinked file would prove nothing).
func (s *Store) syncWALFile(f *os.File) (*os.File, error) {
	path := filepath.Join(s.dir, "gopulse.db-wal")
	if f != nil {
		a, err1 := f.Stat()
		b, err2 := os.Stat(path)
		if err1 != nil || err2 != nil || !os.SameFile(a, b) {
			f.Close()
			f = nil
		}
	}
	if f == nil {
		var err error
		if f, err = os.OpenFile(path, os.O_RDWR, 0); err != nil {
			return nil, err
		}
		// A new WAL's directory entry must be durable too (SQLite syncs
		// the directory on the WAL's first sync, which under NORMAL comes
		// only with the first checkpoint).
		if err := syncDir(s.dir); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, f.Sync()
}

// mapErr turns disk-full conditions into store.ErrFull.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, store.ErrFull) {
		return err
	}
	var se *sqlitedrv.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case 13: // SQLITE_FULL
			return fmt.Errorf("%w: %v", store.ErrFull, err)
		}
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %v", store.ErrFull, err)
	}
	return err
}

// isConstraint reports a UNIQUE/PRIMARY KEY violation.
func isConstraint(err error) bool {
	var se *sqlitedrv.Error
	return errors.As(err, &se) && se.Code()&0xff == 19
}

// checkFull returns store.ErrFull when the database cap or the free-space
// reserve is reached. It re-measures at most once a second.
func (s *Store) checkFull(ctx context.Context) error {
	st := s.measureFull(ctx)
	if st.db != nil {
		return st.db
	}
	return st.disk
}

// checkDisk is checkFull for bundle bodies, which have their own cap and
// are stopped only by the disk reserve.
func (s *Store) checkDisk(ctx context.Context) error { return s.measureFull(ctx).disk }

func (s *Store) measureFull(ctx context.Context) *fullState {
	now := time.Now()
	if st := s.full.Load(); st != nil && now.Sub(st.checked) < time.Second {
		return st
	}
	st := &fullState{checked: now}
	if s.opts.MaxDBBytes > 0 {
		used, err := s.dbUsed(ctx)
		if err == nil && used >= s.opts.MaxDBBytes {
			st.db = fmt.Errorf("%w: database uses %d bytes, cap is %d (Options.MaxDBBytes); retention will free space", store.ErrFull, used, s.opts.MaxDBBytes)
		}
	}
	if s.opts.MinFreeBytes > 0 {
		if free, ok := freeBytes(s.dir); ok && free < uint64(s.opts.MinFreeBytes) {
			st.disk = fmt.Errorf("%w: %d bytes free on the data disk, reserve is %d", store.ErrFull, free, s.opts.MinFreeBytes)
		}
	}
	s.full.Store(st)
	return st
}

func (s *Store) dbUsed(ctx context.Context) (int64, error) {
	var pages, free, size int64
	if err := s.r.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		return 0, err
	}
	if err := s.r.QueryRowContext(ctx, `PRAGMA freelist_count`).Scan(&free); err != nil {
		return 0, err
	}
	if err := s.r.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&size); err != nil {
		return 0, err
	}
	return (pages - free) * size, nil
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMs(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func floorMin(t int64) int64 {
	m := t - t%60000
	if t < 0 && t%60000 != 0 {
		m -= 60000
	}
	return m
}

// Vacuum rebuilds the database file, returning the pages retention freed
// to the file system. It holds the writer for its whole duration (seconds
// on a large database), so run it rarely, e.g. from an admin command.
func (s *Store) Vacuum(ctx context.Context) error {
	// VACUUM cannot run inside the writer's group transaction; the writer
	// pool's single connection serializes it with the writer instead.
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	if _, err := s.w.ExecContext(ctx, `VACUUM`); err != nil {
		return fmt.Errorf("vacuum: %w", mapErr(err))
	}
	return nil
}
