// Package graphtest is a wire-level fake of Microsoft Graph v1.0 and of the
// Entra ID token endpoint, in the manner of net/http/httptest: a real HTTP
// server on a local port that msgraph-sdk-go and azidentity talk to as they
// would to Microsoft, with only the base URL and the credentials changed.
//
// It serves what a group sync reads:
//
//	GET  /v1.0/groups                         $select $filter $top $count $search, paged by @odata.nextLink
//	GET  /v1.0/groups/{id}                    $select
//	GET  /v1.0/groups/{id}/members            casts /graph.user, /microsoft.graph.group...; $select $top $filter
//	GET  /v1.0/groups/{id}/transitiveMembers  the same, flattened, nested groups included
//	GET  /v1.0/users, /v1.0/users/{id|upn}    as groups; an unknown id or upn is 404
//	GET  /v1.0/{users|groups}/{id}/memberOf   the groups it is directly in; casts, $select $top $filter as members
//	GET  .../{id}/transitiveMemberOf          the same, through nesting, never the object itself
//	GET  /v1.0/groups/delta, /v1.0/users/delta  delta queries: $select (members), $filter=id eq, $deltatoken=latest; see delta.go
//	GET  .../$count on any of the collections  text/plain, with ConsistencyLevel: eventual
//	GET  /v1.0/organization                   needs Organization.Read.All or Directory.Read.All
//	POST /v1.0/$batch                         up to 20 items, gzip bodies, answers in reverse order
//	GET  /{tenant}/v2.0/.well-known/openid-configuration, POST /{tenant}/oauth2/v2.0/token
//	POST/GET/PATCH/DELETE /v1.0/subscriptions[/{id}[/reauthorize]]  change notifications on groups, delivered over HTTP; see subscriptions.go
//
// Anything else ($expand, $orderby, writes) answers 501, or
// 400 for query options, with a message naming graphtest, so a gap in the
// fake is never mistaken for Graph's behaviour.
//
// It answers with Graph's limits, error documents, permissions and
// throttling costs, and lets a test inject latency, throttling, error
// statuses, dropped connections, truncated and malformed bodies, and tenant
// changes between or during reads. Stats counts requests by endpoint and
// resource units.
//
// Tenant changes made with Mutate, RemoveGroup and RemoveUser go into a
// change log that delta queries replay: a deltaLink round returns the net
// changes since its token (created, changed and removed groups and users,
// members@delta with @removed), paged and merged as on Graph. WithDelta sets
// page sizes, empty pages and replays; ExpireDeltaTokens and ResetDelta
// make Graph's 400 syncStateNotFound and 410 Gone happen.
//
// Behaviour worth knowing, all as on Graph: without $select a user carries
// Graph's default properties, which leave out accountEnabled and userType;
// members of a type the app may not read (users without User.Read.All,
// devices without Device.Read.All...) come back with only @odata.type and
// id; display names are not unique; advanced queries (ne, not, endswith,
// null, $count, $search, filters on members) need ConsistencyLevel: eventual
// and $count=true.
//
// # Use
//
//	tenant := graphtest.Generate(graphtest.GenOptions{Seed: 1, Users: 500, Groups: 50, MaxDepth: 2})
//	srv := graphtest.New(t, tenant, graphtest.WithPermissions("GroupMember.Read.All"))
//	// SDK: a static-token credential, valid hosts []string{"127.0.0.1"},
//	// adapter.SetBaseUrl(srv.GraphURL()), Authorization: Bearer srv.Token().
//	srv.FailNext(1, http.StatusServiceUnavailable)
//	srv.RemoveGroup(tenant.Groups[3].ID)
//	if got := srv.Stats().MemberPages; got > 60 { t.Errorf("read %d member pages", got) }
//
// For azidentity, start the server with NewTLS (MSAL refuses a non-https
// authority) and configure the credential with
// azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost:
// srv.AuthorityHost()}, Transport: srv.Client()} and DisableInstanceDiscovery:
// true, tenant srv.TenantID(); see token.go for what MSAL requests.
//
// For benchmarks outside a test, NewServer and Close.
//
// # Tenant fixtures
//
// LoadTenant reads YAML or JSON with Graph's property names; accountEnabled
// defaults to true and userType to Member. Members may be any object's id.
//
//	users:
//	  - id: 1f6d3a52-0c3e-4a8e-9d0f-2b7c5e8a9b01
//	    displayName: Adele Vance
//	    userPrincipalName: adele@contoso.example
//	    mail: adele@contoso.example
//	  - id: 2a7e4b63-1d4f-4b9f-8e1a-3c8d6f9b0c12
//	    userPrincipalName: guest_fabrikam.example#EXT#@contoso.example
//	    userType: Guest
//	    accountEnabled: false
//	groups:
//	  - id: 3b8f5c74-2e5a-4cab-9f2b-4d9e7a0c1d23
//	    displayName: Engineering
//	    securityEnabled: true
//	    members: [1f6d3a52-0c3e-4a8e-9d0f-2b7c5e8a9b01, 4c9a6d85-3f6b-4dbc-8a3c-5e0f8b1d2e34]
//	  - id: 4c9a6d85-3f6b-4dbc-8a3c-5e0f8b1d2e34
//	    displayName: Engineering Leads
//	    groupTypes: [Unified]          # Microsoft 365; DynamicMembership for dynamic groups
//	    mailEnabled: true
//	    isAssignableToRole: false
//	    members: [2a7e4b63-1d4f-4b9f-8e1a-3c8d6f9b0c12, 5dab7e96-4a7c-4ecd-9b4d-6f1a9c2e3f45]
//	devices:             # servicePrincipals and orgContacts have the same shape
//	  - id: 5dab7e96-4a7c-4ecd-9b4d-6f1a9c2e3f45
//	    displayName: DESKTOP-01
//
// Generate builds tenants of any size instead: deterministic for a seed,
// with skewed group sizes, nesting to a chosen depth, cycles, duplicate
// names, guests, disabled users and non-user members.
package graphtest
