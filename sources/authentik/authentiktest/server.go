// Package authentiktest is a wire-level fake of authentik's REST API (v3),
// in the manner of net/http/httptest: a real HTTP server on a local port
// that a client talks to as to authentik, with only the base URL and the
// token changed. Its documents follow authentik's published OpenAPI schema
// (schema.yml; Group, PartialUser/GroupMember, User, Pagination,
// GenericError) and its Django REST framework behaviour:
//
//	GET /api/v3/core/groups/        page, page_size, include_users (default true), name, search; ordered by name
//	GET /api/v3/core/groups/{pk}/   include_users
//	GET /api/v3/core/users/         page, page_size, include_groups (default true), username, is_active, type; ordered by username
//	GET /api/v3/core/users/{pk}/
//	GET /api/v3/core/users/me/      the token's user
//
// Lists are paged as authentik pages them:
//
//	{"pagination": {"next": 2, "previous": 0, "count": 250, "current": 1,
//	  "total_pages": 3, "start_index": 1, "end_index": 100}, "results": [...]}
//
// next and previous are page numbers, 0 when there is none; page_size
// defaults to 100; a page past the end, or not a number, is 404 {"detail":
// "Invalid page."}. Requests need "Authorization: Bearer <token>": without
// it, or with another token, authentik (DRF) answers 403 {"detail": ...}.
// Other paths answer 404 and other methods 405, as authentik does.
//
// Groups are served in the current schema (2025.12 and later): parents
// and parents_obj, children, users and users_obj (PartialUser). With
// WithLegacyParent they are served as authentik 2025.10 and earlier served
// them: one parent and parent_name, users_obj as GroupMember; a group with
// more than one parent cannot be served so.
//
// Faults: FailNext and WithFaults fail requests with a status (429 with
// Retry-After, 5xx with an HTML body as a reverse proxy sends), a dropped
// connection, or a truncated body; Mutate changes the tenant between or
// during reads; WithHiddenUsers hides users from /core/users/ as authentik
// does for a token whose user lacks the view permission.
//
//	tenant := &authentiktest.Tenant{Users: ..., Groups: ...}
//	srv := authentiktest.New(t, tenant)
//	cfg.URL, cfg.Token = srv.URL, config.Secret(srv.Token())
//	srv.FailNext(2, http.StatusServiceUnavailable)
package authentiktest

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// DefaultToken is the API token the server accepts unless WithToken says
// otherwise.
const DefaultToken = "authentiktest-api-token"

// Server is a fake authentik. All methods are safe for concurrent use.
type Server struct {
	URL string // base URL, such as http://127.0.0.1:41234; the API is under /api/v3

	hs  *httptest.Server
	cfg settings

	mu        sync.Mutex // guards what follows
	tenant    *Tenant
	faultFunc FaultFunc
	failQueue []Fault
	latency   time.Duration

	requests atomic.Int64
	pages    [numEndpoints]atomic.Int64
	faults   atomic.Int64
}

type settings struct {
	token         string
	legacy        bool
	hiddenUsers   func(pk int) bool
	faults        FaultFunc
	latency       time.Duration
	superuser     bool
	systemPerms   []string
	tokenUserPK   int
	tokenUserName string
}

// Option configures a Server.
type Option func(*settings)

// WithToken sets the API token requests must carry.
func WithToken(token string) Option { return func(s *settings) { s.token = token } }

// WithLegacyParent serves groups as authentik 2025.10 and earlier did:
// "parent" (one pk or null) and "parent_name" instead of "parents".
func WithLegacyParent() Option { return func(s *settings) { s.legacy = true } }

// WithHiddenUsers hides the users for which hidden returns true from
// /core/users/ (list and detail: 404), as authentik's object permission
// filter does when the token's user may not view them; groups still list
// their pks.
func WithHiddenUsers(hidden func(pk int) bool) Option {
	return func(s *settings) { s.hiddenUsers = hidden }
}

// WithTokenUser describes the token's user for /core/users/me/:
// superuser or not, and its system permissions. The default is a
// superuser.
func WithTokenUser(superuser bool, systemPermissions ...string) Option {
	return func(s *settings) { s.superuser, s.systemPerms = superuser, systemPermissions }
}

// WithFaults installs a fault hook; see FaultFunc.
func WithFaults(f FaultFunc) Option { return func(s *settings) { s.faults = f } }

// WithLatency delays every answer by d.
func WithLatency(d time.Duration) Option { return func(s *settings) { s.latency = d } }

// New starts a server for the tenant, closed when the test ends. The
// tenant is copied and checked; an invalid tenant fails the test.
func New(t testing.TB, tenant *Tenant, opts ...Option) *Server {
	t.Helper()
	s, err := NewServer(tenant, opts...)
	if err != nil {
		t.Fatalf("authentiktest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// NewServer is New outside a test; call Close.
func NewServer(tenant *Tenant, opts ...Option) (*Server, error) {
	cfg := settings{token: DefaultToken, superuser: true, tokenUserPK: 1_000_000, tokenUserName: "groupsync-sync"}
	for _, o := range opts {
		o(&cfg)
	}
	n, err := tenant.normalize()
	if err != nil {
		return nil, err
	}
	if cfg.legacy {
		if err := legacyCheck(n); err != nil {
			return nil, err
		}
	}
	s := &Server{cfg: cfg, tenant: n, faultFunc: cfg.faults, latency: cfg.latency}
	s.hs = httptest.NewServer(s)
	s.URL = s.hs.URL
	return s, nil
}

// Close shuts the server down.
func (s *Server) Close() { s.hs.Close() }

// Token is the API token the server accepts.
func (s *Server) Token() string { return s.cfg.token }

// Tenant returns a copy of the current tenant (normalized: group pks
// filled in, parents as pks).
func (s *Server) Tenant() *Tenant {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tenant.Clone()
}

// Mutate changes the tenant; later requests see the change. It may be
// called from a FaultFunc to change the tenant during a read.
func (s *Server) Mutate(fn func(*Tenant)) error {
	s.mu.Lock()
	c := s.tenant.Clone()
	s.mu.Unlock()
	fn(c)
	n, err := c.normalize()
	if err != nil {
		return err
	}
	if s.cfg.legacy {
		if err := legacyCheck(n); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.tenant = n
	s.mu.Unlock()
	return nil
}

// SetLatency changes the delay before every answer.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	s.latency = d
	s.mu.Unlock()
}

// Stats are the server's counters.
type Stats struct {
	Requests   int64 // every request, failed ones included
	GroupPages int64 // pages of /core/groups/ served
	UserPages  int64 // pages of /core/users/ served
	Faults     int64 // requests failed on purpose
}

// Stats returns the counters so far.
func (s *Server) Stats() Stats {
	return Stats{Requests: s.requests.Load(), GroupPages: s.pages[epGroups].Load(), UserPages: s.pages[epUsers].Load(), Faults: s.faults.Load()}
}

// ServeHTTP answers like authentik.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	lat := s.latency
	s.mu.Unlock()
	if lat > 0 {
		select {
		case <-time.After(lat):
		case <-r.Context().Done():
			return
		}
	}
	ep, rest := route(r.URL.Path)
	if f := s.pickFault(r, ep); f != nil {
		s.faults.Add(1)
		s.serveFault(w, f)
		return
	}
	s.serveAPI(w, r, ep, rest)
}
