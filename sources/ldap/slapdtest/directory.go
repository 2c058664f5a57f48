package slapdtest

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"strings"

	goldap "github.com/go-ldap/ldap/v3"
)

// DefaultBaseDN is the suffix of the test directory.
const DefaultBaseDN = "dc=example,dc=org"

// Directory is the content loaded into the server before it starts.
//
// Users are inetOrgPerson entries at uid=<UID>,ou=people,<BaseDN>; groups
// are groupOfNames entries at cn=<CN>,ou=<OU or "groups">,<BaseDN>. Every
// entry gets an entryUUID derived from its DN, so ids are the same on every
// run (UUIDOf gives it). The organizational units and the read-only
// service account (cn=groupsync,ou=services) are created too.
type Directory struct {
	BaseDN string // DefaultBaseDN if empty
	Users  []User
	Groups []Group
	// Devices are "device" entries at cn=<name>,ou=devices: members that
	// are neither users nor groups.
	Devices []string
}

// User is one inetOrgPerson.
type User struct {
	UID  string // the RDN value and the uid attribute; required
	CN   string // defaults to UID
	Mail string
	// EmployeeType is free text; the default directory marks disabled
	// accounts with "disabled" (use users.disabled_filter:
	// "(employeeType=disabled)").
	EmployeeType string
}

// Group is one groupOfNames.
type Group struct {
	CN string // the RDN value, cn, and the display name; required
	OU string // the organizational unit under the base; "groups" if empty
	// Members are member DNs, written as given: UserDN and GroupDN build
	// them, and any other DN (outside the base, or of nothing) is allowed,
	// as in a real directory without referential integrity. groupOfNames
	// requires at least one.
	Members []string
}

func (d *Directory) base() string {
	if d.BaseDN == "" {
		return DefaultBaseDN
	}
	return d.BaseDN
}

// UserDN is the DN of the user with uid.
func (d *Directory) UserDN(uid string) string {
	return "uid=" + goldap.EscapeDN(uid) + ",ou=people," + d.base()
}

// GroupDN is the DN of the group with cn under ou=groups.
func (d *Directory) GroupDN(cn string) string { return d.GroupDNIn("groups", cn) }

// GroupDNIn is the DN of the group with cn under ou=<ou>.
func (d *Directory) GroupDNIn(ou, cn string) string {
	return "cn=" + goldap.EscapeDN(cn) + ",ou=" + goldap.EscapeDN(ou) + "," + d.base()
}

// DeviceDN is the DN of a device entry.
func (d *Directory) DeviceDN(name string) string {
	return "cn=" + goldap.EscapeDN(name) + ",ou=devices," + d.base()
}

// UUIDOf is the entryUUID the server holds for the entry with dn (as built
// by UserDN, GroupDN...): a name-based UUID of the DN in lower case.
func UUIDOf(dn string) string {
	h := sha1.Sum([]byte(strings.ToLower(dn)))
	h[6] = h[6]&0x0f | 0x50 // version 5
	h[8] = h[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// Validate checks what slapd would refuse, naming the entry.
func (d *Directory) Validate() error {
	var errs []error
	uids := map[string]bool{}
	for i, u := range d.Users {
		switch {
		case u.UID == "":
			errs = append(errs, fmt.Errorf("users[%d]: UID is required", i))
		case uids[strings.ToLower(u.UID)]:
			errs = append(errs, fmt.Errorf("users[%d]: uid %q is used twice", i, u.UID))
		}
		uids[strings.ToLower(u.UID)] = true
	}
	cns := map[string]bool{}
	for i, g := range d.Groups {
		dn := strings.ToLower(d.GroupDNIn(g.ou(), g.CN))
		switch {
		case g.CN == "":
			errs = append(errs, fmt.Errorf("groups[%d]: CN is required", i))
		case cns[dn]:
			errs = append(errs, fmt.Errorf("groups[%d]: %s is used twice", i, dn))
		case len(g.Members) == 0:
			errs = append(errs, fmt.Errorf("groups[%d] (%q): groupOfNames needs at least one member", i, g.CN))
		}
		cns[dn] = true
		for j, m := range g.Members {
			if _, err := goldap.ParseDN(m); err != nil || m == "" {
				errs = append(errs, fmt.Errorf("groups[%d] (%q): members[%d] %q is not a DN", i, g.CN, j, m))
			}
		}
	}
	return errors.Join(errs...)
}

func (g Group) ou() string {
	if g.OU == "" {
		return "groups"
	}
	return g.OU
}

// ldif renders the directory, the units and the service account.
func (d *Directory) ldif(bindDN, bindPassword string) string {
	var b strings.Builder
	base := d.base()
	first, _, _ := strings.Cut(base, ",")
	_, dc, _ := strings.Cut(first, "=")
	entry := func(dn string, lines ...string) {
		fmt.Fprintf(&b, "dn: %s\n", dn)
		for _, l := range lines {
			if l != "" {
				b.WriteString(l + "\n")
			}
		}
		fmt.Fprintf(&b, "entryUUID: %s\n\n", UUIDOf(dn))
	}
	entry(base, "objectClass: dcObject", "objectClass: organization", "dc: "+dc, "o: "+dc)
	ous := []string{"people", "groups", "services", "devices"}
	for _, g := range d.Groups {
		if o := g.ou(); !contains(ous, o) {
			ous = append(ous, o)
		}
	}
	for _, o := range ous {
		entry("ou="+goldap.EscapeDN(o)+","+base, "objectClass: organizationalUnit", "ou: "+o)
	}
	entry(bindDN, "objectClass: applicationProcess", "objectClass: simpleSecurityObject", "cn: groupsync", "userPassword: "+bindPassword)
	for _, u := range d.Users {
		cn := u.CN
		if cn == "" {
			cn = u.UID
		}
		entry(d.UserDN(u.UID), "objectClass: inetOrgPerson", "uid: "+u.UID, "cn: "+cn, "sn: "+cn,
			optional("mail", u.Mail), optional("employeeType", u.EmployeeType))
	}
	for _, g := range d.Groups {
		lines := []string{"objectClass: groupOfNames", "cn: " + g.CN}
		for _, m := range g.Members {
			lines = append(lines, "member: "+m)
		}
		entry(d.GroupDNIn(g.ou(), g.CN), lines...)
	}
	for _, name := range d.Devices {
		entry(d.DeviceDN(name), "objectClass: device", "cn: "+name)
	}
	return b.String()
}

func optional(attr, v string) string {
	if v == "" {
		return ""
	}
	return attr + ": " + v
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Generate builds the default directory: users user01..userNN (mail
// userNN@example.org; every seventh disabled with employeeType: disabled);
// "All Staff" with every user (more members than a page); a nesting chain
// with a cycle, Engineering ⊃ Platform ⊃ Infra ⊃ Engineering; "Lab" under
// ou=projects nested in Platform (outside a groups.base_dn of ou=groups);
// "Contractors" with a member outside the base DN, a member that does not
// exist, and a device.
func Generate(users int) *Directory {
	d := &Directory{Devices: []string{"printer-1"}}
	for i := 1; i <= users; i++ {
		u := User{UID: fmt.Sprintf("user%02d", i), CN: fmt.Sprintf("User %02d", i), Mail: fmt.Sprintf("user%02d@example.org", i)}
		if i%7 == 0 {
			u.EmployeeType = "disabled"
		}
		d.Users = append(d.Users, u)
	}
	uid := func(i int) string { return d.UserDN(fmt.Sprintf("user%02d", (i-1)%users+1)) }
	var all []string
	for i := 1; i <= users; i++ {
		all = append(all, uid(i))
	}
	d.Groups = []Group{
		{CN: "All Staff", Members: all},
		{CN: "Engineering", Members: []string{uid(1), uid(2), d.GroupDN("Platform")}},
		{CN: "Platform", Members: []string{uid(3), d.GroupDN("Infra"), d.GroupDNIn("projects", "Lab")}},
		{CN: "Infra", Members: []string{uid(4), uid(7), d.GroupDN("Engineering")}},
		{CN: "Lab", OU: "projects", Members: []string{uid(5)}},
		{CN: "Contractors", Members: []string{uid(6), "uid=partner,ou=people,dc=partner,dc=example", d.UserDN("ghost"), d.DeviceDN("printer-1")}},
	}
	return d
}
