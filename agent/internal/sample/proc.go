package sample

import (
	"bytes"
	"os"
	"syscall"
)

// ProcFacts are the process facts of one sample.
type ProcFacts struct {
	CPUUser, CPUSystem float64 // seconds
	RSS                uint64  // bytes
	FDs, FDLimit       uint64
	Threads            uint64
}

// Proc reads /proc/self with files opened once and re-read with pread, so a
// read allocates nothing. Missing files (not Linux) leave facts at zero.
type Proc struct {
	root    string
	stat    *os.File
	fdDir   int
	buf     []byte
	dirBuf  []byte
	clkTck  float64
	pageSz  uint64
	limit   uint64
	limitAt int
}

// OpenProc opens root+"/self/stat" and root+"/self/fd" (root is "/proc" in
// production; tests pass a fake tree).
func OpenProc(root string) *Proc {
	p := &Proc{root: root, fdDir: -1, buf: make([]byte, 4096), dirBuf: make([]byte, 8192), clkTck: 100, pageSz: uint64(os.Getpagesize())}
	if f, err := os.Open(root + "/self/stat"); err == nil {
		p.stat = f
	}
	if fd, err := syscall.Open(root+"/self/fd", syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0); err == nil {
		p.fdDir = fd
	}
	return p
}

// Close releases the files.
func (p *Proc) Close() {
	if p.stat != nil {
		p.stat.Close()
	}
	if p.fdDir >= 0 {
		syscall.Close(p.fdDir)
		p.fdDir = -1
	}
}

// Read fills f. Errors leave the affected fields at zero: facts are best
// effort and must never stop sampling.
func (p *Proc) Read(f *ProcFacts) {
	*f = ProcFacts{}
	if p.stat != nil {
		if n, err := p.stat.ReadAt(p.buf, 0); n > 0 && (err == nil || n < len(p.buf)) {
			parseStat(p.buf[:n], p.clkTck, p.pageSz, f)
		}
	}
	if p.fdDir >= 0 {
		f.FDs = p.countFDs()
	}
	// getrlimit is a cheap syscall, but the limit rarely changes: re-read it
	// every 60 samples.
	if p.limitAt == 0 {
		var rl syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil {
			p.limit = rl.Cur
		}
	}
	p.limitAt = (p.limitAt + 1) % 60
	f.FDLimit = p.limit
}

func (p *Proc) countFDs() uint64 {
	if _, err := syscall.Seek(p.fdDir, 0, 0); err != nil {
		return 0
	}
	var n uint64
	for {
		m, err := syscall.ReadDirent(p.fdDir, p.dirBuf)
		if err != nil || m <= 0 {
			break
		}
		b := p.dirBuf[:m]
		for len(b) > 0 {
			// struct linux_dirent64: ino(8) off(8) reclen(2) type(1) name…
			if len(b) < 19 {
				break
			}
			reclen := int(b[16]) | int(b[17])<<8
			if reclen == 0 || reclen > len(b) {
				break
			}
			name := b[19:reclen]
			if !(name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) {
				n++
			}
			b = b[reclen:]
		}
	}
	// The directory's own descriptor is the agent's, not the service's.
	if n > 0 {
		n--
	}
	return n
}

// parseStat reads utime (14), stime (15), num_threads (20) and rss (24) from
// /proc/self/stat. The command name (field 2) may hold spaces and
// parentheses, so fields are counted after its last ')'.
func parseStat(b []byte, clkTck float64, pageSz uint64, f *ProcFacts) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return
	}
	b = b[i+1:]
	field := 2
	for len(b) > 0 {
		for len(b) > 0 && b[0] == ' ' {
			b = b[1:]
		}
		j := 0
		for j < len(b) && b[j] != ' ' && b[j] != '\n' {
			j++
		}
		if j == 0 {
			break
		}
		field++
		v, ok := parseUint(b[:j])
		switch field {
		case 14:
			if ok {
				f.CPUUser = float64(v) / clkTck
			}
		case 15:
			if ok {
				f.CPUSystem = float64(v) / clkTck
			}
		case 20:
			if ok {
				f.Threads = v
			}
		case 24:
			if ok {
				f.RSS = v * pageSz
			}
			return
		}
		b = b[j:]
	}
}

func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}
