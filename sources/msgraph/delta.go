package msgraph

// Incremental reads through Graph delta queries (source.msgraph.delta).
//
// A full read is the ordinary read (the group list, members with $batch:
// fast, parallel) preceded by one request per delta query for a
// "$deltatoken=latest" link, which starts change tracking from before the
// read, so nothing that changes during the read is missed (it comes again
// in the next round, and applying a change twice is harmless). What the
// read saw becomes the state: groups with their kind and direct members,
// and, when the mapping uses them, users' properties.
//
// An incremental read follows the delta links: /groups/delta
// (displayName, kind properties, members) and, when users are tracked,
// /users/delta. Created, renamed and deleted groups, members@delta
// additions and @removed, and changed or deleted users are applied to a
// copy of the state. Whatever the state does not know that the snapshot
// needs (a group that starts to be synced, a group nested for the first
// time, a user who joins a synced group and was never read) is read by id
// with $batch, so the cost stays in proportion to the change. The snapshot
// is then built from the state exactly as the full read builds it: the
// engine sees the same groups, members, users and skips.
//
// The new state is kept pending until Commit (after a successful apply).
// A missing, corrupt, foreign or expired state, Graph's 400
// syncStateNotFound / 410 Gone / resyncRequired, and the full_sync_every
// cadence all lead to a full read, logged with the reason.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	gsync "github.com/groupsync/groupsync/sync"
)

// deltaGroupSelect is what a groups delta tracks: the properties that
// decide whether a group is synced, and its members.
var deltaGroupSelect = []string{"id", "displayName", "groupTypes", "securityEnabled", "mailEnabled", "isAssignableToRole", "members"}

// maxLinkAge is how long groupsync uses a delta link: Graph keeps them
// about 7 days; an hour of margin avoids starting a round that expires.
const maxLinkAge = 7*24*time.Hour - time.Hour

// userSelect is what a users delta tracks: what the snapshot's users carry.
func (s *Source) userSelect() []string {
	sel := []string{"id", "userPrincipalName", "mail", "accountEnabled", "userType"}
	for _, a := range s.userAttrs {
		if !slices.Contains(sel, a) {
			sel = append(sel, a)
		}
	}
	return sel
}

// trackUsers reports whether the mapping uses anything of users besides
// their id, so that user changes must be followed.
func (s *Source) trackUsers() bool { return s.needUsers || s.wantUserState || len(s.userAttrs) > 0 }

// fingerprint names what a state was built for: a state built for another
// tenant, endpoint, group filter or set of user properties is not used.
func (s *Source) fingerprint() string {
	attrs := slices.Clone(s.userAttrs)
	slices.Sort(attrs)
	h := sha256.New()
	fmt.Fprintf(h, "v1\x00%s\x00%s\x00%s\x00%t\x00%s", s.baseURL, s.cfg.TenantID, s.cfg.Groups.Filter, s.trackUsers(), strings.Join(slices.Compact(attrs), ","))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// fullReason is why a read is full.
type fullReason struct {
	why  string
	warn bool // something went wrong, rather than expected (first run, cadence)
}

// resyncError ends an incremental read that must become a full one.
type resyncError struct{ fullReason }

func (e *resyncError) Error() string { return e.why }

// pendingState is the state of the last Snapshot, encoded as Snapshot
// returns it: the run that follows holds the few megabytes of its encoding
// instead of the state itself (at a large tenant, tens of megabytes of
// maps and records beside the snapshot at the run's peak).
type pendingState struct {
	data          []byte
	groups, users int
	encodeTook    time.Duration
}

// pend encodes st as the state to commit.
func (s *Source) pend(st *deltaState) error {
	start := time.Now()
	data, err := st.encode()
	if err != nil {
		return fmt.Errorf("msgraph: encode the delta state: %w", err)
	}
	s.pending = &pendingState{data: data, groups: len(st.groups), users: len(st.users), encodeTook: time.Since(start)}
	return nil
}

// Commit saves the state of the last Snapshot. Call it only after the plan
// built from that snapshot was applied; without delta, after a failed
// Snapshot, or after one under gsync.WithoutCommit, it does nothing.
func (s *Source) Commit(ctx context.Context) error {
	p := s.pending
	if p == nil {
		return nil
	}
	start := time.Now()
	if err := s.store.Save(ctx, p.data); err != nil {
		return fmt.Errorf("msgraph: save the delta state to %s: %w", s.store, err)
	}
	s.pending = nil
	s.log.Info("delta state saved", zap.Stringer("store", s.store), zap.Int("bytes", len(p.data)),
		zap.Int("groups", p.groups), zap.Int("users", p.users), zap.Duration("encode_took", p.encodeTook),
		zap.Duration("save_took", time.Since(start)))
	return nil
}

// LastRead says how the last Snapshot read: full or incremental, and why.
func (s *Source) LastRead() gsync.SourceRead { return s.lastRead }

// deltaSnapshot is Snapshot with source.msgraph.delta enabled.
func (s *Source) deltaSnapshot(ctx context.Context) (*gsync.Snapshot, error) {
	start := time.Now()
	before := s.stats.at()
	s.pending = nil
	var (
		snap    *gsync.Snapshot
		changes int
		err     error
	)
	old, reason := s.loadState(ctx)
	if old != nil {
		snap, changes, err = s.readIncremental(ctx, old)
		var rs *resyncError
		switch {
		case errors.As(err, &rs):
			reason = &rs.fullReason
		case err != nil:
			return nil, err
		}
	}
	mode := "incremental"
	if reason != nil {
		mode = "full"
		lvl := zapcore.InfoLevel
		if reason.warn {
			lvl = zapcore.WarnLevel
		}
		s.log.Log(lvl, "falling back to a full sync because "+reason.why, zap.Stringer("state", s.store))
		var next *deltaState
		if snap, next, err = s.readFull(ctx); err != nil {
			return nil, err
		}
		if gsync.WillCommit(ctx) { // a plan never commits
			if err := s.pend(next); err != nil {
				return nil, err
			}
		}
	}
	s.lastRead = s.readSince(before, mode)
	s.lastRead.Changes = changes
	if reason != nil {
		s.lastRead.Reason = reason.why
	}
	s.log.Info("Graph read", zap.String("mode", mode), zap.Int("changes", changes),
		zap.Int("groups", len(snap.Groups)), zap.Int("users", len(snap.Users)),
		zap.Int64("requests", s.lastRead.Requests), zap.Int64("retries", s.stats.Retries.Load()),
		zap.Duration("took", time.Since(start)))
	return snap, nil
}

// loadState returns the committed state, or why it cannot be used.
func (s *Source) loadState(ctx context.Context) (*deltaState, *fullReason) {
	data, err := s.store.Load(ctx)
	if err != nil {
		return nil, &fullReason{fmt.Sprintf("the incremental state could not be read: %v", err), true}
	}
	if data == nil {
		return nil, &fullReason{fmt.Sprintf("there is no incremental state yet in %s (the first run, or no run was applied since it was cleared)", s.store), false}
	}
	st, err := decodeState(data)
	if err != nil {
		return nil, &fullReason{fmt.Sprintf("the incremental state in %s is corrupt (%v)", s.store, err), true}
	}
	now := s.now()
	switch {
	case st.fingerprint != s.fingerprint():
		return nil, &fullReason{"the settings the incremental state was built with changed (Graph endpoint, tenant, source.msgraph.groups.filter, or the user properties the mapping uses)", false}
	case st.groupsLink == "" || (st.usersTracked && st.usersLink == ""):
		return nil, &fullReason{fmt.Sprintf("the incremental state in %s has no delta link", s.store), true}
	case now.Sub(st.linkAt) > maxLinkAge:
		return nil, &fullReason{fmt.Sprintf("the delta links are %s old and Graph keeps them for about 7 days", now.Sub(st.linkAt).Round(time.Minute)), false}
	}
	if every := time.Duration(s.cfg.Delta.FullSyncEvery); every > 0 && now.Sub(st.fullAt) >= every {
		return nil, &fullReason{fmt.Sprintf("the last full sync was %s ago (source.msgraph.delta.full_sync_every: %s)", now.Sub(st.fullAt).Round(time.Second), every), false}
	}
	return st, nil
}

// resync reports whether Graph refused a delta link for good: expired
// (400 syncStateNotFound), invalid, or reset (410 Gone, resyncRequired).
func resync(err error, resource string) (*resyncError, bool) {
	var od *odataerrors.ODataError
	if !errors.As(err, &od) {
		return nil, false
	}
	code := ""
	if e := od.GetErrorEscaped(); e != nil {
		code = deref(e.GetCode())
	}
	switch {
	case od.ResponseStatusCode == http.StatusGone,
		strings.EqualFold(code, "syncStateNotFound"), strings.EqualFold(code, "syncStateInvalid"), strings.EqualFold(code, "resyncRequired"):
		return &resyncError{fullReason{fmt.Sprintf("Graph no longer accepts the %s delta link (HTTP %d %s)", resource, od.ResponseStatusCode, code), true}}, true
	}
	return nil, false
}
