package sync

import "context"

// Source reads an identity provider. It returns a complete snapshot or an
// error, never a partial snapshot: a partial read must not turn into deletes.
type Source interface {
	Snapshot(ctx context.Context) (*Snapshot, error)
}

// Sink is where tuples live (OpenFGA). It knows nothing of identity providers.
type Sink interface {
	// Verify checks, before anything is read or written, that the target can
	// hold the scope's tuples (for OpenFGA: the model has the object type,
	// the relation, and each user type as a directly related type).
	Verify(ctx context.Context, scope Scope) error
	// Read returns every tuple inside scope. An error means the read is
	// incomplete and nothing may be planned from it.
	Read(ctx context.Context, scope Scope) ([]Tuple, error)
	// Apply writes adds, then deletes, in chunks and in parallel. Every write
	// is idempotent (a duplicate add or a missing delete is not an error), so
	// a failed run can simply be run again. The result accounts for every
	// tuple; err is non-nil when any tuple failed or ctx ended.
	Apply(ctx context.Context, changes Changes) (ApplyResult, error)
}

// Changes is what a sink is asked to write.
type Changes struct {
	Adds    []Tuple
	Deletes []Tuple
}

// ApplyResult accounts for each tuple of a Changes.
type ApplyResult struct {
	Added    int          `json:"added"`
	Deleted  int          `json:"deleted"`
	Failed   []TupleError `json:"failed,omitempty"`
	Requests int          `json:"write_requests"`
	// Warnings are what the sink noticed that the operator should change
	// (a setting the target refuses, worked around at a cost).
	Warnings []string `json:"warnings,omitempty"`
}

// TupleError is a tuple a sink could not write, with the reason.
type TupleError struct {
	Op    string `json:"op"` // "add" or "delete"
	Tuple Tuple  `json:"tuple"`
	Error string `json:"error"`
}

// Checker is a source or sink that can test its settings, credentials and
// permissions without reading everything (groupsync check).
type Checker interface {
	Check(ctx context.Context) []CheckResult
}

// CheckResult is one finding of a check. Err nil and Warning empty is a pass.
type CheckResult struct {
	What    string // what was checked, e.g. "token for https://graph.microsoft.com/.default"
	Err     error  // why it failed, and what to do
	Warning string // passed, but something will not work as configured
	Note    string // detail on a pass
}

// GroupReader is a sink that can hand over each object's tuples as its
// read completes (a Read of scope.Objects, object by object), so that the
// engine keeps them compactly instead of as one slice of every tuple: at
// a million tuples, 48 bytes each became the biggest thing a full run held.
type GroupReader interface {
	// ReadGroups reads every tuple inside scope, for each of scope.Objects
	// (which is not nil), and calls each with one object's tuples; calls
	// may come from several goroutines at once. An error means the read is
	// incomplete, as for Read.
	ReadGroups(ctx context.Context, scope Scope, each func(object string, tuples []Tuple)) error
}
