// Package authentik is the authentik source: it reads groups and users
// through authentik's REST API (v3) with an API token, and returns a
// complete snapshot or an error.
//
// A read lists every group (GET /api/v3/core/groups/?include_users=false,
// which still carries each group's member pks) and then every user (GET
// /api/v3/core/users/?include_groups=false), page by page. Lists are paged
// by page number, so a group or user created or deleted mid-read shifts the
// pages; the read checks that each list came back whole (the count did not
// change, no object twice, every member pk and parent pk found) and reads
// again, up to three times, before it gives up with an error.
//
// Mapping, and the decisions behind it:
//
//   - A user's id is its uid, the SHA-256 digest authentik derives from the
//     install and the user's pk, which is also the default OIDC subject
//     ("sub") of authentik's providers: tuples keyed by id name the users
//     as the applications' tokens do. UPN is the username, Mail the email;
//     attributes hold pk, uid, uuid, username, name, type, path and every
//     string (or number, or boolean) in the user's custom attributes.
//   - is_active false is Disabled. Type "external" (users outside the
//     organisation) is Guest, as Entra's guests are.
//   - Service accounts (type service_account and internal_service_account)
//     are machine identities: like Entra's service principals they are
//     reported (not_user_or_group) and left out, unless
//     include_service_accounts is set.
//   - Hierarchy: authentik makes the members of a child group effective
//     members of its parents. So a group with parent P (authentik 2025.10
//     and earlier: "parent") or parents P1, P2 (2025.12 and later:
//     "parents") is a subgroup of each parent: mapping.nesting flatten
//     gives P the child's users, userset writes group:child#member on P.
//     Cycles are fine. authentik stops at 20 levels; groupsync does not.
//
// SnapshotSlice reads some users and groups for a targeted run
// (slice.go): a user with their groups and those groups' parents, a group
// with its children and the members of all of them.
package authentik

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/groupsync/groupsync/config"
	gsync "github.com/groupsync/groupsync/sync"
)

var _ gsync.ReadDescriber = (*Source)(nil)

// Source reads an authentik instance.
type Source struct {
	cfg     config.Authentik
	base    string // .../api/v3/
	client  *http.Client
	log     *zap.Logger
	stats   *Stats
	minWait time.Duration
	userKey string

	mu       sync.Mutex
	lastRead gsync.SourceRead
}

// Stats counts what a source sent; safe for concurrent use.
type Stats struct {
	Requests    atomic.Int64 // HTTP requests, retries included
	Retries     atomic.Int64 // retried requests
	Throttled   atomic.Int64 // 429 answers that were retried
	WaitedNanos atomic.Int64 // time spent waiting to retry
	Rereads     atomic.Int64 // whole reads repeated because a list changed during the read
}

// since is what s counted after before was taken, as a full read.
func (s *Stats) since(before statsAt) gsync.SourceRead {
	now := s.at()
	return gsync.SourceRead{Mode: "full", Requests: now.requests - before.requests, Retries: now.retries - before.retries,
		Throttled: now.throttled - before.throttled, Waited: time.Duration(now.waited - before.waited)}
}

// statsAt is a reading of Stats.
type statsAt struct{ requests, retries, throttled, waited int64 }

func (s *Stats) at() statsAt {
	return statsAt{s.Requests.Load(), s.Retries.Load(), s.Throttled.Load(), s.WaitedNanos.Load()}
}

// Option adjusts a Source.
type Option func(*options)

type options struct {
	log       *zap.Logger
	transport http.RoundTripper
	wrap      []func(http.RoundTripper) http.RoundTripper
	minWait   time.Duration
	userKey   string // mapping.user.key, for slices (WithMapping)
}

// WithLogger logs warnings and a summary of each read to l.
func WithLogger(l *zap.Logger) Option { return func(o *options) { o.log = l } }

// WithTransport replaces the HTTP transport (which the config's TLS
// settings otherwise build).
func WithTransport(t http.RoundTripper) Option { return func(o *options) { o.transport = t } }

// WithTransportWrapper wraps the transport the source sends with: the one
// it builds with the config's TLS settings (wrap is given that
// *http.Transport, so it may keep it to close idle connections), or the
// one WithTransport gave. Use it to count or trace requests without
// copying the source's TLS settings. Wrappers given more than once apply
// in order, the last outermost.
func WithTransportWrapper(wrap func(http.RoundTripper) http.RoundTripper) Option {
	return func(o *options) {
		if wrap != nil {
			o.wrap = append(o.wrap, wrap)
		}
	}
}

// WithRetryMinWait sets the first backoff (500ms by default), for tests.
func WithRetryMinWait(d time.Duration) Option { return func(o *options) { o.minWait = d } }

// New builds a source. It does not contact authentik yet.
func New(cfg config.Authentik, opts ...Option) (*Source, error) {
	o := options{minWait: 500 * time.Millisecond}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = zap.NewNop()
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("source.authentik.url: %q is not a URL", cfg.URL)
	}
	tr := o.transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipTLSVerify} //nolint:gosec // a loudly named opt-in
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("source.authentik.ca_file: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("source.authentik.ca_file: %s holds no PEM certificate", cfg.CAFile)
			}
			t.TLSClientConfig.RootCAs = pool
		}
		tr = t
	}
	for _, w := range o.wrap {
		tr = w(tr)
	}
	if cfg.InsecureSkipTLSVerify {
		o.log.Warn("source.authentik.insecure_skip_tls_verify is on: authentik's certificate is not checked, so anyone on the path can take the API token")
	}
	return &Source{
		cfg: cfg, base: strings.TrimSuffix(cfg.URL, "/") + "/api/v3/", log: o.log, stats: &Stats{}, minWait: o.minWait, userKey: o.userKey,
		// Redirects are not followed: one would carry the token elsewhere,
		// and authentik itself never redirects an API call.
		client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}, nil
}

// Stats returns the request counters (shared, live, over every read and
// Check).
func (s *Source) Stats() *Stats { return s.stats }

// LastRead says what the last Snapshot sent (a full read, always): its
// requests, retries, retried 429 answers and time spent waiting, rereads
// included.
func (s *Source) LastRead() gsync.SourceRead {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastRead
}

// The API's documents, as far as groupsync reads them. Both group shapes
// are accepted: "parent" (2025.10 and earlier) and "parents" (2025.12 on).
type (
	pagination struct {
		Next       int `json:"next"`
		Count      int `json:"count"`
		Current    int `json:"current"`
		TotalPages int `json:"total_pages"`
	}
	apiGroup struct {
		PK      string   `json:"pk"`
		Name    string   `json:"name"`
		Parent  *string  `json:"parent"`
		Parents []string `json:"parents"`
		Users   []int    `json:"users"`
	}
	apiUser struct {
		PK         int            `json:"pk"`
		Username   string         `json:"username"`
		Name       string         `json:"name"`
		IsActive   *bool          `json:"is_active"`
		Email      string         `json:"email"`
		Attributes map[string]any `json:"attributes"`
		UID        string         `json:"uid"`
		UUID       string         `json:"uuid"`
		Path       string         `json:"path"`
		Type       string         `json:"type"`
	}
)

// errChanged is a read that saw the directory change under it.
type errChanged struct{ why string }

func (e *errChanged) Error() string { return e.why }

// maxReads is how often a read is tried when lists change during it.
const maxReads = 3

// Snapshot reads the instance.
func (s *Source) Snapshot(ctx context.Context) (*gsync.Snapshot, error) {
	start := time.Now()
	before := s.stats.at()
	defer func() {
		rd := s.stats.since(before)
		s.mu.Lock()
		s.lastRead = rd
		s.mu.Unlock()
	}()
	for attempt := 1; ; attempt++ {
		snap, err := s.read(ctx)
		var changed *errChanged
		switch {
		case err == nil:
			s.log.Info("authentik read", zap.Int("groups", len(snap.Groups)), zap.Int("users", len(snap.Users)),
				zap.Int64("requests", s.stats.Requests.Load()), zap.Int64("retries", s.stats.Retries.Load()),
				zap.Duration("took", time.Since(start)))
			return snap, nil
		case errors.As(err, &changed) && attempt < maxReads:
			s.stats.Rereads.Add(1)
			s.log.Warn("authentik changed during the read; reading again", zap.String("why", changed.why), zap.Int("attempt", attempt))
		case errors.As(err, &changed):
			return nil, fmt.Errorf("authentik: %d reads in a row were inconsistent, the last because %s; if nothing is changing in authentik, the token's user cannot see every group and user: give it the global permissions to view groups and users (or use a superuser's token)", maxReads, changed.why)
		default:
			return nil, err
		}
	}
}

func (s *Source) read(ctx context.Context) (*gsync.Snapshot, error) {
	groups, err := list[apiGroup](ctx, s, "core/groups/", url.Values{"include_users": {"false"}}, func(g apiGroup) string { return g.PK })
	if err != nil {
		return nil, err
	}
	users, err := list[apiUser](ctx, s, "core/users/", url.Values{"include_groups": {"false"}}, func(u apiUser) string { return strconv.Itoa(u.PK) })
	if err != nil {
		return nil, err
	}
	return s.build(groups, users)
}

// list reads every page of a list endpoint and checks it came back whole.
func list[T any](ctx context.Context, s *Source, path string, query url.Values, key func(T) string) ([]T, error) {
	var (
		out   []T
		count = -1
		seen  = map[string]bool{}
	)
	for page := 1; ; {
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		q.Set("page", strconv.Itoa(page))
		q.Set("page_size", strconv.Itoa(s.cfg.PageSize))
		var doc struct {
			Pagination *pagination `json:"pagination"`
			Results    []T         `json:"results"`
		}
		if err := s.get(ctx, path, q, &doc); err != nil {
			var ae *APIError
			if page > 1 && errors.As(err, &ae) && ae.Status == http.StatusNotFound {
				return nil, &errChanged{why: fmt.Sprintf("page %d of %s vanished (fewer objects than when the read began)", page, path)}
			}
			return nil, fmt.Errorf("authentik: list %s: %w", strings.TrimSuffix(path, "/"), err)
		}
		p := doc.Pagination
		if p == nil || p.Current != page {
			return nil, fmt.Errorf("authentik: list %s: page %d came back without authentik's pagination object; is source.authentik.url authentik?", path, page)
		}
		if count == -1 {
			count = p.Count
		} else if p.Count != count {
			return nil, &errChanged{why: fmt.Sprintf("%s held %d objects on page 1 and %d on page %d", path, count, p.Count, page)}
		}
		for _, item := range doc.Results {
			k := key(item)
			if seen[k] {
				return nil, &errChanged{why: fmt.Sprintf("%s listed %s twice (objects shifted between pages)", path, k)}
			}
			seen[k] = true
			out = append(out, item)
		}
		if p.Next == 0 {
			break
		}
		if p.Next != page+1 {
			return nil, fmt.Errorf("authentik: list %s: page %d says the next page is %d", path, page, p.Next)
		}
		page = p.Next
	}
	if len(out) != count {
		return nil, &errChanged{why: fmt.Sprintf("%s said %d objects and listed %d", path, count, len(out))}
	}
	return out, nil
}

// build turns the lists into a snapshot.
func (s *Source) build(groups []apiGroup, users []apiUser) (*gsync.Snapshot, error) {
	byPK := make(map[int]*apiUser, len(users))
	for i := range users {
		u := &users[i]
		if u.UID == "" {
			return nil, fmt.Errorf("authentik: user %q (pk %d) came without a uid", u.Username, u.PK)
		}
		byPK[u.PK] = u
	}
	snap := &gsync.Snapshot{}
	index := make(map[string]int, len(groups))
	for i, g := range groups {
		if g.PK == "" {
			return nil, fmt.Errorf("authentik: group %q came without a pk", g.Name)
		}
		index[g.PK] = i
		snap.Groups = append(snap.Groups, gsync.Group{ID: g.PK, Name: g.Name})
	}
	members := map[int]bool{}
	for i, g := range groups {
		out := &snap.Groups[i]
		others := 0
		for _, pk := range g.Users {
			u := byPK[pk]
			if u == nil {
				return nil, &errChanged{why: fmt.Sprintf("group %q lists user pk %d, which the user list lacks", g.Name, pk)}
			}
			if serviceAccount(u.Type) && !s.cfg.IncludeServiceAccounts {
				others++
				continue
			}
			out.Users = append(out.Users, u.UID)
			members[pk] = true
		}
		if others > 0 {
			snap.Skipped = append(snap.Skipped, gsync.Skip{Kind: "member", ID: g.PK, Name: g.Name, Reason: gsync.ReasonNotUserOrGroup,
				Detail: fmt.Sprintf("members that are neither users nor groups: %d service account(s) (set source.authentik.include_service_accounts to sync them)", others)})
		}
		parents := slices.Clone(g.Parents)
		if g.Parent != nil && *g.Parent != "" && !slices.Contains(parents, *g.Parent) {
			parents = append(parents, *g.Parent)
		}
		for _, p := range parents {
			j, ok := index[p]
			if !ok {
				return nil, &errChanged{why: fmt.Sprintf("group %q names parent %s, which the group list lacks", g.Name, p)}
			}
			// The child's members are members of the parent.
			snap.Groups[j].Groups = append(snap.Groups[j].Groups, g.PK)
		}
	}
	for _, u := range users {
		if !members[u.PK] {
			continue
		}
		snap.Users = append(snap.Users, gsync.User{
			ID: u.UID, UPN: u.Username, Mail: u.Email,
			Disabled:   u.IsActive != nil && !*u.IsActive,
			Guest:      u.Type == "external",
			Attributes: userAttributes(u),
		})
	}
	slices.SortFunc(snap.Groups, func(a, b gsync.Group) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(snap.Users, func(a, b gsync.User) int { return strings.Compare(a.ID, b.ID) })
	return snap, nil
}

func serviceAccount(typ string) bool {
	return typ == "service_account" || typ == "internal_service_account"
}

// userAttributes are the user's fields a mapping may key on
// (attribute:<name>): the fixed ones win over custom attributes of the
// same name.
func userAttributes(u apiUser) map[string]string {
	out := map[string]string{}
	for k, v := range u.Attributes {
		switch x := v.(type) {
		case string:
			out[k] = x
		case float64:
			out[k] = strconv.FormatFloat(x, 'f', -1, 64)
		case bool:
			out[k] = strconv.FormatBool(x)
		}
	}
	for k, v := range map[string]string{"pk": strconv.Itoa(u.PK), "uid": u.UID, "uuid": u.UUID, "username": u.Username,
		"name": u.Name, "type": u.Type, "path": u.Path} {
		if v != "" {
			out[k] = v
		}
	}
	return out
}
