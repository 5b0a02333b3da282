package agent

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// FlightRecorderMode says when the runtime/trace flight recorder runs.
type FlightRecorderMode string

const (
	// FlightRecorderDefault selects the documented default (Armed).
	FlightRecorderDefault FlightRecorderMode = ""
	// FlightRecorderOff never records an execution trace; bundles have no
	// trace.out.
	FlightRecorderOff FlightRecorderMode = "off"
	// FlightRecorderArmed records only while an early-warning signal is past
	// Options.ArmLevel of its trigger threshold (and for MinAge after), so
	// the seconds before a trigger are usually in the bundle while a calm
	// service pays nothing.
	FlightRecorderArmed FlightRecorderMode = "armed"
	// FlightRecorderOn records all the time. Measured here at several % CPU
	// (see bench/agentoverhead); over the 1% budget.
	FlightRecorderOn FlightRecorderMode = "on"
)

// Triggers configures the rules that capture evidence bundles. Zero values
// take the defaults shown; a negative value disables that rule.
type Triggers struct {
	GCPause                 time.Duration // 50ms: a GC stop-the-world pause at least this long
	GCCPUFraction           float64       // 0.25: GC CPU (idle marking left out) ÷ CPU capacity (GOMAXPROCS × time) over GCCPUWindow
	GCCPUWindow             time.Duration // 30s
	GoroutineGrowthFraction float64       // 0.5: +50% …
	GoroutineGrowthMin      int           // 1000: … and at least +1000 …
	GoroutineWindow         time.Duration // 5m: … within this window
	HeapLimitFraction       float64       // 0.85 of min(GOMEMLIMIT, cgroup memory limit)
	SchedLatencyP99         time.Duration // 10ms: runnable→running p99 over SchedLatencyWindow
	SchedLatencyWindow      time.Duration // 30s
	FDFraction              float64       // 0.8 of RLIMIT_NOFILE
	DisableGCLimiter        bool          // the "GC CPU limiter engaged" rule is on unless set
	Cooldown                time.Duration // 5m between two bundles of the same rule
	MaxBundlesPerHour       int           // 12, all rules together
}

// Options configures the agent. The zero value works: it samples, keeps
// evidence locally (see Handler) and ships nothing until a Collector is set.
// Environment variables GOPULSE_* override the fields named in their docs.
type Options struct {
	// Service names the service (GOPULSE_SERVICE); default: the executable's name.
	Service string
	// Collector is the collector's base URL, e.g. "http://127.0.0.1:7070"
	// (GOPULSE_COLLECTOR). Empty: nothing is shipped; bundles are spooled.
	Collector string
	// Token is sent as a bearer token (GOPULSE_TOKEN).
	Token string
	// InstanceID identifies this process; default random.
	InstanceID string
	// Labels are attached to every batch and bundle.
	Labels map[string]string

	// SampleInterval (GOPULSE_SAMPLE_INTERVAL, default 1s) and BatchInterval
	// (GOPULSE_BATCH_INTERVAL, default 10s, at least SampleInterval).
	SampleInterval time.Duration
	BatchInterval  time.Duration

	// SpoolDir holds undelivered batches and bundles (GOPULSE_SPOOL_DIR);
	// default <user cache dir>/gopulse/<service>. "-" disables the spool:
	// batches wait in memory, bundles stream straight to the collector.
	SpoolDir string
	// SpoolMaxBytes caps the spool (GOPULSE_SPOOL_MAX_BYTES, default 256 MiB);
	// the oldest items are evicted and counted beyond it.
	SpoolMaxBytes int64
	// SpoolMaxAge drops spooled items older than this (default 7 days).
	SpoolMaxAge time.Duration

	Triggers Triggers

	// CPUProfileDuration is the length of the CPU profile taken after a
	// trigger (GOPULSE_CPU_PROFILE, default 10s, negative: none).
	CPUProfileDuration time.Duration
	// Debug2GoroutineLimit: the debug=2 goroutine dump, which stops the
	// world for its whole length, is added only at or below this many
	// goroutines (default 1000; negative: never).
	Debug2GoroutineLimit int
	// LeakProfileGoroutineLimit: the runtime's goroutine leak profile (Go
	// 1.27; 1.26 with GOEXPERIMENT=goroutineleakprofile), which runs a
	// special GC cycle (a few ms at 1,000 goroutines, ~15 ms at 10,000), is
	// added only at or below this many goroutines (default 10000;
	// negative: never).
	LeakProfileGoroutineLimit int
	// MutexProfile and BlockProfile add those profiles to bundles. The
	// agent does not change the runtime's sampling rates: set them with
	// runtime.SetMutexProfileFraction / SetBlockProfileRate.
	MutexProfile, BlockProfile bool

	// FlightRecorder (GOPULSE_FLIGHT_RECORDER = off|armed|on).
	FlightRecorder FlightRecorderMode
	// FlightRecorderMinAge and FlightRecorderMaxBytes size the recorder
	// (defaults 10s and 10 MiB).
	FlightRecorderMinAge   time.Duration
	FlightRecorderMaxBytes uint64
	// FlightRecorderDutyCycle caps, in Armed mode, the long-run share of
	// time the recorder runs (default 0.06; negative: no cap). Recording
	// is allowed in bursts of up to 5 minutes, refilled at this rate, so
	// with the recorder's measured cost of 8–17% CPU the average stays near
	// 1% even when signals stay elevated for hours.
	FlightRecorderDutyCycle float64
	// ArmLevel is the fraction of a trigger threshold at which Armed mode
	// starts the recorder (default 0.65).
	ArmLevel float64

	// Logger receives warnings (default slog.Default()).
	Logger *slog.Logger
	// HTTPClient is used to reach the collector (default: own transport
	// with a 30s response-header timeout).
	HTTPClient *http.Client

	// RetryBase and RetryMax bound the exponential backoff (1s, 2m).
	RetryBase, RetryMax time.Duration
}

// optionError names the field (or variable) that is wrong.
func optionError(field string, v any, why string) error {
	return fmt.Errorf("agent: %s = %v: %s", field, v, why)
}

// applyEnv overrides fields from GOPULSE_* variables.
func (o *Options) applyEnv(getenv func(string) string) error {
	str := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	dur := func(name string, dst *time.Duration) error {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return optionError("environment variable "+name, strconv.Quote(v), "not a duration like 10s")
			}
			*dst = d
		}
		return nil
	}
	str("GOPULSE_SERVICE", &o.Service)
	str("GOPULSE_COLLECTOR", &o.Collector)
	str("GOPULSE_TOKEN", &o.Token)
	str("GOPULSE_SPOOL_DIR", &o.SpoolDir)
	for name, dst := range map[string]*time.Duration{
		"GOPULSE_SAMPLE_INTERVAL": &o.SampleInterval, "GOPULSE_BATCH_INTERVAL": &o.BatchInterval, "GOPULSE_CPU_PROFILE": &o.CPUProfileDuration,
	} {
		if err := dur(name, dst); err != nil {
			return err
		}
	}
	if v := getenv("GOPULSE_SPOOL_MAX_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return optionError("environment variable GOPULSE_SPOOL_MAX_BYTES", strconv.Quote(v), "not a positive number of bytes")
		}
		o.SpoolMaxBytes = n
	}
	if v := getenv("GOPULSE_FLIGHT_RECORDER"); v != "" {
		o.FlightRecorder = FlightRecorderMode(strings.ToLower(v))
	}
	return nil
}

// withDefaults validates o and fills in defaults.
func (o Options) withDefaults() (Options, error) {
	def := func(d *time.Duration, field string, v time.Duration) error {
		if *d < 0 {
			return optionError(field, *d, "must not be negative (0 means the default "+v.String()+")")
		}
		if *d == 0 {
			*d = v
		}
		return nil
	}
	if o.Service == "" {
		o.Service = "unknown"
		if exe, err := os.Executable(); err == nil {
			o.Service = filepath.Base(exe)
		}
	}
	if o.Collector != "" {
		u, err := url.Parse(o.Collector)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return o, optionError("Options.Collector", strconv.Quote(o.Collector), `want a base URL like "http://127.0.0.1:7070"`)
		}
	}
	for _, c := range []struct {
		d     *time.Duration
		field string
		v     time.Duration
	}{
		{&o.SampleInterval, "Options.SampleInterval", time.Second},
		{&o.BatchInterval, "Options.BatchInterval", 10 * time.Second},
		{&o.SpoolMaxAge, "Options.SpoolMaxAge", 7 * 24 * time.Hour},
		{&o.FlightRecorderMinAge, "Options.FlightRecorderMinAge", 10 * time.Second},
		{&o.RetryBase, "Options.RetryBase", time.Second},
		{&o.RetryMax, "Options.RetryMax", 2 * time.Minute},
	} {
		if err := def(c.d, c.field, c.v); err != nil {
			return o, err
		}
	}
	if o.BatchInterval < o.SampleInterval {
		return o, optionError("Options.BatchInterval", o.BatchInterval, "must be at least SampleInterval ("+o.SampleInterval.String()+")")
	}
	if o.SampleInterval < 10*time.Millisecond {
		return o, optionError("Options.SampleInterval", o.SampleInterval, "must be at least 10ms")
	}
	if o.RetryMax < o.RetryBase {
		return o, optionError("Options.RetryMax", o.RetryMax, "must be at least RetryBase")
	}
	if o.SpoolMaxBytes < 0 {
		return o, optionError("Options.SpoolMaxBytes", o.SpoolMaxBytes, "must not be negative (0 means 256 MiB)")
	}
	if o.SpoolMaxBytes == 0 {
		o.SpoolMaxBytes = 256 << 20
	}
	if o.SpoolDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		o.SpoolDir = filepath.Join(base, "gopulse", o.Service)
	}
	if o.CPUProfileDuration == 0 {
		o.CPUProfileDuration = 10 * time.Second
	}
	if o.CPUProfileDuration > 5*time.Minute {
		return o, optionError("Options.CPUProfileDuration", o.CPUProfileDuration, "at most 5m")
	}
	if o.Debug2GoroutineLimit == 0 {
		o.Debug2GoroutineLimit = 1000
	}
	if o.LeakProfileGoroutineLimit == 0 {
		o.LeakProfileGoroutineLimit = 10_000
	}
	switch o.FlightRecorder {
	case FlightRecorderDefault:
		o.FlightRecorder = FlightRecorderArmed
	case FlightRecorderOff, FlightRecorderArmed, FlightRecorderOn:
	default:
		return o, optionError("Options.FlightRecorder", strconv.Quote(string(o.FlightRecorder)), `want "off", "armed" or "on"`)
	}
	if o.FlightRecorderMaxBytes == 0 {
		o.FlightRecorderMaxBytes = 10 << 20
	}
	if o.FlightRecorderDutyCycle == 0 {
		o.FlightRecorderDutyCycle = 0.06
	}
	if o.FlightRecorderDutyCycle > 1 {
		return o, optionError("Options.FlightRecorderDutyCycle", o.FlightRecorderDutyCycle, "is a fraction: want ≤ 1")
	}
	if o.ArmLevel == 0 {
		o.ArmLevel = 0.65
	}
	if o.ArmLevel < 0 || o.ArmLevel > 1 {
		return o, optionError("Options.ArmLevel", o.ArmLevel, "must be in (0, 1]")
	}
	t := &o.Triggers
	for _, c := range []struct {
		d     *time.Duration
		field string
		v     time.Duration
	}{
		{&t.GCPause, "Options.Triggers.GCPause", 50 * time.Millisecond},
		{&t.GCCPUWindow, "Options.Triggers.GCCPUWindow", 30 * time.Second},
		{&t.GoroutineWindow, "Options.Triggers.GoroutineWindow", 5 * time.Minute},
		{&t.SchedLatencyP99, "Options.Triggers.SchedLatencyP99", 10 * time.Millisecond},
		{&t.SchedLatencyWindow, "Options.Triggers.SchedLatencyWindow", 30 * time.Second},
		{&t.Cooldown, "Options.Triggers.Cooldown", 5 * time.Minute},
	} {
		if *c.d == 0 {
			*c.d = c.v
		}
	}
	for _, c := range []struct {
		f     *float64
		field string
		v     float64
	}{
		{&t.GCCPUFraction, "Options.Triggers.GCCPUFraction", 0.25},
		{&t.GoroutineGrowthFraction, "Options.Triggers.GoroutineGrowthFraction", 0.5},
		{&t.HeapLimitFraction, "Options.Triggers.HeapLimitFraction", 0.85},
		{&t.FDFraction, "Options.Triggers.FDFraction", 0.8},
	} {
		if *c.f == 0 {
			*c.f = c.v
		}
		if *c.f > 1 && c.field != "Options.Triggers.GoroutineGrowthFraction" {
			return o, optionError(c.field, *c.f, "is a fraction: want ≤ 1 (0.85 = 85%)")
		}
	}
	if t.GoroutineGrowthMin == 0 {
		t.GoroutineGrowthMin = 1000
	}
	if t.Cooldown < 0 {
		return o, optionError("Options.Triggers.Cooldown", t.Cooldown, "must not be negative")
	}
	if t.MaxBundlesPerHour == 0 {
		t.MaxBundlesPerHour = 12
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}
