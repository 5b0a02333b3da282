package procfs

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the committed fuzz seeds in testdata/fuzz")

// Lines captured from this host's /proc/net/tcp and /proc/net/tcp6
// (x86-64, little-endian), trailing spaces included as the kernel pads them.
const (
	tcpHeader    = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     "
	tcpListen    = "   0: 0100007F:8A33 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 94647 2 0000000028219d89 100 0 0 10 0                     "
	tcpAnyListen = "   2: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1076 1 00000000178a8f5c 100 0 0 10 0                      "
	tcpTimeWait  = "   3: 0100007F:A6A3 0100007F:E45C 06 00000000:00000000 03:00000000 00000000     0        0 0 3 00000000e62c3e20                                      "
	tcpEstab     = "   4: 0100007F:8A33 0100007F:A08A 01 0000007A:00000000 01:00000014 00000000     0        0 95403 4 0000000016c276dd 20 4 1 18 -1                     "
	tcp6Header   = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"
	tcp6Any      = "   0: 00000000000000000000000000000000:818D 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 96536 1 00000000cdd55d8d 100 0 0 10 0"
	tcp6CloseW   = "   2: 00000000000000000000000001000000:9743 00000000000000000000000001000000:C282 08 00000000:00000001 00:00000000 00000000     0        0 96534 1 0000000046fbb736 20 4 0 10 -1"
	tcp6FinW2    = "   3: 00000000000000000000000001000000:C282 00000000000000000000000001000000:9743 05 00000000:00000000 03:00001766 00000000     0        0 0 3 000000007868735d"
	tcp6Mapped   = "   4: 0000000000000000FFFF00000100007F:E276 0000000000000000FFFF00000100007F:854D 01 00000000:00000000 00:00000000 00000000     0        0 96537 2 0000000070a42681 20 0 0 10 -1"
)

func littleEndian() bool {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], 1)
	return b[0] == 1
}

func TestParseNetTCP(t *testing.T) {
	if !littleEndian() {
		t.Skip("captured lines are from a little-endian host")
	}
	ap := netip.MustParseAddrPort
	tests := []struct {
		name  string
		input string
		want  []Socket
		err   string
	}{
		{"ipv4", strings.Join([]string{tcpHeader, tcpListen, tcpAnyListen, tcpTimeWait, tcpEstab}, "\n") + "\n", []Socket{
			{Local: ap("127.0.0.1:35379"), Remote: ap("0.0.0.0:0"), State: "LISTEN", Inode: 94647},
			{Local: ap("0.0.0.0:2024"), Remote: ap("0.0.0.0:0"), State: "LISTEN", Inode: 1076},
			{Local: ap("127.0.0.1:42659"), Remote: ap("127.0.0.1:58460"), State: "TIME_WAIT"},
			{Local: ap("127.0.0.1:35379"), Remote: ap("127.0.0.1:41098"), State: "ESTABLISHED", Inode: 95403},
		}, ""},
		{"ipv6", strings.Join([]string{tcp6Header, tcp6Any, tcp6CloseW, tcp6FinW2, tcp6Mapped}, "\n"), []Socket{
			{Local: ap("[::]:33165"), Remote: ap("[::]:0"), State: "LISTEN", Inode: 96536},
			{Local: ap("[::1]:38723"), Remote: ap("[::1]:49794"), State: "CLOSE_WAIT", Inode: 96534},
			{Local: ap("[::1]:49794"), Remote: ap("[::1]:38723"), State: "FIN_WAIT2"},
			{Local: ap("127.0.0.1:57974"), Remote: ap("127.0.0.1:34125"), State: "ESTABLISHED", Inode: 96537},
		}, ""},
		{"no header", tcpEstab, []Socket{
			{Local: ap("127.0.0.1:35379"), Remote: ap("127.0.0.1:41098"), State: "ESTABLISHED", Inode: 95403},
		}, ""},
		{"empty", "", nil, ""},
		{"header only", tcpHeader + "\n", nil, ""},
		{"unknown state", strings.Replace(tcpEstab, " 01 ", " 0F ", 1), []Socket{
			{Local: ap("127.0.0.1:35379"), Remote: ap("127.0.0.1:41098"), State: "UNKNOWN_15", Inode: 95403},
		}, ""},
		{"short line", "   0: 0100007F:8A33 00000000:0000 0A\n", nil, "line 1"},
		{"bad address", strings.Replace(tcpEstab, "0100007F:8A33", "0100007G:8A33", 1), nil, "local address"},
		{"odd address length", strings.Replace(tcpEstab, "0100007F:8A33", "100007F:8A33", 1), nil, "not ADDR:PORT"},
		{"bad inode", strings.Replace(tcpEstab, " 95403 ", " x ", 1), nil, "inode"},
		{"bad state", strings.Replace(tcpEstab, " 01 ", " 1FF ", 1), nil, "state"},
		{"garbage", "hello world\n", nil, "want at least 10 fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []Socket
			err := ParseNetTCP(strings.NewReader(tt.input), func(s Socket) bool {
				got = append(got, s)
				return true
			})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrSyntax) {
					t.Fatalf("error %v, want ErrSyntax mentioning %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestParseNetTCPStops(t *testing.T) {
	calls := 0
	err := ParseNetTCP(strings.NewReader(tcpListen+"\n"+tcpEstab+"\n"), func(Socket) bool {
		calls++
		return false
	})
	if err != nil || calls != 1 {
		t.Errorf("calls=%d err=%v, want 1 call and no error", calls, err)
	}
}

// Captured from /proc/self/limits on this host.
const limitsFile = `Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max file size             unlimited            unlimited            bytes     
Max data size             unlimited            unlimited            bytes     
Max stack size            8388608              unlimited            bytes     
Max core file size        0                    unlimited            bytes     
Max resident set          unlimited            unlimited            bytes     
Max processes             96365                96365                processes 
Max open files            20000                20000                files     
Max locked memory         8388608              8388608              bytes     
Max address space         unlimited            unlimited            bytes     
Max file locks            unlimited            unlimited            locks     
Max pending signals       96365                96365                signals   
Max msgqueue size         819200               819200               bytes     
Max nice priority         0                    0                    
Max realtime priority     0                    0                    
Max realtime timeout      unlimited            unlimited            us        
`

func TestParseLimits(t *testing.T) {
	tests := []struct {
		name  string
		input string
		check map[string]Limit
		n     int
		err   string
	}{
		{"captured", limitsFile, map[string]Limit{
			"Max open files":       {20000, 20000},
			"Max stack size":       {8388608, Unlimited},
			"Max cpu time":         {Unlimited, Unlimited},
			"Max nice priority":    {0, 0},
			"Max realtime timeout": {Unlimited, Unlimited},
		}, 16, ""},
		{"soft below hard", strings.Replace(limitsFile, "Max open files            20000                20000 ",
			"Max open files            1024                 524288", 1), map[string]Limit{"Max open files": {1024, 524288}}, 16, ""},
		{"header only", strings.SplitAfter(limitsFile, "\n")[0], map[string]Limit{}, 0, ""},
		{"empty", "", nil, 0, "empty"},
		{"no header", "Max open files            1024                 524288               files\n", nil, 0, "header"},
		{"bad number", strings.Replace(limitsFile, "20000                20000", "20k                  20000", 1), nil, 0, `"20k"`},
		{"short line", strings.SplitAfter(limitsFile, "\n")[0] + "Max open files  1024\n", nil, 0, "shorter than its header"},
		{"two soft values", strings.SplitAfter(limitsFile, "\n")[0] + "Max open files            1 2                  3                    files\n", nil, 0, "line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLimits(strings.NewReader(tt.input))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrSyntax) {
					t.Fatalf("error %v, want ErrSyntax mentioning %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.n {
				t.Errorf("%d limits, want %d: %v", len(got), tt.n, got)
			}
			for k, v := range tt.check {
				if got[k] != v {
					t.Errorf("%s = %+v, want %+v", k, got[k], v)
				}
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	const captured = "Name:\tsockets\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nVmPeak:\t 1234 kB\nVmRSS:\t    1980 kB\nThreads:\t5\nGroups:\t0 \n"
	tests := []struct {
		name, input string
		want        status
		err         string
	}{
		{"captured", captured, status{"sockets", 5, 1980 * 1024}, ""},
		{"kernel thread", "Name:\tkworker/0:1\nThreads:\t1\n", status{"kworker/0:1", 1, 0}, ""},
		{"no threads", "Name:\tx\nVmRSS:\t1 kB\n", status{}, "no Threads"},
		{"bad rss", "Name:\tx\nVmRSS:\t1 MB\nThreads:\t1\n", status{}, "VmRSS"},
		{"bad threads", "Threads:\tmany\n", status{}, "Threads"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatus(strings.NewReader(tt.input))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one mentioning %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestSocketInode(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"socket:[12345]", 12345, true},
		{"socket:[]", 0, false},
		{"socket:[12", 0, false},
		{"pipe:[12345]", 0, false},
		{"/dev/null", 0, false},
		{"anon_inode:[eventpoll]", 0, false},
	}
	for _, tt := range tests {
		got, ok := socketInode(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("socketInode(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzParseNetTCP(f *testing.F) {
	for _, s := range tcpSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		n := 0
		err := ParseNetTCP(strings.NewReader(input), func(s Socket) bool {
			n++
			if !s.Local.IsValid() || !s.Remote.IsValid() || s.State == "" {
				t.Fatalf("invalid socket without error: %+v", s)
			}
			return true
		})
		if err != nil && !errors.Is(err, ErrSyntax) && !errors.Is(err, bufio.ErrTooLong) {
			t.Fatalf("error wraps neither ErrSyntax nor a read error: %v", err)
		}
		if n > strings.Count(input, "\n")+1 {
			t.Fatalf("%d sockets from %d lines", n, strings.Count(input, "\n")+1)
		}
	})
}

func FuzzParseLimits(f *testing.F) {
	for _, s := range limitsSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		got, err := ParseLimits(strings.NewReader(input))
		if err != nil {
			if got != nil {
				t.Fatalf("limits %v returned with error %v", got, err)
			}
			return
		}
		if len(got) > strings.Count(input, "\n")+1 {
			t.Fatalf("%d limits from %d lines", len(got), strings.Count(input, "\n")+1)
		}
		for name := range got {
			if name == "" || strings.TrimSpace(name) != name {
				t.Fatalf("limit name %q", name)
			}
		}
	})
}

func tcpSeeds() map[string]string {
	return map[string]string{
		"ipv4":       strings.Join([]string{tcpHeader, tcpListen, tcpAnyListen, tcpTimeWait, tcpEstab}, "\n") + "\n",
		"ipv6":       strings.Join([]string{tcp6Header, tcp6Any, tcp6CloseW, tcp6FinW2, tcp6Mapped}, "\n") + "\n",
		"header":     tcpHeader + "\n",
		"short-line": "   0: 0100007F:8A33 00000000:0000 0A\n",
	}
}

func limitsSeeds() map[string]string {
	head := strings.SplitAfter(limitsFile, "\n")[0]
	return map[string]string{
		"captured":    limitsFile,
		"header-only": head,
		"no-units":    head + "Max nice priority         0                    0                    \n",
		"short":       head + "Max open files  1024\n",
	}
}

// TestFuzzSeeds keeps the committed corpora in step with the seeds above;
// go test -update rewrites them.
func TestFuzzSeeds(t *testing.T) {
	for fuzzName, seeds := range map[string]map[string]string{
		"FuzzParseNetTCP": tcpSeeds(),
		"FuzzParseLimits": limitsSeeds(),
	} {
		dir := filepath.Join("testdata", "fuzz", fuzzName)
		for name, s := range seeds {
			path := filepath.Join(dir, name)
			body := "go test fuzz v1\nstring(" + strconv.Quote(s) + ")\n"
			if *update {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != body {
				t.Errorf("seed %s missing or stale (go test -update rewrites it): %v", path, err)
			}
		}
	}
}
