package authentiktest

import (
	"fmt"
	"net/http"
	"strconv"
)

// FaultKind says how a faulted request fails.
type FaultKind int

const (
	// FaultStatus answers Fault.Status: 429 with authentik's JSON and a
	// Retry-After, other statuses with the HTML page a reverse proxy or
	// gunicorn sends for 502, 503 and 504, or {"detail": ...} otherwise.
	FaultStatus FaultKind = iota
	// FaultDrop closes the connection without answering. Go's transport
	// retries an idempotent request once when a reused connection closes
	// before the answer, so one drop of a GET may go unseen by a client.
	FaultDrop
	// FaultTruncate sends the real status, announces the full length,
	// sends half the body and closes the connection.
	FaultTruncate
)

// Fault describes how to fail one request.
type Fault struct {
	Kind       FaultKind
	Status     int    // for FaultStatus; 500 if zero
	RetryAfter string // Retry-After for a status fault; "1" for 429 and 503 if empty
}

// FaultFunc decides, for each request, whether it fails; nil means it
// does not. It runs before the request is served, concurrently with
// itself, and may call Server.Mutate.
type FaultFunc func(r *http.Request) *Fault

// StatusFault fails a request with the status.
func StatusFault(status int) *Fault { return &Fault{Kind: FaultStatus, Status: status} }

// DropFault closes the connection without answering.
func DropFault() *Fault { return &Fault{Kind: FaultDrop} }

// TruncateFault cuts the answer's body in half.
func TruncateFault() *Fault { return &Fault{Kind: FaultTruncate} }

// FailNext fails the next n API requests with the status.
func (s *Server) FailNext(n, status int) { s.FailNextWith(n, *StatusFault(status)) }

// FailNextWith fails the next n API requests with f.
func (s *Server) FailNextWith(n int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failQueue = append(s.failQueue, f)
	}
}

// SetFaultFunc replaces the fault hook.
func (s *Server) SetFaultFunc(f FaultFunc) {
	s.mu.Lock()
	s.faultFunc = f
	s.mu.Unlock()
}

func (s *Server) pickFault(r *http.Request, ep endpoint) *Fault {
	var f *Fault
	s.mu.Lock()
	fn := s.faultFunc
	if len(s.failQueue) > 0 && ep != epUnknown {
		q := s.failQueue[0]
		f = &q
		s.failQueue = s.failQueue[1:]
	}
	s.mu.Unlock()
	if f == nil && fn != nil {
		f = fn(r)
	}
	return f
}

func (s *Server) serveFault(w http.ResponseWriter, f *Fault) {
	switch f.Kind {
	case FaultDrop:
		hijack(w)
	case FaultTruncate:
		body := []byte(`{"pagination": {"next": 0, "previous": 0, "count": 1, "current": 1, "total_pages": 1, "start_index": 1, "end_index": 1}, "results": [{"pk": "`)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(2*len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		hijack(w)
	default:
		status := f.Status
		if status == 0 {
			status = http.StatusInternalServerError
		}
		ra := f.RetryAfter
		if ra == "" && (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) {
			ra = "1"
		}
		if ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		switch status {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(status)
			fmt.Fprintf(w, "<html><head><title>%d %s</title></head><body><center><h1>%d %s</h1></center><hr><center>nginx</center></body></html>\n",
				status, http.StatusText(status), status, http.StatusText(status))
		case http.StatusTooManyRequests:
			writeJSON(w, status, map[string]any{"detail": "Request was throttled. Expected available in 1 second."})
		default:
			writeJSON(w, status, map[string]any{"detail": "A server error occurred."})
		}
	}
}

func hijack(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("authentiktest: the response writer cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		conn.Close()
	}
}
