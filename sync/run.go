package sync

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"
)

// Plan reads both sides and returns the plan without writing anything.
//
// The tuples of the groups this instance already owns (or, in
// authoritative mode, the whole scope) do not depend on the source, so
// they are read while the source is read; a source error discards them.
func (e *Engine) Plan(ctx context.Context) (*Plan, error) {
	log := e.logger()
	if err := e.Sink.Verify(ctx, e.Mapper.WriteScope()); err != nil {
		return nil, err
	}
	if e.Registry != nil {
		if err := e.Registry.Verify(ctx); err != nil {
			return nil, err
		}
	}
	readCtx, cancelRead := context.WithCancel(ctx)
	defer cancelRead()
	early := make(chan earlyRead, 1)
	var tr *targetRun
	go func() {
		tr = e.beginTargetRun(readCtx, e.Mapper.Scope())
		scoper, err := newScoper(e.mode(), e.Sink, e.Registry, tr, log)
		if err != nil {
			early <- earlyRead{err: err}
			return
		}
		r := scoper.readBefore(readCtx, e.Mapper.Scope())
		r.scoper = scoper
		early <- r
	}()

	start := time.Now()
	snap, err := e.Source.Snapshot(ctx)
	if err != nil {
		// A source error ends the run here: a partial snapshot must never
		// become deletes.
		return nil, fmt.Errorf("read source: %w", err)
	}
	log.Debug("source read", zap.Int("groups", len(snap.Groups)), zap.Int("users", len(snap.Users)), zap.Duration("took", time.Since(start)))
	desired, err := e.Mapper.Map(snap)
	if err != nil {
		return nil, fmt.Errorf("map source: %w", err)
	}
	// The desired state is all the run needs of the snapshot from here on;
	// let the snapshot go before the existing tuples arrive.
	empty := emptySnapshot(snap)
	snap = nil
	pre := <-early
	if pre.err != nil {
		return nil, pre.err
	}

	managed, err := pre.scoper.narrow(ctx, e.Mapper.Scope(), desired, pre)
	if err != nil {
		return nil, err
	}
	log.Debug("sink read", zap.Int("tuples", managed.existing.Len()), zap.Duration("took", time.Since(start)))

	p := diffKnown(desired, &managed.existing, managed.scope, managed.known)
	p.target = tr
	p.Claims, p.Releases = managed.claims, withoutHeld(managed.releases, desired)
	p.GrantedBy = managed.grantedBy
	if len(desired.Grants) > 0 {
		if err := e.planGrants(ctx, p, desired, managed, pre.owned); err != nil {
			return nil, err
		}
	}
	applyPolicy(p, e.policy())
	if !e.Force {
		p.Guard = checkGuards(p, e.Settings.Guards, empty)
	}
	return p, nil
}

// withoutHeld keeps releases that are not held: an ambiguous group's
// tuples stay, and so does its ownership.
func withoutHeld(objects []string, d *Desired) []string {
	return slices.DeleteFunc(objects, func(o string) bool { return d.HeldObjects[o] })
}

// Run plans and, when apply is set, writes the plan. The report is returned
// even when err is non-nil if planning got that far. A guard trip returns
// a *GuardError; a busy lease ErrLeaseBusy.
func (e *Engine) Run(ctx context.Context, apply bool) (*Report, error) {
	return e.run(ctx, apply, e.Plan, nil)
}

// run is Run with the planning step given, so that a full and a targeted
// run (RunSlice) share the lease, the guards and the apply order. slice
// is what a targeted run covers (nil: the whole tenant): a plan a guard
// stops is saved with it, and only a whole-tenant run lets the target's
// and an incremental source's state be kept, since a slice says nothing
// of the rest.
func (e *Engine) run(ctx context.Context, apply bool, plan func(context.Context) (*Plan, error), slice *Slice) (*Report, error) {
	if !apply {
		p, err := plan(WithoutCommit(ctx))
		if err != nil {
			return nil, err
		}
		rep := e.report("plan", p, nil)
		if p.Guard != nil {
			return rep, &GuardError{Trip: p.Guard}
		}
		return rep, nil
	}
	if e.Lease != nil && e.Settings.Lease.Enabled {
		leased, release, err := e.Lease.Acquire(ctx, time.Duration(e.Settings.Lease.Wait))
		if err != nil {
			return nil, err
		}
		defer release()
		ctx = leased
	}
	p, err := plan(ctx)
	if err != nil {
		return nil, err
	}
	if p.Guard != nil {
		return e.report("apply", p, &ApplyResult{}), &GuardError{Trip: p.Guard, Plan: e.Save(p, slice)}
	}
	res, err := e.apply(ctx, p)
	if err == nil && slice == nil {
		// What the run learnt of the target, and an incremental source's
		// new state, are kept only once the run has been applied.
		e.commitTarget(ctx, p.target, p)
		if c, ok := e.Source.(Committer); ok {
			if cerr := c.Commit(ctx); cerr != nil {
				e.logger().Warn("the source's incremental state was not saved; the next run reads in full", zap.Error(cerr))
			}
		}
	}
	return e.report("apply", p, &res), err
}

func (e *Engine) report(command string, p *Plan, res *ApplyResult) *Report {
	r := NewReport(command, p, res)
	r.Ownership = ReportOwnership{Mode: e.mode(), Policy: e.policy(), Claims: nonNil(p.Claims), Releases: nonNil(p.Releases)}
	if e.Registry != nil {
		r.Ownership.Instance = e.Registry.Instance()
	}
	if d, ok := e.Source.(ReadDescriber); ok {
		rd := d.LastRead()
		r.SourceRead = &rd
	}
	if p.target != nil {
		tr := p.target.read
		r.TargetRead = &tr
	}
	return r
}

// apply writes in the order that keeps every intermediate state safe:
// claims, adds, deletes (only if every add succeeded), releases (only of
// groups whose deletes all succeeded).
func (e *Engine) apply(ctx context.Context, p *Plan) (ApplyResult, error) {
	log := e.logger()
	start := time.Now()
	var res ApplyResult
	if len(p.Claims) > 0 {
		if err := e.Registry.Claim(ctx, p.Claims); err != nil {
			return res, fmt.Errorf("claim %d groups in the ownership registry: %w; nothing else was written", len(p.Claims), err)
		}
	}
	res, err := e.Sink.Apply(ctx, Changes{Adds: p.Adds})
	if err != nil || len(res.Failed) > 0 {
		for _, t := range p.Deletes {
			p.Withheld = append(p.Withheld, Withheld{Op: "delete", Tuple: t, Reason: ReasonAddsFailed})
		}
		sortBy(p.Withheld, func(w Withheld) Tuple { return w.Tuple })
		p.Releases = nil
		return res, applyError(res, err)
	}
	del, err := e.Sink.Apply(ctx, Changes{Deletes: p.Deletes})
	res.Deleted += del.Deleted
	res.Requests += del.Requests
	res.Failed = append(res.Failed, del.Failed...)
	res.Warnings = append(res.Warnings, del.Warnings...)
	slices.Sort(res.Warnings)
	res.Warnings = slices.Compact(res.Warnings)
	if err == nil && len(p.Releases) > 0 {
		failed := map[string]bool{}
		for _, f := range del.Failed {
			failed[f.Tuple.Object] = true
		}
		release := slices.DeleteFunc(slices.Clone(p.Releases), func(o string) bool { return failed[o] })
		if rerr := e.Registry.Release(ctx, release); rerr != nil {
			err = fmt.Errorf("release %d groups from the ownership registry: %w", len(release), rerr)
		}
		p.Releases = release
	}
	log.Debug("applied", zap.Int("claimed", len(p.Claims)), zap.Int("added", res.Added), zap.Int("deleted", res.Deleted),
		zap.Int("released", len(p.Releases)), zap.Int("failed", len(res.Failed)), zap.Int("requests", res.Requests),
		zap.Duration("took", time.Since(start)))
	return res, applyError(res, err)
}

// applyError adds what to do to a sink's error: writes are idempotent, so
// the remedy for any failure is to run again.
func applyError(res ApplyResult, err error) error {
	if err == nil && len(res.Failed) > 0 {
		err = fmt.Errorf("%d tuples failed to write (first: %s %s: %s)", len(res.Failed), res.Failed[0].Op, res.Failed[0].Tuple, res.Failed[0].Error)
	}
	if err == nil {
		return nil
	}
	return fmt.Errorf("apply: %w; every write is idempotent, so run again to retry", err)
}
