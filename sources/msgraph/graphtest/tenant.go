package graphtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Tenant is the directory the server answers from. Ids are GUID strings in
// generated tenants; fixtures may use any non-empty unique id, though Graph
// answers 400 for a path id that is not a GUID and matches nothing.
type Tenant struct {
	Users             []User   `yaml:"users,omitempty" json:"users,omitempty"`
	Groups            []Group  `yaml:"groups,omitempty" json:"groups,omitempty"`
	Devices           []Object `yaml:"devices,omitempty" json:"devices,omitempty"`
	ServicePrincipals []Object `yaml:"servicePrincipals,omitempty" json:"servicePrincipals,omitempty"`
	OrgContacts       []Object `yaml:"orgContacts,omitempty" json:"orgContacts,omitempty"`
}

// User is a microsoft.graph.user. In a fixture accountEnabled defaults to
// true and userType to "Member", as for a user created in the portal.
type User struct {
	ID                string `yaml:"id" json:"id"`
	DisplayName       string `yaml:"displayName,omitempty" json:"displayName,omitempty"`
	UserPrincipalName string `yaml:"userPrincipalName,omitempty" json:"userPrincipalName,omitempty"`
	Mail              string `yaml:"mail,omitempty" json:"mail,omitempty"` // "" is served as null
	AccountEnabled    bool   `yaml:"accountEnabled" json:"accountEnabled"`
	UserType          string `yaml:"userType,omitempty" json:"userType,omitempty"` // "Member" or "Guest"
}

// UnmarshalYAML applies the defaults for fields a fixture leaves out.
func (u *User) UnmarshalYAML(n *yaml.Node) error {
	// Node.Decode does not inherit the decoder's KnownFields: check here.
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			switch k := n.Content[i].Value; k {
			case "id", "displayName", "userPrincipalName", "mail", "accountEnabled", "userType":
			default:
				return fmt.Errorf("line %d: field %s not found in type graphtest.User", n.Content[i].Line, k)
			}
		}
	}
	type plain User
	p := plain{AccountEnabled: true, UserType: "Member"}
	if err := n.Decode(&p); err != nil {
		return err
	}
	*u = User(p)
	return nil
}

// Group is a microsoft.graph.group.
type Group struct {
	ID          string `yaml:"id" json:"id"`
	DisplayName string `yaml:"displayName" json:"displayName"`
	// GroupTypes holds "Unified" for Microsoft 365 groups and
	// "DynamicMembership" for dynamic ones; empty for security groups and
	// distribution lists.
	GroupTypes         []string `yaml:"groupTypes,omitempty" json:"groupTypes,omitempty"`
	SecurityEnabled    bool     `yaml:"securityEnabled,omitempty" json:"securityEnabled,omitempty"`
	MailEnabled        bool     `yaml:"mailEnabled,omitempty" json:"mailEnabled,omitempty"`
	IsAssignableToRole bool     `yaml:"isAssignableToRole,omitempty" json:"isAssignableToRole,omitempty"`
	// Members are the ids of the direct members: users, groups, devices,
	// service principals or org contacts, in the order Graph lists them.
	Members []string `yaml:"members,omitempty" json:"members,omitempty"`
}

// Object is a directory object the tenant only needs to name: a device, a
// service principal or an organizational contact.
type Object struct {
	ID          string `yaml:"id" json:"id"`
	DisplayName string `yaml:"displayName,omitempty" json:"displayName,omitempty"`
}

// LoadTenant reads a YAML or JSON fixture (see the package documentation for
// the format) and validates it.
func LoadTenant(path string) (*Tenant, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := ParseTenant(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// ParseTenant decodes a YAML or JSON fixture and validates it. Unknown fields
// are errors: a typo must not silently drop a member.
func ParseTenant(data []byte) (*Tenant, error) {
	var t Tenant
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// Validate checks that every object has a unique id, that user types are
// known and that every member id names an object of the tenant.
func (t *Tenant) Validate() error {
	type where struct {
		kind string
		i    int
	}
	var errs []error
	seen := make(map[string]where, len(t.Users)+len(t.Groups))
	add := func(kind string, i int, id string) {
		if id == "" {
			errs = append(errs, fmt.Errorf("%s[%d]: id is required", kind, i))
		} else if w, dup := seen[id]; dup {
			errs = append(errs, fmt.Errorf("%s[%d]: id %q is already used by %s[%d]", kind, i, id, w.kind, w.i))
		} else {
			seen[id] = where{kind, i}
		}
	}
	for i, u := range t.Users {
		add("users", i, u.ID)
		if u.UserType != "" && u.UserType != "Member" && u.UserType != "Guest" {
			errs = append(errs, fmt.Errorf("users[%d] (%q): userType %q is neither Member nor Guest", i, u.ID, u.UserType))
		}
	}
	for i, g := range t.Groups {
		add("groups", i, g.ID)
	}
	for i, o := range t.Devices {
		add("devices", i, o.ID)
	}
	for i, o := range t.ServicePrincipals {
		add("servicePrincipals", i, o.ID)
	}
	for i, o := range t.OrgContacts {
		add("orgContacts", i, o.ID)
	}
	for i, g := range t.Groups {
		for j, m := range g.Members {
			if _, ok := seen[m]; !ok {
				errs = append(errs, fmt.Errorf("groups[%d] (%q): members[%d] %q is not the id of any object", i, g.DisplayName, j, m))
			}
		}
	}
	return errors.Join(errs...)
}

// Clone returns a deep copy, so a server's tenant can change without the
// caller's copy changing under it.
func (t *Tenant) Clone() *Tenant {
	c := &Tenant{
		Users:             slices.Clone(t.Users),
		Groups:            slices.Clone(t.Groups),
		Devices:           slices.Clone(t.Devices),
		ServicePrincipals: slices.Clone(t.ServicePrincipals),
		OrgContacts:       slices.Clone(t.OrgContacts),
	}
	for i := range c.Groups {
		c.Groups[i].GroupTypes = slices.Clone(c.Groups[i].GroupTypes)
		c.Groups[i].Members = slices.Clone(c.Groups[i].Members)
	}
	return c
}

// Group returns the group with the id, or nil.
func (t *Tenant) Group(id string) *Group {
	for i := range t.Groups {
		if t.Groups[i].ID == id {
			return &t.Groups[i]
		}
	}
	return nil
}

// TransitiveUsers returns the sorted ids of the users that are members of
// the group directly or through nested groups, following cycles once. It is
// computed from the tenant alone, independently of the server's indexes, so
// tests can check what a client read against it.
func (t *Tenant) TransitiveUsers(groupID string) []string {
	users := make(map[string]bool, len(t.Users))
	for _, u := range t.Users {
		users[u.ID] = true
	}
	members := make(map[string][]string, len(t.Groups))
	for _, g := range t.Groups {
		members[g.ID] = g.Members
	}
	found := map[string]bool{}
	visited := map[string]bool{groupID: true}
	queue := []string{groupID}
	for len(queue) > 0 {
		g := queue[0]
		queue = queue[1:]
		for _, m := range members[g] {
			if users[m] {
				found[m] = true
			} else if _, isGroup := members[m]; isGroup && !visited[m] {
				visited[m] = true
				queue = append(queue, m)
			}
		}
	}
	out := make([]string, 0, len(found))
	for id := range found {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// hasType reports whether a group's groupTypes hold the type, compared as
// Graph does, without regard to case.
func (g *Group) hasType(t string) bool {
	for _, gt := range g.GroupTypes {
		if strings.EqualFold(gt, t) {
			return true
		}
	}
	return false
}

// MoveMemberships changes fraction of the direct memberships, as a day of
// joiners and leavers would: half of them removed from random groups, as
// many random users added to random groups. seed makes it repeatable.
func (t *Tenant) MoveMemberships(fraction float64, seed uint64) {
	r := rand.New(rand.NewPCG(seed, seed))
	total := 0
	for _, g := range t.Groups {
		total += len(g.Members)
	}
	n := int(float64(total) * fraction / 2)
	for range n {
		g := &t.Groups[r.IntN(len(t.Groups))]
		if len(g.Members) > 0 {
			i := r.IntN(len(g.Members))
			g.Members = slices.Delete(g.Members, i, i+1)
		}
	}
	for range n {
		g := &t.Groups[r.IntN(len(t.Groups))]
		u := t.Users[r.IntN(len(t.Users))].ID
		if !slices.Contains(g.Members, u) {
			g.Members = append(g.Members, u)
		}
	}
}
