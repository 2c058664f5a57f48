package openfga

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	fga "github.com/openfga/go-sdk"

	gsync "github.com/groupsync/groupsync/sync"
)

// changesPageSize is ReadChanges' largest page.
const changesPageSize = 100

// ChangesSince returns the changes of objectType after from, oldest first,
// and the position after them (gsync.ChangeLog). With no change after a
// time position, OpenFGA issues no token, and the time stays the position.
func (s *Sink) ChangesSince(ctx context.Context, objectType string, from gsync.ChangePosition, max int) ([]gsync.TupleChange, gsync.ChangePosition, error) {
	var out []gsync.TupleChange
	pos, err := s.eachChange(ctx, objectType, from, max, func(c fga.TupleChange) {
		out = append(out, gsync.TupleChange{
			Delete: c.Operation == fga.TUPLEOPERATION_DELETE,
			Tuple:  gsync.Tuple{User: c.TupleKey.User, Relation: c.TupleKey.Relation, Object: c.TupleKey.Object},
		})
	})
	if err != nil {
		return nil, from, fmt.Errorf("read the changes of %s tuples in store %s: %w", objectType, s.storeID, err)
	}
	return out, pos, nil
}

// eachChange pages through the changes of objectType after from and
// calls f for each; more than max (max > 0) is gsync.ErrTooManyChanges.
func (s *Sink) eachChange(ctx context.Context, objectType string, from gsync.ChangePosition, max int, f func(fga.TupleChange)) (gsync.ChangePosition, error) {
	pos, n := from, 0
	for {
		resp, err := call(ctx, &s.conn, "ReadChanges", s.storeID, nil, func(ctx context.Context) (fga.ReadChangesResponse, *http.Response, error) {
			req := s.api.ReadChanges(ctx, s.storeID).Type_(objectType).PageSize(changesPageSize)
			switch {
			case pos.Token != "":
				req = req.ContinuationToken(pos.Token)
			case !pos.Since.IsZero():
				req = req.StartTime(pos.Since)
			}
			return req.Execute()
		})
		if err != nil {
			return from, err
		}
		if n += len(resp.Changes); max > 0 && n > max {
			return from, gsync.ErrTooManyChanges
		}
		for _, c := range resp.Changes {
			f(c)
		}
		next := resp.GetContinuationToken()
		if next == "" || len(resp.Changes) < changesPageSize {
			if next != "" {
				pos = gsync.ChangePosition{Token: next}
			}
			return pos, nil
		}
		if next == pos.Token {
			return from, fmt.Errorf("openfga ReadChanges (store %s at %s): the server returned the same continuation token for a full page", s.storeID, s.target)
		}
		pos = gsync.ChangePosition{Token: next}
	}
}

// ChangesNow returns a position two seconds before the server's present,
// by the server's own clock (its Date header: whole seconds), so that no
// clock skew between groupsync and OpenFGA can hide a change; the changes
// of those two seconds are read again, which costs a read, never a write.
func (s *Sink) ChangesNow(ctx context.Context) (gsync.ChangePosition, error) {
	var now time.Time
	_, err := call(ctx, &s.conn, "ReadAuthorizationModels", s.storeID, nil, func(ctx context.Context) (fga.ReadAuthorizationModelsResponse, *http.Response, error) {
		v, hr, err := s.api.ReadAuthorizationModels(ctx, s.storeID).PageSize(1).Execute()
		now = serverTime(hr)
		return v, hr, err
	})
	if err != nil {
		return gsync.ChangePosition{}, err
	}
	if now.IsZero() {
		return gsync.ChangePosition{}, fmt.Errorf("openfga at %s sent no usable Date header, so the changelog cannot be read from its present", s.target)
	}
	return gsync.ChangePosition{Since: now.Add(-2 * time.Second).UTC()}, nil
}

// serverTime is the server's clock at an answer (its Date header, whole
// seconds, rounded down), or zero when there is no answer or no header.
func serverTime(hr *http.Response) time.Time {
	if hr == nil {
		return time.Time{}
	}
	t, err := http.ParseTime(hr.Header.Get("Date"))
	if err != nil {
		return time.Time{}
	}
	return t
}

// Fingerprint names the store and the model (gsync.ChangeLog).
func (s *Sink) Fingerprint() string { return s.storeID + "/" + s.modelID }

// OwnedChangesSince returns the changes to this instance's markers after
// from (gsync.OwnedChangeLog). A registry store that does not exist yet
// has none; one that existed at from and is gone is an error, since its
// markers went with it.
func (r *Registry) OwnedChangesSince(ctx context.Context, from gsync.ChangePosition, max int) ([]gsync.OwnedChange, gsync.ChangePosition, error) {
	s, err := r.store(ctx, false)
	if err != nil {
		return nil, from, err
	}
	if s == nil {
		if from.Token != "" {
			return nil, from, fmt.Errorf("the registry store %q (sync.ownership.store) is gone", r.own.cfg.StoreName)
		}
		return nil, from, nil
	}
	self := r.self()
	var out []gsync.OwnedChange
	pos, err := s.eachChange(ctx, r.typ, from, max, func(c fga.TupleChange) {
		k := c.TupleKey
		typ, _, _ := strings.Cut(k.User, ":")
		if k.Object == self && k.Relation == RelationManages && slices.Contains(r.objectTypes, typ) {
			out = append(out, gsync.OwnedChange{Object: k.User, Owned: c.Operation != fga.TUPLEOPERATION_DELETE})
		}
	})
	if err != nil {
		return nil, from, fmt.Errorf("read the changes of the ownership records of %s: %w", self, err)
	}
	return out, pos, nil
}

var (
	_ gsync.ChangeLog      = (*Sink)(nil)
	_ gsync.OwnedChangeLog = (*Registry)(nil)
)
