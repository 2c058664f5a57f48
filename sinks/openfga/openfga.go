// Package openfga is groupsync's sink for OpenFGA, built on the go-sdk
// (v0.8.2). It implements sync.Sink: Verify checks the authorization model,
// Read returns the tuples in the managed scope, Apply writes adds then
// deletes in chunks, in parallel and idempotently.
//
// The store (by id, or by a name that must match exactly one store) and the
// authorization model (pinned, or the store's latest) are resolved once, in
// New; every later request names both.
//
// Retries are ours, not the SDK's: the SDK's wait between retries ignores the
// context, so its retries are turned off and each request is retried here on
// 429, 5xx (except 501) and network errors, honouring Retry-After, with a
// context-aware wait. 400, 401, 403 and 404 are never retried.
package openfga

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	fga "github.com/openfga/go-sdk"
	"github.com/openfga/go-sdk/client"
	"github.com/openfga/go-sdk/credentials"

	"github.com/groupsync/groupsync/config"
	gsync "github.com/groupsync/groupsync/sync"
)

var _ gsync.Sink = (*Sink)(nil)

var (
	// ErrStoreNotFound: no store has the configured id or name.
	ErrStoreNotFound = errors.New("store not found")
	// ErrNoModel: the store has no authorization model yet.
	ErrNoModel = errors.New("store has no authorization model")
	// ErrModelNotFound: the pinned authorization model does not exist.
	ErrModelNotFound = errors.New("authorization model not found")
)

// Sink reads and writes the tuples of one OpenFGA store under one
// authorization model. It is safe for concurrent use.
type Sink struct {
	conn
	storeID    string
	storeName  string
	modelID    string
	model      fga.AuthorizationModel
	writeLimit writeLimit // what refused writes taught it (apply.go)
}

// conn is a configured API client, before a store is chosen.
type conn struct {
	api    fga.OpenFgaApi
	cfg    config.OpenFGA
	target string // the API URL without credentials or query, for messages
}

// Option changes how New and EnsureStore connect.
type Option func(*options)

type options struct {
	httpClient *http.Client
	userAgent  string
	wrap       []func(http.RoundTripper) http.RoundTripper
}

// WithHTTPClient makes the SDK send its requests with c (a copy of it: when
// c has no Timeout, openfga.request_timeout is set on the copy).
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.httpClient = c } }

// WithTransportWrapper wraps the transport the sink sends with: the one it
// builds itself (a connection per request in flight, from
// openfga.max_parallel_reads and max_parallel_writes), or the Transport of
// the client WithHTTPClient gave (http.DefaultTransport when that has
// none). Use it to count or trace requests without copying the sink's
// transport settings. wrap is given the *http.Transport the sink built, so
// it may keep it to close idle connections. Wrappers given more than once
// apply in order, the last outermost.
func WithTransportWrapper(wrap func(http.RoundTripper) http.RoundTripper) Option {
	return func(o *options) {
		if wrap != nil {
			o.wrap = append(o.wrap, wrap)
		}
	}
}

// WithUserAgent sets the User-Agent of every request.
func WithUserAgent(ua string) Option { return func(o *options) { o.userAgent = ua } }

// New connects to OpenFGA, finds the store and resolves the authorization
// model (cfg.AuthorizationModelID, or the store's latest).
func New(ctx context.Context, cfg config.OpenFGA, opts ...Option) (*Sink, error) {
	c, err := dial(cfg, opts)
	if err != nil {
		return nil, err
	}
	s := &Sink{conn: c}
	if err := s.resolveStore(ctx); err != nil {
		return nil, err
	}
	if err := s.resolveModel(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// StoreID is the store's id.
func (s *Sink) StoreID() string { return s.storeID }

// StoreName is the store's name.
func (s *Sink) StoreName() string { return s.storeName }

// ModelID is the id of the authorization model every write names.
func (s *Sink) ModelID() string { return s.modelID }

// dial builds the SDK client; it sends nothing.
func dial(cfg config.OpenFGA, opts []Option) (conn, error) {
	if err := check(cfg); err != nil {
		return conn{}, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	creds, err := credentialsFor(cfg.Auth)
	if err != nil {
		return conn{}, err
	}
	apiURL := strings.TrimRight(cfg.APIURL, "/") // the SDK appends "/stores/..."
	sdk, err := client.NewSdkClient(&client.ClientConfiguration{
		ApiUrl:      apiURL,
		Credentials: creds,
		HTTPClient:  httpClient(cfg, o.httpClient, o.wrap),
		UserAgent:   o.userAgent,
		// No SDK retries: MaxRetry 0 is one attempt (api_executor.go loops
		// attempt < MaxRetry+1), and its wait is a time.Sleep deaf to ctx.
		// MinWaitInMs must still be positive to pass validation.
		RetryParams: &fga.RetryParams{MaxRetry: 0, MinWaitInMs: 1},
	})
	if err != nil {
		return conn{}, fmt.Errorf("openfga: configure client for %s: %w", redactURL(apiURL), err)
	}
	return conn{api: sdk.OpenFgaApi, cfg: cfg, target: redactURL(apiURL)}, nil
}

// check rejects settings the sink cannot work with; config.Validate gives
// the user-facing messages, this guards against a config built in code.
func check(cfg config.OpenFGA) error {
	var errs []error
	bad := func(field string, v, lo, hi int) {
		if v < lo || v > hi {
			errs = append(errs, fmt.Errorf("openfga.%s must be between %d and %d, got %d", field, lo, hi, v))
		}
	}
	if cfg.APIURL == "" {
		errs = append(errs, errors.New("openfga.api_url is required"))
	}
	if cfg.StoreID == "" && cfg.StoreName == "" {
		errs = append(errs, errors.New("openfga.store_id or openfga.store_name is required"))
	}
	bad("max_tuples_per_write", cfg.MaxTuplesPerWrite, 1, 1<<20)
	bad("max_parallel_writes", cfg.MaxParallelWrites, 1, 1024)
	bad("max_parallel_reads", cfg.MaxParallelReads, 1, 1024)
	bad("read_page_size", cfg.ReadPageSize, 1, 100)
	bad("max_retries", cfg.MaxRetries, 0, 100)
	if cfg.MaxRetries > 0 && cfg.RetryMinWait <= 0 {
		errs = append(errs, errors.New("openfga.retry_min_wait must be positive"))
	}
	if cfg.RequestTimeout < 0 {
		errs = append(errs, errors.New("openfga.request_timeout may not be negative"))
	}
	return errors.Join(errs...)
}

func credentialsFor(a config.Auth) (*credentials.Credentials, error) {
	switch a.Method {
	case "", "none":
		return nil, nil
	case "api_token":
		if a.APIToken == "" {
			return nil, errors.New("openfga.auth.api_token is required for auth method api_token")
		}
		return &credentials.Credentials{
			Method: credentials.CredentialsMethodApiToken,
			Config: &credentials.Config{ApiToken: a.APIToken.Reveal()},
		}, nil
	case "client_credentials":
		switch {
		case a.ClientID == "":
			return nil, errors.New("openfga.auth.client_id is required for auth method client_credentials")
		case a.ClientSecret == "":
			return nil, errors.New("openfga.auth.client_secret is required for auth method client_credentials")
		case a.TokenIssuer == "":
			return nil, errors.New("openfga.auth.token_issuer is required for auth method client_credentials")
		}
		return &credentials.Credentials{
			Method: credentials.CredentialsMethodClientCredentials,
			Config: &credentials.Config{
				ClientCredentialsClientId:       a.ClientID,
				ClientCredentialsClientSecret:   a.ClientSecret.Reveal(),
				ClientCredentialsApiTokenIssuer: a.TokenIssuer,
				ClientCredentialsApiAudience:    a.Audience,
				ClientCredentialsScopes:         a.Scopes,
			},
		}, nil
	default:
		return nil, fmt.Errorf("openfga.auth.method %q is not one of none, api_token, client_credentials", a.Method)
	}
}

func httpClient(cfg config.OpenFGA, base *http.Client, wrap []func(http.RoundTripper) http.RoundTripper) *http.Client {
	var c http.Client
	if base != nil {
		c = *base
	} else {
		c.Transport = transport(cfg)
	}
	if len(wrap) > 0 && c.Transport == nil {
		c.Transport = http.DefaultTransport
	}
	for _, w := range wrap {
		c.Transport = w(c.Transport)
	}
	if c.Timeout == 0 {
		c.Timeout = time.Duration(cfg.RequestTimeout)
	}
	return &c
}

// transport is the transport the sink sends with unless given a client:
// it keeps a connection per request in flight instead of the default 2.
func transport(cfg config.OpenFGA) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = max(cfg.MaxParallelReads, cfg.MaxParallelWrites, 2)
	return tr
}

// redactURL drops credentials, query and fragment from a URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid openfga.api_url)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

func (s *Sink) resolveStore(ctx context.Context) error {
	if id := s.cfg.StoreID; id != "" {
		st, err := call(ctx, &s.conn, "GetStore", id, nil, func(ctx context.Context) (fga.GetStoreResponse, *http.Response, error) {
			return s.api.GetStore(ctx, id).Execute()
		})
		if err != nil {
			var e *Error
			if errors.As(err, &e) && (e.Status == http.StatusNotFound || e.Status == http.StatusBadRequest) {
				return fmt.Errorf("openfga.store_id %q: no such store at %s (%s): %w", id, s.target, e.Message, ErrStoreNotFound)
			}
			return err
		}
		s.storeID, s.storeName = st.Id, st.Name
		return nil
	}
	stores, err := s.findStores(ctx, s.cfg.StoreName)
	if err != nil {
		return err
	}
	return s.pickStore(stores)
}

// pickStore takes the one store found by openfga.store_name.
func (s *Sink) pickStore(stores []fga.Store) error {
	name := s.cfg.StoreName
	switch len(stores) {
	case 0:
		return fmt.Errorf("openfga.store_name %q: no store has this name at %s; create it or set openfga.store_id: %w", name, s.target, ErrStoreNotFound)
	case 1:
		s.storeID, s.storeName = stores[0].Id, stores[0].Name
		return nil
	default:
		ids := make([]string, len(stores))
		for i, st := range stores {
			ids[i] = st.Id
		}
		return fmt.Errorf("openfga.store_name %q: %d stores at %s have this name (%s); set openfga.store_id to the one to use", name, len(stores), s.target, strings.Join(ids, ", "))
	}
}

// findStores lists every store named exactly name, following pages.
func (c *conn) findStores(ctx context.Context, name string) ([]fga.Store, error) {
	var found []fga.Store
	token := ""
	for {
		resp, err := call(ctx, c, "ListStores", "", nil, func(ctx context.Context) (fga.ListStoresResponse, *http.Response, error) {
			req := c.api.ListStores(ctx).PageSize(100).Name(name) // the name filter is exact; we check again below
			if token != "" {
				req = req.ContinuationToken(token)
			}
			return req.Execute()
		})
		if err != nil {
			return nil, err
		}
		for _, st := range resp.Stores {
			if st.Name == name && st.DeletedAt == nil {
				found = append(found, st)
			}
		}
		if resp.ContinuationToken == "" || resp.ContinuationToken == token {
			return found, nil
		}
		token = resp.ContinuationToken
	}
}

func (s *Sink) resolveModel(ctx context.Context) error {
	if id := s.cfg.AuthorizationModelID; id != "" {
		resp, err := call(ctx, &s.conn, "ReadAuthorizationModel", s.storeID, nil, func(ctx context.Context) (fga.ReadAuthorizationModelResponse, *http.Response, error) {
			return s.api.ReadAuthorizationModel(ctx, s.storeID, id).Execute()
		})
		if err != nil {
			var e *Error
			if errors.As(err, &e) && (e.Status == http.StatusNotFound || e.Status == http.StatusBadRequest) {
				return fmt.Errorf("openfga.authorization_model_id %q: no such model in store %s (%s): %w", id, s.storeID, e.Message, ErrModelNotFound)
			}
			return err
		}
		if resp.AuthorizationModel == nil {
			return fmt.Errorf("openfga.authorization_model_id %q: no such model in store %s: %w", id, s.storeID, ErrModelNotFound)
		}
		s.model, s.modelID = *resp.AuthorizationModel, resp.AuthorizationModel.Id
		return nil
	}
	m, err := s.latestModel(ctx, s.storeID)
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("store %s (%q) at %s has no authorization model yet; write one (groupsync's default is openfga.DefaultModel) or set openfga.authorization_model_id: %w", s.storeID, s.storeName, s.target, ErrNoModel)
	}
	s.model, s.modelID = *m, m.Id
	return nil
}

// latestModel returns the store's newest model, nil when there is none.
func (c *conn) latestModel(ctx context.Context, storeID string) (*fga.AuthorizationModel, error) {
	resp, err := call(ctx, c, "ReadAuthorizationModels", storeID, nil, func(ctx context.Context) (fga.ReadAuthorizationModelsResponse, *http.Response, error) {
		return c.api.ReadAuthorizationModels(ctx, storeID).PageSize(1).Execute()
	})
	if err != nil {
		return nil, err
	}
	if len(resp.AuthorizationModels) == 0 {
		return nil, nil
	}
	return &resp.AuthorizationModels[0], nil
}
