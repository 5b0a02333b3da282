//go:build linux

package procfs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(asNobodyEnv) != "" {
		readAsNobody()
		return
	}
	goleak.VerifyTestMain(m)
}

// fakeProc builds a /proc tree for one process, pid 4242, with descriptor
// links as the kernel shows them.
func fakeProc(t *testing.T, fds map[string]string, tcp, tcp6 string) procRoot {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "4242")
	for _, d := range []string{filepath.Join(dir, "fd"), filepath.Join(dir, "net")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, body string) {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "status"), "Name:\tserver\nThreads:\t7\nVmRSS:\t2048 kB\n")
	write(filepath.Join(dir, "limits"), limitsFile)
	write(filepath.Join(dir, "net", "tcp"), tcp)
	write(filepath.Join(dir, "net", "tcp6"), tcp6)
	for fd, target := range fds {
		if err := os.Symlink(target, filepath.Join(dir, "fd", fd)); err != nil {
			t.Fatal(err)
		}
	}
	// PIDByListenPort reads the namespace of the reader: the same tables.
	if err := os.MkdirAll(filepath.Join(root, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(root, "net", "tcp"), tcp)
	write(filepath.Join(root, "net", "tcp6"), tcp6)
	return procRoot(root)
}

func TestReadFakeProc(t *testing.T) {
	if !littleEndian() {
		t.Skip("captured lines are from a little-endian host")
	}
	// The process owns the listener on 35379 (inode 94647), one accepted
	// connection (95403) and the IPv6 CLOSE_WAIT (96534). The TIME_WAIT on
	// 42659 is nobody's; a TIME_WAIT on its listening port is added below.
	twOnListenPort := strings.Replace(tcpTimeWait, "0100007F:A6A3", "0100007F:8A33", 1)
	tcp := strings.Join([]string{tcpHeader, tcpListen, tcpAnyListen, tcpTimeWait, twOnListenPort, tcpEstab}, "\n") + "\n"
	tcp6 := strings.Join([]string{tcp6Header, tcp6Any, tcp6CloseW, tcp6FinW2, tcp6Mapped}, "\n") + "\n"
	root := fakeProc(t, map[string]string{
		"0": "/dev/null", "1": "pipe:[100]", "2": "pipe:[100]",
		"3": "socket:[94647]", "4": "socket:[95403]", "5": "socket:[96534]",
		"6": "socket:[777]", // a Unix socket: in no tcp table
		"7": "anon_inode:[eventpoll]",
	}, tcp, tcp6)

	p, err := root.read(4242)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"LISTEN": 1, "ESTABLISHED": 1, "CLOSE_WAIT": 1, "TIME_WAIT": 1}
	if fmt.Sprint(p.TCP) != fmt.Sprint(want) {
		t.Errorf("TCP = %v, want %v", p.TCP, want)
	}
	if p.OpenFDs != 8 || p.Sockets != 4 || p.Threads != 7 || p.RSSBytes != 2048*1024 || p.Name != "server" ||
		p.FDLimit != (Limit{20000, 20000}) || fmt.Sprint(p.ListenPorts) != "[35379]" {
		t.Errorf("got %+v", p)
	}
	tw := p.TCPConns["TIME_WAIT"]
	if len(tw) != 1 || !tw[0].ByPort || tw[0].Local.String() != "127.0.0.1:35379" {
		t.Errorf("TIME_WAIT evidence %+v, want the one on the listening port, marked ByPort", tw)
	}
	if cw := p.TCPConns["CLOSE_WAIT"]; len(cw) != 1 || cw[0].ByPort || cw[0].Remote.String() != "[::1]:49794" {
		t.Errorf("CLOSE_WAIT evidence %+v", cw)
	}

	pid, err := root.pidByListenPort(35379, 100)
	if err != nil || pid != 4242 {
		t.Errorf("pidByListenPort(35379) = %d, %v; want 4242", pid, err)
	}
	if _, err := root.pidByListenPort(2024, 100); err == nil || !strings.Contains(err.Error(), "no process holds it") {
		t.Errorf("listener held by no process: %v", err)
	}
	if _, err := root.pidByListenPort(1, 100); err == nil || !strings.Contains(err.Error(), "no process listens on TCP port 1") {
		t.Errorf("port with no listener: %v", err)
	}
	if _, err := root.pidByListenPort(2024, 2); err == nil || !strings.Contains(err.Error(), "gave up") {
		t.Errorf("fd budget: %v", err)
	}
}

func TestReadErrors(t *testing.T) {
	root := fakeProc(t, nil, tcpHeader+"\n", "")
	if _, err := root.read(999999); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "no process with pid 999999") {
		t.Errorf("missing pid: %v", err)
	}
	if _, err := root.read(0); err == nil {
		t.Error("pid 0 accepted")
	}
	// A malformed table is reported with what it was, and the rest is kept.
	if err := os.WriteFile(filepath.Join(string(root), "4242", "net", "tcp"), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := root.read(4242)
	if !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), "read TCP sockets") || p == nil || p.Threads != 7 {
		t.Errorf("malformed tcp table: %+v, %v", p, err)
	}
}

// startSockets runs internal/testprog/sockets and returns its pid and
// listening port once it is ready. Closing its stdin (done in Cleanup) stops it.
func startSockets(t *testing.T, n, closeWait, timeWait int) (*exec.Cmd, int) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux /proc")
	}
	bin := filepath.Join(t.TempDir(), "sockets")
	if out, err := exec.Command("go", "build", "-o", bin, "../testprog/sockets").CombinedOutput(); err != nil {
		t.Fatalf("build testprog: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, bin, "-n", strconv.Itoa(n), "-close-wait", strconv.Itoa(closeWait), "-time-wait", strconv.Itoa(timeWait))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("testprog: %v", err)
		}
		cancel()
	})
	sc := bufio.NewScanner(stdout)
	port := 0
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "listening "); ok {
			port, _ = strconv.Atoi(p)
		}
		if line == "ready" {
			break
		}
	}
	if port == 0 {
		t.Fatalf("testprog did not get ready: %v", sc.Err())
	}
	return cmd, port
}

func TestReadLiveProcess(t *testing.T) {
	const n, closeWait, timeWait = 12, 4, 3
	cmd, port := startSockets(t, n, closeWait, timeWait)
	pid := cmd.Process.Pid

	// The kernel moves sockets between states asynchronously; poll, with a
	// bound, until the counts settle.
	want := map[string]int{
		"LISTEN":      1,
		"CLOSE_WAIT":  closeWait,
		"TIME_WAIT":   timeWait,
		"ESTABLISHED": 2 * (n - closeWait - timeWait),
	}
	var p *Process
	for deadline := time.Now().Add(10 * time.Second); ; {
		var err error
		p, err = Read(pid)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(p.TCP) == fmt.Sprint(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if fmt.Sprint(p.TCP) != fmt.Sprint(want) {
		t.Errorf("TCP = %v, want %v", p.TCP, want)
	}
	for _, c := range p.TCPConns["CLOSE_WAIT"] {
		if int(c.Local.Port()) != port || c.ByPort {
			t.Errorf("CLOSE_WAIT %+v: want the server's end on port %d, owned by a descriptor", c, port)
		}
	}
	for _, c := range p.TCPConns["TIME_WAIT"] {
		if int(c.Local.Port()) != port || !c.ByPort {
			t.Errorf("TIME_WAIT %+v: want the server's end on port %d, counted by port", c, port)
		}
	}
	// stdin, stdout, stderr, the listener and the sockets still open, plus
	// what the Go runtime holds: epoll, an eventfd, cgroup CPU limit files,
	// /dev/null.
	open := 1 + closeWait + 2*(n-closeWait-timeWait)
	if p.Sockets != open || p.OpenFDs < 3+open || p.OpenFDs > 3+open+10 {
		t.Errorf("sockets=%d openFDs=%d, want %d sockets and about %d descriptors", p.Sockets, p.OpenFDs, open, 3+open)
	}
	if p.Threads < 1 || p.RSSBytes == 0 || p.FDLimit.Soft == 0 || p.FDLimit.Soft > p.FDLimit.Hard || p.Name != "sockets" {
		t.Errorf("process fields: %+v", p)
	}
	if fmt.Sprint(p.ListenPorts) != fmt.Sprint([]int{port}) {
		t.Errorf("ListenPorts %v, want [%d]", p.ListenPorts, port)
	}

	got, err := PIDByListenPort(port)
	if err != nil || got != pid {
		t.Errorf("PIDByListenPort(%d) = %d, %v; want %d", port, got, err, pid)
	}
}

const asNobodyEnv = "GOPULSE_PROCFS_READ_AS_NOBODY"

// readAsNobody runs in a copy of the test binary started as user nobody:
// it reads the pid it is given and prints the error.
func readAsNobody() {
	pid, _ := strconv.Atoi(os.Getenv(asNobodyEnv))
	p, err := Read(pid)
	fmt.Printf("threads=%d\n", p.Threads)
	fmt.Printf("error=%v\n", err)
	fmt.Printf("permission=%v\n", errors.Is(err, fs.ErrPermission))
}

// TestReadPermissionDenied reads a root-owned process as an unprivileged
// user: the descriptor table is refused, the rest is still returned.
func TestReadPermissionDenied(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a reader as another user")
	}
	cmd, _ := startSockets(t, 2, 0, 0)

	// The test binary sits in a directory only root may enter; copy it
	// where nobody can run it.
	dir, err := os.MkdirTemp("", "procfs-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "procfs.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	reader := exec.Command(bin, "-test.run=^$")
	reader.Env = append(os.Environ(), asNobodyEnv+"="+strconv.Itoa(cmd.Process.Pid))
	reader.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := reader.CombinedOutput()
	if err != nil {
		t.Fatalf("reader as nobody: %v\n%s", err, out)
	}
	s := string(out)
	t.Logf("read as nobody:\n%s", s)
	for _, want := range []string{
		"permission=true",
		"read open file descriptors",
		"run gopulse as the process's user or as root",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "threads=0") {
		t.Errorf("status should still be readable:\n%s", s)
	}
}
