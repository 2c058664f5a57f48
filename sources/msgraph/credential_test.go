package msgraph

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sources/msgraph/graphtest"
)

func TestEndpointsFollowTheCloud(t *testing.T) {
	for cloud, want := range map[string][3]string{
		"public":    {"https://graph.microsoft.com/v1.0", "https://graph.microsoft.com/.default", "https://login.microsoftonline.com/"},
		"usgov":     {"https://graph.microsoft.us/v1.0", "https://graph.microsoft.us/.default", "https://login.microsoftonline.us/"},
		"usgov-dod": {"https://dod-graph.microsoft.us/v1.0", "https://dod-graph.microsoft.us/.default", "https://login.microsoftonline.us/"},
		"china":     {"https://microsoftgraph.chinacloudapi.cn/v1.0", "https://microsoftgraph.chinacloudapi.cn/.default", "https://login.chinacloudapi.cn/"},
	} {
		base, scope, authority := endpoints(config.MSGraph{Cloud: cloud})
		if [3]string{base, scope, authority} != want {
			t.Errorf("%s: %s %s %s", cloud, base, scope, authority)
		}
	}
	// An endpoint override moves requests, not the token's audience.
	base, scope, authority := endpoints(config.MSGraph{Cloud: "usgov", GraphEndpoint: "https://graph.proxy.example/", AuthorityHost: "https://login.proxy.example"})
	if base != "https://graph.proxy.example/v1.0" || scope != "https://graph.microsoft.us/.default" || authority != "https://login.proxy.example/" {
		t.Errorf("override: %s %s %s", base, scope, authority)
	}
}

// tlsConfig is a source config that gets its token from srv's authority.
func tlsConfig(srv *graphtest.Server, auth string) config.MSGraph {
	c := config.Default().Source.MSGraph
	c.Auth = auth
	c.TenantID = srv.TenantID()
	c.ClientID = "11111111-2222-3333-4444-555555555555"
	c.GraphEndpoint = srv.URL
	c.AuthorityHost = srv.AuthorityHost()
	return c
}

func snapshotWith(t *testing.T, srv *graphtest.Server, cfg config.MSGraph) error {
	t.Helper()
	src, err := New(cfg, WithTokenTransport(srv.Client()), WithTransport(srv.Client().Transport))
	if err != nil {
		return err
	}
	_, err = src.Snapshot(context.Background())
	return err
}

func TestClientSecret(t *testing.T) {
	srv := graphtest.NewTLS(t, fixture(), graphtest.WithClientSecret("s3cr3t-value"))
	cfg := tlsConfig(srv, "client_secret")
	cfg.ClientSecret = "s3cr3t-value"
	if err := snapshotWith(t, srv, cfg); err != nil {
		t.Fatal(err)
	}
	reqs := srv.TokenRequests()
	if len(reqs) == 0 || reqs[0].Credential != "secret" || reqs[0].Scope != "https://graph.microsoft.com/.default" || reqs[0].ClientID != cfg.ClientID {
		t.Fatalf("token requests %+v", reqs)
	}
	cfg.ClientSecret = "wrong-secret-value"
	err := snapshotWith(t, srv, cfg)
	if err == nil {
		t.Fatal("a wrong secret was accepted")
	}
	if strings.Contains(err.Error(), "wrong-secret-value") || strings.Contains(err.Error(), "s3cr3t-value") {
		t.Fatalf("error shows the secret: %v", err)
	}
}

func TestClientCertificate(t *testing.T) {
	srv := graphtest.NewTLS(t, fixture())
	dir := t.TempDir()
	certFile := filepath.Join(dir, "app.pem")
	writeCert(t, certFile)
	cfg := tlsConfig(srv, "client_certificate")
	cfg.CertificateFile = certFile
	cfg.SendCertificateChain = true
	if err := snapshotWith(t, srv, cfg); err != nil {
		t.Fatal(err)
	}
	reqs := srv.TokenRequests()
	if len(reqs) == 0 || reqs[0].Credential != "assertion" || reqs[0].AssertionClaims["aud"] == nil {
		t.Fatalf("token requests %+v", reqs)
	}
	// A file that is not a certificate names the setting.
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.CertificateFile = bad
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "source.msgraph.certificate_file") {
		t.Fatalf("err %v", err)
	}
}

func TestWorkloadIdentity(t *testing.T) {
	srv := graphtest.NewTLS(t, fixture())
	tokenFile := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(tokenFile, []byte(fakeJWT(map[string]any{"sub": "system:serviceaccount:groupsync:groupsync"})), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := tlsConfig(srv, "workload_identity")
	cfg.FederatedTokenFile = tokenFile
	if err := snapshotWith(t, srv, cfg); err != nil {
		t.Fatal(err)
	}
	if reqs := srv.TokenRequests(); len(reqs) == 0 || reqs[0].Credential != "assertion" {
		t.Fatalf("token requests %+v", reqs)
	}
}

func TestOtherCredentialsConstruct(t *testing.T) {
	for _, auth := range []string{"managed_identity", "default", "token"} {
		cfg := config.Default().Source.MSGraph
		cfg.Auth, cfg.Token = auth, "x"
		if _, err := New(cfg); err != nil {
			t.Errorf("%s: %v", auth, err)
		}
	}
}

func TestCheckNamesTheMissingPermission(t *testing.T) {
	run := func(roles []string, perms []string, mapping func(*config.Mapping)) map[string][3]string {
		tok := fakeJWT(map[string]any{"roles": roles})
		srv := graphtest.New(t, fixture(), graphtest.WithToken(tok), graphtest.WithPermissions(perms...))
		cfg := graphConfig(srv)
		cfg.Token = config.Secret(tok)
		m := config.Default().Mapping
		if mapping != nil {
			mapping(&m)
		}
		src, err := New(cfg, WithMapping(m))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][3]string{}
		for _, r := range src.Check(context.Background()) {
			e := ""
			if r.Err != nil {
				e = r.Err.Error()
			}
			out[r.What] = [3]string{e, r.Warning, r.Note}
		}
		return out
	}
	const perms = "application permissions in the token"
	all := run([]string{"GroupMember.Read.All", "User.Read.All"}, []string{"GroupMember.Read.All", "User.Read.All"}, nil)
	for what, r := range all {
		if r[0] != "" || r[1] != "" {
			t.Errorf("all granted: %s: %q", what, r)
		}
	}
	noUsers := run([]string{"GroupMember.Read.All"}, []string{"GroupMember.Read.All"}, func(m *config.Mapping) { m.User.Key = "upn" })
	if !strings.Contains(noUsers[perms][0], "User.Read.All") || !strings.Contains(noUsers["Graph GET /users"][0], "User.Read.All") {
		t.Errorf("upn without User.Read.All: %q", noUsers)
	}
	byID := run([]string{"GroupMember.Read.All"}, []string{"GroupMember.Read.All"}, nil)
	if byID[perms][0] != "" || !strings.Contains(byID[perms][1], "skip_disabled") {
		t.Errorf("id keys with skip_disabled warn: %q", byID)
	}
	byIDNoState := run([]string{"GroupMember.Read.All"}, []string{"GroupMember.Read.All"}, func(m *config.Mapping) { m.User.SkipDisabled = false })
	for what, r := range byIDNoState {
		if r[0] != "" || r[1] != "" {
			t.Errorf("least privilege: %s: %q", what, r)
		}
	}
	none := run(nil, nil, nil)
	if !strings.Contains(none[perms][0], "GroupMember.Read.All") || !strings.Contains(none["Graph GET /groups"][0], "GroupMember.Read.All") {
		t.Errorf("no permissions: %q", none)
	}
}

// fakeJWT is an unsigned token with claims: groupsync reads claims, Graph
// (here graphtest, which compares strings) checks them.
func fakeJWT(claims map[string]any) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(map[string]string{"alg": "none", "typ": "JWT"}) + "." + enc(claims) + ".c2ln"
}

func writeCert(t *testing.T, path string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "groupsync-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	data = append(data, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
