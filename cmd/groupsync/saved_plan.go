package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	gsync "github.com/groupsync/groupsync/sync"
)

// savePlan plans (writing nothing) and saves the plan to --out; the report
// is the plan's, exit codes as for plan.
func (o *options) savePlan(ctx context.Context, engine *gsync.Engine) (*gsync.Report, error) {
	var slice *gsync.Slice // saved only for a targeted plan
	if !o.slice.Empty() {
		slice = &o.slice
	}
	p, err := engine.PlanFor(ctx, slice)
	if err != nil {
		return nil, err
	}
	sp := engine.Save(p, slice)
	if err := writeSavedPlan(o.planOut, sp); err != nil {
		return nil, err
	}
	if p.Guard != nil {
		return sp.Report, &gsync.GuardError{Trip: p.Guard}
	}
	return sp.Report, nil
}

// applySaved applies the saved plan in o.planFile, or nothing if stale.
func (o *options) applySaved(ctx context.Context, engine *gsync.Engine) (*gsync.Report, error) {
	data, err := os.ReadFile(o.planFile)
	if err != nil {
		return nil, err
	}
	var sp gsync.SavedPlan
	if err := json.Unmarshal(data, &sp); err != nil {
		return nil, fmt.Errorf("%s is not a plan that \"groupsync plan --out\" saved: %w", o.planFile, err)
	}
	return engine.ApplySaved(ctx, &sp)
}

// writeSavedPlan writes a saved plan to path (--out), readable by its
// owner only: it lists users.
func writeSavedPlan(path string, sp *gsync.SavedPlan) error {
	data, err := json.MarshalIndent(sp, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("--out %s: %w", path, err)
	}
	return nil
}
