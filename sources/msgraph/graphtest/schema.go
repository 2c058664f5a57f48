package graphtest

import "strings"

// propType is the OData type of a property, as far as filters care.
type propType uint8

const (
	pString  propType = iota // Edm.String
	pBool                    // Edm.Boolean
	pStrings                 // Collection(Edm.String)
	pOther                   // a date, a complex type: always null here
)

// prop is one property of an entity type. Properties the tenant does not
// model have nil accessors and are served as null (or [] for collections),
// as Graph serves an unset property.
type prop struct {
	name    string
	typ     propType
	str     func(ix *index, o int32) (string, bool) // false: null
	boolean func(ix *index, o int32) bool
	strs    func(ix *index, o int32) []string
}

// schema is the part of an entity type the fake knows.
type schema struct {
	kind kind
	// props in the order $select output uses.
	props  []*prop
	byName map[string]*prop // lower-cased name
	// defaults is what Graph returns without $select, in Graph's order;
	// all of props unless told otherwise.
	defaults []*prop
}

func newSchema(k kind, props []*prop, defaults ...string) *schema {
	s := &schema{kind: k, props: props, byName: map[string]*prop{}}
	for _, p := range props {
		s.byName[strings.ToLower(p.name)] = p
	}
	for _, d := range defaults {
		s.defaults = append(s.defaults, s.byName[strings.ToLower(d)])
	}
	if len(defaults) == 0 {
		s.defaults = s.props
	}
	return s
}

func nullProp(name string, t propType) *prop { return &prop{name: name, typ: t} }

func optString(s string) (string, bool) { return s, s != "" }

var schemas = [numKinds]*schema{
	kindUser: newSchema(kindUser, []*prop{
		{name: "id", typ: pString, str: func(ix *index, o int32) (string, bool) { return ix.user(o).ID, true }},
		{name: "accountEnabled", typ: pBool, boolean: func(ix *index, o int32) bool { return ix.user(o).AccountEnabled }},
		nullProp("businessPhones", pStrings),
		nullProp("companyName", pString),
		nullProp("createdDateTime", pOther),
		nullProp("creationType", pString),
		nullProp("department", pString),
		{name: "displayName", typ: pString, str: func(ix *index, o int32) (string, bool) { return optString(ix.user(o).DisplayName) }},
		nullProp("employeeId", pString),
		nullProp("externalUserState", pString),
		nullProp("givenName", pString),
		nullProp("jobTitle", pString),
		{name: "mail", typ: pString, str: func(ix *index, o int32) (string, bool) { return optString(ix.user(o).Mail) }},
		nullProp("mailNickname", pString),
		nullProp("mobilePhone", pString),
		nullProp("officeLocation", pString),
		nullProp("onPremisesImmutableId", pString),
		nullProp("onPremisesSyncEnabled", pOther),
		nullProp("otherMails", pStrings),
		nullProp("preferredLanguage", pString),
		nullProp("proxyAddresses", pStrings),
		nullProp("surname", pString),
		nullProp("usageLocation", pString),
		{name: "userPrincipalName", typ: pString, str: func(ix *index, o int32) (string, bool) { return optString(ix.user(o).UserPrincipalName) }},
		{name: "userType", typ: pString, str: func(ix *index, o int32) (string, bool) { return optString(ix.user(o).UserType) }},
	},
		// Graph's default set for users leaves out accountEnabled and
		// userType: a client that needs them must $select them.
		"businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
		"officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id"),

	kindGroup: newSchema(kindGroup, []*prop{
		{name: "id", typ: pString, str: func(ix *index, o int32) (string, bool) { return ix.group(o).ID, true }},
		nullProp("deletedDateTime", pOther),
		nullProp("classification", pString),
		nullProp("createdDateTime", pOther),
		nullProp("description", pString),
		{name: "displayName", typ: pString, str: func(ix *index, o int32) (string, bool) { return optString(ix.group(o).DisplayName) }},
		nullProp("expirationDateTime", pOther),
		{name: "groupTypes", typ: pStrings, strs: func(ix *index, o int32) []string { return ix.group(o).GroupTypes }},
		{name: "isAssignableToRole", typ: pBool, boolean: func(ix *index, o int32) bool { return ix.group(o).IsAssignableToRole }},
		nullProp("mail", pString),
		{name: "mailEnabled", typ: pBool, boolean: func(ix *index, o int32) bool { return ix.group(o).MailEnabled }},
		nullProp("mailNickname", pString),
		{name: "membershipRule", typ: pString, str: func(ix *index, o int32) (string, bool) {
			if g := ix.group(o); g.hasType("DynamicMembership") {
				return `(user.accountEnabled -eq true)`, true
			}
			return "", false
		}},
		{name: "membershipRuleProcessingState", typ: pString, str: func(ix *index, o int32) (string, bool) {
			if g := ix.group(o); g.hasType("DynamicMembership") {
				return "On", true
			}
			return "", false
		}},
		nullProp("onPremisesSyncEnabled", pOther),
		nullProp("proxyAddresses", pStrings),
		nullProp("renewedDateTime", pOther),
		{name: "securityEnabled", typ: pBool, boolean: func(ix *index, o int32) bool { return ix.group(o).SecurityEnabled }},
		nullProp("securityIdentifier", pString),
		nullProp("visibility", pString),
	}),

	kindDevice:           objectSchema(kindDevice, "accountEnabled", "deviceId", "operatingSystem"),
	kindServicePrincipal: objectSchema(kindServicePrincipal, "accountEnabled", "appId", "servicePrincipalType"),
	kindOrgContact:       objectSchema(kindOrgContact, "givenName", "mail", "surname"),
}

// objectSchema is the schema of a type the tenant only names.
func objectSchema(k kind, unmodeled ...string) *schema {
	props := []*prop{
		{name: "id", typ: pString, str: func(ix *index, o int32) (string, bool) { return ix.object(o).ID, true }},
		{name: "displayName", typ: pString, str: func(ix *index, o int32) (string, bool) { return optString(ix.object(o).DisplayName) }},
	}
	for _, n := range unmodeled {
		t := pString
		if n == "accountEnabled" {
			t = pBool
		}
		props = append(props, nullProp(n, t))
	}
	return newSchema(k, props)
}

// lookupProp finds a property of the kind by case-insensitive name.
func lookupProp(k kind, name string) *prop { return schemas[k].byName[strings.ToLower(name)] }
