//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// processCPU is the CPU time the OS charged to this process (user +
// system). The runtime's /cpu/classes are wall time on Ps, so a thread the
// OS descheduled still accrues "CPU"; the difference is how contended a run
// was.
func processCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// runDelay is the time this process's live threads spent runnable but
// waiting for a CPU (Linux schedstat, field 2), in seconds; −1 where the
// kernel does not expose it. It is the direct measure of other jobs
// taking the CPUs during a run.
func runDelay() float64 {
	dirs, err := filepath.Glob("/proc/self/task/*/schedstat")
	if err != nil || len(dirs) == 0 {
		return -1
	}
	var sum float64
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread exited
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			return -1
		}
		ns, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return -1
		}
		sum += ns / 1e9
	}
	return sum
}
