package sync

import (
	"context"
	"errors"
	"time"
)

// Registry records, in the target itself, which groups this instance
// manages, so that a stateless run (a CronJob) can tell its groups from
// those of people, other tools and other groupsync instances. Like
// external-dns's TXT registry, it is what bounds deletes.
type Registry interface {
	// Verify checks, before anything is read or written, that the target
	// can hold the registry's records (and the lease's).
	Verify(ctx context.Context) error
	// Instance is this instance's name, for reports.
	Instance() string
	// Owned returns the objects ("group:eng") this instance manages.
	Owned(ctx context.Context) ([]string, error)
	// Owners returns the other instances that manage each of objects;
	// objects nobody else manages are absent.
	Owners(ctx context.Context, objects []string) (map[string][]string, error)
	// Claim records objects as managed by this instance; Release forgets
	// them. Both are idempotent.
	Claim(ctx context.Context, objects []string) error
	Release(ctx context.Context, objects []string) error
}

// ObjectManagers is a Registry that reads who manages given objects, this
// instance included (objects nobody manages are absent), so that a
// targeted run reads the records of its few objects rather than every
// record of this instance.
type ObjectManagers interface {
	Managers(ctx context.Context, objects []string) (map[string][]string, error)
}

// Lease keeps two runs of one instance from writing at the same time.
type Lease interface {
	// Acquire takes the lease, waiting up to wait for a busy one. The
	// returned context ends when ctx does or when the lease is lost (it
	// could not be renewed), so writes stop; release gives it back.
	Acquire(ctx context.Context, wait time.Duration) (leased context.Context, release func(), err error)
}

// ErrLeaseBusy is returned when another run holds the lease.
var ErrLeaseBusy = errors.New("another run of this groupsync instance holds the lease")

// TargetLister is a sink that can tell which objects already have tuples,
// for the target-driven mode.
type TargetLister interface {
	Existing(ctx context.Context, objects []string) (map[string]bool, error)
}

// GrantFinder is a sink that can find the grants that name groups'
// usersets ("group:team-red#member viewer project:red"), for the
// target-driven mode: an application's grant to a group puts the group in
// use even before it has members.
type GrantFinder interface {
	Grants(ctx context.Context, objects []string, relation string) (map[string][]Tuple, error)
}

// TypeHistory is a sink that can tell, cheaply and exactly, that no tuple
// of an object type was ever written to it (OpenFGA: its changelog has no
// change of that type). Owned mode uses it to skip reading the groups it
// is about to claim in a store that never held such a tuple. NeverWritten
// answers true only when it is certain; false (or an error) means tuples
// may exist, and they are read as before.
type TypeHistory interface {
	NeverWritten(ctx context.Context, objectType string) (bool, error)
}
