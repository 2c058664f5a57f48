package graphtest

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// graphError is an answer in Graph's error shape.
type graphError struct {
	status     int
	code       string
	message    string
	retryAfter string // Retry-After header, if any
}

func (e *graphError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.message) }

func newError(status int, code, format string, args ...any) *graphError {
	return &graphError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// unsupported is what Graph answers for a query it cannot run.
func unsupported(format string, args ...any) *graphError {
	return newError(http.StatusBadRequest, "Request_UnsupportedQuery", format, args...)
}

const (
	defaultPageSize = 100
	maxPageSize     = 999
)

// predicate selects directory objects.
type predicate func(ix *index, o int32) bool

// query holds the OData system query options of one request.
type query struct {
	top      int
	selected []string // lower-cased names, in request order; nil without $select
	filter   predicate
	search   predicate
	count    bool
	cursor   *cursor
	advanced bool // ConsistencyLevel: eventual
}

// parseQuery reads the system query options of a request on a collection or
// entity whose items are of the given kinds. Advanced options (ne, not,
// endswith, null comparisons, $count, $search) need ConsistencyLevel:
// eventual and, for filters, $count=true, as on Graph.
func parseQuery(r *http.Request, kinds []kind) (*query, *graphError) {
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, newError(http.StatusBadRequest, "BadRequest", "The query specified in the URI is not valid. %v", err)
	}
	q := &query{top: defaultPageSize, advanced: strings.EqualFold(r.Header.Get("ConsistencyLevel"), "eventual")}
	get := func(name string) (string, bool) {
		for k, v := range values {
			if strings.EqualFold(k, name) && len(v) > 0 {
				return v[0], true
			}
		}
		return "", false
	}

	if v, ok := get("$top"); ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 || n > maxPageSize {
			return nil, newError(http.StatusBadRequest, "Request_BadRequest",
				"Invalid page size specified: '%s'. Must be between 1 and %d inclusive.", v, maxPageSize)
		}
		q.top = n
	}
	if v, ok := get("$select"); ok {
		if err := q.parseSelect(v, kinds); err != nil {
			return nil, err
		}
	}
	if v, ok := get("$count"); ok {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true":
			q.count = true
		case "false":
		default:
			return nil, newError(http.StatusBadRequest, "BadRequest", "'%s' is not a valid count option.", v)
		}
		if q.count && !q.advanced {
			return nil, unsupported("$count is not currently supported.")
		}
	}
	if v, ok := get("$filter"); ok {
		p := &filterParser{kinds: kinds}
		pred, gerr := p.parse(v)
		if gerr != nil {
			return nil, gerr
		}
		if p.advanced != "" && (!q.advanced || !q.count) {
			return nil, unsupported("%s", p.advanced)
		}
		q.filter = pred
	}
	if v, ok := get("$search"); ok {
		if !q.advanced {
			return nil, unsupported("Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'")
		}
		pred, gerr := parseSearch(v, kinds)
		if gerr != nil {
			return nil, gerr
		}
		q.search = pred
	}
	if v, ok := get("$skiptoken"); ok {
		c, err := decodeCursor(v)
		if err != nil {
			return nil, newError(http.StatusBadRequest, "Directory_ExpiredPageToken",
				"The specified page token value has expired and can no longer be included in your request.")
		}
		q.cursor = &c
	}
	for _, name := range []string{"$orderby", "$expand", "$skip", "$apply", "$compute"} {
		if _, ok := get(name); ok {
			return nil, unsupported("graphtest does not implement %s.", name)
		}
	}
	return q, nil
}

// parseSelect checks each name is a property of at least one of the kinds;
// names are case-insensitive, as on Graph.
func (q *query) parseSelect(v string, kinds []kind) *graphError {
	q.selected = []string{}
	for _, name := range strings.Split(v, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		known := false
		for _, k := range kinds {
			known = known || lookupProp(k, name) != nil
		}
		if !known {
			return newError(http.StatusBadRequest, "BadRequest",
				"Could not find a property named '%s' on type '%s'.", name, typeName(kinds))
		}
		q.selected = append(q.selected, strings.ToLower(name))
	}
	return nil
}

// projection returns, per kind, the properties to write for each object.
func (q *query) projection() *[numKinds][]*prop {
	var out [numKinds][]*prop
	for k := range numKinds {
		s := schemas[k]
		if q == nil || q.selected == nil {
			out[k] = s.defaults
			continue
		}
		want := map[string]bool{"id": true}
		for _, n := range q.selected {
			want[n] = true
		}
		for _, p := range s.props {
			if want[strings.ToLower(p.name)] {
				out[k] = append(out[k], p)
			}
		}
	}
	return &out
}

// matches applies $filter and $search.
func (q *query) matches(ix *index, o int32) bool {
	return (q.filter == nil || q.filter(ix, o)) && (q.search == nil || q.search(ix, o))
}

func typeName(kinds []kind) string {
	if len(kinds) == 1 {
		return "microsoft.graph." + kindNames[kinds[0]]
	}
	return "microsoft.graph.directoryObject"
}

// cursor is the decoded $skiptoken: where the next page starts, and the id
// of the object expected there, so a page resumes at the right object even
// when the tenant changed in between.
type cursor struct {
	pos int
	id  string
}

func (c cursor) encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte("gt1:" + strconv.Itoa(c.pos) + ":" + c.id))
}

func decodeCursor(s string) (cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, err
	}
	parts := strings.SplitN(string(b), ":", 3)
	if len(parts) != 3 || parts[0] != "gt1" {
		return cursor{}, fmt.Errorf("bad skiptoken")
	}
	pos, err := strconv.Atoi(parts[1])
	if err != nil || pos < 0 {
		return cursor{}, fmt.Errorf("bad skiptoken")
	}
	return cursor{pos: pos, id: parts[2]}, nil
}

// nextLink is the absolute URL of the next page: this server, the same path,
// the same query in its original spelling, with $skiptoken replaced.
func nextLink(base string, r *http.Request, c cursor) string {
	var b strings.Builder
	b.WriteString(base)
	b.WriteString(r.URL.EscapedPath())
	b.WriteByte('?')
	for _, part := range strings.Split(r.URL.RawQuery, "&") {
		if part == "" {
			continue
		}
		key, _, _ := strings.Cut(part, "=")
		if k, err := url.QueryUnescape(key); err == nil && strings.EqualFold(k, "$skiptoken") {
			continue
		}
		b.WriteString(part)
		b.WriteByte('&')
	}
	b.WriteString("$skiptoken=")
	b.WriteString(c.encode())
	return b.String()
}
