package msgraph

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sources/msgraph/graphtest"
	"github.com/groupsync/groupsync/state"
)

var deltaSequences = flag.Int("delta.sequences", 0, "change sequences for TestDeltaEquivalence (0: 1500; 300 under -race; a tenth with -short)")

// deltaVariant is one configuration the equivalence test runs under.
type deltaVariant struct {
	name  string
	graph func(*config.MSGraph)
	mapp  func(*config.Mapping)
}

var deltaVariants = []deltaVariant{
	{"defaults", func(*config.MSGraph) {}, func(*config.Mapping) {}},
	{"upn key, guests skipped, usersets, Graph filter", func(g *config.MSGraph) { g.Groups.Filter = "startswith(displayName,'SG')" },
		func(m *config.Mapping) { m.User.Key, m.User.SkipGuests, m.Nesting = "upn", true, "userset" }},
	{"ids only (users not tracked), security groups only", func(g *config.MSGraph) { g.Groups.SecurityEnabledOnly = true },
		func(m *config.Mapping) { m.User.SkipDisabled, m.Group.Key = false, "id" }},
	{"attribute key, distribution lists, no dynamic groups", func(g *config.MSGraph) { g.Groups.IncludeDistribution, g.Groups.SkipDynamic = true, true },
		func(m *config.Mapping) { m.User.Key, m.Nesting = "attribute:displayName", "direct" }},
	{"mail key, advanced filter, role-assignable skipped", func(g *config.MSGraph) {
		g.Groups.Filter, g.Groups.SkipRoleAssignable = "not(startswith(displayName,'DL'))", true
	}, func(m *config.Mapping) { m.User.Key, m.User.Lowercase = "mail", true }},
}

// TestDeltaEquivalence is the property: over random sequences of tenant
// changes, with Graph's paging, empty pages and replays, expired and reset
// tokens, skipped commits, corrupt state and the drift cadence, every
// incremental snapshot equals a full read's, and maps to the same tuples.
func TestDeltaEquivalence(t *testing.T) {
	n := *deltaSequences
	if n == 0 {
		n = 1500
		if raceEnabled {
			n = 300
		}
		if testing.Short() {
			n /= 10
		}
	}
	for vi, v := range deltaVariants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			var seqs, steps, incremental, full int
			for seq := vi; seq < n; seq += len(deltaVariants) {
				r := rand.New(rand.NewPCG(uint64(seq), 0xde17a))
				s, i, f := runSequence(t, seq, v, r)
				seqs, steps, incremental, full = seqs+1, steps+s, incremental+i, full+f
				if t.Failed() {
					return
				}
			}
			t.Logf("%d sequences, %d reads (%d incremental, %d full) in %s", seqs, steps, incremental, full, time.Since(start).Round(time.Millisecond))
			if incremental < steps/2 {
				t.Fatalf("only %d of %d reads were incremental", incremental, steps)
			}
		})
	}
}

func runSequence(t *testing.T, seq int, v deltaVariant, r *rand.Rand) (steps, incremental, full int) {
	t.Helper()
	tenant := graphtest.Generate(graphtest.GenOptions{Seed: int64(seq), Users: 8 + r.IntN(25), Groups: 4 + r.IntN(10),
		MaxDepth: r.IntN(4), MembersPerGroup: 2 + r.IntN(6), GuestFraction: 0.15, DisabledFraction: 0.15,
		Devices: r.IntN(3), ServicePrincipals: r.IntN(2), OrgContacts: r.IntN(2), DuplicateNames: r.IntN(2), Cycles: r.IntN(2)})
	srv := graphtest.New(t, tenant, graphtest.WithDelta(graphtest.DeltaOptions{ObjectsPerPage: 1 + r.IntN(5), MembersPerPage: 1 + r.IntN(8),
		EmptyPages: r.IntN(3) == 0, Replay: r.IntN(3) == 0}))
	defer srv.Close()
	cfg := graphConfig(srv)
	v.graph(&cfg)
	m := config.Default().Mapping
	v.mapp(&m)
	p := newPair(&seqT{T: t, seq: seq, variant: v.name}, srv, cfg, m, state.NewMemory())
	ctx := context.Background()
	for step := range 3 + r.IntN(6) {
		for range r.IntN(4) {
			must(t, srv.Mutate(func(tn *graphtest.Tenant) { mutate(r, tn) }))
		}
		commit := true
		switch x := r.IntN(100); {
		case x < 4:
			srv.ExpireDeltaTokens()
		case x < 8:
			srv.ResetDelta()
		case x < 12:
			p.clock.Add(25 * time.Hour) // full_sync_every
		case x < 15:
			if data, _ := p.store.Load(ctx); len(data) > 10 {
				data[5+r.IntN(len(data)-5)] ^= byte(1 + r.IntN(255))
				p.store.Save(ctx, data)
			}
		case x < 25:
			commit = false // a plan, or a failed apply
		}
		_ = step
		info := p.read(commit)
		steps++
		if info.Mode == "incremental" {
			incremental++
		} else {
			full++
		}
		if t.Failed() {
			return
		}
	}
	return
}

// seqT names the sequence in failures.
type seqT struct {
	*testing.T
	seq     int
	variant string
}

func (s *seqT) Fatalf(format string, args ...any) {
	s.T.Helper()
	s.T.Fatalf("sequence %d (%s): %s", s.seq, s.variant, fmt.Sprintf(format, args...))
}

func (s *seqT) Fatal(args ...any) {
	s.T.Helper()
	s.T.Fatalf("sequence %d (%s): %s", s.seq, s.variant, fmt.Sprint(args...))
}

// mutate makes one random change of the kinds a directory sees.
func mutate(r *rand.Rand, t *graphtest.Tenant) {
	pickGroup := func() *graphtest.Group {
		if len(t.Groups) == 0 {
			return nil
		}
		return &t.Groups[r.IntN(len(t.Groups))]
	}
	pickUser := func() *graphtest.User {
		if len(t.Users) == 0 {
			return nil
		}
		return &t.Users[r.IntN(len(t.Users))]
	}
	switch r.IntN(15) {
	case 0, 1, 2: // add a user to a group
		if g, u := pickGroup(), pickUser(); g != nil && u != nil && !slices.Contains(g.Members, u.ID) {
			g.Members = append(g.Members, u.ID)
		}
	case 3, 4: // remove a member
		if g := pickGroup(); g != nil && len(g.Members) > 0 {
			i := r.IntN(len(g.Members))
			g.Members = slices.Delete(g.Members, i, i+1)
		}
	case 5: // create a group of any kind, with members
		g := graphtest.Group{ID: guid(r), DisplayName: fmt.Sprintf("%s new %d", []string{"SG", "DL", "Team", "Dyn"}[r.IntN(4)], r.IntN(100))}
		switch r.IntN(5) {
		case 0:
			g.SecurityEnabled = true
		case 1:
			g.MailEnabled = true // distribution list
		case 2:
			g.GroupTypes, g.MailEnabled = []string{"Unified"}, true
		case 3:
			g.GroupTypes, g.SecurityEnabled = []string{"DynamicMembership"}, true
		case 4:
			g.SecurityEnabled, g.IsAssignableToRole = true, true
		}
		for range r.IntN(4) {
			if u := pickUser(); u != nil && !slices.Contains(g.Members, u.ID) {
				g.Members = append(g.Members, u.ID)
			}
		}
		if o := pickGroup(); o != nil && r.IntN(2) == 0 {
			g.Members = append(g.Members, o.ID)
		}
		t.Groups = append(t.Groups, g)
	case 6: // delete a group, and its memberships
		if g := pickGroup(); g != nil && len(t.Groups) > 1 {
			id := g.ID
			t.Groups = slices.DeleteFunc(t.Groups, func(g graphtest.Group) bool { return g.ID == id })
			for i := range t.Groups {
				t.Groups[i].Members = slices.DeleteFunc(t.Groups[i].Members, func(m string) bool { return m == id })
			}
		}
	case 7: // rename: across the filter, or onto another group's name
		if g := pickGroup(); g != nil {
			switch r.IntN(3) {
			case 0:
				g.DisplayName = "SG " + g.DisplayName
			case 1:
				g.DisplayName = pickGroup().DisplayName
			default:
				g.DisplayName = fmt.Sprintf("DL renamed %d", r.IntN(100))
			}
		}
	case 8: // change a group's kind
		if g := pickGroup(); g != nil {
			switch r.IntN(4) {
			case 0:
				g.SecurityEnabled = !g.SecurityEnabled
			case 1:
				g.MailEnabled = !g.MailEnabled
			case 2:
				g.IsAssignableToRole = !g.IsAssignableToRole
			default:
				if len(g.GroupTypes) == 0 {
					g.GroupTypes = []string{[]string{"Unified", "DynamicMembership"}[r.IntN(2)]}
				} else {
					g.GroupTypes = nil
				}
			}
		}
	case 9: // nest (cycles allowed) or unnest
		if a, b := pickGroup(), pickGroup(); a != nil && b != nil && a.ID != b.ID {
			if i := slices.Index(a.Members, b.ID); i >= 0 {
				a.Members = slices.Delete(a.Members, i, i+1)
			} else {
				a.Members = append(a.Members, b.ID)
			}
		}
	case 10: // a user's attributes
		if u := pickUser(); u != nil {
			switch r.IntN(4) {
			case 0:
				u.UserPrincipalName = fmt.Sprintf("renamed%d@contoso.example", r.IntN(1000))
			case 1:
				u.Mail = []string{"", u.UserPrincipalName, fmt.Sprintf("m%d@contoso.example", r.IntN(1000))}[r.IntN(3)]
			case 2:
				u.DisplayName = fmt.Sprintf("Person %d", r.IntN(10))
			default:
				u.UserType = map[string]string{"Guest": "Member", "Member": "Guest"}[u.UserType]
			}
		}
	case 11: // disable or enable a user
		if u := pickUser(); u != nil {
			u.AccountEnabled = !u.AccountEnabled
		}
	case 12: // a new user, in a group
		id := guid(r)
		t.Users = append(t.Users, graphtest.User{ID: id, DisplayName: "New Person", UserPrincipalName: "new" + id[:8] + "@contoso.example",
			Mail: "new" + id[:8] + "@contoso.example", AccountEnabled: r.IntN(4) > 0, UserType: "Member"})
		if g := pickGroup(); g != nil {
			g.Members = append(g.Members, id)
		}
	case 13: // delete a user
		if u := pickUser(); u != nil {
			id := u.ID
			t.Users = slices.DeleteFunc(t.Users, func(u graphtest.User) bool { return u.ID == id })
			for i := range t.Groups {
				t.Groups[i].Members = slices.DeleteFunc(t.Groups[i].Members, func(m string) bool { return m == id })
			}
		}
	case 14: // a device joins or leaves a group
		if g := pickGroup(); g != nil && len(t.Devices) > 0 {
			d := t.Devices[r.IntN(len(t.Devices))].ID
			if i := slices.Index(g.Members, d); i >= 0 {
				g.Members = slices.Delete(g.Members, i, i+1)
			} else {
				g.Members = append(g.Members, d)
			}
		}
	}
}

func guid(r *rand.Rand) string {
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", r.Uint32(), r.IntN(1<<16), r.IntN(1<<12), r.IntN(1<<12), r.Uint64()&(1<<48-1))
}
