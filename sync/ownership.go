package sync

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/groupsync/groupsync/config"
)

// scoper bounds a run to the groups its ownership mode lets it manage:
// which tuples are read as the run's own, and so which may be deleted.
type scoper interface {
	// readBefore reads what does not depend on the source, while the
	// source is read.
	readBefore(ctx context.Context, scope Scope) earlyRead
	// narrow drops the desired groups the run may not manage from d and
	// returns what it manages, given what readBefore read.
	narrow(ctx context.Context, scope Scope, d *Desired, early earlyRead) (managedScope, error)
}

// earlyRead is what a scoper reads from the target before the source is
// read.
type earlyRead struct {
	owned []string // owned mode: the objects the registry records
	read  []string // owned mode: the groups whose tuples were read
	// existing are the tuples read, held compactly.
	existing Memberships
	scoper   scoper // the scoper that read it, to narrow with
	err      error
}

// managedScope is what a run may change: the scope to diff in, the
// tuples read inside it, and (owned mode) the objects it starts and stops
// managing.
type managedScope struct {
	scope    Scope
	existing Memberships
	claims   []string
	releases []string
	// grantedBy (target-driven mode) names, for each group kept only
	// because an application grants something to it, a few such grants.
	grantedBy map[string][]Tuple
	// known (incremental runs) are the managed groups not read: neither
	// side changed them, so their tuples are the desired ones.
	known map[string]bool
}

// newScoper returns mode's scoper. A registry is needed for owned mode
// only; log (nil logs nothing) gets the scoper's debug messages.
// tr (nil: off) is the run's incremental reading of the target.
func newScoper(mode config.OwnershipMode, sink Sink, registry Registry, tr *targetRun, log *zap.Logger) (scoper, error) {
	if log == nil {
		log = zap.NewNop()
	}
	switch mode {
	case config.OwnershipOwned:
		return ownedScoper{sink: sink, registry: registry, inc: tr, log: log}, nil
	case config.OwnershipAuthoritative:
		return authoritativeScoper{sink: sink}, nil
	case config.OwnershipTargetDriven:
		return targetDrivenScoper{sink: sink}, nil
	}
	// Config validation refuses other modes; an engine built around it
	// must not guess, as every guess could delete what is not its own.
	return nil, fmt.Errorf("sync.ownership.mode %q is not one of %v", mode, config.OwnershipModes)
}

// authoritativeScoper owns the whole managed scope of the store.
type authoritativeScoper struct{ sink Sink }

func (a authoritativeScoper) readBefore(ctx context.Context, scope Scope) earlyRead {
	return readScope(ctx, a.sink, scope)
}

func (authoritativeScoper) narrow(_ context.Context, scope Scope, _ *Desired, early earlyRead) (managedScope, error) {
	return managedScope{scope: scope, existing: early.existing}, nil
}

// ownedScoper manages the groups the registry records as this instance's:
// it claims the desired groups no other instance manages and releases the
// owned ones no longer desired.
type ownedScoper struct {
	sink     Sink
	registry Registry
	inc      *targetRun // incremental reading; nil or full reads every owned group
	log      *zap.Logger
}

func (o ownedScoper) readBefore(ctx context.Context, scope Scope) earlyRead {
	if o.registry == nil {
		return earlyRead{err: fmt.Errorf("ownership mode owned needs a registry")}
	}
	var owned []string
	if o.inc.incremental() {
		owned = o.inc.owned
	} else {
		var err error
		if owned, err = o.registry.Owned(ctx); err != nil {
			return earlyRead{err: fmt.Errorf("read ownership records: %w", err)}
		}
		if o.inc != nil {
			o.inc.owned = owned
		}
	}
	// The registry also records the objects of {user} grant rules; the
	// membership read wants the groups only.
	groups := ownedGroups(owned, scope.ObjectType)
	if o.inc.incremental() {
		// Before the source is read, the groups someone changed, and those
		// the state does not know, are already known to need a read.
		groups = slices.DeleteFunc(groups, func(obj string) bool {
			_, ok := o.inc.prev.Groups[obj]
			return ok && !o.inc.dirty[obj]
		})
	}
	if len(groups) == 0 {
		return earlyRead{owned: owned}
	}
	scope.Objects = groups
	r := readScope(ctx, o.sink, scope)
	r.owned = owned
	r.read = groups
	return r
}

func (o ownedScoper) narrow(ctx context.Context, scope Scope, d *Desired, early earlyRead) (managedScope, error) {
	groups := ownedGroups(early.owned, scope.ObjectType)
	claims, releases, err := o.claimsAndReleases(ctx, d, groups)
	if err != nil {
		return managedScope{}, err
	}
	var more []Tuple                  // incremental: the few groups the state lacked, read now
	var fromState map[string][]string // incremental: groups' users as the state knows them
	var known map[string]bool
	if o.inc.incremental() {
		var err error
		if more, fromState, known, err = o.readChanged(ctx, scope, d, groups, early.read); err != nil {
			return managedScope{}, err
		}
	} else if o.inc != nil {
		o.inc.read.GroupsRead = len(groups)
	}
	// Groups about to be claimed may already hold tuples (written by hand
	// before groupsync managed them): read those too, unless no tuple of
	// the type was ever written (a first sync into an empty store).
	var claimed Memberships
	if len(claims) > 0 && !o.neverWritten(ctx, scope.ObjectType, early.existing.Len() > 0) {
		s := scope
		s.Objects = claims
		r := readScope(ctx, o.sink, s) // group by group: adopting a populated store claims every group
		if r.err != nil {
			return managedScope{}, r.err
		}
		claimed = r.existing
	}
	return managedScope{scope: scope, existing: existingOf(scope, more, fromState, early.existing, claimed), claims: claims, releases: releases, known: known}, nil
}

// readChanged (incremental runs) settles the owned groups not read before
// the source: a group whose desired tuples are the state's is known (not
// read, nothing to change); one whose desired tuples changed, or that is
// no longer desired, has the state's tuples in OpenFGA, since nobody else
// changed it (readBefore read those someone did, and those the state does
// not know): they are returned as existing, unread, each group's users as
// the state has them.
func (o ownedScoper) readChanged(ctx context.Context, scope Scope, d *Desired, owned, early []string) ([]Tuple, map[string][]string, map[string]bool, error) {
	desired := groupTuples(d, scope)
	o.inc.desired = desired
	read := setOf(early)
	known := map[string]bool{}
	var missed []Tuple
	unread := map[string][]string{}
	var missing []string
	fromState := 0
	for _, obj := range owned {
		ts, isDesired := desired[obj]
		switch {
		case read[obj]:
		case !o.inc.stored(obj):
			missing = append(missing, obj) // not expected: readBefore read these
		case isDesired && o.inc.prev.sameUsers(obj, ts):
			known[obj] = true
		default:
			unread[obj] = o.inc.prev.users(obj)
			fromState++
		}
	}
	o.inc.read.GroupsRead, o.inc.read.GroupsKnown, o.inc.read.GroupsFromState = len(early)+len(missing), len(known), fromState
	if len(missing) > 0 {
		s := scope
		s.Objects = missing
		var err error
		if missed, err = o.sink.Read(ctx, s); err != nil {
			return nil, nil, nil, fmt.Errorf("read OpenFGA: %w", err)
		}
	}
	return missed, unread, known, nil
}

// neverWritten reports whether the sink is certain that no tuple of
// objectType was ever written; known (tuples of it were read) skips the
// question. Any doubt or error answers false, so the groups are read.
func (o ownedScoper) neverWritten(ctx context.Context, objectType string, known bool) bool {
	h, ok := o.sink.(TypeHistory)
	if !ok || known {
		return false
	}
	never, err := h.NeverWritten(ctx, objectType)
	if err != nil {
		o.log.Debug("could not tell whether the store ever held tuples of the type; reading the groups to claim", zap.String("type", objectType), zap.Error(err))
		return false
	}
	if never {
		o.log.Debug("no tuple of the type was ever written; the groups to claim have none to read", zap.String("type", objectType))
	}
	return never
}

// claimsAndReleases drops desired groups that another instance owns, and
// says which groups to claim (desired, not yet owned, so not read yet) and
// release (owned, no longer desired).
func (o ownedScoper) claimsAndReleases(ctx context.Context, d *Desired, owned []string) (claims, releases []string, err error) {
	mine := setOf(owned)
	var unclaimed []string
	for _, g := range d.Groups {
		if !mine[g.Object] {
			unclaimed = append(unclaimed, g.Object)
		}
	}
	owners, err := o.registry.Owners(ctx, unclaimed)
	if err != nil {
		return nil, nil, fmt.Errorf("read ownership records: %w", err)
	}
	taken := map[string]string{}
	for obj, who := range owners {
		taken[obj] = fmt.Sprintf("managed by groupsync instance %s; this instance (%s) leaves it alone (exclude it here, or release it there)",
			strings.Join(who, ", "), o.registry.Instance())
	}
	d.dropObjects(taken, ReasonOwnedByOther)
	wanted := map[string]bool{}
	for _, g := range d.Groups {
		wanted[g.Object] = true
		if !mine[g.Object] {
			claims = append(claims, g.Object)
		}
	}
	for _, obj := range owned {
		if !wanted[obj] {
			releases = append(releases, obj)
		}
	}
	slices.Sort(claims)
	slices.Sort(releases)
	return claims, releases, nil
}

// targetDrivenScoper manages the desired groups that already have tuples
// in the target; the others are skipped until someone creates them there.
type targetDrivenScoper struct{ sink Sink }

func (targetDrivenScoper) readBefore(context.Context, Scope) earlyRead { return earlyRead{} }

func (t targetDrivenScoper) narrow(ctx context.Context, scope Scope, d *Desired, _ earlyRead) (managedScope, error) {
	lister, ok := t.sink.(TargetLister)
	if !ok {
		return managedScope{}, fmt.Errorf("ownership mode target-driven is not supported by this sink")
	}
	objects := make([]string, len(d.Groups))
	for i, g := range d.Groups {
		objects[i] = g.Object
	}
	if len(objects) == 0 {
		return managedScope{scope: scope}, nil
	}
	// Read the desired groups' scope first: a group with tuples there is in
	// use, and a run where nothing changed needs no other read. Only the
	// rest are asked about other tuples, then about grants naming them.
	read := scope
	read.Objects = objects
	r := readScope(ctx, t.sink, read)
	if r.err != nil {
		return managedScope{}, r.err
	}
	existing := r.existing
	inUse := map[string]bool{}
	for tu := range existing.All() {
		inUse[tu.Object] = true
	}
	var rest []string
	for _, obj := range objects {
		if !inUse[obj] {
			rest = append(rest, obj)
		}
	}
	granted := map[string][]Tuple{}
	if len(rest) > 0 {
		exists, err := lister.Existing(ctx, rest)
		if err != nil {
			return managedScope{}, fmt.Errorf("read OpenFGA: %w", err)
		}
		var absent []string
		for _, obj := range rest {
			if exists[obj] {
				inUse[obj] = true
			} else {
				absent = append(absent, obj)
			}
		}
		// A group with no tuples of its own may still be in use: an
		// application grants something to its members.
		if finder, ok := t.sink.(GrantFinder); ok && len(absent) > 0 {
			if granted, err = finder.Grants(ctx, absent, scope.Relation); err != nil {
				return managedScope{}, fmt.Errorf("read OpenFGA: %w", err)
			}
		}
	}
	missing := map[string]string{}
	keep := []string{}
	for _, obj := range objects {
		if inUse[obj] || len(granted[obj]) > 0 {
			keep = append(keep, obj)
		} else {
			missing[obj] = "has no tuples in OpenFGA and no grant names it; sync.ownership.mode target-driven only syncs groups that exist there"
		}
	}
	d.dropObjects(missing, ReasonNotInTarget)
	// Never empty: with nothing kept, Objects stays an empty list rather
	// than nil, which would stand for the whole type.
	scope.Objects = keep
	return managedScope{scope: scope, existing: existing, grantedBy: granted}, nil
}

// readScope reads every tuple inside scope, group by group when the sink
// can hand them over so.
func readScope(ctx context.Context, sink Sink, scope Scope) earlyRead {
	if gr, ok := sink.(GroupReader); ok && scope.Objects != nil {
		c := &groupCollector{scope: scope}
		if err := gr.ReadGroups(ctx, scope, c.add); err != nil {
			return earlyRead{err: fmt.Errorf("read OpenFGA: %w", err)}
		}
		return earlyRead{owned: scope.Objects, existing: c.done()}
	}
	tuples, err := sink.Read(ctx, scope)
	if err != nil {
		return earlyRead{err: fmt.Errorf("read OpenFGA: %w", err)}
	}
	return earlyRead{owned: scope.Objects, existing: existingOf(scope, tuples, nil)}
}

// setOf returns the set of s's elements.
func setOf(s []string) map[string]bool {
	m := make(map[string]bool, len(s))
	for _, v := range s {
		m[v] = true
	}
	return m
}
