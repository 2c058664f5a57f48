package openfga

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/groupsync/groupsync/config"
)

func TestBackoff(t *testing.T) {
	c := &conn{cfg: config.OpenFGA{RetryMinWait: config.Duration(100 * time.Millisecond)}}
	for attempt, base := range []time.Duration{100, 200, 400, 800} {
		base *= time.Millisecond
		for range 50 {
			if d := c.backoff(attempt, nil); d < base || d >= 2*base {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v)", attempt, d, base, 2*base)
			}
		}
	}
	if d := c.backoff(40, nil); d < maxBackoff || d >= 2*maxBackoff {
		t.Errorf("backoff(40) = %v, want capped at %v plus jitter", d, maxBackoff)
	}
	if d := c.backoff(0, http.Header{"Retry-After": {"2"}}); d != 2*time.Second {
		t.Errorf("Retry-After 2: waited %v", d)
	}
	if d := c.backoff(0, http.Header{"Retry-After": {"86400"}}); d != maxRetryAfter {
		t.Errorf("Retry-After of a day: waited %v, want the cap %v", d, maxRetryAfter)
	}
}

func TestRetryable(t *testing.T) {
	if retry, _ := retryable(errors.New("connection refused")); !retry {
		t.Error("a network error is not retried")
	}
	for code, want := range map[int]bool{400: false, 401: false, 403: false, 404: false, 409: false, 429: true, 500: true, 501: false, 502: true, 503: true} {
		if got := retryableStatus(code); got != want {
			t.Errorf("retryableStatus(%d) = %v", code, got)
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
