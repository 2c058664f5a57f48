package msgraph

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/microsoftgraph/msgraph-sdk-go/groups"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/groupsync/groupsync/config"
	gsync "github.com/groupsync/groupsync/sync"
)

// WithMapping tells the source what the mapping will use of users, so that
// it reads the attribute a user key needs and so that Check knows whether
// User.Read.All is needed.
func WithMapping(m config.Mapping) Option {
	return func(o *options) {
		if a, ok := strings.CutPrefix(m.User.Key, "attribute:"); ok {
			o.userAttrs = append(o.userAttrs, a)
		}
		o.needUsers = m.User.Key != "id"
		o.wantUserState = m.User.SkipDisabled || m.User.SkipGuests
		o.userKey = m.User.Key
	}
}

// Permissions that let an app read groups and their members, and users'
// properties; the first of each is the least privilege.
var (
	groupPermissions = []string{"GroupMember.Read.All", "Group.Read.All", "Directory.Read.All"}
	userPermissions  = []string{"User.Read.All", "Directory.Read.All"}
)

// Check gets a token, reads the application permissions it carries, and
// probes the endpoints a sync uses, saying which permission is missing.
func (s *Source) Check(ctx context.Context) []gsync.CheckResult {
	var out []gsync.CheckResult
	tok, err := s.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{s.scope}})
	if err != nil {
		return append(out, gsync.CheckResult{What: "Graph token for " + s.scope,
			Err: fmt.Errorf("%v; check source.msgraph.auth, tenant_id, client_id and the credential", err)})
	}
	out = append(out, gsync.CheckResult{What: "Graph token for " + s.scope, Note: "acquired"})

	roles, isJWT := tokenRoles(tok.Token)
	if isJWT {
		r := gsync.CheckResult{What: "application permissions in the token", Note: strings.Join(roles, ", ")}
		if !hasAny(roles, groupPermissions) {
			r.Err = fmt.Errorf("none of %s; grant the application permission GroupMember.Read.All and give admin consent", strings.Join(groupPermissions, ", "))
		} else if s.needUsers && !hasAny(roles, userPermissions) {
			r.Err = fmt.Errorf("mapping.user.key needs user properties: grant the application permission User.Read.All and give admin consent")
		} else if s.wantUserState && !hasAny(roles, userPermissions) {
			r.Warning = "without User.Read.All Graph does not say which accounts are disabled or guests, so mapping.user.skip_disabled/skip_guests cannot apply; grant User.Read.All or turn them off"
		}
		if len(roles) == 0 {
			r.Note = "none"
		}
		out = append(out, r)
	}

	_, err = s.client.Groups().Get(ctx, &groups.GroupsRequestBuilderGetRequestConfiguration{
		QueryParameters: &groups.GroupsRequestBuilderGetQueryParameters{Select: []string{"id"}, Top: ptr(int32(1))},
	})
	out = append(out, gsync.CheckResult{What: "Graph GET /groups", Err: wrapDescribe(err, "GroupMember.Read.All"), Note: "allowed"})

	r := gsync.CheckResult{What: "Graph GET /users", Note: "allowed"}
	_, err = s.client.Users().Get(ctx, &users.UsersRequestBuilderGetRequestConfiguration{
		QueryParameters: &users.UsersRequestBuilderGetQueryParameters{Select: []string{"id"}, Top: ptr(int32(1))},
	})
	switch {
	case err == nil:
	case s.needUsers:
		r.Err = wrapDescribe(err, "User.Read.All")
	case s.wantUserState:
		r.Warning = describe(err, "User.Read.All").Error() + "; mapping.user.skip_disabled/skip_guests cannot see account state without it"
	default:
		r.Note = "not allowed, and not needed: users are keyed by id"
	}
	out = append(out, r)
	if s.cfg.Delta.Enabled {
		out = append(out, s.checkDelta(ctx)...)
	}
	return out
}

// checkDelta probes what incremental reads use: the delta queries, and
// the state store (for Kubernetes, the Role that lets groupsync read it).
func (s *Source) checkDelta(ctx context.Context) []gsync.CheckResult {
	var out []gsync.CheckResult
	_, err := s.latestLink(ctx, "groups", deltaGroupSelect)
	out = append(out, gsync.CheckResult{What: "Graph GET /groups/delta", Err: wrapDescribe(err, "GroupMember.Read.All"), Note: "allowed"})
	if s.trackUsers() {
		r := gsync.CheckResult{What: "Graph GET /users/delta", Note: "allowed"}
		if _, err := s.latestLink(ctx, "users", s.userSelect()); err != nil {
			r.Warning = describe(err, "User.Read.All").Error() + "; incremental reads will keep users as ids only"
		}
		out = append(out, r)
	}
	r := gsync.CheckResult{What: "delta state in " + s.store.String()}
	data, err := s.store.Load(ctx)
	switch {
	case err != nil:
		r.Err = fmt.Errorf("%w (source.msgraph.delta.state)", err)
	case data == nil:
		r.Note = "none yet: the next run reads in full"
	default:
		if st, derr := decodeState(data); derr != nil {
			r.Warning = fmt.Sprintf("corrupt (%v): the next run reads in full", derr)
		} else {
			r.Note = fmt.Sprintf("%d bytes, %d groups, %d users, last full read %s", len(data), len(st.groups), len(st.users), st.fullAt.UTC().Format(time.RFC3339))
		}
	}
	return append(out, r)
}

func wrapDescribe(err error, permission string) error {
	if err == nil {
		return nil
	}
	return describe(err, permission)
}

func hasAny(have, want []string) bool {
	for _, w := range want {
		if slices.Contains(have, w) {
			return true
		}
	}
	return false
}

// tokenRoles reads the "roles" claim (application permissions) of an Entra
// access token. It reads, never verifies: Graph does that.
func tokenRoles(token string) (roles []string, isJWT bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, false
	}
	var claims struct {
		Roles []string `json:"roles"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return nil, false
	}
	slices.Sort(claims.Roles)
	return claims.Roles, true
}
