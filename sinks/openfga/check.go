package openfga

import (
	"context"
	"net/http"

	fga "github.com/openfga/go-sdk"
)

// CheckAccess asks OpenFGA, as an application does, whether user has
// relation on object (under the sink's model, at higher consistency):
// `groupsync explain --check`.
func (s *Sink) CheckAccess(ctx context.Context, user, relation, object string) (bool, error) {
	body := fga.CheckRequest{
		TupleKey:             fga.CheckRequestTupleKey{User: user, Relation: relation, Object: object},
		AuthorizationModelId: fga.PtrString(s.modelID),
		Consistency:          fga.ToPtr(fga.CONSISTENCYPREFERENCE_HIGHER_CONSISTENCY),
	}
	resp, err := call(ctx, &s.conn, "Check", s.storeID, nil, func(ctx context.Context) (fga.CheckResponse, *http.Response, error) {
		return s.api.Check(ctx, s.storeID).Body(body).Execute()
	})
	return resp.GetAllowed(), err
}
