package graphtest

import (
	"strings"
	"sync"
)

// kind is the type of a directory object.
type kind uint8

const (
	kindUser kind = iota
	kindGroup
	kindDevice
	kindServicePrincipal
	kindOrgContact
	numKinds
)

// kindNames are the Graph type names, as in "#microsoft.graph.user".
var kindNames = [numKinds]string{"user", "group", "device", "servicePrincipal", "orgContact"}

// odataTypes are the @odata.type values, with the leading '#' without which
// the SDK deserializes a member as a plain directoryObject.
var odataTypes = [numKinds]string{
	"#microsoft.graph.user", "#microsoft.graph.group", "#microsoft.graph.device",
	"#microsoft.graph.servicePrincipal", "#microsoft.graph.orgContact",
}

// index is an immutable, precomputed view of a tenant. Every directory object
// has a number: users first, then groups, devices, service principals and
// contacts, each block in tenant order, so a number says both the kind and
// the position. A mutation builds a new index; requests in flight keep the
// one they started with.
type index struct {
	t      *Tenant
	starts [numKinds + 1]int32 // object numbers of kind k are [starts[k], starts[k+1])
	byID   map[string]int32
	byUPN  map[string]int32 // lower-cased userPrincipalName
	users  []int32          // object numbers of users, in order: the /users listing
	groups []int32          // object numbers of groups, in order: the /groups listing
	// members holds each group's direct members as object numbers, indexed by
	// the group's position; ids that name nothing are left out.
	members [][]int32

	// transitive caches flattened memberships; bounded by transitiveCacheMax
	// entries in all, it is dropped whole when full.
	mu        sync.Mutex
	trans     map[int32][]int32
	transSize int

	// parents holds each object's direct parent groups, built on first
	// use (memberof.go).
	parentsOnce sync.Once
	parents     map[int32][]int32
}

const transitiveCacheMax = 8 << 20

func newIndex(t *Tenant) *index {
	ix := &index{t: t}
	counts := [numKinds]int{len(t.Users), len(t.Groups), len(t.Devices), len(t.ServicePrincipals), len(t.OrgContacts)}
	total := 0
	for k, n := range counts {
		ix.starts[k] = int32(total)
		total += n
	}
	ix.starts[numKinds] = int32(total)

	ix.byID = make(map[string]int32, total)
	ix.byUPN = make(map[string]int32, len(t.Users))
	for o := range int32(total) {
		ix.byID[ix.id(o)] = o
	}
	ix.users = make([]int32, len(t.Users))
	for i, u := range t.Users {
		ix.users[i] = ix.starts[kindUser] + int32(i)
		if u.UserPrincipalName != "" {
			ix.byUPN[strings.ToLower(u.UserPrincipalName)] = ix.users[i]
		}
	}
	ix.groups = make([]int32, len(t.Groups))
	ix.members = make([][]int32, len(t.Groups))
	for i, g := range t.Groups {
		ix.groups[i] = ix.starts[kindGroup] + int32(i)
		ms := make([]int32, 0, len(g.Members))
		for _, id := range g.Members {
			if o, ok := ix.byID[id]; ok {
				ms = append(ms, o)
			}
		}
		ix.members[i] = ms
	}
	return ix
}

func (ix *index) kind(o int32) kind {
	for k := kindGroup; k < numKinds; k++ {
		if o < ix.starts[k] {
			return k - 1
		}
	}
	return numKinds - 1
}

func (ix *index) user(o int32) *User   { return &ix.t.Users[o-ix.starts[kindUser]] }
func (ix *index) group(o int32) *Group { return &ix.t.Groups[o-ix.starts[kindGroup]] }

// object returns a device, service principal or contact.
func (ix *index) object(o int32) *Object {
	switch k := ix.kind(o); k {
	case kindDevice:
		return &ix.t.Devices[o-ix.starts[k]]
	case kindServicePrincipal:
		return &ix.t.ServicePrincipals[o-ix.starts[k]]
	default:
		return &ix.t.OrgContacts[o-ix.starts[kindOrgContact]]
	}
}

func (ix *index) id(o int32) string {
	switch ix.kind(o) {
	case kindUser:
		return ix.user(o).ID
	case kindGroup:
		return ix.group(o).ID
	default:
		return ix.object(o).ID
	}
}

// lookup finds an object of the kind by id (or, for users, by UPN as Graph
// allows in /users/{id | userPrincipalName}).
func (ix *index) lookup(k kind, id string) (int32, bool) {
	o, ok := ix.byID[id]
	if !ok && k == kindUser {
		o, ok = ix.byUPN[strings.ToLower(id)]
	}
	if !ok || ix.kind(o) != k {
		return 0, false
	}
	return o, true
}

// directMembers returns the direct members of group object g.
func (ix *index) directMembers(g int32) []int32 {
	return ix.members[g-ix.starts[kindGroup]]
}

// transitiveMembers returns every object reachable from group g through
// membership, nested groups included, each once, breadth first: direct
// members come first, as on Graph. The group itself is never its own member,
// even in a cycle.
func (ix *index) transitiveMembers(g int32) []int32 {
	ix.mu.Lock()
	cached, ok := ix.trans[g]
	ix.mu.Unlock()
	if ok {
		return cached
	}

	seen := make([]uint64, (ix.starts[numKinds]+63)/64)
	mark := func(o int32) bool {
		w, b := o/64, uint64(1)<<(o%64)
		if seen[w]&b != 0 {
			return false
		}
		seen[w] |= b
		return true
	}
	mark(g)
	var out []int32
	queue := []int32{g}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, m := range ix.directMembers(cur) {
			if !mark(m) {
				continue
			}
			out = append(out, m)
			if ix.kind(m) == kindGroup {
				queue = append(queue, m)
			}
		}
	}

	ix.mu.Lock()
	if ix.trans == nil || ix.transSize+len(out) > transitiveCacheMax {
		ix.trans, ix.transSize = map[int32][]int32{}, 0
	}
	ix.trans[g] = out
	ix.transSize += len(out)
	ix.mu.Unlock()
	return out
}
