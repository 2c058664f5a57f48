package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/groupsync/groupsync/config"
)

// secretEnv stands in for the Secret "groupsync" when a variant does not
// create one: the variables docs/kubernetes.md tells operators to set.
var secretEnv = map[string]string{
	"GROUPSYNC_OPENFGA_AUTH_API_TOKEN":       "placeholder-openfga-token",
	"GROUPSYNC_DAEMON_TRIGGER_TOKEN":         "placeholder-trigger-token-0123",
	"GROUPSYNC_SOURCE_MSGRAPH_CLIENT_SECRET": "placeholder-client-secret",
}

func TestDecodeIsStrict(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndatta: {}\n", `unknown field "datta"`},
		{"apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: x}\nspec: {schedule: '* * * * *', concurrencyPolicy: Forbid, concurrencyPolicy: Allow}\n", "already set"},
		{"apiVersion: batch/v1beta1\nkind: CronJob\nmetadata: {name: x}\n", "not a kind"},
		{"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: one}\n", "replicas"},
		{"metadata: {name: x}\n", "no apiVersion and kind"},
	} {
		if _, err := Decode("test", []byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error with %q", tc.doc, err, tc.want)
		}
	}
	objs, err := Decode("test", []byte("# nothing\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n---\n"))
	if err != nil || len(objs) != 1 || objs[0].Name != "a" {
		t.Fatalf("%v %v", objs, err)
	}
}

// Every YAML file under kustomize/ decodes strictly (the kustomizations
// themselves and the config aside).
func TestEveryManifestFileDecodes(t *testing.T) {
	n := 0
	err := filepath.WalkDir("kustomize", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		switch filepath.Base(path) {
		case "kustomization.yaml", "groupsync.yaml":
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		objs, err := Decode(path, b)
		if err != nil {
			t.Error(err)
		}
		if len(objs) == 0 {
			t.Errorf("%s holds no manifest", path)
		}
		n += len(objs)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 6 {
		t.Fatalf("only %d manifests under kustomize/", n)
	}
	// The example Secret holds no real secret.
	b, _ := os.ReadFile("kustomize/secret.example.yaml")
	objs, _ := Decode("secret.example.yaml", b)
	for k, v := range objs[0].Obj.(*corev1.Secret).StringData {
		if !strings.HasPrefix(v, "replace-") {
			t.Errorf("secret.example.yaml: %s looks real", k)
		}
	}
}

func TestVariants(t *testing.T) {
	variants, err := Variants(".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range variants {
		names = append(names, v.Name)
		t.Run(v.Name, func(t *testing.T) { checkVariant(t, v) })
	}
	want := len(ChartValues) + 2
	if len(variants) != want || names[0] != "kustomize/cronjob" || names[1] != "kustomize/daemon" {
		t.Fatalf("variants %v", names)
	}
}

func TestKustomizeOverlays(t *testing.T) {
	for _, tc := range []struct {
		dir   string
		kinds []string
	}{
		{"kustomize/cronjob", []string{"ConfigMap", "CronJob", "NetworkPolicy", "ServiceAccount"}},
		{"kustomize/daemon", []string{"ConfigMap", "Deployment", "NetworkPolicy", "NetworkPolicy", "Service", "ServiceAccount"}},
	} {
		objs, err := Kustomize(tc.dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := kindsOf(objs); strings.Join(got, ",") != strings.Join(tc.kinds, ",") {
			t.Errorf("%s: kinds %v, want %v", tc.dir, got, tc.kinds)
		}
		for _, o := range objs {
			if o.Namespace != "groupsync" {
				t.Errorf("%s: %s in namespace %q", tc.dir, o, o.Namespace)
			}
		}
		// The generated ConfigMap's hashed name is what the pod mounts.
		w := Workloads(objs)[0]
		if cm := w.Pod.Spec.Volumes[0].ConfigMap.Name; !strings.HasPrefix(cm, "groupsync-") || Find(objs, "ConfigMap", cm) == nil {
			t.Errorf("%s: the pod mounts ConfigMap %q", tc.dir, cm)
		}
	}
}

// The chart's own tests (its modes, required values, NOTES.txt, the
// config checksum, the values schema and lint) run on Helm's engine in
// helm/charttest; TestVariants holds its renders to the same checks as the
// Kustomize overlays.

func kindsOf(objs []Object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.Kind)
	}
	slices.Sort(out)
	return out
}

var guid = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// checkVariant holds one rendering of the manifests to what
// docs/kubernetes.md promises.
func checkVariant(t *testing.T, v Variant) {
	ws := Workloads(v.Objects)
	if len(ws) != 1 {
		t.Fatalf("%d workloads (a CronJob or a Deployment, not both)", len(ws))
	}
	w := ws[0]
	pod := w.Pod.Spec
	podLabels := w.Pod.Labels
	for _, o := range v.Objects {
		if !strings.HasPrefix(labelsOf(o)["app.kubernetes.io/name"], "groupsync") {
			t.Errorf("%s lacks app.kubernetes.io/name", o)
		}
	}

	// Hardening.
	psc := pod.SecurityContext
	if psc == nil || !isTrue(psc.RunAsNonRoot) || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v", psc)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !isTrue(sc.ReadOnlyRootFilesystem) ||
		sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("container securityContext %+v", sc)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("no %s request", r)
		}
		if _, ok := c.Resources.Limits[r]; !ok {
			t.Errorf("no %s limit", r)
		}
	}
	if !strings.HasPrefix(c.Image, "ghcr.io/groupsync/groupsync:v") || len(c.Command) != 0 {
		t.Errorf("image %q, command %v (the image's entrypoint is /groupsync)", c.Image, c.Command)
	}

	// Identity: the pod's ServiceAccount, ready for workload identity.
	sa := Find(v.Objects, "ServiceAccount", pod.ServiceAccountName)
	if sa == nil {
		t.Fatalf("ServiceAccount %q is not deployed", pod.ServiceAccountName)
	}
	if podLabels["azure.workload.identity/use"] == "true" {
		if id := sa.Obj.(*corev1.ServiceAccount).Annotations["azure.workload.identity/client-id"]; !guid.MatchString(id) {
			t.Errorf("workload identity without a client-id annotation on the ServiceAccount: %q", id)
		}
	}

	// The config: mounted where --config points, and valid with the
	// container's environment and the Secret.
	var mount *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if m.Name == "config" {
			mount = &c.VolumeMounts[i]
		}
	}
	if mount == nil || !mount.ReadOnly {
		t.Fatalf("no read-only config mount: %+v", c.VolumeMounts)
	}
	if !slices.Contains(c.Args, "--config="+mount.MountPath+"/groupsync.yaml") {
		t.Errorf("args %v do not name the mounted config", c.Args)
	}
	var cmName string
	for _, vol := range pod.Volumes {
		if vol.Name == "config" && vol.ConfigMap != nil {
			cmName = vol.ConfigMap.Name
		}
	}
	cm := Find(v.Objects, "ConfigMap", cmName)
	if cm == nil {
		t.Fatalf("ConfigMap %q is not deployed", cmName)
	}
	env := map[string]string{}
	for k, val := range secretEnv {
		env[k] = val
	}
	for _, from := range c.EnvFrom {
		if from.SecretRef == nil {
			continue
		}
		if s := Find(v.Objects, "Secret", from.SecretRef.Name); s != nil {
			env = map[string]string{} // the chart's own Secret is all there is
			for k, val := range s.Obj.(*corev1.Secret).StringData {
				env[k] = val
			}
		} else if !isTrue(from.SecretRef.Optional) {
			t.Errorf("envFrom a Secret %q that must exist", from.SecretRef.Name)
		}
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	cfg, err := config.Parse([]byte(cm.Obj.(*corev1.ConfigMap).Data["groupsync.yaml"]), func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	if err != nil {
		t.Fatalf("the deployed config is invalid: %v", err)
	}

	switch obj := w.Obj.(type) {
	case *batchv1.CronJob:
		checkCronJob(t, obj, c)
	case *appsv1.Deployment:
		checkDeployment(t, v, obj, c, cfg)
	}

	var nps []*networkingv1.NetworkPolicy
	for _, o := range v.Objects {
		if np, ok := o.Obj.(*networkingv1.NetworkPolicy); ok {
			nps = append(nps, np)
		}
	}
	if len(nps) > 0 {
		checkNetworkPolicies(t, nps, podLabels, c)
	}
}

func checkCronJob(t *testing.T, cj *batchv1.CronJob, c corev1.Container) {
	s := cj.Spec
	sched, err := cron.ParseStandard(s.Schedule)
	if err != nil {
		t.Fatalf("schedule %q does not parse: %v", s.Schedule, err)
	}
	if s.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("concurrencyPolicy %q", s.ConcurrencyPolicy)
	}
	if s.StartingDeadlineSeconds == nil || *s.StartingDeadlineSeconds <= 0 {
		t.Error("no startingDeadlineSeconds")
	}
	j := s.JobTemplate.Spec
	// A run must end before the next one is due.
	next := sched.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	gap := sched.Next(next).Sub(next)
	if j.ActiveDeadlineSeconds == nil || time.Duration(*j.ActiveDeadlineSeconds)*time.Second >= gap {
		t.Errorf("activeDeadlineSeconds %v, runs every %s", j.ActiveDeadlineSeconds, gap)
	}
	if j.BackoffLimit == nil || *j.BackoffLimit > 6 {
		t.Errorf("backoffLimit %v", j.BackoffLimit)
	}
	if j.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q (podFailurePolicy needs Never)", j.Template.Spec.RestartPolicy)
	}
	guard := false
	if p := j.PodFailurePolicy; p != nil {
		for _, r := range p.Rules {
			if r.Action == batchv1.PodFailurePolicyActionFailJob && r.OnExitCodes != nil && r.OnExitCodes.ContainerName != nil &&
				*r.OnExitCodes.ContainerName == c.Name && slices.Contains(r.OnExitCodes.Values, 3) {
				guard = true
			}
		}
	}
	if !guard {
		t.Error("a guard trip (exit 3) is retried: no podFailurePolicy FailJob rule for it")
	}
	if len(c.Args) == 0 || c.Args[0] != "apply" {
		t.Errorf("the CronJob runs %v, not apply", c.Args)
	}
}

func checkDeployment(t *testing.T, v Variant, d *appsv1.Deployment, c corev1.Container, cfg *config.Config) {
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("replicas %v, strategy %q: want one daemon, replaced with Recreate", d.Spec.Replicas, d.Spec.Strategy.Type)
	}
	if len(c.Args) == 0 || c.Args[0] != "daemon" {
		t.Errorf("the Deployment runs %v, not daemon", c.Args)
	}
	// The port groupsync listens on (config, environment applied) is the
	// container port the probes, the Service and the NetworkPolicy use.
	_, port, _ := strings.Cut(cfg.Daemon.Listen, ":")
	var cp *corev1.ContainerPort
	for i, p := range c.Ports {
		if p.Name == "http" {
			cp = &c.Ports[i]
		}
	}
	if cp == nil || fmt.Sprint(cp.ContainerPort) != port {
		t.Fatalf("container ports %+v; daemon.listen %q", c.Ports, cfg.Daemon.Listen)
	}
	for _, p := range []struct {
		probe *corev1.Probe
		path  string
	}{{c.LivenessProbe, "/healthz"}, {c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port != intstr.FromString("http") {
			t.Errorf("probe %s: %+v", p.path, p.probe)
		}
	}
	grace := d.Spec.Template.Spec.TerminationGracePeriodSeconds
	if grace == nil || time.Duration(*grace)*time.Second <= time.Duration(cfg.Daemon.ShutdownGrace)+5*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v leaves no margin over daemon.shutdown_grace %s", grace, time.Duration(cfg.Daemon.ShutdownGrace))
	}
	labels := d.Spec.Template.Labels
	for k, val := range d.Spec.Selector.MatchLabels {
		if labels[k] != val {
			t.Errorf("the selector %v does not select the pod %v", d.Spec.Selector.MatchLabels, labels)
		}
	}
	if s := findKind(v.Objects, "Service"); s != nil {
		svc := s.Obj.(*corev1.Service)
		for k, val := range svc.Spec.Selector {
			if labels[k] != val {
				t.Errorf("the Service selects %v, not the pod %v", svc.Spec.Selector, labels)
			}
		}
		if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort != intstr.FromString("http") || !svc.Spec.PublishNotReadyAddresses {
			t.Errorf("Service %+v", svc.Spec)
		}
	}
	if cfg.Daemon.Trigger.Enabled {
		if tok, err := cfg.Daemon.Trigger.TriggerToken(); err != nil || tok == "" {
			t.Errorf("trigger enabled without a token: %v", err)
		}
	}
}

// checkNetworkPolicies checks what the policies that select the pod
// allow, together (policies add up).
func checkNetworkPolicies(t *testing.T, nps []*networkingv1.NetworkPolicy, podLabels map[string]string, c corev1.Container) {
	egress, ingress := map[string]bool{}, map[string]bool{}
	types := map[networkingv1.PolicyType]bool{}
	for _, np := range nps {
		selects := true
		for k, val := range np.Spec.PodSelector.MatchLabels {
			selects = selects && podLabels[k] == val
		}
		if !selects {
			continue
		}
		for _, pt := range np.Spec.PolicyTypes {
			types[pt] = true
		}
		for _, r := range np.Spec.Egress {
			for _, p := range r.Ports {
				egress[fmt.Sprintf("%s/%s", *p.Protocol, p.Port.String())] = true
			}
		}
		for _, r := range np.Spec.Ingress {
			for _, p := range r.Ports {
				ingress[p.Port.String()] = true
			}
		}
	}
	if !types[networkingv1.PolicyTypeIngress] || !types[networkingv1.PolicyTypeEgress] {
		t.Errorf("the pod %v is not isolated both ways: %v", podLabels, types)
	}
	for _, want := range []string{"UDP/53", "TCP/53", "TCP/443", "TCP/8080"} {
		if !egress[want] {
			t.Errorf("egress lacks %s: %v", want, egress)
		}
	}
	for _, p := range c.Ports {
		if !ingress[fmt.Sprint(p.ContainerPort)] {
			t.Errorf("ingress to port %d is not allowed: %v", p.ContainerPort, ingress)
		}
	}
	if len(c.Ports) == 0 && len(ingress) > 0 {
		t.Errorf("ingress allowed to a pod that listens on nothing: %v", ingress)
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var from, user, entry []string
	var build string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "FROM "):
			from = append(from, line)
		case strings.HasPrefix(line, "USER "):
			user = append(user, line)
		case strings.HasPrefix(line, "ENTRYPOINT "):
			entry = append(entry, line)
		case strings.Contains(line, "go build"):
			build = line
		}
	}
	gomod, _ := os.ReadFile("../go.mod")
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if len(from) != 2 || goVersion == nil || !strings.HasPrefix(from[0], "FROM golang:"+string(goVersion[1])+" AS build") {
		t.Errorf("want a build stage on golang:%s and a runtime stage: %v", goVersion[1], from)
	}
	if len(from) == 2 && !regexp.MustCompile(`^FROM gcr\.io/distroless/static[-\w]*:nonroot$`).MatchString(from[1]) {
		t.Errorf("runtime stage %q: want distroless static, nonroot", from[1])
	}
	if len(user) != 1 || user[0] != "USER 65532:65532" {
		t.Errorf("USER %v", user)
	}
	if len(entry) != 1 || entry[0] != `ENTRYPOINT ["/groupsync"]` {
		t.Errorf("ENTRYPOINT %v", entry)
	}
	if !strings.Contains(build, "CGO_ENABLED=0") || !strings.Contains(string(b), "-o /out/groupsync ./cmd/groupsync") {
		t.Errorf("the build is not a static build of ./cmd/groupsync: %q", build)
	}
	// Without it grpc links golang.org/x/net/trace and the binary triples
	// (scripts/check-binary.sh).
	if !strings.Contains(build, "-tags grpcnotrace") {
		t.Errorf("the build does not use -tags grpcnotrace: %q", build)
	}
	if _, err := os.Stat("../cmd/groupsync/main.go"); err != nil {
		t.Error(err)
	}
}

func TestBaseConfigIsValid(t *testing.T) {
	b, err := os.ReadFile("kustomize/base/groupsync.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.Parse(b, func(k string) (string, bool) { v, ok := secretEnv[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
}

func labelsOf(o Object) map[string]string {
	switch v := o.Obj.(type) {
	case *corev1.ServiceAccount:
		return v.Labels
	case *corev1.ConfigMap:
		return v.Labels
	case *corev1.Secret:
		return v.Labels
	case *corev1.Service:
		return v.Labels
	case *batchv1.CronJob:
		return v.Labels
	case *appsv1.Deployment:
		return v.Labels
	case *networkingv1.NetworkPolicy:
		return v.Labels
	}
	return nil
}

func findKind(objs []Object, kind string) *Object {
	for i := range objs {
		if objs[i].Kind == kind {
			return &objs[i]
		}
	}
	return nil
}

func isTrue(b *bool) bool { return b != nil && *b }
