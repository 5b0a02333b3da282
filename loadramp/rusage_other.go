//go:build !unix

package loadramp

import "time"

// processCPU is unknown on this platform; steps are then never marked
// generator-limited by CPU, only by scheduling lag.
func processCPU() time.Duration { return 0 }
