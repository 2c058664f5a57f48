package msgraph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sources/msgraph/graphtest"
	"github.com/groupsync/groupsync/state"
	gsync "github.com/groupsync/groupsync/sync"
)

// fixture: three-deep nesting with a cycle (A ⊃ B ⊃ C ⊃ A), every member
// type, every group kind.
func fixture() *graphtest.Tenant {
	u := func(id, upn string, enabled bool, typ string) graphtest.User {
		return graphtest.User{ID: id, DisplayName: id, UserPrincipalName: upn, Mail: upn, AccountEnabled: enabled, UserType: typ}
	}
	return &graphtest.Tenant{
		Users: []graphtest.User{
			u("00000000-0000-0000-0000-0000000000u1", "u1@contoso.example", true, "Member"),
			u("00000000-0000-0000-0000-0000000000u2", "u2@contoso.example", true, "Member"),
			u("00000000-0000-0000-0000-0000000000u3", "u3@contoso.example", true, "Member"),
			u("00000000-0000-0000-0000-0000000000u4", "u4_fabrikam.example#EXT#@contoso.example", true, "Guest"),
			u("00000000-0000-0000-0000-0000000000u5", "u5@contoso.example", false, "Member"),
		},
		Groups: []graphtest.Group{
			{ID: "00000000-0000-0000-0000-00000000000a", DisplayName: "Engineering", SecurityEnabled: true,
				Members: []string{"00000000-0000-0000-0000-0000000000u1", "00000000-0000-0000-0000-00000000000b", "00000000-0000-0000-0000-0000000000d1"}},
			{ID: "00000000-0000-0000-0000-00000000000b", DisplayName: "Platform", SecurityEnabled: true,
				Members: []string{"00000000-0000-0000-0000-0000000000u2", "00000000-0000-0000-0000-00000000000c", "00000000-0000-0000-0000-0000000000s1", "00000000-0000-0000-0000-0000000000u5"}},
			{ID: "00000000-0000-0000-0000-00000000000c", DisplayName: "Infra", SecurityEnabled: true,
				Members: []string{"00000000-0000-0000-0000-0000000000u3", "00000000-0000-0000-0000-00000000000a"}},
			{ID: "00000000-0000-0000-0000-00000000000d", DisplayName: "Sales", GroupTypes: []string{"Unified"}, MailEnabled: true,
				Members: []string{"00000000-0000-0000-0000-0000000000u4", "00000000-0000-0000-0000-0000000000c1"}},
			{ID: "00000000-0000-0000-0000-00000000000e", DisplayName: "Newsletter", MailEnabled: true,
				Members: []string{"00000000-0000-0000-0000-0000000000u1"}},
			{ID: "00000000-0000-0000-0000-00000000000f", DisplayName: "Everyone dynamic", GroupTypes: []string{"DynamicMembership"}, SecurityEnabled: true,
				Members: []string{"00000000-0000-0000-0000-0000000000u2"}},
			{ID: "00000000-0000-0000-0000-0000000000a9", DisplayName: "Role Admins", SecurityEnabled: true, IsAssignableToRole: true,
				Members: []string{"00000000-0000-0000-0000-0000000000u3"}},
		},
		Devices:           []graphtest.Object{{ID: "00000000-0000-0000-0000-0000000000d1", DisplayName: "laptop-1"}},
		ServicePrincipals: []graphtest.Object{{ID: "00000000-0000-0000-0000-0000000000s1", DisplayName: "ci-bot"}},
		OrgContacts:       []graphtest.Object{{ID: "00000000-0000-0000-0000-0000000000c1", DisplayName: "Partner"}},
	}
}

func graphConfig(srv *graphtest.Server) config.MSGraph {
	c := config.Default().Source.MSGraph
	c.Auth = "token"
	c.Token = config.Secret(srv.Token())
	c.GraphEndpoint = srv.URL
	c.MaxRetryWait = config.Duration(30 * time.Second)
	return c
}

func snapshot(t *testing.T, cfg config.MSGraph, opts ...Option) (*gsync.Snapshot, *Source) {
	t.Helper()
	src, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	s, err := src.Snapshot(context.Background())
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return s, src
}

func group(s *gsync.Snapshot, name string) *gsync.Group {
	for i := range s.Groups {
		if s.Groups[i].Name == name {
			return &s.Groups[i]
		}
	}
	return nil
}

func short(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id[len(id)-2:]
	}
	slices.Sort(out)
	return out
}

func TestSnapshotOfFixture(t *testing.T) {
	srv := graphtest.New(t, fixture())
	s, _ := snapshot(t, graphConfig(srv))

	eng := group(s, "Engineering")
	if eng == nil || eng.NotSynced != "" || !slices.Equal(short(eng.Users), []string{"u1"}) || !slices.Equal(short(eng.Groups), []string{"0b"}) {
		t.Fatalf("Engineering: %+v", eng)
	}
	if p := group(s, "Platform"); !slices.Equal(short(p.Users), []string{"u2", "u5"}) {
		t.Fatalf("Platform: %+v", p)
	}
	if n := group(s, "Newsletter"); n == nil || !strings.Contains(n.NotSynced, "distribution list") || len(n.Users) != 0 {
		t.Fatalf("a distribution list is listed, not synced, not read: %+v", n)
	}
	if d := group(s, "Everyone dynamic"); d.NotSynced != "" {
		t.Fatalf("dynamic groups are synced by default: %+v", d)
	}
	users := map[string]gsync.User{}
	for _, u := range s.Users {
		users[u.ID[len(u.ID)-2:]] = u
	}
	if !users["u4"].Guest || !users["u5"].Disabled || users["u1"].UPN != "u1@contoso.example" || users["u1"].Mail != "u1@contoso.example" {
		t.Fatalf("user attributes: %+v", users)
	}
	var others []string
	for _, sk := range s.Skipped {
		if sk.Reason == gsync.ReasonNotUserOrGroup {
			others = append(others, sk.Name+": "+sk.Detail)
		}
	}
	slices.Sort(others)
	want := []string{
		"Engineering: members that are neither users nor groups: 1 device",
		"Platform: members that are neither users nor groups: 1 servicePrincipal",
		"Sales: members that are neither users nor groups: 1 orgContact",
	}
	if !slices.Equal(others, want) {
		t.Fatalf("skipped member types:\n got  %q\n want %q", others, want)
	}
}

func TestGroupKindOptions(t *testing.T) {
	srv := graphtest.New(t, fixture())
	cfg := graphConfig(srv)
	cfg.Groups = config.MSGraphGroups{SecurityEnabledOnly: true, SkipDynamic: true, SkipRoleAssignable: true}
	s, _ := snapshot(t, cfg)
	synced := map[string]bool{}
	for _, g := range s.Groups {
		synced[g.Name] = g.NotSynced == ""
	}
	for name, want := range map[string]bool{"Engineering": true, "Platform": true, "Infra": true, "Sales": false,
		"Newsletter": false, "Everyone dynamic": false, "Role Admins": false} {
		if synced[name] != want {
			t.Errorf("%s synced %v, want %v", name, synced[name], want)
		}
	}
	cfg.Groups = config.MSGraphGroups{IncludeDistribution: true}
	s, _ = snapshot(t, cfg)
	if n := group(s, "Newsletter"); n.NotSynced != "" || len(n.Users) != 1 {
		t.Fatalf("include_distribution: %+v", n)
	}
}

// A Graph $filter that leaves out a nested group still gives its members to
// the groups that contain it: transitive membership is the IdP's fact.
func TestFilterReadsNestedGroupsOutsideIt(t *testing.T) {
	srv := graphtest.New(t, fixture())
	cfg := graphConfig(srv)
	cfg.Groups.Filter = "startswith(displayName,'Eng')"
	s, _ := snapshot(t, cfg)
	if g := group(s, "Engineering"); g == nil || g.NotSynced != "" {
		t.Fatalf("Engineering: %+v", g)
	}
	for _, name := range []string{"Platform", "Infra"} {
		g := group(s, name)
		if g == nil || !strings.Contains(g.NotSynced, "outside source.msgraph.groups.filter") || len(g.Users) == 0 {
			t.Fatalf("%s should be read for nesting only: %+v", name, g)
		}
	}
	if group(s, "Sales") != nil {
		t.Fatal("a group outside the filter and not nested was read")
	}
	// An advanced query is sent with ConsistencyLevel: eventual.
	cfg.Groups.Filter = "endswith(displayName,'ring')"
	s, _ = snapshot(t, cfg)
	if g := group(s, "Engineering"); g == nil || g.NotSynced != "" {
		t.Fatalf("advanced filter: %+v", s.Groups)
	}
}

// Flattening the snapshot gives exactly what Graph's transitiveMembers
// gives, cycles included.
func TestTransitiveMembershipMatchesGraph(t *testing.T) {
	tenant := graphtest.Generate(graphtest.GenOptions{Seed: 7, Users: 400, Groups: 80, MaxDepth: 3, Cycles: 3,
		GuestFraction: 0.1, DisabledFraction: 0.05, Devices: 20, ServicePrincipals: 5, OrgContacts: 5, DuplicateNames: 4})
	srv := graphtest.New(t, tenant)
	cfg := graphConfig(srv)
	cfg.Groups.IncludeDistribution = true
	s, _ := snapshot(t, cfg)

	m := config.Default().Mapping
	m.Group.Key = "id"
	m.User.SkipDisabled = false
	m.Filters.DefaultExcludes = false
	mapper, err := gsync.NewMapper(m)
	if err != nil {
		t.Fatal(err)
	}
	d, err := mapper.Map(s)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, tu := range d.Members.Tuples() {
		id := strings.TrimPrefix(tu.Object, "group:")
		got[id] = append(got[id], strings.TrimPrefix(tu.User, "user:"))
	}
	compared := 0
	for _, g := range tenant.Groups {
		want := tenant.TransitiveUsers(g.ID)
		have := got[g.ID]
		slices.Sort(want)
		slices.Sort(have)
		if !slices.Equal(have, want) {
			t.Errorf("group %s (%s): flattened %d users, transitiveMembers %d", g.DisplayName, g.ID, len(have), len(want))
		}
		compared++
	}
	if compared != len(tenant.Groups) || d.Members.Len() == 0 {
		t.Fatalf("compared %d groups, %d tuples", compared, d.Members.Len())
	}
}

// More than one page of groups, and a group of more than 999 members: every
// nextLink followed, in and out of $batch.
func TestPaging(t *testing.T) {
	tenant := &graphtest.Tenant{}
	for i := range 1500 {
		tenant.Users = append(tenant.Users, graphtest.User{ID: fmt.Sprintf("00000000-0000-0000-0001-%012d", i),
			UserPrincipalName: fmt.Sprintf("user%d@contoso.example", i), AccountEnabled: true, UserType: "Member"})
	}
	big := graphtest.Group{ID: "00000000-0000-0000-0002-000000000000", DisplayName: "Big", SecurityEnabled: true}
	for _, u := range tenant.Users {
		big.Members = append(big.Members, u.ID)
	}
	tenant.Groups = append(tenant.Groups, big)
	for i := 1; i < 1100; i++ {
		tenant.Groups = append(tenant.Groups, graphtest.Group{ID: fmt.Sprintf("00000000-0000-0000-0002-%012d", i),
			DisplayName: fmt.Sprintf("team-%d", i), SecurityEnabled: true, Members: []string{tenant.Users[i].ID}})
	}
	srv := graphtest.New(t, tenant)
	s, src := snapshot(t, graphConfig(srv))
	if len(s.Groups) != 1100 || len(group(s, "Big").Users) != 1500 || len(s.Users) != 1500 {
		t.Fatalf("groups %d, big %d, users %d", len(s.Groups), len(group(s, "Big").Users), len(s.Users))
	}
	st := srv.Stats()
	// 2 pages of groups; 1100 first member pages + 1 second page of Big, in
	// ceil(1101/20) = 56 batches.
	if st.GroupPages != 2 || st.MemberPages != 1101 || st.BatchPosts != 56 {
		t.Fatalf("requests: %+v", st)
	}
	if src.Stats().Requests.Load() != 58 {
		t.Fatalf("source counted %d HTTP requests, want 58", src.Stats().Requests.Load())
	}
}

func TestThrottlingStormIsSurvived(t *testing.T) {
	tenant := graphtest.Generate(graphtest.GenOptions{Seed: 3, Users: 200, Groups: 120, MaxDepth: 2})
	// A budget far below what the read costs: most batch items and some
	// whole requests come back 429 with Retry-After.
	srv := graphtest.New(t, tenant, graphtest.WithThrottling(60), graphtest.WithThrottleWindow(300*time.Millisecond))
	cfg := graphConfig(srv)
	cfg.Groups.IncludeDistribution = true
	s, src := snapshot(t, cfg)
	if len(s.Groups) != len(tenant.Groups) {
		t.Fatalf("groups %d of %d", len(s.Groups), len(tenant.Groups))
	}
	if srv.Stats().Throttled == 0 || src.Stats().Throttled.Load() == 0 {
		t.Fatalf("no throttling happened: server %+v", srv.Stats())
	}
	for _, g := range tenant.Groups {
		if got := group(s, g.DisplayName); got == nil {
			t.Fatalf("group %s missing", g.DisplayName)
		}
	}
}

func TestFaultsAreRetried(t *testing.T) {
	for _, f := range []struct {
		name  string
		fault *graphtest.Fault
	}{
		{"500", graphtest.StatusFault(500)},
		{"503", graphtest.StatusFault(503)},
		{"429", graphtest.StatusFault(429)},
		{"dropped connection", graphtest.DropFault()},
		{"truncated body", graphtest.TruncateFault()},
	} {
		t.Run(f.name, func(t *testing.T) {
			srv := graphtest.New(t, fixture())
			var n atomic.Int32
			// Fail the first two tries of every kind of request: the group
			// list, the $batch envelope and the items inside it.
			srv.SetFaultFunc(func(r *http.Request) *graphtest.Fault {
				if n.Add(1) <= 2 {
					return f.fault
				}
				return nil
			})
			cfg := graphConfig(srv)
			cfg.MaxRetryWait = config.Duration(20 * time.Second)
			s, src := snapshot(t, cfg)
			if group(s, "Engineering") == nil || src.Stats().Retries.Load() == 0 {
				t.Fatalf("retries %d, groups %d", src.Stats().Retries.Load(), len(s.Groups))
			}
		})
	}
}

// A page that keeps failing fails the snapshot, with an error that says
// what gave up and why.
func TestPersistentFailureFailsTheSnapshot(t *testing.T) {
	srv := graphtest.New(t, fixture())
	srv.SetFaultFunc(func(r *http.Request) *graphtest.Fault {
		if strings.Contains(r.URL.Path, "00000000-0000-0000-0000-00000000000b/members") {
			return graphtest.StatusFault(503)
		}
		return nil
	})
	cfg := graphConfig(srv)
	cfg.MaxRetries = 2
	src, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Snapshot(context.Background())
	var give *GiveUpError
	if !errors.As(err, &give) || give.Attempts != 3 || !strings.Contains(err.Error(), "gave up after 3 attempts") ||
		!strings.Contains(err.Error(), "00000000-0000-0000-0000-00000000000b") {
		t.Fatalf("err %v", err)
	}
	// A non-retryable answer fails at once and names the group.
	srv.SetFaultFunc(func(r *http.Request) *graphtest.Fault {
		if strings.Contains(r.URL.Path, "/members") {
			return graphtest.StatusFault(403)
		}
		return nil
	})
	_, err = src.Snapshot(context.Background())
	if err == nil || !strings.Contains(err.Error(), "HTTP 403") || !strings.Contains(err.Error(), "GroupMember.Read.All") {
		t.Fatalf("err %v", err)
	}
}

func TestMalformedPageFailsTheSnapshot(t *testing.T) {
	srv := graphtest.New(t, fixture())
	srv.SetFaultFunc(func(r *http.Request) *graphtest.Fault {
		if strings.HasSuffix(r.URL.Path, "/groups") {
			return graphtest.MalformedFault()
		}
		return nil
	})
	src, _ := New(graphConfig(srv))
	if _, err := src.Snapshot(context.Background()); err == nil {
		t.Fatal("a malformed page gave a snapshot")
	}
}

func TestGroupVanishingMidReadIsSkipped(t *testing.T) {
	srv := graphtest.New(t, fixture())
	const gone = "00000000-0000-0000-0000-00000000000f"
	var once atomic.Bool
	srv.SetFaultFunc(func(r *http.Request) *graphtest.Fault {
		if strings.Contains(r.URL.Path, gone+"/members") && once.CompareAndSwap(false, true) {
			srv.RemoveGroup(gone)
		}
		return nil
	})
	s, _ := snapshot(t, graphConfig(srv))
	if group(s, "Everyone dynamic") != nil {
		t.Fatal("vanished group still in the snapshot")
	}
	found := false
	for _, sk := range s.Skipped {
		found = found || (sk.ID == gone && sk.Reason == gsync.ReasonGroupVanished)
	}
	if !found || group(s, "Engineering") == nil {
		t.Fatalf("skipped %+v", s.Skipped)
	}
}

func TestPermissions(t *testing.T) {
	// Without User.Read.All, users come back with id and type only: keyed
	// by id they still sync.
	srv := graphtest.New(t, fixture(), graphtest.WithPermissions("GroupMember.Read.All"))
	s, _ := snapshot(t, graphConfig(srv))
	if len(s.Users) != 5 || s.Users[0].UPN != "" || group(s, "Engineering") == nil {
		t.Fatalf("users %+v", s.Users)
	}
	// Without group permissions the read fails and says what to grant.
	srv.SetPermissions()
	src, _ := New(graphConfig(srv))
	_, err := src.Snapshot(context.Background())
	if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "GroupMember.Read.All") {
		t.Fatalf("err %v", err)
	}
	// A wrong token is a 401 that names the settings to check, not the token.
	srv2 := graphtest.New(t, fixture())
	cfg := graphConfig(srv2)
	cfg.Token = "not-the-token"
	src, _ = New(cfg)
	_, err = src.Snapshot(context.Background())
	if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "not-the-token") {
		t.Fatalf("err %v", err)
	}
}

func TestUserAttributes(t *testing.T) {
	srv := graphtest.New(t, fixture())
	s, _ := snapshot(t, graphConfig(srv), WithUserAttributes("displayName"))
	for _, u := range s.Users {
		if u.Attributes["displayName"] == "" {
			t.Fatalf("user %s lacks displayName: %+v", u.ID, u)
		}
	}
}

// The wrapper sees every Graph request, and LastRead says what each read
// cost, full or incremental, as the counters moved during it.
func TestTransportWrapperAndLastRead(t *testing.T) {
	srv := graphtest.New(t, fixture())
	var n atomic.Int32
	srv.SetFaultFunc(func(r *http.Request) *graphtest.Fault {
		if n.Add(1) <= 2 {
			return graphtest.StatusFault(429)
		}
		return nil
	})
	var wrapped atomic.Int64
	wrap := WithTransportWrapper(func(base http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			wrapped.Add(1)
			return base.RoundTrip(r)
		})
	})
	for _, delta := range []bool{false, true} {
		t.Run(fmt.Sprintf("delta=%t", delta), func(t *testing.T) {
			n.Store(0)
			wrapped.Store(0)
			cfg := graphConfig(srv)
			cfg.Delta.Enabled = delta
			src, err := New(cfg, wrap, WithStateStore(state.NewMemory()))
			if err != nil {
				t.Fatal(err)
			}
			for run := range 2 {
				before := src.Stats().at()
				if _, err := src.Snapshot(context.Background()); err != nil {
					t.Fatal(err)
				}
				if err := src.Commit(context.Background()); err != nil {
					t.Fatal(err)
				}
				got, st := src.LastRead(), src.Stats().at()
				want := gsync.SourceRead{Mode: got.Mode, Reason: got.Reason, Changes: got.Changes, Requests: st.requests - before.requests,
					BatchItems: st.batchItems - before.batchItems, Retries: st.retries - before.retries,
					Throttled: st.throttled - before.throttled, Waited: st.waited - before.waited}
				if got != want {
					t.Fatalf("run %d: LastRead %+v, counters moved %+v", run, got, want)
				}
				if run == 0 && (got.Retries == 0 || got.Throttled == 0 || got.Waited == 0 || got.BatchItems == 0) {
					t.Fatalf("run %d: %+v", run, got)
				}
			}
			if wrapped.Load() != src.Stats().Requests.Load() {
				t.Fatalf("the wrapper saw %d requests of %d", wrapped.Load(), src.Stats().Requests.Load())
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
