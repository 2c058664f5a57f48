// Package msgraph is the Microsoft Entra ID source: it reads groups and
// their direct members through Microsoft Graph (msgraph-sdk-go, azidentity)
// and returns a complete snapshot or an error, never part of one.
//
// Groups are listed once with only the properties groupsync needs, in
// pages of up to 999; members are read with JSON $batch, 20 groups a
// request, a few requests in flight, every page followed. Throttled and
// failed requests and batch items are retried (Retry-After, backoff with
// jitter) up to a cap; beyond it the whole snapshot fails, so the engine
// never plans deletes from a partial read.
//
// With source.msgraph.delta enabled it reads incrementally, through Graph
// delta queries applied to the state the last applied run kept (delta.go,
// deltastate.go); Commit saves that state after a successful apply.
//
// SnapshotSlice reads some users and groups for a targeted run (slice.go):
// a user's groups through /memberOf and /transitiveMemberOf, a group's
// members as a full read reads them. It neither reads nor changes the
// incremental state.
//
// This is the only package that imports the Graph SDK: it is large and slow
// to compile.
package msgraph

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	abs "github.com/microsoft/kiota-abstractions-go"
	auth "github.com/microsoft/kiota-authentication-azure-go"
	khttp "github.com/microsoft/kiota-http-go"
	msgraphsdk "github.com/microsoftgraph/msgraph-sdk-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/groups"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"go.uber.org/zap"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/internal/retry"
	"github.com/groupsync/groupsync/state"
	gsync "github.com/groupsync/groupsync/sync"
)

// Source reads an Entra ID tenant.
type Source struct {
	cfg       config.MSGraph
	client    *msgraphsdk.GraphServiceClient
	adapter   *msgraphsdk.GraphRequestAdapter
	cred      azcore.TokenCredential
	scope     string
	baseURL   string
	log       *zap.Logger
	userAttrs []string
	stats     *Stats
	// retry is the policy for requests (retryTransport) and for $batch
	// items (sendBatches) alike.
	retry retry.Policy

	needUsers, wantUserState bool
	// userKey is mapping.user.key (WithMapping): how a slice finds users.
	userKey string

	// Incremental reads (cfg.Delta.Enabled): see delta.go.
	store    state.Store
	now      func() time.Time
	pending  *pendingState // the state of the last Snapshot, until Commit
	lastRead gsync.SourceRead
}

// Option adjusts a Source.
type Option func(*options)

type options struct {
	cred      azcore.TokenCredential
	transport http.RoundTripper
	wrap      func(http.RoundTripper) http.RoundTripper
	tokenTr   policy.Transporter
	log       *zap.Logger
	userAttrs []string
	// needUsers: the mapping keys users on a property, so the app needs
	// User.Read.All; wantUserState: skip_disabled/skip_guests want it.
	needUsers, wantUserState bool
	userKey                  string
	store                    state.Store
	now                      func() time.Time
}

// WithCredential replaces the credential that the config describes.
func WithCredential(c azcore.TokenCredential) Option { return func(o *options) { o.cred = c } }

// WithTransport sets the HTTP transport under Graph requests (and, when it
// is an *http.Client's transport too, token requests: see WithTokenTransport).
func WithTransport(t http.RoundTripper) Option { return func(o *options) { o.transport = t } }

// WithTransportWrapper wraps the HTTP transport under Graph requests (the
// one New builds, or the one WithTransport gives), for instrumentation:
// the caller keeps New's connection settings without copying them.
func WithTransportWrapper(wrap func(http.RoundTripper) http.RoundTripper) Option {
	return func(o *options) { o.wrap = wrap }
}

// WithTokenTransport carries azidentity's requests to the login authority.
func WithTokenTransport(t policy.Transporter) Option { return func(o *options) { o.tokenTr = t } }

// WithLogger logs warnings (vanished groups, retries) to l.
func WithLogger(l *zap.Logger) Option { return func(o *options) { o.log = l } }

// WithUserAttributes asks Graph for these user properties too, for a
// mapping keyed on attribute:<name>.
func WithUserAttributes(names ...string) Option {
	return func(o *options) { o.userAttrs = append(o.userAttrs, names...) }
}

// WithStateStore keeps the incremental state in st instead of the store
// that source.msgraph.delta.state describes.
func WithStateStore(st state.Store) Option { return func(o *options) { o.store = st } }

// WithClock replaces time.Now for the incremental state's ages (tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// New builds a source. It does not contact Graph or the authority yet.
func New(cfg config.MSGraph, opts ...Option) (*Source, error) {
	// msgraph-sdk-go-core creates its error registry on first use without
	// a lock; parallel $batch requests would race on it. Create it now.
	msgraphcore.GetErrorFactoryFromRegistry("")
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = zap.NewNop()
	}
	baseURL, scope, _ := endpoints(cfg)
	cred := o.cred
	if cred == nil {
		var err error
		if cred, err = credential(cfg, o.tokenTr); err != nil {
			return nil, err
		}
	}
	base := o.transport
	if base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = cfg.MaxParallelRequests * 2
		t.ForceAttemptHTTP2 = true
		base = t
	}
	if o.wrap != nil {
		base = o.wrap(base)
	}
	stats := &Stats{}
	pol := retry.Policy{MaxRetries: cfg.MaxRetries, MinWait: retryMinWait, Budget: time.Duration(cfg.MaxRetryWait)}
	rt := &retryTransport{base: base, policy: pol, timeout: time.Duration(cfg.RequestTimeout), stats: stats}

	host := hostOf(baseURL)
	authProvider, err := auth.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(cred, []string{scope}, []string{host})
	if err != nil {
		return nil, fmt.Errorf("msgraph: authentication provider: %w", err)
	}
	// Graph's middlewares minus kiota's retry handler (retryTransport
	// retries) and its compression handler: that gzips every request body
	// with a new compressor of about a megabyte, for bodies of a few hundred
	// bytes (a $batch of GETs): at a large tenant, half a gigabyte of
	// garbage a full read.
	var mws []khttp.Middleware
	for _, m := range msgraphcore.GetDefaultMiddlewaresWithOptions(&msgraphcore.GraphClientOptions{}) {
		switch m.(type) {
		case *khttp.RetryHandler, *khttp.CompressionHandler:
		default:
			mws = append(mws, m)
		}
	}
	httpClient := &http.Client{
		Transport:     khttp.NewCustomTransportWithParentTransport(rt, mws...),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	adapter, err := msgraphsdk.NewGraphRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(authProvider, nil, nil, httpClient)
	if err != nil {
		return nil, fmt.Errorf("msgraph: request adapter: %w", err)
	}
	adapter.SetBaseUrl(baseURL)
	src := &Source{
		cfg: cfg, client: newGraphClient(adapter), adapter: adapter, cred: cred,
		scope: scope, baseURL: baseURL, log: o.log, userAttrs: o.userAttrs, stats: stats, retry: pol,
		needUsers: o.needUsers, wantUserState: o.wantUserState, userKey: o.userKey, store: o.store, now: o.now,
	}
	if src.now == nil {
		src.now = time.Now
	}
	if cfg.Delta.Enabled && src.store == nil {
		if src.store, err = state.New(cfg.Delta.State); err != nil {
			return nil, err
		}
	}
	return src, nil
}

// retryMinWait is the first backoff wait, for answers without Retry-After.
const retryMinWait = 500 * time.Millisecond

var firstClient sync.Once

// newGraphClient is msgraphsdk.NewGraphServiceClient without its data race:
// that constructor registers the serializers (once is enough; the registry
// is locked) and, on every call, writes the SDK's global backing-store
// factory, which every model constructor reads. A source built while
// another one reads (the daemon, parallel tests) would race. So the first
// client is built by the SDK, before any model exists, and the others
// without the global write.
func newGraphClient(adapter *msgraphsdk.GraphRequestAdapter) *msgraphsdk.GraphServiceClient {
	var c *msgraphsdk.GraphServiceClient
	firstClient.Do(func() { c = msgraphsdk.NewGraphServiceClient(adapter) })
	if c != nil {
		return c
	}
	adapter.EnableBackingStore(nil) // this adapter's parse nodes; nil leaves the global alone
	c = &msgraphsdk.GraphServiceClient{GraphBaseServiceClient: msgraphsdk.GraphBaseServiceClient{
		BaseRequestBuilder: *abs.NewBaseRequestBuilder(adapter, "{+baseurl}", map[string]string{}),
	}}
	c.BaseRequestBuilder.PathParameters["baseurl"] = adapter.GetBaseUrl()
	return c
}

func hostOf(baseURL string) string {
	h := strings.TrimPrefix(strings.TrimPrefix(baseURL, "https://"), "http://")
	h, _, _ = strings.Cut(h, "/")
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return h
}

// Stats returns the request counters (shared, live).
func (s *Source) Stats() *Stats { return s.stats }

// groupSelect is every group property groupsync uses.
var groupSelect = []string{"id", "displayName", "groupTypes", "securityEnabled", "mailEnabled", "isAssignableToRole"}

// memberSelect is every member property groupsync uses; Graph returns the
// ones that exist on each member's type.
func (s *Source) memberSelect() []string {
	sel := []string{"id", "displayName", "userPrincipalName", "mail", "accountEnabled", "userType"}
	for _, a := range s.userAttrs {
		if !slices.Contains(sel, a) {
			sel = append(sel, a)
		}
	}
	return sel
}

// advancedQuery matches $filter operators that Graph serves only as
// "advanced queries", with ConsistencyLevel: eventual and $count=true.
var advancedQuery = regexp.MustCompile(`(?i)(\bne\b|\bnot\b|endswith\(|\$search)`)

// listed is a group as listed, before members are read.
type listed struct {
	id, name  string
	notSynced string // why the source keeps it only for nesting, or ""
	props     groupProps
}

// groupProps are the group properties that decide whether a group is synced.
type groupProps struct {
	name                                             string
	security, mail, unified, dynamic, roleAssignable bool
}

func propsOf(g models.Groupable) groupProps {
	types := g.GetGroupTypes()
	return groupProps{name: deref(g.GetDisplayName()), security: deref(g.GetSecurityEnabled()), mail: deref(g.GetMailEnabled()),
		unified: slices.Contains(types, "Unified"), dynamic: slices.Contains(types, "DynamicMembership"),
		roleAssignable: deref(g.GetIsAssignableToRole())}
}

// Snapshot reads the tenant: all of it, or with source.msgraph.delta
// enabled, what changed since the last committed state (see delta.go).
func (s *Source) Snapshot(ctx context.Context) (*gsync.Snapshot, error) {
	if s.cfg.Delta.Enabled {
		return s.deltaSnapshot(ctx)
	}
	start := time.Now()
	before := s.stats.at()
	groupsList, err := s.listGroups(ctx)
	if err != nil {
		return nil, err
	}
	r := newMemberReader(s)
	snap, err := r.read(ctx, groupsList)
	if err != nil {
		return nil, err
	}
	s.log.Info("Graph read",
		zap.Int("groups", len(snap.Groups)), zap.Int("users", len(snap.Users)),
		zap.Int64("requests", s.stats.Requests.Load()), zap.Int64("batch_items", s.stats.BatchItems.Load()),
		zap.Int64("retries", s.stats.Retries.Load()), zap.Int64("throttled", s.stats.Throttled.Load()),
		zap.Duration("took", time.Since(start)))
	s.lastRead = s.readSince(before, "full")
	return snap, nil
}

// listGroups lists every group that the Graph $filter lets through, and
// decides which of them are synced.
func (s *Source) listGroups(ctx context.Context) ([]listed, error) {
	q := &groups.GroupsRequestBuilderGetQueryParameters{Select: groupSelect, Top: ptr(int32(s.cfg.PageSize))}
	conf := &groups.GroupsRequestBuilderGetRequestConfiguration{QueryParameters: q}
	if f := s.cfg.Groups.Filter; f != "" {
		q.Filter = &f
		if advancedQuery.MatchString(f) {
			q.Count = ptr(true)
			conf.Headers = abs.NewRequestHeaders()
			conf.Headers.Add("ConsistencyLevel", "eventual")
		}
	}
	var out []listed
	page, err := s.client.Groups().Get(ctx, conf)
	for {
		if err != nil {
			return nil, fmt.Errorf("msgraph: list groups: %w", describe(err, "GroupMember.Read.All"))
		}
		for _, g := range page.GetValue() {
			out = append(out, s.classify(deref(g.GetId()), propsOf(g)))
		}
		next := page.GetOdataNextLink()
		if next == nil || *next == "" {
			break
		}
		// nextLink keeps the query; the header must be sent again.
		page, err = s.client.Groups().WithUrl(*next).Get(ctx, &groups.GroupsRequestBuilderGetRequestConfiguration{Headers: conf.Headers})
	}
	return out, nil
}

// classify applies the source's group-kind settings.
func (s *Source) classify(id string, p groupProps) listed {
	l := listed{id: id, name: p.name, props: p}
	c := s.cfg.Groups
	switch {
	case c.SecurityEnabledOnly && !p.security:
		l.notSynced = "not security-enabled (source.msgraph.groups.security_enabled_only)"
	case p.mail && !p.security && !p.unified && !c.IncludeDistribution:
		l.notSynced = "distribution list (set source.msgraph.groups.include_distribution to sync it)"
	case c.SkipDynamic && p.dynamic:
		l.notSynced = "dynamic membership (source.msgraph.groups.skip_dynamic)"
	case c.SkipRoleAssignable && p.roleAssignable:
		l.notSynced = "role-assignable (source.msgraph.groups.skip_role_assignable)"
	}
	return l
}

// readSince describes a read that began when the counters were before.
func (s *Source) readSince(before statsAt, mode string) gsync.SourceRead {
	now := s.stats.at()
	return gsync.SourceRead{Mode: mode, Requests: now.requests - before.requests, BatchItems: now.batchItems - before.batchItems,
		Retries: now.retries - before.retries, Throttled: now.throttled - before.throttled, Waited: now.waited - before.waited}
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
