package graphtest

// $filter and $search, compiled once per request to predicates over the
// index.

import (
	"fmt"
	"net/http"
	"strings"
	"unicode"
)

type tokKind uint8

const (
	tEOF tokKind = iota
	tIdent
	tString
	tLParen
	tRParen
	tComma
	tColon
)

type token struct {
	kind tokKind
	text string
	pos  int
}

func tokenize(s string) ([]token, *graphError) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '(':
			toks = append(toks, token{tLParen, "(", i})
			i++
		case c == ')':
			toks = append(toks, token{tRParen, ")", i})
			i++
		case c == ',':
			toks = append(toks, token{tComma, ",", i})
			i++
		case c == ':':
			toks = append(toks, token{tColon, ":", i})
			i++
		case c == '\'':
			var b strings.Builder
			j := i + 1
			for {
				if j >= len(s) {
					return nil, filterSyntax(s, i, "unterminated string literal")
				}
				if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' {
						b.WriteByte('\'')
						j += 2
						continue
					}
					break
				}
				b.WriteByte(s[j])
				j++
			}
			toks = append(toks, token{tString, b.String(), i})
			i = j + 1
		default:
			j := i
			for j < len(s) && (isIdentByte(s[j])) {
				j++
			}
			if j == i {
				return nil, filterSyntax(s, i, fmt.Sprintf("unexpected character %q", c))
			}
			toks = append(toks, token{tIdent, s[i:j], i})
			i = j
		}
	}
	return append(toks, token{tEOF, "", len(s)}), nil
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '.' || c == '/' || c == '-' || c == '@' ||
		('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

func filterSyntax(s string, pos int, detail string) *graphError {
	return newError(http.StatusBadRequest, "BadRequest", "Invalid filter clause: Syntax error at position %d in '%s': %s.", pos, s, detail)
}

// filterParser compiles the $filter subset Graph offers on directory objects
// to a predicate: eq, ne, in, startswith, endswith, not, and, or,
// parentheses and collection any().
type filterParser struct {
	src   string
	toks  []token
	i     int
	kinds []kind
	// advanced is, when non-empty, Graph's message for a filter that needs
	// advanced query parameters.
	advanced string
}

func (p *filterParser) parse(s string) (predicate, *graphError) {
	p.src = s
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	p.toks = toks
	pred, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, filterSyntax(s, t.pos, fmt.Sprintf("unexpected %q", t.text))
	}
	return pred, nil
}

func (p *filterParser) peek() token { return p.toks[p.i] }
func (p *filterParser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *filterParser) keyword(word string) bool {
	if t := p.peek(); t.kind == tIdent && strings.EqualFold(t.text, word) {
		p.i++
		return true
	}
	return false
}

func (p *filterParser) expect(k tokKind, what string) (token, *graphError) {
	t := p.next()
	if t.kind != k {
		return t, filterSyntax(p.src, t.pos, "expected "+what)
	}
	return t, nil
}

func (p *filterParser) needAdvanced(msg string) {
	if p.advanced == "" {
		p.advanced = msg
	}
}

func (p *filterParser) or() (predicate, *graphError) {
	left, err := p.and()
	for err == nil && p.keyword("or") {
		var right predicate
		if right, err = p.and(); err == nil {
			l, r := left, right
			left = func(ix *index, o int32) bool { return l(ix, o) || r(ix, o) }
		}
	}
	return left, err
}

func (p *filterParser) and() (predicate, *graphError) {
	left, err := p.unary()
	for err == nil && p.keyword("and") {
		var right predicate
		if right, err = p.unary(); err == nil {
			l, r := left, right
			left = func(ix *index, o int32) bool { return l(ix, o) && r(ix, o) }
		}
	}
	return left, err
}

func (p *filterParser) unary() (predicate, *graphError) {
	if p.keyword("not") {
		p.needAdvanced("Unsupported Query.")
		inner, err := p.unary()
		if err != nil {
			return nil, err
		}
		return func(ix *index, o int32) bool { return !inner(ix, o) }, nil
	}
	return p.primary()
}

func (p *filterParser) primary() (predicate, *graphError) {
	t := p.next()
	switch t.kind {
	case tLParen:
		inner, err := p.or()
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tRParen, "')'"); err != nil {
			return nil, err
		}
		return inner, nil
	case tIdent:
	default:
		return nil, filterSyntax(p.src, t.pos, "expected an expression")
	}
	if path, fn, ok := strings.Cut(t.text, "/"); ok {
		return p.lambda(t, path, fn)
	}
	if p.peek().kind == tLParen {
		return p.function(t)
	}
	props, typ, err := p.property(t)
	if err != nil {
		return nil, err
	}
	op := p.next()
	if op.kind != tIdent {
		return nil, filterSyntax(p.src, op.pos, "expected an operator")
	}
	switch strings.ToLower(op.text) {
	case "eq":
		return p.equals(props, typ)
	case "ne":
		p.needAdvanced("Unsupported property filter clause operator 'NotEqualsMatch'.")
		eq, err := p.equals(props, typ)
		if err != nil {
			return nil, err
		}
		return func(ix *index, o int32) bool { return !eq(ix, o) }, nil
	case "in":
		return p.in(props, typ)
	case "gt", "ge", "lt", "le", "has":
		return nil, unsupported("Unsupported Query. (graphtest implements eq, ne, in, startswith, endswith, not and any.)")
	default:
		return nil, filterSyntax(p.src, op.pos, fmt.Sprintf("unknown operator %q", op.text))
	}
}

// property resolves a property name for every kind of the collection; a
// kind without it compares as null.
func (p *filterParser) property(t token) (*[numKinds]*prop, propType, *graphError) {
	var props [numKinds]*prop
	typ, found := pOther, false
	for _, k := range p.kinds {
		if pr := lookupProp(k, t.text); pr != nil {
			props[k] = pr
			typ, found = pr.typ, true
		}
	}
	if !found {
		return nil, 0, newError(http.StatusBadRequest, "BadRequest",
			"Could not find a property named '%s' on type '%s'.", t.text, typeName(p.kinds))
	}
	return &props, typ, nil
}

var edmNames = map[propType]string{pString: "Edm.String", pBool: "Edm.Boolean", pStrings: "Collection(Edm.String)", pOther: "Edm.DateTimeOffset"}

func incompatible(a, b propType, op string) *graphError {
	return newError(http.StatusBadRequest, "BadRequest",
		"A binary operator with incompatible types was detected. Found operand types '%s' and '%s' for operator kind '%s'.",
		edmNames[a], edmNames[b], op)
}

// literal reads a string, boolean or null literal.
func (p *filterParser) literal() (val string, typ propType, isNull bool, err *graphError) {
	t := p.next()
	switch {
	case t.kind == tString:
		return t.text, pString, false, nil
	case t.kind == tIdent && (t.text == "true" || t.text == "false"):
		return t.text, pBool, false, nil
	case t.kind == tIdent && t.text == "null":
		return "", pOther, true, nil
	}
	return "", 0, false, filterSyntax(p.src, t.pos, "expected a literal")
}

func (p *filterParser) equals(props *[numKinds]*prop, typ propType) (predicate, *graphError) {
	lit, ltyp, isNull, err := p.literal()
	if err != nil {
		return nil, err
	}
	if isNull {
		p.needAdvanced("Unsupported Query.")
		return func(ix *index, o int32) bool { return isNullValue(props[ix.kind(o)], ix, o) }, nil
	}
	if typ != ltyp || typ == pStrings || typ == pOther {
		return nil, incompatible(typ, ltyp, "Equal")
	}
	if typ == pBool {
		want := lit == "true"
		return func(ix *index, o int32) bool {
			pr := props[ix.kind(o)]
			return pr != nil && pr.boolean != nil && pr.boolean(ix, o) == want
		}, nil
	}
	return func(ix *index, o int32) bool {
		v, ok := stringValue(props[ix.kind(o)], ix, o)
		return ok && strings.EqualFold(v, lit)
	}, nil
}

func (p *filterParser) in(props *[numKinds]*prop, typ propType) (predicate, *graphError) {
	if _, err := p.expect(tLParen, "'('"); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for {
		lit, ltyp, isNull, err := p.literal()
		if err != nil {
			return nil, err
		}
		if isNull || ltyp != pString || typ != pString {
			return nil, incompatible(typ, ltyp, "In")
		}
		set[strings.ToLower(lit)] = true
		t := p.next()
		if t.kind == tRParen {
			break
		}
		if t.kind != tComma {
			return nil, filterSyntax(p.src, t.pos, "expected ',' or ')'")
		}
	}
	return func(ix *index, o int32) bool {
		v, ok := stringValue(props[ix.kind(o)], ix, o)
		return ok && set[strings.ToLower(v)]
	}, nil
}

// function parses startswith(prop,'x') and endswith(prop,'x').
func (p *filterParser) function(name token) (predicate, *graphError) {
	fn := strings.ToLower(name.text)
	if fn != "startswith" && fn != "endswith" {
		return nil, unsupported("Unsupported Query. (graphtest implements the functions startswith and endswith.)")
	}
	p.next() // (
	pt, err := p.expect(tIdent, "a property")
	if err != nil {
		return nil, err
	}
	props, typ, err := p.property(pt)
	if err != nil {
		return nil, err
	}
	if _, err := p.expect(tComma, "','"); err != nil {
		return nil, err
	}
	lt, err := p.expect(tString, "a string")
	if err != nil {
		return nil, err
	}
	if _, err := p.expect(tRParen, "')'"); err != nil {
		return nil, err
	}
	if typ != pString {
		return nil, incompatible(typ, pString, name.text)
	}
	lit := strings.ToLower(lt.text)
	if fn == "endswith" {
		p.needAdvanced("Unsupported Query.")
		return func(ix *index, o int32) bool {
			v, ok := stringValue(props[ix.kind(o)], ix, o)
			return ok && strings.HasSuffix(strings.ToLower(v), lit)
		}, nil
	}
	return func(ix *index, o int32) bool {
		v, ok := stringValue(props[ix.kind(o)], ix, o)
		return ok && len(v) >= len(lit) && strings.EqualFold(v[:len(lit)], lit)
	}, nil
}

// lambda parses collection/any(c:c eq 'x').
func (p *filterParser) lambda(t token, path, fn string) (predicate, *graphError) {
	if !strings.EqualFold(fn, "any") {
		return nil, unsupported("Unsupported Query. (graphtest implements any() only.)")
	}
	props, typ, err := p.property(token{tIdent, path, t.pos})
	if err != nil {
		return nil, err
	}
	if typ != pStrings {
		return nil, newError(http.StatusBadRequest, "BadRequest",
			"Invalid filter clause: The Any/All query expression can only be applied to a collection property.")
	}
	if _, err := p.expect(tLParen, "'('"); err != nil {
		return nil, err
	}
	v, err := p.expect(tIdent, "a range variable")
	if err != nil {
		return nil, err
	}
	if _, err := p.expect(tColon, "':'"); err != nil {
		return nil, err
	}
	if rv, err := p.expect(tIdent, "the range variable"); err != nil || rv.text != v.text {
		return nil, filterSyntax(p.src, rv.pos, "expected the range variable "+v.text)
	}
	if op, err := p.expect(tIdent, "eq"); err != nil || !strings.EqualFold(op.text, "eq") {
		return nil, unsupported("Unsupported Query. (graphtest implements any(c:c eq 'x') only.)")
	}
	lt, err := p.expect(tString, "a string")
	if err != nil {
		return nil, err
	}
	if _, err := p.expect(tRParen, "')'"); err != nil {
		return nil, err
	}
	lit := lt.text
	return func(ix *index, o int32) bool {
		pr := props[ix.kind(o)]
		if pr == nil || pr.strs == nil {
			return false
		}
		for _, s := range pr.strs(ix, o) {
			if strings.EqualFold(s, lit) {
				return true
			}
		}
		return false
	}, nil
}

func stringValue(pr *prop, ix *index, o int32) (string, bool) {
	if pr == nil || pr.str == nil {
		return "", false
	}
	return pr.str(ix, o)
}

func isNullValue(pr *prop, ix *index, o int32) bool {
	switch {
	case pr == nil:
		return false // not a property of this type at all
	case pr.str != nil:
		_, ok := pr.str(ix, o)
		return !ok
	case pr.boolean != nil, pr.strs != nil:
		return false
	}
	return true
}

// parseSearch compiles `"property:term"` clauses joined by AND / OR (AND
// binds tighter). A term matches a value when a word of the value starts
// with it, ignoring case, as Graph's tokenized search does.
func parseSearch(v string, kinds []kind) (predicate, *graphError) {
	bad := func() *graphError {
		return newError(http.StatusBadRequest, "BadRequest", "Syntax error: character '%s' is not valid at position 0 in '%s'.", firstChar(v), v)
	}
	var ors []predicate
	var ands []predicate
	rest := strings.TrimSpace(v)
	for {
		if !strings.HasPrefix(rest, `"`) {
			return nil, bad()
		}
		end := strings.Index(rest[1:], `"`)
		if end < 0 {
			return nil, bad()
		}
		clause := rest[1 : end+1]
		rest = strings.TrimSpace(rest[end+2:])
		name, term, ok := strings.Cut(clause, ":")
		if !ok {
			return nil, unsupported("Invalid search query: use \"property:term\".")
		}
		var props [numKinds]*prop
		found := false
		for _, k := range kinds {
			if pr := lookupProp(k, name); pr != nil && pr.typ == pString {
				props[k], found = pr, true
			}
		}
		if !found {
			return nil, newError(http.StatusBadRequest, "BadRequest",
				"Could not find a property named '%s' on type '%s'.", name, typeName(kinds))
		}
		term = strings.ToLower(strings.TrimSpace(term))
		ands = append(ands, func(ix *index, o int32) bool {
			val, ok := stringValue(props[ix.kind(o)], ix, o)
			return ok && searchMatch(val, term)
		})
		switch {
		case rest == "":
			ors = append(ors, allOf(ands))
			return anyOf(ors), nil
		case strings.HasPrefix(rest, "AND "):
			rest = strings.TrimSpace(rest[4:])
		case strings.HasPrefix(rest, "OR "):
			ors = append(ors, allOf(ands))
			ands = nil
			rest = strings.TrimSpace(rest[3:])
		default:
			return nil, bad()
		}
	}
}

func firstChar(s string) string {
	for _, r := range s {
		return string(r)
	}
	return ""
}

func allOf(ps []predicate) predicate {
	return func(ix *index, o int32) bool {
		for _, p := range ps {
			if !p(ix, o) {
				return false
			}
		}
		return true
	}
}

func anyOf(ps []predicate) predicate {
	return func(ix *index, o int32) bool {
		for _, p := range ps {
			if p(ix, o) {
				return true
			}
		}
		return false
	}
}

func searchMatch(value, term string) bool {
	value = strings.ToLower(value)
	if strings.HasPrefix(value, term) {
		return true
	}
	for _, w := range strings.FieldsFunc(value, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		if strings.HasPrefix(w, term) {
			return true
		}
	}
	return false
}
