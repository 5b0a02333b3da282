//go:build !unix

package main

// processCPU is not measured on this platform.
func processCPU() float64 { return -1 }

// runDelay is not measured on this platform.
func runDelay() float64 { return -1 }
