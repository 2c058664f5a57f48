package msgraph

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/groupsync/groupsync/config"
)

// endpoints resolves the Graph base URL (with /v1.0), the token scope and
// the login authority for the configured cloud and overrides. The scope
// follows the cloud, not an endpoint override: a proxy still serves tokens
// whose audience is the cloud's Graph.
func endpoints(cfg config.MSGraph) (baseURL, scope, authority string) {
	c := config.GraphClouds[cfg.Cloud]
	graph := c.Graph
	if cfg.GraphEndpoint != "" {
		graph = strings.TrimRight(cfg.GraphEndpoint, "/")
	}
	authority = c.Authority
	if cfg.AuthorityHost != "" {
		authority = strings.TrimRight(cfg.AuthorityHost, "/") + "/"
	}
	return graph + "/v1.0", c.Graph + "/.default", authority
}

// credential builds the azidentity credential that cfg.Auth names.
// transport, when not nil, carries azidentity's token requests (tests point
// it at a fake authority).
func credential(cfg config.MSGraph, transport policy.Transporter) (azcore.TokenCredential, error) {
	_, _, authority := endpoints(cfg)
	opts := azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: authority},
		Transport: transport,
	}
	// With an overridden authority, instance discovery would still ask the
	// public cloud about it: skip it, as air-gapped and proxied setups need.
	noDiscovery := cfg.AuthorityHost != ""
	const p = "source.msgraph."
	switch cfg.Auth {
	case "client_secret":
		c, err := azidentity.NewClientSecretCredential(cfg.TenantID, cfg.ClientID, cfg.ClientSecret.Reveal(),
			&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: noDiscovery})
		return c, wrap(p+"client_secret", err)
	case "client_certificate":
		data, err := os.ReadFile(cfg.CertificateFile)
		if err != nil {
			return nil, fmt.Errorf("%scertificate_file: %w", p, err)
		}
		var password []byte
		if pw := cfg.CertificatePassword.Reveal(); pw != "" {
			password = []byte(pw)
		}
		certs, key, err := azidentity.ParseCertificates(data, password)
		if err != nil {
			// ParseCertificates' message names neither the file nor the password.
			return nil, fmt.Errorf("%scertificate_file %s: cannot read a certificate and private key (PEM or PFX; is certificate_password right?): %v", p, cfg.CertificateFile, err)
		}
		c, err := azidentity.NewClientCertificateCredential(cfg.TenantID, cfg.ClientID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: opts, SendCertificateChain: cfg.SendCertificateChain, DisableInstanceDiscovery: noDiscovery})
		return c, wrap(p+"certificate_file", err)
	case "workload_identity":
		c, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: opts, ClientID: cfg.ClientID, TenantID: cfg.TenantID, TokenFilePath: cfg.FederatedTokenFile,
			DisableInstanceDiscovery: noDiscovery,
		})
		return c, wrap(p+"auth workload_identity (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE)", err)
	case "managed_identity":
		o := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts}
		if cfg.ClientID != "" {
			o.ID = azidentity.ClientID(cfg.ClientID)
		}
		c, err := azidentity.NewManagedIdentityCredential(o)
		return c, wrap(p+"auth managed_identity", err)
	case "default":
		c, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: opts, TenantID: cfg.TenantID, DisableInstanceDiscovery: noDiscovery})
		return c, wrap(p+"auth default", err)
	case "token":
		return staticToken(cfg.Token.Reveal()), nil
	}
	return nil, fmt.Errorf("%sauth: %q is not a credential kind groupsync knows", p, cfg.Auth)
}

func wrap(field string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", field, err)
}

// staticToken is a bearer token obtained elsewhere (az account
// get-access-token); it is sent as is until it expires.
type staticToken string

func (t staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(t), ExpiresOn: time.Now().Add(time.Hour)}, nil
}
