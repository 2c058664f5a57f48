package openfga

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/internal/retry"
)

// TestBackoff: the sink's retry policy waits RetryMinWait·2^attempt plus up
// to as much again before retry attempt+1, capped at 30s plus jitter, and
// honours Retry-After up to two minutes.
func TestBackoff(t *testing.T) {
	p := policy(config.OpenFGA{RetryMinWait: config.Duration(100 * time.Millisecond)})
	for attempt, base := range []time.Duration{100, 200, 400, 800} {
		base *= time.Millisecond
		for range 50 {
			if d := p.Wait(attempt+1, nil); d < base || d >= 2*base {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v)", attempt, d, base, 2*base)
			}
		}
	}
	const maxBackoff = 30 * time.Second
	if d := p.Wait(41, nil); d < maxBackoff || d >= 2*maxBackoff {
		t.Errorf("backoff(40) = %v, want capped at %v plus jitter", d, maxBackoff)
	}
	if d := p.Wait(1, http.Header{"Retry-After": {"2"}}); d != 2*time.Second {
		t.Errorf("Retry-After 2: waited %v", d)
	}
	if d := p.Wait(1, http.Header{"Retry-After": {"86400"}}); d != maxRetryAfter {
		t.Errorf("Retry-After of a day: waited %v, want the cap %v", d, maxRetryAfter)
	}
	if p := policy(config.OpenFGA{MaxRetries: 4}); p.MaxRetries != 4 || p.Budget != 0 {
		t.Errorf("policy %+v", p)
	}
}

func TestRetryable(t *testing.T) {
	if retry, _ := retryable(errors.New("connection refused")); !retry {
		t.Error("a network error is not retried")
	}
	for code, want := range map[int]bool{400: false, 401: false, 403: false, 404: false, 409: false, 429: true, 500: true, 501: false, 502: true, 503: true} {
		if got := retry.Status(code); got != want {
			t.Errorf("retry.Status(%d) = %v", code, got)
		}
	}
}

func TestErrorBody(t *testing.T) {
	if c, m := errorBody([]byte(`{"code":"validation_error","message":"bad"}`), 400); c != "validation_error" || m != "bad" {
		t.Errorf("JSON body: %q %q", c, m)
	}
	if c, m := errorBody([]byte("<html>\n<body>Bad   Gateway</body></html>"), 502); c != "" || m != "<html> <body>Bad Gateway</body></html>" {
		t.Errorf("HTML body: %q %q", c, m)
	}
	if _, m := errorBody(nil, 503); m != "Service Unavailable" {
		t.Errorf("empty body: %q", m)
	}
}

func TestRedactURL(t *testing.T) {
	if got := redactURL("https://me:pw@fga.example:8443/base?token=x#f"); got != "https://fga.example:8443/base" {
		t.Errorf("redactURL = %q", got)
	}
}
