package leakscore

import (
	"os/exec"
	"syscall"
)

// setDeathSignal asks the kernel to kill the child if this process dies
// first, so that a crashed or killed harness leaves no corpus process behind.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
