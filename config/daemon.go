package config

import (
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Daemon configures `groupsync daemon`: when it runs, where it serves its
// metrics, health and trigger endpoints, and how it stops. Pushgateway is
// also read by the one-shot commands (plan, apply) run from a CronJob.
type Daemon struct {
	// Schedule is when a run starts: five cron fields, minute first, in UTC
	// unless prefixed with CRON_TZ=Area/City ("17 * * * *"), a descriptor
	// (@hourly, @daily, @weekly ...) or a fixed interval ("@every 30m").
	Schedule string `yaml:"schedule"`
	// RunAtStart runs once as soon as the daemon starts, then on schedule.
	RunAtStart bool `yaml:"run_at_start"`
	// Jitter delays each scheduled run by a random time in [0, jitter), so
	// that instances started together do not all read Graph at once. It must
	// be shorter than the shortest gap between two scheduled runs.
	Jitter Duration `yaml:"jitter"`
	// Listen is the address of /metrics, /healthz, /readyz and /run.
	Listen string `yaml:"listen"`
	// ReadyMaxAge: /readyz fails once the last successful run ended longer
	// ago than this. 0 is twice the longest gap between two scheduled runs,
	// plus the jitter: one failed run keeps the daemon ready, two do not.
	ReadyMaxAge Duration `yaml:"ready_max_age"`
	// ReadyBeforeFirstRun makes /readyz succeed until the first run ends;
	// by default the daemon is not ready before its first successful run.
	ReadyBeforeFirstRun bool `yaml:"ready_before_first_run"`
	// ShutdownGrace is how long SIGTERM lets the write requests in flight
	// finish; no new request starts after the signal. Then the daemon
	// cancels them and exits.
	ShutdownGrace Duration       `yaml:"shutdown_grace"`
	Trigger       DaemonTrigger  `yaml:"trigger"`
	Webhooks      DaemonWebhooks `yaml:"webhooks"`
	Status        DaemonStatus   `yaml:"status"`
	Pushgateway   Pushgateway    `yaml:"pushgateway"`
}

// DaemonStatus is the read-only status endpoint GET /status: recent runs
// and their plans (per group, counts only), a quarantined plan awaiting
// approval, the next run and recent events, as JSON or as an HTML page.
// It is off by default: it names groups, and the users events named,
// which a cluster may not want every pod that reaches the listener to read.
type DaemonStatus struct {
	Enabled bool `yaml:"enabled"`
	// RequireToken makes GET /status ask for daemon.trigger's bearer
	// token, like POST /run; without it, anyone who reaches the listener
	// reads the page, as they read /metrics.
	RequireToken bool `yaml:"require_token"`
}

// DaemonTrigger is the HTTP endpoint POST /run that starts a run now.
type DaemonTrigger struct {
	Enabled bool `yaml:"enabled"`
	// Token is the bearer token a caller must send; prefer
	// GROUPSYNC_DAEMON_TRIGGER_TOKEN or token_file.
	Token     Secret `yaml:"token"`
	TokenFile string `yaml:"token_file"` // read at start and on each reload (SIGHUP)
}

// DaemonWebhooks are the event endpoints: POST /sync/user/{key},
// POST /sync/group/{id} and POST /webhooks/authentik. Each request queues a
// targeted run of the users or groups it names; the daemon runs them one at
// a time, between scheduled runs, which stay the backstop.
type DaemonWebhooks struct {
	Enabled bool `yaml:"enabled"`
	// Token is the bearer token a caller must send; prefer
	// GROUPSYNC_DAEMON_WEBHOOKS_TOKEN or token_file. It is separate from
	// the trigger's so that an IdP that may ask for a user's run cannot ask
	// for a full one.
	Token     Secret `yaml:"token"`
	TokenFile string `yaml:"token_file"` // read at start and on each reload (SIGHUP)
	// QueueSize bounds the users, groups and delta requests waiting for a
	// run; when it is full, endpoints answer 503 with Retry-After (the
	// scheduled run repairs what they were about).
	QueueSize int `yaml:"queue_size"`
	// Coalesce is how long the first queued event waits for others, so
	// that a burst (a group edit that touches many users) becomes one run.
	Coalesce Duration `yaml:"coalesce"`
}

// Bounds of daemon.webhooks.
const (
	MaxWebhookQueue    = 100000
	MaxWebhookCoalesce = time.Minute
)

// Pushgateway receives the metrics of one-shot runs (plan, apply), which
// end before Prometheus could scrape them.
type Pushgateway struct {
	URL string `yaml:"url"` // e.g. http://pushgateway.monitoring:9091; empty pushes nothing
	Job string `yaml:"job"` // the job label of the pushed group
}

// MinTriggerToken is the shortest trigger token accepted.
const MinTriggerToken = 16

func defaultDaemon() Daemon {
	return Daemon{
		Schedule:      "@every 1h",
		RunAtStart:    true,
		Jitter:        Duration(time.Minute),
		Listen:        ":8080",
		ShutdownGrace: Duration(30 * time.Second),
		Webhooks:      DaemonWebhooks{QueueSize: 1000, Coalesce: Duration(2 * time.Second)},
		Pushgateway:   Pushgateway{Job: "groupsync"},
	}
}

// ParseSchedule parses a daemon.schedule value: five cron fields, a
// descriptor or "@every <duration>".
func ParseSchedule(spec string) (cron.Schedule, error) {
	return cron.ParseStandard(spec)
}

// scheduleGaps samples a schedule's next activations and returns the
// shortest and the longest gap between two of them; ok is false when the
// schedule never fires.
func scheduleGaps(s cron.Schedule) (shortest, longest time.Duration, ok bool) {
	// A fixed start keeps validation deterministic; a year of activations
	// (or 500 of them) covers weekly and monthly patterns and DST changes.
	t := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	end := t.AddDate(1, 0, 0)
	prev := s.Next(t)
	if prev.IsZero() {
		return 0, 0, false
	}
	for i := 0; i < 500 && prev.Before(end); i++ {
		next := s.Next(prev)
		if next.IsZero() {
			break
		}
		gap := next.Sub(prev)
		if shortest == 0 || gap < shortest {
			shortest = gap
		}
		longest = max(longest, gap)
		prev = next
	}
	if longest == 0 { // fires once (a date in a year): no gap to measure
		return 0, 0, false
	}
	return shortest, longest, true
}

// ReadyAge is how long after a successful run /readyz keeps succeeding:
// ready_max_age, or, when that is 0, twice the longest gap between two
// scheduled runs plus the jitter. It assumes a valid config.
func (d Daemon) ReadyAge() time.Duration {
	if d.ReadyMaxAge > 0 {
		return time.Duration(d.ReadyMaxAge)
	}
	s, err := ParseSchedule(d.Schedule)
	if err != nil {
		return 0
	}
	_, longest, _ := scheduleGaps(s)
	return 2*longest + time.Duration(d.Jitter)
}

// TriggerToken returns the trigger's bearer token, from token or from
// token_file (read now, so that a rotated file is picked up on reload).
func (t DaemonTrigger) TriggerToken() (Secret, error) {
	return readToken("daemon.trigger", t.Token, t.TokenFile)
}

// WebhookToken returns the webhooks' bearer token, from token or from
// token_file (read now, so that a rotated file is picked up on reload).
func (w DaemonWebhooks) WebhookToken() (Secret, error) {
	return readToken("daemon.webhooks", w.Token, w.TokenFile)
}

// readToken reads the bearer token of the endpoints under prefix.
func readToken(prefix string, tok Secret, file string) (Secret, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fieldError(prefix+".token_file", "cannot read the file: %v", err)
		}
		tok = Secret(strings.TrimSpace(string(b)))
		if len(tok) < MinTriggerToken {
			return "", fieldError(prefix+".token_file", "holds a token shorter than %d characters; use a random one, e.g. openssl rand -hex 32", MinTriggerToken)
		}
	}
	if tok == "" {
		return "", fieldError(prefix+".token", "is required when %s.enabled is true; set %s or %s.token_file", prefix, envName(prefix+".token"), prefix)
	}
	return tok, nil
}

func (d Daemon) validate(add func(field, format string, args ...any)) {
	const p = "daemon."
	sched, err := ParseSchedule(d.Schedule)
	var shortest, longest time.Duration
	switch {
	case err != nil:
		add(p+"schedule", "%q does not parse: %v; write five cron fields (\"17 * * * *\"), a descriptor (@hourly) or \"@every 30m\"", d.Schedule, err)
	default:
		var ok bool
		if shortest, longest, ok = scheduleGaps(sched); !ok {
			add(p+"schedule", "%q fires at most once; a daemon needs a repeating schedule", d.Schedule)
		}
	}
	switch {
	case d.Jitter < 0:
		add(p+"jitter", "must not be negative")
	case shortest > 0 && time.Duration(d.Jitter) >= shortest:
		add(p+"jitter", "%s is not shorter than the %s between two runs of daemon.schedule %q; lower it", time.Duration(d.Jitter), shortest, d.Schedule)
	}
	if host, port, err := net.SplitHostPort(d.Listen); err != nil {
		add(p+"listen", "%q is not host:port, e.g. :8080 or 127.0.0.1:8080", d.Listen)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		add(p+"listen", "%q: port %q is not a number between 0 and 65535", d.Listen, port)
	} else if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		add(p+"listen", "%q: listen on an IP address or all interfaces (:%s), not on a host name", d.Listen, port)
	}
	switch {
	case d.ReadyMaxAge < 0:
		add(p+"ready_max_age", "must not be negative (0 derives it from the schedule)")
	case d.ReadyMaxAge > 0 && longest > 0 && time.Duration(d.ReadyMaxAge) <= longest:
		add(p+"ready_max_age", "%s is not longer than the %s between two runs of daemon.schedule; the daemon would turn unready between good runs (0 derives it from the schedule)", time.Duration(d.ReadyMaxAge), longest)
	}
	if d.ShutdownGrace < 0 {
		add(p+"shutdown_grace", "must not be negative")
	}
	validateToken(add, p+"trigger", d.Trigger.Enabled, d.Trigger.Token, d.Trigger.TokenFile)
	w := d.Webhooks
	validateToken(add, p+"webhooks", w.Enabled, w.Token, w.TokenFile)
	if w.QueueSize < 1 || w.QueueSize > MaxWebhookQueue {
		add(p+"webhooks.queue_size", "%d is not between 1 and %d", w.QueueSize, MaxWebhookQueue)
	}
	if w.Coalesce < 0 || time.Duration(w.Coalesce) > MaxWebhookCoalesce {
		add(p+"webhooks.coalesce", "%s is not between 0s and %s; events should reach OpenFGA in seconds", time.Duration(w.Coalesce), MaxWebhookCoalesce)
	}
	if d.Status.RequireToken && !d.Trigger.Enabled {
		add(p+"status.require_token", "needs daemon.trigger.enabled: the status page then takes the trigger's bearer token; turn the trigger on or set require_token: false")
	}
	if g := d.Pushgateway; g.URL != "" {
		if u, err := url.Parse(g.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add(p+"pushgateway.url", "%q is not an http(s) URL, e.g. http://pushgateway.monitoring:9091", g.URL)
		}
		if g.Job == "" {
			add(p+"pushgateway.job", "is required with daemon.pushgateway.url, e.g. groupsync")
		}
	}
}

// validateToken checks the bearer token settings of the endpoints under
// prefix (daemon.trigger, daemon.webhooks).
func validateToken(add func(field, format string, args ...any), prefix string, enabled bool, tok Secret, file string) {
	switch {
	case tok != "" && file != "":
		add(prefix+".token_file", "is set together with %s.token; set one of them", prefix)
	case tok != "" && len(tok) < MinTriggerToken:
		add(prefix+".token", "is shorter than %d characters; use a random one, e.g. openssl rand -hex 32", MinTriggerToken)
	case !enabled:
	case file != "":
		if _, err := os.Stat(file); err != nil {
			add(prefix+".token_file", "cannot be read: %v", err)
		}
	case tok == "":
		add(prefix+".token", "is required when %s.enabled is true; set %s or %s.token_file", prefix, envName(prefix+".token"), prefix)
	}
}
