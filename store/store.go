// Package store is gopulse's storage contract: the domain types the collector
// keeps (services, instances, metric samples, GC cycles, evidence bundles,
// findings, goroutine group counts, ingest tokens), the interfaces an
// implementation provides, and the sentinel errors it returns.
//
// Implementations live in subpackages (store/sqlite today, store/postgres
// next) that never import each other; store/storetest is the one
// conformance suite every implementation runs. This package depends on the
// standard library only and knows nothing of the wire format: the collector
// converts wire messages into these types.
//
// Conventions that hold for every method unless its doc says otherwise:
//
//   - Metric and GC timestamps are int64 Unix milliseconds (UTC). A range
//     [Start, End) includes Start and excludes End.
//   - Entity timestamps (instances, bundles, findings, tokens) are time.Time,
//     stored with millisecond precision and returned in UTC.
//   - Metric names carry their unit runtime/metrics style
//     ("/gc/heap/live:bytes"); the store does not interpret them.
//   - Lists are returned in a stated order; nil and empty slices mean the same.
//   - Errors wrap the sentinels below, so errors.Is works; the collector maps
//     them to HTTP statuses in one function.
//   - All methods are safe for concurrent use.
package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"time"
)

// Sentinel errors. Implementations wrap them with context.
var (
	// ErrNotFound: the named object does not exist (or has expired).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the write contradicts what is stored — a state transition
	// that is not allowed, a histogram series whose boundaries changed, a
	// token hash that already exists.
	ErrConflict = errors.New("conflict")
	// ErrFull: the disk is full, free space is below the configured reserve,
	// or a configured size cap is reached. Nothing already stored was
	// damaged; the write may succeed later (retention frees space), so the
	// API answers 503 with Retry-After.
	ErrFull = errors.New("storage full")
	// ErrInvalid: the argument breaks the contract (empty service, a bundle
	// manifest that does not match the files written, …). Retrying the same
	// call fails the same way.
	ErrInvalid = errors.New("invalid argument")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")
)

// Source says how gopulse learned of an instance.
type Source string

const (
	// SourceAgent: the instance runs the gopulse agent and pushes to us.
	SourceAgent Source = "agent"
	// SourceScraped: the collector scrapes the instance's net/http/pprof.
	SourceScraped Source = "scraped"
)

// InstanceKey names one process of one service. ID is unique within Service
// (the agent draws it at random per process start; a scrape target uses
// its URL).
type InstanceKey struct {
	Service string
	ID      string
}

// Instance is one running (or once seen) process.
type Instance struct {
	Service      string
	ID           string
	Host         string
	PID          int64
	GoVersion    string
	AgentVersion string
	// StartTime is the process start, zero when unknown.
	StartTime time.Time
	Labels    map[string]string
	Source    Source
	// FirstSeen and LastSeen are maintained by the store from the
	// ReceivedAt of every write that names the instance; values passed in
	// are ignored.
	FirstSeen time.Time
	LastSeen  time.Time
}

// Key returns the instance's key.
func (i Instance) Key() InstanceKey { return InstanceKey{Service: i.Service, ID: i.ID} }

// Service summarises one service.
type Service struct {
	Name string
	// Instances counts instances ever seen and still retained.
	Instances int
	// LastSeen is the newest LastSeen of its instances.
	LastSeen time.Time
}

// Histogram is a cumulative runtime/metrics histogram. The store keeps
// histograms whole (boundaries + counts), not precomputed quantiles:
// runtime histograms count since process start, so a quantile is only
// meaningful over the difference of two samples, and which window the
// reader wants (10 s, 5 min, 1 h) is known only at query time. Boundaries
// are kept once per series; counts are stored as deltas from the previous
// sample, so an unchanged histogram costs a few bytes.
type Histogram struct {
	// Boundaries has len(Counts)+1 entries, may start with -Inf and end with
	// +Inf; bucket i is [Boundaries[i], Boundaries[i+1]).
	Boundaries []float64
	Counts     []uint64
}

// Sample is one value of one metric of one instance at one time.
type Sample struct {
	// Name is the metric name with its unit, e.g. "/gc/heap/live:bytes".
	Name string
	// T is Unix milliseconds.
	T int64
	// Value is the scalar value; ignored when Hist is set.
	Value float64
	// Hist, when set, makes this a histogram sample. A series is scalar or
	// histogram from its first sample on; a sample of the other kind, or a
	// histogram with other boundaries, is rejected with ErrConflict.
	Hist *Histogram
}

// Series is the points of one metric in a batch, in columns: the shape an
// agent's batch arrives in (every metric read at every sample time), which
// the store can encode without regrouping single samples. Points may come
// in any order, but times ascending within one 15-minute window is the
// case the store encodes without copying. Points older than the
// full-resolution retention are dropped and counted.
//
// A batch's points of one metric are merged, whether they come as
// Samples, as one Series or as several: of two points at the same time
// the first is kept, in this order — Samples in slice order, then the
// Series in slice order, each in its own point order.
//
// Append rejects with ErrInvalid (naming the metric) a Series with an
// empty Name, a scalar with len(Values) ≠ len(T) or with Counts, a
// histogram with fewer than 2 Boundaries, with Values, or with
// len(Counts) ≠ len(T)×(len(Boundaries)−1). A metric given as scalar and
// as histogram, or with different boundaries, within the batch or against
// what is stored, is ErrConflict.
type Series struct {
	// Name is the metric name with its unit, as in Sample.
	Name string
	// Boundaries, when non-nil, makes this a histogram series with
	// len(Boundaries)-1 buckets (same rules as Histogram.Boundaries).
	// Pass the same slice for every batch of a metric (a descriptor
	// cache) and never modify it afterwards: the store compares
	// boundaries by identity first, and may remember the slice it has
	// already found equal to the stored ones.
	Boundaries []float64
	// T holds each point's time in Unix milliseconds.
	T []int64
	// Values holds a scalar series' values, one per entry of T; empty for
	// a histogram.
	Values []float64
	// Counts holds a histogram series' counts point after point:
	// len(T)×(len(Boundaries)−1) entries, the counts of point i at
	// [i·buckets, (i+1)·buckets).
	Counts []uint64
}

// GCCycle is one completed GC cycle of one instance. (Instance, Cycle) is
// its key: a second record with the same key is ignored.
type GCCycle struct {
	Cycle   uint32
	EndTime int64 // Unix ms
	PauseNs int64
	// HeapKnown says whether the heap and CPU fields were observed.
	HeapKnown       bool
	HeapLiveBytes   uint64
	HeapGoalBytes   uint64
	GCCPUSeconds    float64
	TotalCPUSeconds float64
	Forced          bool
}

// GCGap records cycles FirstCycle..LastCycle (inclusive) that happened but
// were not reported one by one. (Instance, FirstCycle) is its key.
type GCGap struct {
	FirstCycle uint32
	LastCycle  uint32
	Time       int64 // Unix ms when the gap was noticed
	Reason     string
}

// Batch is one unit of ingest, written atomically: all of it or nothing.
type Batch struct {
	// Key is the idempotency key (the agent's batch_id). When non-empty and
	// already remembered, Append writes nothing and reports Duplicate. It is
	// remembered in the same transaction as the data, so a crash can never
	// keep the key without the data or the data without the key.
	Key string
	// Instance is created or updated (its LastSeen set to ReceivedAt).
	Instance   Instance
	ReceivedAt time.Time
	// Samples in any order. Samples older than the full-resolution
	// retention at ReceivedAt are dropped and counted in AppendResult.
	Samples []Sample
	// Series carries points in columns; a batch may use Samples, Series or
	// both, and a metric may appear in several of them: its points are
	// merged (see Series for which of two points at one time is kept).
	// Dropped points are counted in AppendResult as for Samples.
	Series   []Series
	GCCycles []GCCycle
	GCGaps   []GCGap
}

// AppendResult reports what Append did.
type AppendResult struct {
	// Duplicate is true when Batch.Key was already remembered; nothing was
	// written.
	Duplicate bool
	// Dropped counts samples older than the full-resolution retention.
	Dropped int
}

// SeriesQuery selects one series over a time range.
type SeriesQuery struct {
	Instance InstanceKey
	Name     string
	// Start (inclusive) and End (exclusive) in Unix ms.
	Start, End int64
	// Step in ms. 0 returns the raw samples (full resolution only, so
	// nothing older than the raw retention). Step > 0 returns one Point per
	// step bucket [Start+k·Step, Start+(k+1)·Step) that holds data; when
	// Step is a multiple of one minute and Start is minute-aligned, buckets
	// past the raw retention are answered from the 1-minute rollups.
	Step int64
}

// Point is one value of a series. For a raw query Count is 1 and
// Min = Max = Sum = Value. For a stepped query T is the bucket start and
// Value is the last value in the bucket (what a counter's rate needs),
// Min/Max/Sum/Count aggregate the samples in it.
type Point struct {
	T     int64
	Value float64
	// LastT is when Value was sampled (Unix ms): T itself for a raw query,
	// the bucket's newest sample for a stepped one.
	LastT int64
	Min   float64
	Max   float64
	Sum   float64
	Count int64
	// Hist is set for histogram series: the (last) cumulative histogram.
	Hist *Histogram
}

// Latest is the newest stored value of one metric of one instance.
type Latest struct {
	T     int64
	Value float64
	Hist  *Histogram
}

// InstanceSummary is one row of the fleet summary.
type InstanceSummary struct {
	Instance Instance
	// Latest maps each requested metric name that has a value within the
	// window to that value.
	Latest map[string]Latest
}

// FleetQuery asks for the newest values of a few metrics of every instance.
type FleetQuery struct {
	// Service limits to one service; "" means all.
	Service string
	// Names are the metrics wanted.
	Names []string
	// Since (Unix ms): instances not seen since then are left out, and
	// values older than it are not reported.
	Since int64
}

// Instances is the instance registry.
type Instances interface {
	// UpsertInstance creates the instance or updates its descriptive fields;
	// FirstSeen is set on creation, LastSeen to seen (never moved back).
	UpsertInstance(ctx context.Context, inst Instance, seen time.Time) error
	// GetInstance returns one instance or ErrNotFound.
	GetInstance(ctx context.Context, key InstanceKey) (Instance, error)
	// ListInstances returns the instances of service ("" = all) seen at or
	// after since (zero = any), ordered by service, then ID.
	ListInstances(ctx context.Context, service string, since time.Time) ([]Instance, error)
	// ListServices returns all services ordered by name.
	ListServices(ctx context.Context) ([]Service, error)
}

// Metrics holds samples and GC records.
type Metrics interface {
	// Append writes one batch atomically (see Batch). A sample whose
	// (instance, name, T) is already stored is a duplicate: one of the two
	// values is kept, so re-sending identical data is harmless. Returns
	// ErrFull when the store cannot take more data.
	Append(ctx context.Context, b Batch) (AppendResult, error)
	// QuerySeries returns points in ascending T; an unknown instance or
	// name yields no points and no error.
	QuerySeries(ctx context.Context, q SeriesQuery) ([]Point, error)
	// SeriesNames lists the metric names stored for an instance, sorted.
	SeriesNames(ctx context.Context, key InstanceKey) ([]string, error)
	// Fleet returns one summary per instance matching q, ordered by
	// service, then ID.
	Fleet(ctx context.Context, q FleetQuery) ([]InstanceSummary, error)
	// GCCycles returns the cycles and gaps with EndTime (Time for gaps) in
	// [start, end), ascending by cycle number.
	GCCycles(ctx context.Context, key InstanceKey, start, end int64) ([]GCCycle, []GCGap, error)
}

// BlobStore keeps opaque byte streams under string keys. The SQLite
// implementation uses files in the data directory; at scale an object
// store (S3, GCS) takes its place. Bodies are streamed, never held whole
// in memory.
type BlobStore interface {
	// Put stores r's bytes under key, durably, and returns their size and
	// SHA-256. The blob becomes visible only when Put returns nil; on error
	// nothing is left under key. max > 0 bounds the size: past it Put fails
	// with ErrFull. An existing key is replaced.
	Put(ctx context.Context, key string, r io.Reader, max int64) (size int64, sum [sha256.Size]byte, err error)
	// Open returns a reader of the blob, or ErrNotFound.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// Delete removes the blob; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List calls fn for every key with the prefix, in no particular order,
	// with the blob's size and modification time.
	List(ctx context.Context, prefix string, fn func(key string, size int64, mod time.Time) error) error
}

// RuleValue is one value a trigger rule looked at when it fired.
type RuleValue struct {
	Name      string
	Value     float64
	Threshold float64
	Unit      string
}

// BundleFile is one file of a bundle.
type BundleFile struct {
	// Name is unique within the bundle ("heap.pb.gz", "trace.out").
	Name        string
	ContentType string
	Size        int64
	SHA256      [sha256.Size]byte
	Note        string
}

// Bundle is one evidence bundle: metadata plus the index of its files.
type Bundle struct {
	// ID is the agent's event ID, also the bundle's idempotency key.
	ID                string
	Instance          InstanceKey
	Rule              string
	Reason            string
	FiredAt           time.Time
	ReceivedAt        time.Time
	Values            []RuleValue
	Notes             []string
	CaptureSTWSeconds float64
	// Files in the order they were written.
	Files []BundleFile
	// Size is the sum of the files' sizes.
	Size int64
}

// BundleWriter receives one bundle's files, then commits or aborts.
// Files are streamed to storage as they are written. Not safe for
// concurrent use; exactly one of Commit or Abort must be called.
type BundleWriter interface {
	// WriteFile streams one file. A name used twice is ErrInvalid; ErrFull
	// when the bundle alone exceeds the bundle size cap or the disk is full.
	WriteFile(ctx context.Context, name, contentType string, r io.Reader) (BundleFile, error)
	// Commit publishes the bundle atomically. b.ID, b.Instance,
	// b.ReceivedAt are required, and the instance must exist
	// (UpsertInstance first; ErrNotFound otherwise). If b.Files is non-nil it is the sender's
	// manifest: every entry must match a written file by name and size (and
	// SHA-256 when non-zero), and every written file must be listed, else
	// ErrInvalid; Notes and ContentType are taken from it. If a bundle with
	// b.ID exists, the new files are discarded and Duplicate is true.
	// Committing may evict the oldest bundles to keep within the size cap.
	Commit(ctx context.Context, b Bundle) (duplicate bool, err error)
	// Abort discards the files written so far.
	Abort(ctx context.Context) error
}

// Bundles stores evidence bundles.
type Bundles interface {
	// BeginBundle starts receiving a bundle.
	BeginBundle(ctx context.Context) (BundleWriter, error)
	// GetBundle returns a bundle's metadata and file index, or ErrNotFound.
	GetBundle(ctx context.Context, id string) (Bundle, error)
	// OpenBundleFile streams one file's body, or ErrNotFound.
	OpenBundleFile(ctx context.Context, id, name string) (io.ReadCloser, BundleFile, error)
	// ListBundles returns bundles matching f, newest FiredAt first.
	ListBundles(ctx context.Context, f BundleFilter) ([]Bundle, error)
}

// BundleFilter selects bundles; zero fields match everything.
type BundleFilter struct {
	Service  string
	Instance string // instance ID; requires Service
	Since    time.Time
	Limit    int // 0 = 100
}

// FindingState is where a finding is in its lifecycle.
type FindingState string

const (
	// FindingOpen: the condition holds.
	FindingOpen FindingState = "open"
	// FindingResolved: the condition cleared.
	FindingResolved FindingState = "resolved"
)

// FindingEvent is one entry of a finding's history: a state change.
type FindingEvent struct {
	At    time.Time
	State FindingState
	Note  string
}

// Observation is an analyzer's statement that a condition holds now.
type Observation struct {
	Instance InstanceKey
	// Kind is the analyzer ("goroutine-leak", "gc-pause", "heap-limit"…).
	Kind string
	// Key identifies the condition within instance and kind (for a leak,
	// the goroutine group key).
	Key      string
	Severity string
	Title    string
	Summary  string
	// Details is analyzer-specific JSON, stored opaquely, replaced on each
	// observation.
	Details []byte
	// BundleIDs link evidence; merged (set union) with earlier ones.
	BundleIDs []string
	At        time.Time
}

// Finding is a condition found by an analyzer, identified by
// (Instance, Kind, Key).
type Finding struct {
	ID         int64
	Instance   InstanceKey
	Kind       string
	Key        string
	Severity   string
	Title      string
	Summary    string
	Details    []byte
	BundleIDs  []string
	State      FindingState
	OpenedAt   time.Time // first opened
	LastSeen   time.Time // newest observation
	ResolvedAt time.Time // zero while open
	// History lists state changes oldest first (GetFinding only; nil from
	// ListFindings).
	History []FindingEvent
}

// FindingFilter selects findings; zero fields match everything.
type FindingFilter struct {
	Service  string
	Instance string // requires Service
	Kind     string
	State    FindingState
	Limit    int // 0 = 100
}

// Findings keeps findings and their lifecycle.
type Findings interface {
	// Observe records that a condition holds at o.At; the instance must
	// exist (ErrNotFound). No finding with the
	// identity: one is created, open, with an "open" event. An open one:
	// its descriptive fields and LastSeen are updated, no event. A resolved
	// one: it is reopened (ResolvedAt cleared) with an "open" event.
	Observe(ctx context.Context, o Observation) (Finding, error)
	// Resolve marks an open finding resolved at at with a "resolved" event.
	// ErrNotFound for an unknown ID; ErrConflict if it is not open.
	Resolve(ctx context.Context, id int64, at time.Time, note string) error
	// GetFinding returns a finding with its history, or ErrNotFound.
	GetFinding(ctx context.Context, id int64) (Finding, error)
	// ListFindings returns findings matching f, newest LastSeen first.
	ListFindings(ctx context.Context, f FindingFilter) ([]Finding, error)
}

// GoroutineGroup is one group of a goroutine snapshot.
type GoroutineGroup struct {
	// Key is the analyzer's stable group key.
	Key   string
	State string
	Count int
	// Leaked counts goroutines the runtime marked leaked.
	Leaked int
	// WaitMaxMs is the longest printed wait, 0 when unknown.
	WaitMaxMs int64
	// Stack is an opaque description of the group's stack (the collector
	// stores JSON frames); kept once per Key, so it may come back from an
	// earlier snapshot.
	Stack []byte
}

// GoroutineSnapshot is the grouped goroutine counts of one instance at one
// time. (Instance, Time) is its key: a second snapshot with the same key
// is ignored.
type GoroutineSnapshot struct {
	Instance InstanceKey
	Time     int64 // Unix ms
	// Source is where it came from: "scrape" or "bundle:<id>".
	Source     string
	Goroutines int
	Groups     []GoroutineGroup
}

// Goroutines keeps goroutine group counts for leak history.
type Goroutines interface {
	// PutGoroutineSnapshot stores one snapshot; the instance must exist
	// (ErrNotFound).
	PutGoroutineSnapshot(ctx context.Context, s GoroutineSnapshot) error
	// GoroutineSnapshots returns the snapshots with Time in [start, end),
	// ascending, at most limit of the newest (0 = all).
	GoroutineSnapshots(ctx context.Context, key InstanceKey, start, end int64, limit int) ([]GoroutineSnapshot, error)
}

// Token is an ingest (or API) token. The secret is never stored: only
// HashToken(secret).
type Token struct {
	ID        string
	Service   string // "" = any service (an admin/read token)
	Note      string
	CreatedAt time.Time
	RevokedAt time.Time // zero while valid
}

// HashToken is the one hash used for tokens. Tokens are 32 random bytes,
// so a fast hash suffices; a slow password hash would only slow ingest.
func HashToken(secret string) [sha256.Size]byte { return sha256.Sum256([]byte(secret)) }

// Tokens keeps hashed tokens.
type Tokens interface {
	// CreateToken stores a token; ErrConflict if the ID or hash exists.
	CreateToken(ctx context.Context, t Token, hash [sha256.Size]byte) error
	// LookupToken finds a valid (unrevoked) token by hash, or ErrNotFound.
	LookupToken(ctx context.Context, hash [sha256.Size]byte) (Token, error)
	// ListTokens returns tokens of service ("" = all), oldest first.
	ListTokens(ctx context.Context, service string) ([]Token, error)
	// RevokeToken revokes a token; ErrNotFound for an unknown ID.
	RevokeToken(ctx context.Context, id string, at time.Time) error
}

// Idempotency answers whether a key was already stored, so the collector
// can drop a retried delivery before reading its body. Keys are remembered
// atomically by the writes they guard (Batch.Key, Bundle.ID) and forgotten
// after Retention.Idempotency. Batch keys and bundle IDs share one
// namespace.
type Idempotency interface {
	Seen(ctx context.Context, key string) (bool, error)
}

// Retention says how long data is kept. Zero fields take the defaults.
type Retention struct {
	Raw         time.Duration // full-resolution samples and GC records; default 24 h
	Rollup      time.Duration // 1-minute rollups; default 14 days
	Bundles     time.Duration // evidence bundles; default 7 days
	BundleBytes int64         // cap on bundle bodies, oldest evicted first; default 10 GiB
	// Idempotency is how long keys are remembered; default 8 days, longer
	// than the agent's 7-day spool, so a late retry is still recognised.
	Idempotency time.Duration
	// Findings: resolved findings older than this are deleted; default 30 days.
	Findings time.Duration
	// Goroutines: snapshots older than this are deleted; default 14 days.
	Goroutines time.Duration
}

// WithDefaults returns r with zero fields replaced by the defaults.
func (r Retention) WithDefaults() Retention {
	if r.Raw == 0 {
		r.Raw = 24 * time.Hour
	}
	if r.Rollup == 0 {
		r.Rollup = 14 * 24 * time.Hour
	}
	if r.Bundles == 0 {
		r.Bundles = 7 * 24 * time.Hour
	}
	if r.BundleBytes == 0 {
		r.BundleBytes = 10 << 30
	}
	if r.Idempotency == 0 {
		r.Idempotency = 8 * 24 * time.Hour
	}
	if r.Findings == 0 {
		r.Findings = 30 * 24 * time.Hour
	}
	if r.Goroutines == 0 {
		r.Goroutines = 14 * 24 * time.Hour
	}
	return r
}

// MaintainStats reports one Maintain run.
type MaintainStats struct {
	RolledUpSeries   int   // series whose rollups advanced
	DeletedChunks    int64 // raw sample chunks removed
	DeletedRollups   int64
	DeletedGCRecords int64
	DeletedBundles   int
	DeletedKeys      int64 // expired idempotency keys
	DeletedOther     int64 // findings, snapshots, orphan blobs
}

// Store is everything the collector needs. Implementations assert
// `var _ store.Store = (*Store)(nil)` and pass storetest.Run.
type Store interface {
	Instances
	Metrics
	Bundles
	Findings
	Goroutines
	Tokens
	Idempotency
	// Maintain computes the 1-minute rollups of completed minutes before
	// now and applies retention as of now. The collector calls it about
	// once a minute; it is safe to call concurrently with everything else
	// and works in transactions of a few hundred series, so a write waits
	// behind at most one of them.
	Maintain(ctx context.Context, now time.Time) (MaintainStats, error)
	// Close waits for in-flight writes and releases the store.
	Close() error
}
