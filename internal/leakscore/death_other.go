//go:build !linux

package leakscore

import "os/exec"

// setDeathSignal does nothing here: the child's -duration bounds its life.
func setDeathSignal(*exec.Cmd) {}
