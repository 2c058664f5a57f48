package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/daemon"
	"github.com/groupsync/groupsync/metrics"
	"github.com/groupsync/groupsync/sinks/openfga"
	"github.com/groupsync/groupsync/sources/msgraph"
	gsync "github.com/groupsync/groupsync/sync"
)

func newDaemonCmd(o *options) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Reconcile on a schedule, serving /metrics, /healthz, /readyz and POST /run",
		Long: `daemon runs what apply does on daemon.schedule (cron fields, @hourly,
"@every 30m"), once at start unless daemon.run_at_start is false, each
scheduled run delayed by a random jitter below daemon.jitter. Never two
runs at once: a trigger during a run is skipped and counted (during an
event run, it waits for that run to end).

On daemon.listen it serves /metrics (Prometheus), /healthz (liveness),
/readyz (ready while the last successful run ended within
daemon.ready_max_age) and, when daemon.trigger.enabled, POST /run with
"Authorization: Bearer <daemon.trigger.token>" to run now (?wait=true to
get the outcome).

When daemon.webhooks.enabled, POST /sync/user/{key}, POST /sync/group/{id}
and POST /webhooks/authentik (bearer daemon.webhooks.token) queue a
targeted run of a user or group: events are coalesced for
daemon.webhooks.coalesce and run one at a time between scheduled runs,
through the same guards; the schedule stays the backstop.

A run a guard stops is quarantined: its plan is kept, shown on GET /status
(daemon.status.enabled) and in groupsync_quarantined, and the schedule goes
on. A later run that no longer trips clears it; "groupsync approve" (or POST
/quarantine/approve with daemon.trigger.token) applies exactly that plan,
or nothing when the source or OpenFGA changed since.

SIGHUP reloads the config file; an invalid one is refused and the daemon
keeps the config it has. SIGTERM or SIGINT stops it: no new request is sent,
those in flight get daemon.shutdown_grace to finish, and it exits 0.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := o.logger()
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			m := metrics.New()
			m.SetBuildInfo(buildVersion())
			opts := daemon.Options{
				Load:     func() (*config.Config, error) { return config.Load(o.configPath) },
				Run:      daemonRun(m, log, !dryRun),
				RunSlice: daemonRunSlice(m, log, !dryRun),
				Metrics:  m,
				Log:      log,
			}
			if !dryRun { // a daemon that only plans takes no approvals
				opts.ApplySaved = daemonApplySaved(m, log)
			}
			d, err := daemon.New(opts)
			if err != nil {
				return err
			}
			addr := d.Config().Daemon.Listen
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("daemon.listen %q: %w", addr, err)
			}
			ctx := cmd.Context() // ends on SIGTERM and SIGINT (see run)
			if err := graphNotifications(ctx, d, log); err != nil {
				return err
			}
			stopReload := reloadOnHangup(ctx, d, log, o.configPath)
			defer stopReload()
			if dryRun {
				log.Info("--dry-run: each run plans and writes nothing")
			}
			return d.Run(ctx, ln)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "plan on schedule but write nothing (see what the daemon would do, in the metrics and logs)")
	return cmd
}

// reloadOnHangup reloads the daemon's config on each SIGHUP until ctx ends
// or stop is called.
func reloadOnHangup(ctx context.Context, d *daemon.Daemon, log *zap.Logger, path string) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-hup:
				log.Info("SIGHUP: reloading the config", zap.String("config", path))
				_ = d.Reload() // Reload logs a refused config itself
			case <-ctx.Done():
				return
			case <-quit:
				return
			}
		}
	})
	return func() {
		signal.Stop(hup)
		close(quit)
		wg.Wait()
	}
}

// daemonRun is one scheduled run: the engine newEngine builds from the
// config of the moment, applied (or only planned, for --dry-run).
func daemonRun(m *metrics.Metrics, log *zap.Logger, apply bool) daemon.RunFunc {
	return func(ctx context.Context, cfg *config.Config) (*gsync.Report, error) {
		return withDaemonEngine(ctx, cfg, m, log, func(ctx context.Context, e *gsync.Engine) (*gsync.Report, error) { return e.Run(ctx, apply) })
	}
}

// daemonRunSlice is one event run: the engine of the moment's config, run
// on the slice the queued events name, through the same guards.
func daemonRunSlice(m *metrics.Metrics, log *zap.Logger, apply bool) daemon.RunSliceFunc {
	return func(ctx context.Context, cfg *config.Config, s gsync.Slice) (*gsync.Report, error) {
		return withDaemonEngine(ctx, cfg, m, log, func(ctx context.Context, e *gsync.Engine) (*gsync.Report, error) {
			return e.RunSlice(ctx, s, apply)
		})
	}
}

// daemonApplySaved applies a quarantined plan an operator approved: the
// engine of the moment's config, through the saved-plan contract (nothing
// is written when the plan is stale).
func daemonApplySaved(m *metrics.Metrics, log *zap.Logger) daemon.ApplySavedFunc {
	return func(ctx context.Context, cfg *config.Config, sp *gsync.SavedPlan) (*gsync.Report, error) {
		return withDaemonEngine(ctx, cfg, m, log, func(ctx context.Context, e *gsync.Engine) (*gsync.Report, error) {
			return e.ApplySaved(ctx, sp)
		})
	}
}

// withDaemonEngine builds the engine of cfg for one daemon run, with the
// run's own HTTP connections, does do with it and counts what its source
// read. A run that goes on past a few seconds logs its progress as
// `apply --progress log` does (requests sent, tuples written), so that a
// long first sync is not a silent minute in the daemon's log.
func withDaemonEngine(ctx context.Context, cfg *config.Config, m *metrics.Metrics, log *zap.Logger, do func(context.Context, *gsync.Engine) (*gsync.Report, error)) (*gsync.Report, error) {
	h := newRunHTTP(m)
	defer h.closeIdle()
	prog := newProgress(progressLog, nil, sourceCounted(cfg.Source.Type))
	engine, err := newEngine(ctx, cfg, log, withHTTP(h), inDaemon(), prog.option())
	if err != nil {
		return nil, err
	}
	prog.begin(log)
	defer prog.finish()
	rep, err := do(openfga.WithWriteProgress(ctx, prog.wrote), engine)
	observeSource(m, engine.Source)
	return rep, err
}

// observeSource adds what the run's source counted to the metrics.
func observeSource(m *metrics.Metrics, src gsync.Source) {
	if d, ok := src.(gsync.ReadDescriber); ok {
		read := d.LastRead()
		m.ObserveSource(sourceStats(read))
	}
}

// sourceStats is the part of a source's read that the metrics count.
func sourceStats(read gsync.SourceRead) metrics.SourceStats {
	return metrics.SourceStats{Requests: read.Requests, BatchItems: read.BatchItems, Retries: read.Retries, Throttled: read.Throttled, Waited: read.Waited}
}

// graphNotifications, when source.msgraph.subscriptions.enabled, keeps
// Graph's change-notification subscription and serves POST /webhooks/graph
// (and its lifecycle path): each notification queues a targeted run of the
// groups it names. The subscription follows the config the daemon started
// with; a reload does not move it.
func graphNotifications(ctx context.Context, d *daemon.Daemon, log *zap.Logger) error {
	cfg := d.Config()
	sc := cfg.Source.MSGraph.Subscriptions
	if cfg.Source.Type != "msgraph" || !sc.Enabled {
		return nil
	}
	src, err := msgraph.New(cfg.Source.MSGraph, msgraph.WithLogger(log), msgraph.WithMapping(cfg.Mapping))
	if err != nil {
		return err
	}
	subs, err := msgraph.NewSubscriptions(src, sc)
	if err != nil {
		return err
	}
	h := daemon.GraphNotificationHandler(d.Queue(), subs, subs.ClientState, log, daemon.WithGraphContext(ctx))
	for _, p := range graphWebhookPaths(sc) {
		d.Handle("POST "+p, h)
	}
	// Graph validates the URL while the subscription is created, so this
	// runs once the listener serves; Run retries until it does.
	go subs.Run(ctx, time.Hour)
	return nil
}

// graphWebhookPaths are the paths of the notification and lifecycle URLs.
func graphWebhookPaths(sc config.MSGraphSubscriptions) []string {
	paths := []string{"/webhooks/graph"}
	for _, raw := range []string{sc.NotificationURL, sc.LifecycleURL} {
		if u, err := url.Parse(raw); err == nil && u.Path != "" && !slices.Contains(paths, u.Path) {
			paths = append(paths, u.Path)
		}
	}
	return paths
}
