package graphtest

import (
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// maxBatchItems is Graph's limit on requests in one $batch.
const maxBatchItems = 20

type batchRequest struct {
	Requests []batchItem `json:"requests"`
}

type batchItem struct {
	ID        string            `json:"id"`
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers"`
	Body      json.RawMessage   `json:"body"`
	DependsOn []string          `json:"dependsOn"`
}

// serveBatch answers POST /v1.0/$batch. Each item goes through the same path
// as a direct request (faults, permissions, throttling, paging), without the
// envelope's latency. Answers come back in reverse order, which Graph's "any
// order" allows, to catch clients that assume otherwise.
func (s *Server) serveBatch(w http.ResponseWriter, r *http.Request) {
	if err := s.authenticate(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	if r.Method != http.MethodPost {
		s.writeError(w, r, newError(http.StatusMethodNotAllowed, "Request_BadRequest", "Specified HTTP method is not allowed for the request target."))
		return
	}
	var body io.Reader = r.Body
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			s.writeError(w, r, newError(http.StatusBadRequest, "BadRequest", "Invalid batch payload format: %v.", err))
			return
		}
		defer zr.Close()
		body = zr
	default:
		s.writeError(w, r, newError(http.StatusUnsupportedMediaType, "BadRequest", "Content-Encoding '%s' is not supported.", enc))
		return
	}
	var req batchRequest
	if err := json.NewDecoder(body).Decode(&req); err != nil {
		s.writeError(w, r, newError(http.StatusBadRequest, "BadRequest", "Invalid batch payload format: %v.", err))
		return
	}
	switch n := len(req.Requests); {
	case n == 0:
		s.writeError(w, r, newError(http.StatusBadRequest, "BadRequest", "Invalid batch payload format: the batch holds no requests."))
		return
	case n > maxBatchItems:
		s.writeError(w, r, newError(http.StatusBadRequest, "BadRequest",
			"Unable to process the batch: it holds %d requests and the limit is %d.", n, maxBatchItems))
		return
	}
	ids := map[string]bool{}
	for _, it := range req.Requests {
		if it.ID == "" || it.Method == "" || it.URL == "" {
			s.writeError(w, r, newError(http.StatusBadRequest, "BadRequest", "Invalid batch payload format: each request needs an id, a method and a url."))
			return
		}
		if ids[it.ID] {
			s.writeError(w, r, newError(http.StatusBadRequest, "BadRequest", "Invalid batch payload format: the id '%s' is used twice.", it.ID))
			return
		}
		ids[it.ID] = true
	}

	status := map[string]int{}
	answers := make([][]byte, len(req.Requests))
	var outer *Fault // a drop, truncation or malformation hits the whole answer
	for i, it := range req.Requests {
		rec, f := s.serveItem(r, it, status)
		status[it.ID] = rec.status
		if f != nil && outer == nil {
			outer = f
		}
		answers[i] = appendItem(nil, it.ID, rec)
	}

	b := []byte(`{"responses":[`)
	for i := len(answers) - 1; i >= 0; i-- {
		b = append(b, answers[i]...)
		if i > 0 {
			b = append(b, ',')
		}
	}
	b = append(b, "]}"...)
	if outer == nil {
		s.writeJSON(w, http.StatusOK, b)
		return
	}
	if outer.Kind == FaultDrop {
		hijackAndClose(w, nil)
		return
	}
	h := w.Header().Clone()
	h.Set("Content-Type", jsonContentType)
	s.writeMangled(w, outer.Kind, http.StatusOK, h, b)
}

// serveItem answers one item into a recorder. A fault other than a status
// is returned for the envelope to apply.
func (s *Server) serveItem(envelope *http.Request, it batchItem, status map[string]int) (*recorder, *Fault) {
	rec := newRecorder()
	s.batchItems.Add(1)
	s.setRequestIDs(rec, envelope)
	for _, dep := range it.DependsOn {
		if st, ok := status[dep]; !ok || st >= 400 {
			s.writeError(rec, envelope, newError(http.StatusFailedDependency, "FailedDependency",
				"The request depends on request '%s', which failed or was not run before it.", dep))
			return rec, nil
		}
	}
	target := it.URL
	if !strings.HasPrefix(target, "/") {
		target = "/" + target
	}
	ctx := context.WithValue(envelope.Context(), batchItemKey{}, it.ID)
	r, err := http.NewRequestWithContext(ctx, strings.ToUpper(it.Method), s.URL+"/v1.0"+target, nil)
	if err != nil || strings.Contains(it.URL, "://") {
		s.writeError(rec, envelope, newError(http.StatusBadRequest, "BadRequest", "Invalid request URL '%s': batch request URLs are relative to the version, like /groups.", it.URL))
		return rec, nil
	}
	for k, v := range it.Headers {
		r.Header.Set(k, v)
	}
	r.Header.Set("Authorization", envelope.Header.Get("Authorization"))
	if id := envelope.Header.Get("client-request-id"); id != "" && r.Header.Get("client-request-id") == "" {
		r.Header.Set("client-request-id", id)
	}

	rt := parseRoute(r.URL.Path)
	s.counts[rt.ep].Add(1)
	rec.header.Set("client-request-id", clientRequestID(r, rec.header.Get("request-id")))
	if rt.ep == EndpointBatch {
		s.writeError(rec, r, newError(http.StatusBadRequest, "BadRequest", "A batch cannot hold a batch."))
		return rec, nil
	}
	f := s.pickFault(r, rt.ep)
	if f != nil && f.Kind == FaultStatus {
		s.writeError(rec, r, f.graphError())
		return rec, nil
	}
	s.serveGraph(rec, r, rt, true)
	return rec, f
}

// itemHeaders are the headers a batch item answer carries, spelled as Graph
// spells them: the SDK looks "Content-Type" up case-sensitively.
var itemHeaders = []string{"Cache-Control", "x-ms-resource-unit", "OData-Version", "Content-Type", "Retry-After", "Location"}

func appendItem(b []byte, id string, rec *recorder) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, id)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(rec.status), 10)
	b = append(b, `,"headers":{`...)
	first := true
	for _, name := range itemHeaders {
		if v := rec.header.Get(name); v != "" {
			b = appendKey(b, first, name)
			b = appendString(b, v)
			first = false
		}
	}
	b = append(b, '}')
	if len(rec.body) > 0 {
		b = append(b, `,"body":`...)
		if strings.HasPrefix(rec.header.Get("Content-Type"), "application/json") && json.Valid(rec.body) {
			b = append(b, rec.body...)
		} else {
			b = appendString(b, base64.StdEncoding.EncodeToString(rec.body))
		}
	}
	return append(b, '}')
}

// recorder is a minimal in-memory http.ResponseWriter.
type recorder struct {
	header http.Header
	status int
	body   []byte
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.body = append(r.body, p...)
	return len(p), nil
}
