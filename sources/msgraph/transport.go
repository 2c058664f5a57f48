package msgraph

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/groupsync/groupsync/internal/retry"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// retryTransport is the bottom of the Graph client's pipeline. It replaces
// kiota's retry handler, which gives up after 3 tries, ignores dropped
// connections and sleeps without watching the context. It retries every
// request groupsync sends (all reads, and $batch of reads) on 429, 5xx and
// transport errors, honouring Retry-After, with exponential backoff and
// jitter otherwise, up to maxRetries retries and maxWait of waiting. It
// reads each body whole, so a connection dropped mid-body is retried too.
type retryTransport struct {
	base       http.RoundTripper
	maxRetries int
	maxWait    time.Duration
	minWait    time.Duration
	timeout    time.Duration // per attempt
	stats      *Stats
}

// GiveUpError is returned when a request still fails after the retry caps.
type GiveUpError struct {
	Method, Path string
	Attempts     int
	Waited       time.Duration
	Status       int    // last HTTP status; 0 for a transport error
	Code         string // Graph's error code, when there was a body
	Message      string
	Err          error // last transport error
}

func (e *GiveUpError) Error() string {
	last := fmt.Sprintf("HTTP %d", e.Status)
	if e.Code != "" {
		last += " " + e.Code
	}
	if e.Message != "" {
		last += ": " + e.Message
	}
	if e.Err != nil {
		last = e.Err.Error()
	}
	return fmt.Sprintf("Graph %s %s: gave up after %d attempts and %s of waiting (source.msgraph.max_retries, max_retry_wait); last: %s",
		e.Method, e.Path, e.Attempts, e.Waited.Round(time.Millisecond), last)
}

func (e *GiveUpError) Unwrap() error { return e.Err }

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	var waited time.Duration
	for attempt := 1; ; attempt++ {
		resp, err := t.attempt(req, body)
		if err == nil && !retryableStatus(resp.StatusCode) {
			return resp, nil
		}
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, ctxErr
		}
		wait := retry.Backoff(t.minWait, attempt)
		if resp != nil {
			if d, ok := retry.After(resp.Header, time.Now()); ok {
				wait = d
			}
		}
		if attempt > t.maxRetries || waited+wait > t.maxWait {
			g := &GiveUpError{Method: req.Method, Path: req.URL.Path, Attempts: attempt, Waited: waited, Err: err}
			if resp != nil {
				g.Status = resp.StatusCode
				g.Code, g.Message = graphError(resp)
			}
			return nil, g
		}
		t.stats.retry(resp)
		if err := retry.Sleep(req.Context(), wait); err != nil {
			return nil, err
		}
		waited += wait
		t.stats.addWait(wait)
	}
}

// attempt sends one try and reads the whole body, so that a body cut off
// by a dropped connection counts as a failed try.
func (t *retryTransport) attempt(req *http.Request, body []byte) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(req.Context(), t.timeout)
	defer cancel()
	r := req.Clone(ctx)
	if body != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	t.stats.Requests.Add(1)
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read response body: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	resp.ContentLength = int64(len(data))
	return resp, nil
}

func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || (code >= 500 && code != http.StatusNotImplemented)
}

// graphError reads Graph's {"error":{"code","message"}} from a buffered body.
func graphError(resp *http.Response) (code, message string) {
	data, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(data))
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil {
		return e.Error.Code, e.Error.Message
	}
	return "", ""
}

// Stats counts what a source sent; safe for concurrent use.
type Stats struct {
	Requests    atomic.Int64 // HTTP requests, retries included
	BatchItems  atomic.Int64 // requests carried inside $batch
	Retries     atomic.Int64 // retried HTTP requests and batch items
	Throttled   atomic.Int64 // 429 answers (HTTP or batch item)
	WaitedNanos atomic.Int64 // time spent waiting to retry
}

func (s *Stats) retry(resp *http.Response) {
	s.Retries.Add(1)
	if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
		s.Throttled.Add(1)
	}
}

func (s *Stats) addWait(d time.Duration) { s.WaitedNanos.Add(int64(d)) }
