// Package gc analyses Go garbage collector behaviour from the runtime's own
// formats — GODEBUG=gctrace=1 logs, /debug/vars memstats, and series of
// runtime/metrics samples — and models it: how often the GC runs and what it
// costs as functions of allocation rate, live heap, GOGC and GOMEMLIMIT
// (the pacer arithmetic of the Go GC guide, https://go.dev/doc/gc-guide),
// so that "what if GOGC=400?" gets a number, and advice is backed by one.
//
// The three sources become one Data value (ParseTrace → FromTrace,
// ParseVars → FromMemStats, FromMetrics); Summarize computes the health
// summary; Fit calibrates the model; Advise turns both into advice.
//
// # GC CPU: one definition for the product
//
// GC CPU fraction — Summary.GCCPUFraction, Prediction.GCCPUFraction,
// `gopulse gc`'s gc_cpu_fraction, and what the collector should show — is
// the GC's CPU time with idle-priority marking left out, over CPU capacity
// (GOMAXPROCS × wall time): the runtime's own GCCPUFraction, in
// runtime/metrics terms (/cpu/classes/gc/total − /cpu/classes/gc/mark/idle)
// ÷ /cpu/classes/total. Why this one rather than GC over busy P time,
// gc/(total − idle):
//
//   - every source gives it — gctrace (per-cycle CPU over its timestamps),
//     memstats (GCCPUFraction), runtime/metrics — so a number means the same
//     whether it came from a log file or from the agent; busy time is in
//     runtime/metrics only;
//   - it is what the model predicts and what GOGC and GOMEMLIMIT trade
//     against memory: the share of the program's CPUs the GC takes;
//   - busy-time fractions count idle marking, which only soaks up Ps the
//     program left idle and grows with how long marking takes rather than
//     with how much there is to mark: on a mostly idle program they read
//     2–10× higher for the same GC work (bench/gcmodel measured this).
//
// Idle marking is reported separately (IdleMarkFraction). For a program
// that keeps its Ps busy (CPU-bound: no idle Ps, no idle marking) the
// capacity, busy-time and GC-CPU-limiter figures are one number; the
// limiter itself caps GC over capacity less idle time (idle Ps and idle
// marking, runtime/mgclimit.go) near 50%, so on a mostly idle program it
// engages long after this fraction passes 25%.
//
// The runtime measures its CPU classes as wall time on a P, not CPU time,
// and updates them only at each GC's mark termination. When the OS
// deschedules the process (other jobs on its CPUs), GC and mutator time
// alike inflate: the fraction overstates GC CPU on an open-loop program,
// while a CPU-bound program's own progress slows by the same factor, so
// its GC P time per second, and the fraction, barely move (bench/gcmodel:
// within ~12% at CPU share 0.5). Where process CPU is known, compare
// it with busy P time before trusting a fraction from a crowded host.
package gc
