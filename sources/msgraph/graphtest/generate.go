package graphtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
)

// GenOptions shape a generated tenant. The same options give the same
// tenant, byte for byte.
type GenOptions struct {
	Seed   int64
	Users  int
	Groups int
	// MaxDepth is the longest chain of nested groups, in membership edges:
	// 0 nests nothing, 2 gives groups in groups in groups. Only security
	// groups nest (Microsoft 365, dynamic and role-assignable groups cannot
	// hold groups), so it needs enough of them.
	MaxDepth int
	// NestedFraction is the share of nestable groups placed inside another
	// group; 0.3 if zero and MaxDepth > 0.
	NestedFraction float64
	// MembersPerGroup is the mean number of direct user members of an
	// ordinary group (10 if zero). Sizes are lognormal: most groups are small
	// and a few are huge. The system-like "All Company" group holds every
	// member (non-guest) user on top of that.
	MembersPerGroup  int
	GuestFraction    float64 // share of users that are guests
	DisabledFraction float64 // share of users with accountEnabled false
	// Devices, ServicePrincipals and OrgContacts are created and put in
	// groups as members: the objects a group sync must skip.
	Devices           int
	ServicePrincipals int
	OrgContacts       int
	// DuplicateNames is how many groups take the display name of another
	// group (at most half the ordinary groups): the tenant has
	// Groups-DuplicateNames distinct group names.
	DuplicateNames int
	// Cycles adds that many membership cycles (a group made a member of one
	// of its own nested groups; needs MaxDepth > 0 or two security groups).
	Cycles int
	// Domain is the tenant's UPN domain; "contoso.example" if empty.
	Domain string
}

// systemGroups are created first, as far as Groups allows: the groups a real
// tenant has besides the ones people make.
var systemGroups = []struct {
	name  string
	shape func(g *Group)
}{
	{"All Company", func(g *Group) { g.GroupTypes, g.MailEnabled = []string{"Unified"}, true }},
	{"All Users", func(g *Group) { g.GroupTypes, g.SecurityEnabled = []string{"DynamicMembership"}, true }},
	{"Global Administrators", func(g *Group) { g.SecurityEnabled, g.IsAssignableToRole = true, true }},
	{"AAD DC Administrators", func(g *Group) { g.SecurityEnabled = true }},
	{"Guests", func(g *Group) { g.GroupTypes, g.SecurityEnabled = []string{"DynamicMembership"}, true }},
	{"Intune Devices", func(g *Group) { g.SecurityEnabled = true }},
}

var (
	firstNames  = strings.Fields("Adele Alex Allan Ben Carla Chen Dana Diego Elif Emma Farid Grace Hana Ivan Jana Joni Kenji Lara Lee Lidia Lynne Megan Miriam Nestor Nora Olga Patti Pradeep Quinn Raul Sara Tomas Uma Vera Wei Xavier Yuki Zoe")
	lastNames   = strings.Fields("Vance Wilber Adams Brown Chen Diaz Evans Fischer Garcia Holt Ito Jensen Khan Lopez Muller Nakamura Okafor Patel Quist Rossi Sato Schmidt Tanaka Ueda Varga Weber Xu Yilmaz Zhang")
	departments = strings.Fields("Engineering Sales Marketing Finance Legal Support Research Operations Design HR Security Platform Data Mobile Web")
	teamWords   = strings.Fields("Readers Writers Admins Owners Contributors Reviewers Oncall Leads Interns Contractors")
)

type generator struct {
	o      GenOptions
	r      *rand.Rand
	t      *Tenant
	stamp  []int       // per user: last group that picked it, to sample without maps
	parent map[int]int // nested group -> the group holding it
}

// Generate builds a tenant of the given size; see GenOptions.
func Generate(o GenOptions) *Tenant {
	if o.Domain == "" {
		o.Domain = "contoso.example"
	}
	if o.MembersPerGroup <= 0 {
		o.MembersPerGroup = 10
	}
	if o.NestedFraction == 0 && o.MaxDepth > 0 {
		o.NestedFraction = 0.3
	}
	g := &generator{o: o, r: rand.New(rand.NewPCG(uint64(o.Seed), 0x9e3779b97f4a7c15)), t: &Tenant{}}
	g.users()
	g.objects()
	g.groups()
	g.userMembers()
	g.nest()
	g.cycles()
	g.otherMembers()
	g.duplicateNames()
	for i := range g.t.Groups {
		ms := g.t.Groups[i].Members
		g.r.Shuffle(len(ms), func(a, b int) { ms[a], ms[b] = ms[b], ms[a] })
	}
	return g.t
}

// guid returns a random version 4 GUID from the seeded source.
func (g *generator) guid() string {
	a, b := g.r.Uint64(), g.r.Uint64()
	a = a&^(0xf<<12) | 0x4<<12 // version 4
	b = b&^(0x3<<62) | 0x2<<62 // RFC 4122 variant
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
}

func (g *generator) users() {
	n := g.o.Users
	guests := pickSet(g.r, n, int(math.Round(g.o.GuestFraction*float64(n))))
	disabled := pickSet(g.r, n, int(math.Round(g.o.DisabledFraction*float64(n))))
	g.t.Users = make([]User, n)
	for i := range n {
		first, last := firstNames[g.r.IntN(len(firstNames))], lastNames[g.r.IntN(len(lastNames))]
		local := fmt.Sprintf("%s.%s.%d", strings.ToLower(first), strings.ToLower(last), i)
		u := User{
			ID:                g.guid(),
			DisplayName:       first + " " + last,
			UserPrincipalName: local + "@" + g.o.Domain,
			Mail:              local + "@" + g.o.Domain,
			AccountEnabled:    !disabled[i],
			UserType:          "Member",
		}
		if guests[i] {
			u.UserType = "Guest"
			u.Mail = local + "@fabrikam.example"
			u.UserPrincipalName = local + "_fabrikam.example#EXT#@" + g.o.Domain
			u.DisplayName += " (Fabrikam)"
		} else if g.r.IntN(20) == 0 {
			u.Mail = "" // no mailbox
		}
		g.t.Users[i] = u
	}
	g.stamp = make([]int, n)
	for i := range g.stamp {
		g.stamp[i] = -1
	}
}

// pickSet marks k of n positions, chosen at random.
func pickSet(r *rand.Rand, n, k int) []bool {
	set := make([]bool, n)
	for _, i := range r.Perm(n)[:min(k, n)] {
		set[i] = true
	}
	return set
}

func (g *generator) objects() {
	for i := range g.o.Devices {
		g.t.Devices = append(g.t.Devices, Object{ID: g.guid(), DisplayName: fmt.Sprintf("DESKTOP-%06X", g.r.IntN(1<<24)+i)})
	}
	for i := range g.o.ServicePrincipals {
		g.t.ServicePrincipals = append(g.t.ServicePrincipals, Object{ID: g.guid(), DisplayName: fmt.Sprintf("%s automation %d", departments[g.r.IntN(len(departments))], i)})
	}
	for i := range g.o.OrgContacts {
		g.t.OrgContacts = append(g.t.OrgContacts, Object{ID: g.guid(), DisplayName: fmt.Sprintf("%s %s (partner %d)", firstNames[g.r.IntN(len(firstNames))], lastNames[g.r.IntN(len(lastNames))], i)})
	}
}

func (g *generator) groups() {
	g.t.Groups = make([]Group, g.o.Groups)
	for i := range g.t.Groups {
		grp := &g.t.Groups[i]
		grp.ID = g.guid()
		if i < len(systemGroups) {
			grp.DisplayName = systemGroups[i].name
			systemGroups[i].shape(grp)
			continue
		}
		dept, word := departments[g.r.IntN(len(departments))], teamWords[g.r.IntN(len(teamWords))]
		switch p := g.r.IntN(100); {
		case p < 45: // security
			grp.DisplayName, grp.SecurityEnabled = fmt.Sprintf("SG-%s-%s-%d", dept, word, i), true
		case p < 67: // Microsoft 365
			grp.DisplayName, grp.MailEnabled, grp.GroupTypes = fmt.Sprintf("%s Team %d", dept, i), true, []string{"Unified"}
		case p < 70: // dynamic Microsoft 365
			grp.DisplayName, grp.MailEnabled, grp.GroupTypes = fmt.Sprintf("%s Everyone %d", dept, i), true, []string{"Unified", "DynamicMembership"}
		case p < 80: // mail-enabled security
			grp.DisplayName, grp.SecurityEnabled, grp.MailEnabled = fmt.Sprintf("MESG %s %s %d", dept, word, i), true, true
		case p < 90: // distribution list
			grp.DisplayName, grp.MailEnabled = fmt.Sprintf("DL-%s-%d", dept, i), true
		case p < 95: // dynamic security
			grp.DisplayName, grp.SecurityEnabled, grp.GroupTypes = fmt.Sprintf("Dyn %s %s %d", dept, word, i), true, []string{"DynamicMembership"}
		default: // role-assignable
			grp.DisplayName, grp.SecurityEnabled, grp.IsAssignableToRole = fmt.Sprintf("Role %s %s %d", dept, word, i), true, true
		}
	}
}

// nestable reports whether group i may hold and be held by other groups:
// a plain or mail-enabled security group, neither dynamic nor role-assignable
// nor system.
func (g *generator) nestable(i int) bool {
	grp := &g.t.Groups[i]
	return i >= len(systemGroups) && grp.SecurityEnabled && len(grp.GroupTypes) == 0 && !grp.IsAssignableToRole
}

// userMembers gives each group its users: lognormal sizes around the mean.
func (g *generator) userMembers() {
	const sigma = 1.6
	mu := math.Log(float64(g.o.MembersPerGroup)) - sigma*sigma/2
	n := len(g.t.Users)
	for i := range g.t.Groups {
		grp := &g.t.Groups[i]
		switch {
		case i < len(systemGroups) && grp.DisplayName == "All Company":
			for _, u := range g.t.Users {
				if u.UserType == "Member" {
					grp.Members = append(grp.Members, u.ID)
				}
			}
			continue
		case i < len(systemGroups) && grp.DisplayName == "Guests":
			for _, u := range g.t.Users {
				if u.UserType == "Guest" {
					grp.Members = append(grp.Members, u.ID)
				}
			}
			continue
		case i < len(systemGroups) && grp.IsAssignableToRole:
			g.sampleUsers(grp, i, min(n, 3))
			continue
		}
		size := int(math.Round(math.Exp(mu + sigma*g.r.NormFloat64())))
		g.sampleUsers(grp, i, min(size, n))
	}
}

// sampleUsers adds k distinct random users to group i: by rejection when k
// is at most half the users, else by excluding n-k of them.
func (g *generator) sampleUsers(grp *Group, i, k int) {
	n := len(g.t.Users)
	if k <= n/2 {
		for added := 0; added < k; {
			u := g.r.IntN(n)
			if g.stamp[u] != i {
				g.stamp[u] = i
				grp.Members = append(grp.Members, g.t.Users[u].ID)
				added++
			}
		}
		return
	}
	for excluded := 0; excluded < n-k; {
		u := g.r.IntN(n)
		if g.stamp[u] != i {
			g.stamp[u] = i
			excluded++
		}
	}
	for u := range n {
		if g.stamp[u] != i {
			grp.Members = append(grp.Members, g.t.Users[u].ID)
		}
	}
}

// nest places a share of the nestable groups at levels 1..MaxDepth, each in
// a group one level up, so the longest chain is exactly MaxDepth.
func (g *generator) nest() {
	if g.o.MaxDepth <= 0 {
		return
	}
	var candidates []int
	for i := range g.t.Groups {
		if g.nestable(i) {
			candidates = append(candidates, i)
		}
	}
	g.r.Shuffle(len(candidates), func(a, b int) { candidates[a], candidates[b] = candidates[b], candidates[a] })
	if len(candidates) <= g.o.MaxDepth {
		return // not enough security groups for a chain that deep
	}
	nested := max(g.o.MaxDepth, int(math.Round(g.o.NestedFraction*float64(len(candidates)))))
	nested = min(nested, len(candidates)-1)
	levels := make([][]int, g.o.MaxDepth+1)
	levels[0] = candidates[nested:]
	for j, gi := range candidates[:nested] {
		level := j + 1 // the first MaxDepth groups make the full chain
		if j >= g.o.MaxDepth {
			level = 1 + g.r.IntN(g.o.MaxDepth)
		}
		levels[level] = append(levels[level], gi)
	}
	g.parent = make(map[int]int)
	for level := 1; level <= g.o.MaxDepth; level++ {
		for _, child := range levels[level] {
			p := levels[level-1][g.r.IntN(len(levels[level-1]))]
			g.t.Groups[p].Members = append(g.t.Groups[p].Members, g.t.Groups[child].ID)
			g.parent[child] = p
		}
	}
}

// cycles makes a nested group hold its top-level ancestor, or, without
// nesting, two security groups hold each other.
func (g *generator) cycles() {
	var nested []int
	for child := range g.parent {
		nested = append(nested, child)
	}
	slices.Sort(nested)
	g.r.Shuffle(len(nested), func(a, b int) { nested[a], nested[b] = nested[b], nested[a] })
	for c := range g.o.Cycles {
		if len(nested) > 0 {
			if c >= len(nested) {
				return
			}
			child := nested[c]
			top := child
			for {
				p, ok := g.parent[top]
				if !ok {
					break
				}
				top = p
			}
			g.t.Groups[child].Members = append(g.t.Groups[child].Members, g.t.Groups[top].ID)
			continue
		}
		var sec []int
		for i := range g.t.Groups {
			if g.nestable(i) {
				sec = append(sec, i)
			}
		}
		if 2*c+1 >= len(sec) {
			return
		}
		a, b := sec[2*c], sec[2*c+1]
		g.t.Groups[a].Members = append(g.t.Groups[a].Members, g.t.Groups[b].ID)
		g.t.Groups[b].Members = append(g.t.Groups[b].Members, g.t.Groups[a].ID)
	}
}

// otherMembers puts devices, service principals and contacts in groups.
func (g *generator) otherMembers() {
	var sec, dl []int
	for i := range g.t.Groups {
		grp := &g.t.Groups[i]
		if g.nestable(i) {
			sec = append(sec, i)
		}
		if grp.MailEnabled && !grp.SecurityEnabled && len(grp.GroupTypes) == 0 {
			dl = append(dl, i)
		}
	}
	intune := -1
	for i := range min(len(systemGroups), len(g.t.Groups)) {
		if g.t.Groups[i].DisplayName == "Intune Devices" {
			intune = i
		}
	}
	add := func(pool []int, id string) {
		if len(pool) > 0 {
			gi := pool[g.r.IntN(len(pool))]
			g.t.Groups[gi].Members = append(g.t.Groups[gi].Members, id)
		}
	}
	for _, d := range g.t.Devices {
		if intune >= 0 {
			g.t.Groups[intune].Members = append(g.t.Groups[intune].Members, d.ID)
		}
		if g.r.IntN(2) == 0 {
			add(sec, d.ID)
		}
	}
	for _, sp := range g.t.ServicePrincipals {
		add(sec, sp.ID)
	}
	if len(dl) == 0 {
		dl = sec
	}
	for _, c := range g.t.OrgContacts {
		add(dl, c.ID)
	}
}

// duplicateNames gives DuplicateNames ordinary groups the name of another
// ordinary group that keeps its own.
func (g *generator) duplicateNames() {
	first := len(systemGroups)
	n := len(g.t.Groups) - first
	k := min(g.o.DuplicateNames, n/2)
	if k <= 0 {
		return
	}
	perm := g.r.Perm(n)
	renamed, keep := perm[:k], perm[k:]
	for _, r := range renamed {
		src := keep[g.r.IntN(len(keep))]
		g.t.Groups[first+r].DisplayName = g.t.Groups[first+src].DisplayName
	}
}
