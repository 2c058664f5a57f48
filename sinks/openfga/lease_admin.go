package openfga

import (
	"context"
	"fmt"
	"time"

	gsync "github.com/groupsync/groupsync/sync"
)

// A run that dies without giving its lease back (killed, OpenFGA gone)
// blocks the next run of its instance until the lease expires
// (sync.lease.ttl). An operator who knows the run is dead can look at the
// lease and release it: `groupsync lease status|release`.

// LeaseState is the lease of one instance as OpenFGA holds it.
type LeaseState struct {
	Lease   string    `json:"lease"` // the lease object, e.g. groupsync_instance:entra
	Held    bool      `json:"held"`
	TakenAt time.Time `json:"taken_at,omitzero"` // OpenFGA's timestamp of the lease tuple
	Expires time.Time `json:"expires,omitzero"`  // TakenAt + sync.lease.ttl
	Expired bool      `json:"expired,omitempty"` // held, but past Expires: the next run takes it over
}

// Status reads the lease without touching it.
func (l *Lease) Status(ctx context.Context) (LeaseState, error) {
	st := LeaseState{Lease: l.key.Object}
	if l.own != nil {
		s, err := l.own.forRead(ctx)
		if err != nil || s == nil {
			return st, err // no registry store yet: no lease either
		}
		l.s = s
	}
	// Judged as Acquire judges it, by the server's clock: a host whose
	// clock runs ahead must not release a live lease without --force.
	at, ok, serverNow, err := l.readAt(ctx)
	if err != nil || !ok {
		return st, err
	}
	st.Held, st.TakenAt, st.Expires = true, at, at.Add(l.ttl)
	st.Expired = l.expired(at, serverNow)
	return st, nil
}

// Release deletes the lease tuple: at once when it has expired, and when
// it has not only with force (the operator says the holder is dead; a
// live holder then loses the lease at its next renewal and stops
// writing). It returns the state it found.
func (l *Lease) Release(ctx context.Context, force bool) (LeaseState, error) {
	st, err := l.Status(ctx)
	if err != nil || !st.Held {
		return st, err
	}
	if !st.Expired && !force {
		return st, fmt.Errorf("the lease %s was taken at %s and holds until %s: a run of this instance may be writing; release it with --force only if that run is dead",
			st.Lease, st.TakenAt.Format(time.RFC3339), st.Expires.Format(time.RFC3339))
	}
	if _, err := l.s.Apply(ctx, gsync.Changes{Deletes: []gsync.Tuple{l.key}}); err != nil {
		return st, fmt.Errorf("release the lease %s: %w", st.Lease, err)
	}
	return st, nil
}
