// Package loadramp finds the highest request rate an HTTP service sustains
// under a latency and error SLO, and reads the service's Go runtime while it
// does so to say what saturated first.
//
// The generator is open-model: each step has a rate, and request i of the
// step is due at start + i/rate whether or not earlier requests have
// finished (or, with ArrivalsPoisson, after exponential gaps of mean
// 1/rate, from a seeded schedule). Target.Mix rotates requests through
// several endpoints of one origin; ParseTargets reads one from a
// vegeta-style targets file. Latency is recorded twice: from the intended send time
// (corrected for coordinated omission, as wrk2 does) and from the actual
// send (what wrk and hey report). A send that falls more than DropAfter
// behind its intended time is not sent but counted as dropped, and it enters
// the corrected histogram at DropAfter, a lower bound of what it would have
// waited.
//
// The package imports only the standard library.
package loadramp
