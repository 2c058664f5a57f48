package openfga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	fga "github.com/openfga/go-sdk"
	"github.com/openfga/go-sdk/oauth2"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/internal/retry"
)

const (
	// maxWait caps the exponential wait between two attempts: it is drawn
	// from [maxWait/2, maxWait) once the backoff reaches it.
	maxWait = time.Minute
	// maxRetryAfter caps a server's Retry-After.
	maxRetryAfter = 2 * time.Minute
)

// Error is a request to OpenFGA that failed, after any retries. It never
// holds a credential.
type Error struct {
	Op       string // the API operation: Write, Read, ListStores ...
	Store    string // the store id, when the operation has one
	Target   string // the API URL
	Status   int    // the HTTP status; 0 when no response came
	Code     string // OpenFGA's error code, e.g. "validation_error"
	Message  string // OpenFGA's message, or what went wrong on the way
	Attempts int    // requests sent
	Err      error  // the SDK's, network's or context's error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("openfga " + e.Op)
	if e.Store != "" {
		fmt.Fprintf(&b, " (store %s at %s)", e.Store, e.Target)
	} else {
		fmt.Fprintf(&b, " (%s)", e.Target)
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
		if e.Code != "" {
			b.WriteString(" " + e.Code)
		}
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (after %d attempts)", e.Attempts)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// call runs one API request with our retries (retry.Policy.Do): on 429,
// 5xx except 501 (retry.Status), and network errors, at most
// cfg.MaxRetries more times, waiting as Retry-After says or else
// exponentially from cfg.RetryMinWait with jitter (see policy); the wait
// ends with ctx. requests, when not nil, counts every attempt.
func call[T any](ctx context.Context, c *conn, op, store string, requests *int, f func(context.Context) (T, *http.Response, error)) (T, error) {
	var v T
	var last *Error
	out, err := policy(c.cfg).Do(ctx, retry.Hooks{}, func(ctx context.Context) retry.Result {
		if requests != nil {
			*requests++
		}
		var err error
		if v, _, err = f(ctx); err == nil {
			return retry.Result{}
		}
		last = c.describe(op, store, err)
		again, header := retryable(err)
		return retry.Result{Err: last, Retry: again, Status: last.Status, Header: header}
	})
	if err == nil {
		return v, nil
	}
	var zero T
	if err == last { //nolint:errorlint // the attempt's own *Error, as it returned it
		last.Attempts = out.Attempts
		return zero, last
	}
	// The context ended, before an attempt, after one or while waiting: say
	// that rather than what the last attempt got.
	return zero, &Error{Op: op, Store: store, Target: c.target, Message: err.Error(), Attempts: out.Attempts, Err: err}
}

// policy is the sink's retry policy. retry.Policy.Wait draws from the upper
// half [d/2, d) of MinWait·2^(n-1) capped at MaxWait, so MinWait twice
// openfga.retry_min_wait and MaxWait a minute keep the sink's backoff:
// [m·2^a, 2m·2^a) before retry a+1, capped at [30s, 60s).
func policy(cfg config.OpenFGA) retry.Policy {
	return retry.Policy{
		MaxRetries:    cfg.MaxRetries,
		MinWait:       2 * time.Duration(cfg.RetryMinWait),
		MaxWait:       maxWait,
		MaxRetryAfter: maxRetryAfter,
	}
}

// statusError is what every go-sdk API error (FgaApiValidationError,
// FgaApiInternalError, FgaApiRateLimitExceededError ...) implements.
type statusError interface {
	error
	ResponseStatusCode() int
	ResponseHeader() http.Header
	Body() []byte
}

// retryable reports whether err is worth another attempt, and the response
// headers (for Retry-After) when there was a response.
func retryable(err error) (bool, http.Header) {
	var se statusError
	if errors.As(err, &se) {
		return retry.Status(se.ResponseStatusCode()), se.ResponseHeader()
	}
	var te *oauth2.RetrieveError
	if errors.As(err, &te) && te.Response != nil {
		return retry.Status(te.Response.StatusCode), te.Response.Header
	}
	var ge fga.GenericOpenAPIError
	if errors.As(err, &ge) {
		return false, nil // a response we could not decode: sending again will not help
	}
	return true, nil // no response: connection refused, reset, timeout
}

// describe turns an SDK error into an *Error with OpenFGA's code and message.
func (c *conn) describe(op, store string, err error) *Error {
	e := &Error{Op: op, Store: store, Target: c.target, Err: err}
	var se statusError
	var te *oauth2.RetrieveError
	switch {
	case errors.As(err, &se):
		e.Status = se.ResponseStatusCode()
		e.Code, e.Message = errorBody(se.Body(), e.Status)
	case errors.As(err, &te) && te.Response != nil:
		_, msg := errorBody(te.Body, te.Response.StatusCode)
		e.Message = fmt.Sprintf("get an access token from openfga.auth.token_issuer: HTTP %d: %s", te.Response.StatusCode, msg)
	default:
		e.Message = err.Error()
	}
	return e
}

// errorBody reads OpenFGA's {"code": ..., "message": ...}, or a short
// excerpt of any other body.
func errorBody(body []byte, status int) (code, message string) {
	var b struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &b) == nil && (b.Code != "" || b.Message != "") {
		return b.Code, b.Message
	}
	msg := strings.Join(strings.Fields(string(body)), " ")
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return "", msg
}
