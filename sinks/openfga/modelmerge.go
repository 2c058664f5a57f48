package openfga

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	fga "github.com/openfga/go-sdk"
	"github.com/openfga/language/pkg/go/transformer"

	"github.com/groupsync/groupsync/internal/keys"
)

// modelSchema is the schema version of groupsync's models. A merged model
// keeps the store's schema version, so the store's must be the same: 1.0
// cannot say which user types a relation takes (groupsync's checks need
// that), and 1.2 models are assembled from modules by the application's
// own tooling, which would drop types added outside its modules.
const modelSchema = "1.1"

// ModelAddition is one type or relation that MergeModel adds to a model.
type ModelAddition struct {
	Type string
	// Relation is "" when the whole type is added (its relations follow as
	// additions of their own).
	Relation string
	// Definition is the relation's definition in DSL, as after "define
	// relation:", e.g. "[user, group#member]"; "" for a type.
	Definition string
}

// String is the addition as a diff line: "+ type groupsync_instance" or
// "+ group.member: [user, group#member]".
func (a ModelAddition) String() string {
	if a.Relation == "" {
		return "+ type " + a.Type
	}
	return "+ " + a.Type + "." + a.Relation + ": " + a.Definition
}

// ModelMerge is the result of MergeModel.
type ModelMerge struct {
	// Model is the base with the additions; the base unchanged (ids
	// included) when there are none.
	Model fga.AuthorizationModel
	// Added lists the additions: types in the order of the needed model,
	// each followed by its relations in name order, then relations added to
	// types the base had.
	Added []ModelAddition
}

// UpToDate reports whether the base already had everything.
func (m ModelMerge) UpToDate() bool { return len(m.Added) == 0 }

// Diff is the additions as lines ("+ type x", "+ x.rel: [...]"), each
// ending in a newline; "" when up to date.
func (m ModelMerge) Diff() string {
	var b strings.Builder
	for _, a := range m.Added {
		b.WriteString(a.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// ModelConflict is a relation the base model has that lacks directly
// related user types groupsync needs. Adding them would change how the
// application that owns the model answers checks, so MergeModel leaves
// that decision to a person.
type ModelConflict struct {
	Type     string
	Relation string
	Accepts  []string // what the relation takes directly now, in DSL ("user", "user:*", "user with cond")
	Missing  []string // what groupsync needs it to take as well ("group#member")
}

// Fix is the definition that would accept both: the relation's directly
// related user types with the missing ones appended.
func (c ModelConflict) Fix() string {
	return "define " + c.Relation + ": [" + strings.Join(append(slices.Clone(c.Accepts), c.Missing...), ", ") + "]"
}

func (c ModelConflict) String() string {
	return fmt.Sprintf("relation %s.%s accepts [%s] but groupsync writes %s there; add %s to the application's model (%s, keeping the rest of its definition)",
		c.Type, c.Relation, strings.Join(c.Accepts, ", "), quoteAll(c.Missing), plural(len(c.Missing), "it", "them"), c.Fix())
}

// ModelConflictError is MergeModel's refusal to change relations groupsync
// did not add.
type ModelConflictError struct {
	Conflicts []ModelConflict
}

func (e *ModelConflictError) Error() string {
	var b strings.Builder
	b.WriteString("groupsync does not change relations it did not add, and the model has ")
	b.WriteString(plural(len(e.Conflicts), "one that lacks", "some that lack"))
	b.WriteString(" user types groupsync writes; nothing was written:")
	for _, c := range e.Conflicts {
		b.WriteString("\n  ")
		b.WriteString(c.String())
	}
	return b.String()
}

// ErrModelSchema: the store's model has a schema version groupsync's types
// cannot be merged into.
var ErrModelSchema = errors.New("incompatible authorization model schema")

// MergeModel adds to base what groupsync needs and nothing else: base's
// types, relations, conditions and schema version are kept as they are.
//
// need is the smallest model groupsync needs: each of its types must be in
// the result, each of its relations on that type, and each of that
// relation's directly related user types among the relation's. full is
// what groupsync writes into an empty store (need's types, with relations
// that may take more user types, e.g. group#member for a later switch to
// nested usersets); a type base lacks is added as full defines it, a
// relation as full defines it or, when full lacks it, as need does.
//
// A relation base has that lacks a user type need names is a
// ModelConflictError (every such relation is listed): groupsync never
// rewrites a relation it did not add. base nil (an empty store) gives full.
// A base whose schema is not 1.1 is ErrModelSchema. full must define every
// type need has.
func MergeModel(base *fga.AuthorizationModel, need, full fga.AuthorizationModel) (ModelMerge, error) {
	for _, m := range []struct {
		what  string
		model fga.AuthorizationModel
	}{{"needed", need}, {"full", full}} {
		if m.model.SchemaVersion != modelSchema {
			return ModelMerge{}, fmt.Errorf("groupsync's %s model has schema %q, want %s: %w", m.what, m.model.SchemaVersion, modelSchema, ErrModelSchema)
		}
		// Conditions would have to be merged by name and compared by
		// expression; groupsync's models have none.
		if len(m.model.GetConditions()) > 0 {
			return ModelMerge{}, fmt.Errorf("groupsync's %s model has conditions, which merging does not support", m.what)
		}
	}
	for _, nt := range need.TypeDefinitions {
		if _, ok := typeDef(full, nt.Type); !ok {
			return ModelMerge{}, fmt.Errorf("groupsync's full model lacks type %q of the needed model", nt.Type)
		}
	}
	types := need.TypeDefinitions
	if base == nil {
		// An empty store gets the full model, every type of it.
		base, types = &fga.AuthorizationModel{SchemaVersion: modelSchema}, full.TypeDefinitions
	} else if err := checkSchema(*base); err != nil {
		return ModelMerge{}, err
	}

	out, err := cloneModel(*base)
	if err != nil {
		return ModelMerge{}, err
	}
	var added, addedRels []ModelAddition
	var conflicts []ModelConflict
	for _, nt := range types {
		def, _ := typeDef(full, nt.Type)
		i := slices.IndexFunc(out.TypeDefinitions, func(td fga.TypeDefinition) bool { return td.Type == nt.Type })
		if i < 0 {
			td, err := cloneType(def)
			if err != nil {
				return ModelMerge{}, err
			}
			out.TypeDefinitions = append(out.TypeDefinitions, td)
			added = append(added, ModelAddition{Type: td.Type})
			for _, rel := range keys.Sorted(td.GetRelations()) {
				added = append(added, ModelAddition{Type: td.Type, Relation: rel, Definition: relationDSL(td, rel)})
			}
			continue
		}
		td := &out.TypeDefinitions[i]
		for _, rel := range keys.Sorted(nt.GetRelations()) {
			if _, ok := td.GetRelations()[rel]; !ok {
				src := nt
				if _, ok := def.GetRelations()[rel]; ok {
					src = def
				}
				if err := addRelation(td, src, rel); err != nil {
					return ModelMerge{}, err
				}
				addedRels = append(addedRels, ModelAddition{Type: td.Type, Relation: rel, Definition: relationDSL(src, rel)})
				continue
			}
			accepts := directUserTypes(*td, rel)
			var missing []string
			for _, ut := range directUserTypes(nt, rel) {
				if !slices.Contains(accepts, ut) {
					missing = append(missing, ut)
				}
			}
			if len(missing) > 0 {
				conflicts = append(conflicts, ModelConflict{Type: td.Type, Relation: rel, Accepts: accepts, Missing: missing})
			}
		}
	}
	if len(conflicts) > 0 {
		return ModelMerge{}, &ModelConflictError{Conflicts: conflicts}
	}
	added = append(added, addedRels...)
	if len(added) == 0 {
		// The base exactly as it was: nothing to write.
		return ModelMerge{Model: *base}, nil
	}
	// The merged model is a new model; the server gives it its id.
	out.Id = ""
	return ModelMerge{Model: out, Added: added}, nil
}

// checkSchema rejects a store's model that groupsync's 1.1 types cannot
// join, saying what to do instead.
func checkSchema(m fga.AuthorizationModel) error {
	switch m.SchemaVersion {
	case modelSchema:
		for _, td := range m.TypeDefinitions {
			if td.Metadata != nil && td.Metadata.GetModule() != "" {
				return fmt.Errorf("authorization model %s is a modular model (type %q comes from module %q): add groupsync's types as a module of its own (groupsync model --fragment prints them) and write the model with your tooling: %w",
					m.Id, td.Type, td.Metadata.GetModule(), ErrModelSchema)
			}
		}
		return nil
	case "1.0":
		return fmt.Errorf("authorization model %s has schema 1.0, which cannot say which user types a relation accepts; groupsync needs schema %s: migrate the model to schema %s first: %w",
			m.Id, modelSchema, modelSchema, ErrModelSchema)
	case "1.2":
		return fmt.Errorf("authorization model %s has schema 1.2 (a modular model): add groupsync's types as a module of its own (groupsync model --fragment prints them) and write the model with your tooling: %w",
			m.Id, ErrModelSchema)
	default:
		return fmt.Errorf("authorization model %s has schema %q; groupsync can only merge into schema %s: %w", m.Id, m.SchemaVersion, modelSchema, ErrModelSchema)
	}
}

// directUserTypes is what relation rel of td takes directly, in DSL.
func directUserTypes(td fga.TypeDefinition, rel string) []string {
	md, ok := relationMeta(td, rel)
	if !ok {
		return nil
	}
	var out []string
	for _, ref := range md.GetDirectlyRelatedUserTypes() {
		out = append(out, refDSL(ref))
	}
	return out
}

// addRelation copies relation rel of src, with its metadata, into td.
func addRelation(td *fga.TypeDefinition, src fga.TypeDefinition, rel string) error {
	var def fga.Userset
	if err := cloneJSON(src.GetRelations()[rel], &def); err != nil {
		return err
	}
	rels := td.GetRelations()
	if rels == nil {
		rels = map[string]fga.Userset{}
	}
	rels[rel] = def
	td.Relations = &rels

	md, ok := relationMeta(src, rel)
	if !ok {
		return nil
	}
	var cmd fga.RelationMetadata
	if err := cloneJSON(md, &cmd); err != nil {
		return err
	}
	meta := td.GetMetadata()
	mrels := meta.GetRelations()
	if mrels == nil {
		mrels = map[string]fga.RelationMetadata{}
	}
	mrels[rel] = cmd
	meta.Relations = &mrels
	td.Metadata = &meta
	return nil
}

// relationDSL is relation rel of td as the DSL writes it after "define
// rel: ", for the diff. It falls back to the directly related types if the
// transformer cannot render the relation on its own (one that refers to
// relations of other types).
func relationDSL(td fga.TypeDefinition, rel string) string {
	fallback := "[" + strings.Join(directUserTypes(td, rel), ", ") + "]"
	one := fga.TypeDefinition{Type: td.Type, Relations: &map[string]fga.Userset{rel: td.GetRelations()[rel]}}
	if md, ok := relationMeta(td, rel); ok {
		one.Metadata = &fga.Metadata{Relations: &map[string]fga.RelationMetadata{rel: md}}
	}
	js, err := json.Marshal(fga.AuthorizationModel{SchemaVersion: modelSchema, TypeDefinitions: []fga.TypeDefinition{one}})
	if err != nil {
		return fallback
	}
	dsl, err := transformer.TransformJSONStringToDSL(string(js))
	if err != nil {
		return fallback
	}
	prefix := "define " + rel + ": "
	for line := range strings.Lines(*dsl) {
		if s := strings.TrimSpace(line); strings.HasPrefix(s, prefix) {
			return strings.TrimPrefix(s, prefix)
		}
	}
	return fallback
}

// ParseModel turns a model in DSL into the SDK's form, through the JSON a
// client sends.
func ParseModel(dsl string) (fga.AuthorizationModel, error) {
	var m fga.AuthorizationModel
	js, err := transformer.TransformDSLToJSON(dsl)
	if err != nil {
		return m, fmt.Errorf("parse the authorization model: %w", err)
	}
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		return m, fmt.Errorf("convert the authorization model for the SDK: %w", err)
	}
	return m, nil
}

// relationMeta is the metadata of relation rel of td (its directly
// related user types), if td has any.
func relationMeta(td fga.TypeDefinition, rel string) (fga.RelationMetadata, bool) {
	if td.Metadata == nil {
		return fga.RelationMetadata{}, false
	}
	md, ok := td.Metadata.GetRelations()[rel]
	return md, ok
}

func typeDef(m fga.AuthorizationModel, typ string) (fga.TypeDefinition, bool) {
	i := slices.IndexFunc(m.TypeDefinitions, func(td fga.TypeDefinition) bool { return td.Type == typ })
	if i < 0 {
		return fga.TypeDefinition{}, false
	}
	return m.TypeDefinitions[i], true
}

// cloneModel and cloneType deep-copy through JSON, so the merge never
// shares maps or pointers with the models it was given.
func cloneModel(m fga.AuthorizationModel) (fga.AuthorizationModel, error) {
	var out fga.AuthorizationModel
	return out, cloneJSON(m, &out)
}

func cloneType(td fga.TypeDefinition) (fga.TypeDefinition, error) {
	var out fga.TypeDefinition
	return out, cloneJSON(td, &out)
}

func cloneJSON(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("copy the authorization model: %w", err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("copy the authorization model: %w", err)
	}
	return nil
}

func quoteAll(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}
