package sourcetest_test

import (
	"crypto/sha1"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sources/authentik"
	"github.com/groupsync/groupsync/sources/authentik/authentiktest"
	"github.com/groupsync/groupsync/sources/file"
	"github.com/groupsync/groupsync/sources/ldap"
	"github.com/groupsync/groupsync/sources/ldap/slapdtest"
	"github.com/groupsync/groupsync/sources/msgraph"
	"github.com/groupsync/groupsync/sources/msgraph/graphtest"
	"github.com/groupsync/groupsync/sources/sourcetest"
)

// TestConformance runs the suite for every source against its backend:
// the same tenant in, the same tuples out.
func TestConformance(t *testing.T) {
	tenant := sourcetest.Default()
	t.Run("file", func(t *testing.T) { sourcetest.Run(t, tenant, fileSource(t, tenant)) })
	t.Run("msgraph", func(t *testing.T) { sourcetest.Run(t, tenant, graphSource(t, tenant)) })
	t.Run("ldap", func(t *testing.T) { sourcetest.Run(t, tenant, ldapSource(t, tenant)) })
	t.Run("authentik", func(t *testing.T) { sourcetest.Run(t, tenant, authentikSource(t, tenant, false)) })
	t.Run("authentik-legacy-parent", func(t *testing.T) {
		// authentik before 2025.12 allowed one parent: keep each group's
		// first parent only (Engineering stays in Infra, leaving Leads;
		// Frontend stays in Engineering, leaving Design Team).
		single := singleParent()
		sourcetest.Run(t, single, authentikSource(t, single, true))
	})
}

// singleParent is the default tenant with each group's first parent only.
func singleParent() *sourcetest.Tenant {
	single := sourcetest.Default()
	hasParent := map[string]bool{}
	for i := range single.Groups {
		g := &single.Groups[i]
		var keep []string
		for _, sub := range g.Groups {
			if !hasParent[sub] {
				hasParent[sub] = true
				keep = append(keep, sub)
			}
		}
		g.Groups = keep
	}
	return single
}

func guid(s string) string {
	h := sha1.Sum([]byte(s))
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

func fileSource(t *testing.T, tn *sourcetest.Tenant) *file.Source {
	var ft file.Tenant
	for _, u := range tn.Users {
		ft.Users = append(ft.Users, file.User{ID: "u-" + u.Name, UPN: u.UPN, Mail: u.Mail, Disabled: u.Disabled})
	}
	for _, g := range tn.Groups {
		fg := file.Group{ID: "g-" + g.Name, Name: g.Name}
		for _, u := range g.Users {
			fg.Members = append(fg.Members, "u-"+u)
		}
		for _, s := range g.Groups {
			fg.Subgroups = append(fg.Subgroups, "g-"+s)
		}
		ft.Groups = append(ft.Groups, fg)
	}
	data, err := yaml.Marshal(ft)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "tenant.yaml")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return file.New(p)
}

func graphSource(t *testing.T, tn *sourcetest.Tenant) *msgraph.Source {
	return graphClient(t, graphServer(t, tn))
}

func graphClient(t *testing.T, srv *graphtest.Server, opts ...msgraph.Option) *msgraph.Source {
	c := config.Default().Source.MSGraph
	c.Auth, c.Token, c.GraphEndpoint = "token", config.Secret(srv.Token()), srv.URL
	c.PageSize = 5 // page groups and members
	src, err := msgraph.New(c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func graphServer(t *testing.T, tn *sourcetest.Tenant) *graphtest.Server {
	var gt graphtest.Tenant
	for _, u := range tn.Users {
		gt.Users = append(gt.Users, graphtest.User{ID: guid("user " + u.Name), DisplayName: u.Name,
			UserPrincipalName: u.UPN, Mail: u.Mail, AccountEnabled: !u.Disabled, UserType: "Member"})
	}
	for _, g := range tn.Groups {
		gg := graphtest.Group{ID: guid("group " + g.Name), DisplayName: g.Name, SecurityEnabled: true}
		for _, u := range g.Users {
			gg.Members = append(gg.Members, guid("user "+u))
		}
		for _, s := range g.Groups {
			gg.Members = append(gg.Members, guid("group "+s))
		}
		gt.Groups = append(gt.Groups, gg)
	}
	return graphtest.New(t, &gt)
}

func ldapSource(t *testing.T, tn *sourcetest.Tenant) *ldap.Source {
	return ldapClient(t, ldapServer(t, tn), nil)
}

func ldapClient(t *testing.T, srv *slapdtest.Server, adjust func(*config.LDAP), opts ...ldap.Option) *ldap.Source {
	c := config.Default().Source.LDAP
	c.Flavor, c.URL, c.CAFile, c.BaseDN = "openldap", srv.LDAPSURL, srv.CAFile, srv.BaseDN
	c.BindDN, c.BindPassword = srv.BindDN, config.Secret(srv.BindPassword)
	c.PageSize = 5 // the server refuses unpaged searches over 10 entries
	c.RequestTimeout = config.Duration(10 * time.Second)
	c.Users.UPNAttribute = "uid"
	c.Users.DisabledFilter = "(employeeType=disabled)"
	if adjust != nil {
		adjust(&c)
	}
	src, err := ldap.New(c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func ldapServer(t *testing.T, tn *sourcetest.Tenant) *slapdtest.Server {
	d := &slapdtest.Directory{}
	for _, u := range tn.Users {
		su := slapdtest.User{UID: u.UPN, CN: u.Name, Mail: u.Mail}
		if u.Disabled {
			su.EmployeeType = "disabled"
		}
		d.Users = append(d.Users, su)
	}
	upn := map[string]string{}
	for _, u := range tn.Users {
		upn[u.Name] = u.UPN
	}
	for _, g := range tn.Groups {
		sg := slapdtest.Group{CN: g.Name}
		for _, u := range g.Users {
			sg.Members = append(sg.Members, d.UserDN(upn[u]))
		}
		for _, s := range g.Groups {
			sg.Members = append(sg.Members, d.GroupDN(s))
		}
		d.Groups = append(d.Groups, sg)
	}
	return slapdtest.New(t, slapdtest.WithDirectory(d))
}

func authentikSource(t *testing.T, tn *sourcetest.Tenant, legacy bool) *authentik.Source {
	srv := authentikServer(t, tn, legacy)
	return authentikClient(t, srv)
}

func authentikClient(t *testing.T, srv *authentiktest.Server, opts ...authentik.Option) *authentik.Source {
	c := config.Default().Source.Authentik
	c.URL, c.Token, c.PageSize = srv.URL, config.Secret(srv.Token()), 5
	src, err := authentik.New(c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func authentikServer(t *testing.T, tn *sourcetest.Tenant, legacy bool) *authentiktest.Server {
	at := &authentiktest.Tenant{}
	pk := map[string]int{}
	for i, u := range tn.Users {
		pk[u.Name] = i + 1
		at.Users = append(at.Users, authentiktest.User{PK: i + 1, Username: u.UPN, Name: u.Name, Email: u.Mail, Inactive: u.Disabled})
	}
	parents := map[string][]string{}
	for _, g := range tn.Groups {
		for _, s := range g.Groups {
			parents[s] = append(parents[s], g.Name)
		}
	}
	for _, g := range tn.Groups {
		ag := authentiktest.Group{Name: g.Name, Parents: parents[g.Name]}
		for _, u := range g.Users {
			ag.Users = append(ag.Users, pk[u])
		}
		at.Groups = append(at.Groups, ag)
	}
	var opts []authentiktest.Option
	if legacy {
		opts = append(opts, authentiktest.WithLegacyParent())
	}
	return authentiktest.New(t, at, opts...)
}
