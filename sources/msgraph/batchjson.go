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

// decodeMembers turns a members page into the SDK's collection model.
// attrs are extra user properties to keep (as additional data).
func decodeMembers(body json.RawMessage, attrs []string) (models.DirectoryObjectCollectionResponseable, error) {
	var page struct {
		Value    []json.RawMessage `json:"value"`
		NextLink *string           `json:"@odata.nextLink"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, err
	}
	objs := make([]models.DirectoryObjectable, 0, len(page.Value))
	for _, raw := range page.Value {
		o, err := decodeObject(raw, "", attrs)
		if err != nil {
			return nil, err
		}
		objs = append(objs, o)
	}
	out := models.NewDirectoryObjectCollectionResponse()
	out.SetValue(objs)
	out.SetOdataNextLink(page.NextLink)
	return out, nil
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
	id := m.ID
	switch strings.TrimPrefix(m.Type, "#") {
	case "microsoft.graph.user":
		u := models.NewUser()
		u.SetId(&id)
		u.SetDisplayName(m.DisplayName)
		u.SetUserPrincipalName(m.UserPrincipalName)
		u.SetMail(m.Mail)
		u.SetAccountEnabled(m.AccountEnabled)
		u.SetUserType(m.UserType)
		if len(attrs) > 0 {
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
	case "microsoft.graph.group":
		g := models.NewGroup()
		g.SetId(&id)
		g.SetDisplayName(m.DisplayName)
		if m.GroupTypes != nil {
			g.SetGroupTypes(m.GroupTypes)
		}
		g.SetSecurityEnabled(m.SecurityEnabled)
		g.SetMailEnabled(m.MailEnabled)
		g.SetIsAssignableToRole(m.IsAssignableToRole)
		return g, nil
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
