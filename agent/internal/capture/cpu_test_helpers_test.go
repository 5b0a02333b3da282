package capture

import (
	"io"
	"runtime/pprof"
)

func startCPU(w io.Writer) error { return pprof.StartCPUProfile(w) }
func stopCPU()                   { pprof.StopCPUProfile() }
