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
type GuardError struct{ Trip *GuardTrip }

func (e *GuardError) Error() string { return "stopped by a guard: " + e.Trip.Message }

// checkGuards returns the first guard the plan trips, or nil.
func checkGuards(p *Plan, g config.Guards, emptySource bool) *GuardTrip {
	if emptySource && !g.AllowEmptySource {
		return &GuardTrip{Guard: GuardEmptySource, Message: "the source returned no groups or no memberships at all; " +
			"if that is really so, set sync.guards.allow_empty_source: true (or run once with --force)"}
	}
	n := float64(len(p.Deletes))
	if g.MaxDeletes > 0 && len(p.Deletes) > g.MaxDeletes {
		return &GuardTrip{Guard: GuardMaxDeletes, Limit: float64(g.MaxDeletes), Actual: n,
			Message: fmt.Sprintf("the plan deletes %d tuples, over sync.guards.max_deletes (%d); check the plan, then run once with --force or raise the limit", len(p.Deletes), g.MaxDeletes)}
	}
	if g.MaxDeletePercent > 0 && p.Existing > 0 && len(p.Deletes) > percentGuardFloor {
		pct := 100 * n / float64(p.Existing)
		if pct > g.MaxDeletePercent {
			return &GuardTrip{Guard: GuardMaxDeletePercent, Limit: g.MaxDeletePercent, Actual: pct,
				Message: fmt.Sprintf("the plan deletes %d of %d managed tuples (%.1f%%), over sync.guards.max_delete_percent (%g%%); check the plan, then run once with --force or raise the limit", len(p.Deletes), p.Existing, pct, g.MaxDeletePercent)}
		}
	}
	a := float64(len(p.Adds))
	if g.MaxAdds > 0 && len(p.Adds) > g.MaxAdds {
		return &GuardTrip{Guard: GuardMaxAdds, Limit: float64(g.MaxAdds), Actual: a,
			Message: fmt.Sprintf("the plan adds %d tuples, over sync.guards.max_adds (%d); a filter or mapping change can grant far more than meant: check the plan, then run once with --force or raise the limit", len(p.Adds), g.MaxAdds)}
	}
	if g.MaxAddPercent > 0 && p.Existing > 0 && len(p.Adds) > percentGuardFloor {
		pct := 100 * a / float64(p.Existing)
		if pct > g.MaxAddPercent {
			return &GuardTrip{Guard: GuardMaxAddPercent, Limit: g.MaxAddPercent, Actual: pct,
				Message: fmt.Sprintf("the plan adds %d tuples to %d managed (%.1f%%), over sync.guards.max_add_percent (%g%%); check the plan, then run once with --force or raise the limit", len(p.Adds), p.Existing, pct, g.MaxAddPercent)}
		}
	}
	return nil
}

// emptySnapshot reports whether a snapshot has no groups or no
// memberships at all: what an IdP outage or a wrong filter looks like.
func emptySnapshot(s *Snapshot) bool {
	for _, g := range s.Groups {
		if len(g.Users) > 0 || len(g.Groups) > 0 {
			return false
		}
	}
	return true
}
