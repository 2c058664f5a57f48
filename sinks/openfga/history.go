package openfga

import (
	"context"
	"fmt"
	"net/http"

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
// to s: every change of the ownership type there is a lease's. It pages
// through those changes, at most a few pages, and answers false whenever
// it cannot tell (a marker, too many changes, an error).
func (r *Registry) neverClaimed(ctx context.Context, s *Sink) bool {
	const pages, pageSize = 3, 100
	token := ""
	for range pages {
		resp, err := call(ctx, &s.conn, "ReadChanges", s.storeID, nil, func(ctx context.Context) (fga.ReadChangesResponse, *http.Response, error) {
			req := s.api.ReadChanges(ctx, s.storeID).Type_(r.typ).PageSize(pageSize)
			if token != "" {
				req = req.ContinuationToken(token)
			}
			return req.Execute()
		})
		if err != nil {
			return false
		}
		for _, c := range resp.Changes {
			if c.TupleKey.Relation != RelationLease {
				return false
			}
		}
		next := resp.GetContinuationToken()
		if len(resp.Changes) == 0 && (next == "" || next == token) {
			return true // the end of the changelog
		}
		if next == "" || next == token {
			return false // changes but no way on: cannot tell
		}
		token = next
	}
	return false
}

var _ gsync.TypeHistory = (*Sink)(nil)
