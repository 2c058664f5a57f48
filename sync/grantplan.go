package sync

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/groupsync/groupsync/config"
)

// planGrants diffs each grant set inside the scope that the ownership mode
// gives it, and merges the changes into p. The scope of a set is its
// (object type, relation, user type), narrowed by mode:
//   - userset grants ("group:team-red#member viewer project:red") belong to
//     their group: groupsync reads and may delete only those naming a group
//     it manages (authoritative mode: every group of the mapping's type);
//   - {user} grants ("user:alice operator server:prod") belong to their
//     object: groupsync reads the objects the rules produce and, in owned
//     mode, those its registry records, claiming and releasing them like
//     groups; authoritative mode reads every object of the type.
func (e *Engine) planGrants(ctx context.Context, p *Plan, d *Desired, managed managedScope, owned []string) error {
	mode := e.mode()
	groups := grantGroupsOf(mode, d, managed, owned, e.Mapper.cfg.ObjectType)
	for i := range d.Grants {
		set := &d.Grants[i]
		if err := e.Sink.Verify(ctx, set.Scope); err != nil {
			return fmt.Errorf("grant rule %s: %w", quoteAll(set.Rules), err)
		}
		if err := e.keepExistingTargets(ctx, set, d); err != nil {
			return err
		}
		scope := set.Scope
		switch {
		case mode == config.OwnershipAuthoritative:
			// Objects and Users nil: the whole type is the run's.
		case set.Usersets:
			scope.Users = make([]string, 0, len(groups))
			for _, g := range groups {
				scope.Users = append(scope.Users, g+"#"+e.Mapper.cfg.Relation)
			}
		default:
			objects, err := e.flatGrantObjects(ctx, set, d, mode, owned, p)
			if err != nil {
				return err
			}
			scope.Objects = objects
		}
		var existing []Tuple
		if scope.Objects == nil && scope.Users == nil || len(scope.Objects)+len(scope.Users) > 0 {
			var err error
			if existing, err = e.Sink.Read(ctx, scope); err != nil {
				return fmt.Errorf("read OpenFGA (grant rule %s): %w", quoteAll(set.Rules), err)
			}
		}
		gp := diffGrants(set.Tuples, d, existing, scope)
		p.Existing += gp.Existing
		p.Adds = append(p.Adds, gp.Adds...)
		p.Deletes = append(p.Deletes, gp.Deletes...)
		p.Withheld = append(p.Withheld, gp.Withheld...)
	}
	SortTuples(p.Adds)
	SortTuples(p.Deletes)
	sortBy(p.Withheld, func(w Withheld) Tuple { return w.Tuple })
	slices.Sort(p.Claims)
	slices.Sort(p.Releases)
	return nil
}

// grantGroupsOf is the groups whose userset grants the run manages: the
// groups it manages, and in owned mode those it is releasing too, so that
// a group leaving the source loses its grants with its members.
func grantGroupsOf(mode config.OwnershipMode, d *Desired, managed managedScope, owned []string, objectType string) []string {
	var out []string
	for _, g := range d.Groups {
		out = append(out, g.Object)
	}
	if mode == config.OwnershipOwned {
		for _, o := range owned {
			if strings.HasPrefix(o, objectType+":") {
				out = append(out, o)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// keepExistingTargets drops the tuples only_existing rules want on objects
// that have no tuples in OpenFGA, reporting each.
func (e *Engine) keepExistingTargets(ctx context.Context, set *GrantSet, d *Desired) error {
	if len(set.NeedExisting) == 0 {
		return nil
	}
	lister, ok := e.Sink.(TargetLister)
	if !ok {
		return fmt.Errorf("grant rule %s: only_existing is not supported by this sink", quoteAll(set.Rules))
	}
	objects := make([]string, 0, len(set.NeedExisting))
	for o := range set.NeedExisting {
		objects = append(objects, o)
	}
	slices.Sort(objects)
	exists, err := lister.Existing(ctx, objects)
	if err != nil {
		return fmt.Errorf("read OpenFGA (grant rule %s): %w", quoteAll(set.Rules), err)
	}
	set.Tuples = slices.DeleteFunc(set.Tuples, func(t Tuple) bool {
		rule := set.RuleOf[t]
		if exists[t.Object] || !slices.Contains(set.NeedExisting[t.Object], rule) {
			return false
		}
		d.Skipped = append(d.Skipped, Skip{Kind: "grant", ID: rule, Reason: ReasonGrantTargetMissing,
			Detail: fmt.Sprintf("rule %q (only_existing): %s has no tuples in OpenFGA, so %s is not written", rule, t.Object, t)})
		return true
	})
	return nil
}

// flatGrantObjects is the objects a {user} grant set may change. In owned
// mode these are the objects its rules produce that no other instance
// manages (claimed in the plan), and the ones the registry records for
// this instance that the rules no longer produce (released once emptied).
func (e *Engine) flatGrantObjects(ctx context.Context, set *GrantSet, d *Desired, mode config.OwnershipMode, owned []string, p *Plan) ([]string, error) {
	var produced []string
	for _, t := range set.Tuples {
		produced = append(produced, t.Object)
	}
	slices.Sort(produced)
	produced = slices.Compact(produced)
	if mode != config.OwnershipOwned {
		return produced, nil
	}
	prefix := set.Scope.ObjectType + ":"
	mine := map[string]bool{}
	var ownedHere []string
	for _, o := range owned {
		if strings.HasPrefix(o, prefix) {
			mine[o] = true
			ownedHere = append(ownedHere, o)
		}
	}
	var unclaimed []string
	for _, o := range produced {
		if !mine[o] {
			unclaimed = append(unclaimed, o)
		}
	}
	others, err := e.Registry.Owners(ctx, unclaimed)
	if err != nil {
		return nil, fmt.Errorf("read ownership records: %w", err)
	}
	set.Tuples = slices.DeleteFunc(set.Tuples, func(t Tuple) bool {
		who := others[t.Object]
		if len(who) == 0 {
			return false
		}
		d.Skipped = append(d.Skipped, Skip{Kind: "grant", ID: set.RuleOf[t], Reason: ReasonOwnedByOther,
			Detail: fmt.Sprintf("%s is managed by groupsync instance %s; %s is not written", t.Object, strings.Join(who, ", "), t)})
		return true
	})
	objects := slices.Clone(ownedHere)
	for _, o := range unclaimed {
		if len(others[o]) == 0 {
			p.Claims = append(p.Claims, o)
			objects = append(objects, o)
		}
	}
	wanted := map[string]bool{}
	for _, t := range set.Tuples {
		wanted[t.Object] = true
	}
	for _, o := range ownedHere {
		if !wanted[o] && !slices.Contains(p.Releases, o) {
			p.Releases = append(p.Releases, o)
		}
	}
	slices.Sort(objects)
	return slices.Compact(objects), nil
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
