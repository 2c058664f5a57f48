package openfga

import (
	"context"
	"fmt"
	"slices"
	"sync"

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

	var mu sync.Mutex
	var out []gsync.Tuple
	if err := s.ReadGroups(ctx, scope, func(_ string, ts []gsync.Tuple) {
		mu.Lock()
		defer mu.Unlock()
		out = append(out, ts...)
	}); err != nil {
		return nil, err
	}
	gsync.SortTuples(out)
	return out, nil
}

// ReadGroups reads as Read does for scope.Objects, several objects in
// flight, and hands over each object's tuples as soon as they are read
// (gsync.GroupReader).
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
	in := &interner{}
	err := s.eachObject(ctx, objects, func(ctx context.Context, object string) error {
		key := &fga.ReadRequestTupleKey{Object: &object, Relation: &scope.Relation}
		ts, err := s.readPages(ctx, key, scope, in)
		if err != nil {
			return fmt.Errorf("read the %q tuples of %s: %w", scope.Relation, object, err)
		}
		each(object, ts)
		return nil
	})
	if perr := ctx.Err(); perr != nil {
		return fmt.Errorf("openfga Read (store %s at %s): %w", s.storeID, s.target, perr)
	}
	return err
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
