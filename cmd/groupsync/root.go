package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sinks/openfga"
	"github.com/groupsync/groupsync/sources/authentik"
	"github.com/groupsync/groupsync/sources/file"
	"github.com/groupsync/groupsync/sources/ldap"
	"github.com/groupsync/groupsync/sources/msgraph"
	gsync "github.com/groupsync/groupsync/sync"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// options are the flags shared by every command.
type options struct {
	configPath string
	output     string
	policy     string
	force      bool
	slice      gsync.Slice // plan, apply: --user, --group
	planOut    string      // plan --out: save the plan here
	planFile   string      // apply FILE: apply this saved plan
	push       pushOptions // plan, apply: --pushgateway, --pushgateway-job
	progress   string      // plan, apply: --progress
	logLevel   string
	logFormat  string
	stdout     io.Writer
	stderr     io.Writer
	logTo      io.Writer // where the logger writes when not stderr itself (progress.logWriter)
}

// run is main without os.Exit, so tests can drive the real CLI.
func run(args []string, stdout, stderr io.Writer) int {
	o := &options{stdout: stdout, stderr: stderr}
	root := newRoot(o)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return gsync.ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "groupsync:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "groupsync:", err)
	return gsync.ExitError
}

func newRoot(o *options) *cobra.Command {
	root := &cobra.Command{
		Use:   "groupsync",
		Short: "Keep OpenFGA in step with an identity provider's groups",
		Long: `groupsync reads groups and members from an identity provider, maps them to
OpenFGA tuples, diffs them against the tuples in its managed scope, and writes
the difference: plan shows it, apply writes it.

With --user or --group, plan and apply cover only those users' tuples and
those groups' objects (a targeted run), with the same ownership, policy and
guards.

Exit codes: 0 in sync or applied, 1 error, 2 changes pending (plan),
3 stopped by a guard, 4 another run holds the lease.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	defConfig := os.Getenv("GROUPSYNC_CONFIG")
	if defConfig == "" {
		defConfig = "groupsync.yaml"
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&o.configPath, "config", "c", defConfig, "config file (env GROUPSYNC_CONFIG)")
	pf.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	pf.StringVar(&o.logFormat, "log-format", "auto", "log format: auto (console on a terminal, else json), json, console")

	root.AddCommand(newPlanCmd(o), newApplyCmd(o), newConfigCmd(o), newModelCmd(o), newCheckCmd(o), newDaemonCmd(o), newApproveCmd(o), newLeaseCmd(o), newExportCmd(o), newInitCmd(o), newExplainCmd(o), newOwnershipCmd(o), newVersionCmd(o))
	return root
}

func addOutputFlag(cmd *cobra.Command, o *options) {
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "report format: text, json, markdown")
	cmd.Flags().StringVar(&o.policy, "policy", "", "override sync.policy for this run: sync or add-only")
	cmd.Flags().BoolVar(&o.force, "force", false, "run past the deletion and empty-source guards, this once")
}

// addSliceFlags adds --user and --group, which turn a run into a targeted
// run of those users and groups (sync.Engine.RunSlice).
func addSliceFlags(cmd *cobra.Command, o *options) {
	cmd.Flags().StringArrayVar(&o.slice.Users, "user", nil, "only this user's tuples: the mapping's user key (alice or user:alice) or the source's id; repeatable")
	cmd.Flags().StringArrayVar(&o.slice.Groups, "group", nil, "only this group's tuples and the grants naming it: display name or the source's id; repeatable")
}

func newPlanCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what apply would change, without writing (exit 2 when changes are pending)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := o.runEngine(cmd.Context(), false)
			if err != nil {
				return exitFor(err)
			}
			if rep.Pending() {
				return &exitError{code: gsync.ExitPending}
			}
			return nil
		},
	}
	addOutputFlag(cmd, o)
	addSliceFlags(cmd, o)
	addPushFlags(cmd, &o.push)
	addProgressFlag(cmd, o)
	cmd.Flags().StringVar(&o.planOut, "out", "", "save the plan to this file, for \"groupsync apply FILE\" to apply exactly it")
	return cmd
}

func newApplyCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "apply [SAVED_PLAN]",
		Aliases: []string{"sync"},
		Short:   "Reconcile once: write the plan's adds and deletes (or exactly a saved plan's), and report what was written",
		Long: `apply plans and writes. Given a file that "plan --out" saved, it applies
exactly that plan: it plans again under the lease and, if the source or
OpenFGA changed so that the plan differs, writes nothing and exits 1.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if !o.slice.Empty() {
					return errors.New("a saved plan carries its own --user/--group; give neither with a plan file")
				}
				o.planFile = args[0]
			}
			_, err := o.runEngine(cmd.Context(), true)
			return exitFor(err)
		},
	}
	addOutputFlag(cmd, o)
	addSliceFlags(cmd, o)
	addPushFlags(cmd, &o.push)
	addProgressFlag(cmd, o)
	return cmd
}

// runEngine loads the config, runs the engine and prints its report.
func (o *options) runEngine(ctx context.Context, apply bool) (*gsync.Report, error) {
	if !validFormat(o.output) {
		return nil, fmt.Errorf("--output %q: use one of text, json, markdown", o.output)
	}
	mode, err := parseProgress(o.progress, o.stderr)
	if err != nil {
		return nil, err
	}
	cfg, err := config.Load(o.configPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w\nno config yet? groupsync init --source msgraph|ldap|authentik|file --openfga-url URL writes a starter one", err)
	}
	if err != nil {
		return nil, err
	}
	if o.policy != "" {
		policy := config.Policy(o.policy)
		if !policy.Valid() {
			return nil, fmt.Errorf("--policy %q: use sync or add-only", o.policy)
		}
		cfg.Sync.Policy = policy
	}
	// The display starts before the logger so that, on a terminal, each
	// log line first erases the live line.
	prog := newProgress(mode, o.stderr, sourceCounted(cfg.Source.Type))
	o.logTo = prog.logWriter(o.stderr)
	log, err := o.logger()
	if err != nil {
		return nil, err
	}
	defer func() { _ = log.Sync() }()
	prog.begin(log)
	defer prog.finish()
	shot := o.push.start(cfg)
	engine, err := newEngine(ctx, cfg, log, shot.option(), prog.option())
	if err != nil {
		shot.push(ctx, nil, nil, err, log)
		return nil, err
	}
	engine.Force = o.force
	if prog != nil {
		ctx = openfga.WithWriteProgress(ctx, prog.wrote)
	}
	var rep *gsync.Report
	var runErr error
	switch {
	case !apply && o.planOut != "":
		rep, runErr = o.savePlan(ctx, engine)
	case apply && o.planFile != "":
		rep, runErr = o.applySaved(ctx, engine)
	case o.slice.Empty():
		rep, runErr = engine.Run(ctx, apply)
	default:
		rep, runErr = engine.RunSlice(ctx, o.slice, apply)
	}
	// The live line goes before the report, which may share the terminal.
	prog.finish()
	shot.push(ctx, engine, rep, runErr, log)
	if rep != nil {
		if err := rep.Render(o.stdout, o.output); err != nil {
			return nil, err
		}
		s := rep.Summary
		fields := []zap.Field{zap.String("command", rep.Command), zap.Int("source_groups", s.SourceGroups),
			zap.Int("managed_groups", s.ManagedGroups), zap.Int("to_add", s.ToAdd), zap.Int("to_delete", s.ToDelete),
			zap.Int("skipped", s.Skipped), zap.Int("withheld", s.Withheld)}
		if g := rep.Guard; g != nil {
			fields = append(fields, zap.String("guard", g.Guard))
		}
		if r := rep.Result; r != nil {
			fields = append(fields, zap.Int("added", r.Added), zap.Int("deleted", r.Deleted),
				zap.Int("failed", len(r.Failed)), zap.Int("write_requests", r.Requests))
		}
		log.Info("run finished", fields...)
	}
	return rep, runErr
}

func validFormat(f string) bool {
	for _, v := range gsync.Formats {
		if f == v {
			return true
		}
	}
	return f == "md"
}

// exitFor gives guard trips and a busy lease their own exit codes.
func exitFor(err error) error {
	var guard *gsync.GuardError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &guard):
		return &exitError{code: gsync.ExitGuard, err: err}
	case errors.Is(err, gsync.ErrLeaseBusy):
		return &exitError{code: gsync.ExitBusy, err: err}
	}
	return err
}

// configuredEngine loads the config file and builds its engine, for the
// commands that plan without printing a run's report (explain, export,
// ownership).
func (o *options) configuredEngine(ctx context.Context) (*gsync.Engine, *config.Config, error) {
	cfg, err := config.Load(o.configPath)
	if err != nil {
		return nil, nil, err
	}
	log, err := o.logger()
	if err != nil {
		return nil, nil, err
	}
	engine, err := newEngine(ctx, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	return engine, cfg, nil
}

// newEngine wires the configured source and sink; opts instrument their
// HTTP (daemon.go).
func newEngine(ctx context.Context, cfg *config.Config, log *zap.Logger, opts ...engineOption) (*gsync.Engine, error) {
	eo := collectEngineOptions(opts)
	src, err := newSource(cfg, log, eo)
	if err != nil {
		return nil, err
	}
	sinkOpts := eo.openfgaOptions()
	sink, err := openfga.New(ctx, cfg.OpenFGA, sinkOpts...)
	if err != nil {
		return nil, err
	}
	engine, err := gsync.New(cfg, src, newTarget(cfg, sink, sinkOpts), log)
	if err != nil {
		return nil, err
	}
	if engine.TargetState, err = gsync.OpenTargetState(cfg.Sync.Incremental, !eo.daemon); err != nil {
		return nil, err
	}
	return engine, nil
}

// newTarget keeps the ownership markers and the lease in the sink's store,
// or in sync.ownership.store when it is set.
func newTarget(cfg *config.Config, sink *openfga.Sink, opts []openfga.Option) gsync.Target {
	o := cfg.Sync.Ownership
	if o.Store == "" {
		return openfga.NewTarget(sink)
	}
	types := []string{cfg.Mapping.ObjectType}
	if m, err := gsync.NewMapper(cfg.Mapping); err == nil {
		types = m.OwnedTypes()
	}
	return openfga.NewTargetWithRegistryStore(sink, cfg.OpenFGA, o.Store, o.Type, types, opts...)
}

// newSource builds the configured source; eo as for newEngine.
func newSource(cfg *config.Config, log *zap.Logger, eo engineOptions) (gsync.Source, error) {
	switch cfg.Source.Type {
	case "file":
		return file.New(cfg.Source.File.Path), nil
	case "msgraph":
		return msgraph.New(cfg.Source.MSGraph, append([]msgraph.Option{msgraph.WithLogger(log), msgraph.WithMapping(cfg.Mapping)},
			eo.msgraphOptions()...)...)
	case "ldap":
		return ldap.New(cfg.Source.LDAP, ldap.WithLogger(log), ldap.WithMapping(cfg.Mapping))
	case "authentik":
		return authentik.New(cfg.Source.Authentik, append([]authentik.Option{authentik.WithLogger(log), authentik.WithMapping(cfg.Mapping)},
			eo.authentikOptions()...)...)
	}
	return nil, fmt.Errorf("source.type: %q is not a source groupsync knows", cfg.Source.Type)
}

func (o *options) logger() (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(o.logLevel)
	if err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", o.logLevel)
	}
	format := o.logFormat
	if format == "auto" {
		format = "json"
		if f, ok := o.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "console"
		}
	}
	var enc zapcore.Encoder
	switch format {
	case "json":
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
	case "console":
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05")
		enc = zapcore.NewConsoleEncoder(ec)
	default:
		return nil, fmt.Errorf("--log-format %q: use auto, json or console", o.logFormat)
	}
	out := o.stderr
	if o.logTo != nil {
		out = o.logTo
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(out), level)), nil
}

func newVersionCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print groupsync's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(o.stdout, "groupsync", buildVersion())
		},
	}
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
