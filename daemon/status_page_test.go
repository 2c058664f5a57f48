package daemon

import (
	"html"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/metrics"
	gsync "github.com/groupsync/groupsync/sync"
)

// The status page is written by hand (status_page.go), not by
// html/template, so these tests stand in for its escaping: every value
// from the Status and the request is hostile somewhere below, and the page
// must still be only the page's own markup.

// renderPage renders st as GET /status would for a request to host.
func renderPage(t *testing.T, st Status, host string) (http.Header, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/status", nil)
	r.Host = host
	rec := httptest.NewRecorder()
	renderStatusPage(rec, r, st)
	return rec.Header(), rec.Body.String()
}

// pageTag matches one tag as the page writes them: a name, then only
// double-quoted attributes, whose values hold no quote or angle bracket.
var (
	pageTag  = regexp.MustCompile(`^<(/?[a-z0-9]+)((?: [a-z-]+="[^"<>]*")*)>`)
	pageAttr = regexp.MustCompile(` ([a-z-]+)="`)
)

// pageMarkup checks that every '<' in body opens a tag the page writes,
// with attributes it writes, and returns the text a browser would show
// (tags removed, entities decoded). A value that escaped its escaping
// shows up as a tag or an attribute the page does not have.
func pageMarkup(t *testing.T, body string) (text string) {
	t.Helper()
	tags := map[string]bool{"html": true, "head": true, "meta": true, "title": true, "style": true, "body": true, "main": true,
		"h1": true, "h2": true, "h3": true, "p": true, "strong": true, "code": true, "a": true, "section": true, "div": true,
		"dl": true, "dt": true, "dd": true, "span": true, "table": true, "thead": true, "tbody": true, "tr": true, "th": true,
		"td": true, "pre": true, "br": true}
	attrs := map[string]bool{"lang": true, "charset": true, "name": true, "content": true, "class": true, "id": true, "href": true, "title": true}
	const doctype = "<!DOCTYPE html>"
	if !strings.HasPrefix(body, doctype) {
		t.Fatalf("the page does not start with %s", doctype)
	}
	var shown strings.Builder
	rest := body[len(doctype):]
	for {
		i := strings.IndexByte(rest, '<')
		if i < 0 {
			shown.WriteString(rest)
			break
		}
		shown.WriteString(rest[:i])
		rest = rest[i:]
		m := pageTag.FindStringSubmatch(rest)
		if m == nil {
			t.Fatalf("not a tag of the page: %.80q", rest)
		}
		if !tags[strings.TrimPrefix(m[1], "/")] {
			t.Errorf("a tag the page does not write: %q", m[0])
		}
		for _, a := range pageAttr.FindAllStringSubmatch(m[2], -1) {
			if !attrs[a[1]] {
				t.Errorf("an attribute the page does not write: %q in %q", a[1], m[0])
			}
		}
		if m[1] == "style" { // the CSS is the page's own; skip it whole
			end := strings.Index(rest, "</style>")
			if end < 0 {
				t.Fatal("no </style>")
			}
			rest = rest[end:]
			continue
		}
		rest = rest[len(m[0]):]
	}
	return html.UnescapeString(shown.String())
}

func TestStatusPageEscapesEveryValue(t *testing.T) {
	// hostile gives each field its own value that tries a script, an
	// attribute breakout both ways, a tag close and an entity.
	var values []string
	hostile := func(field string) string {
		v := `<script>alert("` + field + `")</script>" onmouseover="x" a='b' &amp; </td></table><img src=x>` + field
		values = append(values, v)
		return v
	}
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	past := now.Add(-time.Hour)
	slice := func(where string) *gsync.Slice {
		return &gsync.Slice{Users: []string{hostile(where + " user")}, Groups: []string{hostile(where + " group")}}
	}
	st := Status{
		Generated: now, Instance: hostile("instance"), Schedule: hostile("schedule"),
		Running: &RunningRun{Trigger: hostile("running trigger"), Since: past},
		Source:  SourceState{LastRead: &ReadMode{Mode: hostile("read mode"), Reason: hostile("read reason")}},
		Quarantine: &Quarantine{
			PlanID: hostile("quarantine plan id"), Trigger: hostile("quarantine trigger"), Since: past, Updated: now,
			Guard: gsync.GuardTrip{Guard: hostile("quarantine guard"), Limit: 30, Actual: 40, Message: hostile("guard message")},
			Slice: slice("quarantine"), Stale: hostile("stale"),
			Changes: []GroupCount{{Object: hostile("quarantine object"), Relation: hostile("quarantine relation"), Name: hostile("quarantine group name")}},
		},
		Runs: []RunRecord{{
			ID: 7, Trigger: hostile("run trigger"), Mode: hostile("run mode"), Start: past, Result: metrics.Result(hostile("result")),
			Error: hostile("run error"), PlanID: hostile("run plan id"), Guard: &gsync.GuardTrip{Guard: hostile("run guard")},
			Summary: &gsync.Summary{ToAdd: 1}, Applied: &Applied{Added: 1},
			TargetRead: &gsync.TargetRead{Mode: hostile("target mode"), Reason: hostile("target reason")},
			Slice:      slice("run"),
			Changes:    []GroupCount{{Object: hostile("run object"), Relation: hostile("run relation"), Name: hostile("run group name"), Add: 1}},
		}},
		Events: []EventRecord{{Time: now, Origin: hostile("origin"), Kind: EventKind(hostile("kind")), Key: hostile("event key"),
			Outcome: hostile("outcome"), Reason: hostile("event reason")}},
	}
	host := hostile("host")
	_, body := renderPage(t, st, host)

	if strings.Contains(strings.ToLower(body), "<script") || strings.Contains(strings.ToLower(body), "<img") {
		t.Fatalf("a value's markup reached the page:\n%s", body)
	}
	shown := pageMarkup(t, body)
	// Every value is on the page, escaped, and a browser shows it as it was.
	for _, v := range values {
		if !strings.Contains(body, html.EscapeString(v)) {
			t.Errorf("the page does not show %q escaped", v)
		}
		if !strings.Contains(shown, v) && !strings.Contains(body, `="`+html.EscapeString(v)+`"`) {
			t.Errorf("a browser would not show %q as written", v)
		}
	}
	// The host reaches both commands, escaped.
	if want := "groupsync approve --daemon http://" + host + " --token-file"; !strings.Contains(shown, want) {
		t.Errorf("the approve command does not name the host as written:\n%s", shown)
	}
}

// typicalStatus is a daemon with a quarantined plan, three runs (an event
// run, the tripped run, the first sync) and two events.
func typicalStatus() Status {
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	next, last, since := now.Add(42*time.Second), now.Add(-10*time.Minute), now.Add(-3*time.Minute-20*time.Second)
	age := 600.0
	return Status{
		FormatVersion: StatusFormatVersion, Generated: now, Instance: "prod", Schedule: "@every 15m",
		NextRun: &next, LastSuccess: &last, QueueDepth: 2,
		Source: SourceState{LastRead: &ReadMode{Mode: "incremental"}, LastFullRead: &last, StateAgeSeconds: &age},
		Quarantine: &Quarantine{
			PlanID: "0123456789abcdef", Since: since, Updated: now, Trigger: "schedule",
			Guard:   gsync.GuardTrip{Guard: gsync.GuardMaxDeletePercent, Limit: 30, Actual: 42.857, Message: "the plan deletes 15 of 35 managed tuples"},
			Summary: gsync.Summary{ToDelete: 15, ExistingTuples: 35},
			Changes: []GroupCount{{Object: "group:staff", Name: "staff", Delete: 15}},
		},
		Runs: []RunRecord{
			{ID: 3, Trigger: "event", Mode: ModeSlice, Start: now.Add(-time.Minute), DurationSeconds: 0.2, Result: metrics.ResultOK,
				Summary: &gsync.Summary{}, Applied: &Applied{}, Slice: &gsync.Slice{Users: []string{"u01"}}, Changes: []GroupCount{}},
			{ID: 2, Trigger: "schedule", Mode: ModeFull, Start: since, DurationSeconds: 1.2, Result: metrics.ResultGuard,
				Summary: &gsync.Summary{ToDelete: 15, ExistingTuples: 35}, Applied: &Applied{},
				Guard:   &gsync.GuardTrip{Guard: gsync.GuardMaxDeletePercent, Limit: 30, Actual: 42.857},
				Changes: []GroupCount{{Object: "group:staff", Name: "staff", Delete: 15}}},
			{ID: 1, Trigger: "start", Mode: ModeFull, Start: last, DurationSeconds: 2, Result: metrics.ResultOK,
				Summary: &gsync.Summary{ToAdd: 35}, Applied: &Applied{Added: 35},
				Changes: []GroupCount{{Object: "group:staff", Name: "staff", Add: 20}, {Object: "group:eng", Name: "eng", Add: 10},
					{Object: "folder:handbook", Relation: "viewer", Name: "ops", Add: 5}}},
		},
		Events: []EventRecord{
			{Time: now.Add(-time.Minute), Origin: "generic", Kind: EventSlice, Key: "user:u01", Outcome: EventQueued},
			{Time: now.Add(-time.Minute), Origin: "generic", Kind: EventSlice, Outcome: EventRefused, Reason: "unknown kind team"},
		},
	}
}

func TestStatusPageShowsTheStatus(t *testing.T) {
	st := typicalStatus()
	header, body := renderPage(t, st, "daemon.example:8080")
	if ct := header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if csp := header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no X-Content-Type-Options: nosniff")
	}
	shown := pageMarkup(t, body)

	// section returns the markup of one <section id=...>.
	section := func(id string) string {
		t.Helper()
		start := strings.Index(body, `<section id="`+id+`">`)
		if start < 0 {
			t.Fatalf("no section %q:\n%s", id, body)
		}
		end := strings.Index(body[start:], "</section>")
		return body[start : start+end]
	}
	contains := func(where, s string, wants ...string) {
		t.Helper()
		for _, want := range wants {
			if !strings.Contains(s, want) {
				t.Errorf("%s does not have %q:\n%s", where, want, s)
			}
		}
	}
	// In this order.
	last := -1
	for _, id := range []string{"quarantine", "schedule", "runs", "plans", "events"} {
		i := strings.Index(body, `<section id="`+id+`">`)
		if i < last {
			t.Errorf("section %q out of order", id)
		}
		last = i
	}

	contains("the title", body, "<title>groupsync status — quarantined</title>")
	contains("the heading", body, `Instance <strong>prod</strong> · schedule <code>@every 15m</code> · page generated 2025-03-04 05:06:07 UTC · <a href="?format=json">JSON</a>`)
	contains("the quarantine box", section("quarantine"),
		`<div class="box quarantine">`, "Quarantined plan awaiting approval",
		"Guard <strong>max_delete_percent</strong> stopped a run (trigger schedule): limit 30.0%, the plan 42.9%. Nothing was written.",
		"<dt>Plan id</dt><dd><code>0123456789abcdef</code></dd>",
		`<span class="add">+0</span> <span class="del">−15</span> of 35 managed tuples`,
		"<dt>First tripped</dt><dd>2025-03-04 05:02:47 UTC (3m20s ago)</dd>",
		`<tr><td><code>group:staff</code></td><td>staff</td><td class="n add">+0</td><td class="n del">−15</td></tr>`,
		"<pre>groupsync approve --daemon http://daemon.example:8080 --token-file TRIGGER_TOKEN_FILE --plan-id 0123456789abcdef</pre>",
		`curl -H "Authorization: Bearer $TOKEN" http://daemon.example:8080/quarantine/plan -o plan.json`,
		"This daemon does not take approvals")
	contains("the schedule", section("schedule"),
		"<dt>Next run</dt><dd>2025-03-04 05:06:49 UTC (in 42s)</dd>", "<dt>Running now</dt><dd>no</dd>",
		"<dt>Last successful full run</dt><dd>2025-03-04 04:56:07 UTC (10m0s ago)</dd>",
		"<dt>Source's last read</dt><dd>incremental</dd>", "<dt>Incremental state age</dt><dd>10m0s</dd>",
		"<dt>Events waiting</dt><dd>2</dd>")

	runs := section("runs")
	if n := strings.Count(runs, `<tr class="run">`); n != len(st.Runs) {
		t.Errorf("%d rows in the runs table, want %d", n, len(st.Runs))
	}
	contains("the runs table", runs,
		`<td><a href="#run-3">3</a></td>`, `<td class="result-guard">guard</td>`, "<td>max_delete_percent</td>",
		`<span class="add">+35</span> <span class="del">−0</span><br><span class="muted">wrote +35 −0</span>`,
		`<td class="n">1.2s</td>`)
	// What a run wrote is under its plan, except for the guard-stopped run,
	// which wrote nothing.
	if !strings.Contains(runs, "wrote +0 −0") || strings.Count(runs, "wrote +") != 2 {
		t.Errorf("a guard-stopped run shows what it wrote, or another run does not:\n%s", runs)
	}

	plans := section("plans")
	for _, r := range st.Runs {
		contains("the plans", plans, `<h3 id="run-`+strconv.FormatInt(r.ID, 10)+`">Run `+strconv.FormatInt(r.ID, 10)+" · "+r.Trigger)
	}
	contains("the plans", plans, `<p class="muted">Covered user <code>u01</code> </p>`, `<p class="muted">No changes.</p>`,
		`<code>folder:handbook#viewer</code>`)
	contains("the events", section("events"), "<td><code>user:u01</code></td><td>queued</td>", "<td>refused: unknown kind team</td>")
	if strings.Contains(shown, "No plan is quarantined") || strings.Contains(shown, "No run has finished yet") {
		t.Error("the page says there is nothing where there is something")
	}

	// The same status, the same page.
	if _, again := renderPage(t, st, "daemon.example:8080"); again != body {
		t.Error("two renderings of one status differ")
	}
}

func TestStatusPageOfANewDaemon(t *testing.T) {
	st := Status{FormatVersion: StatusFormatVersion, Generated: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC), Schedule: "@hourly", CanApprove: true,
		Runs: []RunRecord{}, Events: []EventRecord{}}
	_, body := renderPage(t, st, "localhost:8080")
	shown := pageMarkup(t, body)
	for _, want := range []string{"<title>groupsync status</title>", `<div class="box ok"><h2>No plan is quarantined</h2>`,
		"<dt>Next run</dt><dd>not scheduled yet</dd>", "<dt>Last successful full run</dt><dd>none yet</dd>",
		"<dt>Source's last read</dt><dd>none yet</dd>", "no incremental read since the last full read",
		"No webhook or notification has come in."} {
		if !strings.Contains(body, want) {
			t.Errorf("the page does not have %q:\n%s", want, body)
		}
	}
	if n := strings.Count(shown, "No run has finished yet."); n != 2 {
		t.Errorf("%d times 'No run has finished yet.', want 2 (runs and plans)", n)
	}
	if strings.Contains(body, "Instance") || strings.Contains(body, "approve --daemon") {
		t.Errorf("the page shows what is not there:\n%s", body)
	}
}
