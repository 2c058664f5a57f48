package openfga

import (
	"context"
	"fmt"
	"net/http"
	"time"

	fga "github.com/openfga/go-sdk"

	gsync "github.com/groupsync/groupsync/sync"
)

// NeverWritten reports whether no tuple of objectType was ever written
// to the store (nor deleted from it), from one ReadChanges request of one
// change: OpenFGA's changelog keeps every write and delete, so a type with
// no change has no tuple. It answers true only when the server returns no
// change and no continuation token, which it does for a store or type that
// never had a change; a type whose tuples were all deleted still has
// changes, and answers false.
//
// The answer is exact on a server with the default
// --changelog-horizon-offset of 0. A positive offset hides the last
// minutes of changes, so a type first written within it would look never
// written (see the callers for what that costs).
func (s *Sink) NeverWritten(ctx context.Context, objectType string) (bool, error) {
	resp, err := call(ctx, &s.conn, "ReadChanges", s.storeID, nil, func(ctx context.Context) (fga.ReadChangesResponse, *http.Response, error) {
		return s.api.ReadChanges(ctx, s.storeID).Type_(objectType).PageSize(1).Execute()
	})
	if err != nil {
		return false, fmt.Errorf("read whether any %s tuple was ever written: %w", objectType, err)
	}
	return len(resp.Changes) == 0 && resp.GetContinuationToken() == "", nil
}

// neverClaimed reports whether no instance ever wrote an ownership marker
// to s: every change of the ownership type there is a lease's. It reads
// those changes, at most a few pages, and answers false whenever it cannot
// tell (a marker, too many changes, an error).
//
// A server with a positive --changelog-horizon-offset hides its latest
// changes, and another instance's fresh markers with them; two instances
// could then claim one group. So the answer is yes only when the
// changelog shows this instance's own lease written within the last
// half minute: the run's own write is visible, so the changelog is not
// behind. Without the lease (sync.lease off) there is no such proof, and
// the owners are read.
func (r *Registry) neverClaimed(ctx context.Context, s *Sink) bool {
	const maxChanges = 3 * changesPageSize
	self := r.self()
	marker, fresh := false, false
	_, err := s.eachChange(ctx, r.typ, gsync.ChangePosition{}, maxChanges, func(c fga.TupleChange) {
		if c.TupleKey.Relation != RelationLease {
			marker = true
		} else if c.TupleKey.Object == self && time.Since(c.Timestamp) < 30*time.Second {
			fresh = true
		}
	})
	// An error, a marker, or too many changes to read: cannot tell.
	return err == nil && !marker && fresh
}

var _ gsync.TypeHistory = (*Sink)(nil)
