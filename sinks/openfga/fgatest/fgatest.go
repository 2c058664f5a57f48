// Package fgatest runs a real OpenFGA server in process for tests, the way
// net/http/httptest runs an HTTP server: one constructor, a URL, cleanup
// through t.Cleanup, and the code under test cannot tell it from a deployed
// OpenFGA.
//
// The server is OpenFGA v1.22.1 itself (github.com/openfga/openfga/pkg/server)
// on its memory datastore, behind the same grpc-gateway HTTP mux, response
// modifier and error handler as `openfga run`, so paths, JSON, validation and
// HTTP status codes (201, 400, 404, 409 ...) are the real ones. It starts
// empty: there is no tenant to describe, each test creates the stores, models
// and tuples it needs with CreateStore, WriteModel and WriteTuples, which call
// the server directly (not over HTTP: they are neither counted nor faulted).
//
//	srv := fgatest.New(t)
//	storeID, modelID := srv.CreateStore(t, "groups", fgatest.GroupModel)
//	srv.WriteTuples(t, storeID, gsync.Tuple{User: "user:ann", Relation: "member", Object: "group:eng"})
//	// point the code under test at srv.URL, then
//	got := srv.Tuples(t, storeID)
//
// In front of the real server sits a small HTTP middleware that counts
// requests by endpoint (Requests, WriteRequests, ReadRequests), keeps the
// decoded Write calls (Writes), can require a preshared API token
// (WithPresharedKeys, like `openfga run --authn-method preshared`), and can
// inject faults (WithFault, SetFault): answer a chosen request with a status
// of our own (500, 429 with Retry-After, 400 ...) or delay it, while every
// other request still reaches the real server. For example, the second and
// third write requests fail with 500 and later ones succeed:
//
//	srv := fgatest.New(t, fgatest.WithFault(fgatest.FailRange(fgatest.Write, 2, 3, fgatest.Fault{Status: 500})))
//
// The memory datastore scans the store on each write, so keep test stores
// to a few thousand tuples.
package fgatest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	openfgav1 "github.com/openfga/api/proto/openfga/v1"
	"github.com/openfga/language/pkg/go/transformer"
	"github.com/openfga/openfga/pkg/gateway"
	"github.com/openfga/openfga/pkg/logger"
	httpmiddleware "github.com/openfga/openfga/pkg/middleware/http"
	"github.com/openfga/openfga/pkg/server"
	serverErrors "github.com/openfga/openfga/pkg/server/errors"
	"github.com/openfga/openfga/pkg/storage/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	gsync "github.com/groupsync/groupsync/sync"
)

// GroupModel is groupsync's default authorization model, for tests.
const GroupModel = `model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
`

// Endpoint names, as OpenFGA's API (and the go-sdk's operation names) call
// them. Requests to paths not listed here are counted as "METHOD /path".
const (
	ListStores              = "ListStores"
	CreateStore             = "CreateStore"
	GetStore                = "GetStore"
	DeleteStore             = "DeleteStore"
	Read                    = "Read"
	Write                   = "Write"
	ReadChanges             = "ReadChanges"
	ReadAuthorizationModels = "ReadAuthorizationModels"
	ReadAuthorizationModel  = "ReadAuthorizationModel"
	WriteAuthorizationModel = "WriteAuthorizationModel"
	Check                   = "Check"
)

// Server is a running OpenFGA. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL of the API, e.g. http://127.0.0.1:41234 (no slash).
	URL string

	fga         *server.Server
	maxPerWrite int
	keys        []string

	mu     stdsync.Mutex
	fault  FaultFunc
	counts map[string]int
	writes []WriteCall
}

// Option configures New.
type Option func(*settings)

type settings struct {
	fault       FaultFunc
	keys        []string
	maxPerWrite int
}

// WithFault installs f in front of the server (see Fault); SetFault changes
// it later.
func WithFault(f FaultFunc) Option { return func(s *settings) { s.fault = f } }

// WithPresharedKeys makes the server require "Authorization: Bearer <key>"
// with one of keys, answering 401 otherwise with OpenFGA's own error body
// (code bearer_token_missing or unauthenticated), as
// `openfga run --authn-method preshared --authn-preshared-keys ...` does.
// The check sits in fgatest's middleware because OpenFGA's authenticator is
// an internal package.
func WithPresharedKeys(keys ...string) Option {
	return func(s *settings) { s.keys = append(s.keys, keys...) }
}

// WithMaxTuplesPerWrite sets the server's limit of tuple keys per Write
// (`--max-tuples-per-write`, 100 by default).
func WithMaxTuplesPerWrite(n int) Option { return func(s *settings) { s.maxPerWrite = n } }

// New starts a server and stops it when the test ends.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	set := settings{maxPerWrite: 100}
	for _, o := range opts {
		o(&set)
	}

	ds := memory.New(memory.WithMaxTuplesPerWrite(set.maxPerWrite))
	fga, err := server.NewServerWithOpts(
		server.WithDatastore(ds),
		server.WithLogger(logger.NewNoopLogger()),
		// Lets the server set its HTTP status (201 on create ...) through
		// gRPC headers, which HTTPResponseModifier turns into the status.
		server.WithTransport(gateway.NewRPCTransport(logger.NewNoopLogger())),
	)
	if err != nil {
		ds.Close()
		t.Fatalf("fgatest: start OpenFGA: %v", err)
	}

	// The gateway as cmd/run/run.go builds it, but registered against the
	// server directly instead of through a gRPC connection.
	mux := runtime.NewServeMux(
		runtime.WithForwardResponseOption(httpmiddleware.HTTPResponseModifier),
		runtime.WithErrorHandler(func(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, e error) {
			writeError(ctx, w, r, e)
		}),
		runtime.WithOutgoingHeaderMatcher(func(s string) (string, bool) { return s, true }),
	)
	if err := openfgav1.RegisterOpenFGAServiceHandlerServer(context.Background(), mux, fga); err != nil {
		fga.Close()
		t.Fatalf("fgatest: register gateway: %v", err)
	}

	s := &Server{
		fga:         fga,
		maxPerWrite: set.maxPerWrite,
		keys:        set.keys,
		fault:       set.fault,
		counts:      map[string]int{},
	}
	hs := httptest.NewServer(s.middleware(mux))
	s.URL = hs.URL
	t.Cleanup(func() {
		hs.Close()
		fga.Close() // closes the datastore too
	})
	return s
}

// writeError answers with OpenFGA's error encoding and status for e.
func writeError(ctx context.Context, w http.ResponseWriter, r *http.Request, e error) {
	code := serverErrors.ConvertToEncodedErrorCode(status.Convert(e))
	httpmiddleware.CustomHTTPErrorHandler(ctx, w, r, serverErrors.NewEncodedError(code, e.Error()))
}

// Request is what a FaultFunc sees of one HTTP request.
type Request struct {
	Endpoint string // Write, Read, ... (see the constants), or "METHOD /path"
	N        int    // this request is the Nth to Endpoint since the start (or ResetCounts), from 1
	HTTP     *http.Request
	Body     []byte
}

// Fault is how to answer a request instead of the server.
type Fault struct {
	// Status, when non-zero, is sent instead of the server's answer.
	Status int
	// Header is added to the fault's response, e.g. {"Retry-After": {"1"}}.
	Header http.Header
	// Body defaults to an OpenFGA-style {"code": ..., "message": ...}.
	Body string
	// Delay waits before answering (with Status, or else by passing the
	// request on to the server). The wait ends early if the client goes away.
	Delay time.Duration
	// Drop closes the connection without an answer, as a server that died
	// or a network that failed would.
	Drop bool
}

// FaultFunc chooses a fault for a request, or nil to let it through.
type FaultFunc func(Request) *Fault

// FailNth answers the nth request (from 1) to endpoint with f.
func FailNth(endpoint string, n int, f Fault) FaultFunc { return FailRange(endpoint, n, n, f) }

// FailRange answers requests first..last (from 1, inclusive) to endpoint
// with f; last 0 means every request from first on, e.g.
// FailRange(Write, 3, 0, Fault{Status: 500}) lets two writes through and
// fails all later ones.
func FailRange(endpoint string, first, last int, f Fault) FaultFunc {
	return func(r Request) *Fault {
		if r.Endpoint != endpoint || r.N < first || (last > 0 && r.N > last) {
			return nil
		}
		return &f
	}
}

// SetFault replaces the fault function; nil removes it.
func (s *Server) SetFault(f FaultFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// Requests returns how many HTTP requests reached endpoint (faulted ones
// included) since the start or the last ResetCounts.
func (s *Server) Requests(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[endpoint]
}

// WriteRequests is Requests(Write).
func (s *Server) WriteRequests() int { return s.Requests(Write) }

// ReadRequests is Requests(Read).
func (s *Server) ReadRequests() int { return s.Requests(Read) }

// ResetCounts zeroes the request counts (and so the N a FaultFunc sees) and
// forgets the recorded Writes.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts = map[string]int{}
	s.writes = nil
}

// WriteCall is one Write request as it arrived over HTTP, in arrival order.
type WriteCall struct {
	Writes               []gsync.Tuple
	Deletes              []gsync.Tuple
	OnDuplicate          string // "ignore", "error" or ""
	OnMissing            string
	AuthorizationModelID string
	Status               int // the HTTP status answered (a fault's, or the server's); 0 if none was

}

// Writes returns the Write requests received since the start or the last
// ResetCounts.
func (s *Server) Writes() []WriteCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]WriteCall(nil), s.writes...)
}

func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))

		req := Request{Endpoint: endpointOf(r.Method, r.URL.Path), HTTP: r, Body: body}
		s.mu.Lock()
		s.counts[req.Endpoint]++
		req.N = s.counts[req.Endpoint]
		fault := s.fault
		writeIdx := -1
		if req.Endpoint == Write {
			writeIdx = len(s.writes)
			s.writes = append(s.writes, decodeWrite(body))
		}
		s.mu.Unlock()

		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			if writeIdx >= 0 {
				s.mu.Lock()
				if writeIdx < len(s.writes) { // ResetCounts may have run meanwhile
					s.writes[writeIdx].Status = rec.status
				}
				s.mu.Unlock()
			}
		}()

		var f *Fault
		if fault != nil {
			f = fault(req)
		}
		if f != nil && f.Delay > 0 {
			select {
			case <-time.After(f.Delay):
			case <-r.Context().Done():
				return
			}
		}
		if f != nil && f.Drop {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler) // closes the connection without an answer
		}
		if f != nil && f.Status != 0 {
			writeFault(rec, *f)
			return
		}
		if len(s.keys) > 0 && !s.authorized(rec, r) {
			return
		}
		next.ServeHTTP(rec, r)
	})
}

func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		writeError(r.Context(), w, r, status.Error(codes.Code(openfgav1.AuthErrorCode_bearer_token_missing), "missing bearer token"))
		return false
	}
	for _, k := range s.keys {
		if token == k {
			return true
		}
	}
	writeError(r.Context(), w, r, status.Error(codes.Code(openfgav1.AuthErrorCode_unauthenticated), "unauthenticated"))
	return false
}

func writeFault(w http.ResponseWriter, f Fault) {
	for k, vs := range f.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	body := f.Body
	if body == "" {
		code := "internal_error"
		switch {
		case f.Status == http.StatusTooManyRequests:
			code = "rate_limit_exceeded"
		case f.Status == http.StatusConflict:
			code = "Aborted"
		case f.Status == http.StatusUnauthorized:
			code = "unauthenticated"
		case f.Status < 500:
			code = "validation_error"
		}
		b, _ := json.Marshal(map[string]string{"code": code, "message": "fgatest: injected fault (HTTP " + strconv.Itoa(f.Status) + ")"})
		body = string(b)
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(f.Status)
	_, _ = io.WriteString(w, body)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.status, r.wrote = http.StatusOK, true
	}
	return r.ResponseWriter.Write(b)
}

func endpointOf(method, path string) string {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	if len(seg) == 0 || seg[0] != "stores" {
		return method + " " + path
	}
	switch {
	case len(seg) == 1 && method == http.MethodPost:
		return CreateStore
	case len(seg) == 1 && method == http.MethodGet:
		return ListStores
	case len(seg) == 2 && method == http.MethodGet:
		return GetStore
	case len(seg) == 2 && method == http.MethodDelete:
		return DeleteStore
	case len(seg) == 3 && seg[2] == "read":
		return Read
	case len(seg) == 3 && seg[2] == "write":
		return Write
	case len(seg) == 3 && seg[2] == "changes":
		return ReadChanges
	case len(seg) == 3 && seg[2] == "check":
		return Check
	case len(seg) == 3 && seg[2] == "authorization-models" && method == http.MethodGet:
		return ReadAuthorizationModels
	case len(seg) == 3 && seg[2] == "authorization-models" && method == http.MethodPost:
		return WriteAuthorizationModel
	case len(seg) == 4 && seg[2] == "authorization-models":
		return ReadAuthorizationModel
	}
	return method + " " + path
}

func decodeWrite(body []byte) WriteCall {
	type key struct{ User, Relation, Object string }
	var req struct {
		Writes *struct {
			TupleKeys   []key  `json:"tuple_keys"`
			OnDuplicate string `json:"on_duplicate"`
		} `json:"writes"`
		Deletes *struct {
			TupleKeys []key  `json:"tuple_keys"`
			OnMissing string `json:"on_missing"`
		} `json:"deletes"`
		AuthorizationModelID string `json:"authorization_model_id"`
	}
	_ = json.Unmarshal(body, &req) // a malformed body is the server's to reject
	c := WriteCall{AuthorizationModelID: req.AuthorizationModelID}
	if req.Writes != nil {
		c.OnDuplicate = req.Writes.OnDuplicate
		for _, k := range req.Writes.TupleKeys {
			c.Writes = append(c.Writes, gsync.Tuple(k))
		}
	}
	if req.Deletes != nil {
		c.OnMissing = req.Deletes.OnMissing
		for _, k := range req.Deletes.TupleKeys {
			c.Deletes = append(c.Deletes, gsync.Tuple(k))
		}
	}
	return c
}

// CreateStore creates a store and, when dsl is not empty, writes it as the
// store's model. modelID is "" without a model.
func (s *Server) CreateStore(t testing.TB, name, dsl string) (storeID, modelID string) {
	t.Helper()
	resp, err := s.fga.CreateStore(context.Background(), &openfgav1.CreateStoreRequest{Name: name})
	if err != nil {
		t.Fatalf("fgatest: create store %q: %v", name, err)
	}
	if dsl == "" {
		return resp.GetId(), ""
	}
	return resp.GetId(), s.WriteModel(t, resp.GetId(), dsl)
}

// WriteModel writes dsl as the store's newest model and returns its id.
func (s *Server) WriteModel(t testing.TB, storeID, dsl string) string {
	t.Helper()
	// Through JSON, as a client sends it: the proto straight from the DSL
	// parser is not quite what the JSON decodes to.
	js, err := transformer.TransformDSLToJSON(dsl)
	if err != nil {
		t.Fatalf("fgatest: parse model: %v", err)
	}
	model, err := transformer.LoadJSONStringToProto(js)
	if err != nil {
		t.Fatalf("fgatest: load model JSON: %v", err)
	}
	resp, err := s.fga.WriteAuthorizationModel(context.Background(), &openfgav1.WriteAuthorizationModelRequest{
		StoreId:         storeID,
		SchemaVersion:   model.GetSchemaVersion(),
		TypeDefinitions: model.GetTypeDefinitions(),
		Conditions:      model.GetConditions(),
	})
	if err != nil {
		t.Fatalf("fgatest: write model to store %s: %v", storeID, err)
	}
	return resp.GetAuthorizationModelId()
}

// WriteTuples writes tuples to the store under its latest model, as someone
// other than groupsync would.
func (s *Server) WriteTuples(t testing.TB, storeID string, tuples ...gsync.Tuple) {
	t.Helper()
	s.write(t, storeID, tuples, false)
}

// DeleteTuples deletes tuples from the store.
func (s *Server) DeleteTuples(t testing.TB, storeID string, tuples ...gsync.Tuple) {
	t.Helper()
	s.write(t, storeID, tuples, true)
}

func (s *Server) write(t testing.TB, storeID string, tuples []gsync.Tuple, del bool) {
	t.Helper()
	for len(tuples) > 0 {
		n := min(len(tuples), s.maxPerWrite)
		req := &openfgav1.WriteRequest{StoreId: storeID}
		if del {
			keys := make([]*openfgav1.TupleKeyWithoutCondition, n)
			for i, tu := range tuples[:n] {
				keys[i] = &openfgav1.TupleKeyWithoutCondition{User: tu.User, Relation: tu.Relation, Object: tu.Object}
			}
			req.Deletes = &openfgav1.WriteRequestDeletes{TupleKeys: keys}
		} else {
			keys := make([]*openfgav1.TupleKey, n)
			for i, tu := range tuples[:n] {
				keys[i] = &openfgav1.TupleKey{User: tu.User, Relation: tu.Relation, Object: tu.Object}
			}
			req.Writes = &openfgav1.WriteRequestWrites{TupleKeys: keys}
		}
		if _, err := s.fga.Write(context.Background(), req); err != nil {
			t.Fatalf("fgatest: write to store %s: %v", storeID, err)
		}
		tuples = tuples[n:]
	}
}

// Tuples returns every tuple in the store, sorted with gsync.SortTuples.
func (s *Server) Tuples(t testing.TB, storeID string) []gsync.Tuple {
	t.Helper()
	var out []gsync.Tuple
	token := ""
	for {
		resp, err := s.fga.Read(context.Background(), &openfgav1.ReadRequest{
			StoreId:           storeID,
			PageSize:          wrapperspb.Int32(100),
			ContinuationToken: token,
		})
		if err != nil {
			t.Fatalf("fgatest: read store %s: %v", storeID, err)
		}
		for _, tu := range resp.GetTuples() {
			k := tu.GetKey()
			out = append(out, gsync.Tuple{User: k.GetUser(), Relation: k.GetRelation(), Object: k.GetObject()})
		}
		token = resp.GetContinuationToken()
		if token == "" {
			break
		}
	}
	gsync.SortTuples(out)
	return out
}

// Check asks OpenFGA, as an application would, whether user has relation
// on object in the store under its latest model.
func (s *Server) Check(t testing.TB, storeID, user, relation, object string) bool {
	t.Helper()
	resp, err := s.fga.Check(context.Background(), &openfgav1.CheckRequest{
		StoreId:  storeID,
		TupleKey: &openfgav1.CheckRequestTupleKey{User: user, Relation: relation, Object: object},
	})
	if err != nil {
		t.Fatalf("fgatest: check %s %s %s in store %s: %v", user, relation, object, storeID, err)
	}
	return resp.GetAllowed()
}

// StoreID returns the id of the store named name, or "" when there is none.
func (s *Server) StoreID(t testing.TB, name string) string {
	t.Helper()
	resp, err := s.fga.ListStores(context.Background(), &openfgav1.ListStoresRequest{Name: name})
	if err != nil {
		t.Fatalf("fgatest: list stores: %v", err)
	}
	for _, st := range resp.GetStores() {
		if st.GetName() == name {
			return st.GetId()
		}
	}
	return ""
}
