package graphtest

// memberOf and transitiveMemberOf: the groups an object is in, directly
// or through nesting, as Graph lists them for users and groups. Graph also
// lists directory roles and administrative units there; graphtest's
// tenants have neither, so the lists hold groups only, each with its
// @odata.type, as a cast to microsoft.graph.group would.

import (
	"net/http"
	"strings"
)

// parseMemberOf routes /{users|groups}/{id}/{memberOf|transitiveMemberOf}[/cast].
func parseMemberOf(seg []string, user bool) route {
	rt := route{ep: EndpointMemberOf, id: seg[1], user: user}
	if strings.EqualFold(seg[2], "transitiveMemberOf") {
		rt.ep = EndpointTransitiveMemberOf
	}
	if len(seg) == 4 {
		rt.cast, rt.hasCast = parseCast(seg[3])
		if !rt.hasCast {
			rt.err = newError(http.StatusBadRequest, "BadRequest", "Resource not found for the segment '%s'.", seg[3])
		}
	}
	return rt
}

// memberOf returns the groups object o is a direct member of, in tenant
// order.
func (ix *index) memberOf(o int32) []int32 {
	ix.parentsOnce.Do(func() {
		ix.parents = map[int32][]int32{}
		for _, g := range ix.groups {
			for _, m := range ix.directMembers(g) {
				ix.parents[m] = append(ix.parents[m], g)
			}
		}
	})
	return ix.parents[o]
}

// transitiveMemberOf returns every group o is in through nesting, each
// once, nearest first; never o itself, even in a cycle.
func (ix *index) transitiveMemberOf(o int32) []int32 {
	seen := map[int32]bool{o: true}
	var out []int32
	for queue := []int32{o}; len(queue) > 0; queue = queue[1:] {
		for _, p := range ix.memberOf(queue[0]) {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
				queue = append(queue, p)
			}
		}
	}
	return out
}

// serveMemberOf writes a page of the groups rt's object is in.
func (s *Server) serveMemberOf(w http.ResponseWriter, r *http.Request, ix *index, q *query, rt route, limited *[numKinds]bool) {
	k := kindGroup
	if rt.user {
		k = kindUser
	}
	o, ok := ix.lookup(k, rt.id)
	if !ok {
		s.writeError(w, r, notFoundOf(k, rt.id))
		return
	}
	items := ix.memberOf(o)
	if rt.ep == EndpointTransitiveMemberOf {
		items = ix.transitiveMemberOf(o)
	}
	base := s.URL + "/v1.0/$metadata#"
	p := page{context: base + "directoryObjects", withType: true, limited: limited, countOnly: rt.count}
	if rt.hasCast {
		p.context = base + kindNames[rt.cast] + "s"
		p.cast, p.hasCast = rt.cast, true
	}
	s.writePage(w, r, ix, q, items, p)
}

// notFoundOf is notFound for an object of kind k: a user may be named by
// userPrincipalName, so any name Graph cannot find is 404 for users, while
// a group id that is not a GUID is malformed (400).
func notFoundOf(k kind, id string) *graphError {
	if k == kindUser {
		return newError(http.StatusNotFound, "Request_ResourceNotFound",
			"Resource '%s' does not exist or one of its queried reference-property objects are not present.", id)
	}
	return notFound(id)
}
