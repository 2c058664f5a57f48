package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func noEnv(string) (string, bool) { return "", false }

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

const minimal = `source:
  type: file
  file: {path: tenant.yaml}
openfga:
  api_url: "http://127.0.0.1:8080"
  store_name: demo
`

// doc builds a config whose sections are replaced where given.
func doc(source, openfga, mapping string) string {
	if source == "" {
		source = "{type: file, file: {path: t.yaml}}"
	}
	if openfga == "" {
		openfga = `{api_url: "http://x", store_name: demo}`
	}
	if mapping == "" {
		mapping = "{}"
	}
	return "source: " + source + "\nopenfga: " + openfga + "\nmapping: " + mapping + "\n"
}

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Mapping.ObjectType != "group" || c.Mapping.Relation != "member" || c.Mapping.User.Type != "user" ||
		c.Mapping.User.Key != "id" || c.Mapping.Group.Key != "name" || c.Mapping.Nesting != "flatten" ||
		!c.Mapping.User.SkipDisabled || !c.Mapping.Filters.DefaultExcludes {
		t.Errorf("mapping defaults: %+v", c.Mapping)
	}
	if c.OpenFGA.MaxTuplesPerWrite != 100 || c.OpenFGA.MaxParallelWrites != 4 || c.OpenFGA.ReadPageSize != 100 ||
		c.OpenFGA.Auth.Method != "none" || time.Duration(c.OpenFGA.RequestTimeout) != 30*time.Second {
		t.Errorf("openfga defaults: %+v", c.OpenFGA)
	}
}

func TestExplicitZeroAndFalseStay(t *testing.T) {
	c, err := Parse([]byte(minimal+"  max_retries: 0\nmapping: {user: {skip_disabled: false}, filters: {default_excludes: false}}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.OpenFGA.MaxRetries != 0 || c.Mapping.User.SkipDisabled || c.Mapping.Filters.DefaultExcludes {
		t.Errorf("%+v %+v", c.OpenFGA, c.Mapping)
	}
}

func TestEveryErrorNamesItsField(t *testing.T) {
	cases := []struct{ doc, field string }{
		{doc("", `{store_name: x}`, ""), "openfga.api_url"},
		{doc("", `{api_url: "ftp://x", store_name: demo}`, ""), "openfga.api_url"},
		{doc("", `{api_url: "http://x"}`, ""), "openfga.store_id"},
		{doc("", `{api_url: "http://x", store_id: a, store_name: demo}`, ""), "openfga.store_name"},
		{doc("", `{api_url: "http://x", store_name: "a"}`, ""), "openfga.store_name"},
		{doc("", `{api_url: "http://x", store_name: demo, auth: {method: api_token}}`, ""), "openfga.auth.api_token"},
		{doc("", `{api_url: "http://x", store_name: demo, auth: {method: client_credentials}}`, ""), "openfga.auth.client_id"},
		{doc("", `{api_url: "http://x", store_name: demo, auth: {method: magic}}`, ""), "openfga.auth.method"},
		{doc("", `{api_url: "http://x", store_name: demo, max_tuples_per_write: 0}`, ""), "openfga.max_tuples_per_write"},
		{doc("", `{api_url: "http://x", store_name: demo, read_page_size: 500}`, ""), "openfga.read_page_size"},
		{doc("", `{api_url: "http://x", store_name: demo, max_parallel_writes: -1}`, ""), "openfga.max_parallel_writes"},
		{doc("", "", `{object_type: "my group"}`), "mapping.object_type"},
		{doc("", "", `{relation: "a:b"}`), "mapping.relation"},
		{doc("", "", `{user: {key: email}}`), "mapping.user.key"},
		{doc("", "", `{group: {key: slug}}`), "mapping.group.key"},
		{doc("", "", `{group: {replace_whitespace: " "}}`), "mapping.group.replace_whitespace"},
		{doc("", "", `{nesting: deep}`), "mapping.nesting"},
		{doc("", "", `{filters: {include: [{name: a, glob: b}]}}`), "mapping.filters.include[0]"},
		{doc("", "", `{filters: {exclude: [{glob: "*"}, {regex: "("}]}}`), "mapping.filters.exclude[1]"},
		{doc("", "", `{filters: {exclude: [{glob: "["}]}}`), "mapping.filters.exclude[0]"},
		{doc(`{type: kerberos}`, "", ""), "source.type"},
		{doc(`{type: file}`, "", ""), "source.file.path"},
	}
	if _, err := Parse([]byte(doc("", "", "")), noEnv); err != nil {
		t.Fatalf("the base document must be valid: %v", err)
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.doc), noEnv)
		if err == nil {
			t.Errorf("%s: no error", tc.doc)
			continue
		}
		if !strings.Contains(err.Error(), tc.field+": ") {
			t.Errorf("%s: error does not name %s: %v", tc.doc, tc.field, err)
		}
	}
}

func TestUnknownFieldIsNamedWithLine(t *testing.T) {
	_, err := Parse([]byte(minimal+"mapping:\n  nestng: flatten\n"), noEnv)
	if err == nil || !strings.Contains(err.Error(), "line 8") || !strings.Contains(err.Error(), "unknown setting nestng") {
		t.Fatalf("%v", err)
	}
	_, err = Parse([]byte(minimal+"  request_timeout: soon\n"), noEnv)
	if err == nil || !strings.Contains(err.Error(), `"soon" is not a duration`) {
		t.Fatalf("%v", err)
	}
}

func TestEnvOverrides(t *testing.T) {
	c, err := Parse([]byte(minimal), envOf(map[string]string{
		"GROUPSYNC_OPENFGA_API_URL":            "https://fga.example",
		"GROUPSYNC_OPENFGA_AUTH_METHOD":        "api_token",
		"GROUPSYNC_OPENFGA_AUTH_API_TOKEN":     "s3cret-token",
		"GROUPSYNC_OPENFGA_MAX_PARALLEL_READS": "3",
		"GROUPSYNC_OPENFGA_REQUEST_TIMEOUT":    "5s",
		"GROUPSYNC_MAPPING_USER_SKIP_GUESTS":   "true",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.OpenFGA.APIURL != "https://fga.example" || c.OpenFGA.Auth.APIToken.Reveal() != "s3cret-token" ||
		c.OpenFGA.MaxParallelReads != 3 || time.Duration(c.OpenFGA.RequestTimeout) != 5*time.Second || !c.Mapping.User.SkipGuests {
		t.Fatalf("%+v", c)
	}
	_, err = Parse([]byte(minimal), envOf(map[string]string{"GROUPSYNC_OPENFGA_MAX_RETRIES": "many"}))
	if err == nil || !strings.Contains(err.Error(), "openfga.max_retries: GROUPSYNC_OPENFGA_MAX_RETRIES is not a whole number") || strings.Contains(err.Error(), "many") {
		t.Fatalf("%v", err)
	}
	vars := EnvVars()
	found := false
	for _, v := range vars {
		if v[0] == "GROUPSYNC_OPENFGA_AUTH_CLIENT_SECRET" && v[1] == "openfga.auth.client_secret" {
			found = true
		}
	}
	if !found {
		t.Fatalf("EnvVars misses the client secret: %v", vars)
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]byte(minimal+"  auth: {method: api_token, api_token_file: "+tokenFile+"}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.OpenFGA.Auth.APIToken.Reveal() != "file-secret" {
		t.Fatalf("token %q", c.OpenFGA.Auth.APIToken.Reveal())
	}
	for _, s := range []string{c.OpenFGA.Auth.APIToken.String(), sprintf("%v %+v %#v %s", c.OpenFGA.Auth, c.OpenFGA.Auth, c.OpenFGA.Auth, c.OpenFGA.Auth.APIToken)} {
		if strings.Contains(s, "file-secret") {
			t.Fatalf("secret printed: %s", s)
		}
	}
	_, err = Parse([]byte(minimal+"  auth: {method: api_token, api_token_file: "+filepath.Join(dir, "missing")+"}\n"), noEnv)
	if err == nil || !strings.Contains(err.Error(), "openfga.auth.api_token_file: cannot read") {
		t.Fatalf("%v", err)
	}
}

func TestLoadResolvesSourcePathAgainstTheFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "groupsync.yaml")
	if err := os.WriteFile(p, []byte(minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Source.File.Path != filepath.Join(dir, "tenant.yaml") {
		t.Fatal(c.Source.File.Path)
	}
	if _, err := Load(filepath.Join(dir, "nope.yaml")); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestExamplesValidate(t *testing.T) {
	env := envOf(map[string]string{"GROUPSYNC_SOURCE_MSGRAPH_CLIENT_SECRET": "x", "GROUPSYNC_OPENFGA_AUTH_API_TOKEN": "y"})
	for _, f := range []string{"groupsync.yaml", "entra.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "examples", f))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(data, env); err != nil {
			t.Errorf("examples/%s: %v", f, err)
		}
	}
}

func TestGraphSettingsAreValidated(t *testing.T) {
	cases := []struct{ msgraph, field string }{
		{`{auth: client_secret}`, "source.msgraph.tenant_id"},
		{`{auth: client_secret, tenant_id: not-a-tenant, client_id: c, client_secret: s}`, "source.msgraph.tenant_id"},
		{`{auth: client_secret, tenant_id: contoso.onmicrosoft.com}`, "source.msgraph.client_id"},
		{`{auth: client_secret, tenant_id: contoso.onmicrosoft.com, client_id: c}`, "source.msgraph.client_secret"},
		{`{auth: client_certificate, tenant_id: contoso.onmicrosoft.com, client_id: c}`, "source.msgraph.certificate_file"},
		{`{auth: token}`, "source.msgraph.token"},
		{`{auth: password}`, "source.msgraph.auth"},
		{`{auth: workload_identity, cloud: mars}`, "source.msgraph.cloud"},
		{`{auth: workload_identity, graph_endpoint: "http://graph.example"}`, "source.msgraph.graph_endpoint"},
		{`{auth: workload_identity, authority_host: "ftp://x"}`, "source.msgraph.authority_host"},
		{`{auth: workload_identity, page_size: 1000}`, "source.msgraph.page_size"},
		{`{auth: workload_identity, groups: {security_enabled_only: true, include_distribution: true}}`, "source.msgraph.groups.include_distribution"},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(doc("{type: msgraph, msgraph: "+tc.msgraph+"}", "", "")), noEnv)
		if err == nil || !strings.Contains(err.Error(), tc.field+": ") {
			t.Errorf("%s: want an error naming %s, got %v", tc.msgraph, tc.field, err)
		}
	}
	ok := `{auth: workload_identity, graph_endpoint: "http://127.0.0.1:9999"}`
	if _, err := Parse([]byte(doc("{type: msgraph, msgraph: "+ok+"}", "", "")), noEnv); err != nil {
		t.Errorf("loopback http: %v", err)
	}
}
