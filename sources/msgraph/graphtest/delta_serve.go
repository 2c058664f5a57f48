package graphtest

// Serving delta queries: parsing links and filters, paging rounds (see
// delta.go).

import (
	"cmp"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

var deltaFilterTerm = regexp.MustCompile(`(?i)^\s*id\s+eq\s+'([^']*)'\s*$`)

// parseDeltaFilter reads "id eq 'a' or id eq 'b'", the only $filter delta
// queries take.
func parseDeltaFilter(f string) ([]string, *graphError) {
	var ids []string
	for _, term := range regexp.MustCompile(`(?i)\s+or\s+`).Split(f, -1) {
		m := deltaFilterTerm.FindStringSubmatch(term)
		if m == nil {
			return nil, unsupported("Unsupported query: delta queries take only $filter=id eq '{id}' terms joined by 'or'.")
		}
		ids = append(ids, m[1])
	}
	if len(ids) > maxDeltaFilterIDs {
		return nil, unsupported("Too many ids in the $filter of a delta query: %d (at most %d).", len(ids), maxDeltaFilterIDs)
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// serveDelta answers GET /groups/delta and /users/delta (authenticated and
// authorized by serveGraph).
func (s *Server) serveDelta(w http.ResponseWriter, r *http.Request, rt route) {
	kindName, k := "groups", kindGroup
	if rt.ep == EndpointUsersDelta {
		kindName, k = "users", kindUser
	}
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		s.writeError(w, r, newError(http.StatusBadRequest, "BadRequest", "The query specified in the URI is not valid. %v", err))
		return
	}
	get := func(name string) (string, bool) {
		for key, v := range values {
			if strings.EqualFold(key, name) && len(v) > 0 {
				return v[0], true
			}
		}
		return "", false
	}
	for _, name := range []string{"$top", "$expand", "$orderby", "$search", "$count", "$skip"} {
		if _, ok := get(name); ok {
			s.writeError(w, r, unsupported("The query parameter %s is not supported with delta queries.", name))
			return
		}
	}
	ix, changes, epoch, expired := s.deltaView()
	version := len(changes)
	now := s.clock()

	// The query options of a new round: $select (members included), $filter.
	var sel []string
	sv, hasSel := get("$select")
	if hasSel {
		q := &query{}
		var names []string
		for _, n := range strings.Split(sv, ",") {
			if n = strings.TrimSpace(n); n != "" && !(k == kindGroup && strings.EqualFold(n, "members")) {
				names = append(names, n)
			}
		}
		if gerr := q.parseSelect(strings.Join(names, ","), []kind{k}); gerr != nil {
			s.writeError(w, r, gerr)
			return
		}
		sel = q.selected
		if k == kindGroup && slices.ContainsFunc(strings.Split(sv, ","), func(n string) bool { return strings.EqualFold(strings.TrimSpace(n), "members") }) {
			sel = append(sel, "members")
		}
	}
	var ids []string
	if f, ok := get("$filter"); ok {
		var gerr *graphError
		if ids, gerr = parseDeltaFilter(f); gerr != nil {
			s.writeError(w, r, gerr)
			return
		}
	}

	var tok deltaToken
	st, hasSkip := get("$skiptoken")
	dt, hasDelta := get("$deltatoken")
	switch {
	case hasSkip:
		if hasSel {
			s.writeError(w, r, unsupported("$select cannot be combined with a $skiptoken; it is carried by the token."))
			return
		}
		t, ok := decodeDeltaToken(st, kindName)
		if !ok {
			s.writeError(w, r, newError(http.StatusBadRequest, "syncStateInvalid", "The skip token is not valid for this resource."))
			return
		}
		tok = t
	case hasDelta && strings.EqualFold(dt, "latest"):
		link := deltaToken{Kind: kindName, From: version, To: version, Prev: version, Select: sel, HasSel: hasSel, IDs: ids, Epoch: epoch, Issued: now.UnixNano()}
		if !s.chargeDelta(w, r, k, hasSel) {
			return
		}
		s.writeDeltaPage(w, kindName, nil, nil, deltaToken{}, link, true)
		return
	case hasDelta && dt != "":
		t, ok := decodeDeltaToken(dt, kindName)
		if !ok {
			s.writeError(w, r, newError(http.StatusBadRequest, "syncStateInvalid", "The delta token is not valid for this resource."))
			return
		}
		if ok := s.checkToken(w, r, kindName, t, epoch, expired, now); !ok {
			return
		}
		tok = deltaToken{Kind: kindName, From: t.To, To: version, Select: t.Select, HasSel: t.HasSel, IDs: t.IDs, Epoch: t.Epoch, Issued: now.UnixNano()}
		if s.cfg.delta.Replay && t.Prev < t.To {
			tok.From, tok.Abs = t.Prev, true
		}
		if hasSel { // Graph lets a deltaLink change what is tracked
			tok.Select, tok.HasSel = sel, true
		}
	default: // a new full round
		tok = deltaToken{Kind: kindName, From: -1, To: version, Select: sel, HasSel: hasSel, IDs: ids, Epoch: epoch, Issued: now.UnixNano()}
	}
	if hasSkip {
		if ok := s.checkToken(w, r, kindName, tok, epoch, expired, now); !ok {
			return
		}
	}
	if !s.chargeDelta(w, r, k, tok.HasSel) {
		return
	}

	rd := s.roundFor(kindName, tok.From, tok.To, tok.Abs, ix, changes, tok.IDs)
	start, _ := slices.BinarySearchFunc(rd.entries, tok.After, func(e deltaEntry, id string) int { return cmp.Compare(e.id, id) })
	if s.cfg.delta.EmptyPages && !tok.Empty && start < len(rd.entries) {
		next := tok
		next.Empty = true
		s.writeDeltaPage(w, kindName, nil, nil, deltaToken{}, next, false)
		return
	}
	objects := cmp.Or(s.cfg.delta.ObjectsPerPage, defaultDeltaObjects)
	budget := cmp.Or(s.cfg.delta.MembersPerPage, defaultDeltaMembers)
	withMembers := k == kindGroup && (!tok.HasSel || slices.Contains(tok.Select, "members"))

	var page []pageObject
	next := tok
	next.Empty = false
	done := true
	for i := start; i < len(rd.entries); i++ {
		e := &rd.entries[i]
		if len(page) == objects {
			next.After, next.Member, done = e.id, "", false
			break
		}
		po := pageObject{entry: e}
		if withMembers && e.removed == "" {
			ms := rd.membersOf(e)
			from := 0
			if e.id == tok.After && tok.Member != "" {
				from, _ = slices.BinarySearchFunc(ms, tok.Member, func(m memberDelta, id string) int { return cmp.Compare(m.id, id) })
				if from < len(ms) && ms[from].id == tok.Member {
					from++
				}
			}
			left := ms[from:]
			if len(left) > 0 && budget == 0 {
				next.After, next.Member, done = e.id, "", false
				if from > 0 {
					next.Member = ms[from-1].id
				}
				break
			}
			take := min(len(left), budget)
			po.members = left[:take]
			budget -= take
			if take < len(left) {
				page = append(page, po)
				next.After, next.Member, done = e.id, left[take-1].id, false
				break
			}
			if len(ms) > 0 && len(left) == 0 && from > 0 {
				continue // every member of this group went on earlier pages
			}
		}
		page = append(page, po)
	}
	if done {
		link := deltaToken{Kind: kindName, From: tok.To, To: tok.To, Prev: max(tok.From, 0), Select: tok.Select, HasSel: tok.HasSel,
			IDs: tok.IDs, Epoch: tok.Epoch, Issued: now.UnixNano()}
		if tok.From < 0 {
			link.Prev = tok.To
		}
		s.writeDeltaPage(w, kindName, rd, page, tok, link, true)
		return
	}
	s.writeDeltaPage(w, kindName, rd, page, tok, next, false)
}

// pageObject is an entry on a page, with the members it carries there.
type pageObject struct {
	entry   *deltaEntry
	members []memberDelta
}

// checkToken answers 410 for a token from before ResetDelta and 400
// syncStateNotFound for an expired one; it reports whether the token is good.
func (s *Server) checkToken(w http.ResponseWriter, r *http.Request, kindName string, t deltaToken, epoch int, expired int64, now time.Time) bool {
	if t.Epoch < epoch {
		loc := s.URL + "/v1.0/" + kindName + "/delta"
		if len(t.Select) > 0 {
			loc += "?$select=" + url.QueryEscape(strings.Join(t.Select, ","))
		}
		w.Header().Set("Location", loc)
		s.writeError(w, r, newError(http.StatusGone, "resyncRequired",
			"The delta token is no longer valid after maintenance of the directory; restart with a full synchronization at the Location."))
		return false
	}
	lifetime := cmp.Or(s.cfg.delta.TokenLifetime, defaultTokenLifetime)
	if t.Issued < expired || now.Sub(time.Unix(0, t.Issued)) > lifetime {
		s.writeError(w, r, newError(http.StatusBadRequest, "syncStateNotFound",
			"The sync state generation is not found. The delta token is expired and data must be synchronized again."))
		return false
	}
	return true
}

func (s *Server) chargeDelta(w http.ResponseWriter, r *http.Request, k kind, selected bool) bool {
	ep := EndpointGroupsDelta
	if k == kindUser {
		ep = EndpointUsersDelta
	}
	cost := resourceUnits(ep, selected)
	if err := s.charge(cost); err != nil {
		s.writeError(w, r, err)
		return false
	}
	w.Header().Set("x-ms-resource-unit", strconv.Itoa(cost))
	return true
}

// writeDeltaPage writes one page: the objects with their selected
// properties and members@delta, and the nextLink or deltaLink.
func (s *Server) writeDeltaPage(w http.ResponseWriter, kindName string, rd *round, page []pageObject, tok, link deltaToken, final bool) {
	b := []byte(`{"@odata.context":`)
	b = appendString(b, s.URL+"/v1.0/$metadata#"+kindName)
	if final {
		b = append(b, `,"@odata.deltaLink":`...)
		b = appendString(b, s.URL+"/v1.0/"+kindName+"/delta?$deltatoken="+link.encode())
	} else {
		b = append(b, `,"@odata.nextLink":`...)
		b = appendString(b, s.URL+"/v1.0/"+kindName+"/delta?$skiptoken="+link.encode())
	}
	b = append(b, `,"value":[`...)
	k := kindGroup
	if kindName == "users" {
		k = kindUser
	}
	props := deltaProps(k, tok)
	withMembers := k == kindGroup && (!tok.HasSel || slices.Contains(tok.Select, "members"))
	for i, po := range page {
		if i > 0 {
			b = append(b, ',')
		}
		e := po.entry
		b = append(b, '{')
		if e.removed != "" {
			b = appendKey(b, true, "id")
			b = appendString(b, e.id)
			b = append(b, `,"@removed":{"reason":`...)
			b = appendString(b, e.removed)
			b = append(b, "}}"...)
			continue
		}
		first := true
		for _, p := range props {
			if p.str == nil && p.boolean == nil && p.strs == nil {
				continue // a property the fake does not model is never set
			}
			if p.str != nil {
				if _, set := p.str(rd.ix, e.obj); !set {
					continue // never set: left out, as Graph does in delta answers
				}
			}
			b = appendProp(b, rd.ix, e.obj, p, first)
			first = false
		}
		if withMembers && len(po.members) > 0 {
			b = appendKey(b, first, "members@delta")
			b = append(b, '[')
			for j, m := range po.members {
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"@odata.type":`...)
				b = appendString(b, odataTypes[m.kind])
				b = append(b, `,"id":`...)
				b = appendString(b, m.id)
				if m.removed {
					b = append(b, `,"@removed":{"reason":"deleted"}`...)
				}
				b = append(b, '}')
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	b = append(b, "]}"...)
	s.writeJSON(w, http.StatusOK, b)
}

// deltaProps are the properties a round writes: the selected ones (id
// always), or the type's defaults.
func deltaProps(k kind, tok deltaToken) []*prop {
	sc := schemas[k]
	if !tok.HasSel {
		return sc.defaults
	}
	want := map[string]bool{"id": true}
	for _, n := range tok.Select {
		want[n] = true
	}
	var out []*prop
	for _, p := range sc.props {
		if want[strings.ToLower(p.name)] {
			out = append(out, p)
		}
	}
	return out
}
