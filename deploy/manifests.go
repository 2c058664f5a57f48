// Package deploy holds groupsync's container image (Dockerfile) and its
// Kubernetes manifests: a Kustomize base with two overlays (kustomize/cronjob,
// kustomize/daemon) and a Helm chart (helm/groupsync).
//
// Its Go code renders and decodes those manifests for tests, here and in
// cmd/groupsync (which checks every container's arguments against the real
// CLI); the groupsync binary does not import it.
//
//   - Decode reads YAML strictly into k8s.io/api types: an unknown or
//     misspelt field, a duplicate key or an unexpected kind is an error.
//   - Kustomize builds a kustomization with sigs.k8s.io/kustomize/api, as
//     `kubectl apply -k` does.
//   - Variants gives every way of deploying groupsync: each Kustomize
//     overlay, and the Helm chart with each value set of ChartValues as
//     Helm's own engine rendered it (RenderedDir). The render is kept in
//     files because Helm's SDK pulls a large dependency tree: the chart
//     test in helm/charttest, a Go module of its own, renders the chart
//     with Helm, lints it and fails when a kept render is stale.
package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Object is one manifest, decoded.
type Object struct {
	Source     string // the file or render it came from
	APIVersion string
	Kind       string
	Name       string
	Namespace  string
	Obj        any // *batchv1.CronJob, *appsv1.Deployment, *corev1.ConfigMap ...
}

func (o Object) String() string { return fmt.Sprintf("%s %s (%s)", o.Kind, o.Name, o.Source) }

// kinds are the kinds groupsync's manifests may hold, by apiVersion/kind.
var kinds = map[string]func() any{
	"v1/ServiceAccount":                             func() any { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":                                  func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                                     func() any { return &corev1.Secret{} },
	"v1/Service":                                    func() any { return &corev1.Service{} },
	"batch/v1/CronJob":                              func() any { return &batchv1.CronJob{} },
	"apps/v1/Deployment":                            func() any { return &appsv1.Deployment{} },
	"networking.k8s.io/v1/NetworkPolicy":            func() any { return &networkingv1.NetworkPolicy{} },
	"rbac.authorization.k8s.io/v1/Role":             func() any { return &rbacv1.Role{} },
	"rbac.authorization.k8s.io/v1/RoleBinding":      func() any { return &rbacv1.RoleBinding{} },
	"kustomize.config.k8s.io/v1beta1/Kustomization": nil, // not a cluster object
}

// Decode reads a stream of YAML documents, each strictly into its
// k8s.io/api type. Empty documents (a template that rendered nothing) are
// skipped.
func Decode(source string, data []byte) ([]Object, error) {
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []Object
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, i, err)
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, i, err)
		}
		if head.APIVersion == "" && head.Kind == "" {
			var m map[string]any
			if err := yaml.Unmarshal(doc, &m); err == nil && len(m) == 0 {
				continue // comments or nothing
			}
			return nil, fmt.Errorf("%s: document %d has no apiVersion and kind", source, i)
		}
		key := head.APIVersion + "/" + head.Kind
		mk, known := kinds[key]
		if !known {
			return nil, fmt.Errorf("%s: document %d: %s is not a kind groupsync's manifests should hold", source, i, key)
		}
		if mk == nil {
			continue
		}
		obj := mk()
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return nil, fmt.Errorf("%s: %s %s: %w", source, head.Kind, head.Metadata.Name, err)
		}
		out = append(out, Object{Source: source, APIVersion: head.APIVersion, Kind: head.Kind,
			Name: head.Metadata.Name, Namespace: head.Metadata.Namespace, Obj: obj})
	}
}

// Kustomize builds the kustomization in dir, as `kubectl kustomize dir`
// does, and decodes the result.
func Kustomize(dir string) ([]Object, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		return nil, err
	}
	return Decode("kustomize "+filepath.Base(dir), out)
}

// RenderedDir is where, under the deploy directory, the chart's renders
// are kept: one file per value set of ChartValues, the manifests Helm's
// own engine renders from it (helm template), written and kept current by
// the chart test (helm/charttest, a module of its own so that Helm's
// dependencies stay out of groupsync's).
const RenderedDir = "helm/rendered"

// RenderedFile is the file name, in RenderedDir, of value set name.
func RenderedFile(name string) string {
	slug := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(name))
	for strings.Contains(slug, "--") {
		slug = strings.ReplaceAll(slug, "--", "-")
	}
	return strings.Trim(slug, "-") + ".yaml"
}

// Variant is one way of deploying groupsync, rendered.
type Variant struct {
	Name    string
	Objects []Object
}

// ChartValues are the value sets the tests render the chart with: the
// defaults, daemon mode, and the other switches.
var ChartValues = map[string]map[string]any{
	"defaults": nil,
	"daemon": {"mode": "daemon", "config": map[string]any{"daemon": map[string]any{"trigger": map[string]any{"enabled": true}}},
		"secrets": map[string]any{"create": true, "env": map[string]any{
			"GROUPSYNC_OPENFGA_AUTH_API_TOKEN": "example-token", "GROUPSYNC_DAEMON_TRIGGER_TOKEN": "example-trigger-token-0123"}}},
	"pushgateway, no workload identity": {"workloadIdentity": map[string]any{"enabled": false},
		"pushgateway": map[string]any{"url": "http://pushgateway.monitoring.svc:9091"},
		"extraArgs":   []any{"--log-level=debug"},
		"config": map[string]any{"source": map[string]any{"msgraph": map[string]any{
			"auth": "client_secret", "tenant_id": "contoso.onmicrosoft.com", "client_id": "11111111-1111-1111-1111-111111111111"}}}},
	"daemon without network policy or service": {"mode": "daemon", "networkPolicy": map[string]any{"enabled": false},
		"daemon": map[string]any{"port": 9464, "service": map[string]any{"enabled": false}}, "fullnameOverride": "gs"},
}

// Variants renders every way of deploying groupsync that the repository
// describes: each Kustomize overlay under dir/kustomize (a directory with a
// kustomization.yaml, the base excepted) and the chart at dir/helm/groupsync
// with each of ChartValues.
func Variants(dir string) ([]Variant, error) {
	var out []Variant
	overlays, err := filepath.Glob(filepath.Join(dir, "kustomize", "*", "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	for _, k := range overlays {
		d := filepath.Dir(k)
		if filepath.Base(d) == "base" {
			continue
		}
		objs, err := Kustomize(d)
		if err != nil {
			return nil, err
		}
		out = append(out, Variant{Name: "kustomize/" + filepath.Base(d), Objects: objs})
	}
	names := make([]string, 0, len(ChartValues))
	for n := range ChartValues {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		path := filepath.Join(dir, filepath.FromSlash(RenderedDir), RenderedFile(n))
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("chart with %s values: %w (cd deploy/helm/charttest && go test -update renders it)", n, err)
		}
		objs, err := Decode("helm "+RenderedFile(n), b)
		if err != nil {
			return nil, err
		}
		out = append(out, Variant{Name: "helm (" + n + ")", Objects: objs})
	}
	return out, nil
}

// Workload is a CronJob's or a Deployment's pod.
type Workload struct {
	Object
	Pod *corev1.PodTemplateSpec
}

// Workloads returns the pods of the CronJobs and Deployments in objs.
func Workloads(objs []Object) []Workload {
	var out []Workload
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *batchv1.CronJob:
			out = append(out, Workload{o, &v.Spec.JobTemplate.Spec.Template})
		case *appsv1.Deployment:
			out = append(out, Workload{o, &v.Spec.Template})
		}
	}
	return out
}

// Find returns the object of kind and name in objs, or nil.
func Find(objs []Object, kind, name string) *Object {
	for i := range objs {
		if objs[i].Kind == kind && objs[i].Name == name {
			return &objs[i]
		}
	}
	return nil
}
