package sync

import (
	"context"
	"errors"
	"time"
)

// ChangePosition is a place in a target's changelog: a continuation token
// the target issued, or, before it issued one (no change since), a time
// by the target's own clock.
type ChangePosition struct {
	Token string    `json:"token,omitempty"`
	Since time.Time `json:"since,omitzero"`
}

// IsZero reports whether p names no place: a read from it would start at
// the beginning of the changelog.
func (p ChangePosition) IsZero() bool { return p.Token == "" && p.Since.IsZero() }

// TupleChange is one write or delete a changelog records.
type TupleChange struct {
	Delete bool
	Tuple  Tuple
}

// OwnedChange is one change to an instance's ownership records: Object is
// owned after it, or no longer.
type OwnedChange struct {
	Object string
	Owned  bool
}

// ErrTooManyChanges is returned by a changelog read that found more
// changes than it was allowed to read: reading the scope is cheaper then.
var ErrTooManyChanges = errors.New("more changes than the read may take")

// ChangeLog is a sink whose changelog lists every write and delete of an
// object type, in order (OpenFGA's ReadChanges). Incremental runs use it
// to read only the groups someone changed since the last run.
type ChangeLog interface {
	// ChangesSince returns the changes of objectType after from, oldest
	// first, and the position after the last of them. More than max
	// changes (max > 0) is ErrTooManyChanges. A position the target no
	// longer accepts (another store, a pruned changelog) is an error.
	ChangesSince(ctx context.Context, objectType string, from ChangePosition, max int) ([]TupleChange, ChangePosition, error)
	// ChangesNow returns a position shortly before the target's present,
	// by the target's clock: a read from it later sees every change made
	// after this call, and perhaps a few made just before.
	ChangesNow(ctx context.Context) (ChangePosition, error)
	// Fingerprint names the store and the model the sink writes with; a
	// state kept for another store or model is not used.
	Fingerprint() string
}

// OwnedChangeLog is a registry whose records' changes can be replayed
// onto the owned objects a run kept, instead of reading them all.
type OwnedChangeLog interface {
	// OwnedChangesSince returns the changes to this instance's ownership
	// records after from, oldest first, and the position after them; max
	// and errors as ChangeLog.ChangesSince.
	// A time position is the sink's clock's (ChangeLog.ChangesNow): the
	// registry lives on the sink's server.
	OwnedChangesSince(ctx context.Context, from ChangePosition, max int) ([]OwnedChange, ChangePosition, error)
}

// StateStore keeps one blob between runs (state.Store is one).
type StateStore interface {
	Load(ctx context.Context) ([]byte, error)
	Save(ctx context.Context, data []byte) error
	String() string
}
