package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/groupsync/groupsync/config"
	gsync "github.com/groupsync/groupsync/sync"
)

func newOwnershipCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ownership",
		Short: "List, release or adopt the groups this instance manages (sync.ownership.mode owned)",
		Args:  cobra.NoArgs,
	}
	var format string
	list := &cobra.Command{
		Use:   "list",
		Short: "The objects this instance's registry records as its own",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			engine, _, err := o.ownedEngine(cmd.Context())
			if err != nil {
				return err
			}
			owned, err := engine.Registry.Owned(cmd.Context())
			if err != nil {
				return err
			}
			if format == "json" {
				return json.NewEncoder(o.stdout).Encode(map[string]any{"instance": engine.Registry.Instance(), "owned": nonNilStrings(owned)})
			}
			fmt.Fprintf(o.stdout, "instance %s manages %d objects\n", engine.Registry.Instance(), len(owned))
			for _, obj := range owned {
				fmt.Fprintln(o.stdout, "  "+obj)
			}
			return nil
		},
	}
	list.Flags().StringVarP(&format, "output", "o", "text", "text or json")
	release := &cobra.Command{
		Use:   "release OBJECT...",
		Short: "Stop managing objects (group:eng): their tuples stay; another instance may then claim them",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			engine, cfg, err := o.ownedEngine(cmd.Context())
			if err != nil {
				return err
			}
			objects := make([]string, len(args))
			for i, a := range args {
				objects[i] = a
				if !strings.Contains(a, ":") {
					objects[i] = cfg.Mapping.ObjectType + ":" + a
				}
			}
			if err := engine.Registry.Release(cmd.Context(), objects); err != nil {
				return err
			}
			fmt.Fprintf(o.stdout, "released %s; their tuples stay as they are\n", strings.Join(objects, ", "))
			return nil
		},
	}
	var yes bool
	adopt := &cobra.Command{
		Use:   "adopt GROUP...",
		Short: "Plan taking over groups whose tuples someone else wrote; with --yes, claim them",
		Long: `adopt shows what managing the groups (by display name or source id) would
change: their tuples in OpenFGA become the source's members. With --yes it
claims them in the registry; the next run then manages them. A group another
instance manages is refused: release it there first.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			engine, _, err := o.ownedEngine(cmd.Context())
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			// What managing them would do: the slice planned as if the
			// whole type were this instance's.
			registry := engine.Registry
			engine.Settings.Ownership.Mode = config.OwnershipAuthoritative
			engine.Registry = nil
			p, rs, err := engine.PlanSlice(ctx, gsync.Slice{Groups: args})
			if err != nil {
				return err
			}
			if len(rs.Objects) == 0 {
				return fmt.Errorf("the source has none of %s (by display name or id)", strings.Join(args, ", "))
			}
			owners, err := registry.Owners(ctx, rs.Objects)
			if err != nil {
				return err
			}
			for _, obj := range rs.Objects {
				if who := owners[obj]; len(who) > 0 {
					return fmt.Errorf("%s is managed by groupsync instance %s: release it there first", obj, strings.Join(who, ", "))
				}
			}
			rep := gsync.NewReport("plan", p, nil)
			if err := rep.Render(o.stdout, "text"); err != nil {
				return err
			}
			if !yes {
				fmt.Fprintf(o.stdout, "\nNothing claimed. Run again with --yes to adopt %s.\n", strings.Join(rs.Objects, ", "))
				return nil
			}
			if err := registry.Claim(ctx, rs.Objects); err != nil {
				return err
			}
			fmt.Fprintf(o.stdout, "\nAdopted %s: the next run makes their tuples the source's.\n", strings.Join(rs.Objects, ", "))
			return nil
		},
	}
	adopt.Flags().BoolVar(&yes, "yes", false, "claim the groups after showing the plan")
	cmd.AddCommand(list, release, adopt)
	return cmd
}

// ownedEngine is the configured engine, which must keep a registry.
func (o *options) ownedEngine(ctx context.Context) (*gsync.Engine, *config.Config, error) {
	engine, cfg, err := o.configuredEngine(ctx)
	if err != nil {
		return nil, nil, err
	}
	if engine.Registry == nil {
		return nil, nil, errors.New("sync.ownership.mode is not owned: there is no ownership registry")
	}
	return engine, cfg, nil
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
