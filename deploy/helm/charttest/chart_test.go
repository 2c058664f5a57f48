// Package charttest renders groupsync's Helm chart with Helm's own engine
// (helm.sh/helm/v3: the loader, the values schema, the engine and the
// linter that `helm template` and `helm lint` run) and checks the result.
//
// It is a Go module of its own so that Helm's dependency tree (client-go
// and the rest) stays out of groupsync's go.mod; `go test ./...` at the
// repository's root does not descend into it, so CI runs it on its own:
//
//	(cd deploy/helm/charttest && go test ./...)
//
// It also keeps deploy/helm/rendered current: the manifests Helm renders
// for each value set of deploy.ChartValues, which the main module's tests
// (deploy.Variants: the docs' promises, and each container's arguments
// parsed by the real CLI) read. A chart change that leaves them stale
// fails here; `go test -update` rewrites them.
package charttest

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	corev1 "k8s.io/api/core/v1"

	"github.com/groupsync/groupsync/deploy"
)

var update = flag.Bool("update", false, "rewrite deploy/helm/rendered from Helm's render")

const (
	chartDir  = "../groupsync"
	deployDir = "../.."
)

// release is the install the kept renders are of, as deploy.Variants names it.
var release = chartutil.ReleaseOptions{Name: "groupsync", Namespace: "groupsync", Revision: 1, IsInstall: true}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// render is `helm template` of the chart with values over values.yaml:
// the values schema first, then the engine. It returns each template's
// output by its path in the chart (groupsync/templates/...).
func render(ch *chart.Chart, rel chartutil.ReleaseOptions, values map[string]any) (map[string]string, error) {
	vals, err := chartutil.ToRenderValuesWithSchemaValidation(ch, values, rel, chartutil.DefaultCapabilities, false)
	if err != nil {
		return nil, err
	}
	return engine.Render(ch, vals)
}

// manifests is the rendered manifests as one YAML stream, as `helm
// template` prints it: each non-empty template under a "# Source:" line,
// in the order of their paths (NOTES.txt and partials left out).
func manifests(out map[string]string) string {
	names := make([]string, 0, len(out))
	for n := range out {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		body := strings.TrimSpace(out[n])
		if body == "" || !strings.HasSuffix(n, ".yaml") {
			continue
		}
		b.WriteString("---\n# Source: " + n + "\n" + body + "\n")
	}
	return b.String()
}

func objects(t *testing.T, name string, out map[string]string) []deploy.Object {
	t.Helper()
	objs, err := deploy.Decode("helm "+name, []byte(manifests(out)))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// The kept renders are Helm's render of today's chart, and nothing else
// is kept beside them.
func TestRenderedFilesAreCurrent(t *testing.T) {
	ch := loadChart(t)
	dir := filepath.Join(deployDir, filepath.FromSlash(deploy.RenderedDir))
	want := map[string]bool{}
	for name, values := range deploy.ChartValues {
		out, err := render(ch, release, values)
		if err != nil {
			t.Fatalf("%s values: %v", name, err)
		}
		got := "# helm template groupsync deploy/helm/groupsync --namespace groupsync, with the " + name +
			" values of deploy.ChartValues.\n# Written by deploy/helm/charttest (go test -update): do not edit.\n" + manifests(out)
		file := deploy.RenderedFile(name)
		want[file] = true
		path := filepath.Join(dir, file)
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		kept, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v: run go test -update in deploy/helm/charttest", err)
		} else if string(kept) != got {
			t.Errorf("%s is not Helm's render of the chart with the %s values: run go test -update in deploy/helm/charttest", path, name)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !want[e.Name()] {
			t.Errorf("%s/%s renders no value set of deploy.ChartValues: remove it", dir, e.Name())
		}
	}
}

// The essentials of each mode, in the k8s.io/api types a cluster decodes
// them into.
func TestChartEssentials(t *testing.T) {
	ch := loadChart(t)
	rel := chartutil.ReleaseOptions{Name: "sync", Namespace: "iam", Revision: 1, IsInstall: true}

	out, err := render(ch, rel, nil)
	if err != nil {
		t.Fatal(err)
	}
	objs := objects(t, "defaults", out)
	if got := kindsOf(objs); got != "ConfigMap,CronJob,NetworkPolicy,ServiceAccount" {
		t.Fatalf("default kinds %s", got)
	}
	if deploy.Find(objs, "CronJob", "sync-groupsync") == nil {
		t.Fatal("the release's fullname is not <release>-groupsync")
	}
	w := workload(t, objs)
	c := w.Pod.Spec.Containers[0]
	if c.Image != "ghcr.io/groupsync/groupsync:v"+ch.Metadata.AppVersion {
		t.Errorf("image %q", c.Image)
	}
	if got := strings.Join(c.Args, " "); got != "apply --config=/etc/groupsync/groupsync.yaml --log-format=json" {
		t.Errorf("args %q", got)
	}
	checkHardened(t, w, c)
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef == nil || c.EnvFrom[0].SecretRef.Name != "sync-groupsync" {
		t.Errorf("envFrom %+v: want the release's Secret", c.EnvFrom)
	}
	if c.LivenessProbe != nil || len(c.Ports) != 0 {
		t.Error("a CronJob's run has a probe or a port")
	}
	if notes := out["groupsync/templates/NOTES.txt"]; !strings.Contains(notes, "kubectl -n iam create job --from=cronjob/sync-groupsync") {
		t.Errorf("NOTES.txt:\n%s", notes)
	}

	// Daemon mode: the listener on daemon.port, the probes on it, the
	// Secret the chart creates when asked.
	daemon := map[string]any{"mode": "daemon", "daemon": map[string]any{"port": 9464},
		"secrets": map[string]any{"create": true, "env": map[string]any{"GROUPSYNC_OPENFGA_AUTH_API_TOKEN": "example-token"}}}
	out, err = render(ch, rel, daemon)
	if err != nil {
		t.Fatal(err)
	}
	objs = objects(t, "daemon", out)
	if got := kindsOf(objs); got != "ConfigMap,Deployment,NetworkPolicy,Secret,Service,ServiceAccount" {
		t.Fatalf("daemon kinds %s", got)
	}
	w = workload(t, objs)
	c = w.Pod.Spec.Containers[0]
	if c.Args[0] != "daemon" {
		t.Errorf("args %q", c.Args)
	}
	checkHardened(t, w, c)
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 9464 || c.Ports[0].Name != "http" {
		t.Errorf("ports %+v, want http on 9464", c.Ports)
	}
	if env := envOf(c, "GROUPSYNC_DAEMON_LISTEN"); env != ":9464" {
		t.Errorf("GROUPSYNC_DAEMON_LISTEN %q, want :9464", env)
	}
	for probe, path := range map[string]string{"liveness": "/healthz", "readiness": "/readyz"} {
		p := c.LivenessProbe
		if probe == "readiness" {
			p = c.ReadinessProbe
		}
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "http" {
			t.Errorf("%s probe %+v, want GET %s on http", probe, p, path)
		}
	}
	svc := deploy.Find(objs, "Service", "sync-groupsync")
	if svc == nil || !strings.Contains(svc.String(), "Service") {
		t.Fatal("no Service")
	}
	sec := deploy.Find(objs, "Secret", "sync-groupsync")
	if sec == nil {
		t.Fatal("secrets.create made no Secret")
	}

	// A config change changes the pod template, so pods roll.
	sum := func(values map[string]any) string {
		out, err := render(ch, rel, values)
		if err != nil {
			t.Fatal(err)
		}
		return workload(t, objects(t, "checksum", out)).Pod.Annotations["checksum/config"]
	}
	jitter := map[string]any{"mode": "daemon", "config": map[string]any{"daemon": map[string]any{"jitter": "1m"}}}
	if a, b := sum(map[string]any{"mode": "daemon"}), sum(jitter); a == "" || a == b {
		t.Error("checksum/config does not follow the config")
	}
}

// Bad values fail before anything renders, naming the value: the schema
// for types and misspelt keys, the templates for what a schema cannot say.
func TestBadValuesAreRejected(t *testing.T) {
	ch := loadChart(t)
	for _, tc := range []struct {
		values map[string]any
		want   []string
	}{
		{map[string]any{"mode": "both"}, []string{"/mode", "cronjob", "daemon"}},
		{map[string]any{"daemon": map[string]any{"port": "http"}}, []string{"/daemon/port", "want integer"}},
		{map[string]any{"daemon": map[string]any{"port": 70000}}, []string{"/daemon/port", "maximum"}},
		{map[string]any{"shedule": "@hourly"}, []string{"additional properties 'shedule' not allowed"}},
		{map[string]any{"image": map[string]any{"pullPolicy": "Sometimes"}}, []string{"/image/pullPolicy"}},
		{map[string]any{"extraArgs": "--log-level=debug"}, []string{"/extraArgs", "want array"}},
		{map[string]any{"secrets": map[string]any{"env": map[string]any{"GROUPSYNC_OPENFGA_AUTH_API_TOKEN": 12}}}, []string{"/secrets/env/GROUPSYNC_OPENFGA_AUTH_API_TOKEN", "want string"}},
		{map[string]any{"workloadIdentity": map[string]any{"clientId": ""}}, []string{"workloadIdentity.clientId is required"}},
		{map[string]any{"serviceAccount": map[string]any{"create": false}}, []string{"serviceAccount.name is required"}},
	} {
		_, err := render(ch, release, tc.values)
		for _, want := range tc.want {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%v: %v, want an error with %q", tc.values, err, want)
				break
			}
		}
	}
}

// helm lint --strict: no warning and no error, with the default values and
// with each value set the renders are kept for; and lint catches a bad
// value.
func TestLint(t *testing.T) {
	for name, values := range deploy.ChartValues {
		l := lint.All(chartDir, values, release.Namespace, false)
		for _, m := range l.Messages {
			if m.Severity >= support.WarningSev {
				t.Errorf("%s values: %s", name, m)
			}
		}
	}
	l := lint.All(chartDir, map[string]any{"daemon": map[string]any{"port": "http"}}, release.Namespace, false)
	if l.HighestSeverity != support.ErrorSev {
		t.Errorf("lint passed daemon.port: http: %v", l.Messages)
	}
}

func workload(t *testing.T, objs []deploy.Object) deploy.Workload {
	t.Helper()
	ws := deploy.Workloads(objs)
	if len(ws) != 1 {
		t.Fatalf("%d workloads, want one", len(ws))
	}
	if n := len(ws[0].Pod.Spec.Containers); n != 1 {
		t.Fatalf("%d containers, want one", n)
	}
	return ws[0]
}

// checkHardened: not root, no privilege escalation, a read-only root,
// every capability dropped, the runtime's seccomp profile.
func checkHardened(t *testing.T, w deploy.Workload, c corev1.Container) {
	t.Helper()
	ps, cs := w.Pod.Spec.SecurityContext, c.SecurityContext
	if ps == nil || !isTrue(ps.RunAsNonRoot) || ps.SeccompProfile == nil || ps.SeccompProfile.Type != "RuntimeDefault" {
		t.Errorf("%s: pod securityContext %+v", w.Object, ps)
	}
	if cs == nil || cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation || !isTrue(cs.ReadOnlyRootFilesystem) ||
		cs.Capabilities == nil || len(cs.Capabilities.Drop) != 1 || cs.Capabilities.Drop[0] != "ALL" {
		t.Errorf("%s: container securityContext %+v", w.Object, cs)
	}
}

func envOf(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func kindsOf(objs []deploy.Object) string {
	var out []string
	for _, o := range objs {
		out = append(out, o.Kind)
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

func isTrue(b *bool) bool { return b != nil && *b }
