package ldap

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sources/ldap/slapdtest"
	gsync "github.com/groupsync/groupsync/sync"
)

func slapdConfig(srv *slapdtest.Server) config.LDAP {
	c := config.Default().Source.LDAP
	c.Flavor = "openldap"
	c.URL = srv.LDAPSURL
	c.CAFile = srv.CAFile
	c.BindDN = srv.BindDN
	c.BindPassword = config.Secret(srv.BindPassword)
	c.BaseDN = srv.BaseDN
	c.PageSize = 5
	c.MaxRetries = 0
	c.RequestTimeout = config.Duration(10 * time.Second)
	c.Users.DisabledFilter = "(employeeType=disabled)"
	return c
}

func snapshot(t *testing.T, cfg config.LDAP) (*gsync.Snapshot, *Source) {
	t.Helper()
	src, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := src.Snapshot(context.Background())
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return s, src
}

func byName(s *gsync.Snapshot, name string) *gsync.Group {
	for i := range s.Groups {
		if s.Groups[i].Name == name {
			return &s.Groups[i]
		}
	}
	return nil
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestSnapshotOfGeneratedDirectory(t *testing.T) {
	srv := slapdtest.New(t)
	d := srv.Directory
	s, src := snapshot(t, slapdConfig(srv))
	uid := func(n string) string { return slapdtest.UUIDOf(d.UserDN(n)) }
	gid := func(cn string) string { return slapdtest.UUIDOf(d.GroupDN(cn)) }

	if len(s.Groups) != 6 {
		t.Fatalf("%d groups: %+v", len(s.Groups), s.Groups)
	}
	all := byName(s, "All Staff")
	if all == nil || len(all.Users) != 24 || len(all.Groups) != 0 || all.ID != gid("All Staff") {
		t.Fatalf("All Staff: %+v", all)
	}
	eng, plat, infra := byName(s, "Engineering"), byName(s, "Platform"), byName(s, "Infra")
	if !slices.Equal(sorted(eng.Users), sorted([]string{uid("user01"), uid("user02")})) || !slices.Equal(eng.Groups, []string{gid("Platform")}) {
		t.Errorf("Engineering: %+v", eng)
	}
	lab := slapdtest.UUIDOf(d.GroupDNIn("projects", "Lab"))
	if !slices.Equal(plat.Users, []string{uid("user03")}) || !slices.Equal(sorted(plat.Groups), sorted([]string{gid("Infra"), lab})) {
		t.Errorf("Platform: %+v", plat)
	}
	if !slices.Equal(infra.Groups, []string{gid("Engineering")}) { // the cycle
		t.Errorf("Infra: %+v", infra)
	}
	if g := byName(s, "Lab"); g == nil || g.NotSynced != "" {
		t.Errorf("Lab is under base_dn and matches the filter: %+v", g)
	}
	if len(s.Users) != 24 {
		t.Errorf("%d users", len(s.Users))
	}
	for _, u := range s.Users {
		want := strings.HasSuffix(u.UPN, "07") || strings.HasSuffix(u.UPN, "14") || strings.HasSuffix(u.UPN, "21")
		if u.Disabled != want || u.Mail != u.UPN+"@example.org" || u.ID != uid(u.UPN) {
			t.Errorf("user %+v", u)
		}
	}
	con := byName(s, "Contractors")
	if !slices.Equal(con.Users, []string{uid("user06")}) || len(con.Groups) != 0 {
		t.Errorf("Contractors: %+v", con)
	}
	var details []string
	for _, sk := range s.Skipped {
		if sk.ID != con.ID || sk.Kind != "member" {
			t.Errorf("unexpected skip %+v", sk)
		}
		details = append(details, sk.Reason+": "+sk.Detail)
	}
	slices.Sort(details)
	want := []string{
		`not_user_or_group: members that are neither users nor groups: 1 device`,
		`unknown_member: 1 member(s) outside source.ldap.base_dn "dc=example,dc=org", not read: uid=partner,ou=people,dc=partner,dc=example (widen base_dn to read them)`,
		`unknown_member: member ` + d.UserDN("ghost") + ` does not exist (a dangling reference); ignored`,
	}
	if !slices.Equal(details, want) {
		t.Errorf("skips:\n%s\nwant\n%s", strings.Join(details, "\n"), strings.Join(want, "\n"))
	}
	st := src.Stats()
	if st.Pages.Load() < 6 || st.Connects.Load() != 1 || st.Lookups.Load() != 2 {
		t.Errorf("pages %d (24 users and 6 groups, 5 a page), connects %d, lookups %d", st.Pages.Load(), st.Connects.Load(), st.Lookups.Load())
	}

	// The engine maps it: flatten walks the cycle, skips the disabled user.
	m, err := gsync.NewMapper(config.Default().Mapping)
	if err != nil {
		t.Fatal(err)
	}
	des, err := m.Map(s)
	if err != nil {
		t.Fatal(err)
	}
	var engUsers []string
	for _, tu := range des.Members.Tuples() {
		if tu.Object == "group:Engineering" {
			engUsers = append(engUsers, tu.User)
		}
	}
	wantEng := []string{"user:" + uid("user01"), "user:" + uid("user02"), "user:" + uid("user03"), "user:" + uid("user04"), "user:" + uid("user05")}
	if !slices.Equal(sorted(engUsers), sorted(wantEng)) {
		t.Errorf("Engineering flattened: %v, want %v", engUsers, wantEng)
	}
}

func TestNestedGroupOutsideGroupBaseIsReadNotSynced(t *testing.T) {
	srv := slapdtest.New(t)
	cfg := slapdConfig(srv)
	cfg.Groups.BaseDN = "ou=groups," + srv.BaseDN
	s, _ := snapshot(t, cfg)
	lab := byName(s, "Lab")
	if lab == nil || !strings.Contains(lab.NotSynced, "outside source.ldap.groups.filter or groups.base_dn") ||
		!slices.Equal(lab.Users, []string{slapdtest.UUIDOf(srv.Directory.UserDN("user05"))}) {
		t.Fatalf("Lab: %+v", lab)
	}
	if p := byName(s, "Platform"); !slices.Contains(p.Groups, lab.ID) {
		t.Fatalf("Platform lost Lab: %+v", p)
	}
}

func TestUsersOutsideTheFilterAreReported(t *testing.T) {
	srv := slapdtest.New(t)
	cfg := slapdConfig(srv)
	cfg.Users.Filter = "(&(objectClass=inetOrgPerson)(!(employeeType=disabled)))"
	s, _ := snapshot(t, cfg)
	infra := byName(s, "Infra")
	if len(infra.Users) != 1 {
		t.Fatalf("Infra: %+v", infra)
	}
	found := false
	for _, sk := range s.Skipped {
		if sk.ID == infra.ID && strings.Contains(sk.Detail, srv.Directory.UserDN("user07")+" is a user outside source.ldap.users.filter") {
			found = true
		}
	}
	if !found {
		t.Fatalf("user07 not reported: %+v", s.Skipped)
	}
}

func TestStartTLSAndPlainLoopback(t *testing.T) {
	srv := slapdtest.New(t)
	cfg := slapdConfig(srv)
	cfg.URL, cfg.StartTLS = srv.URL, true
	if s, _ := snapshot(t, cfg); len(s.Groups) != 6 {
		t.Fatalf("StartTLS: %d groups", len(s.Groups))
	}
	cfg.StartTLS, cfg.CAFile = false, ""
	if s, _ := snapshot(t, cfg); len(s.Groups) != 6 {
		t.Fatalf("plain loopback: %d groups", len(s.Groups))
	}
}

func TestErrorsSayWhatToChange(t *testing.T) {
	srv := slapdtest.New(t)
	const password = "s3cr3t-not-in-errors"
	cases := []struct {
		name   string
		change func(*config.LDAP)
		want   []string
	}{
		{"no CA", func(c *config.LDAP) { c.CAFile = "" }, []string{"connect to " + srv.LDAPSURL, "set source.ldap.ca_file"}},
		{"wrong name", func(c *config.LDAP) { c.ServerName = "ldap.example.org" }, []string{"does not name this host", "server_name"}},
		{"TLS to the plain port", func(c *config.LDAP) { c.URL = strings.Replace(srv.URL, "ldap://", "ldaps://", 1) }, []string{"did not complete a TLS handshake: is this its LDAPS port"}},
		{"wrong password", func(c *config.LDAP) { c.BindPassword = password }, []string{`bind as "` + srv.BindDN + `"`, "Invalid Credentials (49)", "check source.ldap.bind_dn and the password"}},
		{"missing base", func(c *config.LDAP) { c.Users.BaseDN = "ou=nobody," + srv.BaseDN }, []string{"search users under", "No Such Object (32)", "does not exist on the server"}},
		{"anonymous", func(c *config.LDAP) { c.BindDN, c.BindPassword = "", "" }, []string{"No Such Object (32)", "or the bind account may not see it"}}, // the ACLs hide the base
		{"id attribute", func(c *config.LDAP) { c.Users.IDAttribute = "employeeNumber" }, []string{"has no employeeNumber, which source.ldap.users.id_attribute names as the id"}},
		{"name attribute", func(c *config.LDAP) { c.Groups.NameAttribute = "description" }, []string{"has no description, which source.ldap.groups.name_attribute"}},
		{"in_chain", func(c *config.LDAP) { c.Flavor, c.Membership = "ad", "in_chain" }, []string{"in_chain needs Active Directory"}},
		{"shared id", func(c *config.LDAP) { c.Users.IDAttribute = "objectClass" }, []string{`have the same objectClass "inetOrgPerson"; ids must be unique`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := slapdConfig(srv)
			tc.change(&cfg)
			src, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = src.Snapshot(context.Background())
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), srv.BindPassword) {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

func TestServerGoneIsRetriedThenFails(t *testing.T) {
	srv := slapdtest.New(t)
	cfg := slapdConfig(srv)
	cfg.MaxRetries = 1
	src, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	_, err = src.Snapshot(context.Background())
	if err == nil || !strings.Contains(err.Error(), "connect to "+srv.LDAPSURL) || src.Stats().Retries.Load() != 1 {
		t.Fatalf("retries %d: %v", src.Stats().Retries.Load(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := src.Snapshot(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
}

func TestCheck(t *testing.T) {
	srv := slapdtest.New(t)
	cfg := slapdConfig(srv)
	cfg.Groups.Filter = "(objectClass=posixGroup)"
	src, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res := src.Check(context.Background())
	if len(res) != 3 || res[0].Err != nil || res[1].Err != nil || res[1].Note != "found" || res[2].Warning == "" {
		t.Fatalf("%+v", res)
	}
	cfg.BindPassword = "nope"
	src, _ = New(cfg)
	if res := src.Check(context.Background()); len(res) != 1 || res[0].Err == nil {
		t.Fatalf("%+v", res)
	}
}

func TestNewRejectsBadSettings(t *testing.T) {
	base := config.LDAP{Flavor: "openldap", URL: "ldaps://x", BaseDN: "dc=x"}
	for _, tc := range []struct {
		change func(*config.LDAP)
		want   string
	}{
		{func(c *config.LDAP) { c.Users.Filter = "(objectClass=user" }, "source.ldap.users.filter"},
		{func(c *config.LDAP) { c.CAFile = "/nonexistent/ca.pem" }, "source.ldap.ca_file"},
		{func(c *config.LDAP) { c.BaseDN = "dc=x,,=" }, "source.ldap.base_dn"},
	} {
		c := base
		tc.change(&c)
		if _, err := New(c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want %s: %v", tc.want, err)
		}
	}
}

func TestLastRead(t *testing.T) {
	srv := slapdtest.New(t)
	cfg := slapdConfig(srv)
	cfg.MaxRetries = 1
	_, src := snapshot(t, cfg)
	rd := src.LastRead()
	st := src.Stats()
	if rd.Mode != "full" || rd.Requests != st.Searches.Load() || rd.Requests < st.Pages.Load()+st.Lookups.Load() || st.Pages.Load() < 6 || rd.Retries != 0 || rd.Waited != 0 {
		t.Fatalf("%+v: searches %d, pages %d, lookups %d", rd, st.Searches.Load(), st.Pages.Load(), st.Lookups.Load())
	}
	// A second read counts itself only; a failed one too.
	if _, err := src.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if again := src.LastRead(); again != rd {
		t.Fatalf("second read %+v, first %+v", again, rd)
	}
	srv.Stop()
	if _, err := src.Snapshot(context.Background()); err == nil {
		t.Fatal("read a stopped server")
	}
	if rd := src.LastRead(); rd.Mode != "full" || rd.Requests != 0 || rd.Retries != 1 || rd.Waited < time.Second {
		t.Fatalf("failed read %+v", rd)
	}
}
