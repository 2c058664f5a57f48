package graphtest

// The Graph resources: authentication, permissions, and pages of directory
// objects written from the index.

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
)

type permSet map[string]bool

func newPermSet(perms []string) permSet {
	p := permSet{}
	for _, n := range perms {
		p[strings.ToLower(n)] = true
	}
	return p
}

func (p permSet) anyOf(names ...string) bool {
	for _, n := range names {
		if p[strings.ToLower(n)] {
			return true
		}
	}
	return false
}

// canRead reports whether the app may read objects of kind k; Graph lists
// the others as members with only their type and id.
func (p permSet) canRead(k kind) bool {
	dir := []string{"Directory.Read.All", "Directory.ReadWrite.All"}
	switch k {
	case kindUser:
		return p.anyOf(append(dir, "User.Read.All", "User.ReadWrite.All")...)
	case kindGroup:
		return p.anyOf(append(dir, "GroupMember.Read.All", "Group.Read.All", "GroupMember.ReadWrite.All", "Group.ReadWrite.All")...)
	case kindDevice:
		return p.anyOf(append(dir, "Device.Read.All", "Device.ReadWrite.All")...)
	case kindServicePrincipal:
		return p.anyOf(append(dir, "Application.Read.All", "Application.ReadWrite.All")...)
	case kindOrgContact:
		return p.anyOf(append(dir, "OrgContact.Read.All")...)
	}
	return false
}

func (s *Server) permissions() permSet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perms
}

func (s *Server) authenticate(r *http.Request) *graphError {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	switch {
	case token == "" || !strings.EqualFold(scheme, "Bearer"):
		return newError(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty.")
	case strings.TrimSpace(token) != s.cfg.token:
		return newError(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
	}
	return nil
}

var forbidden = newError(http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")

// serveGraph answers a resource request, over HTTP or as a batch item (whose
// envelope was authenticated).
func (s *Server) serveGraph(w http.ResponseWriter, r *http.Request, rt route, item bool) {
	if !item {
		if err := s.authenticate(r); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if rt.err != nil {
		s.writeError(w, r, rt.err)
		return
	}
	if r.Method != http.MethodGet {
		s.writeError(w, r, newError(http.StatusNotImplemented, "NotImplemented", "graphtest does not implement %s %s.", r.Method, r.URL.Path))
		return
	}
	perms := s.permissions()
	switch {
	case (rt.ep == EndpointMemberOf || rt.ep == EndpointTransitiveMemberOf) && rt.user:
		// A user's memberships: User.Read.All is the least privilege,
		// GroupMember.Read.All serves too.
		if !perms.canRead(kindUser) && !perms.canRead(kindGroup) {
			s.writeError(w, r, forbidden)
			return
		}
	case rt.ep == EndpointUsers || rt.ep == EndpointUser || rt.ep == EndpointUsersDelta:
		if !perms.canRead(kindUser) {
			s.writeError(w, r, forbidden)
			return
		}
	case rt.ep == EndpointOrganization:
		if !perms.anyOf("Organization.Read.All", "Organization.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All") {
			s.writeError(w, r, forbidden)
			return
		}
	default:
		if !perms.canRead(kindGroup) {
			s.writeError(w, r, forbidden)
			return
		}
	}
	if rt.ep == EndpointGroupsDelta || rt.ep == EndpointUsersDelta {
		s.serveDelta(w, r, rt)
		return
	}

	ix := s.ix.Load()
	kinds := []kind{kindGroup}
	switch {
	case rt.ep == EndpointUsers || rt.ep == EndpointUser:
		kinds = []kind{kindUser}
	case rt.hasCast:
		kinds = []kind{rt.cast}
	case rt.ep == EndpointMemberOf || rt.ep == EndpointTransitiveMemberOf:
		kinds = []kind{kindGroup}
	case rt.ep == EndpointMembers || rt.ep == EndpointTransitiveMembers:
		kinds = []kind{kindUser, kindGroup, kindDevice, kindServicePrincipal, kindOrgContact}
	}
	q, err := parseQuery(r, kinds)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if rt.count && !q.advanced {
		s.writeError(w, r, unsupported("Count is not supported without ConsistencyLevel: eventual."))
		return
	}
	// Filtering members is an advanced query on Graph.
	if (rt.ep == EndpointMembers || rt.ep == EndpointTransitiveMembers || rt.ep == EndpointMemberOf || rt.ep == EndpointTransitiveMemberOf) &&
		q.filter != nil && (!q.advanced || !q.count) {
		s.writeError(w, r, unsupported("Filtering members requires ConsistencyLevel: eventual and $count=true."))
		return
	}
	cost := resourceUnits(rt.ep, q.selected != nil)
	if err := s.charge(cost); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("x-ms-resource-unit", strconv.Itoa(cost))

	var limited [numKinds]bool
	for k := range numKinds {
		limited[k] = !perms.canRead(k)
	}
	base := s.URL + "/v1.0/$metadata#"
	switch rt.ep {
	case EndpointGroups:
		s.writePage(w, r, ix, q, ix.groups, page{context: base + "groups", limited: &limited, countOnly: rt.count})
	case EndpointUsers:
		s.writePage(w, r, ix, q, ix.users, page{context: base + "users", limited: &limited, countOnly: rt.count})
	case EndpointGroup, EndpointUser:
		k := kindGroup
		if rt.ep == EndpointUser {
			k = kindUser
		}
		o, ok := ix.lookup(k, rt.id)
		if !ok {
			s.writeError(w, r, notFoundOf(k, rt.id))
			return
		}
		ctx := base + kindNames[k] + "s/$entity"
		b := append([]byte(`{"@odata.context":`), appendString(nil, ctx)...)
		obj := appendObject(nil, ix, o, q.projection(), false, false)
		b = append(append(b, ','), obj[1:]...)
		s.writeJSON(w, http.StatusOK, b)
	case EndpointMembers, EndpointTransitiveMembers:
		g, ok := ix.lookup(kindGroup, rt.id)
		if !ok {
			s.writeError(w, r, notFound(rt.id))
			return
		}
		items := ix.directMembers(g)
		if rt.ep == EndpointTransitiveMembers {
			items = ix.transitiveMembers(g)
		}
		p := page{context: base + "directoryObjects", withType: true, limited: &limited, countOnly: rt.count}
		if rt.hasCast {
			p.context = base + kindNames[rt.cast] + "s"
			p.cast, p.hasCast = rt.cast, true
		}
		s.writePage(w, r, ix, q, items, p)
	case EndpointMemberOf, EndpointTransitiveMemberOf:
		s.serveMemberOf(w, r, ix, q, rt, &limited)
	case EndpointOrganization:
		s.writeOrganization(w)
	}
}

// notFound is Graph's answer for an unknown object; a malformed id gets 400.
func notFound(id string) *graphError {
	if !isGUID(id) {
		return newError(http.StatusBadRequest, "Request_BadRequest", "Invalid object identifier '%s'.", id)
	}
	return newError(http.StatusNotFound, "Request_ResourceNotFound",
		"Resource '%s' does not exist or one of its queried reference-property objects are not present.", id)
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// page describes how to write a page of a collection.
type page struct {
	context  string
	withType bool // write @odata.type on each object
	cast     kind
	hasCast  bool
	limited  *[numKinds]bool
	// countOnly answers the number of matching objects as text/plain, for
	// a /$count segment.
	countOnly bool
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// writePage writes one page of items: those matching the query from the
// $skiptoken's position on, at most $top, with a nextLink if more match.
// Work is proportional to the items scanned, so reading a whole collection
// page by page is linear.
func (s *Server) writePage(w http.ResponseWriter, r *http.Request, ix *index, q *query, items []int32, p page) {
	match := func(o int32) bool {
		return (!p.hasCast || ix.kind(o) == p.cast) && q.matches(ix, o)
	}
	if p.countOnly {
		n := 0
		for _, o := range items {
			if match(o) {
				n++
			}
		}
		body := strconv.AppendInt(nil, int64(n), 10)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		w.Write(body)
		return
	}
	start := 0
	if q.cursor != nil {
		start = resume(ix, items, *q.cursor)
	}
	found := make([]int32, 0, min(q.top, len(items)-start))
	i := start
	for ; i < len(items) && len(found) < q.top; i++ {
		if match(items[i]) {
			found = append(found, items[i])
		}
	}
	next := -1
	for ; i < len(items); i++ {
		if match(items[i]) {
			next = i
			break
		}
	}

	bp := bufPool.Get().(*[]byte)
	b := append((*bp)[:0], `{"@odata.context":`...)
	b = appendString(b, p.context)
	if q.count {
		n := 0
		for _, o := range items {
			if match(o) {
				n++
			}
		}
		b = append(b, `,"@odata.count":`...)
		b = strconv.AppendInt(b, int64(n), 10)
	}
	if next >= 0 {
		b = append(b, `,"@odata.nextLink":`...)
		b = appendString(b, nextLink(s.URL, r, cursor{pos: next, id: ix.id(items[next])}))
	}
	b = append(b, `,"value":[`...)
	proj := q.projection()
	for n, o := range found {
		if n > 0 {
			b = append(b, ',')
		}
		b = appendObject(b, ix, o, proj, p.withType, p.limited[ix.kind(o)])
	}
	b = append(b, "]}"...)
	s.writeJSON(w, http.StatusOK, b)
	if cap(b) <= 8<<20 {
		*bp = b
		bufPool.Put(bp)
	}
}

// resume finds where a page starts: at the cursor's object, wherever it is
// now, or at its old position if it is gone.
func resume(ix *index, items []int32, c cursor) int {
	if c.pos < len(items) && ix.id(items[c.pos]) == c.id {
		return c.pos
	}
	if o, ok := ix.byID[c.id]; ok && len(items) > 0 {
		if p := int(o - items[0]); p >= 0 && p < len(items) && items[p] == o {
			return p
		}
		if p := slices.Index(items, o); p >= 0 {
			return p
		}
	}
	return min(c.pos, len(items))
}

func (s *Server) writeOrganization(w http.ResponseWriter) {
	b := []byte(`{"@odata.context":`)
	b = appendString(b, s.URL+"/v1.0/$metadata#organization")
	b = append(b, `,"value":[{"id":`...)
	b = appendString(b, s.cfg.tenantID)
	b = append(b, `,"displayName":"graphtest","tenantType":"AAD","verifiedDomains":[{"capabilities":"Email, OfficeCommunicationsOnline","isDefault":true,"isInitial":true,"name":"graphtest.onmicrosoft.com","type":"Managed"}]}]}`...)
	s.writeJSON(w, http.StatusOK, b)
}
