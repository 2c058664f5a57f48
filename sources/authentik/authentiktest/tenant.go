package authentiktest

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Tenant is the authentik instance the server answers from: users and
// groups as authentik stores them. A group's Parents make it a child: in
// authentik the members of a child group are effective members of its
// parents ("Members of children groups are effective members of the parent
// group").
type Tenant struct {
	Users  []User
	Groups []Group
}

// User is an authentik user (core.User).
type User struct {
	PK       int    // required, unique, positive
	Username string // required, unique
	Name     string
	Email    string
	// Inactive is the inverse of is_active: authentik's way to disable an
	// account without deleting it.
	Inactive bool
	// Type is internal (the default), external, service_account or
	// internal_service_account.
	Type       string
	Path       string         // "users" if empty
	Attributes map[string]any // free-form JSON
}

// Group is an authentik group (core.Group).
type Group struct {
	PK          string // a UUID; derived from Name when empty
	Name        string // required, unique
	IsSuperuser bool
	Users       []int    // pks of the direct members
	Parents     []string // PKs (or, when PK is derived, Names) of the parent groups
	Attributes  map[string]any
}

// UID is the user's uid as authentik computes it (a SHA-256 hex digest of
// the install id and the pk); it is also the default OIDC subject.
func UID(pk int) string {
	h := sha256.Sum256(fmt.Appendf(nil, "authentiktest-install-%d", pk))
	return hex.EncodeToString(h[:])
}

// UserUUID is the user's uuid field.
func UserUUID(pk int) string { return nameUUID(fmt.Sprintf("user-%d", pk)) }

// GroupPK is the pk a group gets from its name when Group.PK is empty.
func GroupPK(name string) string { return nameUUID("group-" + name) }

func nameUUID(s string) string {
	h := sha1.Sum([]byte(s))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// userTypes are authentik's UserTypeEnum.
var userTypes = []string{"internal", "external", "service_account", "internal_service_account"}

// normalize fills defaults and resolves parent names to pks, on a copy.
func (t *Tenant) normalize() (*Tenant, error) {
	c := t.Clone()
	var errs []error
	pks := map[int]bool{}
	names := map[string]bool{}
	for i := range c.Users {
		u := &c.Users[i]
		if u.Type == "" {
			u.Type = "internal"
		}
		if u.Path == "" {
			u.Path = "users"
		}
		switch {
		case u.PK <= 0:
			errs = append(errs, fmt.Errorf("users[%d] (%q): pk must be positive", i, u.Username))
		case pks[u.PK]:
			errs = append(errs, fmt.Errorf("users[%d]: pk %d is used twice", i, u.PK))
		}
		switch {
		case u.Username == "":
			errs = append(errs, fmt.Errorf("users[%d] (pk %d): username is required", i, u.PK))
		case names[u.Username]:
			errs = append(errs, fmt.Errorf("users[%d]: username %q is used twice", i, u.Username))
		}
		if !slices.Contains(userTypes, u.Type) {
			errs = append(errs, fmt.Errorf("users[%d] (%q): type %q is not one of %v", i, u.Username, u.Type, userTypes))
		}
		pks[u.PK], names[u.Username] = true, true
	}
	byName := map[string]string{}
	gpks := map[string]bool{}
	for i := range c.Groups {
		g := &c.Groups[i]
		if g.PK == "" {
			g.PK = GroupPK(g.Name)
		}
		switch {
		case g.Name == "":
			errs = append(errs, fmt.Errorf("groups[%d]: name is required", i))
		case byName[g.Name] != "":
			errs = append(errs, fmt.Errorf("groups[%d]: name %q is used twice (authentik group names are unique)", i, g.Name))
		case gpks[g.PK]:
			errs = append(errs, fmt.Errorf("groups[%d] (%q): pk %s is used twice", i, g.Name, g.PK))
		}
		byName[g.Name], gpks[g.PK] = g.PK, true
	}
	for i := range c.Groups {
		g := &c.Groups[i]
		for j, p := range g.Parents {
			if pk, ok := byName[p]; ok && !gpks[p] {
				g.Parents[j] = pk
			} else if !gpks[p] {
				errs = append(errs, fmt.Errorf("groups[%d] (%q): parents[%d] %q is neither the pk nor the name of a group", i, g.Name, j, p))
			}
			if g.Parents[j] == g.PK {
				errs = append(errs, fmt.Errorf("groups[%d] (%q): a group cannot be its own parent", i, g.Name))
			}
		}
		for j, u := range g.Users {
			if !pks[u] {
				errs = append(errs, fmt.Errorf("groups[%d] (%q): users[%d] %d is not the pk of a user", i, g.Name, j, u))
			}
		}
	}
	return c, errors.Join(errs...)
}

// Clone returns a deep copy.
func (t *Tenant) Clone() *Tenant {
	c := &Tenant{Users: slices.Clone(t.Users), Groups: slices.Clone(t.Groups)}
	for i := range c.Users {
		c.Users[i].Attributes = maps.Clone(c.Users[i].Attributes)
	}
	for i := range c.Groups {
		g := &c.Groups[i]
		g.Users, g.Parents, g.Attributes = slices.Clone(g.Users), slices.Clone(g.Parents), maps.Clone(g.Attributes)
	}
	return c
}
