package authentik

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/groupsync/groupsync/internal/retry"
)

// APIError is an answer authentik (or a proxy in front of it) gave that is
// not a success and not worth retrying, or a request that kept failing.
type APIError struct {
	Method, Path string
	Status       int    // 0 for a transport error
	Detail       string // authentik's {"detail": ...}, or the start of the body
	Attempts     int
	Err          error // last transport error
	Hint         string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "authentik %s %s: ", e.Method, e.Path)
	switch {
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	default:
		fmt.Fprintf(&b, "HTTP %d", e.Status)
		if e.Detail != "" {
			b.WriteString(": " + e.Detail)
		}
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (gave up after %d attempts; source.authentik.max_retries, max_retry_wait)", e.Attempts)
	}
	if e.Hint != "" {
		b.WriteString(" (" + e.Hint + ")")
	}
	return b.String()
}

func (e *APIError) Unwrap() error { return e.Err }

// get sends GET base+path?query and decodes the JSON answer into out. It
// retries (retry.Policy.Do) 429, 5xx but 501 (retry.Status) and transport
// errors, with Retry-After or exponential backoff with jitter, up to
// max_retries retries and max_retry_wait of waiting. Each attempt reads the
// whole body, so a body cut off by a dropped connection is retried too.
func (s *Source) get(ctx context.Context, path string, query url.Values, out any) error {
	u := s.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	n := 0
	o, err := s.policy().Do(ctx, retry.Hooks{Retrying: s.retrying}, func(ctx context.Context) retry.Result {
		n++
		status, header, body, err := s.attempt(ctx, u)
		s.stats.Requests.Add(1)
		switch {
		case err != nil:
			return retry.Result{Err: &APIError{Method: "GET", Path: path, Err: err, Attempts: n}, Retry: true, Header: header}
		case status != http.StatusOK:
			return retry.Result{Err: s.apiError(path, status, header, body, n), Retry: retry.Status(status), Status: status, Header: header}
		}
		if ct, _, _ := mime.ParseMediaType(header.Get("Content-Type")); ct != "application/json" {
			return retry.Result{Err: &APIError{Method: "GET", Path: path, Status: status, Detail: "answered " + ct + ", not JSON",
				Hint: "is source.authentik.url authentik's base URL, without /api/v3, and not a login page in front of it?"}}
		}
		if err := json.Unmarshal(body, out); err != nil {
			return retry.Result{Err: &APIError{Method: "GET", Path: path, Status: status, Detail: "malformed JSON: " + err.Error()}}
		}
		return retry.Result{}
	})
	s.stats.WaitedNanos.Add(int64(o.Waited))
	return err // the last attempt's *APIError, or ctx's error
}

// policy is the retry policy of one request: max_retries retries, waiting
// at most max_retry_wait in all.
func (s *Source) policy() retry.Policy {
	p := retry.Policy{MaxRetries: s.cfg.MaxRetries, MinWait: s.minWait, Budget: time.Duration(s.cfg.MaxRetryWait)}
	if p.Budget <= 0 {
		// No time to wait: config.Validate refuses this, a config built
		// in code may not. (A zero Budget would mean no limit.)
		p.MaxRetries = 0
	}
	return p
}

// retrying counts a retry about to be made.
func (s *Source) retrying(r retry.Result, _ time.Duration) {
	s.stats.Retries.Add(1)
	if r.Status == http.StatusTooManyRequests {
		s.stats.Throttled.Add(1)
	}
}

// attempt sends one request with the per-attempt timeout and reads the
// whole body.
func (s *Source) attempt(ctx context.Context, u string) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.RequestTimeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.cfg.Token.Reveal())
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "groupsync")
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return 0, resp.Header, nil, fmt.Errorf("read the answer's body: %w", err)
	}
	return resp.StatusCode, resp.Header, body, nil
}

func (s *Source) apiError(path string, status int, header http.Header, body []byte, attempts int) *APIError {
	e := &APIError{Method: "GET", Path: path, Status: status, Attempts: attempts}
	var d struct {
		Detail any `json:"detail"`
	}
	if ct, _, _ := mime.ParseMediaType(header.Get("Content-Type")); ct == "application/json" && json.Unmarshal(body, &d) == nil && d.Detail != nil {
		e.Detail = fmt.Sprint(d.Detail)
	} else {
		e.Detail = snippet(body)
	}
	switch {
	case status >= 300 && status < 400:
		e.Hint = fmt.Sprintf("authentik redirected to %q; set source.authentik.url to the address it redirects to", header.Get("Location"))
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		e.Hint = "authentik refused the token: check source.authentik.token (an API token, intent API, not expired, of an active user)"
	case status == http.StatusNotFound:
		e.Hint = "is source.authentik.url authentik's base URL (without /api/v3)?"
	}
	return e
}

// snippet is the first line of a non-JSON body (an HTML error page), short.
func snippet(b []byte) string {
	b = bytes.TrimSpace(b)
	if i := bytes.Index(b, []byte("<title>")); i >= 0 {
		if j := bytes.Index(b[i:], []byte("</title>")); j > 0 {
			return string(b[i+7 : i+j])
		}
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	if len(b) > 120 {
		b = append(b[:120:120], "..."...)
	}
	return string(b)
}
