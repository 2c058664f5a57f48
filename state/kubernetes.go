// Why a hand-written Kubernetes client and not client-go (measured
// 2026-12-01, go1.26.8, 2 cores shared with other builds, so compare CPU
// seconds, not wall time). The store needs three REST calls (GET, PUT,
// POST of a ConfigMap or Secret); client-go k8s.io/client-go v0.37.0 (the
// version matching k8s.io/api v0.37.0 in go.mod, already there as an
// indirect requirement but not linked into groupsync) would cost:
//
//   - Build: a cold `go build -o /tmp/x ./cmd/groupsync` (empty GOCACHE)
//     takes 411s user + 33s sys. On a copy of exactly that cache, the same
//     build with get/put on client-go's typed CoreV1 client (rest.Config,
//     corev1client.NewForConfig, apierrors.IsNotFound) adds 95s user + 11s
//     sys (+24%); the k8s.io packages alone (`go build
//     k8s.io/client-go/kubernetes/typed/core/v1 k8s.io/client-go/rest
//     k8s.io/apimachinery/pkg/api/errors`) are 68s + 8.5s of it. With the
//     full clientset (kubernetes.NewForConfig(cfg).CoreV1()) it adds 109s
//     user + 15s sys (+28%).
//   - Size: 597 packages and 179,850,547 bytes today; 823 packages and
//     215,478,965 bytes with the typed client (+35.6 MB, +20%); 927
//     packages and 215,670,711 bytes with the clientset.
//   - CPU at start: `groupsync version` run 50 times under /usr/bin/time:
//     33ms CPU (user+sys) and 38 MB max RSS a run today against 45ms and
//     55 MB with client-go; GODEBUG=inittrace=1 shows 101 more package
//     inits, 14k more allocations (1.8 MB) before main.
//   - CPU at work: Save then Load of a 3 MiB state (4 ConfigMaps) against
//     state_test.go's fake API server (go test -bench, 50 ops, twice):
//     115-140ms and ~2,140 allocs an op here, 200-230ms and ~3,050 allocs
//     with client-go (its 5 QPS rate limit off, JSON); the test binary's
//     CPU 8.6-10.5s against 17.6-20.1s. With client-go's defaults an op
//     takes 1.56s: its client-side limit of 5 requests a second, and it
//     sends protobuf, which a JSON-only fake (or proxy) does not read.
//
// client-go would replace about 100 lines (in-cluster defaults, TLS, the
// bearer token, Status errors) and add nothing the store uses (no watch,
// informers or retries), so the store stays on net/http.

package state

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// In-cluster defaults: where a pod finds the API server and its service
// account.
const (
	serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	// MaxObjectBytes is what Kubernetes accepts in one ConfigMap's or
	// Secret's data (keys and values): 1 MiB.
	MaxObjectBytes = 1 << 20
	// defaultPartSize leaves room under MaxObjectBytes for the key.
	defaultPartSize = MaxObjectBytes - 64<<10
	dataKey         = "state"
	annoPrefix      = "groupsync.io/state-"
)

// KubernetesOptions say where the state objects are and how to reach the
// API server. Only Kind and Name are required inside a pod.
type KubernetesOptions struct {
	Kind      string // "configmap" or "secret"
	Namespace string // empty: the pod's namespace
	Name      string // the first object; more are <name>-1, <name>-2 ...
	// Field is where these settings are in the config, for messages;
	// empty is source.msgraph.delta.state.
	Field string
	// APIURL, TokenFile and CAFile default to the pod's in-cluster API
	// server (https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT)
	// and service account files.
	APIURL    string
	TokenFile string
	CAFile    string
	// Client, when set, is used as is (tests); otherwise one that trusts
	// CAFile.
	Client *http.Client
	// PartSize is the most state bytes one object holds; default just under
	// 1 MiB, Kubernetes' limit.
	PartSize int
}

// Kubernetes keeps the state in ConfigMaps or Secrets through the API
// server's REST API with the pod's service account token: plain net/http,
// no client-go. The blob is split over <name>, <name>-1, ... each holding
// at most PartSize bytes; <name> holds the part count, a SHA-256 of the
// whole and a generation that every part repeats, and is written last, so
// a torn write reads back as ErrCorrupt, never as a wrong state. Parts left
// over from a larger earlier state are ignored, not deleted (no delete
// permission is needed).
type Kubernetes struct {
	o        KubernetesOptions
	resource string // "configmaps" or "secrets"
	client   *http.Client
}

// NewKubernetes resolves the in-cluster defaults and returns the store.
func NewKubernetes(o KubernetesOptions) (*Kubernetes, error) {
	p := "source.msgraph.delta.state."
	if o.Field != "" {
		p = o.Field + "."
	}
	k := &Kubernetes{o: o}
	switch o.Kind {
	case "configmap":
		k.resource = "configmaps"
	case "secret":
		k.resource = "secrets"
	default:
		return nil, fmt.Errorf("%stype: %q is neither configmap nor secret", p, o.Kind)
	}
	if o.Name == "" {
		return nil, fmt.Errorf("%sname: required for state type %s", p, o.Kind)
	}
	if k.o.TokenFile == "" {
		k.o.TokenFile = serviceAccountDir + "/token"
	}
	if k.o.CAFile == "" {
		k.o.CAFile = serviceAccountDir + "/ca.crt"
	}
	if k.o.PartSize <= 0 {
		k.o.PartSize = defaultPartSize
	}
	if k.o.Namespace == "" {
		ns, err := os.ReadFile(serviceAccountDir + "/namespace")
		if err != nil {
			return nil, fmt.Errorf("%snamespace: not set, and not running in a Kubernetes pod (%v)", p, err)
		}
		k.o.Namespace = strings.TrimSpace(string(ns))
	}
	if k.o.APIURL == "" {
		host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
		if host == "" || port == "" {
			return nil, fmt.Errorf("%stype %s: not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set)", p, o.Kind)
		}
		k.o.APIURL = "https://" + net.JoinHostPort(host, port)
	}
	k.o.APIURL = strings.TrimRight(k.o.APIURL, "/")
	k.client = o.Client
	if k.client == nil {
		pem, err := os.ReadFile(k.o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%stype %s: read the cluster CA: %w", p, o.Kind, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%stype %s: %s holds no PEM certificate", p, o.Kind, k.o.CAFile)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		k.client = &http.Client{Transport: tr, Timeout: 60 * time.Second}
	}
	return k, nil
}

func (k *Kubernetes) String() string {
	return strings.TrimSuffix(k.resource, "s") + " " + k.o.Namespace + "/" + k.o.Name
}

// object is the part of a ConfigMap or Secret the store reads and writes.
// ConfigMaps keep bytes in binaryData, Secrets in data; both are base64 in
// JSON, which []byte gives.
type object struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   objectMeta        `json:"metadata"`
	Type       string            `json:"type,omitempty"`       // Secret
	Data       map[string][]byte `json:"data,omitempty"`       // Secret
	BinaryData map[string][]byte `json:"binaryData,omitempty"` // ConfigMap
}

type objectMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

func (o *object) payload() []byte {
	if o.Kind == "Secret" {
		return o.Data[dataKey]
	}
	return o.BinaryData[dataKey]
}

func (k *Kubernetes) partName(i int) string {
	if i == 0 {
		return k.o.Name
	}
	return k.o.Name + "-" + strconv.Itoa(i)
}

func (k *Kubernetes) newObject(name string, payload []byte, annotations map[string]string) *object {
	o := &object{APIVersion: "v1", Metadata: objectMeta{Name: name, Namespace: k.o.Namespace,
		Labels:      map[string]string{"app.kubernetes.io/managed-by": "groupsync", "app.kubernetes.io/component": "delta-state"},
		Annotations: annotations}}
	if k.resource == "secrets" {
		o.Kind, o.Type, o.Data = "Secret", "Opaque", map[string][]byte{dataKey: payload}
	} else {
		o.Kind, o.BinaryData = "ConfigMap", map[string][]byte{dataKey: payload}
	}
	return o
}

func (k *Kubernetes) Load(ctx context.Context) ([]byte, error) {
	head, err := k.get(ctx, k.o.Name)
	if err != nil || head == nil {
		return nil, err
	}
	a := head.Metadata.Annotations
	if _, ok := a[annoPrefix+"parts"]; !ok && len(head.payload()) == 0 {
		return nil, nil // created empty ahead of time (so that the Role needs no create)
	}
	parts, err := strconv.Atoi(a[annoPrefix+"parts"])
	gen, sum := a[annoPrefix+"generation"], a[annoPrefix+"sha256"]
	if err != nil || parts < 1 || parts > 1000 || gen == "" || sum == "" {
		return nil, fmt.Errorf("%s: %w: its annotations %sparts, generation and sha256 are missing or malformed", k, ErrCorrupt, annoPrefix)
	}
	var buf bytes.Buffer
	buf.Write(head.payload())
	for i := 1; i < parts; i++ {
		name := k.partName(i)
		o, err := k.get(ctx, name)
		if err != nil {
			return nil, err
		}
		if o == nil || o.Metadata.Annotations[annoPrefix+"generation"] != gen || o.Metadata.Annotations[annoPrefix+"part"] != strconv.Itoa(i) {
			return nil, fmt.Errorf("%s: %w: part %s is missing or from another write (an interrupted save)", k, ErrCorrupt, name)
		}
		buf.Write(o.payload())
	}
	got := sha256.Sum256(buf.Bytes())
	if hex.EncodeToString(got[:]) != sum {
		return nil, fmt.Errorf("%s: %w: the SHA-256 of its %d parts does not match (an interrupted save)", k, ErrCorrupt, parts)
	}
	return buf.Bytes(), nil
}

func (k *Kubernetes) Save(ctx context.Context, data []byte) error {
	var chunks [][]byte
	for rest := data; len(rest) > 0 || len(chunks) == 0; {
		n := min(len(rest), k.o.PartSize)
		chunks = append(chunks, rest[:n])
		rest = rest[n:]
	}
	g := make([]byte, 8)
	rand.Read(g)
	gen := hex.EncodeToString(g)
	sum := sha256.Sum256(data)
	// Parts first, the head (which names the parts' generation) last.
	for i := len(chunks) - 1; i >= 0; i-- {
		anno := map[string]string{annoPrefix + "generation": gen, annoPrefix + "part": strconv.Itoa(i)}
		if i == 0 {
			anno[annoPrefix+"parts"] = strconv.Itoa(len(chunks))
			anno[annoPrefix+"sha256"] = hex.EncodeToString(sum[:])
			anno[annoPrefix+"bytes"] = strconv.Itoa(len(data))
		}
		if err := k.put(ctx, k.newObject(k.partName(i), chunks[i], anno)); err != nil {
			return err
		}
	}
	return nil
}

func (k *Kubernetes) url(name string) string {
	u := k.o.APIURL + "/api/v1/namespaces/" + url.PathEscape(k.o.Namespace) + "/" + k.resource
	if name != "" {
		u += "/" + url.PathEscape(name)
	}
	return u
}

// get returns the object, or nil if it does not exist.
func (k *Kubernetes) get(ctx context.Context, name string) (*object, error) {
	body, status, err := k.do(ctx, http.MethodGet, k.url(name), nil)
	if err != nil {
		return nil, fmt.Errorf("read %s %s/%s: %w", strings.TrimSuffix(k.resource, "s"), k.o.Namespace, name, err)
	}
	switch status {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, nil
	default:
		return nil, k.apiError("read", name, status, body)
	}
	var o object
	if err := json.Unmarshal(body, &o); err != nil {
		return nil, fmt.Errorf("%s: %w: %s/%s is not a readable object: %v", k, ErrCorrupt, k.o.Namespace, name, err)
	}
	return &o, nil
}

// put replaces the object (an unconditional update), creating it if it
// does not exist yet.
func (k *Kubernetes) put(ctx context.Context, o *object) error {
	body, err := json.Marshal(o)
	if err != nil {
		return err
	}
	name := o.Metadata.Name
	resp, status, err := k.do(ctx, http.MethodPut, k.url(name), body)
	if err == nil && status == http.StatusNotFound {
		resp, status, err = k.do(ctx, http.MethodPost, k.url(""), body)
	}
	if err != nil {
		return fmt.Errorf("write %s %s/%s: %w", strings.TrimSuffix(k.resource, "s"), k.o.Namespace, name, err)
	}
	if status != http.StatusOK && status != http.StatusCreated {
		return k.apiError("write", name, status, resp)
	}
	return nil
}

func (k *Kubernetes) do(ctx context.Context, method, target string, body []byte) ([]byte, int, error) {
	token, err := os.ReadFile(k.o.TokenFile)
	if err != nil {
		return nil, 0, fmt.Errorf("read the service account token: %w", err)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4*MaxObjectBytes))
	return data, resp.StatusCode, err
}

// apiError reads a Kubernetes Status and says what to do.
func (k *Kubernetes) apiError(verb, name string, status int, body []byte) error {
	var st struct {
		Message string `json:"message"`
		Reason  string `json:"reason"`
	}
	_ = json.Unmarshal(body, &st)
	msg := st.Message
	if msg == "" {
		msg = http.StatusText(status)
	}
	what := fmt.Sprintf("%s %s %s/%s", verb, strings.TrimSuffix(k.resource, "s"), k.o.Namespace, name)
	switch status {
	case http.StatusUnauthorized:
		return fmt.Errorf("%s: HTTP 401: the service account token was refused: %s", what, msg)
	case http.StatusForbidden:
		return fmt.Errorf("%s: HTTP 403: %s (the service account needs get, update and create on %s %q in namespace %s: see the Role in docs/entra.md)",
			what, msg, k.resource, name, k.o.Namespace)
	}
	return errors.New(what + ": HTTP " + strconv.Itoa(status) + ": " + msg)
}
