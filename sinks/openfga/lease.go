package openfga

import (
	"context"
	"errors"
	"fmt"
	"github.com/groupsync/groupsync/internal/retry"
	"net/http"
	"strings"
	"time"

	fga "github.com/openfga/go-sdk"
	"go.uber.org/zap"

	"github.com/groupsync/groupsync/config"
	gsync "github.com/groupsync/groupsync/sync"
)

// Lease keeps two runs of one instance from writing at once, with one
// tuple per instance — {user: T:i, relation: lease, object: T:i} — whose
// write time (OpenFGA's tuple timestamp) starts the lease. Taking it is a
// write that fails if the tuple exists, so of two runs exactly one wins;
// an expired lease is taken over by deleting it first, a delete that fails
// if someone else already did. A holder renews it every TTL/3 by deleting
// and writing it again; if that fails, the lease is lost and the run's
// context ends so that it stops writing.
//
// Expiry compares the server's timestamp with this host's clock: keep
// clocks in sync (NTP) and the TTL well above any skew.
type Lease struct {
	s    *Sink
	own  *ownStore // a registry store, opened (and created) by Acquire
	key  gsync.Tuple
	ttl  time.Duration
	poll time.Duration
	log  *zap.Logger
	now  func() time.Time
}

// ErrLeaseLost ends a leased context whose lease could not be renewed.
var ErrLeaseLost = errors.New("the run lost its lease (another run took it over after it expired); stopping")

// NewLease returns the lease of instance o.Instance.
func NewLease(s *Sink, o config.Ownership, ttl time.Duration, log *zap.Logger) *Lease {
	if log == nil {
		log = zap.NewNop()
	}
	self := o.Type + ":" + o.Instance
	return &Lease{s: s, key: gsync.Tuple{User: self, Relation: RelationLease, Object: self}, ttl: ttl,
		poll: max(ttl/20, time.Second), log: log, now: time.Now}
}

// Acquire takes the lease, waiting up to wait while another run holds it.
func (l *Lease) Acquire(ctx context.Context, wait time.Duration) (context.Context, func(), error) {
	if l.own != nil {
		s, err := l.own.forWrite(ctx)
		if err != nil {
			return nil, nil, err
		}
		l.s = s
	}
	// A model without the lease relation would make every write fail with
	// 400, which would read as "taken by another run".
	typ, _, _ := strings.Cut(l.key.Object, ":")
	if err := l.s.Verify(ctx, gsync.Scope{ObjectType: typ, Relation: RelationLease, UserTypes: []string{typ}}); err != nil {
		return nil, nil, fmt.Errorf("the lease (sync.lease) needs its relation in the model: set sync.ownership.store to keep it in a store of groupsync's own, or merge it in with \"groupsync model write\": %w", err)
	}
	deadline := l.now().Add(wait)
	for {
		stamp, held, err := l.try(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("take the lease %s: %w", l.key.Object, err)
		}
		if held == nil {
			return l.hold(ctx, stamp)
		}
		if !l.now().Before(deadline) {
			return nil, nil, fmt.Errorf("%w (%s, taken at %s, expires at %s; sync.lease.wait is %s)", gsync.ErrLeaseBusy,
				l.key.Object, held.Format(time.RFC3339), held.Add(l.ttl).Format(time.RFC3339), wait)
		}
		l.log.Info("lease busy; waiting", zap.String("lease", l.key.Object), zap.Time("expires", held.Add(l.ttl)))
		if err := retry.Sleep(ctx, min(l.poll, deadline.Sub(l.now()))); err != nil {
			return nil, nil, err
		}
	}
}

// try takes the lease if it is free or expired. It returns the new
// lease's timestamp, or the holder's when busy.
func (l *Lease) try(ctx context.Context) (stamp time.Time, heldSince *time.Time, err error) {
	cur, ok, serverNow, err := l.readAt(ctx)
	if err != nil {
		return time.Time{}, nil, err
	}
	if ok {
		if !l.expired(cur, serverNow) {
			return time.Time{}, &cur, nil
		}
		l.log.Info("taking over an expired lease", zap.String("lease", l.key.Object), zap.Time("taken_at", cur))
		if lost, err := l.write(ctx, true); err != nil || lost {
			return time.Time{}, &cur, err
		}
	}
	if lost, err := l.write(ctx, false); err != nil || lost {
		now := l.now()
		return time.Time{}, &now, err
	}
	stamp, _, err = l.read(ctx)
	return stamp, nil, err
}

// hold renews the lease until release or loss.
func (l *Lease) hold(ctx context.Context, stamp time.Time) (context.Context, func(), error) {
	leased, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(l.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-leased.Done():
				return
			case <-t.C:
				next, err := l.renew(leased, stamp)
				if err != nil {
					l.log.Error("lease lost", zap.String("lease", l.key.Object), zap.Error(err))
					cancel(fmt.Errorf("%w: %v", ErrLeaseLost, err))
					return
				}
				stamp = next
			}
		}
	}()
	release := func() {
		close(done)
		<-stopped
		// Give the lease back even if the run's context has ended.
		ctx := context.WithoutCancel(ctx)
		ctx, stop := context.WithTimeout(ctx, 10*time.Second)
		defer stop()
		if cur, ok, err := l.read(ctx); err == nil && ok && cur.Equal(stamp) {
			if _, err := l.s.Apply(ctx, gsync.Changes{Deletes: []gsync.Tuple{l.key}}); err != nil {
				l.log.Warn("could not give the lease back; it expires by itself", zap.Error(err))
			}
		}
		cancel(nil)
	}
	return leased, release, nil
}

// renew rewrites the lease if it is still ours (its timestamp is the one
// we wrote).
func (l *Lease) renew(ctx context.Context, stamp time.Time) (time.Time, error) {
	cur, ok, err := l.read(ctx)
	switch {
	case err != nil:
		return time.Time{}, err
	case !ok || !cur.Equal(stamp):
		return time.Time{}, errors.New("the lease tuple was replaced")
	}
	if lost, err := l.write(ctx, true); err != nil || lost {
		return time.Time{}, errors.Join(err, errors.New("the lease was deleted by someone else"))
	}
	if lost, err := l.write(ctx, false); err != nil || lost {
		return time.Time{}, errors.Join(err, errors.New("another run took the lease"))
	}
	next, _, err := l.read(ctx)
	return next, err
}

// expired reports whether a lease taken at stamp has expired, by the
// server's clock at the read (serverNow; the host's when the server sent
// none). The Date header is rounded down, so a lease is judged expired a
// second late at worst, never early.
func (l *Lease) expired(stamp, serverNow time.Time) bool {
	now := serverNow
	if now.IsZero() {
		now = l.now()
	}
	return !now.Before(stamp.Add(l.ttl))
}

// read returns the lease tuple's timestamp, if it exists.
func (l *Lease) read(ctx context.Context) (time.Time, bool, error) {
	stamp, found, _, err := l.readAt(ctx)
	return stamp, found, err
}

// readAt is read, with the server's clock at the read (its Date header,
// whole seconds; zero when it sent none). A lease's timestamp is the
// server's, so its expiry is judged by the server's clock: a host whose
// clock runs ahead would otherwise take over a live lease, and one whose
// clock runs behind would wait out a dead one longer.
func (l *Lease) readAt(ctx context.Context) (stamp time.Time, found bool, serverNow time.Time, err error) {
	body := fga.ReadRequest{
		TupleKey:    &fga.ReadRequestTupleKey{User: &l.key.User, Relation: &l.key.Relation, Object: &l.key.Object},
		PageSize:    fga.PtrInt32(1),
		Consistency: fga.ToPtr(fga.CONSISTENCYPREFERENCE_HIGHER_CONSISTENCY),
	}
	resp, err := call(ctx, &l.s.conn, "Read", l.s.storeID, nil, func(ctx context.Context) (fga.ReadResponse, *http.Response, error) {
		v, hr, err := l.s.api.Read(ctx, l.s.storeID).Body(body).Execute()
		serverNow = serverTime(hr) // zero without one: the caller uses its own clock
		return v, hr, err
	})
	if err != nil {
		return time.Time{}, false, time.Time{}, err
	}
	if len(resp.Tuples) > 0 {
		return resp.Tuples[0].Timestamp, true, serverNow, nil
	}
	return time.Time{}, false, serverNow, nil
}

// write writes (or deletes) the lease tuple, failing if it already exists
// (or is already gone). lost reports that conflict: another run was first.
func (l *Lease) write(ctx context.Context, del bool) (lost bool, err error) {
	body := fga.WriteRequest{AuthorizationModelId: fga.PtrString(l.s.modelID)}
	k := l.key
	if del {
		body.Deletes = &fga.WriteRequestDeletes{TupleKeys: []fga.TupleKeyWithoutCondition{{User: k.User, Relation: k.Relation, Object: k.Object}}, OnMissing: fga.PtrString("error")}
	} else {
		body.Writes = &fga.WriteRequestWrites{TupleKeys: []fga.TupleKey{{User: k.User, Relation: k.Relation, Object: k.Object}}, OnDuplicate: fga.PtrString("error")}
	}
	_, err = call(ctx, &l.s.conn, "Write", l.s.storeID, nil, func(ctx context.Context) (map[string]any, *http.Response, error) {
		return l.s.api.Write(ctx, l.s.storeID).Body(body).Execute()
	})
	var e *Error
	if errors.As(err, &e) && (e.Status == http.StatusBadRequest || e.Status == http.StatusConflict) {
		return true, nil
	}
	return false, err
}
