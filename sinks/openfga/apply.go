package openfga

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	fga "github.com/openfga/go-sdk"

	gsync "github.com/groupsync/groupsync/sync"
)

const (
	opAdd    = "add"
	opDelete = "delete"
)

// Apply writes changes.Adds, then changes.Deletes: every add request has
// finished before the first delete request is sent. Each phase is cut into
// chunks of cfg.MaxTuplesPerWrite tuples, at most cfg.MaxParallelWrites in
// flight; each chunk is one transactional Write, naming the model, with
// on_duplicate / on_missing "ignore", so applying the same changes twice is
// no error.
//
// A chunk the server rejects as invalid (400, or 409 for a tuple that exists
// with a different condition) is split in halves and each half sent again,
// down to single tuples, so only the tuples at fault are reported, with the
// server's message; any other failure (after retries) fails the whole chunk.
// When ctx ends, no new chunk is sent and the unsent ones are reported failed
// with ctx's error. ApplyResult.Requests counts every Write request sent,
// retries and halves included. err is non-nil when any tuple failed.
//
// A ctx from WithWriteProgress hears how far each phase has got.
func (s *Sink) Apply(ctx context.Context, changes gsync.Changes) (gsync.ApplyResult, error) {
	a := &applier{s: s, progress: writeProgressFrom(ctx)}
	a.phase(ctx, opAdd, changes.Adds)
	a.phase(ctx, opDelete, changes.Deletes)

	res := a.res
	if w := a.limitWarning(); w != "" {
		res.Warnings = append(res.Warnings, w)
	}
	if len(a.fails) == 0 {
		return res, nil
	}
	slices.SortFunc(a.fails, func(x, y failure) int {
		if x.Op != y.Op {
			return cmp.Compare(opRank(x.Op), opRank(y.Op))
		}
		return x.Tuple.Compare(y.Tuple)
	})
	res.Failed = make([]gsync.TupleError, len(a.fails))
	for i, f := range a.fails {
		res.Failed[i] = f.TupleError
	}
	first := a.fails[0]
	cause := first.err
	if err := ctx.Err(); err != nil {
		cause = err
	}
	total := len(changes.Adds) + len(changes.Deletes)
	return res, fmt.Errorf("openfga: %d of %d tuple changes failed in store %s; first: %s %s: %w",
		len(a.fails), total, s.storeID, first.Op, first.Tuple, cause)
}

func opRank(op string) int {
	if op == opAdd {
		return 0
	}
	return 1
}

type applier struct {
	s     *Sink
	mu    sync.Mutex
	res   gsync.ApplyResult
	fails []failure

	// limited: a write of this Apply was refused as too large, or split
	// to fit what the sink learned of the server's limit.
	limited atomic.Bool

	progress   func(WriteProgress) // nil: nobody listens
	progressMu sync.Mutex          // keeps the reports in order of Done
	done       int
}

// WriteProgress is how far one phase of an Apply call (its adds, or its
// deletes) has got.
type WriteProgress struct {
	Op    string // "add" or "delete"
	Done  int    // tuples of the phase answered so far: written, or failed
	Total int    // tuples of the phase
}

type writeProgressKey struct{}

// WithWriteProgress returns a ctx under which Apply reports its progress
// to fn: once as a phase starts (Done 0) and after each chunk. The hook
// travels in the context, as net/http/httptrace's does, so the engine
// between the caller and the sink needs no knowledge of it. fn is called
// from the writing goroutines, one call at a time and with Done never
// going back; it must return quickly.
func WithWriteProgress(ctx context.Context, fn func(WriteProgress)) context.Context {
	return context.WithValue(ctx, writeProgressKey{}, fn)
}

func writeProgressFrom(ctx context.Context) func(WriteProgress) {
	fn, _ := ctx.Value(writeProgressKey{}).(func(WriteProgress))
	return fn
}

// report tells the listener, if any, that n more tuples of the phase op
// were answered.
func (a *applier) report(op string, n, total int) {
	if a.progress == nil {
		return
	}
	a.progressMu.Lock()
	defer a.progressMu.Unlock()
	a.done += n
	a.progress(WriteProgress{Op: op, Done: a.done, Total: total})
}

type failure struct {
	gsync.TupleError
	err error
}

// phase writes tuples (all adds or all deletes) and returns when every
// chunk has been written or has failed.
func (a *applier) phase(ctx context.Context, op string, tuples []gsync.Tuple) {
	chunks := slices.Collect(slices.Chunk(tuples, a.s.cfg.MaxTuplesPerWrite))
	if len(tuples) > 0 {
		a.done = 0
		a.report(op, 0, len(tuples))
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(a.s.cfg.MaxParallelWrites, len(chunks)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(chunks) {
					return
				}
				if err := ctx.Err(); err != nil {
					a.failed(op, chunks[i], err, err.Error())
				} else {
					a.write(ctx, op, chunks[i])
				}
				a.report(op, len(chunks[i]), len(tuples))
			}
		})
	}
	wg.Wait()
}

// write sends one chunk, bisecting it when the server rejects its content.
func (a *applier) write(ctx context.Context, op string, tuples []gsync.Tuple) {
	if lim := a.s.writeLimit.max.Load(); lim > 0 && int64(len(tuples)) > lim {
		a.limited.Store(true)
		half := len(tuples) / 2
		a.write(ctx, op, tuples[:half])
		a.write(ctx, op, tuples[half:])
		return
	}
	s := a.s
	body := fga.WriteRequest{AuthorizationModelId: fga.PtrString(s.modelID)}
	if op == opAdd {
		keys := make([]fga.TupleKey, len(tuples))
		for i, t := range tuples {
			keys[i] = fga.TupleKey{User: t.User, Relation: t.Relation, Object: t.Object}
		}
		body.Writes = &fga.WriteRequestWrites{TupleKeys: keys, OnDuplicate: fga.PtrString("ignore")}
	} else {
		keys := make([]fga.TupleKeyWithoutCondition, len(tuples))
		for i, t := range tuples {
			keys[i] = fga.TupleKeyWithoutCondition{User: t.User, Relation: t.Relation, Object: t.Object}
		}
		body.Deletes = &fga.WriteRequestDeletes{TupleKeys: keys, OnMissing: fga.PtrString("ignore")}
	}

	requests := 0
	_, err := call(ctx, &s.conn, "Write", s.storeID, &requests, func(ctx context.Context) (map[string]any, *http.Response, error) {
		return s.api.Write(ctx, s.storeID).Body(body).Execute()
	})
	var e *Error
	if errors.As(err, &e) && e.Code == "exceeded_entity_limit" && len(tuples) > 1 {
		a.limited.Store(true)
		a.s.writeLimit.refusedAt(len(tuples))
	} else if err == nil {
		a.s.writeLimit.took(len(tuples))
	}
	a.mu.Lock()
	a.res.Requests += requests
	if err == nil {
		if op == opAdd {
			a.res.Added += len(tuples)
		} else {
			a.res.Deleted += len(tuples)
		}
	}
	a.mu.Unlock()
	if err == nil {
		return
	}

	if e != nil && len(tuples) > 1 && ctx.Err() == nil && tupleLevel(e) {
		half := len(tuples) / 2
		a.write(ctx, op, tuples[:half])
		a.write(ctx, op, tuples[half:])
		return
	}
	msg := err.Error()
	if e != nil {
		msg = e.reason()
	}
	a.failed(op, tuples, err, msg)
}

// writeLimit is what OpenFGA's refusals (400 exceeded_entity_limit) taught
// a sink about its limit of tuples per write. It lasts as long as the
// sink: chunks above it are split before they are sent, so a daemon pays
// for a too-high openfga.max_tuples_per_write once, not in every run.
type writeLimit struct {
	max             atomic.Int64 // the smallest refused size, minus one; 0: none refused
	mu              sync.Mutex
	refused, fitted int // the smallest refused size, the largest taken since
}

func (l *writeLimit) refusedAt(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.refused == 0 || n < l.refused {
		l.refused = n
		l.max.Store(int64(n - 1))
	}
}

func (l *writeLimit) took(n int) {
	if l.max.Load() == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fitted = max(l.fitted, n)
}

// limitWarning says, when a write of this Apply was refused as too large
// or split to fit, what to set openfga.max_tuples_per_write to.
func (a *applier) limitWarning() string {
	if !a.limited.Load() {
		return ""
	}
	l := &a.s.writeLimit
	l.mu.Lock()
	defer l.mu.Unlock()
	fit := "a smaller value"
	if l.fitted > 0 {
		fit = fmt.Sprintf("at most %d (the largest write it took)", l.fitted)
	}
	return fmt.Sprintf("OpenFGA refused writes of %d tuples as over its limit (400 exceeded_entity_limit): openfga.max_tuples_per_write is %d, above the server's --max-tuples-per-write; set it to %s. Writes were split to fit, at the cost of more requests.",
		l.refused, a.s.cfg.MaxTuplesPerWrite, fit)
}

func (a *applier) failed(op string, tuples []gsync.Tuple, err error, msg string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, t := range tuples {
		a.fails = append(a.fails, failure{TupleError: gsync.TupleError{Op: op, Tuple: t, Error: msg}, err: err})
	}
}

// requestWide are 400 codes about the request as a whole, not its tuples:
// halving the chunk would only repeat them.
var requestWide = []string{
	"authorization_model_not_found", "latest_authorization_model_not_found",
	"authorization_model_id_too_long", "invalid_authorization_model",
	"unsupported_schema_version", "store_id_invalid_length", "cancelled",
}

// tupleLevel reports whether a failed Write may be the fault of some of its
// tuples: a 400 (invalid tuple, type or relation not in the model, too many
// tuples for the server's limit ...) or a 409 (a tuple exists with another
// condition).
func tupleLevel(e *Error) bool {
	if e.Status != http.StatusBadRequest && e.Status != http.StatusConflict {
		return false
	}
	return !slices.Contains(requestWide, e.Code)
}

// reason is the error without the operation and store, for a per-tuple
// report: "HTTP 400 validation_error: invalid 'object' field format".
func (e *Error) reason() string {
	var parts []string
	if e.Status != 0 {
		s := fmt.Sprintf("HTTP %d", e.Status)
		if e.Code != "" {
			s += " " + e.Code
		}
		parts = append(parts, s)
	}
	if e.Message != "" {
		parts = append(parts, e.Message)
	}
	r := strings.Join(parts, ": ")
	if e.Attempts > 1 {
		r += fmt.Sprintf(" (after %d attempts)", e.Attempts)
	}
	return r
}
