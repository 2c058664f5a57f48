package ldap

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sources/ldap/slapdtest"
	gsync "github.com/groupsync/groupsync/sync"
)

// TestSliceMatchesFullRead reads every user and every group of the
// generated directory as a slice, under a groups.filter that leaves a
// nested group (Platform) out, and compares the tuples with the full
// read's: a not-synced group is walked through on the way up from a user
// and down from a group, as the full read walks through it.
func TestSliceMatchesFullRead(t *testing.T) {
	srv := slapdtest.New(t)
	cfg := slapdConfig(srv)
	cfg.Groups.Filter = "(&(objectClass=groupOfNames)(!(cn=Platform)))"
	m := config.Default().Mapping
	m.User.Key = "mail"
	m.Group.ReplaceWhitespace = "-"
	src, err := New(cfg, WithMapping(m))
	if err != nil {
		t.Fatal(err)
	}
	mapper, err := gsync.NewMapper(m)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	full, err := src.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g := byName(full, "Platform"); g == nil || g.NotSynced == "" {
		t.Fatalf("Platform should be read, not synced: %+v", g)
	}
	want, err := mapper.Map(full)
	if err != nil {
		t.Fatal(err)
	}
	tuples := func(s gsync.Slice, keep func(gsync.Tuple) bool) []string {
		t.Helper()
		snap, err := src.SnapshotSlice(ctx, s)
		if err != nil {
			t.Fatalf("%+v: %v", s, err)
		}
		d, err := mapper.Map(snap)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, tu := range d.Members.Tuples() {
			if keep(tu) {
				out = append(out, tu.String())
			}
		}
		return out
	}
	restrict := func(keep func(gsync.Tuple) bool) []string {
		var out []string
		for _, tu := range want.Members.Tuples() {
			if keep(tu) {
				out = append(out, tu.String())
			}
		}
		return out
	}
	for _, u := range full.Users {
		keep := func(tu gsync.Tuple) bool { return tu.User == "user:"+u.Mail }
		if got, w := tuples(gsync.Slice{Users: []string{u.Mail}}, keep), restrict(keep); !slices.Equal(got, w) {
			t.Errorf("user %s: %v, want %v", u.Mail, got, w)
		}
	}
	for _, g := range full.Groups {
		obj := "group:" + strings.ReplaceAll(g.Name, " ", "-")
		keep := func(tu gsync.Tuple) bool { return tu.Object == obj }
		if got, w := tuples(gsync.Slice{Groups: []string{g.Name}}, keep), restrict(keep); !slices.Equal(got, w) {
			t.Errorf("group %s: %v, want %v", g.Name, got, w)
		}
	}
}

// TestSliceRequests pins the searches a one-user and a one-group slice
// send, and finding a user and a group by id.
func TestSliceRequests(t *testing.T) {
	srv := slapdtest.New(t)
	d := srv.Directory
	cfg := slapdConfig(srv)
	m := config.Default().Mapping
	m.User.Key = "upn"
	cfg.Users.UPNAttribute = "uid"
	src, err := New(cfg, WithMapping(m))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	names := func(s *gsync.Snapshot) string {
		var gs, us []string
		for _, g := range s.Groups {
			gs = append(gs, g.Name)
		}
		for _, u := range s.Users {
			us = append(us, u.UPN)
		}
		slices.Sort(gs)
		slices.Sort(us)
		return fmt.Sprint(gs, us)
	}
	for _, c := range []struct {
		name     string
		slice    gsync.Slice
		searches int64
		want     string
	}{
		// The user and the disabled filter (2), the groups holding the
		// user (All Staff, Engineering), then those holding each group
		// found (Engineering is in Infra, Infra in Platform, Platform in
		// Engineering): 5, and one search for which groups.filter selects.
		{"user", gsync.Slice{Users: []string{"user01"}}, 2 + 5 + 1, "[All Staff Engineering Infra Platform] [user01]"},
		{"user by id", gsync.Slice{Users: []string{slapdtest.UUIDOf(d.UserDN("user01"))}}, 8, "[All Staff Engineering Infra Platform] [user01]"},
		{"unknown user", gsync.Slice{Users: []string{"nobody"}}, 1, "[] []"},
		// The group (1), the users as a full read reads them (24 users,
		// 5 a page: 5 pages, and 1 for the disabled filter), and each
		// subgroup down the tree (Engineering, Platform, Lab) looked up
		// and checked against groups.filter (2 each).
		{"group", gsync.Slice{Groups: []string{"Infra"}}, 1 + 6 + 3*2, "[Engineering Infra Lab Platform] [user01 user02 user03 user04 user05 user07]"},
		{"group by id", gsync.Slice{Groups: []string{slapdtest.UUIDOf(d.GroupDN("Infra"))}}, 1 + 6 + 3*2, "[Engineering Infra Lab Platform] [user01 user02 user03 user04 user05 user07]"},
		{"unknown group", gsync.Slice{Groups: []string{"Nope"}}, 1, "[] []"},
	} {
		t.Run(c.name, func(t *testing.T) {
			snap, err := src.SnapshotSlice(ctx, c.slice)
			if err != nil {
				t.Fatal(err)
			}
			if rd := src.LastRead(); rd.Requests != c.searches || rd.Mode != "slice" {
				t.Errorf("LastRead %+v, want %d searches", rd, c.searches)
			}
			if got := names(snap); c.want != "" && got != c.want {
				t.Errorf("got %s, want %s", got, c.want)
			}
		})
	}
}

// TestIDAssertion: an objectGUID string goes back to the bytes AD stores,
// so that GUIDString of them is the string again; values that cannot be
// ids are not sent.
func TestIDAssertion(t *testing.T) {
	const guid = "0f1e2d3c-4b5a-6978-8a9b-acbdcedff001"
	v, ok := idAssertion("objectGUID", guid)
	if !ok {
		t.Fatal("a GUID was refused")
	}
	var raw []byte
	for i := 0; i+2 < len(v)+1; i += 3 {
		var b byte
		if _, err := fmt.Sscanf(v[i+1:i+3], "%02x", &b); err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		raw = append(raw, b)
	}
	if back, err := GUIDString(raw); err != nil || back != guid {
		t.Errorf("%q decodes to %q (%v), want %q", v, back, err, guid)
	}
	for _, c := range []struct {
		attr, key string
		ok        bool
	}{
		{"objectGUID", "alice", false},
		{"entryUUID", "alice@example.org", false},
		{"entryUUID", guid, true},
		{"objectSid", "S-1-5-21-1-2-3-500", true},
		{"objectSid", "alice", false},
		{"uid", "a(b)*", true},
		{"dn", "uid=a,dc=example,dc=org", false},
	} {
		if _, ok := idAssertion(c.attr, c.key); ok != c.ok {
			t.Errorf("%s %q: ok %v, want %v", c.attr, c.key, ok, c.ok)
		}
	}
	if v, _ := idAssertion("uid", "a(b)*"); v != `a\28b\29\2a` {
		t.Errorf("escaping: %q", v)
	}
}
