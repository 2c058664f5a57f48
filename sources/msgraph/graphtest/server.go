package graphtest

import (
	"cmp"
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Server is a fake Microsoft Graph v1.0 and Entra ID token endpoint on a
// local port. All methods are safe for concurrent use.
type Server struct {
	// URL is the base URL, such as http://127.0.0.1:41234, without /v1.0:
	// the SDK's base URL is URL+"/v1.0" and azidentity's authority host is
	// URL+"/".
	URL string

	hs  *httptest.Server
	cfg config

	ix       atomic.Pointer[index]
	mutateMu sync.Mutex
	delta    deltaLog
	subs     subStore // change notifications: subscriptions.go

	mu        sync.Mutex // guards what follows
	latency   time.Duration
	perms     permSet
	faultFunc FaultFunc
	failQueue []Fault
	bucket    throttle
	tokenReqs []TokenRequest
	now       func() time.Time

	counts        [numEndpoints]atomic.Int64
	requests      atomic.Int64
	batchItems    atomic.Int64
	throttled     atomic.Int64
	faults        atomic.Int64
	resourceUnits atomic.Int64
	requestSeq    atomic.Uint64
}

type config struct {
	token          string
	perms          []string
	clientID       string
	clientSecret   string
	tenantID       string
	latency        time.Duration
	throttle       int
	throttleWindow time.Duration
	faults         FaultFunc
	delta          DeltaOptions
}

// Option configures a Server.
type Option func(*config)

// DefaultToken is the access token the server accepts and issues unless
// WithToken says otherwise.
const DefaultToken = "graphtest-token"

// DefaultTenantID is the tenant id the token endpoint and /organization use
// unless WithTenantID says otherwise.
const DefaultTenantID = "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a00"

// WithToken sets the bearer token Graph requests must carry and the token
// endpoint issues.
func WithToken(token string) Option { return func(c *config) { c.token = token } }

// WithPermissions sets the application permissions (roles) the token
// grants, replacing the default GroupMember.Read.All and User.Read.All.
func WithPermissions(perms ...string) Option {
	return func(c *config) { c.perms = slices.Clone(perms) }
}

// WithClientID makes the token endpoint refuse other client ids.
func WithClientID(id string) Option { return func(c *config) { c.clientID = id } }

// WithClientSecret makes the token endpoint refuse other client secrets;
// without it any secret is accepted. Client assertions are only checked to
// be well-formed JWTs.
func WithClientSecret(secret string) Option { return func(c *config) { c.clientSecret = secret } }

// WithTenantID sets the directory (tenant) id.
func WithTenantID(id string) Option { return func(c *config) { c.tenantID = id } }

// WithLatency delays every request by d before answering (a $batch once,
// not per item: Graph runs the items in parallel).
func WithLatency(d time.Duration) Option { return func(c *config) { c.latency = d } }

// WithThrottling throttles Graph requests like Graph's identity throttling:
// a bucket of capacity resource units (DefaultThrottleCapacity is Graph's
// smallest) refilled over the window (10 s), each request costing units (see
// Stats.ResourceUnits); when empty, 429 with Retry-After. 0 turns it off,
// which is the default.
func WithThrottling(capacity int) Option { return func(c *config) { c.throttle = capacity } }

// WithThrottleWindow sets the throttling window, 10 s by default. A short
// window refills the budget quickly, but Retry-After stays in whole seconds,
// at least 1, as on Graph (kiota truncates fractions, so "0.3" would mean
// "retry now").
func WithThrottleWindow(d time.Duration) Option { return func(c *config) { c.throttleWindow = d } }

// WithFaults installs a fault hook; see FaultFunc.
func WithFaults(f FaultFunc) Option { return func(c *config) { c.faults = f } }

// New starts a plain-HTTP server for the tenant, closed when the test ends.
// The tenant is copied: later changes go through Mutate or RemoveGroup.
func New(t testing.TB, tenant *Tenant, opts ...Option) *Server {
	t.Helper()
	s, err := start(tenant, false, opts)
	if err != nil {
		t.Fatalf("graphtest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// NewTLS is New over HTTPS with a self-signed certificate, which azidentity
// needs for its authority. Use Client (or its Transport) to trust it.
func NewTLS(t testing.TB, tenant *Tenant, opts ...Option) *Server {
	t.Helper()
	s, err := start(tenant, true, opts)
	if err != nil {
		t.Fatalf("graphtest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// NewServer starts a plain-HTTP server outside a test; Close it when done.
// It panics if the tenant does not validate.
func NewServer(tenant *Tenant, opts ...Option) *Server {
	s, err := start(tenant, false, opts)
	if err != nil {
		panic("graphtest: " + err.Error())
	}
	return s
}

// NewTLSServer is NewServer over HTTPS.
func NewTLSServer(tenant *Tenant, opts ...Option) *Server {
	s, err := start(tenant, true, opts)
	if err != nil {
		panic("graphtest: " + err.Error())
	}
	return s
}

func start(tenant *Tenant, tls bool, opts []Option) (*Server, error) {
	cfg := config{
		token:          DefaultToken,
		perms:          []string{"GroupMember.Read.All", "User.Read.All"},
		tenantID:       DefaultTenantID,
		throttleWindow: 10 * time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if tenant == nil {
		tenant = &Tenant{}
	}
	if err := tenant.Validate(); err != nil {
		return nil, fmt.Errorf("invalid tenant: %w", err)
	}
	s := &Server{
		cfg:       cfg,
		latency:   cfg.latency,
		perms:     newPermSet(cfg.perms),
		faultFunc: cfg.faults,
		now:       time.Now,
		bucket:    throttle{window: cmp.Or(max(cfg.throttleWindow, 0), 10*time.Second)},
	}
	s.SetThrottling(cfg.throttle)
	s.ix.Store(newIndex(tenant.Clone()))
	if tls {
		s.hs = httptest.NewTLSServer(s)
	} else {
		s.hs = httptest.NewServer(s)
	}
	s.URL = s.hs.URL
	return s, nil
}

// Close shuts the server down, waiting for requests in flight.
func (s *Server) Close() { s.hs.Close() }

// Client returns an HTTP client that trusts the server's certificate (for a
// TLS server) and goes to it; pass it, or its Transport, to azidentity and
// the SDK.
func (s *Server) Client() *http.Client { return s.hs.Client() }

// Certificate returns the TLS server's certificate, nil for plain HTTP.
func (s *Server) Certificate() *x509.Certificate { return s.hs.Certificate() }

// GraphURL is the SDK's base URL: URL + "/v1.0".
func (s *Server) GraphURL() string { return s.URL + "/v1.0" }

// AuthorityHost is azidentity's cloud.Configuration.ActiveDirectoryAuthorityHost.
func (s *Server) AuthorityHost() string { return s.URL + "/" }

// Token is the access token the server accepts.
func (s *Server) Token() string { return s.cfg.token }

// TenantID is the directory id the token endpoint serves.
func (s *Server) TenantID() string { return s.cfg.tenantID }

// setClock replaces time.Now, for tests of throttling.
func (s *Server) setClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

func (s *Server) clock() time.Time {
	s.mu.Lock()
	now := s.now
	s.mu.Unlock()
	return now()
}

// SetLatency changes the delay added to every request.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetPermissions replaces the application permissions the token grants.
func (s *Server) SetPermissions(perms ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.perms = newPermSet(perms)
}

// Tenant returns a copy of the tenant as the server now has it.
func (s *Server) Tenant() *Tenant { return s.ix.Load().t.Clone() }

// Mutate changes the tenant: fn edits a copy, which replaces the tenant if
// it validates. Requests in flight finish on the old tenant; pages read
// afterwards see the new one (a nextLink resumes at the object it pointed
// to, or where it would have been).
func (s *Server) Mutate(fn func(*Tenant)) error {
	s.mutateMu.Lock()
	defer s.mutateMu.Unlock()
	t := s.ix.Load().t.Clone()
	fn(t)
	if err := t.Validate(); err != nil {
		return err
	}
	old := s.ix.Load()
	s.commit(newIndex(t))
	s.notifyTenantChange(old, s.ix.Load())
	return nil
}

// RemoveGroup deletes a group, and its membership in other groups, as
// deleting it in Entra ID does. It reports whether the group existed.
func (s *Server) RemoveGroup(id string) bool {
	found := false
	s.Mutate(func(t *Tenant) {
		t.Groups = slices.DeleteFunc(t.Groups, func(g Group) bool {
			found = found || g.ID == id
			return g.ID == id
		})
		for i := range t.Groups {
			t.Groups[i].Members = slices.DeleteFunc(t.Groups[i].Members, func(m string) bool { return m == id })
		}
	})
	return found
}

type batchItemKey struct{}

// BatchItemID returns the id of the batch item a request stands for, for
// fault hooks; ok is false for a request that came over HTTP.
func BatchItemID(r *http.Request) (id string, ok bool) {
	id, ok = r.Context().Value(batchItemKey{}).(string)
	return id, ok
}

// EndpointOf classifies a request, for fault hooks.
func EndpointOf(r *http.Request) Endpoint { return parseRoute(r.URL.Path).ep }

// route is a parsed request path.
type route struct {
	ep      Endpoint
	id      string // group or user id
	cast    kind
	hasCast bool
	count   bool        // a /$count segment: the number of objects, as text
	user    bool        // memberOf and transitiveMemberOf: of a user (else of a group)
	tenant  string      // for the token endpoints
	err     *graphError // for a path Graph would refuse
	sub     subRoute    // /subscriptions: subscriptions.go
}

func parseRoute(path string) route {
	rest, ok := strings.CutPrefix(path, "/v1.0/")
	if !ok {
		return parseAuthRoute(path)
	}
	seg := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	if n := len(seg); n > 1 && seg[n-1] == "$count" {
		rt := parseRoute("/v1.0/" + strings.Join(seg[:n-1], "/"))
		switch rt.ep {
		case EndpointGroups, EndpointUsers, EndpointMembers, EndpointTransitiveMembers, EndpointMemberOf, EndpointTransitiveMemberOf:
			rt.count = true
			return rt
		}
		return route{ep: EndpointOther, err: newError(http.StatusNotImplemented, "NotImplemented", "graphtest does not implement %s.", path)}
	}
	is := func(i int, name string) bool { return i < len(seg) && strings.EqualFold(seg[i], name) }
	switch {
	case len(seg) == 1 && seg[0] == "$batch":
		return route{ep: EndpointBatch}
	case len(seg) == 1 && is(0, "organization"):
		return route{ep: EndpointOrganization}
	case is(0, "subscriptions"):
		return parseSubscriptionRoute(seg)
	case is(0, "groups") || is(0, "users"):
		if len(seg) > 1 && isDelta(seg[1]) {
			if len(seg) > 2 {
				break
			}
			if is(0, "users") {
				return route{ep: EndpointUsersDelta}
			}
			return route{ep: EndpointGroupsDelta}
		}
		if len(seg) >= 3 && len(seg) <= 4 && (is(2, "memberOf") || is(2, "transitiveMemberOf")) {
			return parseMemberOf(seg, is(0, "users"))
		}
		if is(0, "users") {
			switch len(seg) {
			case 1:
				return route{ep: EndpointUsers}
			case 2:
				return route{ep: EndpointUser, id: seg[1]}
			}
			break
		}
		switch {
		case len(seg) == 1:
			return route{ep: EndpointGroups}
		case len(seg) == 2:
			return route{ep: EndpointGroup, id: seg[1]}
		case len(seg) <= 4 && (is(2, "members") || is(2, "transitiveMembers")):
			rt := route{ep: EndpointMembers, id: seg[1]}
			if is(2, "transitiveMembers") {
				rt.ep = EndpointTransitiveMembers
			}
			if len(seg) == 4 {
				rt.cast, rt.hasCast = parseCast(seg[3])
				if !rt.hasCast {
					rt.err = newError(http.StatusBadRequest, "BadRequest", "Resource not found for the segment '%s'.", seg[3])
				}
			}
			return rt
		}
	}
	return route{ep: EndpointOther, err: newError(http.StatusNotImplemented, "NotImplemented", "graphtest does not implement %s.", path)}
}

// isDelta matches the delta function segment: Graph's links say "delta",
// the SDK sends "delta()", the documentation also names it
// "microsoft.graph.delta".
func isDelta(seg string) bool {
	seg = strings.TrimSuffix(strings.ToLower(seg), "()")
	return seg == "delta" || seg == "microsoft.graph.delta"
}

// parseCast reads a type cast segment: the SDK sends "graph.user", Graph's
// documentation "microsoft.graph.user"; both work.
func parseCast(s string) (kind, bool) {
	name, ok := strings.CutPrefix(strings.ToLower(s), "microsoft.")
	if !ok {
		name = strings.ToLower(s)
	}
	name, ok = strings.CutPrefix(name, "graph.")
	if !ok {
		return 0, false
	}
	for k, n := range kindNames {
		if strings.EqualFold(n, name) {
			return kind(k), true
		}
	}
	return 0, false
}

// ServeHTTP answers one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := parseRoute(r.URL.Path)
	s.requests.Add(1)
	s.counts[rt.ep].Add(1)
	s.setRequestIDs(w, r)
	if !s.delay(r.Context()) {
		return
	}
	serve := func(w http.ResponseWriter) {
		if rt.sub.kind != subNone {
			s.serveSubscription(w, r, rt)
			return
		}
		switch rt.ep {
		case EndpointOpenIDConfiguration:
			s.serveOpenIDConfiguration(w, r, rt)
		case EndpointInstanceDiscovery:
			s.serveInstanceDiscovery(w, r, rt)
		case EndpointToken:
			s.serveToken(w, r, rt)
		case EndpointBatch:
			s.serveBatch(w, r)
		default:
			s.serveGraph(w, r, rt, false)
		}
	}
	if f := s.pickFault(r, rt.ep); f != nil {
		s.serveFaulty(w, r, f, serve)
		return
	}
	serve(w)
}

// delay sleeps for the latency; false if the client went away meanwhile.
func (s *Server) delay(ctx context.Context) bool {
	s.mu.Lock()
	d := s.latency
	s.mu.Unlock()
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Server) setRequestIDs(w http.ResponseWriter, r *http.Request) {
	n := s.requestSeq.Add(1)
	id := fmt.Sprintf("00000000-0000-4000-8000-%012x", n)
	w.Header().Set("request-id", id)
	w.Header().Set("client-request-id", clientRequestID(r, id))
}

// writeError writes a Graph error answer.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, e *graphError) {
	requestID := w.Header().Get("request-id")
	if e.retryAfter != "" {
		w.Header().Set("Retry-After", e.retryAfter)
	}
	s.writeJSON(w, e.status, appendError(nil, r, e, requestID, s.clock()))
}

func (s *Server) writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", jsonContentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-cache")
	h.Set("OData-Version", "4.0")
	w.WriteHeader(status)
	w.Write(body)
}
