package sync

import (
	"context"
	"time"
)

// Committer is a source that reads incrementally (the Entra ID source with
// source.msgraph.delta.enabled): Snapshot keeps the state it would need
// next time (delta links, the tenant as read) pending, and Commit saves it.
//
// Call Commit only after the plan built from that Snapshot was applied
// successfully; after a plan, a failed apply or a guard, do not. A run
// that does not commit reads the same changes again next time. A Commit
// error loses nothing either: the next run reads in full.
type Committer interface {
	Commit(ctx context.Context) error
}

type noCommitKey struct{}

// WithoutCommit marks ctx as a run that will not commit what it reads (a
// plan): an incremental source need not prepare its new state to save.
func WithoutCommit(ctx context.Context) context.Context {
	return context.WithValue(ctx, noCommitKey{}, true)
}

// WillCommit reports whether the run under ctx may commit the source's
// new state: true unless WithoutCommit marked it.
func WillCommit(ctx context.Context) bool {
	no, _ := ctx.Value(noCommitKey{}).(bool)
	return !no
}

// SourceRead says how a source read its snapshot, for logs and reports.
type SourceRead struct {
	// Mode is "full" or "incremental".
	Mode string `json:"mode"`
	// Reason says why a full read was made when the source reads
	// incrementally (no state yet, the state was corrupt or expired, Graph
	// asked for a resync, the drift-repair cadence); empty otherwise.
	Reason string `json:"reason,omitempty"`
	// Requests is the number of HTTP requests the read sent.
	Requests int64 `json:"requests"`
	// Changes counts the changed objects an incremental read applied.
	Changes int `json:"changes,omitempty"`
	// BatchItems counts requests carried inside batch requests (Graph's
	// $batch): each is one read, but not one HTTP request.
	BatchItems int64 `json:"batch_items,omitempty"`
	// Retries counts retried requests (and retried batch items).
	Retries int64 `json:"retries,omitempty"`
	// Throttled counts answers that asked us to slow down (HTTP 429).
	Throttled int64 `json:"throttled,omitempty"`
	// Waited is the time spent waiting to retry.
	Waited time.Duration `json:"waited_ns,omitempty"`
}

// ReadDescriber is a source that can say how its last Snapshot read. Every
// source of groupsync is one: the run's report and the metrics take the
// source's request, retry and throttle counts from here, never from a
// concrete source type.
type ReadDescriber interface {
	LastRead() SourceRead
}
