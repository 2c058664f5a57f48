package graphtest

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func postForm(t *testing.T, s *Server, target string, form url.Values) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+target, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	return send(t, s.Client(), req)
}

func jwt(header, claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(claims)) + "." + enc([]byte("signature"))
}

func TestTokenEndpoint(t *testing.T) {
	s := NewTLS(t, nil, WithClientSecret("s3cret"), WithClientID("app-id"), WithToken("issued-token"))
	if !strings.HasPrefix(s.URL, "https://") || s.Certificate() == nil {
		t.Fatalf("NewTLS serves %s", s.URL)
	}
	tenant := s.TenantID()

	// What MSAL reads first: the endpoints, on this host.
	cfg := get(t, s, "/"+tenant+"/v2.0/.well-known/openid-configuration?", "Authorization", "")
	base := s.URL + "/" + tenant
	if cfg.body["token_endpoint"] != base+"/oauth2/v2.0/token" || cfg.body["issuer"] != base+"/v2.0" ||
		cfg.body["authorization_endpoint"] != base+"/oauth2/v2.0/authorize" {
		t.Errorf("openid-configuration: %s", cfg.raw)
	}
	disc := get(t, s, "/common/discovery/instance?api-version=1.1&authorization_endpoint="+url.QueryEscape(base+"/oauth2/v2.0/authorize"), "Authorization", "")
	if disc.body["tenant_discovery_endpoint"] != base+"/v2.0/.well-known/openid-configuration" {
		t.Errorf("instance discovery: %s", disc.raw)
	}

	token := "/" + tenant + "/oauth2/v2.0/token"
	form := func(kv ...string) url.Values {
		v := url.Values{"grant_type": {"client_credentials"}, "client_id": {"app-id"}, "scope": {"https://graph.microsoft.com/.default"}}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				v.Del(kv[i])
			} else {
				v.Set(kv[i], kv[i+1])
			}
		}
		return v
	}
	ok := postForm(t, s, token, form("client_secret", "s3cret"))
	if ok.status != 200 || ok.body["access_token"] != "issued-token" || ok.body["token_type"] != "Bearer" || ok.body["expires_in"] != float64(3599) {
		t.Fatalf("secret: %d %s", ok.status, ok.raw)
	}
	assertion := jwt(`{"alg":"PS256","typ":"JWT","x5t#S256":"abc"}`, `{"aud":"`+s.URL+token+`","iss":"app-id","sub":"app-id"}`)
	if a := postForm(t, s, token, form("client_assertion_type", jwtBearer, "client_assertion", assertion)); a.status != 200 {
		t.Errorf("assertion: %d %s", a.status, a.raw)
	}
	reqs := s.TokenRequests()
	if len(reqs) != 2 || reqs[0].Credential != "secret" || reqs[1].Credential != "assertion" || reqs[1].AssertionClaims["aud"] != s.URL+token ||
		reqs[0].Scope != "https://graph.microsoft.com/.default" || reqs[0].Tenant != tenant {
		t.Errorf("recorded %+v", reqs)
	}

	for name, tc := range map[string]struct {
		target string
		form   url.Values
		status int
		err    string
		code   string
	}{
		"wrong secret":      {token, form("client_secret", "nope"), 401, "invalid_client", "AADSTS7000215"},
		"no credential":     {token, form(), 401, "invalid_client", "AADSTS7000216"},
		"malformed jwt":     {token, form("client_assertion_type", jwtBearer, "client_assertion", "not.a-jwt"), 401, "invalid_client", "AADSTS50027"},
		"no scope":          {token, form("client_secret", "s3cret", "scope", ""), 400, "invalid_request", "AADSTS900144"},
		"scope not default": {token, form("client_secret", "s3cret", "scope", "User.Read"), 400, "invalid_scope", "AADSTS1002012"},
		"other client":      {token, form("client_secret", "s3cret", "client_id", "other"), 400, "unauthorized_client", "AADSTS700016"},
		"other grant":       {token, form("client_secret", "s3cret", "grant_type", "password"), 400, "unsupported_grant_type", "AADSTS70003"},
		"unknown tenant":    {"/someone-else/oauth2/v2.0/token", form("client_secret", "s3cret"), 400, "invalid_tenant", "AADSTS90002"},
	} {
		a := postForm(t, s, tc.target, tc.form)
		desc, _ := a.body["error_description"].(string)
		if a.status != tc.status || a.body["error"] != tc.err || !strings.HasPrefix(desc, tc.code+":") {
			t.Errorf("%s: %d %s", name, a.status, a.raw)
		}
	}
	if st := s.Stats(); st.TokenRequests != 10 || st.OpenIDConfiguration != 1 || st.InstanceDiscovery != 1 {
		t.Errorf("stats %+v", st)
	}

	// The issued token opens Graph, over TLS.
	a := get(t, s, "/v1.0/groups", "Authorization", "Bearer issued-token")
	if a.status != 200 {
		t.Errorf("Graph with the issued token: %d", a.status)
	}
}

func TestTokenRequestsDoNotTakeFailNext(t *testing.T) {
	s := NewTLS(t, nil)
	s.FailNext(1, http.StatusServiceUnavailable)
	a := postForm(t, s, "/"+s.TenantID()+"/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"},
		"client_id": {"x"}, "scope": {"https://graph.microsoft.com/.default"}, "client_secret": {"y"}})
	if a.status != 200 {
		t.Errorf("token: %d", a.status)
	}
	if a := get(t, s, "/v1.0/groups"); a.status != 503 {
		t.Errorf("the Graph request takes the fault: %d", a.status)
	}
}
