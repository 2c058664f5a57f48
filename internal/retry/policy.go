package retry

import (
	"context"
	"math/rand/v2"
	"net/http"
	"time"
)

// Policy says how often and how long a client retries. The zero Policy
// sends once and never retries.
type Policy struct {
	// MaxRetries is how many attempts may follow the first.
	MaxRetries int
	// MinWait is the backoff before the first retry; each later one doubles.
	MinWait time.Duration
	// MaxWait caps one backoff wait (0: a minute).
	MaxWait time.Duration
	// MaxRetryAfter caps a server's Retry-After (0: no cap).
	MaxRetryAfter time.Duration
	// Budget caps the time spent waiting over all retries of one call
	// (0: no budget). A retry whose wait would pass it is not made.
	Budget time.Duration
}

// Status reports whether an HTTP status is worth another attempt: 429
// (throttled) and every 5xx but 501 (not implemented will not change).
// It is the one place groupsync decides "retry this response?".
func Status(code int) bool {
	return code == http.StatusTooManyRequests || (code >= 500 && code != http.StatusNotImplemented)
}

// Result is what one attempt tells the loop.
type Result struct {
	// Err is the attempt's error; nil ends the loop with success.
	Err error
	// Retry says Err is worth another attempt. Use Status for a response
	// and true for a transport error (no response).
	Retry bool
	// Status is the HTTP status, 0 when no response came.
	Status int
	// Header is the response's header, for Retry-After; nil without one.
	Header http.Header
}

// Outcome is what a call to Do cost.
type Outcome struct {
	Attempts int
	Waited   time.Duration
}

// Hooks observe the loop; every field may be nil.
type Hooks struct {
	// Retrying is called before each wait, with the failed attempt's result.
	Retrying func(r Result, wait time.Duration)
}

// Wait is the pause before retry n (from 1) after result r: the server's
// Retry-After when it sent one (capped by MaxRetryAfter), else MinWait
// doubling per retry, capped by MaxWait, drawn uniformly from its upper
// half so that many clients throttled at once do not come back together.
func (p Policy) Wait(n int, h http.Header) time.Duration {
	if d, ok := After(h, time.Now()); ok {
		if p.MaxRetryAfter > 0 {
			d = min(d, p.MaxRetryAfter)
		}
		return d
	}
	ceiling := p.MaxWait
	if ceiling <= 0 {
		ceiling = time.Minute
	}
	if p.MinWait <= 0 {
		return 0
	}
	d := min(p.MinWait, ceiling)
	for i := 1; i < n && d < ceiling; i++ {
		d = min(2*d, ceiling)
	}
	if d < 2 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// Do runs attempt until it succeeds, fails for good, the policy is spent or
// ctx ends. It returns the last attempt's error, or ctx's error when the
// context ended (the attempt's own error then says less than that the run
// was stopped). Waiting always ends with ctx.
func (p Policy) Do(ctx context.Context, hooks Hooks, attempt func(ctx context.Context) Result) (Outcome, error) {
	var out Outcome
	for {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		out.Attempts++
		r := attempt(ctx)
		if r.Err == nil {
			return out, nil
		}
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if !r.Retry || out.Attempts > p.MaxRetries {
			return out, r.Err
		}
		wait := p.Wait(out.Attempts, r.Header)
		if p.Budget > 0 && out.Waited+wait > p.Budget {
			return out, r.Err
		}
		if hooks.Retrying != nil {
			hooks.Retrying(r, wait)
		}
		if err := Sleep(ctx, wait); err != nil {
			return out, err
		}
		out.Waited += wait
	}
}

// Exhausted reports whether err from Do is an attempt's own error rather
// than its context's: the caller then says it gave up, with the Outcome.
// An attempt's own timeout (a per-request deadline) counts as the
// attempt's: only ctx decides.
func Exhausted(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() == nil
}
