package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	gsync "github.com/groupsync/groupsync/sync"
)

// exportFormats are the tuple file formats of the OpenFGA CLI
// (`fga tuple write --file`), and "test": a `fga model test` file's
// tuples section.
var exportFormats = []string{"yaml", "json", "jsonl", "csv", "test"}

func newExportCmd(o *options) *cobra.Command {
	var format string
	var existing bool
	var slice gsync.Slice
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the desired (or, with --existing, the existing) managed tuples in the OpenFGA CLI's tuple file formats",
		Long: `export plans as "plan" does, writing nothing, and prints the tuples the plan
wants in its scopes (memberships and grants), or with --existing those it
found there, in a format "fga tuple write --file" reads: yaml, json, jsonl
or csv; "test" prints the tuples section of an "fga model test" file.
--user and --group narrow it to a slice, as for plan.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			engine, _, err := o.configuredEngine(cmd.Context())
			if err != nil {
				return err
			}
			p, err := engine.PlanFor(cmd.Context(), &slice)
			if err != nil {
				return err
			}
			tuples := p.DesiredTuples()
			if existing {
				tuples = p.ExistingTuples()
			}
			return writeTuples(o.stdout, format, tuples)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "yaml", "yaml, json, jsonl, csv (fga tuple write --file) or test (fga model test)")
	cmd.Flags().BoolVar(&existing, "existing", false, "the managed tuples OpenFGA holds now, not the desired ones")
	cmd.Flags().StringArrayVar(&slice.Users, "user", nil, "only this user (repeatable)")
	cmd.Flags().StringArrayVar(&slice.Groups, "group", nil, "only this group (repeatable)")
	return cmd
}

// fileTuple is one tuple as the OpenFGA CLI's files spell it.
type fileTuple struct {
	User     string `json:"user" yaml:"user"`
	Relation string `json:"relation" yaml:"relation"`
	Object   string `json:"object" yaml:"object"`
}

func writeTuples(w io.Writer, format string, tuples []gsync.Tuple) error {
	rows := make([]fileTuple, len(tuples))
	for i, t := range tuples {
		rows[i] = fileTuple{User: t.User, Relation: t.Relation, Object: t.Object}
	}
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(rows)
	case "jsonl":
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	case "yaml":
		return yaml.NewEncoder(w).Encode(rows)
	case "test":
		return yaml.NewEncoder(w).Encode(map[string][]fileTuple{"tuples": rows})
	case "csv":
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"user_type", "user_id", "user_relation", "relation", "object_type", "object_id"})
		for _, t := range tuples {
			ut, rest, _ := strings.Cut(t.User, ":")
			uid, urel, _ := strings.Cut(rest, "#")
			ot, oid, _ := strings.Cut(t.Object, ":")
			_ = cw.Write([]string{ut, uid, urel, t.Relation, ot, oid})
		}
		cw.Flush()
		return cw.Error()
	}
	return fmt.Errorf("--format %q: use one of %s", format, strings.Join(exportFormats, ", "))
}
