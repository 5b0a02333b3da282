package loadramp

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	capOnce sync.Once
	capDir  string
	capBin  string
	capErr  error
)

// startCapacity builds internal/testprog/capacity once per test binary and
// starts it with args; the server ends with the test.
func startCapacity(t *testing.T, env []string, args ...string) (url string, pid int) {
	t.Helper()
	capOnce.Do(func() {
		capDir, capErr = os.MkdirTemp("", "capacity")
		if capErr != nil {
			return
		}
		capBin = filepath.Join(capDir, "capacity")
		out, err := exec.Command("go", "build", "-o", capBin, "../internal/testprog/capacity").CombinedOutput()
		if err != nil {
			capErr = err
			t.Logf("go build: %s", out)
		}
	})
	if capErr != nil {
		t.Fatalf("build capacity server: %v", capErr)
	}
	cmd := exec.Command(capBin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("capacity server: read address: %v", err)
	}
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if !ok {
		t.Fatalf("capacity server printed %q", line)
	}
	return url + "/", cmd.Process.Pid
}
