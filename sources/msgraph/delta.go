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
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/groupsync/groupsync/internal/retry"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/groups"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"

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

// Commit saves the state of the last Snapshot. Call it only after the plan
// built from that snapshot was applied; without delta, or after a failed
// Snapshot, it does nothing.
func (s *Source) Commit(ctx context.Context) error {
	st := s.pending
	if st == nil {
		return nil
	}
	start := time.Now()
	data, err := st.encode()
	if err != nil {
		return fmt.Errorf("msgraph: encode the delta state: %w", err)
	}
	if err := s.store.Save(ctx, data); err != nil {
		return fmt.Errorf("msgraph: save the delta state to %s: %w", s.store, err)
	}
	s.pending = nil
	s.log.Info("delta state saved", zap.Stringer("store", s.store), zap.Int("bytes", len(data)),
		zap.Int("groups", len(st.groups)), zap.Int("users", len(st.users)), zap.Duration("took", time.Since(start)))
	return nil
}

// LastRead says how the last Snapshot read: full or incremental, and why.
func (s *Source) LastRead() gsync.SourceRead { return s.lastRead }

// deltaSnapshot is Snapshot with source.msgraph.delta enabled.
func (s *Source) deltaSnapshot(ctx context.Context) (*gsync.Snapshot, error) {
	start := time.Now()
	before := s.stats.Requests.Load()
	s.pending = nil
	var (
		snap    *gsync.Snapshot
		next    *deltaState
		changes int
		err     error
	)
	old, reason := s.loadState(ctx)
	if old != nil {
		snap, next, changes, err = s.readIncremental(ctx, old)
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
		if snap, next, err = s.readFull(ctx); err != nil {
			return nil, err
		}
	}
	s.pending = next
	s.lastRead = gsync.SourceRead{Mode: mode, Requests: s.stats.Requests.Load() - before, Changes: changes}
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

// ---- full read ----

// readFull starts delta tracking, then reads everything as without delta,
// and keeps what it read as the state.
func (s *Source) readFull(ctx context.Context) (*gsync.Snapshot, *deltaState, error) {
	now := s.now()
	st := &deltaState{fingerprint: s.fingerprint(), groups: map[string]*groupRec{}, users: map[string]*userRec{}, fullAt: now, linkAt: now}
	link, err := s.latestLink(ctx, "groups", deltaGroupSelect)
	if err != nil {
		return nil, nil, fmt.Errorf("msgraph: start tracking group changes (GET /groups/delta): %w", describe(err, "GroupMember.Read.All"))
	}
	st.groupsLink = link
	if s.trackUsers() {
		link, err := s.latestLink(ctx, "users", s.userSelect())
		switch {
		case err == nil:
			st.usersLink, st.usersTracked = link, true
		case statusOf(err) == http.StatusForbidden:
			// As the full read: without User.Read.All users are ids only.
			s.log.Warn("cannot track user changes (GET /users/delta answered 403; grant User.Read.All): incremental reads keep users as ids only, so mapping.user.skip_disabled, skip_guests and keys other than id cannot apply to them")
		default:
			return nil, nil, fmt.Errorf("msgraph: start tracking user changes (GET /users/delta): %w", describe(err, "User.Read.All"))
		}
	}

	list, err := s.listGroups(ctx)
	if err != nil {
		return nil, nil, err
	}
	r := newMemberReader(s)
	r.keepState, r.otherIDs, r.recs = true, map[string][]otherRef{}, map[string]*userRec{}
	snap, err := r.read(ctx, list)
	if err != nil {
		return nil, nil, err
	}
	for _, l := range list {
		g := r.groups[l.id]
		if g == nil {
			continue // vanished during the read; the next round removes it
		}
		rec := &groupRec{name: l.name, flags: flagsOf(l.props)}
		if r.requested[l.id] {
			rec.setMembers(g, r.otherIDs[l.id])
		}
		st.groups[l.id] = rec
	}
	for id, g := range r.groups {
		if _, listed := st.groups[id]; !listed {
			// A subgroup outside the group filter: its members were read,
			// its kind is not known.
			rec := &groupRec{name: g.Name}
			rec.setMembers(g, r.otherIDs[id])
			st.groups[id] = rec
		}
	}
	if st.usersTracked {
		st.users = r.recs
	}
	return snap, st, nil
}

// setMembers fills a record from a group as read, and marks it complete.
func (g *groupRec) setMembers(read *gsync.Group, others []otherRef) {
	g.users = sortedUnique(read.Users)
	g.groups = sortedUnique(read.Groups)
	g.others = slices.Clone(others)
	slices.SortFunc(g.others, func(a, b otherRef) int { return cmp.Compare(a.id, b.id) })
	g.others = slices.CompactFunc(g.others, func(a, b otherRef) bool { return a.id == b.id })
	g.flags |= gComplete
}

func sortedUnique(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// latestLink asks for a delta link that starts from now.
func (s *Source) latestLink(ctx context.Context, resource string, sel []string) (string, error) {
	url := s.baseURL + "/" + resource + "/delta?$select=" + strings.Join(sel, ",") + "&$deltatoken=latest"
	if resource == "groups" {
		_, link, err := s.groupRound(ctx, url)
		return link, err
	}
	_, link, err := s.userRound(ctx, url)
	return link, err
}

// groupRound follows a groups delta round to its deltaLink.
func (s *Source) groupRound(ctx context.Context, link string) ([]models.Groupable, string, error) {
	return deltaRound(ctx, link, "groups", func(ctx context.Context, link string) (deltaPage[models.Groupable], error) {
		return s.client.Groups().Delta().WithUrl(link).GetAsDeltaGetResponse(ctx, nil)
	})
}

// userRound follows a users delta round to its deltaLink.
func (s *Source) userRound(ctx context.Context, link string) ([]models.Userable, string, error) {
	return deltaRound(ctx, link, "users", func(ctx context.Context, link string) (deltaPage[models.Userable], error) {
		return s.client.Users().Delta().WithUrl(link).GetAsDeltaGetResponse(ctx, nil)
	})
}

// deltaPage is what the SDK's delta responses have in common.
type deltaPage[T any] interface {
	GetValue() []T
	GetOdataNextLink() *string
	GetOdataDeltaLink() *string
}

// deltaRound follows nextLinks from link to the round's deltaLink and
// returns every object on the way.
func deltaRound[T any](ctx context.Context, link, what string, get func(context.Context, string) (deltaPage[T], error)) ([]T, string, error) {
	var out []T
	for {
		page, err := get(ctx, link)
		if err != nil {
			return nil, "", err
		}
		out = append(out, page.GetValue()...)
		if next := deref(page.GetOdataNextLink()); next != "" {
			link = next
			continue
		}
		delta := deref(page.GetOdataDeltaLink())
		if delta == "" {
			return nil, "", fmt.Errorf("Graph ended a %s delta round without @odata.deltaLink", what)
		}
		return out, delta, nil
	}
}

func statusOf(err error) int {
	var od *odataerrors.ODataError
	if errors.As(err, &od) {
		return od.ResponseStatusCode
	}
	return 0
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

// ---- incremental read ----

// stateWriter changes a cloned state, copying each record before its first
// change so that the committed state is never touched.
type stateWriter struct {
	s          *Source
	st         *deltaState
	ownG, ownU map[string]bool
	goneGroups map[string]bool // deleted, as delta or a read by id said
	goneUsers  map[string]bool
	staleUsers map[string]bool // to read again by id
	skips      []gsync.Skip
}

func (w *stateWriter) group(id string) *groupRec {
	g := w.st.groups[id]
	switch {
	case g == nil:
		g = &groupRec{}
	case !w.ownG[id]:
		g = g.clone()
	default:
		return g
	}
	w.st.groups[id] = g
	w.ownG[id] = true
	return g
}

// memberChange is one entry of members@delta.
type memberChange struct {
	id, kind string // kind: "user", "group" or another directory object type
	present  bool
}

func readMemberChanges(ad map[string]any) []memberChange {
	raw, _ := ad["members@delta"].([]any)
	out := make([]memberChange, 0, len(raw))
	for _, e := range raw {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		id := anyString(m["id"])
		if id == "" {
			continue
		}
		kind := strings.TrimPrefix(anyString(m["@odata.type"]), "#microsoft.graph.")
		if kind == "" {
			kind = "directoryObject"
		}
		_, removed := m["@removed"]
		out = append(out, memberChange{id: id, kind: kind, present: !removed})
	}
	return out
}

func anyString(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case *string:
		return deref(s)
	}
	return ""
}

func (s *Source) readIncremental(ctx context.Context, old *deltaState) (*gsync.Snapshot, *deltaState, int, error) {
	now := s.now()
	w := &stateWriter{s: s, st: old.clone(), ownG: map[string]bool{}, ownU: map[string]bool{},
		goneGroups: map[string]bool{}, goneUsers: map[string]bool{}, staleUsers: map[string]bool{}}
	entries, glink, err := s.groupRound(ctx, old.groupsLink)
	if err != nil {
		if rs, ok := resync(err, "groups"); ok {
			return nil, nil, 0, rs
		}
		return nil, nil, 0, fmt.Errorf("msgraph: read group changes (GET /groups/delta): %w", describe(err, "GroupMember.Read.All"))
	}
	changes := w.applyGroups(entries)
	w.st.groupsLink = glink
	if old.usersTracked {
		uentries, ulink, err := s.userRound(ctx, old.usersLink)
		if err != nil {
			if rs, ok := resync(err, "users"); ok {
				return nil, nil, 0, rs
			}
			return nil, nil, 0, fmt.Errorf("msgraph: read user changes (GET /users/delta): %w", describe(err, "User.Read.All"))
		}
		changes += w.applyUsers(uentries)
		w.st.usersLink = ulink
	}
	w.st.linkAt = now
	snap, err := w.resolveAndView(ctx)
	if err != nil {
		return nil, nil, 0, err
	}
	return snap, w.st, changes, nil
}

// applyGroups applies a groups delta round and returns how many groups
// changed. A group may come on several pages; entries are applied in order.
func (w *stateWriter) applyGroups(entries []models.Groupable) int {
	changed := map[string]bool{}
	edits := map[string]map[string]memberChange{}
	for _, g := range entries {
		id := deref(g.GetId())
		if id == "" {
			continue
		}
		changed[id] = true
		if _, removed := g.GetAdditionalData()["@removed"]; removed {
			delete(w.st.groups, id)
			delete(edits, id)
			w.goneGroups[id] = true
			continue
		}
		delete(w.goneGroups, id)
		rec := w.group(id)
		if g.GetDisplayName() != nil {
			// Graph sends every selected property of a changed group; one
			// without its name (a partial object) leaves the kind as known.
			rec.name = deref(g.GetDisplayName())
			rec.flags = flagsOf(propsOf(g)) | rec.flags&gComplete
		}
		if rec.flags&gComplete == 0 {
			continue // members unknown: read in full if it comes to matter
		}
		for _, m := range readMemberChanges(g.GetAdditionalData()) {
			if edits[id] == nil {
				edits[id] = map[string]memberChange{}
			}
			edits[id][m.id] = m // the last entry for a member wins
		}
	}
	for id, es := range edits {
		if rec := w.st.groups[id]; rec != nil && rec.flags&gComplete != 0 {
			rec.applyEdits(es)
		}
	}
	return len(changed)
}

// applyEdits merges member changes into the sorted member lists.
func (g *groupRec) applyEdits(es map[string]memberChange) {
	var addU, addG []string
	var addO []otherRef
	for id, e := range es {
		if !e.present {
			continue
		}
		switch e.kind {
		case "user":
			addU = append(addU, id)
		case "group":
			addG = append(addG, id)
		default:
			addO = append(addO, otherRef{id: id, kind: e.kind})
		}
	}
	slices.Sort(addU)
	slices.Sort(addG)
	slices.SortFunc(addO, func(a, b otherRef) int { return cmp.Compare(a.id, b.id) })
	drop := func(id string) bool { _, touched := es[id]; return touched }
	g.users = mergeSorted(g.users, addU, drop, func(s string) string { return s })
	g.groups = mergeSorted(g.groups, addG, drop, func(s string) string { return s })
	g.others = mergeSorted(g.others, addO, drop, func(o otherRef) string { return o.id })
}

// mergeSorted returns list without the ids drop says, with adds merged in;
// both inputs are sorted by key, and so is the result.
func mergeSorted[T any](list, adds []T, drop func(string) bool, key func(T) string) []T {
	out := make([]T, 0, len(list)+len(adds))
	i, j := 0, 0
	for i < len(list) || j < len(adds) {
		switch {
		case j == len(adds) || (i < len(list) && key(list[i]) < key(adds[j])):
			if !drop(key(list[i])) {
				out = append(out, list[i])
			}
			i++
		case i == len(list) || key(adds[j]) < key(list[i]):
			out = append(out, adds[j])
			j++
		default:
			out = append(out, adds[j])
			i++
			j++
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// applyUsers applies a users delta round and returns how many users changed.
func (w *stateWriter) applyUsers(entries []models.Userable) int {
	changed := map[string]bool{}
	for _, u := range entries {
		id := deref(u.GetId())
		if id == "" {
			continue
		}
		changed[id] = true
		if _, removed := u.GetAdditionalData()["@removed"]; removed {
			delete(w.st.users, id)
			w.goneUsers[id] = true
			continue
		}
		delete(w.goneUsers, id)
		if u.GetUserPrincipalName() == nil {
			// Every user has a UPN: an object without one is partial, so
			// read the user again if the snapshot needs it.
			w.staleUsers[id] = true
			continue
		}
		w.st.users[id] = w.s.userRecord(u)
		w.ownU[id] = true
		delete(w.staleUsers, id)
	}
	return len(changed)
}

// userRecord keeps what the snapshot's user needs.
func (s *Source) userRecord(u models.Userable) *userRec {
	rec := &userRec{upn: deref(u.GetUserPrincipalName()), mail: deref(u.GetMail())}
	if e := u.GetAccountEnabled(); e != nil {
		rec.flags |= uEnabledKnown
		if *e {
			rec.flags |= uEnabled
		}
	}
	if strings.EqualFold(deref(u.GetUserType()), "Guest") {
		rec.flags |= uGuest
	}
	for _, a := range s.userAttrs {
		if v := userAttribute(u, a); v != "" {
			if rec.attrs == nil {
				rec.attrs = map[string]string{}
			}
			rec.attrs[a] = v
		}
	}
	return rec
}

// ---- resolving what the state does not know ----

// maxResolveRounds bounds the rounds of reads by id (one per nesting level
// reached for the first time).
const maxResolveRounds = 64

// resolveAndView reads what the snapshot needs and the state lacks, then
// builds the snapshot.
func (w *stateWriter) resolveAndView(ctx context.Context) (*gsync.Snapshot, error) {
	s := w.s
	var list []listed
	if s.cfg.Groups.Filter != "" {
		// Graph evaluates the filter: list the groups it lets through
		// (pages of 999: a few requests), with their kind.
		var err error
		if list, err = s.listGroups(ctx); err != nil {
			return nil, err
		}
		for _, l := range list {
			if rec := w.st.groups[l.id]; rec == nil || rec.name != l.name || rec.flags&^gComplete != flagsOf(l.props) {
				rec = w.group(l.id)
				rec.name, rec.flags = l.name, flagsOf(l.props)|rec.flags&gComplete
			}
			delete(w.goneGroups, l.id)
		}
	}
	for round := 0; ; round++ {
		if s.cfg.Groups.Filter == "" {
			list = list[:0]
			for id, rec := range w.st.groups {
				if rec.flags&gKnown != 0 {
					list = append(list, s.classify(id, rec.props()))
				}
			}
		}
		props, members, users := w.missing(list)
		if len(props)+len(members)+len(users) == 0 {
			break
		}
		if round == maxResolveRounds {
			return nil, fmt.Errorf("msgraph: groups nested deeper than %d levels could not be resolved", maxResolveRounds)
		}
		s.log.Debug("reading what the delta state lacks", zap.Int("group_properties", len(props)),
			zap.Int("group_members", len(members)), zap.Int("users", len(users)))
		if err := w.readGroupProps(ctx, props); err != nil {
			return nil, err
		}
		if err := w.readMembers(ctx, members); err != nil {
			return nil, err
		}
		if err := w.readUsers(ctx, users); err != nil {
			return nil, err
		}
	}
	snap := w.view(list)
	w.pruneUsers()
	return snap, nil
}

// missing walks from the synced groups through their subgroups, as the
// full read does, and lists what must be read first: properties of groups
// the state does not know (or, without a filter, every group's kind),
// members of groups the state has without members, and users it has not
// read.
func (w *stateWriter) missing(list []listed) (props, members, users []string) {
	if w.s.cfg.Groups.Filter == "" {
		for id, rec := range w.st.groups {
			if rec.flags&gKnown == 0 && !w.goneGroups[id] {
				props = append(props, id)
			}
		}
		if len(props) > 0 {
			sort.Strings(props)
			return props, nil, nil // their kind decides what is read
		}
	}
	seen := map[string]bool{}
	var queue []string
	for _, l := range list {
		if l.notSynced == "" {
			seen[l.id] = true
			queue = append(queue, l.id)
		}
	}
	userSeen := map[string]bool{}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		rec := w.st.groups[id]
		if rec == nil {
			props = append(props, id) // nested, never read: its name, then its members
			continue
		}
		if rec.flags&gComplete == 0 {
			members = append(members, id)
			continue
		}
		for _, g := range rec.groups {
			if !seen[g] && !w.goneGroups[g] {
				seen[g] = true
				queue = append(queue, g)
			}
		}
		if !w.st.usersTracked {
			continue
		}
		for _, u := range rec.users {
			if userSeen[u] {
				continue
			}
			userSeen[u] = true
			if (w.st.users[u] == nil && !w.goneUsers[u]) || w.staleUsers[u] {
				users = append(users, u)
			}
		}
	}
	sort.Strings(props)
	sort.Strings(members)
	sort.Strings(users)
	return props, members, users
}

// readGroupProps reads groups by id; a group that is gone is left out.
func (w *stateWriter) readGroupProps(ctx context.Context, ids []string) error {
	s := w.s
	var mu sync.Mutex
	gone, err := s.batchGet(ctx, ids, "group", func(ctx context.Context, id string) (*abs.RequestInformation, error) {
		return s.client.Groups().ByGroupId(id).ToGetRequestInformation(ctx, &groups.GroupItemRequestBuilderGetRequestConfiguration{
			QueryParameters: &groups.GroupItemRequestBuilderGetQueryParameters{Select: groupSelect}})
	}, func(id string, resp msgraphcore.BatchResponse, item string) error {
		g, err := msgraphcore.GetBatchResponseById[models.Groupable](resp, item, models.CreateGroupFromDiscriminatorValue)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		rec := w.group(id)
		p := propsOf(g)
		rec.name, rec.flags = p.name, flagsOf(p)|rec.flags&gComplete
		return nil
	}, "GroupMember.Read.All")
	for _, id := range gone {
		delete(w.st.groups, id)
		w.goneGroups[id] = true
	}
	return err
}

// readMembers reads the direct members of groups with the full read's
// member reader (without following subgroups: the walk does that).
func (w *stateWriter) readMembers(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	r := newMemberReader(w.s)
	r.keepState, r.noFollow, r.otherIDs, r.recs = true, true, map[string][]otherRef{}, map[string]*userRec{}
	var jobs []job
	for _, id := range ids {
		rec := w.st.groups[id]
		r.groups[id] = &gsync.Group{ID: id, Name: rec.name}
		r.known[id] = listed{id: id, name: rec.name}
		jobs = append(jobs, r.start(id))
	}
	if err := r.readJobs(ctx, jobs); err != nil {
		return err
	}
	for _, id := range ids {
		g := r.groups[id]
		if g == nil { // 404: deleted meanwhile
			delete(w.st.groups, id)
			w.goneGroups[id] = true
			continue
		}
		w.group(id).setMembers(g, r.otherIDs[id])
		// Nested groups the state never saw: their names come with them.
		for _, sub := range g.Groups {
			if w.st.groups[sub] == nil && r.groups[sub] != nil && !w.goneGroups[sub] {
				w.group(sub).name = r.groups[sub].Name
			}
		}
	}
	if w.st.usersTracked {
		for id, rec := range r.recs {
			w.st.users[id] = rec
			w.ownU[id] = true
			delete(w.staleUsers, id)
		}
	}
	w.skips = append(w.skips, r.skips...)
	return nil
}

// readUsers reads users by id; a user who is gone is left out.
func (w *stateWriter) readUsers(ctx context.Context, ids []string) error {
	s := w.s
	var mu sync.Mutex
	gone, err := s.batchGet(ctx, ids, "user", func(ctx context.Context, id string) (*abs.RequestInformation, error) {
		return s.client.Users().ByUserId(id).ToGetRequestInformation(ctx, &users.UserItemRequestBuilderGetRequestConfiguration{
			QueryParameters: &users.UserItemRequestBuilderGetQueryParameters{Select: s.userSelect()}})
	}, func(id string, resp msgraphcore.BatchResponse, item string) error {
		u, err := msgraphcore.GetBatchResponseById[models.Userable](resp, item, models.CreateUserFromDiscriminatorValue)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		w.st.users[id] = s.userRecord(u)
		w.ownU[id] = true
		delete(w.staleUsers, id)
		return nil
	}, "User.Read.All")
	for _, id := range gone {
		delete(w.st.users, id)
		w.goneUsers[id] = true
		delete(w.staleUsers, id)
	}
	return err
}

// pruneUsers drops users no group of the state has as a member: the state
// keeps only what a later snapshot may need (a user who joins a group
// again is read by id).
func (w *stateWriter) pruneUsers() {
	if !w.st.usersTracked || len(w.st.users) == 0 {
		return
	}
	used := make(map[string]bool, len(w.st.users))
	for _, g := range w.st.groups {
		for _, u := range g.users {
			used[u] = true
		}
	}
	for id := range w.st.users {
		if !used[id] {
			delete(w.st.users, id)
		}
	}
}

// view builds the snapshot from the state, as memberReader builds it from
// what it reads: every listed group, the synced ones and every group nested
// in them with their members, the users among those members, and the
// members that are neither.
func (w *stateWriter) view(list []listed) *gsync.Snapshot {
	s := w.s
	known := make(map[string]listed, len(list))
	groupsOut := make(map[string]*gsync.Group, len(list))
	var queue []string
	read := map[string]bool{}
	for _, l := range list {
		if w.st.groups[l.id] == nil {
			continue // deleted after it was listed (its members read 404)
		}
		known[l.id] = l
		groupsOut[l.id] = &gsync.Group{ID: l.id, Name: l.name, NotSynced: l.notSynced}
		if l.notSynced == "" {
			read[l.id] = true
			queue = append(queue, l.id)
		}
	}
	usersOut := map[string]*gsync.User{}
	snap := &gsync.Snapshot{Skipped: slices.Clone(w.skips)}
	noEnabled := 0
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		rec, g := w.st.groups[id], groupsOut[id]
		if rec == nil || rec.flags&gComplete == 0 {
			continue // gone (resolved as deleted)
		}
		for _, u := range rec.users {
			var ur *userRec
			if w.st.usersTracked {
				if ur = w.st.users[u]; ur == nil {
					continue // deleted: no longer a member
				}
			}
			g.Users = append(g.Users, u)
			if usersOut[u] == nil {
				usersOut[u] = s.snapshotUser(u, ur, w.st.usersTracked)
				if w.st.usersTracked && ur.flags&uEnabledKnown == 0 {
					noEnabled++
				}
			}
		}
		for _, sub := range rec.groups {
			srec := w.st.groups[sub]
			if srec == nil {
				continue // deleted
			}
			g.Groups = append(g.Groups, sub)
			if groupsOut[sub] == nil {
				l, ok := known[sub]
				if !ok {
					why := "created after the group list was read; it is synced from the next run"
					if s.cfg.Groups.Filter != "" {
						why = "outside source.msgraph.groups.filter; read only for the members it gives the groups that contain it"
					}
					l = listed{id: sub, name: srec.name, notSynced: why}
				}
				groupsOut[sub] = &gsync.Group{ID: sub, Name: l.name, NotSynced: l.notSynced}
			}
			if !read[sub] {
				read[sub] = true
				queue = append(queue, sub)
			}
		}
		if len(rec.others) > 0 {
			kinds := map[string]int{}
			for _, o := range rec.others {
				kinds[o.kind]++
			}
			var parts []string
			for k, n := range kinds {
				parts = append(parts, fmt.Sprintf("%d %s", n, k))
			}
			slices.Sort(parts)
			snap.Skipped = append(snap.Skipped, gsync.Skip{Kind: "member", ID: id, Name: g.Name, Reason: gsync.ReasonNotUserOrGroup,
				Detail: "members that are neither users nor groups: " + strings.Join(parts, ", ")})
		}
	}
	for _, g := range groupsOut {
		snap.Groups = append(snap.Groups, *g)
	}
	sort.Slice(snap.Groups, func(i, j int) bool { return snap.Groups[i].ID < snap.Groups[j].ID })
	for _, u := range usersOut {
		snap.Users = append(snap.Users, *u)
	}
	sort.Slice(snap.Users, func(i, j int) bool { return snap.Users[i].ID < snap.Users[j].ID })
	if noEnabled > 0 {
		s.log.Warn("users came back without accountEnabled or userType: the app cannot read user properties (grant User.Read.All), so mapping.user.skip_disabled and skip_guests cannot apply to them",
			zap.Int("users", noEnabled))
	}
	return snap
}

// snapshotUser is the snapshot's user from the state's record (nil when
// users are not tracked: the mapping needs only their ids).
func (s *Source) snapshotUser(id string, rec *userRec, tracked bool) *gsync.User {
	u := &gsync.User{ID: id}
	if !tracked {
		return u
	}
	u.UPN, u.Mail = rec.upn, rec.mail
	u.Guest = rec.flags&uGuest != 0
	u.Disabled = rec.flags&uEnabledKnown != 0 && rec.flags&uEnabled == 0
	if len(s.userAttrs) > 0 {
		u.Attributes = map[string]string{}
		for _, a := range s.userAttrs {
			if v := rec.attrs[a]; v != "" {
				u.Attributes[a] = v
			}
		}
	}
	return u
}

// ---- reads by id ----

// batchGet sends one GET per id in $batch requests (20 items, a few in
// flight), retrying throttled and failed items as the member reader does;
// keep handles each 200. It returns the ids Graph answered 404 for.
func (s *Source) batchGet(ctx context.Context, ids []string, what string,
	info func(context.Context, string) (*abs.RequestInformation, error),
	keep func(id string, resp msgraphcore.BatchResponse, item string) error, permission string) ([]string, error) {
	type pending struct {
		id       string
		attempts int
		waited   time.Duration
	}
	var (
		mu    sync.Mutex
		gone  []string
		queue = make([]pending, len(ids))
	)
	for i, id := range ids {
		queue[i] = pending{id: id}
	}
	for len(queue) > 0 {
		var next []pending
		var wait time.Duration
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(s.cfg.MaxParallelRequests)
		for chunk := range slices.Chunk(queue, batchSize) {
			g.Go(func() error {
				req := msgraphcore.NewBatchRequest(s.adapter)
				byItem := map[string]pending{}
				for _, p := range chunk {
					ri, err := info(gctx, p.id)
					if err != nil {
						return fmt.Errorf("msgraph: build request for %s %s: %w", what, p.id, err)
					}
					step, err := req.AddBatchRequestStep(*ri)
					if err != nil {
						return fmt.Errorf("msgraph: build batch: %w", err)
					}
					byItem[*step.GetId()] = p
				}
				s.stats.BatchItems.Add(int64(len(chunk)))
				resp, err := req.Send(gctx, s.adapter)
				if err != nil {
					return fmt.Errorf("msgraph: $batch of %d %s reads: %w", len(chunk), what, describe(err, permission))
				}
				for item, p := range byItem {
					r := resp.GetResponseById(item)
					if r == nil || r.GetStatus() == nil {
						return fmt.Errorf("msgraph: $batch answer lacks request %s (%s %s)", item, what, p.id)
					}
					switch status := int(*r.GetStatus()); {
					case status == http.StatusOK:
						if err := keep(p.id, resp, item); err != nil {
							return fmt.Errorf("msgraph: read %s %s: %w", what, p.id, err)
						}
					case status == http.StatusNotFound:
						mu.Lock()
						gone = append(gone, p.id)
						mu.Unlock()
					case retryableStatus(status):
						d, ok := retryAfterMap(r.GetHeaders())
						if !ok {
							d = retry.Backoff(s.retryMin(), p.attempts+1)
						}
						s.stats.Retries.Add(1)
						if status == http.StatusTooManyRequests {
							s.stats.Throttled.Add(1)
						}
						p.attempts++
						if p.attempts > s.cfg.MaxRetries || p.waited+d > time.Duration(s.cfg.MaxRetryWait) {
							code, msg := itemError(r.GetBody())
							return &GiveUpError{Method: "GET", Path: "/" + what + "s/" + p.id + " (in $batch)",
								Attempts: p.attempts, Waited: p.waited, Status: status, Code: code, Message: msg}
						}
						p.waited += d
						mu.Lock()
						next = append(next, p)
						wait = max(wait, d)
						mu.Unlock()
					default:
						code, msg := itemError(r.GetBody())
						return fmt.Errorf("msgraph: read %s %s: HTTP %d %s: %s%s", what, p.id, status, code, msg, permissionHint(status, permission))
					}
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		if wait > 0 {
			if err := retry.Sleep(ctx, wait); err != nil {
				return nil, err
			}
			s.stats.addWait(wait)
		}
		queue = next
	}
	return gone, nil
}
