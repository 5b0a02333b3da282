package loadramp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RuntimeSample is one reading of the target's Go runtime: memstats from
// /debug/vars (expvar), the goroutine count from /debug/pprof/goroutine,
// and, when the target runs on this machine, its process from /proc.
type RuntimeSample struct {
	At       time.Time
	HasVars  bool
	MemStats MemStats
	// HasPprof says /debug/pprof/goroutine answered.
	HasPprof bool
	// Goroutines is -1 when /debug/pprof is not served.
	Goroutines int
	// Local process data; PID is 0 when the target is not local.
	PID       int
	ProcStart time.Time     // process start, from /proc/PID/stat
	ProcCPU   time.Duration // user+system CPU so far
	FDs       int
	Threads   int
	// Procs is the target's GOMAXPROCS when its environment sets it, else
	// this machine's CPU count (the Go default on the same host); 0 when
	// not local.
	Procs int
	// MachineBusy and MachineTotal are this machine's busy and total CPU
	// time from /proc/stat: a local target shares the CPU with the
	// generator and everything else.
	MachineBusy, MachineTotal time.Duration
	// TCP counts the target's sockets on its port by state ("ESTABLISHED",
	// "TIME_WAIT", …), from /proc/net/tcp{,6}; nil when not local.
	TCP map[string]int
	// Agent is the gopulse agent's status, when the target mounts the
	// agent's handler at /debug/gopulse/.
	Agent *AgentStatus
}

// AgentStatus holds the fields of the gopulse agent's handler JSON that the
// ramp uses (agent.Status; loadramp imports none of our packages, so the
// JSON names are the contract).
type AgentStatus struct {
	Goroutines      uint64  `json:"goroutines"`
	HeapLiveBytes   uint64  `json:"heap_live_bytes"`
	HeapGoalBytes   uint64  `json:"heap_goal_bytes"`
	RSSBytes        uint64  `json:"rss_bytes"`
	OpenFDs         uint64  `json:"open_fds"`
	FDLimit         uint64  `json:"fd_limit"`
	SchedP99Seconds float64 `json:"sched_latency_p99_seconds"`
	// GCCPUFraction (GC CPU, idle marking left out, over CPU capacity:
	// GOMAXPROCS × time), GCBusyShare (the same GC CPU over the CPU the
	// process was busy with) and GCMarkAssistShare (part of that GC CPU
	// paid in mark assists) over the agent's own latest sampling interval;
	// -1 when the agent has no figure yet or predates them. Agents before
	// gc_busy_share sent GC ÷ busy CPU as gc_cpu_fraction; the ramp
	// computes its step figures from CPUSeconds, which mean the same in
	// every agent version, so it does not depend on either.
	GCCPUFraction     float64 `json:"gc_cpu_fraction"`
	GCBusyShare       float64 `json:"gc_busy_share"`
	GCMarkAssistShare float64 `json:"gc_mark_assist_share"`
	// CPUSeconds are the runtime's cumulative /cpu/classes counters, which
	// the ramp differences over each step; nil from older agents.
	CPUSeconds *AgentCPUSeconds `json:"cpu_seconds"`
}

// AgentCPUSeconds are the agent's cumulative CPU estimates (runtime/metrics
// /cpu/classes/…:cpu-seconds), updated by the runtime at each GC cycle end.
type AgentCPUSeconds struct {
	GCTotal      float64 `json:"gc_total"`
	GCMarkAssist float64 `json:"gc_mark_assist"`
	GCMarkIdle   float64 `json:"gc_mark_idle"`
	Total        float64 `json:"total"`
	Idle         float64 `json:"idle"`
}

// ParseAgentStatus reads the gopulse agent handler's JSON. It insists on
// the "sched_latency_p99_seconds" key so that some other JSON served at
// the same path is not taken for it.
func ParseAgentStatus(r io.Reader) (*AgentStatus, error) {
	var raw map[string]json.RawMessage
	if err := json.NewDecoder(io.LimitReader(r, 1<<20)).Decode(&raw); err != nil {
		return nil, fmt.Errorf("parse agent status: %w", err)
	}
	if _, ok := raw["sched_latency_p99_seconds"]; !ok {
		return nil, errors.New("parse agent status: not a gopulse agent status (no sched_latency_p99_seconds)")
	}
	b, _ := json.Marshal(raw)
	st := AgentStatus{GCCPUFraction: -1, GCBusyShare: -1, GCMarkAssistShare: -1}
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("parse agent status: %w", err)
	}
	return &st, nil
}

// MemStats holds the fields of runtime.MemStats the ramp uses, as expvar
// publishes them.
type MemStats struct {
	HeapAlloc     uint64
	HeapSys       uint64
	NextGC        uint64
	Sys           uint64
	NumGC         uint32
	NumForcedGC   uint32
	LastGC        uint64 // ns since the Unix epoch
	PauseTotalNs  uint64
	PauseNs       [256]uint64
	GCCPUFraction float64
}

// RuntimeStep is what the target's runtime did between two samples.
// Fields that could not be measured are negative.
type RuntimeStep struct {
	// GCCPUFraction is the GC's share of the target's CPU capacity
	// (GOMAXPROCS × wall) during the step, idle-time marking excluded: the
	// runtime's GCCPUFraction, what `gopulse gc` and the collector show.
	// From /debug/vars it needs the process start time, so it is exact
	// only for local targets; otherwise GCCPUSinceStart holds the
	// runtime's cumulative figure.
	GCCPUFraction   float64 `json:"gc_cpu_fraction"`
	GCCPUSinceStart float64 `json:"gc_cpu_fraction_since_start"`
	// GCBusyShare is the same GC CPU over the CPU the target was busy
	// with (capacity less idle Ps): how much of what the process ran was
	// GC, telling a GC-bound target from a partly idle one whose small
	// capacity share hides it. Agent only; -1 without it.
	GCBusyShare float64 `json:"gc_busy_share"`
	// GCSource says where GCCPUFraction came from: "agent" (the gopulse
	// agent's runtime/metrics CPU classes, between the GC cycle ends its
	// samples saw around the step — exact for remote targets too) or
	// "/debug/vars" (memstats, local targets); "" when unknown.
	GCSource string `json:"gc_cpu_source,omitempty"`
	// GCAssistShare is the part of the GC's CPU that goroutines paid in
	// mark assists, inside their own requests; -1 without the agent.
	GCAssistShare float64 `json:"gc_mark_assist_share"`
	GCPerSecond   float64 `json:"gc_cycles_per_second"`
	// Pause percentiles over the GC cycles of the step (from the PauseNs
	// ring, so at most the last 256 cycles).
	PauseP50  time.Duration `json:"pause_p50_ns"`
	PauseP99  time.Duration `json:"pause_p99_ns"`
	PauseMax  time.Duration `json:"pause_max_ns"`
	HeapAlloc uint64        `json:"heap_alloc_bytes"`
	HeapGoal  uint64        `json:"heap_goal_bytes"`
	// Goroutines at the end of the step.
	Goroutines int `json:"goroutines"`
	// ProcessCPUCores is CPU-seconds per second (1.0 = one core busy).
	ProcessCPUCores float64 `json:"process_cpu_cores"`
	FDs             int     `json:"fds"`
	Threads         int     `json:"threads"`
	// Procs is the CPUs the target may use (its GOMAXPROCS if set in its
	// environment, else this machine's count); 0 when not local.
	Procs int `json:"procs,omitempty"`
	// MachineCPUBusy is the share of this machine's CPU that was busy
	// during the step (target, generator and everything else); -1 when the
	// target is not local.
	MachineCPUBusy float64 `json:"machine_cpu_busy"`
	// TCP is the target's sockets on its port by state at the end of the
	// step (local targets only).
	TCP map[string]int `json:"tcp_states,omitempty"`
	// SchedLatencyP99 is the agent's runnable→running wait p99 at the end
	// of the step (seconds); HeapLive the agent's live heap. Both need the
	// gopulse agent's handler; -1 and 0 without it.
	SchedLatencyP99 float64 `json:"sched_latency_p99_seconds"`
	HeapLive        uint64  `json:"heap_live_bytes,omitempty"`
}

// RuntimeReader reads a target's runtime. The zero value is not usable;
// call NewRuntimeReader.
type RuntimeReader struct {
	base string // scheme://host[:port] serving /debug/vars and /debug/pprof
	hc   *http.Client
	pid  int
	port int
}

// NewRuntimeReader reads the runtime of the service at base (its origin:
// "http://127.0.0.1:6060"). If base is on a loopback address, the process
// listening on its port is located through /proc so that GC CPU per step
// and process CPU can be computed exactly.
func NewRuntimeReader(base string) (*RuntimeReader, error) {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("runtime URL %q: want scheme://host:port", base)
	}
	// No keep-alive: two requests per step do not need it, and an idle
	// pooled connection would outlive the ramp with its goroutines.
	tr := &http.Transport{DisableKeepAlives: true, Proxy: http.ProxyFromEnvironment}
	r := &RuntimeReader{base: u.Scheme + "://" + u.Host, hc: &http.Client{Timeout: 5 * time.Second, Transport: tr}}
	if ip := net.ParseIP(u.Hostname()); (ip != nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
		if port, err := strconv.Atoi(u.Port()); err == nil {
			r.pid = findListenerPID(port)
			r.port = port
		}
	}
	return r, nil
}

// PID is the local process serving the target, 0 if unknown.
func (r *RuntimeReader) PID() int { return r.pid }

// Sample reads everything it can; a part that fails is left empty rather
// than failing the ramp, because most services serve only some of it.
func (r *RuntimeReader) Sample(ctx context.Context) RuntimeSample {
	s := RuntimeSample{At: time.Now(), Goroutines: -1}
	if body, err := r.get(ctx, "/debug/vars"); err == nil {
		if ms, err := ParseVars(bytes.NewReader(body)); err == nil {
			s.MemStats, s.HasVars = ms, true
		}
	}
	if body, err := r.get(ctx, "/debug/pprof/goroutine?debug=1"); err == nil {
		if n, err := ParseGoroutineTotal(bytes.NewReader(body)); err == nil {
			s.Goroutines, s.HasPprof = n, true
		}
	}
	if body, err := r.get(ctx, "/debug/gopulse/"); err == nil {
		if st, err := ParseAgentStatus(bytes.NewReader(body)); err == nil {
			s.Agent = st
			if s.Goroutines < 0 {
				s.Goroutines = int(st.Goroutines)
			}
		}
	}
	if r.pid > 0 {
		readProc(r.pid, &s)
		s.TCP = tcpStates(r.port)
	}
	return s
}

// tcpStateNames maps /proc/net/tcp's hex states to their names.
var tcpStateNames = map[string]string{
	"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
	"06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING",
}

// tcpStates counts sockets whose local port is port, by state.
func tcpStates(port int) map[string]int {
	out := map[string]int{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		countTCP(b, port, out)
	}
	return out
}

func countTCP(b []byte, port int, out map[string]int) {
	lines := strings.Split(string(b), "\n")
	if len(lines) > 0 {
		lines = lines[1:] // header
	}
	for _, line := range lines {
		fs := strings.Fields(line)
		if len(fs) < 4 {
			continue
		}
		j := strings.LastIndexByte(fs[1], ':')
		if j < 0 {
			continue
		}
		p, err := strconv.ParseInt(fs[1][j+1:], 16, 32)
		if err != nil || int(p) != port {
			continue
		}
		name := tcpStateNames[fs[3]]
		if name == "" {
			name = "state_" + fs[3]
		}
		out[name]++
	}
}

func (r *RuntimeReader) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	// A goroutine dump of a big service can be large; the first line is
	// all we need, and vars are small. Bound both.
	return io.ReadAll(io.LimitReader(resp.Body, 4<<20))
}

// ParseVars extracts "memstats" from an expvar /debug/vars document.
func ParseVars(r io.Reader) (MemStats, error) {
	var doc struct {
		MemStats *MemStats `json:"memstats"`
	}
	if err := json.NewDecoder(r).Decode(&doc); err != nil {
		return MemStats{}, fmt.Errorf("parse /debug/vars: %w", err)
	}
	if doc.MemStats == nil {
		return MemStats{}, errors.New("parse /debug/vars: no \"memstats\" (the service does not import expvar)")
	}
	return *doc.MemStats, nil
}

// ParseGoroutineTotal reads N from the "goroutine profile: total N" line
// that /debug/pprof/goroutine?debug=1 starts with.
func ParseGoroutineTotal(r io.Reader) (int, error) {
	br := bufio.NewReaderSize(r, 256)
	line, err := br.ReadString('\n')
	if err != nil && line == "" {
		return 0, fmt.Errorf("parse goroutine profile: %w", err)
	}
	line = strings.TrimSpace(line)
	const prefix = "goroutine profile: total "
	if !strings.HasPrefix(line, prefix) {
		return 0, fmt.Errorf("parse goroutine profile: first line %q is not %q", trunc([]byte(line)), prefix+"N")
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[len(prefix):]))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("parse goroutine profile: bad total in %q", trunc([]byte(line)))
	}
	return n, nil
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

func readProc(pid int, s *RuntimeSample) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return
	}
	st, err := parseProcStat(b)
	if err != nil {
		return
	}
	s.PID = pid
	s.ProcCPU = time.Duration((st.utime + st.stime) * uint64(time.Second) / clockTicks)
	s.Threads = st.threads
	if up, err := os.ReadFile("/proc/uptime"); err == nil {
		if f := strings.Fields(string(up)); len(f) > 0 {
			if secs, err := strconv.ParseFloat(f[0], 64); err == nil {
				boot := s.At.Add(-time.Duration(secs * float64(time.Second)))
				s.ProcStart = boot.Add(time.Duration(st.starttime * uint64(time.Second) / clockTicks))
			}
		}
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.FDs = len(ents)
	}
	s.Procs = runtime.NumCPU()
	if env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil {
		if n := envProcs(env); n > 0 {
			s.Procs = n
		}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		s.MachineBusy, s.MachineTotal, _ = parseCPULine(b)
	}
}

// envProcs reads GOMAXPROCS from a NUL-separated environment; 0 if unset
// or not a positive number.
func envProcs(env []byte) int {
	for _, kv := range bytes.Split(env, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("GOMAXPROCS=")); ok {
			if n, err := strconv.Atoi(string(v)); err == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}

// parseCPULine reads the machine-wide "cpu" line of /proc/stat: busy time
// is everything but idle and iowait.
func parseCPULine(b []byte) (busy, total time.Duration, err error) {
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("parse /proc/stat: first line %q is not the cpu line", trunc(line))
	}
	var idle, sum uint64
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse /proc/stat cpu field %d %q: %w", i+1, v, err)
		}
		if i == 8 || i == 9 { // guest time is already counted in user
			continue
		}
		sum += n
		if i == 3 || i == 4 {
			idle += n
		}
	}
	tick := func(n uint64) time.Duration { return time.Duration(n * uint64(time.Second) / clockTicks) }
	return tick(sum - idle), tick(sum), nil
}

type procStat struct {
	utime, stime, starttime uint64
	threads                 int
}

// parseProcStat reads /proc/PID/stat; the command name may hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("parse /proc stat: no ')'")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14 → f[11].
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("parse /proc stat: %d fields", len(f))
	}
	var st procStat
	var err error
	get := func(k int) uint64 {
		v, e := strconv.ParseUint(f[k], 10, 64)
		if e != nil && err == nil {
			err = fmt.Errorf("parse /proc stat field %d %q: %w", k+3, f[k], e)
		}
		return v
	}
	st.utime, st.stime = get(11), get(12)
	st.threads = int(get(17))
	st.starttime = get(19)
	return st, err
}

// findListenerPID finds the process with a listening TCP socket on port,
// by matching the socket inode from /proc/net/tcp{,6} against every
// process's open files. It returns 0 when it cannot tell (no permission,
// not Linux, or several processes share the socket).
func findListenerPID(port int) int {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 || fs[3] != "0A" { // 0A = LISTEN
				continue
			}
			j := strings.LastIndexByte(fs[1], ':')
			p, err := strconv.ParseInt(fs[1][j+1:], 16, 32)
			if err == nil && int(p) == port {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	var found []int
	for _, p := range procs {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(p + "/fd")
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, err := os.Readlink(p + "/fd/" + fd.Name()); err == nil && inodes[l] {
				found = append(found, pid)
				break
			}
		}
	}
	if len(found) != 1 {
		return 0
	}
	return found[0]
}

// RuntimeDelta summarises what the runtime did from a to b.
func RuntimeDelta(a, b RuntimeSample) RuntimeStep {
	d := RuntimeStep{GCCPUFraction: -1, GCCPUSinceStart: -1, GCBusyShare: -1, GCAssistShare: -1, GCPerSecond: -1, PauseP50: -1, PauseP99: -1, PauseMax: -1,
		Goroutines: b.Goroutines, ProcessCPUCores: -1, FDs: -1, Threads: -1, SchedLatencyP99: -1, MachineCPUBusy: -1}
	if b.Agent != nil {
		d.SchedLatencyP99 = b.Agent.SchedP99Seconds
		d.HeapLive = b.Agent.HeapLiveBytes
		d.HeapGoal = b.Agent.HeapGoalBytes // /debug/vars, when served, overrides it below
		d.FDs = int(b.Agent.OpenFDs)
	}
	wall := b.At.Sub(a.At).Seconds()
	if wall <= 0 {
		return d
	}
	if a.HasVars && b.HasVars {
		ma, mb := a.MemStats, b.MemStats
		d.GCCPUSinceStart = mb.GCCPUFraction
		d.HeapAlloc, d.HeapGoal = mb.HeapAlloc, mb.NextGC
		cycles := int(mb.NumGC - ma.NumGC)
		d.GCPerSecond = float64(cycles) / wall
		var pauses []uint64
		for i := mb.NumGC; i > ma.NumGC && len(pauses) < 256; i-- {
			pauses = append(pauses, mb.PauseNs[(i+255)%256])
		}
		if len(pauses) > 0 {
			slices.Sort(pauses)
			at := func(q float64) time.Duration {
				return time.Duration(pauses[min(len(pauses)-1, int(q*float64(len(pauses))))])
			}
			d.PauseP50, d.PauseP99, d.PauseMax = at(0.5), at(0.99), time.Duration(pauses[len(pauses)-1])
		} else {
			d.PauseP50, d.PauseP99, d.PauseMax = 0, 0, 0
		}
		// The runtime updates GCCPUFraction at the end of each cycle, as
		// GC time ÷ available time since start. Knowing the start turns
		// two cumulative fractions into the step's own fraction.
		if !b.ProcStart.IsZero() && ma.LastGC > 0 && mb.LastGC > ma.LastGC {
			t1 := time.Unix(0, int64(ma.LastGC)).Sub(b.ProcStart).Seconds()
			t2 := time.Unix(0, int64(mb.LastGC)).Sub(b.ProcStart).Seconds()
			if t1 > 0 && t2 > t1 {
				f := (mb.GCCPUFraction*t2 - ma.GCCPUFraction*t1) / (t2 - t1)
				d.GCCPUFraction = min(max(f, 0), 1)
			}
		} else if !b.ProcStart.IsZero() && cycles == 0 && ma.HeapAlloc < ma.NextGC && mb.HeapAlloc < mb.NextGC {
			// No cycle ended and none was due: the GC did not run. A heap
			// past its goal means a cycle is under way, whose cost shows
			// only when it ends, so the fraction stays unknown.
			d.GCCPUFraction = 0
		}
	}
	if d.GCCPUFraction >= 0 {
		d.GCSource = "/debug/vars"
	}
	// The agent's counters, when they moved, beat memstats: they need no
	// process start time and split out the assists.
	if a.Agent != nil && b.Agent != nil && a.Agent.CPUSeconds != nil && b.Agent.CPUSeconds != nil {
		ca, cb := a.Agent.CPUSeconds, b.Agent.CPUSeconds
		if avail := cb.Total - ca.Total; avail > 0 {
			// Idle-time marking uses Ps that had nothing else to do; like
			// memstats' GCCPUFraction, count only what the GC took.
			gc := (cb.GCTotal - cb.GCMarkIdle) - (ca.GCTotal - ca.GCMarkIdle)
			d.GCCPUFraction = min(max(gc/avail, 0), 1)
			if busy := (cb.Total - cb.Idle) - (ca.Total - ca.Idle); busy > 0 {
				d.GCBusyShare = min(max(gc/busy, 0), 1)
			}
			d.GCAssistShare = 0
			if gc > 0 {
				d.GCAssistShare = min(max((cb.GCMarkAssist-ca.GCMarkAssist)/gc, 0), 1)
			}
			d.GCSource = "agent"
		}
	}
	if a.PID != 0 && a.PID == b.PID {
		d.ProcessCPUCores = (b.ProcCPU - a.ProcCPU).Seconds() / wall
		d.FDs, d.Threads = b.FDs, b.Threads
		d.TCP = b.TCP
		d.Procs = b.Procs
		if tot := b.MachineTotal - a.MachineTotal; tot > 0 {
			d.MachineCPUBusy = min(max(float64(b.MachineBusy-a.MachineBusy)/float64(tot), 0), 1)
		}
	}
	return d
}

// fetchTo saves GET path into file; timeout bounds the whole transfer
// (a CPU profile takes as long as it samples).
func (r *RuntimeReader) fetchTo(ctx context.Context, path, file string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := r.hc.Transport.RoundTrip(req) // no client timeout: ctx bounds it
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, io.LimitReader(resp.Body, 256<<20)); err != nil {
		f.Close()
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return f.Close()
}
