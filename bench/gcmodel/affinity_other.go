//go:build !linux

package main

import "errors"

// pinProcess is Linux-only (sched_setaffinity).
func pinProcess(cpu int) error {
	return errors.New("CPU pinning needs Linux; pass -harness-cpu -1 -cpu -1")
}
