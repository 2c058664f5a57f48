package msgraph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/groupsync/groupsync/internal/retry"
)

// retryTransport is the bottom of the Graph client's pipeline. It replaces
// kiota's retry handler, which gives up after 3 tries, ignores dropped
// connections and sleeps without watching the context. Every request
// groupsync sends is a read (or a $batch of reads), so all of them may be
// retried. It reads each body whole, so a connection dropped mid-body is
// retried too.
type retryTransport struct {
	base    http.RoundTripper
	policy  retry.Policy
	timeout time.Duration // per attempt
	stats   *Stats
}

// errRetryable marks an answer that retry.Status says is worth another
// attempt; the answer itself stays in RoundTrip for GiveUpError.
var errRetryable = errors.New("retryable answer")

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
	var (
		resp    *http.Response // the last answer
		lastErr error          // the last transport error
		// Waits are counted once slept, as Policy.Do counts them: the
		// one before an attempt is added when that attempt starts.
		sleeping, counted time.Duration
	)
	hooks := retry.Hooks{Retrying: func(r retry.Result, wait time.Duration) {
		t.stats.retry(r.Status)
		sleeping = wait
	}}
	ctx := req.Context()
	out, err := t.policy.Do(ctx, hooks, func(context.Context) retry.Result {
		if sleeping > 0 {
			t.stats.addWait(sleeping)
			counted += sleeping
			sleeping = 0
		}
		resp, lastErr = t.attempt(req, body)
		switch {
		case lastErr != nil:
			return retry.Result{Err: lastErr, Retry: true}
		case retry.Status(resp.StatusCode):
			return retry.Result{Err: errRetryable, Retry: true, Status: resp.StatusCode, Header: resp.Header}
		}
		return retry.Result{}
	})
	if out.Waited > counted {
		t.stats.addWait(out.Waited - counted)
	}
	if err == nil {
		return resp, nil
	}
	if ctx.Err() != nil {
		return nil, err
	}
	g := &GiveUpError{Method: req.Method, Path: req.URL.Path, Attempts: out.Attempts, Waited: out.Waited, Err: lastErr}
	if lastErr == nil && resp != nil {
		g.Status = resp.StatusCode
		g.Code, g.Message = graphError(resp)
	}
	return nil, g
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
	// Sized from Content-Length when there is one: io.ReadAll grows from
	// 512 bytes by copying, three times the garbage of a large answer.
	var buf bytes.Buffer
	if n := resp.ContentLength; n > 0 && n <= 64<<20 {
		buf.Grow(int(n) + bytes.MinRead)
	}
	_, err = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read response body: %w", err)
	}
	data := buf.Bytes()
	resp.Body = io.NopCloser(bytes.NewReader(data))
	resp.ContentLength = int64(len(data))
	return resp, nil
}

// Stats counts what a source sent; safe for concurrent use.
type Stats struct {
	Requests    atomic.Int64 // HTTP requests, retries included
	BatchItems  atomic.Int64 // requests carried inside $batch
	Retries     atomic.Int64 // retried HTTP requests and batch items
	Throttled   atomic.Int64 // 429 answers (HTTP or batch item)
	WaitedNanos atomic.Int64 // time spent waiting to retry
}

// retry counts a retry after an answer of status (0: no answer).
func (s *Stats) retry(status int) {
	s.Retries.Add(1)
	if status == http.StatusTooManyRequests {
		s.Throttled.Add(1)
	}
}

func (s *Stats) addWait(d time.Duration) { s.WaitedNanos.Add(int64(d)) }

// statsAt is the counters at one moment: a read's cost is the difference
// between the counters after it and before it.
type statsAt struct {
	requests, batchItems, retries, throttled int64
	waited                                   time.Duration
}

func (s *Stats) at() statsAt {
	return statsAt{requests: s.Requests.Load(), batchItems: s.BatchItems.Load(), retries: s.Retries.Load(),
		throttled: s.Throttled.Load(), waited: time.Duration(s.WaitedNanos.Load())}
}
