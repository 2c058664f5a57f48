package ldap

import (
	"context"
	"errors"
	"fmt"

	goldap "github.com/go-ldap/ldap/v3"

	gsync "github.com/groupsync/groupsync/sync"
)

// Check connects, binds, and looks for at least one user and one group
// with the configured bases and filters, without reading the directory.
func (s *Source) Check(ctx context.Context) []gsync.CheckResult {
	bind := "anonymously"
	if s.cfg.BindDN != "" {
		bind = "as " + s.cfg.BindDN
	}
	what := fmt.Sprintf("LDAP connect to %s and bind %s", s.cfg.URL, bind)
	conn, done, err := s.connect(ctx)
	if err != nil {
		return []gsync.CheckResult{{What: what, Err: err}}
	}
	defer done()
	tlsNote := "TLS"
	switch {
	case s.cfg.StartTLS:
		tlsNote = "StartTLS"
	case !isLDAPS(s.cfg.URL):
		tlsNote = "no TLS (loopback)"
	}
	if s.cfg.InsecureSkipTLSVerify {
		tlsNote += ", certificate NOT verified (insecure_skip_tls_verify)"
	}
	out := []gsync.CheckResult{{What: what, Note: "ok, " + tlsNote}}
	r := &reader{s: s, ctx: ctx, conn: conn}
	probe := func(what, base, filter, field string) gsync.CheckResult {
		res := gsync.CheckResult{What: fmt.Sprintf("LDAP %s under %q matching %s", what, base, filter)}
		s.stats.Searches.Add(1)
		sr, err := conn.Search(goldap.NewSearchRequest(base, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 1, 0, false, filter, []string{"1.1"}, nil))
		var le *goldap.Error
		switch {
		case err == nil && len(sr.Entries) > 0:
			res.Note = "found"
		case err == nil:
			res.Warning = fmt.Sprintf("no entry matches; check source.ldap.%s and its base DN", field)
		case errors.As(err, &le) && le.ResultCode == goldap.LDAPResultSizeLimitExceeded:
			res.Note = "found"
		default:
			res.Err = r.searchError(what, base, filter, err)
		}
		return res
	}
	out = append(out, probe("users", s.cfg.Users.BaseDN, s.cfg.Users.Filter, "users.filter"))
	out = append(out, probe("groups", s.cfg.Groups.BaseDN, s.cfg.Groups.Filter, "groups.filter"))
	if s.cfg.Membership == "in_chain" {
		res := gsync.CheckResult{What: "LDAP server is Active Directory (membership in_chain)", Note: "yes"}
		if err := r.requireAD(); err != nil {
			res.Err, res.Note = err, ""
		}
		out = append(out, res)
	}
	return out
}

func isLDAPS(u string) bool { return len(u) >= 8 && (u[:8] == "ldaps://" || u[:8] == "LDAPS://") }
