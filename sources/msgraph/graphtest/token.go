package graphtest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// The token endpoint is enough of Entra ID for azidentity's confidential
// credentials (client secret, certificate, assertion, workload identity).
// With a cloud.Configuration whose ActiveDirectoryAuthorityHost is
// AuthorityHost() and DisableInstanceDiscovery set, MSAL for Go requests:
//
//  1. GET {host}/{tenant}/v2.0/.well-known/openid-configuration (with an
//     empty query string): it needs authorization_endpoint, token_endpoint
//     and an issuer on the same scheme and host, replaces "{tenant}" in
//     them, and caches the answer per authority;
//  2. POST {token_endpoint} as a form: grant_type=client_credentials,
//     client_id, scope ("https://graph.microsoft.com/.default"), and
//     client_secret, or client_assertion_type (jwt-bearer) and
//     client_assertion, plus client_info=1 for assertions.
//
// MSAL insists on https for the authority, so use NewTLS. Without
// DisableInstanceDiscovery it first asks
// https://login.microsoftonline.com/common/discovery/instance about any host
// it does not know, whatever the authority host: that is the real service,
// not this server. /common/discovery/instance is served here anyway.

// TokenRequest is a token request the server received.
type TokenRequest struct {
	Tenant    string
	GrantType string
	ClientID  string
	Scope     string // the resource scope, without the OpenID scopes MSAL adds
	// Credential is "secret" or "assertion".
	Credential      string
	AssertionClaims map[string]any // the client assertion's claims
}

// TokenRequests returns the token requests received so far (the last 100).
func (s *Server) TokenRequests() []TokenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.tokenReqs)
}

func parseAuthRoute(path string) route {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(seg) == 4 && seg[1] == "v2.0" && seg[2] == ".well-known" && seg[3] == "openid-configuration":
		return route{ep: EndpointOpenIDConfiguration, tenant: seg[0]}
	case len(seg) == 4 && seg[1] == "oauth2" && seg[2] == "v2.0" && seg[3] == "token":
		return route{ep: EndpointToken, tenant: seg[0]}
	case len(seg) == 3 && seg[1] == "discovery" && seg[2] == "instance":
		return route{ep: EndpointInstanceDiscovery, tenant: seg[0]}
	}
	return route{ep: EndpointOther, err: newError(http.StatusNotFound, "BadRequest", "graphtest serves /v1.0/... and the Entra ID token endpoints; %s is neither.", path)}
}

// aadError is Entra ID's OAuth error document.
type aadError struct {
	status      int
	err         string
	code        int
	description string
}

func (s *Server) writeAADError(w http.ResponseWriter, r *http.Request, e aadError) {
	traceID := w.Header().Get("request-id")
	now := s.clock().UTC()
	desc := fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s",
		e.code, e.description, traceID, clientRequestID(r, traceID), now.Format("2006-01-02 15:04:05Z"))
	doc := map[string]any{
		"error":             e.err,
		"error_description": desc,
		"error_codes":       []int{e.code},
		"timestamp":         now.Format("2006-01-02 15:04:05Z"),
		"trace_id":          traceID,
		"correlation_id":    clientRequestID(r, traceID),
		"error_uri":         s.URL + "/error?code=" + fmt.Sprint(e.code),
	}
	body, _ := json.Marshal(doc)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(e.status)
	w.Write(body)
}

// knownTenant accepts the directory id, its domain and the multi-tenant
// aliases, as Entra ID does; anything else is AADSTS90002.
func (s *Server) knownTenant(w http.ResponseWriter, r *http.Request, tenant string) bool {
	switch strings.ToLower(tenant) {
	case strings.ToLower(s.cfg.tenantID), "graphtest.onmicrosoft.com", "common", "organizations":
		return true
	}
	s.writeAADError(w, r, aadError{http.StatusBadRequest, "invalid_tenant", 90002,
		fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant)})
	return false
}

func (s *Server) serveOpenIDConfiguration(w http.ResponseWriter, r *http.Request, rt route) {
	if !s.knownTenant(w, r, rt.tenant) {
		return
	}
	base := s.URL + "/" + rt.tenant
	doc := map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                base + "/v2.0",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"tenant_region_scope":                   nil,
		"cloud_instance_name":                   "microsoftonline.com",
	}
	body, _ := json.Marshal(doc)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Write(body)
}

func (s *Server) serveInstanceDiscovery(w http.ResponseWriter, r *http.Request, rt route) {
	host := strings.TrimPrefix(strings.TrimPrefix(s.URL, "https://"), "http://")
	tenant := "common"
	if u, err := url.Parse(r.URL.Query().Get("authorization_endpoint")); err == nil {
		if seg := strings.Split(strings.Trim(u.Path, "/"), "/"); seg[0] != "" {
			tenant = seg[0]
		}
	}
	doc := map[string]any{
		"tenant_discovery_endpoint": s.URL + "/" + tenant + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata": []map[string]any{{
			"preferred_network": host,
			"preferred_cache":   host,
			"aliases":           []string{host},
		}},
	}
	body, _ := json.Marshal(doc)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Write(body)
}

const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, rt route) {
	if r.Method != http.MethodPost {
		s.writeAADError(w, r, aadError{http.StatusMethodNotAllowed, "invalid_request", 900561, "The endpoint only accepts POST requests."})
		return
	}
	if !s.knownTenant(w, r, rt.tenant) {
		return
	}
	if err := r.ParseForm(); err != nil {
		s.writeAADError(w, r, aadError{http.StatusBadRequest, "invalid_request", 900144, "The request body must be a form."})
		return
	}
	f := r.PostForm
	tr := TokenRequest{Tenant: rt.tenant, GrantType: f.Get("grant_type"), ClientID: f.Get("client_id"), Scope: resourceScope(f.Get("scope"))}
	secret := f.Get("client_secret")
	if id, sec, ok := r.BasicAuth(); ok {
		tr.ClientID, secret = id, sec
	}
	missing := func(p string) aadError {
		return aadError{http.StatusBadRequest, "invalid_request", 900144, fmt.Sprintf("The request body must contain the following parameter: '%s'.", p)}
	}
	var fail *aadError
	switch {
	case tr.GrantType == "":
		fail = ptr(missing("grant_type"))
	case tr.GrantType != "client_credentials":
		fail = &aadError{http.StatusBadRequest, "unsupported_grant_type", 70003, fmt.Sprintf("The app requested an unsupported grant type '%s'.", tr.GrantType)}
	case tr.ClientID == "":
		fail = ptr(missing("client_id"))
	case s.cfg.clientID != "" && tr.ClientID != s.cfg.clientID:
		fail = &aadError{http.StatusBadRequest, "unauthorized_client", 700016,
			fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", tr.ClientID, s.cfg.tenantID)}
	case f.Get("scope") == "":
		fail = ptr(missing("scope"))
	case strings.Contains(tr.Scope, " ") || !strings.HasSuffix(tr.Scope, "/.default"):
		fail = &aadError{http.StatusBadRequest, "invalid_scope", 1002012,
			fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", f.Get("scope"))}
	case secret != "":
		tr.Credential = "secret"
		if s.cfg.clientSecret != "" && secret != s.cfg.clientSecret {
			fail = &aadError{http.StatusUnauthorized, "invalid_client", 7000215,
				fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", tr.ClientID)}
		}
	case f.Get("client_assertion") != "":
		tr.Credential = "assertion"
		claims, err := parseJWT(f.Get("client_assertion"))
		switch {
		case f.Get("client_assertion_type") != jwtBearer:
			fail = &aadError{http.StatusBadRequest, "invalid_request", 50027, "Invalid client_assertion_type: expected " + jwtBearer + "."}
		case err != nil:
			fail = &aadError{http.StatusUnauthorized, "invalid_client", 50027, "JWT token is invalid or malformed: " + err.Error() + "."}
		}
		tr.AssertionClaims = claims
	default:
		fail = &aadError{http.StatusUnauthorized, "invalid_client", 7000216,
			"'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type."}
	}
	s.mu.Lock()
	s.tokenReqs = append(s.tokenReqs, tr)
	if len(s.tokenReqs) > 100 {
		s.tokenReqs = s.tokenReqs[1:]
	}
	s.mu.Unlock()
	if fail != nil {
		s.writeAADError(w, r, *fail)
		return
	}
	body, _ := json.Marshal(map[string]any{
		"token_type":     "Bearer",
		"expires_in":     3599,
		"ext_expires_in": 3599,
		"access_token":   s.cfg.token,
	})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Write(body)
}

func ptr[T any](v T) *T { return &v }

// resourceScope drops the OpenID scopes MSAL adds to every request, even
// for client credentials ("openid offline_access profile"), which Entra ID
// ignores there.
func resourceScope(scope string) string {
	var out []string
	for _, s := range strings.Fields(scope) {
		switch s {
		case "openid", "profile", "offline_access":
		default:
			out = append(out, s)
		}
	}
	return strings.Join(out, " ")
}

// parseJWT checks a compact JWS is three base64url parts, the first two JSON
// objects with an "alg" in the header, and returns its claims. Signatures are
// not checked.
func parseJWT(s string) (map[string]any, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%d parts, want 3", len(parts))
	}
	var header, claims map[string]any
	for i, dst := range []*map[string]any{&header, &claims} {
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[i], "="))
		if err != nil {
			return nil, fmt.Errorf("part %d: %v", i+1, err)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return nil, fmt.Errorf("part %d: %v", i+1, err)
		}
	}
	if _, ok := header["alg"]; !ok {
		return nil, fmt.Errorf("no alg in the header")
	}
	if parts[2] == "" {
		return nil, fmt.Errorf("no signature")
	}
	return claims, nil
}
