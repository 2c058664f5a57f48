// Package daemon runs groupsync's reconcile on a schedule: `groupsync
// daemon`. It owns when runs happen and how the process stops; what a run
// does is a RunFunc (cmd/groupsync builds the engine and calls Engine.Run).
//
//   - Schedule: daemon.schedule (robfig/cron/v3: five fields, descriptors,
//     "@every 30m"), optionally a run at start, each scheduled run delayed
//     by a random jitter below daemon.jitter.
//   - Single flight: never two runs at once. A trigger (schedule, POST /run)
//     that comes while a run is in progress is skipped and counted.
//   - Reload: Reload reads the config again (the command calls it on
//     SIGHUP); an invalid config is refused and the old one stays, which
//     the log, groupsync_config_last_reload_successful and /readyz say.
//   - Shutdown: when Run's context ends (SIGTERM), the run's context is
//     cancelled, so the sink sends no new write chunk and the source no new
//     request; requests already sent get daemon.shutdown_grace to finish
//     (see DrainTransport), then are cancelled, and Run returns within
//     shutdown_grace plus a few seconds.
//   - HTTP: /metrics, /healthz, /readyz and, when daemon.trigger.enabled,
//     POST /run with the bearer token.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/metrics"
	gsync "github.com/groupsync/groupsync/sync"
)

// RunFunc runs one reconcile with cfg: for the daemon, build the engine
// from cfg and call Engine.Run(ctx, true). ctx ends on shutdown.
type RunFunc func(ctx context.Context, cfg *config.Config) (*gsync.Report, error)

// LoadFunc reads and validates the configuration, at start and on Reload.
type LoadFunc func() (*config.Config, error)

// Triggers, the "trigger" label of groupsync_run_triggers_total.
const (
	TriggerStart    = "start"
	TriggerSchedule = "schedule"
	TriggerHTTP     = "http"
)

// Options configure New. Load and Run are required.
type Options struct {
	Load    LoadFunc
	Run     RunFunc
	Metrics *metrics.Metrics // nil: a new one
	Log     *zap.Logger      // nil logs nothing
	// Jitter returns a random delay in [0, n) for n > 0; nil uses math/rand.
	Jitter func(n time.Duration) time.Duration
	// Progress is how often a long run logs that it is still going, with
	// the requests sent so far; 0 is a minute, negative never.
	Progress time.Duration
}

// stopWait bounds how long Run waits for a run after cancelling its
// requests at the end of the grace period: the engine returns as soon as
// its requests fail, so this is only reached by a RunFunc that ignores ctx.
const stopWait = 5 * time.Second

// Daemon schedules runs, one at a time. Its methods are safe for concurrent
// use.
type Daemon struct {
	opts Options
	log  *zap.Logger
	m    *metrics.Metrics
	wake chan struct{} // the schedule changed

	mu          sync.Mutex
	cfg         *config.Config
	token       config.Secret
	loadedAt    time.Time
	reloadErr   error
	reloadErrAt time.Time
	runCtx      context.Context // nil until Run starts and after it stops taking runs
	stopping    bool
	current     *run     // the run in progress, or nil
	last        *Outcome // the last finished run
	lastSuccess time.Time
}

// Outcome is a finished run, as POST /run?wait=true answers it.
type Outcome struct {
	Trigger string         `json:"trigger"`
	Start   time.Time      `json:"start"`
	End     time.Time      `json:"end"`
	Result  metrics.Result `json:"result"`
	Error   string         `json:"error,omitempty"`
	// Summary and Applied are the report's, when the run got as far as a plan.
	Summary *gsync.Summary `json:"summary,omitempty"`
	Applied *Applied       `json:"applied,omitempty"`
}

// Applied is what an apply wrote.
type Applied struct {
	Added         int `json:"added"`
	Deleted       int `json:"deleted"`
	Failed        int `json:"failed"`
	WriteRequests int `json:"write_requests"`
}

type run struct {
	trigger string
	done    chan struct{} // closed when outcome is set
	outcome Outcome
}

// New loads the config and returns a daemon that has not started.
func New(opts Options) (*Daemon, error) {
	if opts.Load == nil || opts.Run == nil {
		return nil, errors.New("daemon: Options.Load and Options.Run are required")
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.Jitter == nil {
		opts.Jitter = func(n time.Duration) time.Duration { return rand.N(n) }
	}
	if opts.Progress == 0 {
		opts.Progress = time.Minute
	}
	d := &Daemon{opts: opts, log: opts.Log, m: opts.Metrics, wake: make(chan struct{}, 1)}
	cfg, token, err := d.load()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	d.cfg, d.token, d.loadedAt = cfg, token, now
	d.m.ConfigLoaded(false, nil, now)
	return d, nil
}

// load reads the config and the trigger token.
func (d *Daemon) load() (*config.Config, config.Secret, error) {
	cfg, err := d.opts.Load()
	if err != nil {
		return nil, "", err
	}
	var token config.Secret
	if cfg.Daemon.Trigger.Enabled {
		if token, err = cfg.Daemon.Trigger.TriggerToken(); err != nil {
			return nil, "", err
		}
	}
	return cfg, token, nil
}

// Config returns the config in use.
func (d *Daemon) Config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// Metrics returns the daemon's metrics.
func (d *Daemon) Metrics() *metrics.Metrics { return d.m }

// Reload reads the config again. An invalid config is refused: the daemon
// keeps the one it has, and says so in the log, in
// groupsync_config_last_reload_successful and on /readyz. A new schedule
// applies from now; the run in progress finishes with the old config; a new
// daemon.listen needs a restart.
func (d *Daemon) Reload() error {
	cfg, token, err := d.load()
	now := time.Now()
	d.m.ConfigLoaded(true, err, now)
	d.mu.Lock()
	if err != nil {
		d.reloadErr, d.reloadErrAt = err, now
		loadedAt := d.loadedAt
		d.mu.Unlock()
		d.log.Error("config reload refused; keeping the config loaded before", zap.Time("loaded_at", loadedAt), zap.Error(err))
		return err
	}
	old := d.cfg
	d.cfg, d.token, d.loadedAt, d.reloadErr = cfg, token, now, nil
	d.mu.Unlock()

	if old.Daemon.Listen != cfg.Daemon.Listen {
		d.log.Warn("daemon.listen changed; restart groupsync to listen there", zap.String("listening", old.Daemon.Listen), zap.String("configured", cfg.Daemon.Listen))
	}
	d.log.Info("config reloaded", zap.String("schedule", cfg.Daemon.Schedule), zap.Duration("jitter", time.Duration(cfg.Daemon.Jitter)),
		zap.Bool("trigger_enabled", cfg.Daemon.Trigger.Enabled))
	select {
	case d.wake <- struct{}{}:
	default:
	}
	return nil
}

// Run schedules runs until ctx ends, serving the HTTP endpoints on ln (nil:
// none). Then it stops as the package documentation says and returns nil,
// or the HTTP server's error if serving failed (which stops it the same
// way).
func (d *Daemon) Run(parent context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	// Requests of a run outlive ctx by the grace period (DrainTransport);
	// hard ends them.
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	d.mu.Lock()
	d.runCtx = context.WithValue(ctx, hardStopKey{}, hard)
	cfg := d.cfg
	d.mu.Unlock()

	serveErr := make(chan error, 1)
	var srv *http.Server
	if ln != nil {
		srv = &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				serveErr <- err
			}
		}()
		d.log.Info("serving /metrics, /healthz, /readyz and /run", zap.String("addr", ln.Addr().String()),
			zap.Bool("trigger_enabled", cfg.Daemon.Trigger.Enabled))
	}
	d.log.Info("daemon started", zap.String("schedule", cfg.Daemon.Schedule), zap.Duration("jitter", time.Duration(cfg.Daemon.Jitter)),
		zap.Bool("run_at_start", cfg.Daemon.RunAtStart))
	if cfg.Daemon.RunAtStart {
		d.Trigger(TriggerStart)
	}

	var err error
	scheduled := d.schedule(ctx)
	select {
	case <-scheduled:
	case err = <-serveErr:
		err = fmt.Errorf("daemon.listen: %w", err)
		cancel()
		<-scheduled
	}
	d.stop(cancelHard)
	if srv != nil {
		sctx, cancelShutdown := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancelShutdown()
		_ = srv.Shutdown(sctx)
	}
	return err
}

// schedule triggers runs on the schedule until ctx ends; the returned
// channel closes then.
func (d *Daemon) schedule(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		base := time.Now()
		for {
			cfg := d.Config()
			sched, err := config.ParseSchedule(cfg.Daemon.Schedule)
			if err != nil { // Load validated it
				d.log.Error("daemon.schedule does not parse; no scheduled runs", zap.Error(err))
				<-ctx.Done()
				return
			}
			now := time.Now()
			next := sched.Next(base)
			if next.Before(now) {
				// Behind the schedule (a suspended process): skip what was
				// missed rather than run it all at once.
				next = sched.Next(now)
			}
			at := next
			if j := time.Duration(cfg.Daemon.Jitter); j > 0 {
				at = at.Add(d.opts.Jitter(j))
			}
			d.m.SetNextRun(at)
			d.log.Debug("next run", zap.Time("at", at))
			timer := time.NewTimer(at.Sub(now))
			select {
			case <-timer.C:
				d.Trigger(TriggerSchedule)
				base = next
			case <-d.wake:
				timer.Stop()
				base = time.Now()
			case <-ctx.Done():
				timer.Stop()
				return
			}
		}
	}()
	return done
}

// stop refuses new runs, waits for the one in progress for the grace
// period, then cancels its requests and waits a little more.
func (d *Daemon) stop(cancelHard context.CancelFunc) {
	d.mu.Lock()
	d.runCtx, d.stopping = nil, true
	cur := d.current
	grace := time.Duration(d.cfg.Daemon.ShutdownGrace)
	d.mu.Unlock()
	if cur == nil {
		d.log.Info("stopped; no run was in progress")
		return
	}
	d.log.Info("stopping: no new requests; waiting for those in flight", zap.Duration("grace", grace))
	start := time.Now()
	graceTimer := time.NewTimer(grace)
	defer graceTimer.Stop()
	select {
	case <-cur.done:
		d.log.Info("stopped after the run in progress ended", zap.Duration("waited", time.Since(start)))
		return
	case <-graceTimer.C:
	}
	d.log.Warn("grace period over; cancelling the requests in flight", zap.Duration("grace", grace))
	cancelHard()
	stopTimer := time.NewTimer(stopWait)
	defer stopTimer.Stop()
	select {
	case <-cur.done:
		d.log.Info("stopped", zap.Duration("waited", time.Since(start)))
	case <-stopTimer.C:
		d.log.Error("the run did not stop; exiting without it", zap.Duration("waited", time.Since(start)))
	}
}

// Trigger starts a run now unless one is in progress or the daemon is not
// running (before Run, or stopping); trigger names the cause in metrics and
// logs. The returned channel closes when the started run has ended; then
// Last returns its outcome.
func (d *Daemon) Trigger(trigger string) (done <-chan struct{}, started bool) {
	r, ok := d.start(trigger)
	if !ok {
		return nil, false
	}
	return r.done, true
}

func (d *Daemon) start(trigger string) (*run, bool) {
	d.mu.Lock()
	if d.current != nil || d.runCtx == nil {
		busy := d.current != nil
		d.mu.Unlock()
		d.m.Trigger(trigger, false)
		if busy {
			d.log.Info("run skipped: another run is in progress", zap.String("trigger", trigger))
		}
		return nil, false
	}
	r := &run{trigger: trigger, done: make(chan struct{})}
	d.current = r
	ctx, cfg := d.runCtx, d.cfg
	d.mu.Unlock()

	d.m.Trigger(trigger, true)
	d.m.SetRunning(true)
	go d.execute(ctx, cfg, r)
	return r, true
}

// Last returns the last finished run, or nil.
func (d *Daemon) Last() *Outcome {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last
}

func (d *Daemon) execute(ctx context.Context, cfg *config.Config, r *run) {
	start := time.Now()
	before := d.counters()
	d.log.Info("run started", zap.String("trigger", r.trigger))
	stopProgress := d.progress(start, before)

	rep, err := d.opts.Run(ctx, cfg)

	stopProgress()
	end := time.Now()
	res := d.m.ObserveRun(metrics.Run{Report: rep, Err: err, End: end, Duration: end.Sub(start)})
	r.outcome = Outcome{Trigger: r.trigger, Start: start, End: end, Result: res}
	if err != nil {
		r.outcome.Error = err.Error()
	}
	if rep != nil {
		s := rep.Summary
		r.outcome.Summary = &s
		if a := rep.Result; a != nil {
			r.outcome.Applied = &Applied{Added: a.Added, Deleted: a.Deleted, Failed: len(a.Failed), WriteRequests: a.Requests}
		}
	}
	d.summary(r.outcome, rep, err, d.counters().minus(before))

	d.mu.Lock()
	d.current = nil
	d.last = &r.outcome
	if res == metrics.ResultOK {
		d.lastSuccess = end
	}
	d.mu.Unlock()
	d.m.SetRunning(false)
	close(r.done)
}

// counters are the cumulative counts a run's summary is the difference of.
type counters struct {
	source, sink int64 // HTTP requests
	src          metrics.SourceStats
}

func (d *Daemon) counters() counters {
	return counters{d.m.Requests(metrics.TargetSource), d.m.Requests(metrics.TargetSink), d.m.SourceTotals()}
}

func (c counters) minus(o counters) counters {
	return counters{c.source - o.source, c.sink - o.sink, metrics.SourceStats{
		BatchItems: c.src.BatchItems - o.src.BatchItems, Retries: c.src.Retries - o.src.Retries,
		Throttled: c.src.Throttled - o.src.Throttled, Waited: c.src.Waited - o.src.Waited,
	}}
}

// progress logs a line every opts.Progress while the run goes on.
func (d *Daemon) progress(start time.Time, before counters) (stop func()) {
	if d.opts.Progress < 0 {
		return func() {}
	}
	t := time.NewTicker(d.opts.Progress)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-t.C:
				c := d.counters().minus(before)
				d.log.Info("run in progress", zap.Duration("elapsed", time.Since(start).Round(time.Second)),
					zap.Int64("source_requests", c.source), zap.Int64("sink_requests", c.sink))
			case <-quit:
				return
			}
		}
	})
	return func() {
		t.Stop()
		close(quit)
		wg.Wait()
	}
}

// summary logs one line per run: what it found, did, and sent.
func (d *Daemon) summary(o Outcome, rep *gsync.Report, err error, c counters) {
	fields := []zap.Field{zap.String("trigger", o.Trigger), zap.String("result", string(o.Result)),
		zap.Duration("took", o.End.Sub(o.Start)), zap.Int64("source_requests", c.source), zap.Int64("sink_requests", c.sink),
		zap.Int64("source_retries", c.src.Retries), zap.Int64("source_throttled", c.src.Throttled), zap.Duration("source_retry_wait", c.src.Waited)}
	if rep != nil {
		s := rep.Summary
		fields = append(fields, zap.String("command", rep.Command), zap.Int("source_groups", s.SourceGroups), zap.Int("source_users", s.SourceUsers),
			zap.Int("managed_groups", s.ManagedGroups), zap.Int("desired", s.DesiredTuples), zap.Int("existing", s.ExistingTuples),
			zap.Int("to_add", s.ToAdd), zap.Int("to_delete", s.ToDelete), zap.Int("withheld", s.Withheld), zap.Int("skipped", s.Skipped))
		if a := o.Applied; a != nil {
			fields = append(fields, zap.Int("added", a.Added), zap.Int("deleted", a.Deleted), zap.Int("failed", a.Failed),
				zap.Int("write_requests", a.WriteRequests))
		}
	}
	var guard *gsync.GuardError
	if errors.As(err, &guard) && guard.Trip != nil {
		fields = append(fields, zap.String("guard", guard.Trip.Guard))
	}
	switch o.Result {
	case metrics.ResultOK:
		d.log.Info("run finished", fields...)
	case metrics.ResultBusy:
		d.log.Warn("run finished", append(fields, zap.Error(err))...)
	default:
		d.log.Error("run finished", append(fields, zap.Error(err))...)
	}
}

// Readiness says whether the last run succeeded recently enough, with the
// reasons, one a line: the last success and its age, the last run when it
// failed, and a refused config reload.
func (d *Daemon) Readiness(now time.Time) (ready bool, detail []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	maxAge := d.cfg.Daemon.ReadyAge()
	if d.stopping {
		return false, []string{"shutting down"}
	}
	switch {
	case !d.lastSuccess.IsZero():
		age := now.Sub(d.lastSuccess)
		ready = age <= maxAge
		detail = append(detail, fmt.Sprintf("last successful run ended %s ago (at %s); daemon.ready_max_age %s",
			age.Round(time.Second), d.lastSuccess.UTC().Format(time.RFC3339), maxAge))
	case d.last == nil && d.cfg.Daemon.ReadyBeforeFirstRun:
		ready = true
		detail = append(detail, "no run has finished yet (daemon.ready_before_first_run)")
	default:
		detail = append(detail, "no successful run yet")
	}
	if l := d.last; l != nil && l.Result != metrics.ResultOK {
		detail = append(detail, fmt.Sprintf("last run (%s, ended %s) did not succeed: %s; see the log", l.Trigger, l.End.UTC().Format(time.RFC3339), l.Result))
	}
	if d.current != nil {
		detail = append(detail, "a run is in progress")
	}
	if d.reloadErr != nil {
		detail = append(detail, fmt.Sprintf("config reload at %s refused, still on the config loaded at %s: %v",
			d.reloadErrAt.UTC().Format(time.RFC3339), d.loadedAt.UTC().Format(time.RFC3339), d.reloadErr))
	}
	return ready, detail
}
