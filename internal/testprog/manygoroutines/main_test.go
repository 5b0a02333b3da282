package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// buildProg compiles the program once per test into a temporary directory:
// the tests run it as a child process, since its goroutines never end.
func buildProg(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "manygoroutines")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

var headerRE = regexp.MustCompile(`(?m)^goroutine (\d+) \[([^\]]+)\]:$`)

func TestDumps(t *testing.T) {
	defer goleak.VerifyNone(t)
	bin := buildProg(t)
	dir := t.TempDir()
	const n = 3000
	out, err := exec.Command(bin, "-n", strconv.Itoa(n), "-out", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	text, err := os.ReadFile(filepath.Join(dir, "goroutines-3000.txt"))
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]int{}
	ms := headerRE.FindAllSubmatch(text, -1)
	for _, m := range ms {
		states[string(m[2])]++
	}
	if len(ms) < n || len(ms) > n+10 {
		t.Errorf("text dump has %d goroutines, want %d plus a few", len(ms), n)
	}
	for _, want := range []string{"chan receive", "chan send", "chan receive (nil chan)", "select",
		"sync.Mutex.Lock", "sync.RWMutex.RLock", "sync.Cond.Wait", "sync.WaitGroup.Wait", "sleep", "IO wait"} {
		if states[want] == 0 {
			t.Errorf("no goroutine in state %q; states: %v", want, states)
		}
	}
	// Stacks must be deep: every goroutine block but main's has at least
	// five frames (a frame is a function line plus a file line).
	for i, block := range bytes.Split(text, []byte("\n\n")) {
		frames := bytes.Count(block, []byte("\n\t")) - bytes.Count(block, []byte("\ncreated by "))
		if frames > 25 {
			t.Errorf("goroutine block %d has %d frames, want at most 25:\n%s", i, frames, block)
		}
		if frames < 5 && !bytes.Contains(block, []byte("main.main()")) && !bytes.Contains(block, []byte("[running]")) &&
			!bytes.Contains(block, []byte("acceptLoop")) {
			t.Errorf("goroutine block %d has %d frames, want at least 5:\n%s", i, frames, block)
		}
	}
	d1, err := os.ReadFile(filepath.Join(dir, "goroutines-3000.debug1.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(d1, []byte("goroutine profile: total ")) {
		t.Errorf("debug=1 file starts %q", d1[:min(len(d1), 40)])
	}
	pb, err := os.ReadFile(filepath.Join(dir, "goroutines-3000.pb.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pb) < 2 || pb[0] != 0x1f || pb[1] != 0x8b {
		t.Errorf("proto file is not gzipped: starts % x", pb[:min(len(pb), 4)])
	}
}

func TestServe(t *testing.T) {
	defer goleak.VerifyNone(t)
	bin := buildProg(t)
	cmd := exec.Command(bin, "-n", "500", "-serve")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("no ready line: %v", sc.Err())
	}
	line := sc.Text()
	m := regexp.MustCompile(`^ready goroutines=(\d+) leaked=\d+ addr=(\S+)$`).FindStringSubmatch(line)
	if m == nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("ready line %q", line)
	}
	base := m[2]
	client := &http.Client{Timeout: 30 * time.Second}
	get := func(path string) []byte {
		t.Helper()
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %v %s", path, err, resp.Status)
		}
		return b
	}
	var rep STWReport
	if err := json.Unmarshal(get("/stw"), &rep); err != nil {
		t.Errorf("decode /stw: %v", err)
	}
	for name, h := range map[string]STWHistogram{"other": rep.Other, "gc": rep.GC} {
		if len(h.Counts) == 0 || len(h.Buckets) != len(h.Counts)+1 {
			t.Errorf("/stw %s: %d buckets for %d counts", name, len(h.Buckets), len(h.Counts))
		}
	}
	if !strings.HasPrefix(string(get("/debug/pprof/goroutine?debug=1")), "goroutine profile: total ") {
		t.Errorf("debug=1 endpoint does not serve a goroutine profile")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		t.Errorf("target did not exit cleanly on SIGTERM: %v", err)
	}
	client.CloseIdleConnections()
}
