package authentik

import (
	"context"
	"fmt"
	"net/url"
	"slices"

	gsync "github.com/groupsync/groupsync/sync"
)

// viewPermissions are the global permissions a non-superuser token's user
// needs so that authentik lists every group and user.
var viewPermissions = []string{"authentik_core.view_group", "authentik_core.view_user"}

// Check asks authentik who the token belongs to and whether it may list
// groups and users, without reading them all.
func (s *Source) Check(ctx context.Context) []gsync.CheckResult {
	what := "authentik token at " + s.cfg.URL
	var me struct {
		User struct {
			Username          string   `json:"username"`
			IsSuperuser       bool     `json:"is_superuser"`
			SystemPermissions []string `json:"system_permissions"`
		} `json:"user"`
	}
	if err := s.get(ctx, "core/users/me/", nil, &me); err != nil {
		return []gsync.CheckResult{{What: what, Err: err}}
	}
	r := gsync.CheckResult{What: what, Note: "user " + me.User.Username}
	switch {
	case me.User.IsSuperuser:
		r.Note += ", superuser"
	case hasAll(me.User.SystemPermissions, viewPermissions):
		r.Note += ", may view all groups and users"
	default:
		r.Warning = fmt.Sprintf("user %s is not a superuser and lacks the global permissions %v: authentik lists only the groups and users it may see, and the read fails when a group names a user it cannot see; grant them", me.User.Username, viewPermissions)
	}
	out := []gsync.CheckResult{r}
	for _, l := range []struct{ what, path, param string }{{"groups", "core/groups/", "include_users"}, {"users", "core/users/", "include_groups"}} {
		res := gsync.CheckResult{What: "authentik GET /api/v3/" + l.path}
		var doc struct {
			Pagination pagination `json:"pagination"`
		}
		err := s.get(ctx, l.path, url.Values{"page_size": {"1"}, l.param: {"false"}}, &doc)
		switch {
		case err != nil:
			res.Err = err
		case doc.Pagination.Count == 0:
			res.Warning = "lists no " + l.what + "; the token's user may not view them"
		default:
			res.Note = fmt.Sprintf("%d %s", doc.Pagination.Count, l.what)
		}
		out = append(out, res)
	}
	return out
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
