package main

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// pinProcess restricts every thread of this process to one CPU, so the
// harness (waiting on children, reading their output) never takes the
// CPU the measured child is pinned to. sched_setaffinity applies to one
// thread; threads the runtime starts later inherit the mask of the thread
// that creates them.
func pinProcess(cpu int) error {
	var mask [16]uint64 // 1024 CPUs
	if cpu < 0 || cpu >= 64*len(mask) {
		return fmt.Errorf("CPU %d out of range", cpu)
	}
	mask[cpu/64] = 1 << (cpu % 64)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("list threads: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		_, _, e := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, uintptr(tid), unsafe.Sizeof(mask), uintptr(unsafe.Pointer(&mask)))
		if e != 0 && e != syscall.ESRCH { // ESRCH: the thread exited meanwhile
			return fmt.Errorf("sched_setaffinity(thread %d, CPU %d): %w", tid, cpu, e)
		}
	}
	return nil
}
