package sync

// Why a group, user or membership was skipped: stable strings for reports,
// JSON and metrics.
const (
	ReasonSourceFiltered  = "source_filtered"   // the source's own group filter left the group out
	ReasonNotIncluded     = "not_included"      // group matched no include rule
	ReasonExcluded        = "excluded"          // group matched an exclude rule
	ReasonDefaultExcluded = "default_excluded"  // group is a built-in directory group
	ReasonInvalidObjectID = "invalid_object_id" // the group's key cannot be an OpenFGA object id
	ReasonDuplicateObject = "duplicate_object_id"
	ReasonDisabled        = "disabled"         // user account disabled and skip_disabled is on
	ReasonGuest           = "guest"            // guest user and skip_guests is on
	ReasonMissingKey      = "missing_user_key" // the user lacks the attribute the key is built from
	ReasonInvalidUserID   = "invalid_user_id"
	ReasonDuplicateUser   = "duplicate_user_id"
	ReasonUnknownMember   = "unknown_member"    // a group lists a member the snapshot does not have
	ReasonSelfMember      = "self_member"       // a group lists itself as a subgroup
	ReasonNotUserOrGroup  = "not_user_or_group" // a member that is a device, service principal, contact ...
	ReasonGroupVanished   = "group_vanished"    // a group deleted between listing and reading its members
	ReasonOwnedByOther    = "owned_by_other"    // another groupsync instance manages the group
	ReasonNotInTarget     = "not_in_target"     // target-driven: the group has no tuples in OpenFGA yet
	// ReasonNotYetManaged: a targeted run (owned mode) met a group this
	// instance does not own yet; it claims nothing, the next full run
	// claims it.
	ReasonNotYetManaged = "not_yet_managed"
)

// Why a grant was not planned, or a rule needs attention.
const (
	ReasonGrantInvalid       = "grant_invalid"        // an expanded template is not a valid OpenFGA tuple
	ReasonGrantTargetMissing = "grant_target_missing" // only_existing: the object has no tuples in OpenFGA
	ReasonGrantDuplicate     = "grant_duplicate"      // two rules produce the same tuple; written once
	ReasonGrantNoMatch       = "grant_rule_unmatched" // a rule matched no managed group
)

// Why a change was withheld. A change to a group the source names
// ambiguously is withheld with ReasonDuplicateObject or ReasonDuplicateUser.
const (
	ReasonPolicyAddOnly = "policy_add_only" // sync.policy add-only never deletes
	// ReasonAddsFailed withholds deletes after a failed add: deletes could
	// otherwise take access away before its replacement (a renamed group's
	// new tuples) exists. The next run retries both.
	ReasonAddsFailed = "adds_failed"
	// ReasonNoGroups withholds the deletes of a user the source lists in no
	// group at all (mapping.user.hold_without_groups), as applications that
	// sync at login do when a token carries no groups claim.
	ReasonNoGroups = "user_without_groups"
)

// Skip is a group, user or membership the mapping refused, and why.
type Skip struct {
	Kind   string `json:"kind"` // "group", "user" or "member"
	ID     string `json:"id"`
	Name   string `json:"name,omitempty"`
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

// filtered reports whether a skip is a plain filter decision (counted, not
// listed, in human formats) rather than a problem someone should look at.
func filtered(s Skip) bool {
	switch s.Reason {
	case ReasonNotInTarget, ReasonSourceFiltered, ReasonNotIncluded, ReasonExcluded, ReasonDefaultExcluded, ReasonDisabled, ReasonGuest, ReasonNotUserOrGroup:
		return true
	}
	return false
}
