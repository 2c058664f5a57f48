package authentiktest

import (
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

type endpoint int

const (
	epUnknown endpoint = iota
	epGroups
	epGroup
	epUsers
	epUser
	epMe
	numEndpoints
)

const apiPrefix = "/api/v3/"

// route maps a path to an endpoint and its id, if any.
func route(path string) (endpoint, string) {
	p, ok := strings.CutPrefix(path, apiPrefix)
	if !ok {
		return epUnknown, ""
	}
	switch {
	case p == "core/groups/":
		return epGroups, ""
	case p == "core/users/":
		return epUsers, ""
	case p == "core/users/me/":
		return epMe, ""
	}
	for prefix, ep := range map[string]endpoint{"core/groups/": epGroup, "core/users/": epUser} {
		if rest, ok := strings.CutPrefix(p, prefix); ok {
			if id, ok := strings.CutSuffix(rest, "/"); ok && id != "" && !strings.Contains(id, "/") {
				return ep, id
			}
		}
	}
	return epUnknown, ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Vary", "Accept, Cookie")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func detail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"detail": msg})
}

// authenticate is authentik's TokenAuthentication under DRF: failures are
// 403, since it sends no WWW-Authenticate challenge.
func (s *Server) authenticate(r *http.Request) string {
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	if h == "" || !strings.Contains(h, " ") {
		return "Authentication credentials were not provided."
	}
	typ, cred, _ := strings.Cut(h, " ")
	switch {
	case !strings.EqualFold(typ, "bearer"):
		return "Unsupported authentication type"
	case cred == "":
		return "Malformed header"
	case cred != s.cfg.token:
		return "Token invalid/expired"
	}
	return ""
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, ep endpoint, id string) {
	if ep == epUnknown {
		detail(w, http.StatusNotFound, "Not found.")
		return
	}
	if msg := s.authenticate(r); msg != "" {
		detail(w, http.StatusForbidden, msg)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		detail(w, http.StatusMethodNotAllowed, fmt.Sprintf("Method %q not allowed.", r.Method))
		return
	}
	s.mu.Lock()
	t := s.tenant // replaced, never changed in place: safe to read unlocked
	s.mu.Unlock()
	q := r.URL.Query()
	switch ep {
	case epGroups:
		groups := slices.Clone(t.Groups)
		slices.SortFunc(groups, func(a, b Group) int { return strings.Compare(a.Name, b.Name) })
		if v := q.Get("name"); v != "" {
			groups = slices.DeleteFunc(groups, func(g Group) bool { return g.Name != v })
		}
		if v := strings.ToLower(q.Get("search")); v != "" {
			groups = slices.DeleteFunc(groups, func(g Group) bool { return !strings.Contains(strings.ToLower(g.Name), v) })
		}
		includeUsers := boolParam(q.Get("include_users"), true)
		s.page(w, r, epGroups, len(groups), func(i int) any { return s.group(t, groups[i], includeUsers) })
	case epGroup:
		for _, g := range t.Groups {
			if g.PK == id {
				writeJSON(w, http.StatusOK, s.group(t, g, boolParam(q.Get("include_users"), true)))
				return
			}
		}
		detail(w, http.StatusNotFound, "No Group matches the given query.")
	case epUsers:
		users := s.visibleUsers(t)
		slices.SortFunc(users, func(a, b User) int { return strings.Compare(a.Username, b.Username) })
		// Exact filters, as authentik's UserFilter has them.
		for param, field := range map[string]func(User) string{
			"username": func(u User) string { return u.Username },
			"email":    func(u User) string { return u.Email },
			"name":     func(u User) string { return u.Name },
			"uuid":     func(u User) string { return UserUUID(u.PK) },
			"path":     func(u User) string { return u.Path },
		} {
			if v := q.Get(param); v != "" {
				users = slices.DeleteFunc(users, func(u User) bool { return field(u) != v })
			}
		}
		if v := q.Get("attributes"); v != "" {
			var want map[string]any
			if err := json.Unmarshal([]byte(v), &want); err != nil {
				detail(w, http.StatusBadRequest, "attributes: "+err.Error())
				return
			}
			users = slices.DeleteFunc(users, func(u User) bool {
				for k, v := range want {
					if fmt.Sprint(u.Attributes[k]) != fmt.Sprint(v) {
						return true
					}
				}
				return false
			})
		}
		// groups_by_pk and groups_by_name (repeatable): members of any of
		// the groups, each user once.
		if pks, names := q["groups_by_pk"], q["groups_by_name"]; len(pks)+len(names) > 0 {
			in := map[int]bool{}
			for _, g := range t.Groups {
				if slices.Contains(pks, g.PK) || slices.Contains(names, g.Name) {
					for _, pk := range g.Users {
						in[pk] = true
					}
				}
			}
			users = slices.DeleteFunc(users, func(u User) bool { return !in[u.PK] })
		}
		if v := q.Get("is_active"); v != "" {
			want := boolParam(v, true)
			users = slices.DeleteFunc(users, func(u User) bool { return u.Inactive == want })
		}
		if types := q["type"]; len(types) > 0 {
			users = slices.DeleteFunc(users, func(u User) bool { return !slices.Contains(types, u.Type) })
		}
		includeGroups := boolParam(q.Get("include_groups"), true)
		s.page(w, r, epUsers, len(users), func(i int) any { return s.user(t, users[i], includeGroups) })
	case epUser:
		pk, err := strconv.Atoi(id)
		if err == nil {
			for _, u := range s.visibleUsers(t) {
				if u.PK == pk {
					writeJSON(w, http.StatusOK, s.user(t, u, true))
					return
				}
			}
		}
		detail(w, http.StatusNotFound, "No User matches the given query.")
	case epMe:
		writeJSON(w, http.StatusOK, map[string]any{"user": map[string]any{
			"pk": s.cfg.tokenUserPK, "username": s.cfg.tokenUserName, "name": "groupsync", "is_active": true,
			"is_superuser": s.cfg.superuser, "groups": []any{}, "roles": []any{}, "email": "", "avatar": "",
			"uid": UID(s.cfg.tokenUserPK), "settings": map[string]any{}, "type": "service_account",
			"system_permissions": nonNil(s.cfg.systemPerms),
		}})
	}
}

func (s *Server) visibleUsers(t *Tenant) []User {
	users := slices.Clone(t.Users)
	if h := s.cfg.hiddenUsers; h != nil {
		users = slices.DeleteFunc(users, func(u User) bool { return h(u.PK) })
	}
	return users
}

// page writes one page of n items as Django REST framework's
// PageNumberPagination with authentik's pagination object.
func (s *Server) page(w http.ResponseWriter, r *http.Request, ep endpoint, n int, item func(i int) any) {
	q := r.URL.Query()
	size := 100
	if v, err := strconv.Atoi(q.Get("page_size")); err == nil && v > 0 {
		size = v
	}
	pages := max(1, (n+size-1)/size)
	number := 1
	if v := q.Get("page"); v != "" {
		p, err := strconv.Atoi(v)
		switch {
		case v == "last":
			number = pages
		case err != nil || p < 1 || p > pages:
			detail(w, http.StatusNotFound, "Invalid page.")
			return
		default:
			number = p
		}
	}
	from := (number - 1) * size
	to := min(from+size, n)
	results := make([]any, 0, to-from)
	for i := from; i < to; i++ {
		results = append(results, item(i))
	}
	next, prev := 0, 0
	if number < pages {
		next = number + 1
	}
	if number > 1 {
		prev = number - 1
	}
	start, end := 0, 0
	if n > 0 {
		start, end = from+1, to
	}
	s.pages[ep].Add(1)
	writeJSON(w, http.StatusOK, map[string]any{
		"pagination": map[string]int{"next": next, "previous": prev, "count": n, "current": number,
			"total_pages": pages, "start_index": start, "end_index": end},
		"results": results,
	})
}

func boolParam(v string, def bool) bool {
	switch strings.ToLower(v) {
	case "true", "1":
		return true
	case "false", "0":
		return false
	}
	return def
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func attrs(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// numPK is the int32 authentik derives from a group's UUID.
func numPK(pk string) int {
	n, ok := new(big.Int).SetString(strings.ReplaceAll(pk, "-", ""), 16)
	if !ok {
		return 0
	}
	return int(new(big.Int).Mod(n, big.NewInt(2147483647)).Int64())
}

func (s *Server) partialUser(u User) map[string]any {
	return map[string]any{"pk": u.PK, "username": u.Username, "name": u.Name, "is_active": !u.Inactive,
		"last_login": nil, "email": u.Email, "attributes": attrs(u.Attributes), "uid": UID(u.PK)}
}

func relatedGroup(g Group) map[string]any {
	return map[string]any{"pk": g.PK, "name": g.Name, "is_superuser": g.IsSuperuser, "attributes": attrs(g.Attributes), "group_uuid": g.PK}
}

func (s *Server) group(t *Tenant, g Group, includeUsers bool) map[string]any {
	byPK := map[string]Group{}
	for _, o := range t.Groups {
		byPK[o.PK] = o
	}
	var usersObj any // null without include_users
	if includeUsers {
		objs := []any{}
		for _, pk := range g.Users {
			for _, u := range t.Users {
				if u.PK == pk {
					objs = append(objs, s.partialUser(u))
				}
			}
		}
		usersObj = objs
	}
	out := map[string]any{
		"pk": g.PK, "num_pk": numPK(g.PK), "name": g.Name, "is_superuser": g.IsSuperuser,
		"users": nonNil(g.Users), "users_obj": usersObj, "attributes": attrs(g.Attributes),
		"roles": []any{}, "roles_obj": []any{},
	}
	if s.cfg.legacy {
		out["parent"], out["parent_name"] = nil, nil
		if len(g.Parents) == 1 {
			out["parent"], out["parent_name"] = g.Parents[0], byPK[g.Parents[0]].Name
		}
		return out
	}
	parentsObj := []any{}
	for _, p := range g.Parents {
		parentsObj = append(parentsObj, relatedGroup(byPK[p]))
	}
	children, childrenObj := []string{}, []any{}
	for _, o := range t.Groups {
		if slices.Contains(o.Parents, g.PK) {
			children = append(children, o.PK)
			childrenObj = append(childrenObj, relatedGroup(o))
		}
	}
	out["parents"], out["parents_obj"] = nonNil(g.Parents), parentsObj
	out["children"], out["children_obj"] = children, childrenObj
	out["inherited_roles_obj"] = []any{}
	return out
}

func (s *Server) user(t *Tenant, u User, includeGroups bool) map[string]any {
	var groups []string
	var groupsObj any
	objs := []any{}
	for _, g := range t.Groups {
		if slices.Contains(g.Users, u.PK) {
			groups = append(groups, g.PK)
			objs = append(objs, map[string]any{"pk": g.PK, "num_pk": numPK(g.PK), "name": g.Name, "is_superuser": g.IsSuperuser, "attributes": attrs(g.Attributes)})
		}
	}
	if includeGroups {
		groupsObj = objs
	}
	return map[string]any{
		"pk": u.PK, "username": u.Username, "name": u.Name, "is_active": !u.Inactive, "last_login": nil,
		"date_joined": "2024-01-01T00:00:00Z", "is_superuser": false, "groups": nonNil(groups), "groups_obj": groupsObj,
		"roles": []any{}, "roles_obj": []any{}, "email": u.Email, "avatar": "", "attributes": attrs(u.Attributes),
		"uid": UID(u.PK), "path": u.Path, "type": u.Type, "uuid": UserUUID(u.PK),
		"password_change_date": "2024-01-01T00:00:00Z", "last_updated": "2024-01-01T00:00:00Z",
	}
}

// legacyCheck refuses tenants the pre-2025.12 schema cannot express.
func legacyCheck(t *Tenant) error {
	for _, g := range t.Groups {
		if len(g.Parents) > 1 {
			return fmt.Errorf("group %q has %d parents; authentik 2025.10 and earlier (WithLegacyParent) allow one", g.Name, len(g.Parents))
		}
	}
	return nil
}
