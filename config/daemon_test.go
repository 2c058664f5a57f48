package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDaemonDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	d := c.Daemon
	if d.Schedule != "@every 1h" || !d.RunAtStart || time.Duration(d.Jitter) != time.Minute || d.Listen != ":8080" ||
		time.Duration(d.ShutdownGrace) != 30*time.Second || d.Trigger.Enabled || d.Pushgateway.Job != "groupsync" || d.Pushgateway.URL != "" {
		t.Errorf("daemon defaults: %+v", d)
	}
	// Twice the hour between runs, plus the minute of jitter.
	if got := d.ReadyAge(); got != 2*time.Hour+time.Minute {
		t.Errorf("ReadyAge %s", got)
	}
}

func TestDaemonSchedules(t *testing.T) {
	for _, tc := range []struct {
		spec          string
		jitter        string
		shortest, age time.Duration
	}{
		{"*/5 * * * *", "0s", 5 * time.Minute, 10 * time.Minute},
		{"17 * * * *", "10m", time.Hour, 2*time.Hour + 10*time.Minute},
		{"@every 10m", "1m", 10 * time.Minute, 21 * time.Minute},
		{"@daily", "0s", 24 * time.Hour, 48 * time.Hour},
		// Weekdays at 09:00: the longest gap is the weekend.
		{"0 9 * * 1-5", "0s", 24 * time.Hour, 6 * 24 * time.Hour},
		// Days are 23 and 25 hours long across DST.
		{"CRON_TZ=Europe/Berlin 30 9 * * *", "0s", 23 * time.Hour, 50 * time.Hour},
		// robfig/cron skips 02:30 on the night it does not exist and fires
		// twice on the night it happens twice: gaps of 47h and 1h.
		{"CRON_TZ=Europe/Berlin 30 2 * * *", "0s", time.Hour, 94 * time.Hour},
	} {
		c, err := Parse([]byte(minimal+"daemon: {schedule: \""+tc.spec+"\", jitter: "+tc.jitter+"}\n"), noEnv)
		if err != nil {
			t.Errorf("%s: %v", tc.spec, err)
			continue
		}
		s, _ := ParseSchedule(tc.spec)
		shortest, _, _ := scheduleGaps(s)
		if shortest != tc.shortest {
			t.Errorf("%s: shortest gap %s, want %s", tc.spec, shortest, tc.shortest)
		}
		if got := c.Daemon.ReadyAge(); got != tc.age {
			t.Errorf("%s: ReadyAge %s, want %s", tc.spec, got, tc.age)
		}
	}
}

func TestDaemonErrorsNameTheirField(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ daemon, field, says string }{
		{`{schedule: "every hour"}`, "daemon.schedule", `"every hour" does not parse`},
		{`{schedule: "61 * * * *"}`, "daemon.schedule", "does not parse"},
		{`{schedule: "* * * * * *"}`, "daemon.schedule", "does not parse"}, // six fields: seconds are not ours
		{`{schedule: "0 0 30 2 *"}`, "daemon.schedule", "fires at most once"},
		{`{schedule: "@every 10m", jitter: 10m}`, "daemon.jitter", "not shorter than the 10m0s"},
		{`{jitter: -1s}`, "daemon.jitter", "negative"},
		{`{listen: "8080"}`, "daemon.listen", "host:port"},
		{`{listen: ":http"}`, "daemon.listen", "not a number"},
		{`{listen: "example.com:80"}`, "daemon.listen", "not on a host name"},
		{`{ready_max_age: 30m}`, "daemon.ready_max_age", "turn unready between good runs"},
		{`{ready_max_age: -1s}`, "daemon.ready_max_age", "negative"},
		{`{shutdown_grace: -1s}`, "daemon.shutdown_grace", "negative"},
		{`{trigger: {enabled: true}}`, "daemon.trigger.token", "is required"},
		{`{trigger: {token: short}}`, "daemon.trigger.token", "shorter than 16"},
		{`{trigger: {enabled: true, token: 0123456789abcdef, token_file: /x}}`, "daemon.trigger.token_file", "set one of them"},
		{`{trigger: {enabled: true, token_file: ` + filepath.Join(dir, "none") + `}}`, "daemon.trigger.token_file", "cannot be read"},
		{`{status: {enabled: true, require_token: true}}`, "daemon.status.require_token", "needs daemon.trigger.enabled"},
		{`{pushgateway: {url: "pushgateway:9091"}}`, "daemon.pushgateway.url", "not an http(s) URL"},
		{`{pushgateway: {url: "http://pg:9091", job: ""}}`, "daemon.pushgateway.job", "is required"},
	} {
		_, err := Parse([]byte(minimal+"daemon: "+tc.daemon+"\n"), noEnv)
		if err == nil || !strings.Contains(err.Error(), tc.field+": ") || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("daemon: %s: want %s: ...%s..., got %v", tc.daemon, tc.field, tc.says, err)
		}
	}

	c, err := Parse([]byte(minimal+"daemon: {trigger: {enabled: true, token_file: "+short+"}}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Daemon.Trigger.TriggerToken(); err == nil || !strings.Contains(err.Error(), "daemon.trigger.token_file: ") {
		t.Errorf("a short token file: %v", err)
	}
}

func TestDaemonTriggerToken(t *testing.T) {
	const tok = "0123456789abcdef0123"
	c, err := Parse([]byte(minimal+"daemon: {trigger: {enabled: true}}\n"), envOf(map[string]string{"GROUPSYNC_DAEMON_TRIGGER_TOKEN": tok}))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Daemon.Trigger.TriggerToken(); err != nil || got.Reveal() != tok {
		t.Fatalf("token from the environment: %v", err)
	}

	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Parse([]byte(minimal+"daemon: {trigger: {enabled: true, token_file: "+file+"}}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Daemon.Trigger.TriggerToken()
	if err != nil || got.Reveal() != tok {
		t.Fatalf("token from the file: %v", err)
	}
	// Rotated in place (a Kubernetes Secret volume): read anew.
	if err := os.WriteFile(file, []byte("fedcba9876543210fedcba"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Daemon.Trigger.TriggerToken(); got.Reveal() != "fedcba9876543210fedcba" {
		t.Fatal("a rotated token file is not read again")
	}
	if strings.Contains(sprintf("%v %+v %#v", c.Daemon, c.Daemon, c.Daemon.Trigger.Token), tok) {
		t.Fatal("the trigger token prints")
	}
}

func TestDaemonEnvOverrides(t *testing.T) {
	c, err := Parse([]byte(minimal), envOf(map[string]string{
		"GROUPSYNC_DAEMON_SCHEDULE":         "*/15 * * * *",
		"GROUPSYNC_DAEMON_JITTER":           "30s",
		"GROUPSYNC_DAEMON_PUSHGATEWAY_URL":  "http://pg:9091",
		"GROUPSYNC_DAEMON_RUN_AT_START":     "false",
		"GROUPSYNC_DAEMON_TRIGGER_ENABLED":  "true",
		"GROUPSYNC_DAEMON_TRIGGER_TOKEN":    "0123456789abcdef",
		"GROUPSYNC_DAEMON_READY_MAX_AGE":    "1h",
		"GROUPSYNC_DAEMON_LISTEN":           "127.0.0.1:9999",
		"GROUPSYNC_DAEMON_SHUTDOWN_GRACE":   "5s",
		"GROUPSYNC_DAEMON_PUSHGATEWAY_JOB":  "gs",
		"GROUPSYNC_DAEMON_TRIGGER_TOKEN_FI": "ignored: not a setting",
	}))
	if err != nil {
		t.Fatal(err)
	}
	d := c.Daemon
	if d.Schedule != "*/15 * * * *" || time.Duration(d.Jitter) != 30*time.Second || d.RunAtStart || !d.Trigger.Enabled ||
		d.Pushgateway.URL != "http://pg:9091" || d.Pushgateway.Job != "gs" || d.ReadyAge() != time.Hour || d.Listen != "127.0.0.1:9999" ||
		time.Duration(d.ShutdownGrace) != 5*time.Second {
		t.Errorf("%+v", d)
	}
}

func TestDaemonWebhooks(t *testing.T) {
	c, err := Parse([]byte(minimal), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Daemon.Webhooks; w.Enabled || w.QueueSize != 1000 || time.Duration(w.Coalesce) != 2*time.Second {
		t.Errorf("webhook defaults: %+v", w)
	}

	const tok = "0123456789abcdef-hooks"
	c, err = Parse([]byte(minimal+"daemon: {webhooks: {enabled: true, queue_size: 50, coalesce: 500ms}}\n"),
		envOf(map[string]string{"GROUPSYNC_DAEMON_WEBHOOKS_TOKEN": tok}))
	if err != nil {
		t.Fatal(err)
	}
	w := c.Daemon.Webhooks
	if got, err := w.WebhookToken(); err != nil || got.Reveal() != tok || w.QueueSize != 50 || time.Duration(w.Coalesce) != 500*time.Millisecond {
		t.Fatalf("webhooks from the file and the environment: %+v %v", w, err)
	}
	if strings.Contains(sprintf("%v %+v %#v", c.Daemon, c.Daemon, w.Token), tok) {
		t.Fatal("the webhook token prints")
	}

	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Parse([]byte(minimal+"daemon: {webhooks: {enabled: true, token_file: "+file+"}}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Daemon.Webhooks.WebhookToken(); err != nil || got.Reveal() != tok {
		t.Fatalf("token from the file: %v", err)
	}

	for _, tc := range []struct{ daemon, field, says string }{
		{`{webhooks: {enabled: true}}`, "daemon.webhooks.token", "GROUPSYNC_DAEMON_WEBHOOKS_TOKEN"},
		{`{webhooks: {token: short}}`, "daemon.webhooks.token", "shorter than 16"},
		{`{webhooks: {enabled: true, token: 0123456789abcdef, token_file: /x}}`, "daemon.webhooks.token_file", "set one of them"},
		{`{webhooks: {enabled: true, token_file: /nonexistent/token}}`, "daemon.webhooks.token_file", "cannot be read"},
		{`{webhooks: {queue_size: 0}}`, "daemon.webhooks.queue_size", "not between 1 and 100000"},
		{`{webhooks: {queue_size: 1000000}}`, "daemon.webhooks.queue_size", "not between 1 and 100000"},
		{`{webhooks: {coalesce: -1s}}`, "daemon.webhooks.coalesce", "not between 0s and 1m0s"},
		{`{webhooks: {coalesce: 5m}}`, "daemon.webhooks.coalesce", "not between 0s and 1m0s"},
	} {
		_, err := Parse([]byte(minimal+"daemon: "+tc.daemon+"\n"), noEnv)
		if err == nil || !strings.Contains(err.Error(), tc.field+": ") || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("daemon: %s: want %s: ...%s..., got %v", tc.daemon, tc.field, tc.says, err)
		}
	}
}
