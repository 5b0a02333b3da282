package sample

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// CgroupFacts are the container facts of one sample.
type CgroupFacts struct {
	Version          int
	Path             string
	MemLimit         uint64 // tightest up the hierarchy; 0 = none
	MemUsage         uint64
	WorkingSet       uint64  // usage − inactive_file
	CPUQuotaCores    float64 // tightest up the hierarchy; 0 = none
	NrThrottled      uint64
	ThrottledSeconds float64
}

// v1 reports "no limit" as a huge page-aligned number.
const v1NoLimit = 1 << 62

// Cgroup finds the process's cgroup through mountinfo and keeps its usage
// files open so that a per-sample read allocates nothing. Limits are walked
// up the hierarchy at Discover time and on Refresh.
type Cgroup struct {
	Version  int
	Path     string // cgroup path as in /proc/self/cgroup
	memDir   string // leaf directory of the memory controller
	cpuDir   string
	memMount string
	cpuMount string

	usage, stat, cpuStat *os.File
	buf                  []byte

	memLimit uint64
	cpuQuota float64
}

// DiscoverCgroup reads procRoot+"/self/mountinfo" and procRoot+"/self/cgroup";
// fsRoot is prefixed to mount points (both "" / "/proc" in production).
// It returns a Cgroup with Version 0 when none is found.
func DiscoverCgroup(procRoot, fsRoot string) (*Cgroup, error) {
	cg := &Cgroup{buf: make([]byte, 8192)}
	mi, err := os.ReadFile(procRoot + "/self/mountinfo")
	if err != nil {
		return cg, fmt.Errorf("read mountinfo: %w", err)
	}
	cgf, err := os.ReadFile(procRoot + "/self/cgroup")
	if err != nil {
		return cg, fmt.Errorf("read /proc/self/cgroup: %w", err)
	}
	// /proc/self/cgroup: "hierarchy-ID:controller-list:path"; v2 is "0::path".
	v1paths := map[string]string{}
	var v2path string
	hasV2 := false
	for _, line := range strings.Split(string(cgf), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2path, hasV2 = parts[2], true
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			v1paths[c] = parts[2]
		}
	}
	type mount struct{ root, point string }
	var v2m *mount
	v1m := map[string]mount{}
	for _, line := range strings.Split(string(mi), "\n") {
		// id parent maj:min root mountpoint opts [optional…] - fstype source superopts
		left, right, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		lf, rf := strings.Fields(left), strings.Fields(right)
		if len(lf) < 5 || len(rf) < 3 {
			continue
		}
		m := mount{root: unescapeMount(lf[3]), point: unescapeMount(lf[4])}
		switch rf[0] {
		case "cgroup2":
			if v2m == nil {
				mm := m
				v2m = &mm
			}
		case "cgroup":
			for _, opt := range strings.Split(rf[2], ",") {
				if opt == "memory" || opt == "cpu" {
					if _, dup := v1m[opt]; !dup {
						v1m[opt] = m
					}
				}
			}
		}
	}
	leaf := func(m mount, p string) string {
		rel := p
		if m.root != "/" && strings.HasPrefix(p, m.root) {
			rel = strings.TrimPrefix(p, m.root)
		}
		return filepath.Join(fsRoot+m.point, rel)
	}
	switch {
	case len(v1m) > 0 && (v1paths["memory"] != "" || v1paths["cpu"] != ""):
		// A hybrid host has both; v1 controllers, when mounted, are the
		// ones that enforce limits.
		cg.Version = 1
		if m, ok := v1m["memory"]; ok {
			cg.memDir, cg.memMount, cg.Path = leaf(m, v1paths["memory"]), fsRoot+m.point, v1paths["memory"]
		}
		if m, ok := v1m["cpu"]; ok {
			cg.cpuDir, cg.cpuMount = leaf(m, v1paths["cpu"]), fsRoot+m.point
			if cg.Path == "" {
				cg.Path = v1paths["cpu"]
			}
		}
	case v2m != nil && hasV2:
		cg.Version = 2
		cg.Path = v2path
		cg.memDir, cg.memMount = leaf(*v2m, v2path), fsRoot+v2m.point
		cg.cpuDir, cg.cpuMount = cg.memDir, cg.memMount
	default:
		return cg, nil
	}
	if cg.Version == 2 {
		cg.usage, _ = os.Open(cg.memDir + "/memory.current")
		cg.stat, _ = os.Open(cg.memDir + "/memory.stat")
		cg.cpuStat, _ = os.Open(cg.cpuDir + "/cpu.stat")
	} else {
		if cg.memDir != "" {
			cg.usage, _ = os.Open(cg.memDir + "/memory.usage_in_bytes")
			cg.stat, _ = os.Open(cg.memDir + "/memory.stat")
		}
		if cg.cpuDir != "" {
			cg.cpuStat, _ = os.Open(cg.cpuDir + "/cpu.stat")
		}
	}
	cg.Refresh()
	return cg, nil
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	if u, err := strconv.Unquote(`"` + strings.ReplaceAll(s, `"`, `\"`) + `"`); err == nil {
		return u
	}
	return s
}

// Refresh re-reads the limits, walking from the leaf up to the mount point
// and keeping the tightest. It allocates; call it rarely.
func (cg *Cgroup) Refresh() {
	cg.memLimit, cg.cpuQuota = 0, 0
	walk := func(dir, mount string, fn func(dir string)) {
		if dir == "" {
			return
		}
		for {
			fn(dir)
			if dir == mount || len(dir) <= len(mount) || dir == "/" || dir == "." {
				return
			}
			dir = filepath.Dir(dir)
		}
	}
	minMem := func(v uint64) {
		if v > 0 && v < v1NoLimit && (cg.memLimit == 0 || v < cg.memLimit) {
			cg.memLimit = v
		}
	}
	minCPU := func(q float64) {
		if q > 0 && (cg.cpuQuota == 0 || q < cg.cpuQuota) {
			cg.cpuQuota = q
		}
	}
	if cg.Version == 2 {
		walk(cg.memDir, cg.memMount, func(d string) {
			if v, ok := readUintFile(d + "/memory.max"); ok {
				minMem(v)
			}
			if b, err := os.ReadFile(d + "/cpu.max"); err == nil {
				f := strings.Fields(string(b))
				if len(f) == 2 && f[0] != "max" {
					q, err1 := strconv.ParseFloat(f[0], 64)
					p, err2 := strconv.ParseFloat(f[1], 64)
					if err1 == nil && err2 == nil && p > 0 {
						minCPU(q / p)
					}
				}
			}
		})
	} else if cg.Version == 1 {
		walk(cg.memDir, cg.memMount, func(d string) {
			if v, ok := readUintFile(d + "/memory.limit_in_bytes"); ok {
				minMem(v)
			}
		})
		if cg.memDir != "" {
			if b, err := os.ReadFile(cg.memDir + "/memory.stat"); err == nil {
				if v, ok := statField(b, "hierarchical_memory_limit"); ok {
					minMem(v)
				}
			}
		}
		walk(cg.cpuDir, cg.cpuMount, func(d string) {
			q, err1 := os.ReadFile(d + "/cpu.cfs_quota_us")
			p, err2 := os.ReadFile(d + "/cpu.cfs_period_us")
			if err1 != nil || err2 != nil {
				return
			}
			qv, e1 := strconv.ParseInt(strings.TrimSpace(string(q)), 10, 64)
			pv, e2 := strconv.ParseInt(strings.TrimSpace(string(p)), 10, 64)
			if e1 == nil && e2 == nil && qv > 0 && pv > 0 {
				minCPU(float64(qv) / float64(pv))
			}
		})
	}
}

func readUintFile(path string) (uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return v, err == nil
}

// statField finds "key value" in a memory.stat/cpu.stat style file without
// allocating.
func statField(b []byte, key string) (uint64, bool) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(line) > len(key) && line[len(key)] == ' ' && string(line[:len(key)]) == key {
			return parseUint(bytes.TrimSpace(line[len(key)+1:]))
		}
	}
	return 0, false
}

func (cg *Cgroup) pread(f *os.File) []byte {
	if f == nil {
		return nil
	}
	n, err := f.ReadAt(cg.buf, 0)
	if n <= 0 || (err != nil && n == len(cg.buf)) {
		return nil
	}
	return cg.buf[:n]
}

// Read fills f without allocating.
func (cg *Cgroup) Read(f *CgroupFacts) {
	*f = CgroupFacts{Version: cg.Version, Path: cg.Path, MemLimit: cg.memLimit, CPUQuotaCores: cg.cpuQuota}
	if cg.Version == 0 {
		return
	}
	if b := cg.pread(cg.usage); b != nil {
		f.MemUsage, _ = parseUint(bytes.TrimSpace(b))
	}
	if b := cg.pread(cg.stat); b != nil {
		key := "inactive_file"
		if cg.Version == 1 {
			key = "total_inactive_file"
		}
		inactive, _ := statField(b, key)
		if inactive < f.MemUsage {
			f.WorkingSet = f.MemUsage - inactive
		}
	}
	if b := cg.pread(cg.cpuStat); b != nil {
		f.NrThrottled, _ = statField(b, "nr_throttled")
		if cg.Version == 2 {
			us, _ := statField(b, "throttled_usec")
			f.ThrottledSeconds = float64(us) / 1e6
		} else {
			ns, _ := statField(b, "throttled_time")
			f.ThrottledSeconds = float64(ns) / 1e9
		}
	}
}

// Close releases the open files.
func (cg *Cgroup) Close() {
	for _, f := range []*os.File{cg.usage, cg.stat, cg.cpuStat} {
		if f != nil {
			f.Close()
		}
	}
}

// EffectiveMemLimit is the lower of GOMEMLIMIT (math.MaxInt64 = none) and the
// cgroup limit (0 = none); 0 when neither is set.
func EffectiveMemLimit(gomemlimit int64, cgroup uint64) uint64 {
	var l uint64
	if gomemlimit > 0 && gomemlimit != math.MaxInt64 {
		l = uint64(gomemlimit)
	}
	if cgroup > 0 && (l == 0 || cgroup < l) {
		l = cgroup
	}
	return l
}
