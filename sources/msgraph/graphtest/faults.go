package graphtest

import (
	"bufio"
	"cmp"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

// FaultKind says how a faulted request fails.
type FaultKind int

const (
	// FaultStatus answers Fault.Status with Graph's error body.
	FaultStatus FaultKind = iota
	// FaultDrop closes the connection without answering. Note that Go's
	// http.Transport silently retries an idempotent request (a GET) once
	// when a reused keep-alive connection closes before the first byte of
	// the answer, so a single drop of a GET is often invisible to a client;
	// a POST (a $batch) is not retried.
	FaultDrop
	// FaultTruncate sends the real status and headers, announces the full
	// Content-Length, sends half the body and closes the connection: the
	// client sees an unexpected EOF while reading.
	FaultTruncate
	// FaultMalformed sends the real status and half the real body as a
	// complete answer: valid HTTP, invalid JSON.
	FaultMalformed
)

func (k FaultKind) String() string {
	switch k {
	case FaultStatus:
		return "status"
	case FaultDrop:
		return "drop"
	case FaultTruncate:
		return "truncate"
	case FaultMalformed:
		return "malformed"
	}
	return fmt.Sprintf("FaultKind(%d)", int(k))
}

// Fault describes how to fail one request.
type Fault struct {
	Kind   FaultKind
	Status int // for FaultStatus: 429, 500, 503, 504...; 500 if zero
	// RetryAfter is the Retry-After header sent with a status fault. Empty
	// means "1" for 429 and 503 and none otherwise; Graph sends seconds but
	// clients must also cope with fractions and HTTP dates. Note that
	// kiota's retry handler truncates fractional seconds: "0.9" retries at
	// once.
	RetryAfter   string
	NoRetryAfter bool   // send no Retry-After at all
	Code         string // error code; defaults by status
	Message      string // error message; defaults by status
}

// FaultFunc decides, for each request, whether it fails; nil means it does
// not. It sees every request the server receives, token requests and $batch
// envelopes included, and each item of a batch as a request of its own (see
// EndpointOf and BatchItemID). It runs concurrently with itself.
type FaultFunc func(r *http.Request) *Fault

// StatusFault fails a request with the status and Graph's error body.
func StatusFault(status int) *Fault { return &Fault{Kind: FaultStatus, Status: status} }

// DropFault closes the connection without answering.
func DropFault() *Fault { return &Fault{Kind: FaultDrop} }

// TruncateFault cuts the answer's body in half and closes the connection.
func TruncateFault() *Fault { return &Fault{Kind: FaultTruncate} }

// MalformedFault answers half of the body as if it were all of it.
func MalformedFault() *Fault { return &Fault{Kind: FaultMalformed} }

// graphError is the answer a status fault gives.
func (f *Fault) graphError() *graphError {
	e := &graphError{status: cmp.Or(f.Status, http.StatusInternalServerError), code: f.Code, message: f.Message}
	code, msg := defaultError(e.status)
	if e.code == "" {
		e.code = code
	}
	if e.message == "" {
		e.message = msg
	}
	switch {
	case f.NoRetryAfter:
	case f.RetryAfter != "":
		e.retryAfter = f.RetryAfter
	case e.status == http.StatusTooManyRequests || e.status == http.StatusServiceUnavailable:
		e.retryAfter = "1"
	}
	return e
}

func defaultError(status int) (code, message string) {
	switch status {
	case http.StatusBadRequest:
		return "BadRequest", "Bad request."
	case http.StatusUnauthorized:
		return "InvalidAuthenticationToken", "Access token validation failure."
	case http.StatusForbidden:
		return "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
	case http.StatusNotFound:
		return "Request_ResourceNotFound", "Resource does not exist or one of its queried reference-property objects are not present."
	case http.StatusTooManyRequests:
		return "TooManyRequests", throttleMessage
	case http.StatusInternalServerError:
		return "generalException", "General exception while processing."
	case http.StatusServiceUnavailable:
		return "serviceNotAvailable", "The service is temporarily unavailable. Try again after the Retry-After delay."
	case http.StatusGatewayTimeout:
		return "UnknownError", "The gateway timed out."
	}
	return "UnknownError", http.StatusText(status)
}

const throttleMessage = "Too many requests from Identifier:graphtest under category:throttle.aad.ags.appId. Please try again later."

// pickFault returns the fault for a request, if any: first the FailNext
// queue (Graph resource requests only), then the FaultFunc.
func (s *Server) pickFault(r *http.Request, ep Endpoint) *Fault {
	var f *Fault
	s.mu.Lock()
	fn := s.faultFunc
	if len(s.failQueue) > 0 && ep.isResource() {
		q := s.failQueue[0]
		f = &q
		s.failQueue = s.failQueue[1:]
	}
	s.mu.Unlock()
	if f == nil && fn != nil {
		f = fn(r)
	}
	if f != nil {
		s.faults.Add(1)
	}
	return f
}

// FailNext makes the next n Graph resource requests (direct or batch items;
// not token requests or $batch envelopes) answer status with Graph's error
// body, and Retry-After: 1 for 429 and 503.
func (s *Server) FailNext(n, status int) { s.FailNextWith(n, *StatusFault(status)) }

// FailNextWith makes the next n Graph resource requests fail with f.
func (s *Server) FailNextWith(n int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failQueue = append(s.failQueue, f)
	}
}

// SetFaultFunc replaces the fault hook; nil removes it.
func (s *Server) SetFaultFunc(f FaultFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faultFunc = f
}

// serveFaulty answers a request that a fault hit. serve renders the real
// answer, which truncate and malformed faults mangle.
func (s *Server) serveFaulty(w http.ResponseWriter, r *http.Request, f *Fault, serve func(http.ResponseWriter)) {
	switch f.Kind {
	case FaultStatus:
		s.writeError(w, r, f.graphError())
	case FaultDrop:
		hijackAndClose(w, nil)
	default:
		rec := newRecorder()
		serve(rec)
		if rec.status == 0 {
			hijackAndClose(w, nil)
			return
		}
		s.writeMangled(w, f.Kind, rec.status, rec.header, rec.body)
	}
}

// writeMangled writes a truncated or malformed version of an answer.
func (s *Server) writeMangled(w http.ResponseWriter, k FaultKind, status int, h http.Header, body []byte) {
	half := body[:len(body)/2]
	if k == FaultTruncate {
		hijackAndClose(w, func(bw *bufio.Writer) {
			fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
			h.Set("Content-Length", strconv.Itoa(len(body)))
			h.Set("Connection", "close")
			h.Write(bw)
			bw.WriteString("\r\n")
			bw.Write(half)
		})
		return
	}
	if len(half) == 0 {
		half = []byte("{")
	}
	for k, v := range h {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(half)))
	w.WriteHeader(status)
	w.Write(half)
}

// hijackAndClose takes the connection over, writes what write writes and
// closes it.
func hijackAndClose(w http.ResponseWriter, write func(*bufio.Writer)) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return // a recorder: the caller sees no answer and drops in turn
	}
	conn, bw, err := hj.Hijack()
	if err != nil {
		return
	}
	if write != nil {
		write(bw.Writer)
		bw.Flush()
	}
	conn.Close()
}

// DefaultThrottleCapacity is Graph's budget for identity reads by one app in
// a tenant under 50 users: 3,500 resource units per 10 seconds (5,000 for 50
// to 500 users, 8,000 above).
const DefaultThrottleCapacity = 3500

// throttle is a token bucket of resource units refilled continuously at
// capacity per window.
type throttle struct {
	capacity float64 // 0: off
	window   time.Duration
	tokens   float64
	last     time.Time
}

// take charges cost units, or says how long until they are available.
func (t *throttle) take(now time.Time, cost int) (bool, time.Duration) {
	if t.capacity <= 0 {
		return true, 0
	}
	rate := t.capacity / t.window.Seconds() // units per second
	if !t.last.IsZero() {
		t.tokens = math.Min(t.capacity, t.tokens+now.Sub(t.last).Seconds()*rate)
	}
	t.last = now
	c := float64(cost)
	if t.tokens >= c {
		t.tokens -= c
		return true, 0
	}
	return false, time.Duration((c - t.tokens) / rate * float64(time.Second))
}

// resourceUnits is what a request costs, after Graph's identity throttling
// table: members 3, transitiveMembers 5, users 2, anything else 1; $select
// takes one off, never below 1.
func resourceUnits(ep Endpoint, selected bool) int {
	cost := 1
	switch ep {
	case EndpointMembers:
		cost = 3
	case EndpointTransitiveMembers, EndpointTransitiveMemberOf:
		cost = 5
	case EndpointUsers, EndpointUser, EndpointUsersDelta:
		cost = 2
	}
	if selected && cost > 1 {
		cost--
	}
	return cost
}

// charge takes the cost of a request from the bucket; a throttled request
// gets Graph's 429 with Retry-After in whole seconds, at least 1.
func (s *Server) charge(cost int) *graphError {
	s.mu.Lock()
	ok, wait := s.bucket.take(s.now(), cost)
	s.mu.Unlock()
	if ok {
		s.resourceUnits.Add(int64(cost))
		return nil
	}
	s.throttled.Add(1)
	secs := max(1, int(math.Ceil(wait.Seconds())))
	return &graphError{status: http.StatusTooManyRequests, code: "TooManyRequests", message: throttleMessage, retryAfter: strconv.Itoa(secs)}
}

// SetThrottling sets the budget to capacity resource units per window
// (WithThrottleWindow, 10 s by default) and fills the bucket; 0 turns
// throttling off.
func (s *Server) SetThrottling(capacity int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bucket.capacity = float64(capacity)
	s.bucket.tokens = float64(capacity)
	s.bucket.last = time.Time{}
}
