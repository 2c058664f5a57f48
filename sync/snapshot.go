package sync

// Snapshot is everything a source read from the identity provider at one
// moment. It knows nothing of OpenFGA: groups and users keep the IdP's stable
// ids, and the mapping decides what they become.
type Snapshot struct {
	Groups []Group
	Users  []User
	// Skipped is what the source itself left out (member types that are
	// neither users nor groups, groups that vanished mid-read ...), for the
	// report.
	Skipped []Skip
}

// Group is one IdP group with its direct members.
type Group struct {
	ID     string   // stable id (Entra object id, LDAP objectGUID, ...)
	Name   string   // display name; not necessarily unique
	Users  []string // ids of direct user members
	Groups []string // ids of direct subgroup members
	// NotSynced, when set, says why the source read this group only for its
	// members' sake (it is a subgroup of a synced group but outside the
	// source's own group filter): it gets no tuples of its own, but its
	// members still count for the groups that contain it.
	NotSynced string
}

// User is one IdP user.
type User struct {
	ID         string            // stable id
	UPN        string            // userPrincipalName, or the source's login name
	Mail       string            // primary e-mail
	Attributes map[string]string // anything else a mapping may key on
	Disabled   bool
	Guest      bool
}
