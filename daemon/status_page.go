package daemon

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/groupsync/groupsync/metrics"
	gsync "github.com/groupsync/groupsync/sync"
)

// The status page is server-rendered from the Status document: inline CSS,
// no script, no external URL, so that it works in an air-gapped cluster
// and behind kubectl port-forward.
//
// It is written by plain Go, not html/template: executing a template makes
// text/template's field lookup (reflect.Value.MethodByName) reachable, and
// then the linker keeps every exported method of every type stored in an
// interface anywhere in the binary — with the Graph SDK linked, 182 MB
// instead of 63 MB, and ~20 MB more of it resident in every run
// (scripts/check-binary.sh fails the build if such a call comes back). So
// the escaping html/template would do is done here by hand: markup comes
// only from string constants in this file (pageWriter.raw, and the format
// of pageWriter.f), and every value from the Status goes in as one of f's
// values, which HTML-escapes it; all attribute values are double-quoted,
// and the values written into them are escaped the same way (quotes
// included).

// renderStatusPage writes st as the HTML page. r gives the daemon's URL as
// the browser reached it, for the commands the page shows.
func renderStatusPage(w http.ResponseWriter, r *http.Request, st Status) {
	p := &pageWriter{now: st.Generated, baseURL: baseURL(r)}
	p.page(st)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// Nothing on the page loads from anywhere, and nothing may.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = io.WriteString(w, p.b.String())
}

// baseURL is the daemon's URL as the request reached it: the approve
// command the page shows points there.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// pageWriter accumulates the page. Its methods are the only way anything
// is written, so the rule is easy to check: markup (raw's argument, f's
// format) is a string constant of this file, and every value is escaped.
type pageWriter struct {
	b       strings.Builder
	now     time.Time // the page's "now", for "3m ago": Status.Generated
	baseURL string    // from the request's Host header: data like any other
}

// raw writes the page's own markup. Only string constants of this file go
// here, never a value from the Status or the request.
func (p *pageWriter) raw(markup string) { p.b.WriteString(markup) }

// f writes markup with values in it, as fmt.Fprintf would, but escaped:
//
//   - markup is only ever a string constant of this file, never a value
//     from the Status or the request; %s and %d mark where the values go
//     (%% is a percent sign);
//   - the values are always escaped: a string (or a string type, or
//     anything else, as fmt.Sprint prints it) is HTML-escaped (<, >, &, '
//     and "), so it is safe both as element text and inside a
//     double-quoted attribute value; an int or int64 is written as its
//     digits, which need no escaping.
//
// go vet checks each call's verbs against its values, as for Printf.
func (p *pageWriter) f(markup string, values ...any) {
	// values is the call's own slice (every call passes its values one by
	// one), so escaping them in place is safe.
	for i, v := range values {
		switch v := v.(type) {
		case string:
			values[i] = html.EscapeString(v)
		case int, int64:
			// Digits and a minus sign: nothing to escape.
		default:
			values[i] = html.EscapeString(fmt.Sprint(v))
		}
	}
	fmt.Fprintf(&p.b, markup, values...)
}

// whenAgo shows a time with how long ago it was: "… UTC (3m20s ago)". A
// value, for f to escape.
func (p *pageWriter) whenAgo(t time.Time) string {
	return pageTime(t) + " (" + pageAgo(p.now, t) + ")"
}

// page writes the whole document: head, then one section per part of st.
func (p *pageWriter) page(st Status) {
	p.raw("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
	p.raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
	p.raw("<title>groupsync status")
	if st.Quarantine != nil {
		p.raw(" — quarantined")
	}
	p.raw("</title>\n")
	p.raw(statusPageStyle)
	p.raw("</head>\n<body>\n<main>\n<h1>groupsync daemon</h1>\n")
	p.heading(st)
	p.quarantineSection(st.Quarantine, st.CanApprove)
	p.scheduleSection(st)
	p.runsSection(st.Runs)
	p.plansSection(st.Runs)
	p.eventsSection(st.Events)
	p.raw("</main>\n</body>\n</html>\n")
}

// statusPageStyle is the page's only styling: inline, since the page may
// load nothing (Content-Security-Policy default-src 'none').
const statusPageStyle = `<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2329; background: #f6f7f9; margin: 0; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5rem; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
h2 { font-size: 1.1rem; margin: 1.75rem 0 .5rem; }
h3 { font-size: 1rem; margin: 1.25rem 0 .4rem; }
.meta { color: #5b6570; margin: 0 0 1rem; }
.box { border-radius: 6px; padding: .9rem 1.1rem; margin: 1rem 0; border: 1px solid; }
.box h2 { margin-top: 0; }
.quarantine { background: #fff4e5; border-color: #e8a33d; }
.ok { background: #eaf6ec; border-color: #7bbf86; }
.stale { color: #8a2a0b; font-weight: 600; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .3rem .55rem; border-bottom: 1px solid #e3e6ea; vertical-align: top; }
th { background: #eef0f3; font-weight: 600; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.add { color: #176f2c; } .del { color: #b3261e; }
.result-ok { color: #176f2c; font-weight: 600; } .result-guard { color: #a15c00; font-weight: 600; }
.result-error, .result-busy { color: #b3261e; font-weight: 600; }
pre { background: #1d2329; color: #f6f7f9; padding: .6rem .8rem; border-radius: 4px; overflow-x: auto; white-space: pre-wrap; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: .5rem 0; }
dt { color: #5b6570; } dd { margin: 0; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 90%; }
.muted { color: #5b6570; }
.nowrap { white-space: nowrap; }
</style>
`

// heading writes the line under the title: instance, schedule, when the
// page was generated, and the link to the same data as JSON.
func (p *pageWriter) heading(st Status) {
	p.raw(`<p class="meta">`)
	if st.Instance != "" {
		p.f("Instance <strong>%s</strong> · ", st.Instance)
	}
	p.f("schedule <code>%s</code> · page generated %s", st.Schedule, pageTime(st.Generated))
	p.raw(` · <a href="?format=json">JSON</a></p>` + "\n\n")
}

// quarantineSection writes the box at the top: the quarantined plan with
// the command that approves it, or a green box saying there is none.
func (p *pageWriter) quarantineSection(q *Quarantine, canApprove bool) {
	p.raw("<section id=\"quarantine\">\n")
	if q == nil {
		p.raw(`<div class="box ok"><h2>No plan is quarantined</h2><p>No guard has stopped a run since the last one that passed.</p></div>` + "\n")
		p.raw("</section>\n\n")
		return
	}
	g := q.Guard
	p.raw("<div class=\"box quarantine\">\n<h2>Quarantined plan awaiting approval</h2>\n")
	p.f("<p>Guard <strong>%s</strong> stopped a run (trigger %s): limit %s, the plan %s. Nothing was written.</p>\n",
		g.Guard, q.Trigger, pageLimit(g.Guard, g.Limit), pageLimit(g.Guard, g.Actual))
	p.f("<p class=\"muted\">%s</p>\n", g.Message)

	p.raw("<dl>\n")
	p.f("<dt>Plan id</dt><dd><code>%s</code></dd>\n", q.PlanID)
	p.raw("<dt>Changes</dt><dd>")
	p.additionsDeletions(q.Summary.ToAdd, q.Summary.ToDelete)
	p.f(" of %d managed tuples</dd>\n", q.Summary.ExistingTuples)
	p.f("<dt>Objects changed</dt><dd>%d", len(q.Changes))
	if q.ChangesOmitted != 0 {
		p.f(" (and %d more not listed)", q.ChangesOmitted)
	}
	p.raw("</dd>\n")
	p.f("<dt>First tripped</dt><dd>%s</dd>\n", p.whenAgo(q.Since))
	p.f("<dt>Last tripped</dt><dd>%s</dd>\n", p.whenAgo(q.Updated))
	if q.Slice != nil {
		p.raw("<dt>Event run of</dt><dd>")
		p.sliceNames(q.Slice)
		p.raw("</dd>\n")
	}
	p.raw("</dl>\n")
	if q.Stale != "" {
		p.f("<p class=\"stale\">An approval found this plan stale and wrote nothing: %s. The next run replaces or clears it.</p>\n", q.Stale)
	}
	p.changesTable(q.Changes)

	p.raw("<p>Review the plan (its tuples), then approve exactly it — it is applied only if the source and OpenFGA still give these changes:</p>\n")
	p.f("<pre>groupsync approve --daemon %s --token-file TRIGGER_TOKEN_FILE --plan-id %s</pre>\n", p.baseURL, q.PlanID)
	// $TOKEN and the quotes around the header are the shell's: markup.
	p.f(`<p>Or offline: <code>curl -H "Authorization: Bearer $TOKEN" %s/quarantine/plan -o plan.json</code>, then <code>groupsync apply plan.json</code>.</p>`+"\n", p.baseURL)
	if !canApprove {
		p.raw(`<p class="muted">This daemon does not take approvals (daemon.trigger.enabled is off, or it runs with --dry-run).</p>` + "\n")
	}
	p.raw(`<p class="muted">The quarantine clears by itself once a run plans without tripping a guard.</p>` + "\n")
	p.raw("</div>\n</section>\n\n")
}

// scheduleSection writes when the next run is, what runs now, and the
// source's incremental state. What it says when there is nothing to show
// ("none yet") is plain text, written as a value like the rest.
func (p *pageWriter) scheduleSection(st Status) {
	next := "not scheduled yet"
	if st.NextRun != nil {
		next = p.whenAgo(*st.NextRun)
	}
	running := "no"
	if r := st.Running; r != nil {
		running = "a " + r.Trigger + " run, since " + pageTime(r.Since)
	}
	lastSuccess := "none yet"
	if st.LastSuccess != nil {
		lastSuccess = p.whenAgo(*st.LastSuccess)
	}
	lastRead := "none yet"
	if lr := st.Source.LastRead; lr != nil {
		lastRead = lr.Mode
		if lr.Reason != "" {
			lastRead += " (" + lr.Reason + ")"
		}
	}
	lastFullRead := "none yet"
	if st.Source.LastFullRead != nil {
		lastFullRead = pageTime(*st.Source.LastFullRead)
	}
	stateAge := "no incremental read since the last full read"
	if st.Source.StateAgeSeconds != nil {
		stateAge = pageSeconds(*st.Source.StateAgeSeconds)
	}

	p.raw("<section id=\"schedule\">\n<h2>Schedule and state</h2>\n<dl>\n")
	p.f("<dt>Next run</dt><dd>%s</dd>\n", next)
	p.f("<dt>Running now</dt><dd>%s</dd>\n", running)
	p.f("<dt>Last successful full run</dt><dd>%s</dd>\n", lastSuccess)
	p.f("<dt>Source's last read</dt><dd>%s</dd>\n", lastRead)
	p.f("<dt>Last full read</dt><dd>%s</dd>\n", lastFullRead)
	p.f("<dt>Incremental state age</dt><dd>%s</dd>\n", stateAge)
	p.f("<dt>Events waiting</dt><dd>%d</dd>\n", st.QueueDepth)
	p.raw("</dl>\n</section>\n\n")
}

// runsSection writes the table of recent runs, one row each, linking to
// the run's plan below (#run-N).
func (p *pageWriter) runsSection(runs []RunRecord) {
	p.raw("<section id=\"runs\">\n<h2>Recent runs</h2>\n")
	if len(runs) == 0 {
		p.raw(`<p class="muted">No run has finished yet.</p>` + "\n</section>\n\n")
		return
	}
	p.raw("<table>\n<thead><tr><th>#</th><th>Started</th><th>Trigger</th><th>Mode</th><th>Took</th><th>Result</th><th>Plan</th><th>Guard</th><th>Error</th></tr></thead>\n<tbody>\n")
	for _, r := range runs {
		p.runRow(r)
	}
	p.raw("</tbody>\n</table>\n</section>\n\n")
}

// runRow writes one run of the runs table.
func (p *pageWriter) runRow(r RunRecord) {
	p.raw("<tr class=\"run\">\n")
	p.f("<td><a href=\"#run-%d\">%d</a></td>\n", r.ID, r.ID)
	p.f("<td class=\"nowrap\">%s</td>\n", pageTime(r.Start))
	p.f("<td>%s</td>\n", r.Trigger)
	p.f("<td>%s", r.Mode)
	if tr := r.TargetRead; tr != nil {
		p.f(`<br><span class="muted" title="%s">OpenFGA %s: %d groups read, %d known</span>`, tr.Reason, tr.Mode, tr.GroupsRead, tr.GroupsKnown)
	}
	p.raw("</td>\n")
	p.f("<td class=\"n\">%s</td>\n", pageSeconds(r.DurationSeconds))
	// The result names a CSS class (result-ok, result-guard, …): escaped
	// like any value, inside the double-quoted attribute.
	p.f("<td class=\"result-%s\">%s</td>\n", r.Result, r.Result)
	p.raw("<td class=\"nowrap\">")
	if s := r.Summary; s != nil {
		p.additionsDeletions(s.ToAdd, s.ToDelete)
		if s.Withheld != 0 {
			p.f(" · %d withheld", s.Withheld)
		}
	} else {
		p.raw("—")
	}
	// A guard-stopped run wrote nothing: no "wrote +0 −0" under it.
	if a := r.Applied; a != nil && r.Result != metrics.ResultGuard {
		p.f(`<br><span class="muted">wrote +%d −%d`, a.Added, a.Deleted)
		if a.Failed != 0 {
			p.f(", %d failed", a.Failed)
		}
		p.raw("</span>")
	}
	p.raw("</td>\n")
	guard := ""
	if r.Guard != nil {
		guard = r.Guard.Guard
	}
	p.f("<td>%s</td>\n", guard)
	p.f("<td>%s</td>\n", r.Error)
	p.raw("</tr>\n")
}

// plansSection writes each recent run's plan, per object, under an
// anchor the runs table links to (id="run-N").
func (p *pageWriter) plansSection(runs []RunRecord) {
	p.raw("<section id=\"plans\">\n<h2>Plans of recent runs</h2>\n")
	if len(runs) == 0 {
		p.raw(`<p class="muted">No run has finished yet.</p>` + "\n")
	}
	for _, r := range runs {
		p.runPlan(r)
	}
	p.raw("</section>\n\n")
}

// runPlan writes one run's heading and its plan's changes.
func (p *pageWriter) runPlan(r RunRecord) {
	p.f(`<h3 id="run-%d">Run %d · %s · %s`, r.ID, r.ID, r.Trigger, pageTime(r.Start))
	if r.PlanID != "" {
		p.f(" · plan <code>%s</code>", r.PlanID)
	}
	p.raw("</h3>\n")
	if r.Slice != nil {
		p.raw(`<p class="muted">Covered `)
		p.sliceNames(r.Slice)
		p.raw("</p>\n")
	}
	switch {
	case len(r.Changes) > 0:
		p.changesTable(r.Changes)
		if r.ChangesOmitted != 0 {
			p.f(`<p class="muted">and %d more objects.</p>`+"\n", r.ChangesOmitted)
		}
	case r.Summary != nil:
		p.raw(`<p class="muted">No changes.</p>` + "\n")
	default:
		p.raw(`<p class="muted">The run did not get as far as a plan.</p>` + "\n")
	}
}

// eventsSection writes the table of recent event requests.
func (p *pageWriter) eventsSection(events []EventRecord) {
	p.raw("<section id=\"events\">\n<h2>Recent events</h2>\n")
	if len(events) == 0 {
		p.raw(`<p class="muted">No webhook or notification has come in.</p>` + "\n</section>\n")
		return
	}
	p.raw("<table>\n<thead><tr><th>Time</th><th>Origin</th><th>Kind</th><th>Key</th><th>Outcome</th></tr></thead>\n<tbody>\n")
	for _, e := range events {
		outcome := e.Outcome
		if e.Reason != "" {
			outcome += ": " + e.Reason
		}
		p.f("<tr><td>%s</td><td>%s</td><td>%s</td><td><code>%s</code></td><td>%s</td></tr>\n",
			pageTime(e.Time), e.Origin, e.Kind, e.Key, outcome)
	}
	p.raw("</tbody>\n</table>\n</section>\n")
}

// changesTable writes a plan's changes per OpenFGA object (and relation,
// for a grant): counts only, never users.
func (p *pageWriter) changesTable(changes []GroupCount) {
	p.raw("<table>\n<thead><tr><th>Object</th><th>Name</th><th>Add</th><th>Delete</th></tr></thead>\n<tbody>\n")
	for _, c := range changes {
		object := c.Object
		if c.Relation != "" {
			object += "#" + c.Relation
		}
		p.f(`<tr><td><code>%s</code></td><td>%s</td><td class="n add">+%d</td><td class="n del">−%d</td></tr>`+"\n",
			object, c.Name, c.Add, c.Delete)
	}
	p.raw("</tbody>\n</table>\n")
}

// additionsDeletions writes "+3 −1", green and red.
func (p *pageWriter) additionsDeletions(add, del int) {
	p.f(`<span class="add">+%d</span> <span class="del">−%d</span>`, add, del)
}

// sliceNames writes the users and groups an event run covered, each in
// <code> and followed by a space: "user <code>u1</code> group <code>g</code> ".
func (p *pageWriter) sliceNames(s *gsync.Slice) {
	for _, u := range s.Users {
		p.f("user <code>%s</code> ", u)
	}
	for _, g := range s.Groups {
		p.f("group <code>%s</code> ", g)
	}
}

// pageTime shows a time in UTC to the second, the same on every browser.
func pageTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// pageAgo says how far t is from now: "3m20s ago", "in 42s".
func pageAgo(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		return "in " + (-d).String()
	}
	return d.String() + " ago"
}

// pageSeconds shows a duration in seconds readably.
func pageSeconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(100 * time.Millisecond).String()
	}
}

// pageLimit shows a guard's limit or actual value: a share for the
// percentage guards, a count for the others.
func pageLimit(guard string, v float64) string {
	if strings.HasSuffix(guard, "_percent") {
		return fmt.Sprintf("%.1f%%", v)
	}
	return fmt.Sprintf("%.0f", v)
}
