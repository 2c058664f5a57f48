package sync

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Engine wires one run: source → mapping → sink read → diff → apply.
// cmd/groupsync and the daemon call the same Run.
type Engine struct {
	Source Source
	Sink   Sink
	Mapper *Mapper
	Log    *zap.Logger // nil logs nothing
}

// ReasonAddsFailed withholds deletes after a failed add: deletes could
// otherwise take access away before its replacement (a renamed group's new
// tuples) exists. The next run retries both.
const ReasonAddsFailed = "adds_failed"

// Plan reads both sides and returns the plan without writing anything.
func (e *Engine) Plan(ctx context.Context) (*Plan, error) {
	log := e.logger()
	start := time.Now()
	snap, err := e.Source.Snapshot(ctx)
	if err != nil {
		// A source error ends the run here, before anything is read or
		// planned: a partial snapshot must never become deletes.
		return nil, fmt.Errorf("read source: %w", err)
	}
	log.Debug("source read", zap.Int("groups", len(snap.Groups)), zap.Int("users", len(snap.Users)), zap.Duration("took", time.Since(start)))

	desired, err := e.Mapper.Map(snap)
	if err != nil {
		return nil, fmt.Errorf("map source: %w", err)
	}
	if err := e.Sink.Verify(ctx, e.Mapper.WriteScope()); err != nil {
		return nil, err
	}
	scope := e.Mapper.Scope()
	start = time.Now()
	existing, err := e.Sink.Read(ctx, scope)
	if err != nil {
		return nil, fmt.Errorf("read OpenFGA: %w", err)
	}
	log.Debug("sink read", zap.Int("tuples", len(existing)), zap.Duration("took", time.Since(start)))
	return Diff(desired, existing, scope), nil
}

// Run plans and, when apply is set, writes the plan. The report is returned
// even when err is non-nil if planning got that far.
func (e *Engine) Run(ctx context.Context, apply bool) (*Report, error) {
	p, err := e.Plan(ctx)
	if err != nil {
		return nil, err
	}
	if !apply {
		return NewReport("plan", p, nil), nil
	}
	res, err := e.apply(ctx, p)
	return NewReport("apply", p, &res), err
}

// apply writes adds, then deletes; deletes only when every add succeeded.
func (e *Engine) apply(ctx context.Context, p *Plan) (ApplyResult, error) {
	log := e.logger()
	start := time.Now()
	res, err := e.Sink.Apply(ctx, Changes{Adds: p.Adds})
	if err != nil || len(res.Failed) > 0 {
		for _, t := range p.Deletes {
			p.Withheld = append(p.Withheld, Withheld{Op: "delete", Tuple: t, Reason: ReasonAddsFailed})
		}
		sortBy(p.Withheld, func(w Withheld) Tuple { return w.Tuple })
		return res, applyError(res, err)
	}
	del, err := e.Sink.Apply(ctx, Changes{Deletes: p.Deletes})
	res.Deleted += del.Deleted
	res.Requests += del.Requests
	res.Failed = append(res.Failed, del.Failed...)
	log.Debug("applied", zap.Int("added", res.Added), zap.Int("deleted", res.Deleted),
		zap.Int("failed", len(res.Failed)), zap.Int("requests", res.Requests), zap.Duration("took", time.Since(start)))
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

func (e *Engine) logger() *zap.Logger {
	if e.Log == nil {
		return zap.NewNop()
	}
	return e.Log
}
