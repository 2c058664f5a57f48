package msgraph

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/groups"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
)

// readGroupProps reads groups by id; a group that is gone is left out.
func (w *stateWriter) readGroupProps(ctx context.Context, ids []string) error {
	s := w.s
	var mu sync.Mutex
	gone, err := s.batchGet(ctx, ids, "group", func(ctx context.Context, id string) (*abs.RequestInformation, error) {
		return s.client.Groups().ByGroupId(id).ToGetRequestInformation(ctx, &groups.GroupItemRequestBuilderGetRequestConfiguration{
			QueryParameters: &groups.GroupItemRequestBuilderGetQueryParameters{Select: groupSelect}})
	}, func(id string, body json.RawMessage) error {
		g, err := decodeAs[models.Groupable](body, "#microsoft.graph.group", nil)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		rec := w.group(id)
		p := propsOf(g)
		rec.name, rec.flags = p.name, flagsOf(p)|rec.flags&gComplete
		return nil
	}, "GroupMember.Read.All")
	for _, id := range gone {
		delete(w.st.groups, id)
		w.goneGroups[id] = true
	}
	return err
}

// readUsers reads users by id; a user who is gone is left out.
func (w *stateWriter) readUsers(ctx context.Context, ids []string) error {
	s := w.s
	var mu sync.Mutex
	gone, err := s.batchGet(ctx, ids, "user", func(ctx context.Context, id string) (*abs.RequestInformation, error) {
		return s.client.Users().ByUserId(id).ToGetRequestInformation(ctx, &users.UserItemRequestBuilderGetRequestConfiguration{
			QueryParameters: &users.UserItemRequestBuilderGetQueryParameters{Select: s.userSelect()}})
	}, func(id string, body json.RawMessage) error {
		u, err := decodeAs[models.Userable](body, "#microsoft.graph.user", s.userAttrs)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		w.st.users[id] = s.userRecord(u)
		w.ownU[id] = true
		delete(w.staleUsers, id)
		return nil
	}, "User.Read.All")
	for _, id := range gone {
		delete(w.st.users, id)
		w.goneUsers[id] = true
		delete(w.staleUsers, id)
	}
	return err
}

// batchGet sends one GET per id with sendBatches; keep takes the body of
// each 200. It returns the ids Graph answered 404 for.
func (s *Source) batchGet(ctx context.Context, ids []string, what string,
	info func(context.Context, string) (*abs.RequestInformation, error),
	keep func(id string, body json.RawMessage) error, permission string) ([]string, error) {
	var (
		mu   sync.Mutex
		gone []string
	)
	err := sendBatches(ctx, s, batchReads[string]{
		what: what, permission: permission, request: info,
		path: func(id string) string { return "/" + what + "s/" + id },
		name: func(id string) string { return what + " " + id },
		answer: func(id string, a batchAnswer) ([]string, error) {
			switch a.Status {
			case http.StatusOK:
				if err := keep(id, a.Body); err != nil {
					return nil, fmt.Errorf("msgraph: read %s %s: %w", what, id, err)
				}
				return nil, nil
			case http.StatusNotFound:
				mu.Lock()
				gone = append(gone, id)
				mu.Unlock()
				return nil, nil
			}
			code, msg := answerError(a.Body)
			return nil, fmt.Errorf("msgraph: read %s %s: HTTP %d %s: %s%s", what, id, a.Status, code, msg, permissionHint(a.Status, permission))
		},
	}, ids)
	if err != nil {
		return nil, err
	}
	return gone, nil
}
