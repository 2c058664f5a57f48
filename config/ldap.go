package config

import (
	"net/url"
	"strings"
	"time"
)

// LDAP reads groups from an LDAP directory: Active Directory or OpenLDAP
// (and others that speak LDAPv3 with groupOfNames-style groups).
type LDAP struct {
	// URL of the server: ldaps://dc1.corp.example:636, or ldap://host:389
	// with start_tls. Plain ldap:// without StartTLS is refused for any host
	// but loopback: the bind password would cross the network in clear.
	URL      string `yaml:"url"`
	StartTLS bool   `yaml:"start_tls"`
	// CAFile is a PEM bundle of the CAs that sign the server's certificate;
	// empty uses the system's roots.
	CAFile string `yaml:"ca_file"`
	// ServerName overrides the name checked in the server's certificate
	// (when the URL uses an IP address or an alias).
	ServerName string `yaml:"server_name"`
	// InsecureSkipTLSVerify accepts any certificate: for a first test only.
	InsecureSkipTLSVerify bool `yaml:"insecure_skip_tls_verify"`

	// BindDN and BindPassword authenticate with a simple bind; both empty
	// binds anonymously.
	BindDN           string `yaml:"bind_dn"`
	BindPassword     Secret `yaml:"bind_password"`
	BindPasswordFile string `yaml:"bind_password_file"`

	// Flavor picks the defaults below: "ad" (Active Directory) or
	// "openldap". Required.
	Flavor string `yaml:"flavor"`
	// BaseDN bounds the read: members whose DN is outside it are reported,
	// never looked up.
	BaseDN string     `yaml:"base_dn"`
	Users  LDAPUsers  `yaml:"users"`
	Groups LDAPGroups `yaml:"groups"`
	// Membership: "direct" reads each group's member attribute (subgroups
	// become nesting the mapping resolves); "in_chain" asks Active Directory
	// for each group's transitive users with the matching rule
	// LDAP_MATCHING_RULE_IN_CHAIN (1.2.840.113556.1.4.1941).
	Membership string `yaml:"membership"`

	PageSize       int      `yaml:"page_size"`       // entries per page (RFC 2696 paged results)
	RequestTimeout Duration `yaml:"request_timeout"` // per LDAP operation
	MaxRetries     int      `yaml:"max_retries"`     // whole reads retried after a dropped connection or a busy server
}

// LDAPUsers says where users are and which attributes they carry. Empty
// fields take the flavor's default (LDAPDefaults).
type LDAPUsers struct {
	BaseDN        string `yaml:"base_dn"` // default: source.ldap.base_dn
	Filter        string `yaml:"filter"`
	IDAttribute   string `yaml:"id_attribute"`   // stable id: objectGUID, objectSid, entryUUID, or any single-valued attribute
	UPNAttribute  string `yaml:"upn_attribute"`  // becomes the user's upn (mapping.user.key: upn)
	MailAttribute string `yaml:"mail_attribute"` // becomes the user's mail
	// Attributes are read into the user's attributes, for
	// mapping.user.key: attribute:<name>.
	Attributes []string `yaml:"attributes"`
	// DisabledFilter marks users matching it as disabled (e.g.
	// "(pwdAccountLockedTime=*)" or "(nsAccountLock=TRUE)"). On Active
	// Directory the ACCOUNTDISABLE bit of userAccountControl always counts.
	DisabledFilter string `yaml:"disabled_filter"`
	// GuestFilter marks users matching it as guests (mapping.user.skip_guests).
	GuestFilter string `yaml:"guest_filter"`
}

// LDAPGroups says where groups are. Empty fields take the flavor's default.
type LDAPGroups struct {
	BaseDN          string `yaml:"base_dn"` // default: source.ldap.base_dn
	Filter          string `yaml:"filter"`
	NameAttribute   string `yaml:"name_attribute"`   // the display name the mapping keys on
	MemberAttribute string `yaml:"member_attribute"` // DN-valued: member or uniqueMember
	IDAttribute     string `yaml:"id_attribute"`     // default: users.id_attribute
}

// LDAPDefaults are the settings each flavor implies for the fields left
// empty.
var LDAPDefaults = map[string]LDAP{
	"ad": {
		Users: LDAPUsers{
			Filter:        "(&(objectCategory=person)(objectClass=user))",
			IDAttribute:   "objectGUID",
			UPNAttribute:  "userPrincipalName",
			MailAttribute: "mail",
			Attributes:    []string{"sAMAccountName"},
		},
		Groups: LDAPGroups{
			Filter:          "(objectClass=group)",
			NameAttribute:   "cn",
			MemberAttribute: "member",
		},
	},
	"openldap": {
		Users: LDAPUsers{
			Filter:        "(objectClass=inetOrgPerson)",
			IDAttribute:   "entryUUID",
			UPNAttribute:  "uid",
			MailAttribute: "mail",
		},
		Groups: LDAPGroups{
			Filter:          "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))",
			NameAttribute:   "cn",
			MemberAttribute: "member",
		},
	},
}

func defaultLDAP() LDAP {
	return LDAP{
		Membership:     "direct",
		PageSize:       500,
		RequestTimeout: Duration(60 * time.Second),
		MaxRetries:     2,
	}
}

// Effective returns the settings with the flavor's defaults filled in for
// every empty field, and the base DNs of users and groups defaulted to
// base_dn.
func (l LDAP) Effective() LDAP {
	d := LDAPDefaults[l.Flavor]
	or := func(v *string, def string) {
		if *v == "" {
			*v = def
		}
	}
	u, g := &l.Users, &l.Groups
	or(&u.BaseDN, l.BaseDN)
	or(&u.Filter, d.Users.Filter)
	or(&u.IDAttribute, d.Users.IDAttribute)
	or(&u.UPNAttribute, d.Users.UPNAttribute)
	or(&u.MailAttribute, d.Users.MailAttribute)
	if u.Attributes == nil {
		u.Attributes = append([]string(nil), d.Users.Attributes...)
	}
	or(&g.BaseDN, l.BaseDN)
	or(&g.Filter, d.Groups.Filter)
	or(&g.NameAttribute, d.Groups.NameAttribute)
	or(&g.MemberAttribute, d.Groups.MemberAttribute)
	or(&g.IDAttribute, u.IDAttribute)
	return l
}

func (l LDAP) validate(add func(field, format string, args ...any)) {
	const p = "source.ldap."
	u, err := url.Parse(l.URL)
	switch {
	case l.URL == "":
		add(p+"url", "is required, e.g. ldaps://dc1.corp.example:636 or ldap://ldap.example.org:389 with start_tls: true")
	case err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "":
		add(p+"url", "%q is not an ldap:// or ldaps:// URL with a host", l.URL)
	case u.Path != "" && u.Path != "/":
		add(p+"url", "%q has a path; put the DN in source.ldap.base_dn", l.URL)
	case u.Scheme == "ldaps" && l.StartTLS:
		add(p+"start_tls", "is for ldap:// URLs; ldaps:// is TLS from the first byte")
	case u.Scheme == "ldap" && !l.StartTLS && !IsLoopback(u.Hostname()):
		add(p+"url", "%q would send the bind password in clear text; use ldaps:// or set source.ldap.start_tls: true", l.URL)
	}
	if l.InsecureSkipTLSVerify && l.CAFile != "" {
		add(p+"insecure_skip_tls_verify", "is set together with ca_file; with ca_file the certificate can be verified, so drop insecure_skip_tls_verify")
	}
	switch {
	case l.BindDN == "" && l.BindPassword != "":
		add(p+"bind_dn", "is required when bind_password is set: the DN to bind as, e.g. CN=groupsync,OU=Service Accounts,DC=corp,DC=example")
	case l.BindDN != "" && l.BindPassword == "":
		add(p+"bind_password", "is required with bind_dn; set GROUPSYNC_SOURCE_LDAP_BIND_PASSWORD or source.ldap.bind_password_file")
	case l.BindDN != "" && !looksLikeDN(l.BindDN) && !strings.Contains(l.BindDN, "@") && !strings.Contains(l.BindDN, `\`):
		add(p+"bind_dn", "%q is not a DN (e.g. cn=groupsync,ou=services,dc=example,dc=org) nor, for Active Directory, user@domain or DOMAIN\\user", l.BindDN)
	}
	if _, ok := LDAPDefaults[l.Flavor]; !ok {
		add(p+"flavor", "%q is not one of ad, openldap; it chooses the default filters and attributes", l.Flavor)
	}
	dn := func(field, v string, required bool) {
		switch {
		case v == "" && required:
			add(p+field, "is required: the DN under which users and groups are read, e.g. dc=example,dc=org")
		case v != "" && !looksLikeDN(v):
			add(p+field, "%q is not a DN, e.g. dc=example,dc=org", v)
		}
	}
	dn("base_dn", l.BaseDN, true)
	dn("users.base_dn", l.Users.BaseDN, false)
	dn("groups.base_dn", l.Groups.BaseDN, false)
	for _, f := range []struct{ field, v string }{
		{"users.filter", l.Users.Filter}, {"users.disabled_filter", l.Users.DisabledFilter},
		{"users.guest_filter", l.Users.GuestFilter}, {"groups.filter", l.Groups.Filter},
	} {
		if f.v != "" && !balancedFilter(f.v) {
			add(p+f.field, "%q is not an LDAP filter: it must be in parentheses, with balanced parentheses, e.g. (objectClass=user)", f.v)
		}
	}
	for _, f := range []struct{ field, v string }{
		{"users.id_attribute", l.Users.IDAttribute}, {"users.upn_attribute", l.Users.UPNAttribute},
		{"users.mail_attribute", l.Users.MailAttribute}, {"groups.name_attribute", l.Groups.NameAttribute},
		{"groups.member_attribute", l.Groups.MemberAttribute}, {"groups.id_attribute", l.Groups.IDAttribute},
	} {
		if f.v != "" && !attributeName(f.v) {
			add(p+f.field, "%q is not an attribute name (letters, digits and '-', starting with a letter)", f.v)
		}
	}
	for i, a := range l.Users.Attributes {
		if !attributeName(a) {
			add(p+"users.attributes", "[%d] %q is not an attribute name", i, a)
		}
	}
	switch m := strings.ToLower(l.Groups.MemberAttribute); m {
	case "", "member", "uniquemember":
	case "memberuid":
		add(p+"groups.member_attribute", "memberUid holds user names, not DNs, and is not supported; use groupOfNames groups (member) or uniqueMember")
	default:
		// Another DN-valued attribute is fine.
	}
	switch l.Membership {
	case "direct":
	case "in_chain":
		if l.Flavor != "ad" {
			add(p+"membership", "in_chain uses a matching rule only Active Directory has; set flavor: ad or use membership: direct")
		}
	default:
		add(p+"membership", "%q is not one of direct, in_chain", l.Membership)
	}
	if l.PageSize < 1 || l.PageSize > 100000 {
		add(p+"page_size", "must be between 1 and 100000 (Active Directory's MaxPageSize is 1000 by default); got %d", l.PageSize)
	}
	if l.RequestTimeout <= 0 {
		add(p+"request_timeout", "must be positive, e.g. 60s")
	}
	if l.MaxRetries < 0 || l.MaxRetries > 10 {
		add(p+"max_retries", "must be between 0 and 10; got %d", l.MaxRetries)
	}
}

// looksLikeDN is a light syntax check; the source parses DNs fully.
func looksLikeDN(s string) bool {
	first, _, _ := strings.Cut(s, ",")
	k, v, ok := strings.Cut(first, "=")
	return ok && attributeName(strings.TrimSpace(k)) && strings.TrimSpace(v) != ""
}

func attributeName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '-'):
		case r >= '0' && r <= '9' || r == '.': // numeric OIDs
		default:
			return false
		}
	}
	return true
}

func balancedFilter(f string) bool {
	if !strings.HasPrefix(f, "(") || !strings.HasSuffix(f, ")") {
		return false
	}
	depth := 0
	escaped := false
	for _, r := range f {
		switch {
		case escaped:
			escaped = false
		case r == '\\':
			escaped = true
		case r == '(':
			depth++
		case r == ')':
			depth--
			if depth < 0 {
				return false
			}
		}
	}
	return depth == 0
}
