package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const okLDAP = `{type: ldap, ldap: {url: "ldaps://dc1.corp.example", flavor: ad, base_dn: "DC=corp,DC=example", bind_dn: "CN=groupsync,OU=Service,DC=corp,DC=example", bind_password: pw}}`

func TestLDAPDefaultsAndEffective(t *testing.T) {
	c, err := Parse([]byte(doc(okLDAP, "", "")), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	l := c.Source.LDAP
	if l.PageSize != 500 || l.Membership != "direct" || time.Duration(l.RequestTimeout) != time.Minute || l.MaxRetries != 2 {
		t.Errorf("defaults: %+v", l)
	}
	e := l.Effective()
	if e.Users.BaseDN != "DC=corp,DC=example" || e.Groups.BaseDN != "DC=corp,DC=example" ||
		e.Users.IDAttribute != "objectGUID" || e.Groups.IDAttribute != "objectGUID" || e.Users.UPNAttribute != "userPrincipalName" ||
		e.Groups.Filter != "(objectClass=group)" || len(e.Users.Attributes) != 1 || e.Users.Attributes[0] != "sAMAccountName" {
		t.Errorf("effective ad: %+v", e)
	}
	o := LDAP{Flavor: "openldap", BaseDN: "dc=x", Users: LDAPUsers{UPNAttribute: "mail", BaseDN: "ou=people,dc=x"}, Groups: LDAPGroups{IDAttribute: "cn"}}.Effective()
	if o.Users.UPNAttribute != "mail" || o.Users.IDAttribute != "entryUUID" || o.Groups.IDAttribute != "cn" || o.Users.BaseDN != "ou=people,dc=x" ||
		o.Groups.BaseDN != "dc=x" || len(o.Users.Attributes) != 0 {
		t.Errorf("effective openldap: %+v", o)
	}
}

func TestLDAPSettingsAreValidated(t *testing.T) {
	const base = `flavor: openldap, base_dn: "dc=example,dc=org"`
	cases := []struct{ ldap, field string }{
		{`{` + base + `}`, "source.ldap.url"},
		{`{url: "http://x", ` + base + `}`, "source.ldap.url"},
		{`{url: "ldap://ldap.example.org", ` + base + `}`, "source.ldap.url"}, // clear text
		{`{url: "ldaps://x/dc=example", ` + base + `}`, "source.ldap.url"},
		{`{url: "ldaps://x", start_tls: true, ` + base + `}`, "source.ldap.start_tls"},
		{`{url: "ldaps://x", ca_file: ca.pem, insecure_skip_tls_verify: true, ` + base + `}`, "source.ldap.insecure_skip_tls_verify"},
		{`{url: "ldaps://x", bind_password: pw, ` + base + `}`, "source.ldap.bind_dn"},
		{`{url: "ldaps://x", bind_dn: "cn=a,dc=b", ` + base + `}`, "source.ldap.bind_password"},
		{`{url: "ldaps://x", bind_dn: "groupsync", bind_password: pw, ` + base + `}`, "source.ldap.bind_dn"},
		{`{url: "ldaps://x", base_dn: "dc=example,dc=org"}`, "source.ldap.flavor"},
		{`{url: "ldaps://x", flavor: novell, base_dn: "dc=example,dc=org"}`, "source.ldap.flavor"},
		{`{url: "ldaps://x", flavor: ad}`, "source.ldap.base_dn"},
		{`{url: "ldaps://x", flavor: ad, base_dn: "example.org"}`, "source.ldap.base_dn"},
		{`{url: "ldaps://x", ` + base + `, users: {base_dn: people}}`, "source.ldap.users.base_dn"},
		{`{url: "ldaps://x", ` + base + `, users: {filter: "objectClass=user"}}`, "source.ldap.users.filter"},
		{`{url: "ldaps://x", ` + base + `, groups: {filter: "(|(a=b)(c=d)"}}`, "source.ldap.groups.filter"},
		{`{url: "ldaps://x", ` + base + `, users: {disabled_filter: "(a=b))("}}`, "source.ldap.users.disabled_filter"},
		{`{url: "ldaps://x", ` + base + `, users: {id_attribute: "object GUID"}}`, "source.ldap.users.id_attribute"},
		{`{url: "ldaps://x", ` + base + `, users: {attributes: [ok, "no way"]}}`, "source.ldap.users.attributes"},
		{`{url: "ldaps://x", ` + base + `, groups: {member_attribute: memberUid}}`, "source.ldap.groups.member_attribute"},
		{`{url: "ldaps://x", ` + base + `, membership: in_chain}`, "source.ldap.membership"},
		{`{url: "ldaps://x", ` + base + `, membership: nested}`, "source.ldap.membership"},
		{`{url: "ldaps://x", ` + base + `, page_size: 0}`, "source.ldap.page_size"},
		{`{url: "ldaps://x", ` + base + `, max_retries: 11}`, "source.ldap.max_retries"},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(doc("{type: ldap, ldap: "+tc.ldap+"}", "", "")), noEnv)
		if err == nil || !strings.Contains(err.Error(), tc.field+": ") {
			t.Errorf("%s: want an error naming %s, got %v", tc.ldap, tc.field, err)
		}
	}
	for _, ok := range []string{
		okLDAP,
		`{type: ldap, ldap: {url: "ldap://127.0.0.1:3389", ` + base + `}}`, // anonymous, loopback
		`{type: ldap, ldap: {url: "ldap://ldap.example.org", start_tls: true, ` + base + `, groups: {member_attribute: uniqueMember}}}`,
		`{type: ldap, ldap: {url: "ldaps://dc1", flavor: ad, base_dn: "DC=corp,DC=example", membership: in_chain, bind_dn: 'CORP\groupsync', bind_password: pw}}`,
		`{type: ldap, ldap: {url: "ldaps://dc1", flavor: ad, base_dn: "DC=corp,DC=example", bind_dn: "groupsync@corp.example", bind_password: pw, users: {filter: "(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"}}}`,
	} {
		if _, err := Parse([]byte(doc(ok, "", "")), noEnv); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

func TestLDAPBindPasswordFromEnvAndFile(t *testing.T) {
	const src = `{type: ldap, ldap: {url: "ldaps://dc1", flavor: ad, base_dn: "DC=corp,DC=example", bind_dn: "CN=g,DC=corp,DC=example"}}`
	c, err := Parse([]byte(doc(src, "", "")), envOf(map[string]string{"GROUPSYNC_SOURCE_LDAP_BIND_PASSWORD": "env-pw"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Source.LDAP.BindPassword.Reveal() != "env-pw" {
		t.Fatalf("env: %q", c.Source.LDAP.BindPassword.Reveal())
	}
	f := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(f, []byte("file-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withFile := strings.Replace(src, "bind_dn:", "bind_password_file: "+f+", bind_dn:", 1)
	c, err = Parse([]byte(doc(withFile, "", "")), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Source.LDAP.BindPassword.Reveal() != "file-pw" {
		t.Fatalf("file: %q", c.Source.LDAP.BindPassword.Reveal())
	}
	if s := sprintf("%v %+v", c.Source.LDAP, c.Source); strings.Contains(s, "file-pw") {
		t.Fatalf("password printed: %s", s)
	}
	_, err = Parse([]byte(doc(withFile, "", "")), envOf(map[string]string{"GROUPSYNC_SOURCE_LDAP_BIND_PASSWORD": "env-pw"}))
	if err == nil || !strings.Contains(err.Error(), "source.ldap.bind_password_file: ") {
		t.Fatalf("both set: %v", err)
	}
}

// TestDocsExamplesValidate parses every complete source example in
// docs/ldap.md and docs/authentik.md (YAML blocks that set source.type),
// with secrets from the environment, so the docs cannot drift from the
// schema. Blocks listing every setting with empty defaults are reference,
// not examples, and are left out.
func TestDocsExamplesValidate(t *testing.T) {
	env := envOf(map[string]string{"GROUPSYNC_SOURCE_LDAP_BIND_PASSWORD": "pw", "GROUPSYNC_SOURCE_AUTHENTIK_TOKEN": "tok"})
	for _, doc := range []string{"ldap.md", "authentik.md"} {
		data, err := os.ReadFile(filepath.Join("..", "docs", doc))
		if err != nil {
			t.Fatal(err)
		}
		blocks := strings.Split(string(data), "```yaml\n")[1:]
		n := 0
		for _, b := range blocks {
			b, _, _ = strings.Cut(b, "```")
			if !strings.Contains(b, "\n  type: ") || strings.Contains(b, `: ""`) {
				continue
			}
			n++
			var lines []string
			for _, l := range strings.Split(b, "\n") {
				if !strings.Contains(l, "_file:") || strings.HasPrefix(strings.TrimSpace(l), "#") {
					lines = append(lines, l)
				}
			}
			b = strings.Join(lines, "\n")
			if !strings.Contains(b, "\nopenfga:") {
				b += "\nopenfga: {api_url: \"http://127.0.0.1:8080\", store_name: demo}\n"
			}
			if _, err := Parse([]byte(b), env); err != nil {
				t.Errorf("docs/%s example %d: %v\n%s", doc, n, err, b)
			}
		}
		if n < 1 {
			t.Errorf("docs/%s: no example found", doc)
		}
	}
}
