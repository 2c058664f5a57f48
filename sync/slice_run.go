package sync

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/groupsync/groupsync/config"
)

// ReportSlice says what a targeted run covered: the names it was given and
// the OpenFGA users and objects they resolved to.
type ReportSlice struct {
	Users   []string `json:"users"`    // as given: user keys or source ids
	Groups  []string `json:"groups"`   // as given: names or source ids
	UserIDs []string `json:"user_ids"` // the OpenFGA users whose tuples were planned
	Objects []string `json:"objects"`  // the OpenFGA objects whose tuples were planned
	// Notes say what a targeted run leaves to the next full run.
	Notes []string `json:"notes,omitempty"`
}

// RunSlice is Run for a slice of the tenant: it reads only that slice from
// the source (which must be a SliceSource) and plans, guards and applies
// only the tuples of the slice's users and groups, inside the scope the
// ownership mode gives a full run. It claims and releases nothing: the
// next full run does. The report is a full run's, with Slice set.
func (e *Engine) RunSlice(ctx context.Context, s Slice, apply bool) (*Report, error) {
	var target *ReportSlice
	plan := func(ctx context.Context) (*Plan, error) {
		p, ts, err := e.PlanSlice(ctx, s)
		target = ts
		return p, err
	}
	rep, err := e.run(ctx, apply, plan, &s)
	if rep != nil {
		rep.Slice = target
	}
	return rep, err
}

// PlanSlice reads the slice s and returns its plan without writing
// anything, and what the slice resolved to.
func (e *Engine) PlanSlice(ctx context.Context, s Slice) (*Plan, *ReportSlice, error) {
	p, target, _, err := e.planSlice(ctx, s)
	return p, target, err
}

// planSlice is PlanSlice that also returns the slice snapshot it read, for
// Explain, which must not read the source a second time.
func (e *Engine) planSlice(ctx context.Context, s Slice) (*Plan, *ReportSlice, *Snapshot, error) {
	if s.Empty() {
		return nil, nil, nil, errors.New("a targeted run needs at least one user or group")
	}
	src, ok := e.Source.(SliceSource)
	if !ok {
		return nil, nil, nil, fmt.Errorf("this source (%T) cannot read single users or groups; run without --user/--group for a full run", e.Source)
	}
	if err := e.Sink.Verify(ctx, e.Mapper.WriteScope()); err != nil {
		return nil, nil, nil, err
	}
	if e.Registry != nil {
		if err := e.Registry.Verify(ctx); err != nil {
			return nil, nil, nil, err
		}
	}
	m := e.Mapper
	// The source knows nothing of OpenFGA types: it is asked for "alice"
	// when the run was given "user:alice".
	ask := Slice{Groups: s.Groups}
	for _, u := range s.Users {
		ask.Users = append(ask.Users, strings.TrimPrefix(u, m.cfg.User.Type+":"))
	}
	snap, err := src.SnapshotSlice(ctx, ask)
	if err != nil {
		// As for a full run: a failed read must never become deletes.
		return nil, nil, nil, fmt.Errorf("read source (slice %v): %w", ask, err)
	}
	d, err := m.Map(snap)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("map source: %w", err)
	}
	target := &ReportSlice{Users: nonNil(s.Users), Groups: nonNil(s.Groups),
		UserIDs: m.sliceUsers(snap, ask.Users), Objects: m.sliceObjects(snap, s.Groups)}
	e.logger().Debug("source slice read", zap.Strings("users", target.UserIDs), zap.Strings("objects", target.Objects),
		zap.Int("groups", len(snap.Groups)))

	wantU, wantO := setOf(target.UserIDs), setOf(target.Objects)
	d.Members.Filter(func(t Tuple) bool { return wantU[t.User] || wantO[t.Object] })
	inSlice := map[string]bool{}
	for t := range d.Members.All() {
		inSlice[t.Object] = true
	}
	d.Groups = slices.DeleteFunc(d.Groups, func(g ManagedGroup) bool { return !wantO[g.Object] && !inSlice[g.Object] })

	scope := m.Scope()
	var existing []Tuple
	if len(target.Objects) > 0 {
		read := scope
		read.Objects = target.Objects
		ts, err := e.Sink.Read(ctx, read)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("read OpenFGA: %w", err)
		}
		existing = append(existing, ts...)
	}
	if len(target.UserIDs) > 0 {
		// By user: OpenFGA reads a user's tuples on one object type.
		read := scope
		read.Users = target.UserIDs
		ts, err := e.Sink.Read(ctx, read)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("read OpenFGA: %w", err)
		}
		existing = append(existing, ts...)
	}
	managed, owned, err := e.sliceManaged(ctx, d, target, existing)
	if err != nil {
		return nil, nil, nil, err
	}
	// Never delete outside what a full run would manage.
	existing = slices.DeleteFunc(existing, func(t Tuple) bool {
		return !managed(t.Object) || !wantU[t.User] && !wantO[t.Object]
	})

	p := Diff(d, existing, scope)
	if len(d.Grants) > 0 {
		if err := e.planSliceGrants(ctx, p, d, target, managed, owned); err != nil {
			return nil, nil, nil, err
		}
	}
	applyPolicy(p, e.policy())
	if !e.Force {
		// The empty-source guard does not apply: a slice holding no group
		// or no membership is what a user who left every group, or a
		// deleted group, looks like. The delete guards do, counted over
		// the slice's tuples.
		p.Guard = checkGuards(p, e.Settings.Guards, false)
	}
	return p, target, snap, nil
}

// sliceUsers resolves the names of a slice's users to OpenFGA users: a
// user of the snapshot whose id or key is the name, else (a user the
// source does not have) the name itself as the key.
func (m *Mapper) sliceUsers(snap *Snapshot, names []string) []string {
	var out []string
	for _, n := range names {
		key := n
		if m.cfg.User.Lowercase {
			key = strings.ToLower(key)
		}
		key = m.cfg.User.Type + ":" + key
		found := false
		for _, u := range snap.Users {
			id := m.openfgaUser(u)
			if id != "" && (u.ID == n || id == key) {
				out = append(out, id)
				found = true
			}
		}
		// A name no OpenFGA user can have has no tuples to read or delete.
		if !found && idProblem(strings.TrimPrefix(key, m.cfg.User.Type+":")) == "" {
			out = append(out, key)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// openfgaUser is the OpenFGA user u maps to, even when the mapping skips u
// (disabled, a guest): those users' tuples are the ones to delete. Empty
// when u has no key.
func (m *Mapper) openfgaUser(u User) string {
	key, _ := m.userKey(u)
	if key == "" {
		return ""
	}
	if m.cfg.User.Lowercase {
		key = strings.ToLower(key)
	}
	return m.cfg.User.Type + ":" + key
}

// sliceObjects resolves the names of a slice's groups to OpenFGA objects:
// the object of each snapshot group whose id or name it is, filtered or
// not (a full run deletes a filtered group's tuples too), else the object
// the name would make (a group the source no longer has).
func (m *Mapper) sliceObjects(snap *Snapshot, names []string) []string {
	var out []string
	for _, n := range names {
		found := false
		for i := range snap.Groups {
			g := &snap.Groups[i]
			if g.ID != n && g.Name != n {
				continue
			}
			found = true
			if key, why := m.groupKey(g); why == "" {
				out = append(out, m.cfg.ObjectType+":"+key)
			}
		}
		if !found {
			if key, why := m.groupKey(&Group{ID: n, Name: n}); why == "" {
				out = append(out, m.cfg.ObjectType+":"+key)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// sliceManaged narrows d to the groups a targeted run may change, and
// returns the test for them and (owned mode) the registry's objects. It is
// the full run's scope without claims:
//   - authoritative: every object of the type;
//   - owned: the groups the registry records as this instance's; a
//     desired group it does not own yet is skipped (the next full run
//     claims it, or another instance owns it);
//   - target-driven: the desired groups already in use.
func (e *Engine) sliceManaged(ctx context.Context, d *Desired, target *ReportSlice, existing []Tuple) (func(string) bool, []string, error) {
	prefix := e.Mapper.cfg.ObjectType + ":"
	switch mode := e.mode(); mode {
	case config.OwnershipAuthoritative:
		return func(string) bool { return true }, nil, nil
	case config.OwnershipOwned:
		if e.Registry == nil {
			return nil, nil, fmt.Errorf("ownership mode owned needs a registry")
		}
		owned, others, err := e.sliceOwnership(ctx, d, existing)
		if err != nil {
			return nil, nil, fmt.Errorf("read ownership records: %w", err)
		}
		mine := setOf(owned)
		var unowned []string
		for _, g := range d.Groups {
			if !mine[g.Object] {
				unowned = append(unowned, g.Object)
			}
		}
		if others == nil {
			if others, err = e.Registry.Owners(ctx, unowned); err != nil {
				return nil, nil, fmt.Errorf("read ownership records: %w", err)
			}
		}
		byOther, notYet := map[string]string{}, map[string]string{}
		for _, obj := range unowned {
			if who := others[obj]; len(who) > 0 {
				byOther[obj] = fmt.Sprintf("managed by groupsync instance %s; this instance (%s) leaves it alone (exclude it here, or release it there)",
					strings.Join(who, ", "), e.Registry.Instance())
			} else {
				notYet[obj] = "this instance does not manage the group yet; a targeted run claims nothing, the next full run claims it"
			}
		}
		d.dropObjects(byOther, ReasonOwnedByOther)
		d.dropObjects(notYet, ReasonNotYetManaged)
		return func(obj string) bool { return !strings.HasPrefix(obj, prefix) || mine[obj] }, owned, nil
	case config.OwnershipTargetDriven:
		lister, ok := e.Sink.(TargetLister)
		if !ok {
			return nil, nil, fmt.Errorf("ownership mode target-driven is not supported by this sink")
		}
		objects := make([]string, 0, len(d.Groups))
		for _, g := range d.Groups {
			objects = append(objects, g.Object)
		}
		inUse := map[string]bool{}
		if len(objects) > 0 {
			exists, err := lister.Existing(ctx, objects)
			if err != nil {
				return nil, nil, fmt.Errorf("read OpenFGA: %w", err)
			}
			var absent []string
			for _, obj := range objects {
				if exists[obj] {
					inUse[obj] = true
				} else {
					absent = append(absent, obj)
				}
			}
			if finder, ok := e.Sink.(GrantFinder); ok && len(absent) > 0 {
				granted, err := finder.Grants(ctx, absent, e.Mapper.cfg.Relation)
				if err != nil {
					return nil, nil, fmt.Errorf("read OpenFGA: %w", err)
				}
				for obj, ts := range granted {
					if len(ts) > 0 {
						inUse[obj] = true
					}
				}
			}
		}
		missing := map[string]string{}
		for _, obj := range objects {
			if !inUse[obj] {
				missing[obj] = "has no tuples in OpenFGA and no grant names it; sync.ownership.mode target-driven only syncs groups that exist there"
			}
		}
		d.dropObjects(missing, ReasonNotInTarget)
		// Only groups the slice shows in the source: a user's tuples on
		// other groups may be a full run's to delete or not, which only
		// the whole source can tell.
		if len(target.UserIDs) > 0 {
			target.Notes = append(target.Notes, "target-driven: a user's tuples on groups the source does not list them in are left to the next full run")
		}
		return func(obj string) bool { return !strings.HasPrefix(obj, prefix) || inUse[obj] }, nil, nil
	default:
		return nil, nil, fmt.Errorf("sync.ownership.mode %q is not one of %v", mode, config.OwnershipModes)
	}
}

// maxSliceOwnershipReads bounds the objects whose ownership records a
// targeted run reads one by one; past it, it reads all of this instance's
// records (a request per 100), as a slice with grants always does.
const maxSliceOwnershipReads = 32

// sliceOwnership returns the objects this instance manages, as far as the
// slice needs them, and, when it read them object by object, who else
// manages each of the rest (nil otherwise: the caller asks Owners). An
// event's slice names a group or a user in a few groups: reading those
// objects' records costs a request or two, where all of the instance's
// records were a hundred requests at a 10k-group tenant. The slice's
// desired groups and the groups of the tuples it read are all that its
// plan touches; {user} grants' objects are not, so a slice with grants
// reads every record.
func (e *Engine) sliceOwnership(ctx context.Context, d *Desired, existing []Tuple) (owned []string, others map[string][]string, err error) {
	om, ok := e.Registry.(ObjectManagers)
	objects := map[string]bool{}
	for _, g := range d.Groups {
		objects[g.Object] = true
	}
	for _, t := range existing {
		objects[t.Object] = true
	}
	if !ok || len(d.Grants) > 0 || len(objects) > maxSliceOwnershipReads {
		owned, err = e.Registry.Owned(ctx)
		return owned, nil, err
	}
	managers, err := om.Managers(ctx, slices.Sorted(maps.Keys(objects)))
	if err != nil {
		return nil, nil, err
	}
	others = map[string][]string{}
	self := e.Registry.Instance()
	for obj, who := range managers {
		if slices.Contains(who, self) {
			owned = append(owned, obj)
		}
		if rest := slices.DeleteFunc(slices.Clone(who), func(w string) bool { return w == self }); len(rest) > 0 {
			others[obj] = rest
		}
	}
	slices.Sort(owned)
	return owned, others, nil
}

// planSliceGrants plans the grants of the slice: the userset grants naming
// its groups, and the {user} grants of its users. A {user} grant's object
// collects the members of every group its rule matches, so a group slice
// leaves {user} grants to the full run.
func (e *Engine) planSliceGrants(ctx context.Context, p *Plan, d *Desired, target *ReportSlice, managed func(string) bool, owned []string) error {
	wantU := setOf(target.UserIDs)
	var usersets []string
	for _, obj := range target.Objects {
		if managed(obj) {
			usersets = append(usersets, obj+"#"+e.Mapper.cfg.Relation)
		}
	}
	wantUS := setOf(usersets)
	userGrants := false
	for i := range d.Grants {
		set := &d.Grants[i]
		if err := e.Sink.Verify(ctx, set.Scope); err != nil {
			return fmt.Errorf("grant rule %s: %w", quoteAll(set.Rules), err)
		}
		scope := set.Scope
		var objectOK func(string) bool
		if set.Usersets {
			set.Tuples = slices.DeleteFunc(set.Tuples, func(t Tuple) bool { return !wantUS[t.User] })
			scope.Users = usersets
			objectOK = func(string) bool { return true }
		} else {
			userGrants = true
			set.Tuples = slices.DeleteFunc(set.Tuples, func(t Tuple) bool { return !wantU[t.User] })
			scope.Users = target.UserIDs
			switch e.mode() {
			case config.OwnershipAuthoritative:
				objectOK = func(string) bool { return true }
			case config.OwnershipOwned:
				mine := setOf(owned)
				objectOK = func(o string) bool { return mine[o] }
			default:
				// Target-driven: the objects a full run reads are those
				// any group's rules produce; the slice knows only its own.
				produced := map[string]bool{}
				for _, t := range set.Tuples {
					produced[t.Object] = true
				}
				objectOK = func(o string) bool { return produced[o] }
			}
			set.Tuples = slices.DeleteFunc(set.Tuples, func(t Tuple) bool {
				if objectOK(t.Object) {
					return false
				}
				d.Skipped = append(d.Skipped, Skip{Kind: "grant", ID: set.RuleOf[t], Reason: ReasonNotYetManaged,
					Detail: fmt.Sprintf("this instance does not manage %s yet; %s is left to the next full run", t.Object, t)})
				return true
			})
		}
		if err := e.keepExistingTargets(ctx, set, d); err != nil {
			return err
		}
		var existing []Tuple
		if len(scope.Users) > 0 {
			var err error
			if existing, err = e.Sink.Read(ctx, scope); err != nil {
				return fmt.Errorf("read OpenFGA (grant rule %s): %w", quoteAll(set.Rules), err)
			}
		}
		existing = slices.DeleteFunc(existing, func(t Tuple) bool { return !objectOK(t.Object) })
		gp := diffGrants(set.Tuples, d, existing, scope)
		p.Existing += gp.Existing
		p.Adds = append(p.Adds, gp.Adds...)
		p.Deletes = append(p.Deletes, gp.Deletes...)
		p.Withheld = append(p.Withheld, gp.Withheld...)
	}
	if userGrants && len(target.Objects) > 0 {
		target.Notes = append(target.Notes, "{user} grants of a group's members are planned by user (--user) or by the next full run, not by group")
	}
	SortTuples(p.Adds)
	SortTuples(p.Deletes)
	sortBy(p.Withheld, func(w Withheld) Tuple { return w.Tuple })
	return nil
}
