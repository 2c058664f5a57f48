package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"slices"
	"time"

	"go.uber.org/zap"

	gsync "github.com/groupsync/groupsync/sync"
)

// Quarantine: when a guard stops a daemon run, the plan it stopped is kept
// as a saved plan (sync.SavedPlan), so that an operator can approve exactly
// that plan (POST /quarantine/approve, groupsync approve) and nothing
// else: the approval applies it through the saved-plan contract, which
// writes nothing when the source or OpenFGA changed since (stale).
//
//   - A run that trips a guard quarantines its plan; a later trip replaces
//     it with the newer plan (a new plan id), except that an event run's
//     trip never replaces a full run's plan, which covers more.
//   - A full run that plans without tripping clears the quarantine: the
//     source recovered. An event run clears only an event run's plan of
//     the same users and groups.
//   - Nothing else writes past a guard: scheduled and event runs keep
//     tripping while the source is as it was.

// Quarantine is a plan a guard stopped, awaiting approval.
type Quarantine struct {
	// PlanID names the plan's changes: a digest of its slice, tuples,
	// claims and releases. The same changes tripping again keep the id.
	PlanID  string          `json:"plan_id"`
	Since   time.Time       `json:"since"`   // when a run first tripped with this plan
	Updated time.Time       `json:"updated"` // the last run that tripped with it
	Trigger string          `json:"trigger"` // the trigger of the run that first tripped
	Guard   gsync.GuardTrip `json:"guard"`
	Summary gsync.Summary   `json:"summary"`
	Slice   *gsync.Slice    `json:"slice,omitempty"` // an event run's users and groups
	// Changes are per object, counts only; the tuples are in the plan
	// (GET /quarantine/plan, behind the trigger token).
	Changes        []GroupCount `json:"changes"`
	ChangesOmitted int          `json:"changes_omitted,omitempty"`
	// Stale is why an approval found the plan stale, if one did; the next
	// run replaces or clears it.
	Stale string `json:"stale,omitempty"`

	plan *gsync.SavedPlan
}

// planID is the digest of what sp would change, for an operator to name
// the plan they reviewed. 16 hex digits tell plans apart; the approval's
// safety is ApplySaved's comparison, not the id.
func planID(sp *gsync.SavedPlan) string {
	b, _ := json.Marshal(struct {
		Slice    *gsync.Slice
		Adds     []gsync.Tuple
		Deletes  []gsync.Tuple
		Claims   []string
		Releases []string
	}{sp.Slice, sp.Adds, sp.Deletes, sp.Claims, sp.Releases})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// approvable returns the saved plan an approval applies: the quarantined
// one, forced past the guard it tripped (the operator approved exactly
// these changes; any other change makes it stale).
func (q *Quarantine) approvable() *gsync.SavedPlan {
	sp := *q.plan
	sp.Forced = true
	return &sp
}

// showQuarantine sets the quarantine's series to q (nil: none).
func (d *Daemon) showQuarantine(q *Quarantine) {
	if q == nil {
		d.m.SetQuarantine("", "", time.Time{})
		return
	}
	d.m.SetQuarantine(q.Guard.Guard, q.PlanID, q.Since)
}

// quarantineAfter updates the quarantine with a finished run's outcome;
// d.mu is held. It returns what to log, so the caller logs outside the
// lock.
func (d *Daemon) quarantineAfter(r *run, rep *gsync.Report, err error, end time.Time, targeted bool) (logLine func()) {
	prev, listen := d.quarantine, d.cfg.Daemon.Listen
	var guard *gsync.GuardError
	switch {
	case r.approve != nil:
		return d.approved(r, err)
	case errors.As(err, &guard) && guard.Trip != nil && guard.Plan != nil && rep != nil:
		sp := guard.Plan
		slice := sp.Slice
		if prev != nil && prev.Slice == nil && slice != nil {
			return func() {
				d.log.Warn("an event run tripped a guard; the quarantine keeps the full run's plan, which covers more",
					zap.String("guard", guard.Trip.Guard), zap.String("plan_id", prev.PlanID))
			}
		}
		id := planID(sp)
		counts, omitted := groupCounts(rep, historyGroups)
		q := &Quarantine{PlanID: id, Since: end, Updated: end, Trigger: r.trigger, Guard: *guard.Trip, Summary: rep.Summary,
			Slice: slice, Changes: counts, ChangesOmitted: omitted, plan: sp}
		if prev != nil && prev.PlanID == id {
			q.Since, q.Trigger = prev.Since, prev.Trigger
		}
		d.quarantine = q
		d.showQuarantine(q)
		if prev != nil && prev.PlanID == id {
			return func() {
				d.log.Info("the quarantined plan tripped its guard again; it still awaits approval",
					zap.String("plan_id", id), zap.String("guard", q.Guard.Guard))
			}
		}
		return func() {
			fields := []zap.Field{zap.String("plan_id", id), zap.String("guard", q.Guard.Guard), zap.Float64("limit", q.Guard.Limit),
				zap.Float64("actual", q.Guard.Actual), zap.Int("to_add", q.Summary.ToAdd), zap.Int("to_delete", q.Summary.ToDelete),
				zap.Int("existing", q.Summary.ExistingTuples), zap.String("guard_message", q.Guard.Message),
				zap.String("approve", approveHint(listen, id))}
			if prev != nil {
				fields = append(fields, zap.String("replaces_plan_id", prev.PlanID))
			}
			d.log.Warn("plan quarantined: a guard stopped the run and nothing was written; it awaits approval of exactly this plan "+
				"(GET /status shows it), or clears once a run no longer trips", fields...)
		}
	case prev != nil && rep != nil && rep.Guard == nil:
		// The run planned without tripping: the source no longer says what
		// the quarantined plan said.
		if targeted && (prev.Slice == nil || !sameSlice(*prev.Slice, r.batch.slice)) {
			return nil
		}
		d.quarantine = nil
		d.showQuarantine(nil)
		return func() {
			d.log.Info("source recovered: a run planned without tripping a guard; the quarantined plan is cleared",
				zap.String("plan_id", prev.PlanID), zap.String("guard", prev.Guard.Guard), zap.String("trigger", r.trigger))
		}
	}
	return nil
}

// approved handles the end of an approve run.
func (d *Daemon) approved(r *run, err error) func() {
	q := d.quarantine
	var stale *gsync.StalePlanError
	switch {
	case err == nil:
		d.m.QuarantineApproval("applied")
		if q != nil && q.PlanID == r.approve.id {
			d.quarantine = nil
			d.showQuarantine(nil)
		}
		return func() {
			d.log.Info("quarantined plan approved and applied; the quarantine is cleared", zap.String("plan_id", r.approve.id))
		}
	case errors.As(err, &stale):
		d.m.QuarantineApproval("stale")
		if q != nil && q.PlanID == r.approve.id {
			q.Stale = stale.Reason
		}
		return func() {
			d.log.Warn("approval refused: the quarantined plan is stale and nothing was written; the next run replaces or clears it",
				zap.String("plan_id", r.approve.id), zap.String("reason", stale.Reason))
		}
	default:
		d.m.QuarantineApproval("error")
		return func() {
			d.log.Error("approval failed; the plan stays quarantined", zap.String("plan_id", r.approve.id), zap.Error(err))
		}
	}
}

// approveHint is the command that approves plan id, for the daemon
// listening on listen (as seen from the pod, or through a port-forward).
func approveHint(listen, id string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "groupsync approve --daemon URL --token-file TRIGGER_TOKEN_FILE --plan-id " + id
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "groupsync approve --daemon http://" + net.JoinHostPort(host, port) + " --token-file TRIGGER_TOKEN_FILE --plan-id " + id
}

func sameSlice(a, b gsync.Slice) bool {
	return slices.Equal(a.Users, b.Users) && slices.Equal(a.Groups, b.Groups)
}
