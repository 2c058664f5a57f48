package openfga

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	fga "github.com/openfga/go-sdk"

	"github.com/groupsync/groupsync/config"
	gsync "github.com/groupsync/groupsync/sync"
)

// Relations of the ownership type (sync.ownership.type, default
// groupsync_instance): "groupsync_instance:entra manages group:eng" is
// written as the tuple {user: group:eng, relation: manages, object:
// groupsync_instance:entra}, and the instance's lease as
// {user: groupsync_instance:entra, relation: lease, object: groupsync_instance:entra}.
const (
	RelationManages = "manages"
	RelationLease   = "lease"
)

// OwnershipDSL is the part of the model that the registry and the lease
// need, for ownership type typ and the managed objects' types: the
// groups', then those of {user} grant rules' objects.
func OwnershipDSL(typ string, objectTypes ...string) string {
	if len(objectTypes) == 0 {
		objectTypes = []string{typ} // the lease alone; a relation needs a type
	}
	return fmt.Sprintf(`type %[1]s
  relations
    define %[3]s: [%[2]s]
    define %[4]s: [%[1]s]
`, typ, strings.Join(objectTypes, ", "), RelationManages, RelationLease)
}

// Registry is the ownership registry kept in OpenFGA as marker tuples: no
// local state, so it works from a CronJob, and several instances (say
// Entra and LDAP) can share one store.
type Registry struct {
	s           *Sink     // the store the markers are in, or nil with own
	own         *ownStore // a registry store (sync.ownership.store)
	typ         string    // ownership type
	instance    string
	objectTypes []string // the managed objects' types: groups', and {user} grants'
}

// NewRegistry returns the registry of instance o.Instance for objects of
// objectTypes (the groups' type first).
func NewRegistry(s *Sink, o config.Ownership, objectTypes ...string) *Registry {
	return &Registry{s: s, typ: o.Type, instance: o.Instance, objectTypes: objectTypes}
}

func (r *Registry) Instance() string { return r.instance }

func (r *Registry) self() string { return r.typ + ":" + r.instance }

// Verify checks that the model has the ownership type and relations.
func (r *Registry) Verify(ctx context.Context) error {
	if r.own != nil {
		return nil // groupsync writes that store's model itself, before its first write
	}
	err := r.s.Verify(ctx, gsync.Scope{ObjectType: r.typ, Relation: RelationManages, UserTypes: r.objectTypes})
	if err == nil {
		err = r.s.Verify(ctx, gsync.Scope{ObjectType: r.typ, Relation: RelationLease, UserTypes: []string{r.typ}})
	}
	if err != nil {
		return fmt.Errorf("the ownership registry (sync.ownership.mode owned) needs its type in the model: set sync.ownership.store to keep it in a store of groupsync's own (best when an application writes this store's model), or merge it in with \"groupsync model write\": %w", err)
	}
	return nil
}

// Owned returns the objects this instance manages, sorted.
func (r *Registry) Owned(ctx context.Context) ([]string, error) {
	s, err := r.store(ctx, false)
	if s == nil || err != nil {
		return nil, err // no registry store yet: nothing is owned
	}
	self, rel := r.self(), RelationManages
	var out []string
	err = s.eachTuple(ctx, &fga.ReadRequestTupleKey{Object: &self, Relation: &rel}, func(t fga.Tuple) {
		if typ, _, _ := strings.Cut(t.Key.User, ":"); slices.Contains(r.objectTypes, typ) {
			out = append(out, t.Key.User)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("read the groups %s manages: %w", self, err)
	}
	slices.Sort(out)
	return out, nil
}

// Owners returns the other instances that manage each of objects, reading
// one object's markers per request, several in flight, unless the
// changelog shows that no marker was ever written.
func (r *Registry) Owners(ctx context.Context, objects []string) (map[string][]string, error) {
	return r.managers(ctx, objects, false)
}

// Managers returns the instances, this one included, that manage each of
// objects; objects nobody manages are absent. A targeted run reads the
// records of its few objects this way instead of all of this instance's.
func (r *Registry) Managers(ctx context.Context, objects []string) (map[string][]string, error) {
	return r.managers(ctx, objects, true)
}

func (r *Registry) managers(ctx context.Context, objects []string, self bool) (map[string][]string, error) {
	out := map[string][]string{}
	s, err := r.store(ctx, false)
	if s == nil || err != nil || len(objects) == 0 {
		return out, err
	}
	// A store where no instance ever wrote a marker (a first sync) has no
	// owner to find: one look at the changelog spares a read per object.
	// On any doubt, read them.
	if r.neverClaimed(ctx, s) {
		return out, nil
	}
	var mu sync.Mutex
	err = s.eachObject(ctx, objects, func(ctx context.Context, obj string) error {
		rel, typ := RelationManages, r.typ+":"
		var who []string
		err := s.eachTuple(ctx, &fga.ReadRequestTupleKey{User: &obj, Relation: &rel, Object: &typ}, func(t fga.Tuple) {
			if name := strings.TrimPrefix(t.Key.Object, typ); self || name != r.instance {
				who = append(who, name)
			}
		})
		if err != nil {
			return fmt.Errorf("read who manages %s: %w", obj, err)
		}
		if len(who) > 0 {
			slices.Sort(who)
			mu.Lock()
			out[obj] = who
			mu.Unlock()
		}
		return nil
	})
	return out, err
}

// Claim writes this instance's markers on objects (idempotent).
func (r *Registry) Claim(ctx context.Context, objects []string) error {
	s, err := r.store(ctx, true)
	if err != nil {
		return err
	}
	_, err = s.Apply(ctx, gsync.Changes{Adds: r.markers(objects)})
	return err
}

// Release deletes this instance's markers on objects (idempotent).
func (r *Registry) Release(ctx context.Context, objects []string) error {
	s, err := r.store(ctx, true)
	if err != nil {
		return err
	}
	_, err = s.Apply(ctx, gsync.Changes{Deletes: r.markers(objects)})
	return err
}

// store is where the markers are: the sink's store, or the registry
// store, which a read finds absent (nil) before the first write creates it.
func (r *Registry) store(ctx context.Context, write bool) (*Sink, error) {
	switch {
	case r.own == nil:
		return r.s, nil
	case write:
		return r.own.forWrite(ctx)
	}
	return r.own.forRead(ctx)
}

func (r *Registry) markers(objects []string) []gsync.Tuple {
	out := make([]gsync.Tuple, len(objects))
	for i, o := range objects {
		out[i] = gsync.Tuple{User: o, Relation: RelationManages, Object: r.self()}
	}
	return out
}

// Existing reports which of objects have at least one tuple (any
// relation), for the target-driven mode.
func (s *Sink) Existing(ctx context.Context, objects []string) (map[string]bool, error) {
	out := map[string]bool{}
	var mu sync.Mutex
	err := s.eachObject(ctx, objects, func(ctx context.Context, obj string) error {
		body := fga.ReadRequest{
			TupleKey:    &fga.ReadRequestTupleKey{Object: &obj},
			PageSize:    fga.PtrInt32(1),
			Consistency: fga.ToPtr(fga.CONSISTENCYPREFERENCE_HIGHER_CONSISTENCY),
		}
		resp, err := call(ctx, &s.conn, "Read", s.storeID, nil, func(ctx context.Context) (fga.ReadResponse, *http.Response, error) {
			return s.api.Read(ctx, s.storeID).Body(body).Execute()
		})
		if err != nil {
			return fmt.Errorf("read whether %s has tuples: %w", obj, err)
		}
		if len(resp.Tuples) > 0 {
			mu.Lock()
			out[obj] = true
			mu.Unlock()
		}
		return nil
	})
	return out, err
}

// eachObject runs f for every object, cfg.MaxParallelReads at a time; the
// first error stops the rest and is returned.
func (s *Sink) eachObject(ctx context.Context, objects []string, f func(context.Context, string) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(s.cfg.MaxParallelReads, len(objects)) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(objects) {
					return
				}
				if err := f(ctx, objects[i]); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// eachTuple pages through a Read and calls f for every tuple.
func (s *Sink) eachTuple(ctx context.Context, key *fga.ReadRequestTupleKey, f func(fga.Tuple)) error {
	body := fga.ReadRequest{
		TupleKey:    key,
		PageSize:    fga.PtrInt32(int32(s.cfg.ReadPageSize)),
		Consistency: fga.ToPtr(fga.CONSISTENCYPREFERENCE_HIGHER_CONSISTENCY),
	}
	token := ""
	for {
		if token != "" {
			body.ContinuationToken = fga.PtrString(token)
		}
		resp, err := call(ctx, &s.conn, "Read", s.storeID, nil, func(ctx context.Context) (fga.ReadResponse, *http.Response, error) {
			return s.api.Read(ctx, s.storeID).Body(body).Execute()
		})
		if err != nil {
			return err
		}
		for _, t := range resp.Tuples {
			f(t)
		}
		if resp.ContinuationToken == "" {
			return nil
		}
		if resp.ContinuationToken == token {
			return fmt.Errorf("openfga Read (store %s at %s): the server returned the same continuation token twice", s.storeID, s.target)
		}
		token = resp.ContinuationToken
	}
}
