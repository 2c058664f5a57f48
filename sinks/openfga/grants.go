package openfga

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	fga "github.com/openfga/go-sdk"

	gsync "github.com/groupsync/groupsync/sync"
)

// Applications such as Incus grant access to a group's members rather than
// to users: "group:team-red#member viewer project:red". Such a group is in
// use even while it has no members yet, so target-driven mode must find it
// through the grants that refer to it, not only through its own tuples.

// maxGrantsPerObject bounds what is kept per group: the report shows a few
// grants as the reason a group is managed, not all of them.
const maxGrantsPerObject = 5

// grantTypes returns the types whose relations accept objectType#relation
// as a directly related user type, from the model, sorted. The membership
// relation itself (group.member accepting group#member, which is nesting)
// is not a grant.
func grantTypes(m fga.AuthorizationModel, objectType, relation string) []string {
	var out []string
	for _, td := range m.TypeDefinitions {
		meta := td.GetMetadata()
		for rel, md := range meta.GetRelations() {
			if td.Type == objectType && rel == relation {
				continue
			}
			for _, ref := range md.GetDirectlyRelatedUserTypes() {
				if ref.Type == objectType && ref.GetRelation() == relation {
					out = append(out, td.Type)
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Grants returns, for each of objects ("group:team-red"), up to a few
// tuples elsewhere in the store that grant something to its userset
// (object#relation). It sends one Read per object and granting type (the
// model says which types can hold such usersets; OpenFGA filters by user
// and object type), several in flight; objects nothing refers to are
// absent. A failed read fails the whole call.
func (s *Sink) Grants(ctx context.Context, objects []string, relation string) (map[string][]gsync.Tuple, error) {
	if len(objects) == 0 {
		return map[string][]gsync.Tuple{}, nil
	}
	objectType, _, ok := strings.Cut(objects[0], ":")
	if !ok || objectType == "" {
		return nil, fmt.Errorf("openfga: %q is not an object (type:id)", objects[0])
	}
	types := grantTypes(s.model, objectType, relation)
	out := map[string][]gsync.Tuple{}
	if len(types) == 0 {
		return out, nil
	}
	var mu sync.Mutex
	err := s.eachObject(ctx, objects, func(ctx context.Context, obj string) error {
		userset := obj + "#" + relation
		var found []gsync.Tuple
		for _, typ := range types {
			prefix := typ + ":"
			err := s.eachTuple(ctx, &fga.ReadRequestTupleKey{User: &userset, Object: &prefix}, func(t fga.Tuple) {
				if len(found) < maxGrantsPerObject {
					found = append(found, gsync.Tuple{User: t.Key.User, Relation: t.Key.Relation, Object: t.Key.Object})
				}
			})
			if err != nil {
				return fmt.Errorf("read the %s grants to %s: %w", typ, userset, err)
			}
			if len(found) >= maxGrantsPerObject {
				break
			}
		}
		if len(found) > 0 {
			gsync.SortTuples(found)
			mu.Lock()
			out[obj] = found
			mu.Unlock()
		}
		return nil
	})
	return out, err
}
