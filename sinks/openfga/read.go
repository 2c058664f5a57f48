package openfga

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	fga "github.com/openfga/go-sdk"

	gsync "github.com/groupsync/groupsync/sync"
)

// Read returns every tuple inside scope, sorted. With scope.Objects nil it
// pages through the whole store (OpenFGA cannot filter by type alone) and
// keeps what scope.Contains; otherwise it reads each object's scope.Relation
// tuples, cfg.MaxParallelReads objects at a time. Reads ask for
// HIGHER_CONSISTENCY. Any failed page fails the whole Read: it never returns
// part of the scope.
func (s *Sink) Read(ctx context.Context, scope gsync.Scope) ([]gsync.Tuple, error) {
	if err := checkScope(scope); err != nil {
		return nil, err
	}
	if scope.Objects == nil && scope.Users != nil {
		return s.readByUsers(ctx, scope)
	}
	if scope.Objects == nil {
		out, err := s.readPages(ctx, nil, scope, &interner{})
		if err != nil {
			return nil, fmt.Errorf("read every tuple of the store to find type %q: %w", scope.ObjectType, err)
		}
		gsync.SortTuples(out)
		return out, nil
	}

	objects := slices.Clone(scope.Objects)
	slices.Sort(objects)
	objects = slices.Compact(objects)
	results := make([][]gsync.Tuple, len(objects))
	if err := s.readObjects(ctx, scope, objects, func(i int, ts []gsync.Tuple) { results[i] = ts }); err != nil {
		return nil, err
	}
	var out []gsync.Tuple
	for _, ts := range results {
		out = append(out, ts...)
	}
	gsync.SortTuples(out)
	return out, nil
}

// ReadGroups reads as Read does for scope.Objects, and hands over each
// object's tuples as soon as they are read (gsync.GroupReader).
func (s *Sink) ReadGroups(ctx context.Context, scope gsync.Scope, each func(object string, tuples []gsync.Tuple)) error {
	if err := checkScope(scope); err != nil {
		return err
	}
	if scope.Objects == nil {
		return fmt.Errorf("openfga ReadGroups: no objects given")
	}
	objects := slices.Clone(scope.Objects)
	slices.Sort(objects)
	objects = slices.Compact(objects)
	return s.readObjects(ctx, scope, objects, func(i int, ts []gsync.Tuple) { each(objects[i], ts) })
}

// readObjects reads each object's tuples inside scope, several objects in
// flight, and calls got with the object's index and its tuples.
func (s *Sink) readObjects(ctx context.Context, scope gsync.Scope, objects []string, got func(i int, ts []gsync.Tuple)) error {
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	in := &interner{}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(s.cfg.MaxParallelReads, len(objects)) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(objects) {
					return
				}
				key := &fga.ReadRequestTupleKey{Object: &objects[i], Relation: &scope.Relation}
				ts, err := s.readPages(ctx, key, scope, in)
				if err != nil {
					cancel(fmt.Errorf("read the %q tuples of %s: %w", scope.Relation, objects[i], err))
					return
				}
				got(i, ts)
			}
		})
	}
	wg.Wait()
	if err := parent.Err(); err != nil {
		return fmt.Errorf("openfga Read (store %s at %s): %w", s.storeID, s.target, err)
	}
	return context.Cause(ctx)
}

// readByUsers reads, for each of scope.Users, its tuples of scope.Relation
// on objects of scope.ObjectType, several users in flight.
func (s *Sink) readByUsers(ctx context.Context, scope gsync.Scope) ([]gsync.Tuple, error) {
	users := slices.Clone(scope.Users)
	slices.Sort(users)
	users = slices.Compact(users)
	in := &interner{}
	var mu sync.Mutex
	var out []gsync.Tuple
	err := s.eachObject(ctx, users, func(ctx context.Context, user string) error {
		prefix := scope.ObjectType + ":"
		key := &fga.ReadRequestTupleKey{User: &user, Relation: &scope.Relation, Object: &prefix}
		ts, err := s.readPages(ctx, key, scope, in)
		if err != nil {
			return fmt.Errorf("read the %q tuples of %s on %s objects: %w", scope.Relation, user, scope.ObjectType, err)
		}
		mu.Lock()
		out = append(out, ts...)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	gsync.SortTuples(out)
	return out, nil
}

// readPages follows continuation tokens to the end and keeps the tuples in
// scope. key nil reads the whole store.
func (s *Sink) readPages(ctx context.Context, key *fga.ReadRequestTupleKey, scope gsync.Scope, in *interner) ([]gsync.Tuple, error) {
	var out []gsync.Tuple
	err := s.eachTuple(ctx, key, func(t fga.Tuple) {
		tu := gsync.Tuple{User: t.Key.User, Relation: t.Key.Relation, Object: t.Key.Object}
		if scope.Contains(tu) {
			tu.Relation = scope.Relation
			tu.User, tu.Object = in.intern(tu.User), in.intern(tu.Object)
			out = append(out, tu)
		}
	})
	return out, err
}

// interner makes equal strings share one copy: a million tuples name the
// same few thousand groups and hundred thousand users over and over, and
// each decoded JSON string is otherwise its own allocation.
type interner struct {
	mu sync.Mutex
	m  map[string]string
}

func (in *interner) intern(s string) string {
	in.mu.Lock()
	defer in.mu.Unlock()
	if v, ok := in.m[s]; ok {
		return v
	}
	if in.m == nil {
		in.m = map[string]string{}
	}
	in.m[s] = s
	return s
}
