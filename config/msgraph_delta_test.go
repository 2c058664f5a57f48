package config

import (
	"strings"
	"testing"
	"time"
)

const graphSource = `{type: msgraph, msgraph: {auth: token, token: t, delta: %s}}`

func TestDeltaDefaults(t *testing.T) {
	c, err := Parse([]byte(doc(strings.Replace(graphSource, "%s", "{enabled: true}", 1), "", "")), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	d := c.Source.MSGraph.Delta
	if !d.Enabled || time.Duration(d.FullSyncEvery) != 24*time.Hour || d.State.Type != "memory" || d.State.Name != DefaultDeltaStateName {
		t.Fatalf("%+v", d)
	}
	c, err = Parse([]byte(doc(strings.Replace(graphSource, "%s", "{}", 1), "", "")), envOf(map[string]string{
		"GROUPSYNC_SOURCE_MSGRAPH_DELTA_ENABLED":         "true",
		"GROUPSYNC_SOURCE_MSGRAPH_DELTA_FULL_SYNC_EVERY": "12h",
		"GROUPSYNC_SOURCE_MSGRAPH_DELTA_STATE_TYPE":      "secret",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Source.MSGraph.Delta; !d.Enabled || time.Duration(d.FullSyncEvery) != 12*time.Hour || d.State.Type != "secret" {
		t.Fatalf("env: %+v", d)
	}
}

func TestDeltaErrorsNameTheirField(t *testing.T) {
	for _, tc := range []struct{ delta, field string }{
		{`{enabled: true, full_sync_every: -1h}`, "source.msgraph.delta.full_sync_every"},
		{`{enabled: true, state: {type: redis}}`, "source.msgraph.delta.state.type"},
		{`{enabled: true, state: {type: file}}`, "source.msgraph.delta.state.path"},
		{`{enabled: true, state: {type: configmap, name: "Not_A_Name"}}`, "source.msgraph.delta.state.name"},
		{`{enabled: true, state: {type: secret, name: ok, namespace: "bad ns"}}`, "source.msgraph.delta.state.namespace"},
		{`{enabled: true, state: {type: memory, name: ""}}`, "source.msgraph.delta.state.name"},
	} {
		_, err := Parse([]byte(doc(strings.Replace(graphSource, "%s", tc.delta, 1), "", "")), noEnv)
		if err == nil || !strings.Contains(err.Error(), tc.field+": ") {
			t.Errorf("%s: %v", tc.delta, err)
		}
	}
	for _, ok := range []string{`{enabled: true, state: {type: file, path: /var/lib/groupsync/state}}`,
		`{enabled: true, full_sync_every: 0s, state: {type: configmap, namespace: sync, name: groupsync-delta-state}}`,
		`{enabled: false, state: {type: file}}`} {
		if _, err := Parse([]byte(doc(strings.Replace(graphSource, "%s", ok, 1), "", "")), noEnv); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}
