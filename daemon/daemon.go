// Package daemon runs groupsync's reconcile on a schedule: `groupsync
// daemon`. It owns when runs happen and how the process stops; what a run
// does is a RunFunc (cmd/groupsync builds the engine and calls Engine.Run).
//
//   - Schedule: daemon.schedule (robfig/cron/v3: five fields, descriptors,
//     "@every 30m"), optionally a run at start, each scheduled run delayed
//     by a random jitter below daemon.jitter.
//   - Single flight: never two runs at once. A trigger (schedule, POST /run)
//     that comes while a full run is in progress is skipped and counted;
//     one that comes during an event run waits for it and runs right after
//     (a steady flow of webhooks must not starve the schedule).
//   - Events (queue.go, webhooks.go): webhooks and POST /sync/... queue
//     users, groups or delta requests; the run loop takes what waits as one
//     run (Options.RunSlice for users and groups, Options.Run for a delta)
//     once the coalesce window has passed and no run is in progress. A full
//     run takes what waited when it started: it covers it.
//   - Reload: Reload reads the config again (the command calls it on
//     SIGHUP); an invalid config is refused and the old one stays, which
//     the log, groupsync_config_last_reload_successful and /readyz say.
//   - Shutdown: when Run's context ends (SIGTERM), the run's context is
//     cancelled, so the sink sends no new write chunk and the source no new
//     request; requests already sent get daemon.shutdown_grace to finish
//     (see DrainTransport), then are cancelled, and Run returns within
//     shutdown_grace plus a few seconds.
//   - Quarantine (quarantine.go, approve.go): a run a guard stops keeps
//     its plan as a saved plan until a run no longer trips or an operator
//     approves exactly that plan, which the run loop applies like any
//     other run: one writer.
//   - HTTP: /metrics, /healthz, /readyz and, when daemon.trigger.enabled,
//     POST /run and the quarantine's endpoints with the bearer token;
//     GET /status (status.go) when daemon.status.enabled, from the runs
//     and events history.go keeps.
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
	TriggerEvent    = "event"   // queued events (webhooks, POST /sync/...)
	TriggerApprove  = "approve" // POST /quarantine/approve
)

// RunSliceFunc runs a targeted reconcile of slice with cfg: for the
// daemon, build the engine and call Engine.RunSlice(ctx, slice, true). It
// must go through the same guards as a full run.
type RunSliceFunc func(ctx context.Context, cfg *config.Config, slice gsync.Slice) (*gsync.Report, error)

// ApplySavedFunc applies a saved plan with cfg: for the daemon, build the
// engine and call Engine.ApplySaved, which writes nothing (a
// *sync.StalePlanError) when the plan no longer matches.
type ApplySavedFunc func(ctx context.Context, cfg *config.Config, plan *gsync.SavedPlan) (*gsync.Report, error)

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
	// RunSlice runs the users and groups queued events name; nil runs a
	// full Run for them instead.
	RunSlice RunSliceFunc
	// ApplySaved applies a quarantined plan an operator approved; nil
	// (a daemon that only plans, --dry-run) refuses approvals.
	ApplySaved ApplySavedFunc
	// Handlers are more endpoints on the daemon's listener, by ServeMux
	// pattern (e.g. "POST /webhooks/graph"), served as they are: they
	// authenticate requests themselves. Handle adds one after New, when the
	// handler needs the daemon (its Queue). See Handle.
	Handlers map[string]http.Handler
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
	idle chan struct{} // a run ended: the run loop may take events
	// halted closes when Run has stopped: nothing queued runs any more.
	halted     chan struct{}
	haltedOnce sync.Once
	q          *Queue
	hist       *history

	extraMu sync.Mutex
	extra   map[string]http.Handler

	mu          sync.Mutex
	cfg         *config.Config
	token       config.Secret // daemon.trigger's
	hookToken   config.Secret // daemon.webhooks'
	loadedAt    time.Time
	reloadErr   error
	reloadErrAt time.Time
	runCtx      context.Context // nil until Run starts and after it stops taking runs
	stopping    bool
	current     *run     // the run in progress, or nil
	deferred    *run     // a full run asked for during an event run
	last        *Outcome // the last finished run
	lastSuccess time.Time
	nextRun     time.Time   // the next scheduled run, jitter included
	quarantine  *Quarantine // the plan a guard stopped, awaiting approval
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
	batch   *batch    // the events it applies (taken when it starts), or nil
	approve *approval // the quarantined plan it applies (TriggerApprove)
	started time.Time
	done    chan struct{} // closed when outcome is set
	outcome Outcome
	err     error // the run's error, set with outcome
}

// targeted reports whether r runs a slice rather than the whole tenant.
func (r *run) targeted(opts Options) bool {
	return r.trigger == TriggerEvent && r.batch != nil && !r.batch.delta && opts.RunSlice != nil
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
	d := &Daemon{opts: opts, log: opts.Log, m: opts.Metrics, wake: make(chan struct{}, 1), idle: make(chan struct{}, 1),
		halted: make(chan struct{}), extra: map[string]http.Handler{}, hist: newHistory()}
	for pattern, h := range opts.Handlers {
		d.extra[pattern] = h
	}
	cfg, tok, err := d.load()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	d.cfg, d.token, d.hookToken, d.loadedAt = cfg, tok.trigger, tok.webhooks, now
	d.q = NewQueue(cfg.Daemon.Webhooks.QueueSize, d.m)
	d.q.record = d.hist.event
	d.showQuarantine(nil)
	d.m.ConfigLoaded(false, nil, now)
	return d, nil
}

// tokens are the bearer tokens of the endpoints that are on.
type tokens struct{ trigger, webhooks config.Secret }

// load reads the config and the endpoints' tokens.
func (d *Daemon) load() (*config.Config, tokens, error) {
	var tok tokens
	cfg, err := d.opts.Load()
	if err != nil {
		return nil, tok, err
	}
	if cfg.Daemon.Trigger.Enabled {
		if tok.trigger, err = cfg.Daemon.Trigger.TriggerToken(); err != nil {
			return nil, tok, err
		}
	}
	if cfg.Daemon.Webhooks.Enabled {
		if tok.webhooks, err = cfg.Daemon.Webhooks.WebhookToken(); err != nil {
			return nil, tok, err
		}
	}
	return cfg, tok, nil
}

// Queue is the daemon's event queue: the endpoints of webhooks.go and
// other webhook receivers (daemon/graph_notifications.go) enqueue events
// into it; the run loop applies them one run at a time.
func (d *Daemon) Queue() EventQueue { return d.q }

// Handle serves h on the daemon's listener at pattern (a ServeMux pattern
// such as "POST /webhooks/graph"), like Options.Handlers; call it before
// Run. h authenticates its requests itself, and should only Enqueue into
// Queue (answering 503 with Retry-After on ErrQueueFull) and never run
// anything: the run loop is the one writer.
func (d *Daemon) Handle(pattern string, h http.Handler) {
	d.extraMu.Lock()
	defer d.extraMu.Unlock()
	d.extra[pattern] = h
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
	cfg, tok, err := d.load()
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
	d.cfg, d.token, d.hookToken, d.loadedAt, d.reloadErr = cfg, tok.trigger, tok.webhooks, now, nil
	d.mu.Unlock()
	d.q.SetSize(cfg.Daemon.Webhooks.QueueSize)

	if old.Daemon.Listen != cfg.Daemon.Listen {
		d.log.Warn("daemon.listen changed; restart groupsync to listen there", zap.String("listening", old.Daemon.Listen), zap.String("configured", cfg.Daemon.Listen))
	}
	d.log.Info("config reloaded", zap.String("schedule", cfg.Daemon.Schedule), zap.Duration("jitter", time.Duration(cfg.Daemon.Jitter)),
		zap.Bool("trigger_enabled", cfg.Daemon.Trigger.Enabled), zap.Bool("webhooks_enabled", cfg.Daemon.Webhooks.Enabled))
	select {
	case d.wake <- struct{}{}:
	default:
	}
	d.poke() // a new coalesce window
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
			zap.Bool("trigger_enabled", cfg.Daemon.Trigger.Enabled), zap.Bool("webhooks_enabled", cfg.Daemon.Webhooks.Enabled))
	}
	d.log.Info("daemon started", zap.String("schedule", cfg.Daemon.Schedule), zap.Duration("jitter", time.Duration(cfg.Daemon.Jitter)),
		zap.Bool("run_at_start", cfg.Daemon.RunAtStart))
	if cfg.Daemon.RunAtStart {
		d.Trigger(TriggerStart)
	}

	var err error
	scheduled := d.schedule(ctx)
	dispatched := d.dispatchEvents(ctx)
	select {
	case <-scheduled:
	case err = <-serveErr:
		err = fmt.Errorf("daemon.listen: %w", err)
		cancel()
		<-scheduled
	}
	<-dispatched
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
			d.mu.Lock()
			d.nextRun = at
			d.mu.Unlock()
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
	// What waits is not run: tell whoever waits for it (?wait=true).
	if b := d.q.take(); b != nil {
		d.log.Info("stopping: queued events are left to the next run after a restart", zap.Int("users", len(b.slice.Users)),
			zap.Int("groups", len(b.slice.Groups)), zap.Bool("delta", b.delta))
		b.ticket.resolve(notRun(TriggerEvent))
	}
	defer d.haltedOnce.Do(func() { close(d.halted) })
	defer d.abandonDeferred()
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
// logs. During an event run the run is deferred until that one ends
// (started is true), unless another already is. The returned channel
// closes when the started run has ended; then Last returns its outcome.
func (d *Daemon) Trigger(trigger string) (done <-chan struct{}, started bool) {
	r, ok := d.start(trigger)
	if !ok {
		return nil, false
	}
	return r.done, true
}

func (d *Daemon) start(trigger string) (*run, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.current != nil && d.runCtx != nil && d.current.trigger == TriggerEvent && d.deferred == nil {
		// An event run takes seconds; the full run goes right after it
		// rather than wait for the next tick.
		r := &run{trigger: trigger, done: make(chan struct{})}
		d.deferred = r
		d.log.Info("run deferred: an event run is in progress; it starts when that one ends", zap.String("trigger", trigger))
		return r, true
	}
	if d.current != nil || d.runCtx == nil {
		d.m.Trigger(trigger, false)
		if d.current != nil {
			d.log.Info("run skipped: another run is in progress", zap.String("trigger", trigger))
		}
		return nil, false
	}
	r := &run{trigger: trigger, done: make(chan struct{})}
	d.launch(r)
	return r, true
}

// launch starts r; d.mu is held, no run is in progress and the daemon
// runs. A full run takes the queued events: it reads the source after they
// came, so it applies them too.
func (d *Daemon) launch(r *run) {
	if r.trigger != TriggerEvent && r.approve == nil {
		if r.batch = d.q.take(); r.batch != nil {
			d.m.EventsCoalesced(len(r.batch.received))
		}
	}
	d.current, r.started = r, time.Now()
	d.m.Trigger(r.trigger, true)
	d.m.SetRunning(true)
	go d.execute(d.runCtx, d.cfg, r)
}

// notRun is the outcome of work the daemon stopped before running.
func notRun(trigger string) Outcome {
	now := time.Now()
	return Outcome{Trigger: trigger, Start: now, End: now, Result: metrics.ResultError, Error: "not run: the daemon stopped"}
}

// abandonDeferred resolves a deferred run that will not start.
func (d *Daemon) abandonDeferred() {
	d.mu.Lock()
	r := d.deferred
	d.deferred = nil
	d.mu.Unlock()
	if r != nil {
		d.m.Trigger(r.trigger, false)
		r.outcome = notRun(r.trigger)
		close(r.done)
	}
}

// poke wakes the run loop.
func (d *Daemon) poke() {
	select {
	case d.idle <- struct{}{}:
	default:
	}
}

// dispatchEvents runs what the queue holds, one run at a time, until ctx
// ends; the returned channel closes then.
func (d *Daemon) dispatchEvents(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var timer *time.Timer
			var fire <-chan time.Time
			if wait := d.dispatch(time.Now()); wait > 0 {
				timer = time.NewTimer(wait)
				fire = timer.C
			}
			select {
			case <-ctx.Done():
			case <-d.q.ready:
			case <-d.idle:
			case <-fire:
			}
			if timer != nil {
				timer.Stop()
			}
			if ctx.Err() != nil {
				return
			}
		}
	}()
	return done
}

// dispatch starts an event run when events wait, their coalesce window has
// passed and no run is in progress; otherwise it returns how long to wait
// for the window (0: until something happens).
func (d *Daemon) dispatch(now time.Time) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.runCtx == nil || d.current != nil {
		return 0 // the run's end pokes the loop
	}
	since, ok := d.q.waiting()
	if !ok {
		return 0
	}
	if wait := since.Add(time.Duration(d.cfg.Daemon.Webhooks.Coalesce)).Sub(now); wait > 0 {
		return wait
	}
	b := d.q.take()
	if b == nil {
		return 0
	}
	d.launch(&run{trigger: TriggerEvent, batch: b, done: make(chan struct{})})
	return 0
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
	// An approved plan of an event run covers that run's slice only: like
	// the event run, it says nothing of the rest of the tenant.
	targeted := r.targeted(d.opts) || r.approve != nil && r.approve.plan.Slice != nil
	fields := []zap.Field{zap.String("trigger", r.trigger)}
	if b := r.batch; b != nil && r.trigger == TriggerEvent {
		fields = append(fields, zap.Strings("users", b.slice.Users), zap.Strings("groups", b.slice.Groups), zap.Bool("delta", b.delta))
	}
	d.log.Info("run started", fields...)
	stopProgress := d.progress(start, before)

	var rep *gsync.Report
	var err error
	switch {
	case r.approve != nil:
		rep, err = d.opts.ApplySaved(ctx, cfg, r.approve.plan)
	case targeted:
		rep, err = d.opts.RunSlice(ctx, cfg, r.batch.slice)
	default:
		rep, err = d.opts.Run(ctx, cfg)
	}

	stopProgress()
	end := time.Now()
	res := d.m.ObserveRun(metrics.Run{Report: rep, Err: err, End: end, Duration: end.Sub(start), Targeted: targeted})
	r.outcome, r.err = Outcome{Trigger: r.trigger, Start: start, End: end, Result: res}, err
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
	if b := r.batch; b != nil && res == metrics.ResultOK {
		for _, at := range b.received {
			d.m.ObserveEventLag(end.Sub(at))
		}
	}
	d.hist.run(d.record(r, rep, err, targeted))

	d.mu.Lock()
	logQuarantine := d.quarantineAfter(r, rep, err, end, targeted)
	d.current = nil
	d.last = &r.outcome
	// A targeted run says nothing of the rest of the tenant: readiness
	// and the last-success time stay the full runs'.
	if res == metrics.ResultOK && !targeted {
		d.lastSuccess = end
	}
	d.m.SetRunning(false)
	if next := d.deferred; next != nil && d.runCtx != nil {
		d.deferred = nil
		d.launch(next)
	}
	d.mu.Unlock()
	if logQuarantine != nil {
		logQuarantine()
	}
	// Whoever waits for the run (?wait=true) is answered once GET /status
	// and the quarantine say what it did.
	if b := r.batch; b != nil {
		b.ticket.resolve(r.outcome)
	}
	close(r.done)
	d.poke()
}

// record is what GET /status keeps of a finished run.
func (d *Daemon) record(r *run, rep *gsync.Report, err error, targeted bool) RunRecord {
	o := r.outcome
	rec := RunRecord{Trigger: o.Trigger, Mode: ModeFull, Start: o.Start, DurationSeconds: o.End.Sub(o.Start).Seconds(),
		Result: o.Result, Summary: o.Summary, Applied: o.Applied, Error: o.Error}
	switch {
	case r.approve != nil:
		rec.Mode, rec.PlanID, rec.Slice = ModeApprove, r.approve.id, r.approve.plan.Slice
	case targeted:
		s := r.batch.slice
		rec.Mode, rec.Slice = ModeSlice, &s
	}
	rec.Changes, rec.ChangesOmitted = groupCounts(rep, historyGroups)
	if rep != nil {
		rec.Guard = rep.Guard
		rec.TargetRead = rep.TargetRead
		if sr := rep.SourceRead; sr != nil {
			rec.SourceRead = &ReadMode{Mode: sr.Mode, Reason: sr.Reason}
			if rec.Mode == ModeFull && sr.Mode == ModeIncremental {
				rec.Mode = ModeIncremental
			}
		}
	}
	var guard *gsync.GuardError
	if errors.As(err, &guard) && guard.Trip != nil {
		rec.Guard = guard.Trip
	}
	return rec
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
	if rep != nil && rep.Result != nil {
		for _, w := range rep.Result.Warnings {
			d.log.Warn(w, zap.String("trigger", o.Trigger))
		}
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
