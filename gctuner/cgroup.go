package gctuner

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// ErrNoLimit means no cgroup memory limit applies to this process.
var ErrNoLimit = errors.New("no cgroup memory limit found")

// v1Unlimited: cgroup v1 reports "no limit" as a huge page-rounded
// number (9223372036854771712 on 4 KiB pages); anything this large is none.
const v1Unlimited = 1 << 62

// MemoryLimit is the tightest cgroup memory limit on the process whose
// /proc files fsys shows (os.DirFS("/") for this process): cgroup v2's
// memory.max and v1's memory.limit_in_bytes, at the process's own cgroup
// and every ancestor up to the mount's root. On a hybrid host both
// hierarchies count. Where says which file set the limit.
func MemoryLimit(fsys fs.FS) (limit uint64, where string, err error) {
	mounts, err := fs.ReadFile(fsys, "proc/self/mountinfo")
	if err != nil {
		return 0, "", fmt.Errorf("read mountinfo: %w", err)
	}
	cg, err := fs.ReadFile(fsys, "proc/self/cgroup")
	if err != nil {
		return 0, "", fmt.Errorf("read /proc/self/cgroup: %w", err)
	}
	var v2Path, v1Path string
	hasV2, hasV1 := false, false
	for _, line := range strings.Split(string(cg), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2Path, hasV2 = parts[2], true
		default:
			for _, c := range strings.Split(parts[1], ",") {
				if c == "memory" {
					v1Path, hasV1 = parts[2], true
				}
			}
		}
	}
	best := uint64(0)
	consider := func(v uint64, file string) {
		if v > 0 && v < v1Unlimited && (best == 0 || v < best) {
			best, where = v, file
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(mounts))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m, ok := parseMountinfo(sc.Text())
		if !ok {
			continue
		}
		switch {
		case m.fstype == "cgroup2" && hasV2:
			for _, dir := range ancestors(m, v2Path) {
				if v, ok := readLimit(fsys, path.Join(dir, "memory.max")); ok {
					consider(v, "/"+path.Join(dir, "memory.max"))
				}
			}
		case m.fstype == "cgroup" && hasV1 && hasOpt(m.superOpts, "memory"):
			for _, dir := range ancestors(m, v1Path) {
				if v, ok := readLimit(fsys, path.Join(dir, "memory.limit_in_bytes")); ok {
					consider(v, "/"+path.Join(dir, "memory.limit_in_bytes"))
				}
			}
			// hierarchical_memory_limit already folds in ancestors
			// that this mount may not show (a namespaced root).
			if dirs := ancestors(m, v1Path); len(dirs) > 0 {
				if v, ok := statValue(fsys, path.Join(dirs[0], "memory.stat"), "hierarchical_memory_limit"); ok {
					consider(v, "/"+path.Join(dirs[0], "memory.stat")+" hierarchical_memory_limit")
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, "", fmt.Errorf("read mountinfo: %w", err)
	}
	if best == 0 {
		return 0, "", ErrNoLimit
	}
	return best, where, nil
}

type mount struct {
	root, point, fstype, superOpts string
}

// parseMountinfo reads one /proc/self/mountinfo line:
// id parent maj:min root mountpoint opts [optional…] - fstype source superopts
func parseMountinfo(line string) (mount, bool) {
	pre, post, ok := strings.Cut(line, " - ")
	if !ok {
		return mount{}, false
	}
	f := strings.Fields(pre)
	g := strings.Fields(post)
	if len(f) < 5 || len(g) < 1 {
		return mount{}, false
	}
	m := mount{root: unescape(f[3]), point: unescape(f[4]), fstype: g[0]}
	if len(g) >= 3 {
		m.superOpts = g[2]
	}
	return m, true
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func hasOpt(opts, want string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

// ancestors lists the fs.FS directories of the cgroup at cgPath and of its
// ancestors up to the mount point, leaf first. A cgroup outside the mount's
// root (another namespace's view) yields nothing.
func ancestors(m mount, cgPath string) []string {
	rel := cgPath
	if m.root != "/" {
		if cgPath != m.root && !strings.HasPrefix(cgPath, m.root+"/") {
			return nil
		}
		rel = strings.TrimPrefix(cgPath, m.root)
	}
	base := strings.TrimPrefix(path.Clean(m.point), "/")
	rel = path.Clean("/" + rel)
	var out []string
	for {
		out = append(out, strings.TrimPrefix(path.Join(base, rel), "/"))
		if rel == "/" {
			return out
		}
		rel = path.Dir(rel)
	}
}

func readLimit(fsys fs.FS, name string) (uint64, bool) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return 0, false
	}
	s := strings.TrimSpace(string(b))
	if s == "max" || s == "" {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return v, true
}

func statValue(fsys fs.FS, name, key string) (uint64, bool) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok && k == key {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
