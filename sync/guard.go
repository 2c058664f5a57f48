package sync

import (
	"fmt"

	"github.com/groupsync/groupsync/config"
)

// Guard names, stable for reports and metrics.
const (
	GuardEmptySource      = "empty_source"
	GuardMaxDeletes       = "max_deletes"
	GuardMaxDeletePercent = "max_delete_percent"
	GuardMaxAdds          = "max_adds"
	GuardMaxAddPercent    = "max_add_percent"
)

// percentGuardFloor keeps the percentage guard from tripping on tiny
// scopes: it applies once a run would delete more than this many tuples.
const percentGuardFloor = 10

// GuardError is returned by Run when a guard stopped it.
type GuardError struct {
	Trip *GuardTrip
	// Plan is the stopped plan, saved (apply runs), so that an operator
	// can approve exactly it later (the daemon's quarantine).
	Plan *SavedPlan
}

func (e *GuardError) Error() string { return "stopped by a guard: " + e.Trip.Message }

// checkGuards returns the first guard the plan trips, or nil.
func checkGuards(p *Plan, g config.Guards, emptySource bool) *GuardTrip {
	if emptySource && !g.AllowEmptySource {
		return &GuardTrip{Guard: GuardEmptySource, Message: "the source returned no groups or no memberships at all; " +
			"if that is really so, set sync.guards.allow_empty_source: true (or run once with --force)"}
	}
	deletes := sizeGuard{count: len(p.Deletes), max: g.MaxDeletes, maxPercent: g.MaxDeletePercent,
		countGuard: GuardMaxDeletes, percentGuard: GuardMaxDeletePercent,
		countMsg:   "the plan deletes %d tuples, over sync.guards.max_deletes (%d); check the plan, then run once with --force or raise the limit",
		percentMsg: "the plan deletes %d of %d managed tuples (%.1f%%), over sync.guards.max_delete_percent (%g%%); check the plan, then run once with --force or raise the limit"}
	adds := sizeGuard{count: len(p.Adds), max: g.MaxAdds, maxPercent: g.MaxAddPercent,
		countGuard: GuardMaxAdds, percentGuard: GuardMaxAddPercent,
		countMsg:   "the plan adds %d tuples, over sync.guards.max_adds (%d); a filter or mapping change can grant far more than meant: check the plan, then run once with --force or raise the limit",
		percentMsg: "the plan adds %d tuples to %d managed (%.1f%%), over sync.guards.max_add_percent (%g%%); check the plan, then run once with --force or raise the limit"}
	for _, sg := range []sizeGuard{deletes, adds} {
		if trip := sg.check(p.Existing); trip != nil {
			return trip
		}
	}
	return nil
}

// sizeGuard is a limit on how many changes of one kind (deletes, adds) a
// plan makes: a count, and a share of the tuples already managed once the
// plan makes more than percentGuardFloor of them.
type sizeGuard struct {
	count, max               int
	maxPercent               float64
	countGuard, percentGuard string
	countMsg, percentMsg     string // formats: count, max; count, existing, percent, maxPercent
}

func (sg sizeGuard) check(existing int) *GuardTrip {
	n := float64(sg.count)
	if sg.max > 0 && sg.count > sg.max {
		return &GuardTrip{Guard: sg.countGuard, Limit: float64(sg.max), Actual: n, Message: fmt.Sprintf(sg.countMsg, sg.count, sg.max)}
	}
	if sg.maxPercent > 0 && existing > 0 && sg.count > percentGuardFloor {
		if pct := 100 * n / float64(existing); pct > sg.maxPercent {
			return &GuardTrip{Guard: sg.percentGuard, Limit: sg.maxPercent, Actual: pct,
				Message: fmt.Sprintf(sg.percentMsg, sg.count, existing, pct, sg.maxPercent)}
		}
	}
	return nil
}

// emptySnapshot reports whether a snapshot has no groups or no
// memberships at all: what an IdP outage or a wrong filter looks like.
func emptySnapshot(s *Snapshot) bool {
	for _, g := range s.Groups {
		if g.UserCount() > 0 || len(g.Groups) > 0 {
			return false
		}
	}
	return true
}
