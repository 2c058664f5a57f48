package openfga

import (
	"context"
	"fmt"
	"slices"
	"strings"

	fga "github.com/openfga/go-sdk"

	gsync "github.com/groupsync/groupsync/sync"
)

// Verify checks that the authorization model can hold the scope's tuples:
// it has the type scope.ObjectType, a relation scope.Relation on it, and
// each of scope.UserTypes among that relation's directly related user types
// (without a condition, and not as a wildcard). The error names what is
// missing and the line to put in the model.
func (s *Sink) Verify(_ context.Context, scope gsync.Scope) error {
	if err := checkScope(scope); err != nil {
		return err
	}
	// The model was read in New; a model id names an immutable model.
	return verifyModel(s.model, s.storeID, scope)
}

func verifyModel(m fga.AuthorizationModel, storeID string, scope gsync.Scope) error {
	where := fmt.Sprintf("authorization model %s (store %s)", m.Id, storeID)
	want := "define " + scope.Relation + ": [" + strings.Join(scope.UserTypes, ", ") + "]"

	i := slices.IndexFunc(m.TypeDefinitions, func(td fga.TypeDefinition) bool { return td.Type == scope.ObjectType })
	if i < 0 {
		return fmt.Errorf("%s: there is no type %q; add it:\ntype %s\n  relations\n    %s", where, scope.ObjectType, scope.ObjectType, want)
	}
	td := m.TypeDefinitions[i]
	rewrite, ok := td.GetRelations()[scope.Relation]
	if !ok {
		return fmt.Errorf("%s: type %q has no relation %q; add it under the type's relations: %s", where, scope.ObjectType, scope.Relation, want)
	}

	var accepted []string // what the relation takes directly, in DSL
	meta := td.GetMetadata()
	if md, ok := meta.GetRelations()[scope.Relation]; ok {
		for _, ref := range md.GetDirectlyRelatedUserTypes() {
			accepted = append(accepted, refDSL(ref))
		}
	}
	var missing []string
	for _, ut := range scope.UserTypes {
		if !slices.Contains(accepted, ut) {
			missing = append(missing, ut)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	quoted := make([]string, len(missing))
	for i, ut := range missing {
		quoted[i] = fmt.Sprintf("%q", ut)
	}
	fix := "define " + scope.Relation + ": [" + strings.Join(append(slices.Clone(accepted), missing...), ", ") + "]"
	if rewrite.This == nil || rewrite.ComputedUserset != nil || rewrite.TupleToUserset != nil ||
		rewrite.Union != nil || rewrite.Intersection != nil || rewrite.Difference != nil {
		fix += " (keeping the rest of its definition)"
	}
	return fmt.Errorf("%s: relation %q on type %q does not accept %s; add %s: %s",
		where, scope.Relation, scope.ObjectType, strings.Join(quoted, ", "), plural(len(missing), "it", "them"), fix)
}

// refDSL writes a directly related user type as the DSL does: "user",
// "group#member", "user:*", "user with cond".
func refDSL(r fga.RelationReference) string {
	s := r.Type
	switch {
	case r.Wildcard != nil:
		s += ":*"
	case r.GetRelation() != "":
		s += "#" + r.GetRelation()
	}
	if c := r.GetCondition(); c != "" {
		s += " with " + c
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func checkScope(scope gsync.Scope) error {
	if scope.ObjectType == "" || scope.Relation == "" || len(scope.UserTypes) == 0 {
		return fmt.Errorf("openfga: the scope needs an object type, a relation and at least one user type, got %+v", scope)
	}
	return nil
}
