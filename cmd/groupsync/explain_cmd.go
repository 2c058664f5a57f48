package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sinks/openfga"
	gsync "github.com/groupsync/groupsync/sync"
)

// explanation is what `groupsync explain` prints: the engine's
// explanation and the answers to --check.
type explanation struct {
	*gsync.Explanation
	Checks []checkAnswer `json:"checks,omitempty"`
}

type checkAnswer struct {
	User     string `json:"user"`
	Relation string `json:"relation"`
	Object   string `json:"object"`
	Allowed  bool   `json:"allowed"`
}

func newExplainCmd(o *options) *cobra.Command {
	var format string
	var checks []string
	cmd := &cobra.Command{
		Use:   "explain user|group NAME",
		Short: "Say why a user or group has the tuples it has: groups reached and how, rules, skips, desired and existing tuples, OpenFGA checks",
		Long: `explain reads one user (by the mapping's key or the source's id) or one
group (by display name or id) from the source and OpenFGA, and prints: for a
user, each group they reach and the path through nested groups, and whether
the mapping syncs it (or why not); for a group, its direct members; then the
tuples that should exist, those that do, and what apply would change. It
writes nothing. --check "RELATION OBJECT" (repeatable) asks OpenFGA, as an
application would, whether the user (or the group's members) has RELATION on
OBJECT.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "user" && args[0] != "group" {
				return fmt.Errorf("explain %q: explain user NAME or explain group NAME", args[0])
			}
			engine, cfg, err := o.configuredEngine(cmd.Context())
			if err != nil {
				return err
			}
			x, err := engine.Explain(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			out := explanation{Explanation: x}
			if len(checks) > 0 {
				if out.Checks, err = runChecks(cmd.Context(), engine, cfg, x, checks); err != nil {
					return err
				}
			}
			switch format {
			case "json":
				enc := json.NewEncoder(o.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			case "text":
				renderExplanation(o.stdout, out)
				return nil
			}
			return fmt.Errorf("--output %q: use text or json", format)
		},
	}
	cmd.Flags().StringVarP(&format, "output", "o", "text", "text or json")
	cmd.Flags().StringArrayVar(&checks, "check", nil, `ask OpenFGA "RELATION OBJECT" for the user (a group: its members' userset), e.g. --check "viewer project:red"; repeatable`)
	return cmd
}

// runChecks asks OpenFGA each --check for the explained user, or for the
// group's userset.
func runChecks(ctx context.Context, engine *gsync.Engine, cfg *config.Config, x *gsync.Explanation, checks []string) ([]checkAnswer, error) {
	sink, ok := engine.Sink.(*openfga.Sink)
	if !ok || len(x.OpenFGA) == 0 {
		return nil, fmt.Errorf("--check: %s %q has no OpenFGA id to check", x.Kind, x.Name)
	}
	user := x.OpenFGA[0]
	if x.Kind == "group" {
		user += "#" + cfg.Mapping.Relation
	}
	var out []checkAnswer
	for _, c := range checks {
		rel, obj, ok := strings.Cut(strings.TrimSpace(c), " ")
		if !ok || rel == "" || !strings.Contains(obj, ":") {
			return nil, fmt.Errorf(`--check %q: write "RELATION TYPE:ID", e.g. "viewer project:red"`, c)
		}
		allowed, err := sink.CheckAccess(ctx, user, rel, strings.TrimSpace(obj))
		if err != nil {
			return nil, fmt.Errorf("--check %q: %w", c, err)
		}
		out = append(out, checkAnswer{User: user, Relation: rel, Object: strings.TrimSpace(obj), Allowed: allowed})
	}
	return out, nil
}

func renderExplanation(w io.Writer, x explanation) {
	fmt.Fprintf(w, "%s %s", x.Kind, x.Name)
	switch {
	case !x.Found:
		fmt.Fprint(w, ": the source does not know it")
	case len(x.OpenFGA) > 0:
		fmt.Fprintf(w, " (source id %s) is %s in OpenFGA", x.SourceID, strings.Join(x.OpenFGA, ", "))
	default:
		fmt.Fprintf(w, " (source id %s) is not synced", x.SourceID)
	}
	fmt.Fprintln(w)
	if len(x.Paths) > 0 {
		fmt.Fprintln(w, "\nGroups:")
		for _, p := range x.Paths {
			how := "direct member"
			if len(p.Via) > 0 {
				how = "through " + strings.Join(p.Via, " → ")
			}
			if p.Object != "" {
				fmt.Fprintf(w, "  %s  (%s): %s\n", p.Object, p.Group, how)
			} else {
				fmt.Fprintf(w, "  %s  (%s): %s; not synced: %s\n", p.Group, p.GroupID, how, p.Reason)
			}
		}
	}
	if m := x.Members; m != nil {
		fmt.Fprintf(w, "\nMembers: %d users directly", m.Users)
		if len(m.Subgroups) > 0 {
			fmt.Fprintf(w, "; subgroups %s", strings.Join(m.Subgroups, ", "))
		}
		fmt.Fprintln(w)
	}
	for _, s := range x.Skipped {
		fmt.Fprintf(w, "Skipped %s %s: %s (%s)\n", s.Kind, s.ID, s.Detail, s.Reason)
	}
	tuples := func(title string, ts []gsync.Tuple) {
		fmt.Fprintf(w, "\n%s (%d):\n", title, len(ts))
		for _, t := range ts {
			fmt.Fprintf(w, "  %s\n", t)
		}
	}
	tuples("Should exist", x.Desired)
	tuples("Exist in OpenFGA", x.Existing)
	if len(x.ToAdd)+len(x.ToDelete) == 0 {
		fmt.Fprintln(w, "\nIn sync: apply would change nothing.")
	} else {
		tuples("apply would add", x.ToAdd)
		tuples("apply would delete", x.ToDelete)
	}
	for _, h := range x.Withheld {
		fmt.Fprintf(w, "Withheld %s %s: %s\n", h.Op, h.Tuple, h.Reason)
	}
	if len(x.Checks) > 0 {
		fmt.Fprintln(w, "\nOpenFGA Check:")
		for _, c := range x.Checks {
			fmt.Fprintf(w, "  %s %s %s: %v\n", c.User, c.Relation, c.Object, c.Allowed)
		}
	}
}
