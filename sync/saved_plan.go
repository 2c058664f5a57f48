package sync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// A saved plan is Terraform's contract: `plan --out FILE` writes what it
// would change; `apply FILE` applies exactly that, or nothing. Apply plans
// again under the lease and compares: if the source or OpenFGA changed so
// that the plan would be different, the saved plan is stale and nothing is
// written. A reviewer who approved the file approved precisely what lands.

// SavedPlanVersion is the version of the saved plan document.
const SavedPlanVersion = 1

// SavedPlan is a plan as `plan --out` writes it.
type SavedPlan struct {
	FormatVersion int       `json:"format_version"`
	Created       time.Time `json:"created"`
	Slice         *Slice    `json:"slice,omitempty"` // a targeted plan's slice
	// Forced records --force: the reviewer approved a plan past a guard.
	Forced   bool     `json:"forced,omitempty"`
	Adds     []Tuple  `json:"adds"`
	Deletes  []Tuple  `json:"deletes"`
	Claims   []string `json:"claims"`
	Releases []string `json:"releases"`
	// Report is the plan's report, for reading the file.
	Report *Report `json:"report"`
}

// Save returns the saved form of p, planned by e.
func (e *Engine) Save(p *Plan, s *Slice) *SavedPlan {
	return &SavedPlan{FormatVersion: SavedPlanVersion, Created: time.Now().UTC(), Slice: s, Forced: e.Force,
		Adds: nonNil(p.Adds), Deletes: nonNil(p.Deletes), Claims: nonNil(p.Claims), Releases: nonNil(p.Releases),
		Report: e.report("plan", p, nil)}
}

// PlanFor plans as Run would, or as RunSlice for a slice.
func (e *Engine) PlanFor(ctx context.Context, s *Slice) (*Plan, error) {
	if s == nil || s.Empty() {
		return e.Plan(ctx)
	}
	p, _, err := e.PlanSlice(ctx, *s)
	return p, err
}

// StalePlanError says why a saved plan no longer matches.
type StalePlanError struct{ Reason string }

func (e *StalePlanError) Error() string {
	return "the saved plan is stale: " + e.Reason + "; nothing was written. Run plan again, review it, and apply the new file"
}

// ApplySaved applies sp if planning again now gives exactly sp's changes,
// and writes nothing otherwise (a *StalePlanError).
func (e *Engine) ApplySaved(ctx context.Context, sp *SavedPlan) (*Report, error) {
	if sp.FormatVersion != SavedPlanVersion {
		return nil, fmt.Errorf("saved plan format_version %d: this groupsync reads version %d; plan again", sp.FormatVersion, SavedPlanVersion)
	}
	e.Force = sp.Forced
	slice := sp.Slice
	if slice != nil && slice.Empty() {
		slice = nil // a whole-tenant plan
	}
	var stale *StalePlanError
	rep, err := e.run(ctx, true, func(ctx context.Context) (*Plan, error) {
		p, err := e.PlanFor(ctx, sp.Slice)
		if err != nil {
			return nil, err
		}
		if why := differs(sp, p); why != "" {
			stale = &StalePlanError{Reason: why}
			return nil, stale
		}
		return p, nil
	}, slice)
	if errors.As(err, &stale) {
		return nil, stale
	}
	return rep, err
}

// differs says how p differs from the saved plan, or "".
func differs(sp *SavedPlan, p *Plan) string {
	for _, c := range []struct {
		what       string
		saved, now []Tuple
	}{{"tuples to add", sp.Adds, p.Adds}, {"tuples to delete", sp.Deletes, p.Deletes}} {
		if !slices.Equal(nonNil(c.saved), nonNil(c.now)) {
			return fmt.Sprintf("the %s changed (%d saved, %d now)", c.what, len(c.saved), len(c.now))
		}
	}
	for _, c := range []struct {
		what       string
		saved, now []string
	}{{"groups to claim", sp.Claims, p.Claims}, {"groups to release", sp.Releases, p.Releases}} {
		if !slices.Equal(nonNil(c.saved), nonNil(c.now)) {
			return fmt.Sprintf("the %s changed (%v saved, %v now)", c.what, c.saved, c.now)
		}
	}
	if p.Guard != nil && !sp.Forced {
		return "a guard trips now: " + p.Guard.Message
	}
	return ""
}
