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
// GC CPU fraction here is the GC's CPU time divided by CPU capacity
// (GOMAXPROCS × wall time), idle-priority marking left out — the runtime's
// own GCCPUFraction definition, (/cpu/classes/gc/total −
// /cpu/classes/gc/mark/idle) ÷ /cpu/classes/total in runtime/metrics terms,
// and what the GC CPU limiter caps near 50%. Idle marking is reported
// separately: it only uses Ps the program left idle, and it grows with how
// long marking takes (on a busy machine, a lot) rather than with the work.
package gc
