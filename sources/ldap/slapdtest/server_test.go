package slapdtest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"strings"
	"testing"

	goldap "github.com/go-ldap/ldap/v3"
)

func TestServerServesTheDirectory(t *testing.T) {
	srv := New(t)
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(srv.CAFile)
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("CA file: %v", err)
	}
	conn, err := goldap.DialURL(srv.LDAPSURL, goldap.DialWithTLSConfig(&tls.Config{RootCAs: pool}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := func() *goldap.SearchRequest {
		return goldap.NewSearchRequest(srv.BaseDN, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=inetOrgPerson)", []string{"uid", "entryUUID"}, nil)
	}
	// Anonymous: nothing.
	res, err := conn.Search(req())
	if err == nil && len(res.Entries) > 0 {
		t.Fatalf("anonymous search found %d entries", len(res.Entries))
	}
	if err := conn.Bind(srv.BindDN, srv.BindPassword); err != nil {
		t.Fatal(err)
	}
	// Not paged: the size limit stops it.
	_, err = conn.Search(req())
	var le *goldap.Error
	if !errors.As(err, &le) || le.ResultCode != goldap.LDAPResultSizeLimitExceeded {
		t.Fatalf("unpaged search: %v", err)
	}
	res, err = conn.SearchWithPaging(req(), 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Entries) != len(srv.Directory.Users) {
		t.Fatalf("paged search found %d users, want %d", len(res.Entries), len(srv.Directory.Users))
	}
	for _, e := range res.Entries {
		if got, want := e.GetAttributeValue("entryUUID"), UUIDOf(e.DN); got != want {
			t.Errorf("%s: entryUUID %s, want %s", e.DN, got, want)
		}
	}
	// StartTLS on the plain port, with the CA.
	plain, err := goldap.DialURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.StartTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}); err != nil {
		t.Fatalf("StartTLS: %v", err)
	}
	if err := plain.Bind(srv.BindDN, "wrong"); !goldap.IsErrorWithCode(err, goldap.LDAPResultInvalidCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	srv.Stop()
	if _, err := goldap.DialURL(srv.URL); err == nil {
		t.Fatal("server still answers after Stop")
	}
}

func TestDirectoryValidation(t *testing.T) {
	d := &Directory{Users: []User{{UID: "a"}, {UID: "A"}}, Groups: []Group{{CN: "g"}, {CN: "h", Members: []string{"not a dn"}}}}
	err := d.Validate()
	for _, want := range []string{`users[1]: uid "A" is used twice`, `groups[0] ("g"): groupOfNames needs at least one member`, `groups[1] ("h"): members[0] "not a dn" is not a DN`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}
