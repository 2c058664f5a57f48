package main

import (
	"encoding/csv"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
)

// export prints what plan wants (or, --existing, what OpenFGA holds) in
// the OpenFGA CLI's tuple formats; every format carries the same tuples.
func TestExport(t *testing.T) {
	srv := fgatest.New(t)
	cfg := exampleConfig(t, srv, "")
	logs := "--log-level=warn"
	if code, out, errOut := cli(t, "model", "write", "-c", cfg, logs); code != 0 {
		t.Fatalf("model write: %d %s %s", code, out, errOut)
	}
	export := func(args ...string) string {
		t.Helper()
		code, out, errOut := cli(t, append([]string{"export", "-c", cfg, logs}, args...)...)
		if code != 0 {
			t.Fatalf("export %v: %d %s", args, code, errOut)
		}
		return out
	}
	var desired []fileTuple
	if err := json.Unmarshal([]byte(export("-f", "json")), &desired); err != nil || len(desired) == 0 {
		t.Fatalf("json: %v %d", err, len(desired))
	}
	var existing []fileTuple
	if err := json.Unmarshal([]byte(export("-f", "json", "--existing")), &existing); err != nil || len(existing) != 0 {
		t.Fatalf("existing before apply: %v %v", err, existing)
	}
	if code, _, errOut := cli(t, "apply", "-c", cfg, logs); code != 0 {
		t.Fatalf("apply: %d %s", code, errOut)
	}
	_ = json.Unmarshal([]byte(export("-f", "json", "--existing")), &existing)
	if !slices.Equal(existing, desired) {
		t.Fatalf("after apply OpenFGA holds\n%v\nnot the desired\n%v", existing, desired)
	}
	var fromYAML []fileTuple
	if err := yaml.Unmarshal([]byte(export("-f", "yaml")), &fromYAML); err != nil || !slices.Equal(fromYAML, desired) {
		t.Fatalf("yaml: %v", err)
	}
	var test struct{ Tuples []fileTuple }
	if err := yaml.Unmarshal([]byte(export("-f", "test")), &test); err != nil || !slices.Equal(test.Tuples, desired) {
		t.Fatalf("test: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(export("-f", "jsonl")), "\n")
	var first fileTuple
	if len(lines) != len(desired) || json.Unmarshal([]byte(lines[0]), &first) != nil || first != desired[0] {
		t.Fatalf("jsonl: %d lines", len(lines))
	}
	rows, err := csv.NewReader(strings.NewReader(export("-f", "csv"))).ReadAll()
	if err != nil || len(rows) != len(desired)+1 || strings.Join(rows[0], ",") != "user_type,user_id,user_relation,relation,object_type,object_id" {
		t.Fatalf("csv: %v %d rows", err, len(rows))
	}
	for i, r := range rows[1:] {
		user := r[0] + ":" + r[1]
		if r[2] != "" {
			user += "#" + r[2]
		}
		if (fileTuple{User: user, Relation: r[3], Object: r[4] + ":" + r[5]}) != desired[i] {
			t.Fatalf("csv row %d: %v, want %v", i, r, desired[i])
		}
	}
	if code, _, errOut := cli(t, "export", "-c", cfg, "-f", "toml", logs); code != 1 || !strings.Contains(errOut, "--format") {
		t.Fatalf("bad format: %d %s", code, errOut)
	}
}
