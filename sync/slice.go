package sync

import "context"

// A targeted reconcile runs the same engine on a slice of the tenant: some
// users, some groups. Events (webhooks, POST /sync/...) and `plan|apply
// --user/--group` use it so that one change reaches OpenFGA in seconds,
// while the scheduled full run stays the backstop that repairs anything an
// event missed.

// Slice names the users and groups a targeted run covers.
type Slice struct {
	// Users by the mapping's user key (as in "user:<key>") or by the
	// source's stable id.
	Users []string `json:"users,omitempty"`
	// Groups by display name or by the source's stable id.
	Groups []string `json:"groups,omitempty"`
}

// Empty reports whether the slice names nothing.
func (s Slice) Empty() bool { return len(s.Users) == 0 && len(s.Groups) == 0 }

// SliceSource is a source that can read a slice rather than the whole
// tenant. The snapshot it returns holds:
//   - for each named user: the user, and every group they belong to,
//     directly or through nesting, with the subgroup links between those
//     groups, each group listing (of the users) only the named users;
//   - for each named group: the group with its whole membership, its
//     subgroups (and theirs) with their members, as a full read would.
//
// Like Snapshot, it returns all of that or an error, never part of it. A
// user or group the source does not know is not an error: the snapshot
// then lacks it, and the run removes what OpenFGA holds for it (within the
// managed scope, through every guard).
type SliceSource interface {
	SnapshotSlice(ctx context.Context, s Slice) (*Snapshot, error)
}
