package msgraph

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
)

// The SDK's $batch answer goes through kiota's generic JSON tree, and each
// item is marshalled back to JSON and parsed again into models whose
// deserializers are built per object: most of a sync's CPU at scale. So
// every $batch answer (members pages, groups and users read by id) is
// decoded here with encoding/json straight into the SDK's model types; the
// format is Graph's documented JSON batching.

// objectJSON is a directory object as groupsync's $select asks for it: the
// member properties, and a group's kind properties when it is read by id.
type objectJSON struct {
	Type               string   `json:"@odata.type"`
	ID                 string   `json:"id"`
	DisplayName        *string  `json:"displayName"`
	UserPrincipalName  *string  `json:"userPrincipalName"`
	Mail               *string  `json:"mail"`
	AccountEnabled     *bool    `json:"accountEnabled"`
	UserType           *string  `json:"userType"`
	GroupTypes         []string `json:"groupTypes"`
	SecurityEnabled    *bool    `json:"securityEnabled"`
	MailEnabled        *bool    `json:"mailEnabled"`
	IsAssignableToRole *bool    `json:"isAssignableToRole"`
}

// membersPage is a members page as decoded: its objects, their raw JSON
// when the mapping reads extra user properties, and the next page's link.
type membersPage struct {
	objects []objectJSON
	raws    []json.RawMessage // parallel to objects, or nil
	next    string
}

// decodeMembers decodes a members page. No SDK model is built here: a
// user listed in many groups needs one only the first time it is seen
// (memberReader.add), and a model with its backing store costs most of a
// kilobyte.
func decodeMembers(body json.RawMessage, attrs []string) (membersPage, error) {
	if len(attrs) == 0 {
		var page struct {
			Value    []objectJSON `json:"value"`
			NextLink *string      `json:"@odata.nextLink"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return membersPage{}, err
		}
		return membersPage{objects: page.Value, next: deref(page.NextLink)}, nil
	}
	var page struct {
		Value    []json.RawMessage `json:"value"`
		NextLink *string           `json:"@odata.nextLink"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return membersPage{}, err
	}
	out := membersPage{objects: make([]objectJSON, len(page.Value)), raws: page.Value, next: deref(page.NextLink)}
	for i, raw := range page.Value {
		if err := json.Unmarshal(raw, &out.objects[i]); err != nil {
			return membersPage{}, err
		}
	}
	return out, nil
}

// raw is object i's JSON, or nil when extra properties are not read.
func (p membersPage) raw(i int) json.RawMessage {
	if p.raws == nil {
		return nil
	}
	return p.raws[i]
}

// decodeObject turns one directory object into the SDK's model of its
// type. An object read by id carries no @odata.type: typ says what it is.
func decodeObject(raw json.RawMessage, typ string, attrs []string) (models.DirectoryObjectable, error) {
	var m objectJSON
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if m.Type == "" {
		m.Type = typ
	}
	return objectModel(m, raw, attrs)
}

// kind is an object's type without its namespace: "user", "group",
// "device" ...
func (m objectJSON) kind() string {
	return strings.TrimPrefix(strings.TrimPrefix(m.Type, "#"), "microsoft.graph.")
}

// group is the SDK's model of a decoded group.
func (m objectJSON) group() models.Groupable {
	g := models.NewGroup()
	id := m.ID
	g.SetId(&id)
	g.SetDisplayName(m.DisplayName)
	if m.GroupTypes != nil {
		g.SetGroupTypes(m.GroupTypes)
	}
	g.SetSecurityEnabled(m.SecurityEnabled)
	g.SetMailEnabled(m.MailEnabled)
	g.SetIsAssignableToRole(m.IsAssignableToRole)
	return g
}

// objectModel is the SDK's model of a decoded object; raw (when attrs are
// read) gives a user's extra properties.
func objectModel(m objectJSON, raw json.RawMessage, attrs []string) (models.DirectoryObjectable, error) {
	id := m.ID
	switch m.kind() {
	case "user":
		u := models.NewUser()
		u.SetId(&id)
		u.SetDisplayName(m.DisplayName)
		u.SetUserPrincipalName(m.UserPrincipalName)
		u.SetMail(m.Mail)
		u.SetAccountEnabled(m.AccountEnabled)
		u.SetUserType(m.UserType)
		if len(attrs) > 0 && raw != nil {
			var all map[string]any
			if err := json.Unmarshal(raw, &all); err != nil {
				return nil, err
			}
			extra := map[string]any{}
			for _, a := range attrs {
				if v, ok := all[a].(string); ok {
					extra[a] = &v
				}
			}
			u.SetAdditionalData(extra)
		}
		return u, nil
	case "group":
		return m.group(), nil
	}
	o := models.NewDirectoryObject()
	o.SetId(&id)
	t := m.Type
	o.SetOdataType(&t)
	return o, nil
}

// decodeAs decodes an object read by id as the model T its request asked for.
func decodeAs[T models.DirectoryObjectable](raw json.RawMessage, typ string, attrs []string) (T, error) {
	o, err := decodeObject(raw, typ, attrs)
	if err != nil {
		var zero T
		return zero, err
	}
	t, ok := o.(T)
	if !ok {
		return t, fmt.Errorf("Graph answered a %s", deref(o.GetOdataType()))
	}
	return t, nil
}
