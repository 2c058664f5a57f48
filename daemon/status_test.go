package daemon_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/groupsync/groupsync/daemon"
)

func TestStatusIsOffByDefault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, `{schedule: "@hourly", run_at_start: false, jitter: 0s}`, &runs{}, nil)
		defer h.stop()
		for _, c := range []struct{ method, path string }{
			{http.MethodGet, "/status"}, {http.MethodGet, "/quarantine/plan"}, {http.MethodPost, "/quarantine/approve?plan_id=0123"},
		} {
			if rec := get(t, h.d.Handler(), c.method, c.path, "Bearer "+token); rec.Code != http.StatusNotFound {
				t.Errorf("%s %s: %d, want 404 while off", c.method, c.path, rec.Code)
			}
		}
	})
}

func TestStatusBehindTheTriggerToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, `{schedule: "@hourly", run_at_start: false, jitter: 0s, trigger: {enabled: true, token: `+token+`}, status: {enabled: true, require_token: true}}`, &runs{}, nil)
		defer h.stop()
		for _, auth := range []string{"", "Bearer wrong-token-0123456789"} {
			if rec := get(t, h.d.Handler(), http.MethodGet, "/status", auth); rec.Code != http.StatusUnauthorized {
				t.Fatalf("GET /status with %q: %d", auth, rec.Code)
			}
		}
		rec := get(t, h.d.Handler(), http.MethodGet, "/status", "Bearer "+token)
		var st daemon.Status
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &st) != nil || st.FormatVersion != daemon.StatusFormatVersion ||
			st.Quarantine != nil || st.Runs == nil || st.Events == nil || st.CanApprove {
			t.Fatalf("GET /status: %d %s", rec.Code, rec.Body)
		}
		rec = get(t, h.d.Handler(), http.MethodGet, "/status?format=html", "Bearer "+token)
		body := rec.Body.String()
		if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") ||
			!strings.Contains(rec.Header().Get("Content-Security-Policy"), "default-src 'none'") ||
			!strings.Contains(body, "No plan is quarantined") || strings.Contains(body, token) ||
			strings.Contains(body, "<script") || strings.Contains(body, "<link") || strings.Contains(body, "src=") {
			t.Fatalf("the page: %d %v\n%s", rec.Code, rec.Header(), body)
		}
		// An approval with nothing quarantined, or with no id, is refused.
		if rec := get(t, h.d.Handler(), http.MethodPost, "/quarantine/approve?plan_id=0123456789abcdef", "Bearer "+token); rec.Code != http.StatusConflict {
			t.Fatalf("approve with nothing quarantined: %d %s", rec.Code, rec.Body)
		}
		if rec := get(t, h.d.Handler(), http.MethodPost, "/quarantine/approve", "Bearer "+token); rec.Code != http.StatusBadRequest {
			t.Fatalf("approve without an id: %d %s", rec.Code, rec.Body)
		}
		if rec := get(t, h.d.Handler(), http.MethodGet, "/quarantine/plan", "Bearer "+token); rec.Code != http.StatusNotFound {
			t.Fatalf("GET /quarantine/plan with nothing quarantined: %d", rec.Code)
		}
	})
}
