package msgraph

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/groups"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	gsync "github.com/groupsync/groupsync/sync"
)

var _ gsync.SliceSource = (*Source)(nil)

// SnapshotSlice reads a slice of the tenant (see gsync.SliceSource), with
// $batch as a full read does, and counts its requests in LastRead (mode
// "slice").
//
// A user costs three reads in one $batch when named by userPrincipalName
// or object id (Graph takes either in /users/{id}): the user, their direct
// groups (/memberOf/microsoft.graph.group) and all their groups with the
// properties that decide whether each is synced
// (/transitiveMemberOf/microsoft.graph.group); then, in the next $batch,
// each of those groups' own direct groups, for the links between them that
// userset and direct nesting need. A user named by mail or another
// attribute is found with /users?$filter= first. Only the named users are
// listed as members.
//
// A group, named by object id or display name (/groups?$filter=
// displayName eq ...: names are not unique, every match is read), is read
// as a full read reads it: its members, page by page, and its subgroups',
// down the tree, with the member reader.
//
// With source.msgraph.groups.filter, which groups the filter selects is
// asked for the groups found (/groups?$filter=(filter) and id in (...)).
func (s *Source) SnapshotSlice(ctx context.Context, sl gsync.Slice) (*gsync.Snapshot, error) {
	before := s.stats.at()
	var parts []*gsync.Snapshot
	if len(sl.Users) > 0 {
		snap, err := s.userSlice(ctx, sl.Users)
		if err != nil {
			return nil, err
		}
		parts = append(parts, snap)
	}
	if len(sl.Groups) > 0 {
		snap, err := s.groupSlice(ctx, sl.Groups)
		if err != nil {
			return nil, err
		}
		parts = append(parts, snap)
	}
	s.lastRead = s.readSince(before, "slice")
	return mergeSnapshots(parts), nil
}

// sliceKind is what a slice read asks Graph.
type sliceKind int

const (
	readUser       sliceKind = iota // GET /users/{key}
	findUsers                       // GET /users?$filter=<key attribute> eq '<key>'
	readMemberOf                    // GET /users/{key}/memberOf/microsoft.graph.group
	readTransitive                  // GET /users/{key}/transitiveMemberOf/microsoft.graph.group
	readParents                     // GET /groups/{key}/memberOf/microsoft.graph.group
	readGroup                       // GET /groups/{key}
	findGroups                      // GET /groups?$filter=displayName eq '<key>'
)

// sliceJob is one page of one slice read.
type sliceJob struct {
	kind sliceKind
	key  string // as the request names the user or group: a slice's name or an id
	url  string // nextLink; "" for the first page
	via  string // for a user found by a filter: the slice's name for them
}

func (j sliceJob) String() string {
	switch j.kind {
	case readUser, findUsers:
		return fmt.Sprintf("user %q", j.key)
	case readMemberOf, readTransitive:
		if j.via != "" {
			return fmt.Sprintf("groups of user %q (%s)", j.via, j.key)
		}
		return fmt.Sprintf("groups of user %q", j.key)
	case readParents:
		return "groups that contain group " + j.key
	}
	return fmt.Sprintf("group %q", j.key)
}

func (j sliceJob) path() string {
	return [...]string{"/users/" + j.key, "/users", "/users/" + j.key + "/memberOf", "/users/" + j.key + "/transitiveMemberOf",
		"/groups/" + j.key + "/memberOf", "/groups/" + j.key, "/groups"}[j.kind]
}

// sliceReader gathers the answers of a slice's reads.
type sliceReader struct {
	s  *Source
	mr *memberReader // turns users into snapshot users

	mu      sync.Mutex
	found   map[string][]string // the key a request named a user by → user ids
	users   map[string]*gsync.User
	groups  map[string]listed   // every group found, by id
	order   []string            // groups in the order found
	direct  map[string][]string // user key → direct groups' ids
	parents map[string][]string // group id → its direct groups' ids
	asked   map[string]bool     // groups whose parents are asked for
	// transitive holds, by user key, the ids of the user's groups read
	// so far.
	transitive map[string][]string
}

func newSliceReader(s *Source) *sliceReader {
	return &sliceReader{s: s, mr: newMemberReader(s), found: map[string][]string{}, users: map[string]*gsync.User{},
		groups: map[string]listed{}, direct: map[string][]string{}, parents: map[string][]string{}, asked: map[string]bool{},
		transitive: map[string][]string{}}
}

func (r *sliceReader) run(ctx context.Context, jobs []sliceJob) error {
	return sendBatches(ctx, r.s, batchReads[sliceJob]{
		what: "slice", permission: "GroupMember.Read.All and User.Read.All",
		request: r.request,
		path:    sliceJob.path,
		name:    sliceJob.String,
		answer:  r.answer,
	}, jobs)
}

var guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// userFilter is the $filter that finds users by the mapping's key, and
// whether Graph serves it only as an advanced query. "" means the key
// names the user in /users/{key}: an object id or a userPrincipalName.
func (s *Source) userFilter(key string) (filter string, advanced bool) {
	if guidPattern.MatchString(key) {
		return "", false
	}
	lit := "'" + strings.ReplaceAll(key, "'", "''") + "'"
	switch k := s.userKey; {
	case k == "mail":
		return "mail eq " + lit, false
	case strings.HasPrefix(k, "attribute:"):
		// Most properties beyond id, upn and mail (employeeId,
		// onPremisesSamAccountName, extension attributes) filter only as
		// advanced queries; any property does so.
		return strings.TrimPrefix(k, "attribute:") + " eq " + lit, true
	case k == "":
		// No mapping given: the name may be either.
		return "userPrincipalName eq " + lit + " or mail eq " + lit, false
	}
	return "", false
}

func (r *sliceReader) request(ctx context.Context, j sliceJob) (*abs.RequestInformation, error) {
	s := r.s
	top := ptr(int32(s.cfg.PageSize))
	id := []string{"id"}
	switch j.kind {
	case readUser:
		return s.client.Users().ByUserId(j.key).ToGetRequestInformation(ctx, &users.UserItemRequestBuilderGetRequestConfiguration{
			QueryParameters: &users.UserItemRequestBuilderGetQueryParameters{Select: s.memberSelect()}})
	case findUsers:
		filter, advanced := s.userFilter(j.key)
		var info *abs.RequestInformation
		var err error
		if j.url != "" {
			info, err = s.client.Users().WithUrl(j.url).ToGetRequestInformation(ctx, nil)
		} else {
			q := &users.UsersRequestBuilderGetQueryParameters{Filter: &filter, Select: s.memberSelect(), Top: top}
			if advanced {
				q.Count = ptr(true)
			}
			info, err = s.client.Users().ToGetRequestInformation(ctx, &users.UsersRequestBuilderGetRequestConfiguration{QueryParameters: q})
		}
		if err == nil && advanced {
			// A nextLink keeps the query; the header must be sent again.
			info.Headers.Add("ConsistencyLevel", "eventual")
		}
		return info, err
	case readMemberOf:
		b := s.client.Users().ByUserId(j.key).MemberOf().GraphGroup()
		if j.url != "" {
			return b.WithUrl(j.url).ToGetRequestInformation(ctx, nil)
		}
		return b.ToGetRequestInformation(ctx, &users.ItemMemberOfGraphGroupRequestBuilderGetRequestConfiguration{
			QueryParameters: &users.ItemMemberOfGraphGroupRequestBuilderGetQueryParameters{Select: id, Top: top}})
	case readTransitive:
		b := s.client.Users().ByUserId(j.key).TransitiveMemberOf().GraphGroup()
		if j.url != "" {
			return b.WithUrl(j.url).ToGetRequestInformation(ctx, nil)
		}
		return b.ToGetRequestInformation(ctx, &users.ItemTransitiveMemberOfGraphGroupRequestBuilderGetRequestConfiguration{
			QueryParameters: &users.ItemTransitiveMemberOfGraphGroupRequestBuilderGetQueryParameters{Select: groupSelect, Top: top}})
	case readParents:
		b := s.client.Groups().ByGroupId(j.key).MemberOf().GraphGroup()
		if j.url != "" {
			return b.WithUrl(j.url).ToGetRequestInformation(ctx, nil)
		}
		return b.ToGetRequestInformation(ctx, &groups.ItemMemberOfGraphGroupRequestBuilderGetRequestConfiguration{
			QueryParameters: &groups.ItemMemberOfGraphGroupRequestBuilderGetQueryParameters{Select: id, Top: top}})
	case readGroup:
		return s.client.Groups().ByGroupId(j.key).ToGetRequestInformation(ctx, &groups.GroupItemRequestBuilderGetRequestConfiguration{
			QueryParameters: &groups.GroupItemRequestBuilderGetQueryParameters{Select: groupSelect}})
	}
	if j.url != "" {
		return s.client.Groups().WithUrl(j.url).ToGetRequestInformation(ctx, nil)
	}
	filter := "displayName eq '" + strings.ReplaceAll(j.key, "'", "''") + "'"
	return s.client.Groups().ToGetRequestInformation(ctx, &groups.GroupsRequestBuilderGetRequestConfiguration{
		QueryParameters: &groups.GroupsRequestBuilderGetQueryParameters{Filter: &filter, Select: groupSelect, Top: top}})
}

// answer takes a read's answer and returns the reads it leads to.
func (r *sliceReader) answer(j sliceJob, a batchAnswer) ([]sliceJob, error) {
	switch a.Status {
	case http.StatusOK:
	case http.StatusNotFound:
		// An unknown user or group is not an error: the slice lacks it.
		// A group that vanished between two reads is left out likewise.
		return nil, nil
	default:
		code, msg := answerError(a.Body)
		perm := "GroupMember.Read.All"
		switch j.kind {
		case readUser, findUsers:
			perm = "User.Read.All"
		case readMemberOf, readTransitive:
			perm = "User.Read.All (or GroupMember.Read.All)"
		}
		return nil, fmt.Errorf("msgraph: read %s for a targeted run: HTTP %d %s: %s%s", j, a.Status, code, msg, permissionHint(a.Status, perm))
	}
	if j.kind == readUser || j.kind == readGroup {
		typ := map[bool]string{true: "#microsoft.graph.user", false: "#microsoft.graph.group"}[j.kind == readUser]
		o, err := decodeObject(a.Body, typ, r.s.userAttrs)
		if err != nil {
			return nil, fmt.Errorf("msgraph: read %s: parse the answer: %w", j, err)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.take(j, o)
		return nil, nil
	}
	typ := "#microsoft.graph.group"
	if j.kind == findUsers {
		typ = "#microsoft.graph.user"
	}
	objs, next, err := decodePage(a.Body, typ, r.s.userAttrs)
	if err != nil {
		return nil, fmt.Errorf("msgraph: read %s: parse the answer: %w", j, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var more []sliceJob
	for _, o := range objs {
		more = append(more, r.take(j, o)...)
	}
	switch {
	case next != "":
		more = append(more, sliceJob{kind: j.kind, key: j.key, url: next, via: j.via})
	case j.kind == readTransitive && len(r.transitive[j.key]) > 1:
		// The last page: ask each group for the groups it is directly
		// in, for the links between them. A user in one group has no
		// links to ask for (a group's groups are the user's groups too).
		for _, id := range r.transitive[j.key] {
			if !r.asked[id] {
				r.asked[id] = true
				more = append(more, sliceJob{kind: readParents, key: id})
			}
		}
	}
	return more, nil
}

// take records one object of an answer to j. Callers hold r.mu.
func (r *sliceReader) take(j sliceJob, o models.DirectoryObjectable) []sliceJob {
	id := deref(o.GetId())
	switch j.kind {
	case readUser, findUsers:
		u, ok := o.(models.Userable)
		if !ok {
			return nil
		}
		if r.users[id] == nil {
			r.users[id] = r.mr.user(u)
		}
		r.found[j.key] = append(r.found[j.key], id)
		if j.kind == findUsers {
			r.found[id] = []string{id}
			return []sliceJob{{kind: readMemberOf, key: id, via: j.key}, {kind: readTransitive, key: id, via: j.key}}
		}
	case readMemberOf:
		r.direct[j.key] = append(r.direct[j.key], id)
	case readParents:
		r.parents[j.key] = append(r.parents[j.key], id)
	case readTransitive, readGroup, findGroups:
		g, ok := o.(models.Groupable)
		if !ok {
			return nil
		}
		if _, seen := r.groups[id]; !seen {
			r.groups[id] = r.s.classify(id, propsOf(g))
			r.order = append(r.order, id)
		}
		if j.kind == readTransitive {
			r.transitive[j.key] = append(r.transitive[j.key], id)
		}
	}
	return nil
}

// decodePage decodes a page of directory objects; objects without
// @odata.type are typ.
func decodePage(body json.RawMessage, typ string, attrs []string) ([]models.DirectoryObjectable, string, error) {
	var page struct {
		Value    []json.RawMessage `json:"value"`
		NextLink string            `json:"@odata.nextLink"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, "", err
	}
	out := make([]models.DirectoryObjectable, 0, len(page.Value))
	for _, raw := range page.Value {
		o, err := decodeObject(raw, typ, attrs)
		if err != nil {
			return nil, "", err
		}
		out = append(out, o)
	}
	return out, page.NextLink, nil
}

// userSlice reads the named users, every group they are in, and the links
// between those groups; each group lists only the named users.
func (s *Source) userSlice(ctx context.Context, names []string) (*gsync.Snapshot, error) {
	r := newSliceReader(s)
	var jobs []sliceJob
	for _, n := range names {
		if f, _ := s.userFilter(n); f != "" {
			jobs = append(jobs, sliceJob{kind: findUsers, key: n})
			continue
		}
		jobs = append(jobs, sliceJob{kind: readUser, key: n}, sliceJob{kind: readMemberOf, key: n}, sliceJob{kind: readTransitive, key: n})
	}
	if err := r.run(ctx, jobs); err != nil {
		return nil, err
	}
	if err := s.markFiltered(ctx, r.groups); err != nil {
		return nil, err
	}
	snap := &gsync.Snapshot{}
	byID := map[string]*gsync.Group{}
	for _, id := range r.order {
		l := r.groups[id]
		snap.Groups = append(snap.Groups, gsync.Group{ID: id, Name: l.name, NotSynced: l.notSynced})
	}
	for i := range snap.Groups {
		byID[snap.Groups[i].ID] = &snap.Groups[i]
	}
	for key, gids := range r.direct {
		for _, uid := range r.found[key] {
			for _, gid := range gids {
				if g := byID[gid]; g != nil {
					g.Users = append(g.Users, uid)
				}
			}
		}
	}
	for child, ps := range r.parents {
		for _, p := range ps {
			if g := byID[p]; g != nil && byID[child] != nil {
				g.Groups = append(g.Groups, child)
			}
		}
	}
	for _, u := range r.users {
		snap.Users = append(snap.Users, *u)
	}
	return snap, nil
}

// groupSlice reads the named groups with their whole membership, as a
// full read restricted to their subtrees.
func (s *Source) groupSlice(ctx context.Context, names []string) (*gsync.Snapshot, error) {
	r := newSliceReader(s)
	var jobs []sliceJob
	for _, n := range names {
		// A name with the form of an id is read both ways, in one $batch.
		if guidPattern.MatchString(n) {
			jobs = append(jobs, sliceJob{kind: readGroup, key: n})
		}
		jobs = append(jobs, sliceJob{kind: findGroups, key: n})
	}
	if err := r.run(ctx, jobs); err != nil {
		return nil, err
	}
	if err := s.markFiltered(ctx, r.groups); err != nil {
		return nil, err
	}
	list := make([]listed, 0, len(r.order))
	for _, id := range r.order {
		list = append(list, r.groups[id])
	}
	mr := newMemberReader(s)
	mr.classifyNested = true
	snap, err := mr.read(ctx, list)
	if err != nil {
		return nil, err
	}
	// The subgroups were classified by kind as they were found; the
	// filter is asked about them now.
	nested := map[string]listed{}
	for _, g := range snap.Groups {
		if _, named := r.groups[g.ID]; !named && g.NotSynced == "" {
			nested[g.ID] = listed{id: g.ID, name: g.Name}
		}
	}
	if err := s.markFiltered(ctx, nested); err != nil {
		return nil, err
	}
	for i := range snap.Groups {
		if l, ok := nested[snap.Groups[i].ID]; ok {
			snap.Groups[i].NotSynced = l.notSynced
		}
	}
	return snap, nil
}

// filterChunk is how many ids one "id in (...)" asks about: Graph allows
// 15 values in an in clause.
const filterChunk = 15

// markFiltered sets notSynced on the groups (synced so far) that
// source.msgraph.groups.filter does not select: a full read would not list
// them, and reads them only when a listed group contains them.
func (s *Source) markFiltered(ctx context.Context, gs map[string]listed) error {
	f := s.cfg.Groups.Filter
	if f == "" {
		return nil
	}
	var ids []string
	for id, l := range gs {
		if l.notSynced == "" {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	in := map[string]bool{}
	for chunk := range slices.Chunk(ids, filterChunk) {
		quoted := make([]string, len(chunk))
		for i, id := range chunk {
			quoted[i] = "'" + id + "'"
		}
		filter := "(" + f + ") and id in (" + strings.Join(quoted, ",") + ")"
		q := &groups.GroupsRequestBuilderGetQueryParameters{Filter: &filter, Select: []string{"id"}, Top: ptr(int32(filterChunk))}
		conf := &groups.GroupsRequestBuilderGetRequestConfiguration{QueryParameters: q}
		if advancedQuery.MatchString(f) {
			q.Count = ptr(true)
			conf.Headers = abs.NewRequestHeaders()
			conf.Headers.Add("ConsistencyLevel", "eventual")
		}
		page, err := s.client.Groups().Get(ctx, conf)
		if err != nil {
			return fmt.Errorf("msgraph: ask which of groups %s source.msgraph.groups.filter selects: %w", strings.Join(chunk, ", "), describe(err, "GroupMember.Read.All"))
		}
		for _, g := range page.GetValue() {
			in[deref(g.GetId())] = true
		}
	}
	for _, id := range ids {
		if !in[id] {
			l := gs[id]
			l.notSynced = "outside source.msgraph.groups.filter; read only for the members it gives the groups that contain it"
			gs[id] = l
		}
	}
	return nil
}

// mergeSnapshots joins the parts of a slice: a group read in several parts
// has the members and subgroups of each.
func mergeSnapshots(parts []*gsync.Snapshot) *gsync.Snapshot {
	out := &gsync.Snapshot{}
	at := map[string]int{}
	users := map[string]bool{}
	for _, p := range parts {
		for _, g := range p.Groups {
			i, ok := at[g.ID]
			if !ok {
				at[g.ID] = len(out.Groups)
				out.Groups = append(out.Groups, g)
				continue
			}
			m := &out.Groups[i]
			m.Users = append(m.Users, g.Users...)
			m.Groups = append(m.Groups, g.Groups...)
		}
		for _, u := range p.Users {
			if !users[u.ID] {
				users[u.ID] = true
				out.Users = append(out.Users, u)
			}
		}
		out.Skipped = append(out.Skipped, p.Skipped...)
	}
	for i := range out.Groups {
		out.Groups[i].Users = sortedUnique(out.Groups[i].Users)
		out.Groups[i].Groups = sortedUnique(out.Groups[i].Groups)
	}
	slices.SortFunc(out.Groups, func(a, b gsync.Group) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(out.Users, func(a, b gsync.User) int { return strings.Compare(a.ID, b.ID) })
	return out
}
