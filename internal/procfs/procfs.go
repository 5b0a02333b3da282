// Package procfs reads the operating system's view of a process from Linux's
// /proc: open file descriptors against their limit, threads, resident memory
// and the process's TCP sockets by state. It is what a Go process cannot say
// about itself through runtime/metrics, and what explains "too many open
// files" and connection pile-ups (CLOSE_WAIT: the peer hung up and the
// program never closed its end).
//
//	p, err := procfs.Read(pid)
//	if err != nil { ... }   // p may still hold what could be read
//	fmt.Println(p.OpenFDs, p.FDLimit.Soft, p.TCP["CLOSE_WAIT"])
//
// Only Linux is supported; elsewhere every function returns an error
// wrapping ErrUnsupported.
package procfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// MaxConnsPerState bounds Process.TCPConns: enough examples to see where
// connections go, without copying a table of 100k sockets.
const MaxConnsPerState = 20

// ErrUnsupported is returned on operating systems without a Linux /proc.
var ErrUnsupported = errors.New("process inspection is supported on Linux only")

// Conn is one TCP connection of a process, for evidence.
type Conn struct {
	Local  netip.AddrPort `json:"local"`
	Remote netip.AddrPort `json:"remote"`
	// ByPort is true for a socket no descriptor refers to (TIME_WAIT, or
	// closed and still shutting down), counted because its local port is
	// one the process listens on.
	ByPort bool `json:"by_port,omitempty"`
}

// Process is what /proc says about one process.
type Process struct {
	PID  int    `json:"pid"`
	Name string `json:"name"` // the command name, as /proc/PID/status prints it (at most 15 bytes)
	// OpenFDs counts open file descriptors; FDLimit is RLIMIT_NOFILE, which
	// "too many open files" (EMFILE) is about.
	OpenFDs int   `json:"open_fds"`
	FDLimit Limit `json:"fd_limit"`
	// Sockets counts descriptors that are sockets of any kind (TCP, UDP,
	// Unix).
	Sockets  int    `json:"sockets"`
	Threads  int    `json:"threads"`
	RSSBytes uint64 `json:"rss_bytes"`
	// TCP counts the process's TCP sockets (IPv4 and IPv6) by state name
	// (see TCPStates); states with no socket are absent.
	//
	// A socket belongs to the process when one of its descriptors refers to
	// it. Sockets that no descriptor refers to any more — every TIME_WAIT,
	// and connections the process closed that are still in FIN_WAIT1,
	// FIN_WAIT2, CLOSING or LAST_ACK — cannot be traced to an owner; they are
	// counted when their local port is one the process listens on, which
	// attributes the server side of connections the process accepted and
	// closed first. Such sockets on an ephemeral port (connections the
	// process dialed) are not counted. A listener of another process on the
	// same port at another address would have its sockets counted too.
	TCP map[string]int `json:"tcp"`
	// TCPConns lists up to MaxConnsPerState connections per state.
	TCPConns map[string][]Conn `json:"tcp_conns"`
	// ListenPorts are the TCP ports the process listens on, ascending.
	ListenPorts []uint16 `json:"listen_ports"`
}

// procRoot is where procfs is mounted; tests point it at a fake tree.
type procRoot string

const defaultRoot procRoot = "/proc"

func (r procRoot) path(parts ...string) string {
	return filepath.Join(append([]string{string(r)}, parts...)...)
}

// Read returns what /proc says about process pid, as seen from this host's
// /proc (the process's TCP sockets are read from its own network namespace).
//
// When part of it cannot be read — typically the descriptor table of another
// user's process, which needs the same user or root — Read returns the parts
// it could read together with an error naming each part that failed; the
// error wraps fs.ErrPermission in that case. A process that does not exist
// is an error wrapping fs.ErrNotExist, with a nil Process.
func Read(pid int) (*Process, error) {
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("%w: this is %s", ErrUnsupported, runtime.GOOS)
	}
	return defaultRoot.read(pid)
}

func (root procRoot) read(pid int) (*Process, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("invalid pid %d", pid)
	}
	dir := root.path(strconv.Itoa(pid))
	if _, err := os.Stat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no process with pid %d: %w", pid, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("inspect pid %d: %w", pid, err)
	}
	p := &Process{PID: pid, TCP: map[string]int{}, TCPConns: map[string][]Conn{}}
	var errs []error
	fail := func(what string, err error) {
		if errors.Is(err, fs.ErrPermission) {
			err = fmt.Errorf("%w (run gopulse as the process's user or as root)", err)
		}
		errs = append(errs, fmt.Errorf("pid %d: read %s: %w", pid, what, err))
	}

	if st, err := readWith(filepath.Join(dir, "status"), parseStatus); err != nil {
		fail("status (threads, RSS)", err)
	} else {
		p.Name, p.Threads, p.RSSBytes = st.name, st.threads, st.rssBytes
	}
	if lim, err := readWith(filepath.Join(dir, "limits"), ParseLimits); err != nil {
		fail("limits", err)
	} else if l, ok := lim["Max open files"]; ok {
		p.FDLimit = l
	} else {
		fail("limits", fmt.Errorf("%w: no \"Max open files\" line", ErrSyntax))
	}

	inodes, err := p.readFDs(filepath.Join(dir, "fd"))
	if err != nil {
		fail("open file descriptors", err)
		return p, errors.Join(errs...)
	}
	if err := p.readTCP(dir, inodes); err != nil {
		fail("TCP sockets", err)
	}
	return p, errors.Join(errs...)
}

func readWith[T any](path string, parse func(io.Reader) (T, error)) (T, error) {
	f, err := os.Open(path)
	if err != nil {
		var zero T
		return zero, err
	}
	defer f.Close()
	return parse(f)
}

// readFDs counts descriptors and returns the inodes of those that are
// sockets. It reads the directory in batches so a process with a million
// descriptors costs a batch of names at a time, plus the socket set.
func (p *Process) readFDs(fdDir string) (map[uint64]struct{}, error) {
	d, err := os.Open(fdDir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	inodes := make(map[uint64]struct{})
	for {
		names, err := d.Readdirnames(1024)
		for _, name := range names {
			p.OpenFDs++
			target, err := os.Readlink(filepath.Join(fdDir, name))
			if err != nil {
				continue // closed since the directory was read
			}
			if ino, ok := socketInode(target); ok {
				p.Sockets++
				inodes[ino] = struct{}{}
			}
		}
		if err == io.EOF {
			return inodes, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// socketInode parses a descriptor link target of the form "socket:[12345]".
func socketInode(target string) (uint64, bool) {
	s, ok := strings.CutPrefix(target, "socket:[")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, "]")
	if !ok {
		return 0, false
	}
	ino, err := strconv.ParseUint(s, 10, 64)
	return ino, err == nil
}

// readTCP counts the process's sockets in its network namespace's tables.
// Two passes: the first finds the ports the process listens on, which the
// second needs to attribute sockets without a descriptor.
func (p *Process) readTCP(dir string, inodes map[uint64]struct{}) error {
	tables := []string{filepath.Join(dir, "net", "tcp"), filepath.Join(dir, "net", "tcp6")}
	listen := make(map[uint16]bool)
	for _, t := range tables {
		err := scanTable(t, func(s Socket) bool {
			if _, ok := inodes[s.Inode]; ok && s.State == "LISTEN" {
				listen[s.Local.Port()] = true
			}
			return true
		})
		if err != nil {
			return err
		}
	}
	for port := range listen {
		p.ListenPorts = append(p.ListenPorts, port)
	}
	slices.Sort(p.ListenPorts)
	for _, t := range tables {
		err := scanTable(t, func(s Socket) bool {
			owned := false
			if s.Inode != 0 {
				_, owned = inodes[s.Inode]
			}
			byPort := s.Inode == 0 && s.State != "LISTEN" && listen[s.Local.Port()]
			if !owned && !byPort {
				return true
			}
			p.TCP[s.State]++
			if len(p.TCPConns[s.State]) < MaxConnsPerState {
				p.TCPConns[s.State] = append(p.TCPConns[s.State], Conn{Local: s.Local, Remote: s.Remote, ByPort: byPort})
			}
			return true
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// scanTable parses one tcp table; a missing table (no IPv6 in the kernel)
// is empty.
func scanTable(path string, fn func(Socket) bool) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := ParseNetTCP(f, fn); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// MaxScanFDs bounds PIDByListenPort's work: the number of descriptor links
// it reads across all processes before giving up.
const MaxScanFDs = 2_000_000

// PIDByListenPort returns the process that listens on TCP port port in this
// host's (this process's) network namespace, on any address, IPv4 or IPv6.
// It finds the listening sockets in /proc/net/tcp{,6}, then the process
// holding one of them among /proc/*/fd. It fails with a clear message if no
// socket listens there, if several processes hold listeners on the port, or
// if the owner is in a process this user may not inspect.
func PIDByListenPort(port int) (int, error) {
	if runtime.GOOS != "linux" {
		return 0, fmt.Errorf("%w: this is %s", ErrUnsupported, runtime.GOOS)
	}
	return defaultRoot.pidByListenPort(port, MaxScanFDs)
}

func (root procRoot) pidByListenPort(port, maxFDs int) (int, error) {
	if port <= 0 || port > 65535 {
		return 0, fmt.Errorf("invalid TCP port %d", port)
	}
	want := make(map[uint64]struct{})
	for _, t := range []string{root.path("net", "tcp"), root.path("net", "tcp6")} {
		err := scanTable(t, func(s Socket) bool {
			if s.State == "LISTEN" && int(s.Local.Port()) == port && s.Inode != 0 {
				want[s.Inode] = struct{}{}
			}
			return true
		})
		if err != nil {
			return 0, fmt.Errorf("find listener on port %d: %w", port, err)
		}
	}
	if len(want) == 0 {
		return 0, fmt.Errorf("no process listens on TCP port %d in this network namespace (a process in a container has its own: run gopulse inside it or pass its pid)", port)
	}

	procs, err := os.ReadDir(string(root))
	if err != nil {
		return 0, fmt.Errorf("find listener on port %d: %w", port, err)
	}
	var found []int
	denied, scanned := 0, 0
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		fdDir := root.path(e.Name(), "fd")
		names, err := readNames(fdDir)
		if errors.Is(err, fs.ErrPermission) {
			denied++
			continue
		}
		if err != nil {
			continue // exited, or a kernel thread
		}
		for _, n := range names {
			scanned++
			if scanned > maxFDs {
				return 0, fmt.Errorf("find listener on port %d: gave up after reading %d descriptors; pass the pid instead", port, maxFDs)
			}
			target, err := os.Readlink(filepath.Join(fdDir, n))
			if err != nil {
				continue
			}
			if ino, ok := socketInode(target); ok {
				if _, hit := want[ino]; hit {
					found = append(found, pid)
					break
				}
			}
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) > 1:
		return 0, fmt.Errorf("several processes hold a listener on TCP port %d: pids %v; pass the pid instead", port, found)
	case denied > 0:
		return 0, fmt.Errorf("a socket listens on TCP port %d but its process is not among those this user may inspect (%d processes could not be read: %w); run gopulse as that process's user or as root",
			port, denied, fs.ErrPermission)
	}
	return 0, fmt.Errorf("a socket listens on TCP port %d but no process holds it (it may have just exited)", port)
}

func readNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}
