package config

import (
	"strings"
	"testing"
)

// FuzzParse: any bytes and any environment give a config or an error that
// names a field or a line, never a panic, and never echo a secret.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal), "")
	f.Add([]byte(doc("", "", `{filters: {include: [{regex: "^a(b"}]}}`)), "")
	f.Add([]byte(doc("{type: msgraph, msgraph: {auth: token}}", "", "")), "GROUPSYNC_SOURCE_MSGRAPH_TOKEN")
	f.Add([]byte("openfga: [1, 2]\n"), "")
	f.Add([]byte("\x00\xff: {"), "GROUPSYNC_OPENFGA_MAX_RETRIES")
	f.Add([]byte("sync: {guards: {max_delete_percent: 1e400}}"), "")
	f.Fuzz(func(t *testing.T, data []byte, envName string) {
		const secret = "fuzz-secret-value"
		env := func(k string) (string, bool) {
			if k == envName {
				return secret, true
			}
			return "", false
		}
		c, err := Parse(data, env)
		if err != nil {
			if strings.Contains(err.Error(), secret) && !strings.Contains(string(data), secret) {
				t.Fatalf("error echoes a secret: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse returned a config that does not validate: %v", err)
		}
	})
}
