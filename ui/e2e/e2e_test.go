// Package e2e drives gopulse's web UI in a real Chromium with chromedp,
// against a real `gopulse server` that scrapes the leaking demo service.
// It is a separate module so the main go.mod does not carry chromedp.
//
//	cd ui/e2e && go test -v -count=1 .
//
// Set GOPULSE_SCREENSHOTS=DIR to keep the screenshots (default: a temp
// dir); CHROMIUM=path overrides the browser (default: chromium on PATH).
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// buildGopulse compiles the binary under test once per run.
func buildGopulse(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gopulse")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/gopulse")
	cmd.Dir = "../.." // the main module, whatever this module requires
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build gopulse: %v", err)
	}
	return bin
}

// start runs a child process until the test ends.
func start(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	logf, err := os.Create(filepath.Join(t.TempDir(), filepath.Base(name)+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s %s log:\n%s", name, strings.Join(args[:1], " "), tail(string(b), 3000))
		}
	})
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// waitFor polls fn every 250 ms until it returns true or d passes.
func waitFor(t *testing.T, d time.Duration, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func getJSON(url string, v any) error {
	res, err := http.Get(url)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("%s: %s", url, res.Status)
	}
	return json.NewDecoder(res.Body).Decode(v)
}

// browser starts headless Chromium with the flags that keep it off the
// network (this machine's network is closed; without them Chromium keeps
// retrying Google services) and collects console errors.
type browser struct {
	ctx    context.Context
	mu     sync.Mutex
	errors []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	exe := os.Getenv("CHROMIUM")
	if exe == "" {
		for _, c := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(c); err == nil {
				exe = p
				break
			}
		}
	}
	if exe == "" {
		t.Skip("no Chromium: apt-get install -y chromium (or set CHROMIUM)")
	}
	// Not t.TempDir: Chromium's helpers may still be writing when the test
	// ends, and a failed removal would fail the test.
	profile, err := os.MkdirTemp("", "gopulse-e2e-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(profile) })
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(profile),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1440, 1000),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	b := &browser{ctx: ctx}
	chromedp.ListenTarget(ctx, func(ev any) {
		var msg string
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg = "exception: " + e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				msg += " " + e.ExceptionDetails.Exception.Description
			}
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.APITypeError || e.Type == runtime.APITypeAssert {
				var parts []string
				for _, a := range e.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				msg = "console." + string(e.Type) + ": " + strings.Join(parts, " ")
			}
		case *log.EventEntryAdded:
			if e.Entry.Level == log.LevelError {
				msg = "log: " + e.Entry.Text + " " + e.Entry.URL
			}
		}
		if msg != "" {
			b.mu.Lock()
			b.errors = append(b.errors, msg)
			b.mu.Unlock()
		}
	})
	if err := chromedp.Run(ctx, log.Enable(), runtime.Enable()); err != nil {
		t.Fatalf("start Chromium %s: %v", exe, err)
	}
	return b
}

// takeErrors returns and clears the console errors seen so far.
func (b *browser) takeErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.errors
	b.errors = nil
	return e
}

func (b *browser) run(t *testing.T, what string, actions ...chromedp.Action) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		var buf []byte
		var html string
		chromedp.Run(b.ctx, chromedp.FullScreenshot(&buf, 90), chromedp.OuterHTML("main", &html, chromedp.ByQuery))
		os.WriteFile(filepath.Join(os.TempDir(), "gopulse-e2e-failure.jpg"), buf, 0o644)
		t.Fatalf("%s: %v\nconsole errors: %q\npage: %s", what, err, b.takeErrors(), tail(html, 2000))
	}
}

// waitReady waits until the page's script has loaded its data and
// returns the render time it recorded (ms, from script start).
func waitReady(page string, state *string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		for {
			// The page name guards against reading the previous page's
			// flag while a click's navigation is still under way.
			expr := fmt.Sprintf(`document.body && document.body.dataset.page === %q && document.body.dataset.ready || ''`, page)
			// Errors while the old page unloads are expected; retry.
			if err := chromedp.Evaluate(expr, state).Do(ctx); err == nil && *state != "" {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
}

// waitJS polls a boolean expression until it holds.
func waitJS(expr string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		for {
			var ok bool
			if err := chromedp.Evaluate(expr, &ok).Do(ctx); err != nil {
				return err
			}
			if ok {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for %s: %w", expr, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
}

func screenshotDir(t *testing.T) string {
	if d := os.Getenv("GOPULSE_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func (b *browser) shot(t *testing.T, dir, name string) {
	t.Helper()
	var buf []byte
	b.run(t, "screenshot "+name, chromedp.FullScreenshot(&buf, 100))
	// Quality 100 makes FullScreenshot write PNG.
	if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (b *browser) checkClean(t *testing.T, page string) {
	t.Helper()
	if errs := b.takeErrors(); len(errs) > 0 {
		t.Errorf("%s: console errors:\n  %s", page, strings.Join(errs, "\n  "))
	}
}

func TestNavigateFleetToBundle(t *testing.T) {
	bin := buildGopulse(t)
	demo := freeAddr(t)
	srv := freeAddr(t)
	start(t, bin, "demo", "leaky", "--listen", demo)
	waitFor(t, 20*time.Second, "demo to listen", func() bool {
		res, err := http.Get("http://" + demo + "/debug/pprof/")
		if err == nil {
			res.Body.Close()
		}
		return err == nil
	})
	start(t, bin, "server", "--listen", srv, "--data", t.TempDir(), "--scrape", "demo=http://"+demo,
		"--scrape-goroutine-interval", "3s", "--scrape-heap-interval", "5s", "--scrape-vars-interval", "1s",
		"--analyze-interval", "3s", "--self-batch-interval", "2s")
	base := "http://" + srv
	waitFor(t, 30*time.Second, "server /healthz", func() bool {
		res, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	waitFor(t, 120*time.Second, "a goroutine-leak finding for the demo", func() bool {
		var r struct{ Findings []struct{ ID int64 } }
		return getJSON(base+"/api/v1/findings?kind=goroutine-leak&service=demo", &r) == nil && len(r.Findings) > 0
	})
	waitFor(t, 30*time.Second, "a heap bundle for the demo", func() bool {
		var r struct{ Bundles []struct{ ID string } }
		return getJSON(base+"/api/v1/bundles?service=demo&limit=100", &r) == nil &&
			strings.Contains(fmt.Sprint(r.Bundles), "scrape-heap")
	})

	// Enough samples that every chart of a 15-minute range has a line.
	time.Sleep(15 * time.Second)
	b := newBrowser(t)
	dir := screenshotDir(t)
	var state string
	var n int

	// Fleet: both the server (agent) and the demo (scraped) are listed,
	// the leak is among the open findings.
	b.run(t, "open fleet", chromedp.Navigate(base+"/"), waitReady("fleet", &state),
		waitJS(`[...document.querySelectorAll('#fleet td.p99')].every((td) => td.textContent !== '…')`),
		chromedp.Evaluate(`document.querySelectorAll('#fleet tbody tr[data-k]').length`, &n))
	if state != "true" || n < 2 {
		t.Fatalf("fleet: ready=%q, %d rows; want ready and ≥ 2 rows (the server and the demo)", state, n)
	}
	var findings string
	b.run(t, "fleet findings", chromedp.Text(`#findings-list`, &findings, chromedp.ByQuery))
	if !strings.Contains(findings, "goroutine leak") {
		t.Errorf("fleet findings panel = %q, want a goroutine leak", findings)
	}
	b.shot(t, dir, "fleet")
	b.checkClean(t, "fleet")

	// Sorting and filtering work on the rendered table.
	var firstSvc string
	b.run(t, "filter", chromedp.SendKeys(`#filter`, "demo", chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll('#fleet tbody tr[data-k]').length`, &n),
		chromedp.Text(`#fleet tbody tr td:nth-child(2)`, &firstSvc, chromedp.ByQuery))
	if n != 1 || firstSvc != "demo" {
		t.Errorf("filter 'demo': %d rows, first service %q; want 1 row of demo", n, firstSvc)
	}

	// Fleet → instance (the scraped demo).
	b.run(t, "fleet → instance", follow(`#fleet tbody tr td:nth-child(3) a`), waitReady("instance", &state),
		chromedp.Location(&findings))
	if !strings.Contains(findings, "/instance/demo/") {
		t.Fatalf("after clicking the instance: at %s", findings)
	}
	var charts, points int
	b.run(t, "instance charts", chromedp.WaitVisible(`#charts .uplot`, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll('#charts .uplot').length`, &charts),
		chromedp.Evaluate(`+document.body.dataset.points`, &points))
	if charts < 1 || points == 0 {
		t.Errorf("demo instance page: %d charts with %d points; want ≥ 1 chart with data (a scraped pprof-only service has goroutines only)", charts, points)
	}
	b.shot(t, dir, "instance-scraped")
	b.checkClean(t, "instance (demo)")

	// Instance → finding.
	b.run(t, "instance → finding", follow(`#inst-findings a.finding`), waitReady("finding", &state),
		chromedp.WaitVisible(`#leak-chart .uplot`, chromedp.ByQuery), chromedp.Text(`#finding-body`, &findings, chromedp.ByQuery))
	for _, want := range []string{"Evidence", "Blocked at", "Created by", "What to change"} {
		if !strings.Contains(findings, want) {
			t.Errorf("finding page lacks %q", want)
		}
	}
	b.run(t, "stack frames", chromedp.Evaluate(`document.querySelectorAll('#finding-body .stack .frame').length`, &n))
	if n == 0 {
		t.Errorf("finding page shows no stack frames")
	}
	b.shot(t, dir, "finding-leak")
	b.checkClean(t, "finding")

	// Finding → bundle: the goroutine groups table is there.
	b.run(t, "finding → bundle", follow(`#f-bundles a`), waitReady("bundle", &state),
		chromedp.WaitVisible(`#groups table`, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll('#groups tbody tr').length`, &n))
	if n == 0 {
		t.Errorf("bundle page: empty goroutine groups table")
	}
	b.checkClean(t, "bundle (goroutine)")

	// A heap bundle renders a flame graph in the browser.
	var heapID string
	var r struct{ Bundles []struct{ ID string } }
	if err := getJSON(base+"/api/v1/bundles?service=demo&limit=100", &r); err != nil {
		t.Fatal(err)
	}
	for _, x := range r.Bundles {
		if strings.HasPrefix(x.ID, "scrape-heap") {
			heapID = x.ID
			break
		}
	}
	var painted bool
	b.run(t, "heap bundle", chromedp.Navigate(base+"/bundle/"+heapID), waitReady("bundle", &state),
		chromedp.WaitVisible(`#flame canvas.flame`, chromedp.ByQuery),
		// Any non-background pixel proves the canvas was drawn on.
		chromedp.Evaluate(`(() => { const c = document.querySelector('#flame canvas'); const d = c.getContext('2d').getImageData(0, 0, c.width, Math.min(c.height, 40)).data; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true; return false; })()`, &painted))
	if !painted {
		t.Errorf("heap bundle %s: flame graph canvas is blank", heapID)
	}
	b.shot(t, dir, "bundle-heap-flame")
	b.checkClean(t, "bundle (heap)")

	// The server's own instance (agent): the pause heatmap has data.
	b.run(t, "server instance", chromedp.Navigate(base+"/"), waitReady("fleet", &state),
		follow(`#fleet tbody tr td:nth-child(3) a[href^="/instance/gopulse/"]`), waitReady("instance", &state),
		chromedp.WaitVisible(`#charts .uplot`, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll('#charts .uplot').length`, &charts),
		chromedp.Evaluate(`+document.body.dataset.points`, &points))
	if charts < 5 || points == 0 {
		t.Errorf("server instance page: %d charts with %d points; want ≥ 5 charts with data", charts, points)
	}
	b.shot(t, dir, "instance-agent")
	b.checkClean(t, "instance (server)")

	// Dark theme renders too.
	b.run(t, "dark", chromedp.Click(`#theme`, chromedp.ByQuery), chromedp.Sleep(500*time.Millisecond))
	b.shot(t, dir, "instance-agent-dark")
	b.checkClean(t, "instance dark")

	// An unknown page is a 404 page, not a script error.
	var title string
	b.run(t, "404", chromedp.Navigate(base+"/nope"), chromedp.Title(&title))
	if !strings.Contains(title, "Not Found") {
		t.Errorf("404 page title %q", title)
	}
	b.takeErrors() // the 404 itself is logged by Chromium
	t.Logf("screenshots in %s", dir)
	_ = cdp.Node{}
}

// follow opens the page a link points to. The pages re-render their lists
// as fresh data arrives, so a click can land on a node that was just
// replaced ("Could not find node with given id"); reading the link's href
// and navigating to it checks the same thing — the link exists and leads
// there — without that race.
func follow(sel string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var href string
		if err := chromedp.Run(ctx, chromedp.WaitVisible(sel, chromedp.ByQuery),
			chromedp.Evaluate(fmt.Sprintf(`document.querySelector(%q).href`, sel), &href)); err != nil {
			return err
		}
		if href == "" {
			return fmt.Errorf("link %s has no href", sel)
		}
		return chromedp.Navigate(href).Do(ctx)
	})
}
