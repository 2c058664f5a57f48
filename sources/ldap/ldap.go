// Package ldap is the LDAP source: Active Directory and OpenLDAP (and other
// LDAPv3 directories with groupOfNames-style groups), read with
// github.com/go-ldap/ldap/v3.
//
// One Snapshot opens one connection (ldaps://, or ldap:// with StartTLS),
// binds, and reads with paged searches (RFC 2696): every user under
// users.base_dn matching users.filter, then every group under
// groups.base_dn matching groups.filter with its member attribute. Active
// Directory returns large member attributes in ranges (member;range=0-1499);
// the rest is fetched range by range. A member DN is then
//
//   - a user read above: a direct user member;
//   - a group read above: a subgroup (the mapping resolves nesting, cycles
//     included);
//   - under base_dn but not read: looked up once. A group (outside
//     groups.filter) is read for its members and marked not synced; a user
//     outside users.filter, a computer, contact or foreign security
//     principal, or a DN that no longer exists, is reported;
//   - outside base_dn: reported, never looked up or guessed.
//
// With membership in_chain (Active Directory only) each group's users are
// instead the transitive ones AD finds with LDAP_MATCHING_RULE_IN_CHAIN.
//
// SnapshotSlice reads some users and groups for a targeted run
// (slice.go): a user's groups by searching for the groups whose member
// attribute holds the user's DN, then each found group's, up the tree.
//
// Ids are objectGUID (AD, as a canonical GUID string), objectSid, entryUUID
// (OpenLDAP) or any single-valued attribute. A disabled AD account has the
// ACCOUNTDISABLE bit of userAccountControl; users.disabled_filter marks
// disabled accounts on any directory.
//
// The snapshot is complete or an error: any failed search, range, or
// lookup fails the read (retried whole after a dropped connection or a busy
// server, up to max_retries). Errors name the setting or the entry, never
// the bind password.
package ldap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goldap "github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/internal/retry"
	gsync "github.com/groupsync/groupsync/sync"
)

var _ gsync.ReadDescriber = (*Source)(nil)

// Source reads an LDAP directory.
type Source struct {
	cfg   config.LDAP // effective: flavor defaults filled in
	tls   *tls.Config
	base  parsedDN
	users parsedDN
	grps  parsedDN
	log   *zap.Logger
	stats *Stats
	attrs []string // extra user attributes, the configured ones and the mapping's
	// userKey is mapping.user.key (WithMapping): the attribute a slice
	// finds its users by.
	userKey string

	mu       sync.Mutex
	lastRead gsync.SourceRead
}

// Stats counts what a source sent; safe for concurrent use.
type Stats struct {
	Connects atomic.Int64 // connections opened (one per read attempt and per Check)
	// Searches counts the search requests sent: each page of a paged
	// search (continuations included), each range follow-up and lookup.
	// They are the source's requests (LastRead's Requests).
	Searches      atomic.Int64
	Pages         atomic.Int64 // pages of paged searches
	RangeRequests atomic.Int64 // member;range= follow-ups
	Lookups       atomic.Int64 // base-scope reads of member DNs that no search returned
	Retries       atomic.Int64 // whole reads retried
	WaitedNanos   atomic.Int64 // time spent waiting to read again
}

// Option adjusts a Source.
type Option func(*options)

type options struct {
	log     *zap.Logger
	attrs   []string
	userKey string
}

// WithLogger logs warnings and a summary of each read to l.
func WithLogger(l *zap.Logger) Option { return func(o *options) { o.log = l } }

// WithUserAttributes reads these user attributes too, for a mapping keyed
// on attribute:<name>.
func WithUserAttributes(names ...string) Option {
	return func(o *options) { o.attrs = append(o.attrs, names...) }
}

// WithMapping reads the user attribute the mapping keys on
// (attribute:<name>), besides source.ldap.users.attributes.
func WithMapping(m config.Mapping) Option {
	return func(o *options) {
		if a, ok := strings.CutPrefix(m.User.Key, "attribute:"); ok {
			o.attrs = append(o.attrs, a)
		}
		o.userKey = m.User.Key
	}
}

// New checks the settings that need parsing (DNs, the CA file) and builds
// a source. It does not contact the server.
func New(cfg config.LDAP, opts ...Option) (*Source, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = zap.NewNop()
	}
	cfg = cfg.Effective()
	s := &Source{cfg: cfg, log: o.log, stats: &Stats{}, userKey: o.userKey}
	var err error
	for _, d := range []struct {
		field, v string
		dst      *parsedDN
	}{{"base_dn", cfg.BaseDN, &s.base}, {"users.base_dn", cfg.Users.BaseDN, &s.users}, {"groups.base_dn", cfg.Groups.BaseDN, &s.grps}} {
		if *d.dst, err = parseDN(d.v); err != nil {
			return nil, fmt.Errorf("source.ldap.%s: %q is not a DN: %v", d.field, d.v, err)
		}
	}
	for _, f := range []struct{ field, v string }{
		{"users.filter", cfg.Users.Filter}, {"groups.filter", cfg.Groups.Filter},
		{"users.disabled_filter", cfg.Users.DisabledFilter}, {"users.guest_filter", cfg.Users.GuestFilter},
	} {
		if f.v == "" {
			continue
		}
		if _, err := goldap.CompileFilter(f.v); err != nil {
			return nil, fmt.Errorf("source.ldap.%s: %q is not an LDAP filter: %v", f.field, f.v, err)
		}
	}
	for _, a := range append(append([]string(nil), cfg.Users.Attributes...), o.attrs...) {
		if !slices.ContainsFunc(s.attrs, func(b string) bool { return strings.EqualFold(a, b) }) {
			s.attrs = append(s.attrs, a)
		}
	}
	if s.tls, err = tlsConfig(cfg); err != nil {
		return nil, err
	}
	if cfg.InsecureSkipTLSVerify {
		o.log.Warn("source.ldap.insecure_skip_tls_verify is on: the LDAP server's certificate is not checked, so anyone on the path can read the bind password")
	}
	return s, nil
}

// Stats returns the request counters (shared, live, over every read and
// Check).
func (s *Source) Stats() *Stats { return s.stats }

// LastRead says what the last Snapshot sent (a full read, always): its
// search requests (Stats.Searches), whole reads retried and time spent
// waiting between them.
func (s *Source) LastRead() gsync.SourceRead {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastRead
}

func tlsConfig(cfg config.LDAP) (*tls.Config, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("source.ldap.url: %v", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname(), InsecureSkipVerify: cfg.InsecureSkipTLSVerify} //nolint:gosec // a loudly named opt-in
	if cfg.ServerName != "" {
		tc.ServerName = cfg.ServerName
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("source.ldap.ca_file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("source.ldap.ca_file: %s holds no PEM certificate", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// Snapshot reads the directory. A dropped connection or a busy server
// retries the whole read, with a fresh connection, up to max_retries
// (retry.Policy.Do: waiting about 1s, 2s, 4s ...; see policy).
func (s *Source) Snapshot(ctx context.Context) (*gsync.Snapshot, error) {
	start := time.Now()
	searches, retries, waited := s.stats.Searches.Load(), s.stats.Retries.Load(), s.stats.WaitedNanos.Load()
	defer func() {
		rd := gsync.SourceRead{Mode: "full", Requests: s.stats.Searches.Load() - searches,
			Retries: s.stats.Retries.Load() - retries, Waited: time.Duration(s.stats.WaitedNanos.Load() - waited)}
		s.mu.Lock()
		s.lastRead = rd
		s.mu.Unlock()
	}()
	var snap *gsync.Snapshot
	n := 0
	hooks := retry.Hooks{Retrying: func(r retry.Result, wait time.Duration) {
		s.stats.Retries.Add(1)
		s.log.Warn("LDAP read failed; reading again", zap.Error(r.Err), zap.Duration("wait", wait), zap.Int("attempt", n))
	}}
	out, err := s.policy().Do(ctx, hooks, func(ctx context.Context) retry.Result {
		n++
		var err error
		if snap, err = s.read(ctx); err != nil {
			return retry.Result{Err: err, Retry: transient(err)}
		}
		return retry.Result{}
	})
	s.stats.WaitedNanos.Add(int64(out.Waited))
	if err != nil {
		return nil, err // the last read's error, or ctx's
	}
	s.log.Info("LDAP read", zap.Int("groups", len(snap.Groups)), zap.Int("users", len(snap.Users)),
		zap.Int("skipped", len(snap.Skipped)), zap.Int64("pages", s.stats.Pages.Load()),
		zap.Int64("range_requests", s.stats.RangeRequests.Load()), zap.Int64("lookups", s.stats.Lookups.Load()),
		zap.Duration("took", time.Since(start)))
	return snap, nil
}

// policy is how whole reads are retried: max_retries times, the wait
// before retry n drawn from [2^(n-1)s, 2^n s) (retry.Policy.Wait takes the
// upper half of MinWait·2^(n-1)), so never shorter than the fixed 1s, 2s,
// 4s ... the source waited before the shared retry loop, with jitter on
// top. MaxWait is above the longest wait max_retries (at most 10) reaches.
func (s *Source) policy() retry.Policy {
	return retry.Policy{MaxRetries: s.cfg.MaxRetries, MinWait: 2 * time.Second, MaxWait: 2 * time.Second << 10}
}

// transient reports errors worth a fresh connection: the network, and a
// server that is busy or shutting down.
func transient(err error) bool {
	var le *goldap.Error
	if errors.As(err, &le) {
		switch le.ResultCode {
		case goldap.ErrorNetwork, goldap.LDAPResultBusy, goldap.LDAPResultUnavailable, goldap.LDAPResultServerDown,
			goldap.LDAPResultConnectError, goldap.LDAPResultTimeout, goldap.LDAPResultTimeLimitExceeded:
			return true
		}
		return false
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// connect dials, upgrades to TLS and binds. The caller must call done,
// which closes the connection.
func (s *Source) connect(ctx context.Context) (conn *goldap.Conn, done func(), err error) {
	s.stats.Connects.Add(1)
	timeout := time.Duration(s.cfg.RequestTimeout)
	dialer := &net.Dialer{Timeout: timeout}
	if dl, ok := ctx.Deadline(); ok {
		dialer.Deadline = dl
	}
	conn, err = goldap.DialURL(s.cfg.URL, goldap.DialWithDialer(dialer), goldap.DialWithTLSConfig(s.tls))
	if err != nil {
		return nil, nil, &opError{op: "connect to " + s.cfg.URL, err: err, hint: tlsHint(err, s.cfg)}
	}
	conn.SetTimeout(timeout)
	// Close the connection when ctx ends, so that a blocked search returns.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	done = func() {
		stop()
		conn.Close()
	}
	if s.cfg.StartTLS {
		if err := conn.StartTLS(s.tls); err != nil {
			done()
			return nil, nil, &opError{op: "StartTLS with " + s.cfg.URL, err: err, hint: tlsHint(err, s.cfg)}
		}
	}
	if s.cfg.BindDN != "" {
		if err := conn.Bind(s.cfg.BindDN, s.cfg.BindPassword.Reveal()); err != nil {
			done()
			return nil, nil, &opError{op: fmt.Sprintf("bind as %q", s.cfg.BindDN), err: err, hint: bindHint(err)}
		}
	}
	return conn, done, nil
}

// opError is a failed LDAP operation with what to do about it.
type opError struct {
	op   string
	err  error
	hint string
}

func (e *opError) Error() string {
	msg := fmt.Sprintf("ldap: %s: %s", e.op, describe(e.err))
	if e.hint != "" {
		msg += " (" + e.hint + ")"
	}
	return msg
}

func (e *opError) Unwrap() error { return e.err }

// describe shortens go-ldap's wording: "LDAP Result Code 49 \"Invalid
// Credentials\": 80090308: LdapErr..." becomes "Invalid Credentials (49):
// 80090308: LdapErr...".
func describe(err error) string {
	var le *goldap.Error
	if errors.As(err, &le) {
		name := goldap.LDAPResultCodeMap[le.ResultCode]
		detail := ""
		if le.Err != nil {
			detail = le.Err.Error()
		}
		if le.ResultCode == goldap.ErrorNetwork {
			return "network error: " + detail
		}
		if detail == "" {
			return fmt.Sprintf("%s (%d)", name, le.ResultCode)
		}
		return fmt.Sprintf("%s (%d): %s", name, le.ResultCode, detail)
	}
	return err.Error()
}

func tlsHint(err error, cfg config.LDAP) string {
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	switch {
	case errors.As(err, &unknown):
		if cfg.CAFile != "" {
			return "the server's certificate is not signed by a CA in source.ldap.ca_file"
		}
		return "the server's certificate is not signed by a CA the system trusts; set source.ldap.ca_file to your CA bundle"
	case errors.As(err, &hostname):
		return "the certificate does not name this host; connect by a name it holds, or set source.ldap.server_name"
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) || (strings.HasPrefix(strings.ToLower(cfg.URL), "ldaps://") && errors.Is(err, io.EOF)) {
		return "the server did not complete a TLS handshake: is this its LDAPS port (636)? For an ldap:// port use start_tls"
	}
	return ""
}

// bindHint explains bind failures, including Active Directory's data codes
// in the diagnostic message ("... data 52e, v4563").
func bindHint(err error) string {
	var le *goldap.Error
	if !errors.As(err, &le) {
		return ""
	}
	if le.ResultCode != goldap.LDAPResultInvalidCredentials {
		if le.ResultCode == goldap.LDAPResultConfidentialityRequired || le.ResultCode == goldap.LDAPResultStrongAuthRequired {
			return "the server requires TLS before a simple bind; use ldaps:// or start_tls"
		}
		return ""
	}
	msg := ""
	if le.Err != nil {
		msg = le.Err.Error()
	}
	for code, why := range adBindCodes {
		if m := strings.ToLower(msg); strings.Contains(m, "data "+code+",") || strings.HasSuffix(m, "data "+code) {
			return why
		}
	}
	return "check source.ldap.bind_dn and the password (source.ldap.bind_password, GROUPSYNC_SOURCE_LDAP_BIND_PASSWORD or bind_password_file)"
}

var adBindCodes = map[string]string{
	"525": "Active Directory: no such user; check source.ldap.bind_dn",
	"52e": "Active Directory: wrong password for source.ldap.bind_dn; check the password",
	"530": "Active Directory: the account may not log on at this time",
	"531": "Active Directory: the account may not log on from this workstation",
	"532": "Active Directory: the account's password has expired; set a new one",
	"533": "Active Directory: the account is disabled",
	"701": "Active Directory: the account has expired",
	"773": "Active Directory: the account must change its password before it can bind",
	"775": "Active Directory: the account is locked out",
}
