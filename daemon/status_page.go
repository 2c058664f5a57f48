package daemon

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
)

// The status page is server-rendered from the Status document with
// html/template: inline CSS, no script, no external URL, so that it works
// in an air-gapped cluster and behind kubectl port-forward.

//go:embed status_page.html
var statusPageSource string

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"when":    pageTime,
	"ago":     pageAgo,
	"seconds": pageSeconds,
	"limit":   pageLimit,
	"deref": func(f *float64) float64 {
		if f == nil {
			return 0
		}
		return *f
	},
	"derefTime": func(t *time.Time) time.Time {
		if t == nil {
			return time.Time{}
		}
		return *t
	},
}).Parse(statusPageSource))

// statusPageData is what the template reads.
type statusPageData struct {
	Status
	Now     time.Time
	BaseURL string // the daemon's URL as the browser reached it, for the commands shown
}

func (d *Daemon) renderStatusPage(w http.ResponseWriter, r *http.Request, st Status) {
	var buf bytes.Buffer
	data := statusPageData{Status: st, Now: st.Generated, BaseURL: baseURL(r)}
	if err := statusPage.Execute(&buf, data); err != nil {
		d.log.Error("status page did not render", zap.Error(err))
		http.Error(w, "the status page did not render; GET /status?format=json has the same data", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// Nothing on the page loads from anywhere, and nothing may.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(buf.Bytes())
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
