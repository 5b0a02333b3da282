package procfs

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// TCPStates are the kernel's TCP state names (include/net/tcp_states.h) in
// its numbering order, 1 to 12; Process.TCP is keyed by them.
var TCPStates = []string{
	"ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
	"CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV",
}

// stateName returns the name of a kernel TCP state number.
func stateName(st uint8) string {
	if st >= 1 && int(st) <= len(TCPStates) {
		return TCPStates[st-1]
	}
	return "UNKNOWN_" + strconv.Itoa(int(st))
}

// Socket is one line of /proc/net/tcp or /proc/net/tcp6.
type Socket struct {
	Local, Remote netip.AddrPort
	State         string
	// Inode identifies the socket among the links in /proc/PID/fd
	// ("socket:[Inode]"). It is 0 for sockets no file descriptor refers to
	// any more: TIME_WAIT, and connections closed locally still finishing
	// their shutdown.
	Inode uint64
	UID   uint32
}

// ErrSyntax is wrapped by the parsers when a line does not have the expected
// form; the message quotes the line.
var ErrSyntax = errors.New("unexpected format")

const maxLine = 4 << 10

// ParseNetTCP reads the table format of /proc/net/tcp and /proc/net/tcp6 and
// calls fn for each socket, in file order, stopping early if fn returns
// false. It streams: a host with a million sockets costs one line of memory.
func ParseNetTCP(r io.Reader, fn func(Socket) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if n == 1 && strings.Contains(line, "local_address") {
			continue
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		s, err := parseTCPLine(line)
		if err != nil {
			return fmt.Errorf("parse tcp table line %d: %w", n, err)
		}
		if !fn(s) {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read tcp table after line %d: %w", n, err)
	}
	return nil
}

func parseTCPLine(line string) (Socket, error) {
	// sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
	f := strings.Fields(line)
	if len(f) < 10 || !strings.HasSuffix(f[0], ":") {
		return Socket{}, fmt.Errorf("%w: want at least 10 fields starting with \"N:\": %s", ErrSyntax, quote(line))
	}
	var s Socket
	var err error
	if s.Local, err = parseHexAddrPort(f[1]); err != nil {
		return Socket{}, fmt.Errorf("local address: %w in %s", err, quote(line))
	}
	if s.Remote, err = parseHexAddrPort(f[2]); err != nil {
		return Socket{}, fmt.Errorf("remote address: %w in %s", err, quote(line))
	}
	st, err := strconv.ParseUint(f[3], 16, 8)
	if err != nil {
		return Socket{}, fmt.Errorf("%w: state %q in %s", ErrSyntax, f[3], quote(line))
	}
	s.State = stateName(uint8(st))
	uid, err := strconv.ParseUint(f[7], 10, 32)
	if err != nil {
		return Socket{}, fmt.Errorf("%w: uid %q in %s", ErrSyntax, f[7], quote(line))
	}
	s.UID = uint32(uid)
	if s.Inode, err = strconv.ParseUint(f[9], 10, 64); err != nil {
		return Socket{}, fmt.Errorf("%w: inode %q in %s", ErrSyntax, f[9], quote(line))
	}
	return s, nil
}

// parseHexAddrPort decodes "0100007F:1F90". The kernel prints the address
// as 32-bit words in host byte order and the port as a plain number.
func parseHexAddrPort(s string) (netip.AddrPort, error) {
	addrHex, portHex, ok := strings.Cut(s, ":")
	if !ok || len(portHex) != 4 || (len(addrHex) != 8 && len(addrHex) != 32) {
		return netip.AddrPort{}, fmt.Errorf("%w: address %q is not ADDR:PORT in hex", ErrSyntax, s)
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: port in %q", ErrSyntax, s)
	}
	raw, err := hex.DecodeString(addrHex)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: address in %q", ErrSyntax, s)
	}
	var b [16]byte
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(b[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	var addr netip.Addr
	if len(raw) == 4 {
		addr = netip.AddrFrom4([4]byte(b[:4]))
	} else {
		addr = netip.AddrFrom16(b).Unmap()
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

// Unlimited is the value of a Limit field that /proc/PID/limits shows as
// "unlimited" (RLIM_INFINITY).
const Unlimited = math.MaxUint64

// Limit is one resource limit of a process.
type Limit struct {
	Soft uint64 `json:"soft"`
	Hard uint64 `json:"hard"`
}

// ParseLimits reads /proc/PID/limits into a map from the limit's name as the
// kernel prints it ("Max open files") to its value. Columns are found from
// the header line, because names contain spaces and some units are empty.
func ParseLimits(r io.Reader) (map[string]Limit, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxLine)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read limits header: %w", err)
		}
		return nil, fmt.Errorf("%w: limits file is empty", ErrSyntax)
	}
	header := sc.Text()
	soft, hard := strings.Index(header, "Soft Limit"), strings.Index(header, "Hard Limit")
	if !strings.HasPrefix(header, "Limit") || soft < 0 || hard <= soft {
		return nil, fmt.Errorf("%w: limits header %s lacks the Soft Limit and Hard Limit columns", ErrSyntax, quote(header))
	}
	out := make(map[string]Limit)
	n := 1
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		if len(line) <= hard {
			return nil, fmt.Errorf("parse limits line %d: %w: shorter than its header: %s", n, ErrSyntax, quote(line))
		}
		name := strings.TrimSpace(line[:soft])
		sf := strings.Fields(line[soft:hard])
		hf := strings.Fields(line[hard:])
		if name == "" || len(sf) != 1 || len(hf) == 0 {
			return nil, fmt.Errorf("parse limits line %d: %w: %s", n, ErrSyntax, quote(line))
		}
		var l Limit
		var err error
		if l.Soft, err = parseLimitValue(sf[0]); err != nil {
			return nil, fmt.Errorf("parse limits line %d: soft limit: %w", n, err)
		}
		if l.Hard, err = parseLimitValue(hf[0]); err != nil {
			return nil, fmt.Errorf("parse limits line %d: hard limit: %w", n, err)
		}
		out[name] = l
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read limits after line %d: %w", n, err)
	}
	return out, nil
}

func parseLimitValue(s string) (uint64, error) {
	if s == "unlimited" {
		return Unlimited, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is neither a number nor \"unlimited\"", ErrSyntax, s)
	}
	return v, nil
}

// status holds the fields of /proc/PID/status that Read reports.
type status struct {
	name     string
	threads  int
	rssBytes uint64
}

// parseStatus reads "Key:\tvalue" lines of /proc/PID/status. VmRSS is absent
// for kernel threads and zombies; it is then 0.
func parseStatus(r io.Reader) (status, error) {
	var st status
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), 64<<10) // Groups: can be long
	seenThreads := false
	n := 0
	for sc.Scan() {
		n++
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "Name":
			st.name = val
		case "Threads":
			v, err := strconv.Atoi(val)
			if err != nil {
				return st, fmt.Errorf("parse status line %d: %w: Threads %q", n, ErrSyntax, val)
			}
			st.threads, seenThreads = v, true
		case "VmRSS":
			num, unit, _ := strings.Cut(val, " ")
			v, err := strconv.ParseUint(num, 10, 64)
			if err != nil || strings.TrimSpace(unit) != "kB" {
				return st, fmt.Errorf("parse status line %d: %w: VmRSS %q", n, ErrSyntax, val)
			}
			st.rssBytes = v * 1024
		}
	}
	if err := sc.Err(); err != nil {
		return st, fmt.Errorf("read status after line %d: %w", n, err)
	}
	if !seenThreads {
		return st, fmt.Errorf("%w: status has no Threads line", ErrSyntax)
	}
	return st, nil
}

func quote(s string) string {
	const max = 120
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strconv.Quote(s)
}
