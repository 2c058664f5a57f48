package msgraph

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/groups"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"go.uber.org/zap"

	gsync "github.com/groupsync/groupsync/sync"
)

// memberReader reads the direct members of many groups with $batch
// (sendBatches): next pages and newly found subgroups join the queue of
// pages still to read, and fill the batches still to be sent.
type memberReader struct {
	s         *Source
	known     map[string]listed // every listed group, synced or not
	mu        sync.Mutex
	groups    map[string]*gsync.Group // every group of the snapshot, by id
	requested map[string]bool         // groups whose members are requested
	users     map[string]*gsync.User
	others    map[string]map[string]int // group id → member type → count
	skips     []gsync.Skip
	// noEnabled counts users that came back without accountEnabled (the
	// app cannot read users' properties): skip_disabled cannot see them.
	noEnabled int

	// For incremental reads (delta.go): keepState records what the state
	// needs besides the snapshot (the ids of members that are neither users
	// nor groups, users' properties as read); noFollow reads only the
	// groups asked for, not the subgroups found in them.
	keepState bool
	noFollow  bool
	otherIDs  map[string][]otherRef
	recs      map[string]*userRec

	// classifyNested: the group list was not read (a slice), so a nested
	// group is classified by its own properties, asked for with the
	// members, not by the list.
	classifyNested bool
}

// job is one page of one group's members.
type job struct {
	group string
	url   string // nextLink; "" for the first page
}

func newMemberReader(s *Source) *memberReader {
	return &memberReader{s: s, known: map[string]listed{}, groups: map[string]*gsync.Group{}, requested: map[string]bool{},
		users: map[string]*gsync.User{}, others: map[string]map[string]int{}}
}

func (r *memberReader) read(ctx context.Context, list []listed) (*gsync.Snapshot, error) {
	// Every listed group is in the snapshot, so the report can say why one
	// is not synced; only synced groups, and groups nested in them, have
	// their members read.
	var pending []job
	for _, l := range list {
		r.known[l.id] = l
		r.groups[l.id] = &gsync.Group{ID: l.id, Name: l.name, NotSynced: l.notSynced}
		if l.notSynced == "" {
			pending = append(pending, r.start(l.id))
		}
	}
	if err := r.readJobs(ctx, pending); err != nil {
		return nil, err
	}
	return r.snapshot(), nil
}

// readJobs reads the pages, and the pages and subgroups they lead to.
func (r *memberReader) readJobs(ctx context.Context, pending []job) error {
	return sendBatches(ctx, r.s, batchReads[job]{
		what: "member", permission: "GroupMember.Read.All",
		request: r.requestInfo,
		path:    func(j job) string { return "/groups/" + j.group + "/members" },
		name:    func(j job) string { return "members of group " + j.group },
		answer:  r.answer,
	}, pending)
}

// start marks a group's members as requested and returns the job for their
// first page. Callers hold r.mu or own r exclusively.
func (r *memberReader) start(id string) job {
	r.requested[id] = true
	return job{group: id}
}

// answer takes a page's answer and returns the jobs it leads to.
func (r *memberReader) answer(j job, a batchAnswer) ([]job, error) {
	switch a.Status {
	case http.StatusOK:
		page, err := decodeMembers(a.Body, r.s.userAttrs)
		var next []job
		if err == nil {
			next, err = r.add(j, page)
		}
		if err != nil {
			return nil, fmt.Errorf("msgraph: members of group %s: parse page: %w", r.label(j.group), err)
		}
		return next, nil
	case http.StatusNotFound:
		r.vanish(j.group)
		return nil, nil
	}
	code, msg := answerError(a.Body)
	return nil, fmt.Errorf("msgraph: read members of group %s: HTTP %d %s: %s%s",
		r.label(j.group), a.Status, code, msg, permissionHint(a.Status, "GroupMember.Read.All"))
}

func (r *memberReader) requestInfo(ctx context.Context, j job) (*abs.RequestInformation, error) {
	members := r.s.client.Groups().ByGroupId(j.group).Members()
	if j.url != "" {
		return members.WithUrl(j.url).ToGetRequestInformation(ctx, nil)
	}
	return members.ToGetRequestInformation(ctx, &groups.ItemMembersRequestBuilderGetRequestConfiguration{
		QueryParameters: &groups.ItemMembersRequestBuilderGetQueryParameters{
			Select: r.selectFields(), Top: ptr(int32(r.s.cfg.PageSize)),
		},
	})
}

// selectFields is the members' $select: with classifyNested, groups'
// kind properties too.
func (r *memberReader) selectFields() []string {
	if !r.classifyNested {
		return r.s.memberSelect()
	}
	return append(r.s.memberSelect(), groupSelect[2:]...)
}

// add records a page of members and returns the jobs it leads to: the
// next page, and the first page of each subgroup not read yet.
func (r *memberReader) add(j job, page membersPage) ([]job, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.groups[j.group]
	if g == nil {
		return nil, nil // vanished meanwhile
	}
	var next []job
	for i, m := range page.objects {
		id := m.ID
		switch kind := m.kind(); kind {
		case "user":
			// A user is listed in many groups: keep one copy of its id, and
			// make its model (for its properties) the first time only.
			if u, seen := r.users[id]; seen {
				id = u.ID
			} else {
				model, err := objectModel(m, page.raw(i), r.s.userAttrs)
				if err != nil {
					return nil, fmt.Errorf("user %s: %w", id, err)
				}
				u := r.user(model.(models.Userable))
				r.users[id] = u
				id = u.ID
			}
			g.Users = append(g.Users, id)
		case "group":
			if sub := r.groups[id]; sub != nil {
				id = sub.ID
			}
			g.Groups = append(g.Groups, id)
			if r.groups[id] == nil {
				l := r.subgroup(id, deref(m.DisplayName))
				if _, listed := r.known[id]; r.classifyNested && !listed {
					l = r.s.classify(id, propsOf(m.group()))
				}
				r.groups[id] = &gsync.Group{ID: id, Name: l.name, NotSynced: l.notSynced}
			}
			if !r.requested[id] && !r.noFollow {
				next = append(next, r.start(id))
			}
		default:
			if kind == "" {
				kind = "directoryObject"
			}
			if r.others[j.group] == nil {
				r.others[j.group] = map[string]int{}
			}
			r.others[j.group][kind]++
			if r.keepState {
				r.otherIDs[j.group] = append(r.otherIDs[j.group], otherRef{id: id, kind: kind})
			}
		}
	}
	if page.next != "" {
		next = append(next, job{group: j.group, url: page.next})
	}
	return next, nil
}

// subgroup describes a nested group found while reading members.
func (r *memberReader) subgroup(id, name string) listed {
	if l, ok := r.known[id]; ok {
		return l
	}
	why := "created after the group list was read; it is synced from the next run"
	if r.s.cfg.Groups.Filter != "" {
		why = "outside source.msgraph.groups.filter; read only for the members it gives the groups that contain it"
	}
	return listed{id: id, name: name, notSynced: why}
}

func (r *memberReader) user(u models.Userable) *gsync.User {
	out := &gsync.User{
		ID:    deref(u.GetId()),
		UPN:   deref(u.GetUserPrincipalName()),
		Mail:  deref(u.GetMail()),
		Guest: strings.EqualFold(deref(u.GetUserType()), "Guest"),
	}
	if enabled := u.GetAccountEnabled(); enabled != nil {
		out.Disabled = !*enabled
	} else {
		r.noEnabled++
	}
	if len(r.s.userAttrs) > 0 {
		out.Attributes = map[string]string{}
		for _, a := range r.s.userAttrs {
			if v := userAttribute(u, a); v != "" {
				out.Attributes[a] = v
			}
		}
	}
	if r.keepState {
		r.recs[out.ID] = r.s.userRecord(u)
	}
	return out
}

// userAttribute reads a user property by its Graph name: the SDK's typed
// fields for the common ones, additional data for the rest (extension
// attributes such as extension_<appid>_employeeNumber).
func userAttribute(u models.Userable, name string) string {
	if v := typedAttribute(u, name); v != "" {
		return v
	}
	switch v := u.GetAdditionalData()[name].(type) {
	case string:
		return v
	case *string:
		return deref(v)
	}
	return ""
}

// typedAttribute reads the properties the SDK models as fields.
func typedAttribute(u models.Userable, name string) string {
	switch name {
	case "id":
		return deref(u.GetId())
	case "displayName":
		return deref(u.GetDisplayName())
	case "userPrincipalName":
		return deref(u.GetUserPrincipalName())
	case "mail":
		return deref(u.GetMail())
	case "mailNickname":
		return deref(u.GetMailNickname())
	case "employeeId":
		return deref(u.GetEmployeeId())
	case "onPremisesSamAccountName":
		return deref(u.GetOnPremisesSamAccountName())
	case "onPremisesUserPrincipalName":
		return deref(u.GetOnPremisesUserPrincipalName())
	case "onPremisesImmutableId":
		return deref(u.GetOnPremisesImmutableId())
	case "givenName":
		return deref(u.GetGivenName())
	case "surname":
		return deref(u.GetSurname())
	}
	return ""
}

func (r *memberReader) vanish(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.groups[id]
	if g == nil {
		return
	}
	delete(r.groups, id)
	r.s.log.Warn("group vanished while its members were read; leaving it out of this run", zap.String("group_id", id), zap.String("group", g.Name))
	r.skips = append(r.skips, gsync.Skip{Kind: "group", ID: id, Name: g.Name, Reason: gsync.ReasonGroupVanished,
		Detail: "deleted in Entra ID after the group list was read (Graph answered 404 for its members); left out of this run"})
}

func (r *memberReader) label(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if g := r.groups[id]; g != nil && g.Name != "" {
		return fmt.Sprintf("%q (%s)", g.Name, id)
	}
	return id
}

func (r *memberReader) snapshot() *gsync.Snapshot {
	s := &gsync.Snapshot{Skipped: r.skips}
	for _, g := range r.groups {
		s.Groups = append(s.Groups, *g)
	}
	sort.Slice(s.Groups, func(i, j int) bool { return s.Groups[i].ID < s.Groups[j].ID })
	for _, u := range r.users {
		s.Users = append(s.Users, *u)
	}
	sort.Slice(s.Users, func(i, j int) bool { return s.Users[i].ID < s.Users[j].ID })
	for gid, kinds := range r.others {
		g := r.groups[gid]
		if g == nil {
			continue
		}
		var parts []string
		for k, n := range kinds {
			parts = append(parts, fmt.Sprintf("%d %s", n, k))
		}
		slices.Sort(parts)
		s.Skipped = append(s.Skipped, gsync.Skip{Kind: "member", ID: gid, Name: g.Name, Reason: gsync.ReasonNotUserOrGroup,
			Detail: "members that are neither users nor groups: " + strings.Join(parts, ", ")})
	}
	if r.noEnabled > 0 {
		r.s.log.Warn("users came back without accountEnabled or userType: the app cannot read user properties (grant User.Read.All), so mapping.user.skip_disabled and skip_guests cannot apply to them",
			zap.Int("users", r.noEnabled))
	}
	return s
}
