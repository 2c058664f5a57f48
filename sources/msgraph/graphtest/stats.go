package graphtest

import (
	"strconv"
	"sync/atomic"
)

// Endpoint is the kind of a request, for counting and for fault hooks.
type Endpoint int

const (
	EndpointOther               Endpoint = iota // anything unrouted
	EndpointGroups                              // GET /v1.0/groups (one page)
	EndpointGroup                               // GET /v1.0/groups/{id}
	EndpointMembers                             // GET /v1.0/groups/{id}/members[/cast] (one page)
	EndpointTransitiveMembers                   // GET /v1.0/groups/{id}/transitiveMembers[/cast] (one page)
	EndpointUsers                               // GET /v1.0/users (one page)
	EndpointUser                                // GET /v1.0/users/{id}
	EndpointOrganization                        // GET /v1.0/organization
	EndpointBatch                               // POST /v1.0/$batch (the envelope)
	EndpointOpenIDConfiguration                 // GET /{tenant}/v2.0/.well-known/openid-configuration
	EndpointInstanceDiscovery                   // GET /common/discovery/instance
	EndpointToken                               // POST /{tenant}/oauth2/v2.0/token
	EndpointGroupsDelta                         // GET /v1.0/groups/delta (one page)
	EndpointUsersDelta                          // GET /v1.0/users/delta (one page)
	EndpointMemberOf                            // GET /v1.0/{users|groups}/{id}/memberOf[/cast] (one page)
	EndpointTransitiveMemberOf                  // GET /v1.0/{users|groups}/{id}/transitiveMemberOf[/cast] (one page)
	numEndpoints
)

var endpointNames = [numEndpoints]string{
	"other", "groups", "group", "members", "transitiveMembers", "users", "user",
	"organization", "batch", "openid-configuration", "instance-discovery", "token",
	"groupsDelta", "usersDelta", "memberOf", "transitiveMemberOf",
}

func (e Endpoint) String() string {
	if e >= 0 && e < numEndpoints {
		return endpointNames[e]
	}
	return "Endpoint(" + strconv.Itoa(int(e)) + ")"
}

// isResource reports whether the endpoint reads directory data.
func (e Endpoint) isResource() bool {
	return e >= EndpointGroups && e <= EndpointOrganization || e >= EndpointGroupsDelta && e <= EndpointTransitiveMemberOf
}

// Stats counts the requests the server received, whatever their answer.
// Items of a batch count under their own endpoint and in BatchItems, and the
// envelope in BatchPosts; Requests counts HTTP requests, so a batch once.
type Stats struct {
	Requests              int64
	GroupPages            int64 // GET /groups, one per page
	GroupGets             int64 // GET /groups/{id}
	MemberPages           int64 // GET /groups/{id}/members, one per page
	TransitiveMemberPages int64 // GET /groups/{id}/transitiveMembers, one per page
	UserPages             int64 // GET /users, one per page
	UserGets              int64 // GET /users/{id}
	Organization          int64
	GroupDeltaPages       int64 // GET /groups/delta, one per page
	UserDeltaPages        int64 // GET /users/delta, one per page
	MemberOfPages         int64 // GET /users|groups/{id}/memberOf, one per page
	// TransitiveMemberOfPages counts GET /users|groups/{id}/transitiveMemberOf, one per page.
	TransitiveMemberOfPages int64
	BatchPosts              int64
	BatchItems              int64
	TokenRequests           int64
	OpenIDConfiguration     int64
	InstanceDiscovery       int64
	Other                   int64
	Throttled               int64 // answered 429 by the throttle (not by faults)
	Faults                  int64 // faults injected
	ResourceUnits           int64 // throttling cost of the requests served
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	c := func(e Endpoint) int64 { return s.counts[e].Load() }
	return Stats{
		Requests:                s.requests.Load(),
		GroupPages:              c(EndpointGroups),
		GroupGets:               c(EndpointGroup),
		MemberPages:             c(EndpointMembers),
		TransitiveMemberPages:   c(EndpointTransitiveMembers),
		UserPages:               c(EndpointUsers),
		UserGets:                c(EndpointUser),
		Organization:            c(EndpointOrganization),
		GroupDeltaPages:         c(EndpointGroupsDelta),
		UserDeltaPages:          c(EndpointUsersDelta),
		MemberOfPages:           c(EndpointMemberOf),
		TransitiveMemberOfPages: c(EndpointTransitiveMemberOf),
		BatchPosts:              c(EndpointBatch),
		BatchItems:              s.batchItems.Load(),
		TokenRequests:           c(EndpointToken),
		OpenIDConfiguration:     c(EndpointOpenIDConfiguration),
		InstanceDiscovery:       c(EndpointInstanceDiscovery),
		Other:                   c(EndpointOther),
		Throttled:               s.throttled.Load(),
		Faults:                  s.faults.Load(),
		ResourceUnits:           s.resourceUnits.Load(),
	}
}

// ResetStats zeroes the counters.
func (s *Server) ResetStats() {
	for i := range s.counts {
		s.counts[i].Store(0)
	}
	for _, c := range []*atomic.Int64{&s.requests, &s.batchItems, &s.throttled, &s.faults, &s.resourceUnits} {
		c.Store(0)
	}
}
