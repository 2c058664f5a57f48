package main

import (
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
)

// sighupRow: the daemon's first run is in flight (its first add write
// held by OpenFGA) when the config file turns invalid and SIGHUP arrives.
// The run must finish under the old config, the reload be refused and
// logged, and the daemon go on with the config it had.
func sighupRow(t *testing.T) outcome {
	o := outcome{scenario: "SIGHUP with an invalid config mid-run", fault: "the config file gets an invalid daemon.schedule and the daemon SIGHUP while its run's 3rd write (the adds) is held by OpenFGA", exit: "not run"}
	t.Run(o.scenario, func(t *testing.T) {
		e := newFaultEnv(t, withYAML("sync:\n", "daemon:\n  schedule: \"@hourly\"\n  listen: 127.0.0.1:0\n  shutdown_grace: 20s\nsync:\n"))
		e.baseline(change)
		// The plan the daemon's run will make.
		rep := e.plan()
		good, err := os.ReadFile(e.cfg)
		if err != nil {
			t.Fatal(err)
		}
		before := e.tuples()
		e.fga.ResetCounts()
		arrived, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		e.fga.SetFault(func(r fgatest.Request) *fgatest.Fault {
			if r.Endpoint == fgatest.Write && r.N == 3 {
				once.Do(func() { close(arrived) })
				<-release
			}
			return nil
		})
		base, exit, stderr := startDaemon(t, e.cfg, io.Discard)
		select {
		case <-arrived:
		case <-time.After(time.Minute):
			close(release)
			t.Fatalf("the run's 3rd write never came:\n%s", stderr.String())
		}
		bad := strings.Replace(string(good), `"@hourly"`, `"every hour"`, 1)
		if err := os.WriteFile(e.cfg, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		refused := stderr.logLine(t, "config reload refused; keeping the config loaded before")
		close(release)
		summary := stderr.logLine(t, "run finished")
		if summary["result"] != "ok" {
			t.Errorf("the run in flight: %v", summary)
		}
		ready := waitFor(t, base+"/readyz", 200, "refused")
		mustContain(t, "/readyz", ready, `daemon.schedule: "every hour" does not parse`)
		mustContain(t, "the refusal's log line", refused["error"].(string), "every hour")
		stopDaemon(t, exit, stderr)
		o.exit = "0 (SIGTERM after the run)"
		if err := os.WriteFile(e.cfg, good, 0o600); err != nil {
			t.Fatal(err)
		}
		e.check(&o, before, &rep)
		o.notes = "the run finishes under the config it started with (result ok); the reload is refused and logged (\"config reload refused; keeping the config loaded before\") and /readyz names the error; the daemon goes on with the old config and exits 0 on SIGTERM"
	})
	return o
}
