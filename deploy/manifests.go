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
//   - RenderChart renders the Helm chart with Go's text/template and the
//     few Helm and sprig functions the chart uses (funcs below), with
//     Helm's missing-key behaviour. The full Helm SDK would add a large
//     dependency tree for what amounts to this; a function the chart starts
//     using without one here fails the tests, so the two cannot drift.
package deploy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"text/template"

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

// Release is what Helm knows of an install.
type Release struct {
	Name      string
	Namespace string
}

// RenderChart renders the chart in dir with its values.yaml merged with
// values (as `helm template --set`/`-f` would), and returns each
// template's output by file name. Partials (_*.tpl) are not returned;
// NOTES.txt is.
func RenderChart(dir string, rel Release, values map[string]any) (map[string]string, error) {
	var meta struct {
		Name       string `json:"name"`
		Version    string `json:"version"`
		AppVersion string `json:"appVersion"`
	}
	if err := readYAML(filepath.Join(dir, "Chart.yaml"), &meta); err != nil {
		return nil, err
	}
	var vals map[string]any
	if err := readYAML(filepath.Join(dir, "values.yaml"), &vals); err != nil {
		return nil, err
	}
	// Values as Helm sees them: JSON types (numbers are float64).
	over, err := jsonValues(values)
	if err != nil {
		return nil, err
	}
	merge(vals, over)

	files, err := filepath.Glob(filepath.Join(dir, "templates", "*"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	root := template.New("chart").Option("missingkey=zero")
	root.Funcs(funcs(root))
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		name := filepath.Base(f)
		if _, err := root.New(name).Parse(string(b)); err != nil {
			return nil, fmt.Errorf("helm: parse %s: %w", name, err)
		}
		if !strings.HasPrefix(name, "_") {
			names = append(names, name)
		}
	}
	data := map[string]any{
		"Values":  vals,
		"Release": map[string]any{"Name": rel.Name, "Namespace": rel.Namespace, "Service": "Helm", "IsInstall": true, "IsUpgrade": false},
		"Chart":   map[string]any{"Name": meta.Name, "Version": meta.Version, "AppVersion": meta.AppVersion},
	}
	out := map[string]string{}
	for _, name := range names {
		var b strings.Builder
		if err := root.ExecuteTemplate(&b, name, data); err != nil {
			return nil, fmt.Errorf("helm: render %s: %w", name, err)
		}
		// Helm's engine prints nothing, not "<no value>", for a missing key.
		out[name] = strings.ReplaceAll(b.String(), "<no value>", "")
	}
	return out, nil
}

// ChartObjects renders the chart and decodes every manifest.
func ChartObjects(dir string, rel Release, values map[string]any) ([]Object, error) {
	rendered, err := RenderChart(dir, rel, values)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(rendered))
	for n := range rendered {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []Object
	for _, n := range names {
		if !strings.HasSuffix(n, ".yaml") {
			continue
		}
		objs, err := Decode("helm "+n, []byte(rendered[n]))
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}

func readYAML(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func jsonValues(v map[string]any) (map[string]any, error) {
	if v == nil {
		return map[string]any{}, nil
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	return out, yaml.Unmarshal(b, &out)
}

// merge coalesces src into dst as Helm does with user values: maps merge
// key by key, anything else replaces, null deletes.
func merge(dst, src map[string]any) {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		sm, sok := v.(map[string]any)
		dm, dok := dst[k].(map[string]any)
		if sok && dok {
			merge(dm, sm)
			continue
		}
		dst[k] = v
	}
}

// funcs are the Helm and sprig functions the chart may use, with their
// semantics.
func funcs(root *template.Template) template.FuncMap {
	return template.FuncMap{
		"include": func(name string, data any) (string, error) {
			var b strings.Builder
			err := root.ExecuteTemplate(&b, name, data)
			return b.String(), err
		},
		"required": func(msg string, v any) (any, error) {
			if v == nil || v == "" {
				return nil, errors.New(msg)
			}
			return v, nil
		},
		"fail": func(msg string) (string, error) { return "", errors.New(msg) },
		"default": func(d any, given ...any) any {
			if len(given) == 0 || empty(given[0]) {
				return d
			}
			return given[0]
		},
		"toYaml": func(v any) string {
			b, err := yaml.Marshal(v)
			if err != nil {
				return ""
			}
			return strings.TrimSuffix(string(b), "\n")
		},
		"indent":  indent,
		"nindent": func(n int, s string) string { return "\n" + indent(n, s) },
		"quote": func(args ...any) string {
			var out []string
			for _, a := range args {
				if a != nil {
					out = append(out, fmt.Sprintf("%q", fmt.Sprint(a)))
				}
			}
			return strings.Join(out, " ")
		},
		"trunc": func(n int, s string) string {
			if n >= 0 && len(s) > n {
				return s[:n]
			}
			if n < 0 && len(s) > -n {
				return s[len(s)+n:]
			}
			return s
		},
		"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
		"contains":   func(substr, s string) bool { return strings.Contains(s, substr) },
		"sha256sum": func(s string) string {
			h := sha256.Sum256([]byte(s))
			return hex.EncodeToString(h[:])
		},
	}
}

func indent(n int, s string) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}

// empty is sprig's notion: the zero value of its kind, or nil.
func empty(v any) bool {
	if v == nil {
		return true
	}
	r := reflect.ValueOf(v)
	switch r.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return r.Len() == 0
	case reflect.Bool:
		return !r.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return r.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return r.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return r.Float() == 0
	case reflect.Pointer, reflect.Interface:
		return r.IsNil()
	}
	return false
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
		objs, err := ChartObjects(filepath.Join(dir, "helm", "groupsync"), Release{Name: "groupsync", Namespace: "groupsync"}, ChartValues[n])
		if err != nil {
			return nil, fmt.Errorf("chart with %s values: %w", n, err)
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
