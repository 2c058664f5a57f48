package daemon

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/metrics"
)

// Handler serves:
//
//	GET  /metrics  Prometheus metrics (groupsync's, Go's, the process's)
//	GET  /healthz  200 while the process serves: a liveness probe
//	GET  /readyz   200 when the last successful run ended within
//	               daemon.ready_max_age, else 503; the body says why
//	POST /run      start a run now (daemon.trigger.enabled, bearer token):
//	               202 started, 409 a run is in progress, 503 stopping;
//	               ?wait=true answers 200 with the run's Outcome as JSON
//	               when it ends (500 when it did not succeed)
//	POST /sync/user/{key}, POST /sync/group/{id}, POST /webhooks/authentik
//	               queue an event (daemon.webhooks.enabled, bearer token);
//	               see webhooks.go
//	GET  /status   recent runs, the quarantined plan, the next run, recent
//	               events, as JSON or a page (daemon.status.enabled); see
//	               status.go
//	GET  /quarantine/plan, POST /quarantine/approve
//	               the quarantined plan, and its approval (bearer
//	               daemon.trigger.token); see quarantine.go and approve.go
//
// and the handlers of Options.Handlers and Handle.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", d.m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", d.serveReady)
	mux.HandleFunc("/run", d.serveRun)
	mux.HandleFunc("/sync/", d.serveSync)
	mux.HandleFunc("/webhooks/authentik", d.serveAuthentik)
	mux.HandleFunc("GET /status", d.serveStatus)
	mux.HandleFunc("/quarantine/plan", d.serveQuarantinePlan)
	mux.HandleFunc("/quarantine/approve", d.serveApprove)
	d.extraMu.Lock()
	defer d.extraMu.Unlock()
	for pattern, h := range d.extra {
		d.mount(mux, pattern, h)
	}
	return mux
}

// mount adds an extra handler; a pattern that conflicts with another is
// left out and logged rather than take the daemon down.
func (d *Daemon) mount(mux *http.ServeMux, pattern string, h http.Handler) {
	defer func() {
		if err := recover(); err != nil {
			d.log.Error("extra handler not mounted", zap.String("pattern", pattern), zap.Any("reason", err))
		}
	}()
	mux.Handle(pattern, h)
}

func (d *Daemon) serveReady(w http.ResponseWriter, _ *http.Request) {
	ready, detail := d.Readiness(time.Now())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	status, word := http.StatusOK, "ready"
	if !ready {
		status, word = http.StatusServiceUnavailable, "not ready"
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, "%s\n", word)
	for _, l := range detail {
		fmt.Fprintf(w, "  %s\n", l)
	}
}

// runAnswer is the body of POST /run.
type runAnswer struct {
	Started bool     `json:"started"`
	Reason  string   `json:"reason,omitempty"`
	Outcome *Outcome `json:"outcome,omitempty"`
}

func (d *Daemon) serveRun(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	g := gate{on: d.cfg.Daemon.Trigger.Enabled, off: "the run trigger is off (daemon.trigger.enabled)", method: http.MethodPost,
		checkToken: true, token: d.token, tokenField: "daemon.trigger.token", refused: "POST /run refused: missing or wrong bearer token"}
	d.mu.Unlock()
	if !d.allow(w, r, g) {
		return
	}
	run, started := d.start(TriggerHTTP)
	if !started {
		d.mu.Lock()
		stopping := d.stopping || d.runCtx == nil
		d.mu.Unlock()
		if stopping {
			writeJSON(w, http.StatusServiceUnavailable, runAnswer{Reason: "the daemon is not running or is stopping"})
			return
		}
		writeJSON(w, http.StatusConflict, runAnswer{Reason: "a run is in progress"})
		return
	}
	if wait, _ := strconv.ParseBool(r.URL.Query().Get("wait")); !wait {
		writeJSON(w, http.StatusAccepted, runAnswer{Started: true})
		return
	}
	select {
	case <-run.done:
	case <-r.Context().Done():
		return // the run goes on; the caller left
	}
	status := http.StatusOK
	if run.outcome.Result != metrics.ResultOK {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, runAnswer{Started: true, Outcome: &run.outcome})
}

// bearer reports whether r carries "Authorization: Bearer <token>", in
// constant time.
// gate is what an endpoint lets through: whether it is on (off: 404 with
// off's message), the method it takes ("" any) and, when checkToken, the
// bearer token it wants (tokenField names it in the 401; refused is the
// log line).
type gate struct {
	on         bool
	off        string
	method     string
	checkToken bool
	token      config.Secret
	tokenField string
	refused    string
}

// allow answers the request itself and returns false unless g lets it
// through.
func (d *Daemon) allow(w http.ResponseWriter, r *http.Request, g gate) bool {
	if !g.on {
		http.Error(w, g.off, http.StatusNotFound)
		return false
	}
	if g.method != "" && r.Method != g.method {
		w.Header().Set("Allow", g.method)
		http.Error(w, "use "+g.method, http.StatusMethodNotAllowed)
		return false
	}
	if g.checkToken && !bearer(r, g.token.Reveal()) {
		// The token, right or wrong, is never logged.
		d.log.Warn(g.refused, zap.String("path", r.URL.Path), zap.String("remote", r.RemoteAddr))
		w.Header().Set("WWW-Authenticate", `Bearer realm="groupsync"`)
		http.Error(w, "a valid bearer token is required ("+g.tokenField+")", http.StatusUnauthorized)
		return false
	}
	return true
}

func bearer(r *http.Request, token string) bool {
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) == 1
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
