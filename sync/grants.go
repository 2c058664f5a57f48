package sync

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/groupsync/groupsync/config"
)

// Grant rules (mapping.grants) turn managed groups into tuples on other
// objects. Each distinct (object type, relation, user type) they write is
// a scope of its own, planned, diffed, owned and guarded like membership:
// a grant tuple is groupsync's only when it lies in such a scope, and (for
// usersets) names a group groupsync manages.

// GrantSet is the desired tuples of one grant scope, from one or more rules.
type GrantSet struct {
	Scope  Scope    `json:"scope"`
	Rules  []string `json:"rules"`
	Tuples []Tuple  `json:"-"` // sorted, unique
	// Usersets says the scope's users are managed groups' usersets
	// ("group:team-red#member"): such tuples are read by user.
	Usersets bool `json:"usersets"`
	// NeedExisting maps objects that only_existing rules write to, to those
	// rules: the engine keeps their tuples only where the object exists.
	NeedExisting map[string][]string `json:"-"`
	// RuleOf names, for each tuple, the first rule that produced it.
	RuleOf map[Tuple]string `json:"-"`
}

// grantRule is a compiled mapping.grants entry.
type grantRule struct {
	name         string
	match        func(g *Group) (captures []string, ok bool)
	templates    []grantTemplate
	onlyExisting bool
}

// grantTemplate is one "<user> <relation> <object>" of a rule.
type grantTemplate struct {
	text                   string
	user, relation, object string
	perUser                bool   // {user}: one tuple per (nested) member
	userType, objectType   string // "group#member" or "user"; "project"
}

// compileGrants compiles the rules; errors name the rule. A userset grant
// must name the managed group's own userset (objectType:{object}#relation),
// so that whose grant it is follows whose group it is.
func compileGrants(rules []config.GrantRule, objectType, relation string) ([]grantRule, error) {
	out := make([]grantRule, 0, len(rules))
	for i, r := range rules {
		gr := grantRule{name: r.Name, onlyExisting: r.OnlyExisting}
		where := fmt.Sprintf("mapping.grants[%d] (rule %q)", i, r.Name)
		ncaps := 0
		switch m := r.Match; {
		case m.Name != "":
			gr.match = func(g *Group) ([]string, bool) { return []string{g.Name}, g.Name == m.Name }
		case m.ID != "":
			gr.match = func(g *Group) ([]string, bool) { return []string{g.Name}, g.ID == m.ID }
		case m.Glob != "":
			if _, err := path.Match(m.Glob, ""); err != nil {
				return nil, fmt.Errorf("%s: match.glob %q: %w", where, m.Glob, err)
			}
			re, n := globCaptures(m.Glob)
			ncaps = n
			gr.match = func(g *Group) ([]string, bool) {
				if ok, _ := path.Match(m.Glob, g.Name); !ok {
					return nil, false
				}
				if caps := re.FindStringSubmatch(g.Name); caps != nil {
					return caps, true
				}
				return []string{g.Name}, true
			}
		case m.Regex != "":
			re, err := regexp.Compile(m.Regex)
			if err != nil {
				return nil, fmt.Errorf("%s: match.regex %q: %w", where, m.Regex, err)
			}
			ncaps = re.NumSubexp()
			gr.match = func(g *Group) ([]string, bool) {
				caps := re.FindStringSubmatch(g.Name)
				return caps, caps != nil
			}
		default:
			return nil, fmt.Errorf("%s: match: set exactly one of name, glob, regex, id", where)
		}
		for _, text := range r.Tuples {
			if err := config.CheckGrantTemplate(text); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			t := parseTemplate(text)
			if own := objectType + ":{object}#" + relation; strings.Contains(t.user, "#") && t.user != own {
				return nil, fmt.Errorf("%s: template %q: a grant to a group's members must name the group as %q (the groups groupsync manages)", where, text, own)
			}
			if t.objectType == objectType && t.relation == relation {
				return nil, fmt.Errorf("%s: template %q writes %s#%s, which is the membership itself; grant on another type or relation", where, text, objectType, relation)
			}
			for _, p := range placeholder.FindAllStringSubmatch(text, -1) {
				if n, err := strconv.Atoi(p[1]); err == nil && n > ncaps {
					return nil, fmt.Errorf("%s: template %q uses capture {%d}, but match has only %d capture group(s)", where, text, n, ncaps)
				}
			}
			gr.templates = append(gr.templates, t)
		}
		out = append(out, gr)
	}
	return out, nil
}

var placeholder = regexp.MustCompile(`\{([^{}]*)\}`)

func parseTemplate(text string) grantTemplate {
	f := strings.Fields(text)
	t := grantTemplate{text: text, user: f[0], relation: f[1], object: f[2]}
	t.perUser = strings.Contains(t.user, "{user}")
	t.objectType, _, _ = strings.Cut(t.object, ":")
	typ, rest, _ := strings.Cut(t.user, ":")
	t.userType = typ
	if _, rel, ok := strings.Cut(rest, "#"); ok {
		t.userType = typ + "#" + rel
	}
	return t
}

// globCaptures turns a path.Match pattern into a regexp whose groups are
// its wildcards, so that "team-*" captures what "*" matched.
func globCaptures(glob string) (*regexp.Regexp, int) {
	var b strings.Builder
	b.WriteString("^")
	n := 0
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; c {
		case '*':
			b.WriteString("([^/]*)")
			n++
		case '?':
			b.WriteString("([^/])")
			n++
		case '\\':
			if i+1 < len(glob) {
				i++
				b.WriteString(regexp.QuoteMeta(glob[i : i+1]))
			}
		case '[':
			j := strings.IndexByte(glob[i:], ']')
			if j < 0 {
				return regexp.MustCompile("^$^"), 0 // path.Match rejected it already
			}
			class := glob[i+1 : i+j]
			if strings.HasPrefix(class, "^") {
				class = "^" + class[1:]
			}
			b.WriteString("([" + class + "])")
			n++
			i += j
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return regexp.MustCompile("^$^"), 0
	}
	return re, n
}

// grantGroup is what a grant rule sees of one managed group.
type grantGroup struct {
	group  *Group
	key    string          // the object's id part
	users  func() []string // its users' OpenFGA ids, nested members included
	object string
}

// mapGrants expands the rules over the managed groups into one GrantSet per
// scope, recording invalid tuples, duplicates and unmatched rules as skips.
func mapGrants(rules []grantRule, groups []grantGroup, d *Desired) {
	scopeKey := func(t grantTemplate) Scope {
		return Scope{ObjectType: t.objectType, Relation: t.relation, UserTypes: []string{t.userType}}
	}
	var order []string
	byKey := map[string]*GrantSet{}
	for _, r := range rules {
		matched := false
		for _, gg := range groups {
			caps, ok := r.match(gg.group)
			if !ok {
				continue
			}
			matched = true
			for _, t := range r.templates {
				sk := scopeKey(t)
				k := sk.ObjectType + "\x00" + sk.Relation + "\x00" + sk.UserTypes[0]
				set := byKey[k]
				if set == nil {
					set = &GrantSet{Scope: sk, Usersets: strings.Contains(t.userType, "#"),
						NeedExisting: map[string][]string{}, RuleOf: map[Tuple]string{}}
					byKey[k] = set
					order = append(order, k)
				}
				if !slices.Contains(set.Rules, r.name) {
					set.Rules = append(set.Rules, r.name)
				}
				users := []string{""}
				if t.perUser {
					users = gg.users()
				}
				for _, u := range users {
					tu, problem := expand(t, gg, caps, u)
					if problem != "" {
						d.Skipped = append(d.Skipped, Skip{Kind: "grant", ID: gg.group.ID, Name: gg.group.Name, Reason: ReasonGrantInvalid,
							Detail: fmt.Sprintf("rule %q, template %q: %s", r.name, t.text, problem)})
						continue
					}
					if first, dup := set.RuleOf[tu]; dup {
						if first != r.name {
							d.Skipped = append(d.Skipped, Skip{Kind: "grant", ID: gg.group.ID, Name: gg.group.Name, Reason: ReasonGrantDuplicate,
								Detail: fmt.Sprintf("rules %q and %q both produce %s; it is written once", first, r.name, tu)})
						}
						continue
					}
					set.RuleOf[tu] = r.name
					set.Tuples = append(set.Tuples, tu)
					if r.onlyExisting && !slices.Contains(set.NeedExisting[tu.Object], r.name) {
						set.NeedExisting[tu.Object] = append(set.NeedExisting[tu.Object], r.name)
					}
				}
			}
		}
		if !matched {
			d.Skipped = append(d.Skipped, Skip{Kind: "grant", ID: r.name, Reason: ReasonGrantNoMatch,
				Detail: fmt.Sprintf("grant rule %q matches none of the groups this run manages; check its match", r.name)})
		}
	}
	slices.Sort(order)
	for _, k := range order {
		set := byKey[k]
		SortTuples(set.Tuples)
		d.Grants = append(d.Grants, *set)
	}
}

// expand fills a template for one group (and one member, for {user}).
func expand(t grantTemplate, gg grantGroup, caps []string, user string) (Tuple, string) {
	var problem string
	fill := func(s string) string {
		return placeholder.ReplaceAllStringFunc(s, func(p string) string {
			name := p[1 : len(p)-1]
			switch name {
			case "object":
				return gg.key
			case "name":
				return gg.group.Name
			case "id":
				return gg.group.ID
			case "user":
				_, id, _ := strings.Cut(user, ":")
				return id
			}
			n, _ := strconv.Atoi(name)
			if n < len(caps) {
				return caps[n]
			}
			problem = fmt.Sprintf("capture {%d} did not participate in the match", n)
			return ""
		})
	}
	tu := Tuple{User: fill(t.user), Relation: t.relation, Object: fill(t.object)}
	if problem != "" {
		return tu, problem
	}
	if t.perUser {
		// {user} stands for the member's id; the template fixes the type.
		if typ, _, _ := strings.Cut(user, ":"); typ != t.userType {
			return tu, fmt.Sprintf("member %s is not of the template's user type %q", user, t.userType)
		}
	}
	for _, part := range []struct{ what, s string }{{"object", tu.Object}, {"user", tu.User}} {
		_, id, _ := strings.Cut(part.s, ":")
		if part.what == "user" {
			id, _, _ = strings.Cut(id, "#")
		}
		if why := idProblem(id); why != "" {
			return tu, fmt.Sprintf("%s %q cannot be an OpenFGA id: %s", part.what, part.s, why)
		}
	}
	if why := objectLengthProblem(tu.Object); why != "" {
		return tu, fmt.Sprintf("object %s is %s", tu.Object, why)
	}
	if why := userLengthProblem(tu.User); why != "" {
		return tu, fmt.Sprintf("user %s is %s", tu.User, why)
	}
	return tu, ""
}

// OwnedTypes is the types of the objects an ownership registry records for
// this mapping: the groups' type, then the object types of {user} grant
// rules (their objects are claimed and released like groups).
func (m *Mapper) OwnedTypes() []string {
	var more []string
	for _, r := range m.grants {
		for _, t := range r.templates {
			if t.perUser && t.objectType != m.cfg.ObjectType {
				more = append(more, t.objectType)
			}
		}
	}
	slices.Sort(more)
	return append([]string{m.cfg.ObjectType}, slices.Compact(more)...)
}

// GrantScopes returns each scope the grant rules write into, with the
// rules that write there, sorted: for checking a model before any run.
func (m *Mapper) GrantScopes() []GrantSet {
	byKey := map[string]*GrantSet{}
	var keys []string
	for _, r := range m.grants {
		for _, t := range r.templates {
			k := t.objectType + "#" + t.relation + "@" + t.userType
			set := byKey[k]
			if set == nil {
				set = &GrantSet{Scope: Scope{ObjectType: t.objectType, Relation: t.relation, UserTypes: []string{t.userType}}, Usersets: strings.Contains(t.userType, "#")}
				byKey[k] = set
				keys = append(keys, k)
			}
			if !slices.Contains(set.Rules, r.name) {
				set.Rules = append(set.Rules, r.name)
			}
		}
	}
	slices.Sort(keys)
	out := make([]GrantSet, len(keys))
	for i, k := range keys {
		out[i] = *byKey[k]
	}
	return out
}
