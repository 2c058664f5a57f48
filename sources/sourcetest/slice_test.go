package sourcetest_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sources/authentik"
	"github.com/groupsync/groupsync/sources/authentik/authentiktest"
	"github.com/groupsync/groupsync/sources/ldap"
	"github.com/groupsync/groupsync/sources/msgraph"
	"github.com/groupsync/groupsync/sources/msgraph/graphtest"
	"github.com/groupsync/groupsync/sources/sourcetest"
)

// TestSliceConformance runs the slice checks for every source that reads
// slices, against the same backends as TestConformance.
func TestSliceConformance(t *testing.T) {
	tenant := sourcetest.Default()
	t.Run("msgraph", func(t *testing.T) {
		srv := graphServer(t, tenant)
		sourcetest.RunSlice(t, tenant, sourcetest.SliceBackend{
			Source: func(t *testing.T, m config.Mapping) sourcetest.SliceSource {
				return graphClient(t, srv, msgraph.WithMapping(m))
			},
			Fail: func(t *testing.T) {
				// The first reads succeed (the user, the groups named);
				// the next ones fail: a read failing midway is an error.
				srv.SetFaultFunc(func(r *http.Request) *graphtest.Fault {
					if ep := graphtest.EndpointOf(r); ep == graphtest.EndpointMemberOf || ep == graphtest.EndpointMembers {
						return graphtest.StatusFault(http.StatusForbidden)
					}
					return nil
				})
			},
		})
	})
	t.Run("ldap", func(t *testing.T) {
		srv := ldapServer(t, tenant)
		sourcetest.RunSlice(t, tenant, sourcetest.SliceBackend{
			Source: func(t *testing.T, m config.Mapping) sourcetest.SliceSource {
				// No retries: the failure check stops the server.
				return ldapClient(t, srv, func(c *config.LDAP) { c.MaxRetries = 0 }, ldap.WithMapping(m))
			},
			Fail: func(t *testing.T) { srv.Stop() },
		})
	})
	for _, legacy := range []bool{false, true} {
		name := "authentik"
		tn := tenant
		if legacy {
			name, tn = "authentik-legacy-parent", singleParent()
		}
		t.Run(name, func(t *testing.T) {
			srv := authentikServer(t, tn, legacy)
			sourcetest.RunSlice(t, tn, sourcetest.SliceBackend{
				Source: func(t *testing.T, m config.Mapping) sourcetest.SliceSource {
					return authentikClient(t, srv, authentik.WithMapping(m), authentik.WithRetryMinWait(0))
				},
				Fail: func(t *testing.T) {
					// Finding the user or the group succeeds; reading
					// their groups or members fails.
					srv.SetFaultFunc(func(r *http.Request) *authentiktest.Fault {
						if r.URL.Query().Has("groups_by_pk") || strings.Count(strings.TrimPrefix(r.URL.Path, "/api/v3/core/groups/"), "-") == 4 {
							return authentiktest.StatusFault(http.StatusForbidden)
						}
						return nil
					})
				},
			})
		})
	}
}
