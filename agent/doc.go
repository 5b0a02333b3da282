// Package agent is gopulse's embeddable agent: one call in a service
// samples the Go runtime every second, records every GC cycle, watches for
// anomalies and, when one happens, captures the evidence — goroutine, heap
// and CPU profiles and the execution trace of the seconds before — and
// ships it all to a gopulse collector.
//
// # Starting
//
//	a, err := agent.Start(ctx, agent.Options{Service: "checkout", Collector: "http://127.0.0.1:7070"})
//	if err != nil {
//		return err // an invalid option; the message names the field
//	}
//	defer a.Stop(ctx)
//
// The zero Options work: the service name defaults to the executable's,
// and without a Collector the agent samples and keeps bundles in its spool
// directory. GOPULSE_* environment variables override the fields (see
// Options), so operators can point a built binary elsewhere. Importing
// agent/autostart starts an agent configured only from the environment.
//
// The agent never registers HTTP handlers or starts goroutines on import.
// To look at it locally, mount its handler yourself:
//
//	mux.Handle("/debug/gopulse/", a.Handler())
//
// # What it sends
//
// Every SampleInterval (1 s) it reads the runtime/metrics under /gc/,
// /sched/, /cpu/classes/ and /memory/classes/ (taken from metrics.All(), so
// a new Go version's metrics are shipped with no code change), process
// CPU, RSS, open file descriptors against RLIMIT_NOFILE and threads, the
// cgroup v1/v2 memory limit, usage and CPU quota, and GOGC, GOMEMLIMIT and
// GOMAXPROCS. A steady-state sample allocates nothing and stops nothing.
// Every GC cycle becomes a record (pause, end time, heap live and goal, GC
// CPU since the previous cycle); cycles that could not be seen one by one
// are reported as an explicit gap. Samples and cycles go to the collector
// in batches every BatchInterval (10 s). wire/README.md describes the
// messages.
//
// # Triggers and evidence
//
// The rules (Options.Triggers) fire on a GC pause ≥ 50 ms, GC CPU ≥ 25 %
// of the process's CPU capacity (GOMAXPROCS × time, idle-priority marking
// left out: `gopulse gc`'s gc_cpu_fraction) over 30 s, goroutines +50 % and +1000 within 5 min, live heap ≥ 85 % of
// the lower of GOMEMLIMIT and the cgroup limit, scheduling latency p99 ≥
// 10 ms over 30 s, open fds ≥ 80 % of the limit, the GC CPU limiter
// engaging, and Trigger. Each rule waits 5 min before firing again and all
// together make at most 12 bundles an hour.
//
// A bundle holds trace.out (the flight recorder's window, when it was
// running), goroutine.pb.gz, goroutines.txt (debug=2, only at or below
// Debug2GoroutineLimit goroutines since it stops the world),
// goroutineleak.pb.gz (the runtime's leak profile where the runtime has
// it, at or below LeakProfileGoroutineLimit goroutines), heap.pb.gz,
// cpu.pb.gz (the next CPUProfileDuration), mutex/block profiles when asked
// for, metrics.json (every runtime metric) and facts.json, plus a manifest
// with the rule, the values that fired it, notes on anything skipped, and
// the capture's own stop-the-world time. Each file opens in go tool pprof
// or go tool trace.
//
// The flight recorder costs several percent of CPU while it runs, so by
// default it is Armed: it runs only while some rule is past ArmLevel (65 %)
// of its threshold, which is when a trigger is likely, and a duty cap
// (FlightRecorderDutyCycle, 6 %) bounds how much of the time it may run,
// keeping its average cost near 1 % even when signals stay elevated. See
// bench/agentoverhead for the measurements.
//
// # Delivery
//
// Delivery is at least once: every batch and bundle carries an idempotency
// key, failures are retried with exponential backoff and jitter (honouring
// Retry-After on 429), and while the collector is unreachable data waits in
// a bounded spool directory (oldest evicted first and counted, segments
// rotated hourly, nothing kept beyond 7 days). A 413 or other 4xx drops the
// item with a warning; 401/403 keeps it and backs off. Bundles are streamed
// and compressed; none sits whole in memory.
package agent
