package config

import (
	"strings"
	"testing"
	"time"
)

const subsSource = `{type: msgraph, msgraph: {auth: token, token: t, subscriptions: %s}}`

func TestSubscriptionsDefaults(t *testing.T) {
	c, err := Parse([]byte(doc(strings.Replace(subsSource, "%s", "{enabled: true, notification_url: https://gs.example/webhooks/graph}", 1), "", "")), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Source.MSGraph.Subscriptions
	if !s.Enabled || time.Duration(s.RenewBefore) != 232*time.Hour || s.ClientState != "" {
		t.Fatalf("%+v", s)
	}
	c, err = Parse([]byte(doc(strings.Replace(subsSource, "%s", "{}", 1), "", "")), envOf(map[string]string{
		"GROUPSYNC_SOURCE_MSGRAPH_SUBSCRIPTIONS_ENABLED":          "true",
		"GROUPSYNC_SOURCE_MSGRAPH_SUBSCRIPTIONS_NOTIFICATION_URL": "https://gs.example/webhooks/graph",
		"GROUPSYNC_SOURCE_MSGRAPH_SUBSCRIPTIONS_CLIENT_STATE":     "s3cret-state",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Source.MSGraph.Subscriptions; !s.Enabled || s.ClientState.Reveal() != "s3cret-state" || s.ClientState.String() == "s3cret-state" {
		t.Fatalf("env: %+v", s)
	}
}

func TestSubscriptionsErrorsNameTheirField(t *testing.T) {
	for _, tc := range []struct{ subs, field string }{
		{`{enabled: true}`, "source.msgraph.subscriptions.notification_url"},
		{`{enabled: true, notification_url: "http://gs.example/webhooks/graph"}`, "source.msgraph.subscriptions.notification_url"},
		{`{enabled: true, notification_url: "ftp://gs.example/x"}`, "source.msgraph.subscriptions.notification_url"},
		{`{enabled: true, notification_url: "https://gs.example/x", lifecycle_url: "http://gs.example/l"}`, "source.msgraph.subscriptions.lifecycle_url"},
		{`{enabled: true, notification_url: "https://gs.example/x", client_state: "` + strings.Repeat("x", 129) + `"}`, "source.msgraph.subscriptions.client_state"},
		{`{enabled: true, notification_url: "https://gs.example/x", renew_before: 0s}`, "source.msgraph.subscriptions.renew_before"},
		{`{enabled: true, notification_url: "https://gs.example/x", renew_before: 700h}`, "source.msgraph.subscriptions.renew_before"},
	} {
		_, err := Parse([]byte(doc(strings.Replace(subsSource, "%s", tc.subs, 1), "", "")), noEnv)
		if err == nil || !strings.Contains(err.Error(), tc.field+": ") {
			t.Errorf("%s: %v", tc.subs, err)
		}
	}
	for _, ok := range []string{
		`{enabled: true, notification_url: "http://127.0.0.1:8080/webhooks/graph"}`,
		`{enabled: true, notification_url: "https://gs.example/webhooks/graph", lifecycle_url: "https://gs.example/webhooks/graph/lifecycle", client_state: "` + strings.Repeat("x", 128) + `", renew_before: 48h}`,
		`{enabled: false}`,
	} {
		if _, err := Parse([]byte(doc(strings.Replace(subsSource, "%s", ok, 1), "", "")), noEnv); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}
