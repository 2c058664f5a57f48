package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sinks/openfga"
	gsync "github.com/groupsync/groupsync/sync"
)

func newCheckCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Check credentials and permissions against the source and OpenFGA, without syncing",
		Long: `Check gets a token from the identity provider and says which permission is
missing (for Microsoft Graph: GroupMember.Read.All, and User.Read.All when the
mapping keys users on a property), then finds the OpenFGA store and model and
checks that the model accepts the tuples the mapping writes. Exit 0 when
everything passed, 1 otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(o.configPath)
			if err != nil {
				return err
			}
			log, err := o.logger()
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			results := checkAll(cmd.Context(), cfg, log)
			failed := 0
			for _, r := range results {
				switch {
				case r.Err != nil:
					failed++
					fmt.Fprintf(o.stdout, "FAIL  %s: %v\n", r.What, r.Err)
				case r.Warning != "":
					fmt.Fprintf(o.stdout, "warn  %s: %s\n", r.What, r.Warning)
				default:
					fmt.Fprintf(o.stdout, "ok    %s: %s\n", r.What, r.Note)
				}
			}
			if failed > 0 {
				return &exitError{code: gsync.ExitError, err: fmt.Errorf("%d of %d checks failed", failed, len(results))}
			}
			return nil
		},
	}
}

func checkAll(ctx context.Context, cfg *config.Config, log *zap.Logger) []gsync.CheckResult {
	var out []gsync.CheckResult
	src, err := newSource(cfg, log, engineOptions{})
	switch {
	case err != nil:
		out = append(out, gsync.CheckResult{What: "source " + cfg.Source.Type, Err: err})
	default:
		if c, ok := src.(gsync.Checker); ok {
			out = append(out, c.Check(ctx)...)
		}
	}

	what := "OpenFGA store at " + cfg.OpenFGA.APIURL
	sink, err := openfga.New(ctx, cfg.OpenFGA)
	if err != nil {
		return append(out, gsync.CheckResult{What: what, Err: err})
	}
	out = append(out, gsync.CheckResult{What: what, Note: fmt.Sprintf("store %s, authorization model %s", sink.StoreID(), sink.ModelID())})
	mapper, err := gsync.NewMapper(cfg.Mapping)
	if err != nil {
		return append(out, gsync.CheckResult{What: "mapping", Err: err})
	}
	ws := mapper.WriteScope()
	out = append(out, gsync.CheckResult{What: "model accepts the mapping's tuples", Err: sink.Verify(ctx, ws),
		Note: fmt.Sprintf("%s#%s from %v", ws.ObjectType, ws.Relation, ws.UserTypes)})
	probe := mapper.Scope()
	probe.Objects = []string{probe.ObjectType + ":groupsync-check"}
	_, err = sink.Read(ctx, probe)
	return append(out, gsync.CheckResult{What: "OpenFGA read", Err: err, Note: "allowed"})
}
