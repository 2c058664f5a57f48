package openfga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/groupsync/groupsync/internal/retry"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	fga "github.com/openfga/go-sdk"
	"github.com/openfga/go-sdk/oauth2"
)

const (
	// maxBackoff caps the exponential wait between two attempts.
	maxBackoff = 30 * time.Second
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

// call runs one API request with our retries: on 429, 5xx except 501, and
// network errors, at most cfg.MaxRetries more times, waiting as Retry-After
// says or else exponentially from cfg.RetryMinWait with jitter; the wait
// ends with ctx. requests, when not nil, counts every attempt.
func call[T any](ctx context.Context, c *conn, op, store string, requests *int, f func(context.Context) (T, *http.Response, error)) (T, error) {
	var zero T
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return zero, &Error{Op: op, Store: store, Target: c.target, Message: err.Error(), Attempts: attempt, Err: err}
		}
		if requests != nil {
			*requests++
		}
		v, _, err := f(ctx)
		if err == nil {
			return v, nil
		}
		e := c.describe(op, store, err)
		e.Attempts = attempt + 1
		if ctxErr := ctx.Err(); ctxErr != nil {
			e.Err, e.Message, e.Status, e.Code = ctxErr, ctxErr.Error(), 0, ""
			return zero, e
		}
		again, header := retryable(err)
		if !again || attempt >= c.cfg.MaxRetries {
			return zero, e
		}
		if err := retry.Sleep(ctx, c.backoff(attempt, header)); err != nil {
			e.Err, e.Message, e.Status, e.Code = err, err.Error(), 0, ""
			return zero, e
		}
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
		return retryableStatus(se.ResponseStatusCode()), se.ResponseHeader()
	}
	var te *oauth2.RetrieveError
	if errors.As(err, &te) && te.Response != nil {
		return retryableStatus(te.Response.StatusCode), te.Response.Header
	}
	var ge fga.GenericOpenAPIError
	if errors.As(err, &ge) {
		return false, nil // a response we could not decode: sending again will not help
	}
	return true, nil // no response: connection refused, reset, timeout
}

func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || (code >= 500 && code != http.StatusNotImplemented)
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

// backoff is the wait before attempt+1: Retry-After when the server sent
// one, else RetryMinWait·2^attempt plus up to as much again of jitter.
func (c *conn) backoff(attempt int, h http.Header) time.Duration {
	if d, ok := retry.After(h, time.Now()); ok {
		return min(d, maxRetryAfter)
	}
	d := time.Duration(c.cfg.RetryMinWait)
	for i := 0; i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	if d <= 0 {
		return 0
	}
	return d + rand.N(d)
}
