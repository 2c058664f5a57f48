package sync

import (
	"bytes"
	"encoding/json"
	"testing"
)

// renderJSON writes exactly what encoding the whole report writes.
func TestRenderJSONMatchesWholeEncoding(t *testing.T) {
	for name, changes := range map[string][]GroupChange{
		"none":  nil,
		"empty": {},
		"some": {
			{Object: "group:a", GroupName: "A <&> b", Add: []string{"user:1", "group:b#member"}, Delete: []string{}},
			{Object: "group:b", Add: []string{}, Delete: []string{"user:2"}},
		},
	} {
		r := &Report{FormatVersion: 1, Command: "plan", Changes: changes, Withheld: []Withheld{}, Skipped: []Skip{},
			UserNames: map[string]string{"user:1": "alice@example.com"}}
		var whole bytes.Buffer
		enc := json.NewEncoder(&whole)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
		var streamed bytes.Buffer
		if err := r.renderJSON(&streamed); err != nil {
			t.Fatal(err)
		}
		if streamed.String() != whole.String() {
			t.Fatalf("%s: streamed JSON differs:\n%s\nwant\n%s", name, streamed.String(), whole.String())
		}
	}
}
