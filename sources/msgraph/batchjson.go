package msgraph

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	abs "github.com/microsoft/kiota-abstractions-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
)

// The SDK's $batch answer goes through kiota's generic JSON tree, and each
// item is marshalled back to JSON and parsed again into models whose
// deserializers are built per object: most of a sync's CPU at scale. The
// request still goes through the SDK's adapter (authentication,
// middlewares, retries); the answer, whose format is Graph's documented
// JSON batching, is decoded here with encoding/json straight into the
// SDK's model types.

// batchAnswer is one item of a $batch answer.
type batchAnswer struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
}

// sendBatch sends req and returns its answers by request id.
func (s *Source) sendBatch(ctx context.Context, req msgraphcore.BatchRequest) (map[string]batchAnswer, error) {
	info := abs.NewRequestInformation()
	info.Method = abs.POST
	info.UrlTemplate = "{+baseurl}/$batch"
	if err := info.SetContentFromParsable(ctx, s.adapter, "application/json", req); err != nil {
		return nil, err
	}
	info.Headers.TryAdd("Accept", "application/json")
	raw, err := s.adapter.SendPrimitive(ctx, info, "[]byte", abs.ErrorMappings{"XXX": odataerrors.CreateODataErrorFromDiscriminatorValue})
	if err != nil {
		return nil, err
	}
	data, _ := raw.([]byte)
	var doc struct {
		Responses []batchAnswer `json:"responses"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decode the $batch answer: %w", err)
	}
	out := make(map[string]batchAnswer, len(doc.Responses))
	for _, a := range doc.Responses {
		out[a.ID] = a
	}
	return out, nil
}

// memberJSON is a directory object as /members returns it with $select.
type memberJSON struct {
	Type              string  `json:"@odata.type"`
	ID                string  `json:"id"`
	DisplayName       *string `json:"displayName"`
	UserPrincipalName *string `json:"userPrincipalName"`
	Mail              *string `json:"mail"`
	AccountEnabled    *bool   `json:"accountEnabled"`
	UserType          *string `json:"userType"`
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
		var m memberJSON
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, err
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
			objs = append(objs, u)
		case "microsoft.graph.group":
			g := models.NewGroup()
			g.SetId(&id)
			g.SetDisplayName(m.DisplayName)
			objs = append(objs, g)
		default:
			o := models.NewDirectoryObject()
			o.SetId(&id)
			typ := m.Type
			o.SetOdataType(&typ)
			objs = append(objs, o)
		}
	}
	out := models.NewDirectoryObjectCollectionResponse()
	out.SetValue(objs)
	out.SetOdataNextLink(page.NextLink)
	return out, nil
}

// answerError reads Graph's error from a batch item body.
func answerError(body json.RawMessage) (code, message string) {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return e.Error.Code, e.Error.Message
}
