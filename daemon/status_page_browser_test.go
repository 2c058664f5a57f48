package daemon_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The status page as a person sees it: a running daemon with a quarantined
// plan, loaded in a real headless Chromium, which must show the quarantine
// box, the runs and the next run, and must fetch nothing from anywhere but
// the daemon (air-gapped clusters).
//
// GROUPSYNC_SCREENSHOT=docs/status-page.png (relative to the repository
// root) writes the page's screenshot there.

// chromiumPath finds a Chromium; without one the test skips, except in CI
// (CI=true), where it fails: CI must not skip it silently.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatal("no chromium binary on PATH and CI is set: install it (Debian: apt-get install -y chromium)")
	}
	t.Skip("no chromium binary on PATH (Debian: apt-get install -y chromium); skipping the browser test of the status page")
	return ""
}

func TestStatusPageInABrowser(t *testing.T) {
	chromium := chromiumPath(t)
	q := quarantine(t)
	// An event, and a request that named nothing valid, for the events table.
	if code, _, body := q.do(http.MethodPost, "/sync/user/u01?wait=true", hookToken, ""); code != http.StatusOK {
		t.Fatalf("event: %d %s", code, body)
	}
	if code, _, _ := q.do(http.MethodPost, "/sync/team/x", hookToken, ""); code != http.StatusBadRequest {
		t.Fatalf("a bad event: %d", code)
	}
	id := q.status().Quarantine.PlanID

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox refuses to start
		chromedp.DisableGPU, chromedp.WindowSize(1200, 900), chromedp.Flag("no-first-run", true))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	// Every request the tab sends, from before its first command.
	var mu sync.Mutex
	var requested []string
	ctx, cancelCtx := chromedp.NewContext(alloc, chromedp.WithListener(func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			requested = append(requested, e.Request.URL)
			mu.Unlock()
		}
	}))
	defer cancelCtx()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	if err := chromedp.Do(ctx, chromedp.Navigate(q.url+"/status"), chromedp.WaitVisible(chromedp.CSS("#quarantine .quarantine"))); err != nil {
		t.Fatalf("load the page in %s: %v", chromium, err)
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("the text of %s: %v", sel, err)
		}
		return s
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	quarantineBox, runs, schedule, events := text("#quarantine"), text("#runs"), text("#schedule"), text("#events")
	for _, want := range []string{"Quarantined plan awaiting approval", "Guard max_delete_percent stopped", "limit 30.0%",
		"Plan id\n" + id, "group:staff", "−15", "groupsync approve --daemon " + q.url + " --token-file TRIGGER_TOKEN_FILE --plan-id " + id} {
		if !strings.Contains(quarantineBox, want) {
			t.Errorf("the quarantine box does not show %q:\n%s", want, quarantineBox)
		}
	}
	if !strings.Contains(title, "quarantined") {
		t.Errorf("title %q", title)
	}
	// Newest first: the event run, the tripped run, the first sync.
	for _, want := range []string{"slice", "guard", "max_delete_percent", "+35", "ok"} {
		if !strings.Contains(runs, want) {
			t.Errorf("the runs table does not show %q:\n%s", want, runs)
		}
	}
	if !strings.Contains(schedule, "Next run") || !strings.Contains(schedule, "UTC (in ") {
		t.Errorf("the next run is not shown:\n%s", schedule)
	}
	if !strings.Contains(events, "user:u01") || !strings.Contains(events, "refused") {
		t.Errorf("the events table:\n%s", events)
	}

	if path := os.Getenv("GROUPSYNC_SCREENSHOT"); path != "" {
		if !filepath.IsAbs(path) {
			path = filepath.Join("..", path) // the test runs in daemon/
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot written to %s", path)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(requested) == 0 {
		t.Fatal("saw no request at all: the request listener is not working")
	}
	daemonURL, _ := url.Parse(q.url)
	for _, raw := range requested {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme == "data" || u.Scheme == "about" {
			continue
		}
		if u.Host != daemonURL.Host {
			t.Errorf("the page requested %s: only the daemon's own origin %s is allowed", raw, daemonURL.Host)
		}
	}
}
