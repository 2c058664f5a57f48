package sync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/state"
)

// TargetRead says how a run read the target (OpenFGA), for reports.
type TargetRead struct {
	// Mode is "full" (every managed group read) or "incremental" (only the
	// groups that changed on either side).
	Mode string `json:"mode"`
	// Reason says why an incremental run read in full.
	Reason string `json:"reason,omitempty"`
	// Changes counts the changelog entries read at the start of the run.
	Changes int `json:"changes"`
	// GroupsRead counts the managed groups whose tuples were read;
	// GroupsKnown those not read because neither side changed them, and
	// GroupsFromState those whose desired tuples changed but whose tuples
	// in OpenFGA nobody else changed: the state says what they are.
	GroupsRead      int `json:"groups_read"`
	GroupsKnown     int `json:"groups_known"`
	GroupsFromState int `json:"groups_from_state,omitempty"`
}

// targetRun is one run's incremental reading of the target: what it
// started from, what it found changed, and what it will keep.
type targetRun struct {
	read TargetRead
	// keep: save what the run learnt after a successful apply.
	keep bool
	// The target's changelogs: the sink's, and the registry's records'.
	changes      ChangeLog
	ownedChanges OwnedChangeLog
	prev         *targetState // the state the run started from (incremental)
	// start is where the run's knowledge of each changelog ends; the
	// commit reads back from here.
	start map[string]ChangePosition
	// owned is every object this instance owns at start: replayed from
	// the state (incremental), or read (full).
	owned []string
	// dirty are the objects someone changed since the state was kept.
	dirty map[string]bool
	// desired is each desired group's tuples, once an incremental run has
	// grouped them (the commit keeps them).
	desired map[string]memberGroup
}

func (tr *targetRun) incremental() bool { return tr != nil && tr.read.Mode == "incremental" }

// stored reports whether obj's tuples are known as of the state and
// nobody changed them since: then the state's are the group's tuples.
func (tr *targetRun) stored(obj string) bool {
	_, ok := tr.prev.Groups[obj]
	return ok && !tr.dirty[obj]
}

// beginTargetRun decides, before anything is read, whether this run
// reads the target incrementally, and takes the changelog positions its
// knowledge will start from. nil: incremental reading is off.
func (e *Engine) beginTargetRun(ctx context.Context, scope Scope) *targetRun {
	if e.TargetState == nil || !e.Settings.Incremental.Enabled {
		return nil
	}
	tr := &targetRun{read: TargetRead{Mode: "full"}}
	cl, ok := e.Sink.(ChangeLog)
	ocl, rok := e.Registry.(OwnedChangeLog)
	switch {
	case e.mode() != config.OwnershipOwned:
		tr.read.Reason = fmt.Sprintf("sync.ownership.mode %s always reads in full", e.mode())
		return tr
	case !ok || !rok:
		tr.read.Reason = "the target has no changelog"
		return tr
	}
	log := e.logger()
	tr.keep, tr.changes, tr.ownedChanges = true, cl, ocl
	prev, why := e.loadTargetState(ctx, e.targetFingerprint(cl, scope))
	if prev != nil {
		if why = tr.catchUp(ctx, cl, ocl, prev, scope, e.startLimit()); why == "" {
			tr.read.Mode = "incremental"
			log.Debug("reading OpenFGA incrementally", zap.Int("changes", tr.read.Changes), zap.Int("dirty", len(tr.dirty)))
			return tr
		}
	}
	tr.read.Reason = why
	log.Info("reading OpenFGA in full", zap.String("reason", why))
	now, err := cl.ChangesNow(ctx)
	if err != nil {
		tr.keep = false
		log.Warn("could not find where OpenFGA's changelog ends; this run keeps no incremental state", zap.Error(err))
		return tr
	}
	tr.start = map[string]ChangePosition{scope.ObjectType: now, registryPosition: now}
	// The time position lies a little before the present, so the changes
	// of those seconds (often the previous run's writes) would count as
	// another writer's at the commit, and their groups would be read again
	// next time. They precede every read of this run: step over them (up
	// to the start limit; a full run reads far more) to a position exactly
	// at the end.
	stepOver := e.startLimit()
	if _, next, err := cl.ChangesSince(ctx, scope.ObjectType, now, stepOver); err == nil {
		tr.start[scope.ObjectType] = next
	}
	if _, next, err := ocl.OwnedChangesSince(ctx, now, stepOver); err == nil {
		tr.start[registryPosition] = next
	}
	return tr
}

// targetFingerprint names what a kept state is good for: the store and
// model, the scope and the instance.
func (e *Engine) targetFingerprint(cl ChangeLog, scope Scope) string {
	instance := ""
	if e.Registry != nil {
		instance = e.Registry.Instance()
	}
	return fmt.Sprintf("%s|%s#%s@%s|%s", cl.Fingerprint(), scope.ObjectType, scope.Relation, strings.Join(scope.UserTypes, ","), instance)
}

// startLimit caps the changes a run reads from the changelog at its
// start: past it, reading the scope costs less.
func (e *Engine) startLimit() int { return max(e.Settings.Incremental.ReadBack, 1000) }

// loadTargetState returns the kept state, or nil and why it cannot be
// used.
func (e *Engine) loadTargetState(ctx context.Context, fingerprint string) (*targetState, string) {
	data, err := e.TargetState.Load(ctx)
	switch {
	case err != nil:
		return nil, fmt.Sprintf("the incremental state (%s) could not be read: %v", e.TargetState, err)
	case data == nil:
		return nil, "no incremental state yet"
	}
	st, err := decodeTargetState(data)
	switch {
	case err != nil:
		return nil, fmt.Sprintf("the incremental state (%s) is not usable: %v", e.TargetState, err)
	case st.FullNext != "":
		return nil, st.FullNext
	case st.Fingerprint != fingerprint:
		return nil, "the store or its authorization model changed since the state was kept"
	case e.Settings.Incremental.FullEvery > 0 && time.Since(st.FullAt) >= time.Duration(e.Settings.Incremental.FullEvery):
		return nil, fmt.Sprintf("the last full read was %s ago (sync.incremental.full_every %s)",
			time.Since(st.FullAt).Round(time.Second), time.Duration(e.Settings.Incremental.FullEvery))
	}
	return st, ""
}

// catchUp reads the changelogs from the state's positions: the groups
// someone changed since, and the ownership records replayed onto the
// owned objects kept. It returns why it could not ("" when it could).
func (tr *targetRun) catchUp(ctx context.Context, cl ChangeLog, ocl OwnedChangeLog, prev *targetState, scope Scope, limit int) string {
	gpos, rpos := prev.Positions[scope.ObjectType], prev.Positions[registryPosition]
	if gpos.IsZero() || rpos.IsZero() {
		return "the incremental state has no changelog position"
	}
	changes, gnext, err := cl.ChangesSince(ctx, scope.ObjectType, gpos, limit)
	if err != nil {
		return changelogReason("OpenFGA's changelog of "+scope.ObjectType, err)
	}
	owned, rnext, err := ocl.OwnedChangesSince(ctx, rpos, limit)
	if err != nil {
		return changelogReason("the ownership records' changelog", err)
	}
	tr.prev = prev
	tr.dirty = map[string]bool{}
	for _, c := range changes {
		if scope.Contains(c.Tuple) {
			tr.dirty[c.Tuple.Object] = true
		}
	}
	tr.owned = replayOwned(prev.Owned, owned)
	tr.read.Changes = len(changes) + len(owned)
	tr.start = map[string]ChangePosition{scope.ObjectType: gnext, registryPosition: rnext}
	return ""
}

func changelogReason(what string, err error) string {
	if errors.Is(err, ErrTooManyChanges) {
		return what + " has more changes since the last run than reading them would save"
	}
	return fmt.Sprintf("%s could not be read from the kept position: %v", what, err)
}

// replayOwned applies changes, in order, to owned: the last change of an
// object decides, so replaying changes the state already reflects in
// part still ends where the records are.
func replayOwned(owned []string, changes []OwnedChange) []string {
	if len(changes) == 0 {
		return slices.Clone(owned)
	}
	set := setOf(owned)
	for _, c := range changes {
		set[c.Object] = c.Owned
	}
	out := make([]string, 0, len(set))
	for obj, ok := range set {
		if ok {
			out = append(out, obj)
		}
	}
	slices.Sort(out)
	return out
}

// commitTarget keeps what a successfully applied run knows of the
// target. The changelog since the run's start holds the run's own writes
// and any another writer made meanwhile: the groups of the latter are
// not kept as known, so the next run reads them. A failure to read that
// back, or to save, costs only a full read next time.
func (e *Engine) commitTarget(ctx context.Context, tr *targetRun, p *Plan) {
	if tr == nil || !tr.keep {
		return
	}
	log := e.logger()
	cl, ocl := tr.changes, tr.ownedChanges
	scope := p.Scope
	st := &targetState{Version: targetStateVersion, Fingerprint: e.targetFingerprint(cl, scope), FullAt: time.Now().UTC()}
	if tr.incremental() {
		st.FullAt = tr.prev.FullAt
	}
	save := func() {
		data, err := encodeTargetState(st)
		if err == nil {
			err = e.TargetState.Save(ctx, data)
		}
		if err != nil {
			log.Warn("the incremental state was not saved; the next run reads OpenFGA in full", zap.String("state", e.TargetState.String()), zap.Error(err))
		}
	}
	limit := e.Settings.Incremental.ReadBack
	if limit == 0 {
		st.FullNext = "sync.incremental.read_back is 0: a run cannot tell its own writes from another writer's"
		save()
		return
	}
	changes, gnext, err := cl.ChangesSince(ctx, scope.ObjectType, tr.start[scope.ObjectType], limit)
	if err == nil {
		var owned []OwnedChange
		var rnext ChangePosition
		if owned, rnext, err = ocl.OwnedChangesSince(ctx, tr.start[registryPosition], limit); err == nil {
			st.Owned = replayOwned(tr.owned, owned)
			st.Positions = map[string]ChangePosition{scope.ObjectType: gnext, registryPosition: rnext}
		}
	}
	if err != nil {
		if errors.Is(err, ErrTooManyChanges) {
			st.FullNext = fmt.Sprintf("the last run wrote more than sync.incremental.read_back (%d) changes", limit)
		} else {
			st.FullNext = fmt.Sprintf("the last run could not read its own writes back from OpenFGA's changelog: %v", err)
		}
		save()
		return
	}
	others := othersChanges(changes, p)
	unknown := map[string]bool{}
	for _, w := range p.Withheld {
		unknown[w.Tuple.Object] = true
	}
	for _, t := range others {
		if scope.Contains(t) {
			unknown[t.Object] = true
		}
	}
	keep := tr.desired
	if keep == nil {
		keep = groupTuples(p.Desired, scope)
	}
	for obj := range unknown {
		delete(keep, obj)
	}
	if tr.incremental() && tr.prev.holds(keep) {
		// Nothing changed: the kept table and lists stand as they are.
		st.Users, st.Groups = tr.prev.Users, tr.prev.Groups
	} else {
		st.keepGroups(keep)
	}
	// What the run knew of the target is not needed past this point; let
	// it go before the source saves its own state.
	tr.prev, tr.desired = nil, nil
	save()
	log.Debug("incremental state kept", zap.Int("groups", len(st.Groups)), zap.Int("changed_by_others", len(others)))
}

// othersChanges returns the changes the plan did not make: each of the
// plan's writes and deletes accounts for one change.
func othersChanges(changes []TupleChange, p *Plan) []Tuple {
	type op struct {
		del bool
		t   Tuple
	}
	mine := make(map[op]int, len(p.Adds)+len(p.Deletes))
	for _, t := range p.Adds {
		mine[op{false, t}]++
	}
	for _, t := range p.Deletes {
		mine[op{true, t}]++
	}
	var out []Tuple
	for _, c := range changes {
		k := op{c.Delete, c.Tuple}
		if mine[k] > 0 {
			mine[k]--
			continue
		}
		out = append(out, c.Tuple)
	}
	return out
}

// OpenTargetState opens the store sync.incremental.state describes, or
// returns nil when incremental reading is off. oneShot says the process
// runs once (not the daemon): a memory state would die with it, so none
// is opened.
func OpenTargetState(cfg config.Incremental, oneShot bool) (StateStore, error) {
	if !cfg.Enabled || oneShot && cfg.State.Type == "memory" {
		return nil, nil
	}
	return state.Open(cfg.State, "sync.incremental.state")
}

// ownedGroups keeps the objects of objectType.
func ownedGroups(owned []string, objectType string) []string {
	return slices.DeleteFunc(slices.Clone(owned), func(obj string) bool { return !strings.HasPrefix(obj, objectType+":") })
}
