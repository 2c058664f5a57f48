package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/daemon"
	gsync "github.com/groupsync/groupsync/sync"
)

// approveTimeout bounds one approval: the daemon answers when the apply
// has ended, which for a large plan takes minutes.
const approveTimeout = 30 * time.Minute

func newApproveCmd(o *options) *cobra.Command {
	var daemonURL, tokenFile, planID, out string
	cmd := &cobra.Command{
		Use:   "approve",
		Short: "Show the plan a guard quarantined in a running daemon, and approve exactly it (--plan-id)",
		Long: `approve fetches the plan a guard stopped in a running groupsync daemon
(GET /quarantine/plan) and prints it. With --plan-id, the id it printed, it
asks the daemon to apply exactly that plan (POST /quarantine/approve): the
daemon applies it as its one writer, under the lease, only if planning again
gives the same changes; when the source or OpenFGA changed since, nothing is
written and approve exits 1 ("stale"). A plan a later run replaced is
refused too: review the new one and approve its id.

Both requests take daemon.trigger's bearer token: --token-file, or
GROUPSYNC_DAEMON_TRIGGER_TOKEN. --out saves the plan for the offline path,
"groupsync apply FILE" with the daemon's config.

Exit codes: 0 shown (or applied), 1 refused, stale or failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			token, err := approveToken(tokenFile)
			if err != nil {
				return err
			}
			base, err := url.Parse(strings.TrimRight(daemonURL, "/"))
			if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
				return fmt.Errorf("--daemon %q is not the daemon's http(s) URL, e.g. http://127.0.0.1:8080 (kubectl port-forward)", daemonURL)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), approveTimeout)
			defer cancel()
			c := daemonClient{base: base.String(), token: token}
			sp, id, err := c.plan(ctx)
			if err != nil {
				return err
			}
			if err := printQuarantined(o.stdout, sp, id); err != nil {
				return err
			}
			if out != "" {
				if err := writeSavedPlan(out, sp); err != nil {
					return err
				}
				fmt.Fprintf(o.stdout, "\nSaved to %s: apply it offline with groupsync apply %s\n", out, out)
			}
			if planID == "" {
				fmt.Fprintf(o.stdout, "\nTo apply exactly this plan: groupsync approve --daemon %s --plan-id %s\n", base, id)
				return nil
			}
			if planID != id {
				fmt.Fprintf(o.stderr, "groupsync: the daemon's quarantined plan is now %s, not %s; asking it anyway, it refuses a plan it does not hold\n", id, planID)
			}
			a, err := c.approve(ctx, planID)
			if err != nil {
				return err
			}
			if oc := a.Outcome; oc != nil && oc.Applied != nil {
				fmt.Fprintf(o.stdout, "\nApproved and applied plan %s: %d added, %d deleted.\n", planID, oc.Applied.Added, oc.Applied.Deleted)
			} else {
				fmt.Fprintf(o.stdout, "\nApproved and applied plan %s.\n", planID)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&daemonURL, "daemon", "http://127.0.0.1:8080", "the daemon's URL (its daemon.listen, e.g. through kubectl port-forward)")
	f.StringVar(&tokenFile, "token-file", "", "file holding daemon.trigger's token (default: $GROUPSYNC_DAEMON_TRIGGER_TOKEN)")
	f.StringVar(&planID, "plan-id", "", "apply the quarantined plan with this id (as shown); without it, only show the plan")
	f.StringVar(&out, "out", "", "also save the plan to this file, for groupsync apply FILE")
	return cmd
}

// approveToken reads daemon.trigger's token from file or the environment.
func approveToken(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		if tok := strings.TrimSpace(string(b)); tok != "" {
			return tok, nil
		}
		return "", fmt.Errorf("--token-file %s is empty; it holds daemon.trigger's token", file)
	}
	env := config.EnvPrefix + "DAEMON_TRIGGER_TOKEN"
	if tok := strings.TrimSpace(os.Getenv(env)); tok != "" {
		return tok, nil
	}
	return "", fmt.Errorf("no token: pass --token-file with daemon.trigger's token, or set %s", env)
}

// daemonClient calls a daemon's quarantine endpoints.
type daemonClient struct {
	base, token string
}

func (c daemonClient) do(ctx context.Context, method, path, body string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, strings.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, nil, fmt.Errorf("%s %s: the daemon refused the token (401); use daemon.trigger's token", method, path)
	}
	return resp, data, nil
}

// plan fetches the quarantined plan and its id.
func (c daemonClient) plan(ctx context.Context) (*gsync.SavedPlan, string, error) {
	resp, data, err := c.do(ctx, http.MethodGet, "/quarantine/plan", "")
	if err != nil {
		return nil, "", err
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, "", fmt.Errorf("the daemon has no quarantined plan, or its trigger is off: %s", strings.TrimSpace(string(data)))
	default:
		return nil, "", fmt.Errorf("GET /quarantine/plan: %s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	var sp gsync.SavedPlan
	if err := json.Unmarshal(data, &sp); err != nil {
		return nil, "", fmt.Errorf("GET /quarantine/plan did not answer a saved plan: %w", err)
	}
	return &sp, resp.Header.Get(daemon.PlanIDHeader), nil
}

// approve asks the daemon to apply the quarantined plan id.
func (c daemonClient) approve(ctx context.Context, id string) (*daemon.ApproveAnswer, error) {
	body, _ := json.Marshal(map[string]string{"plan_id": id})
	resp, data, err := c.do(ctx, http.MethodPost, "/quarantine/approve", string(body))
	if err != nil {
		return nil, err
	}
	var a daemon.ApproveAnswer
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("POST /quarantine/approve: %s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	switch {
	case resp.StatusCode == http.StatusOK && a.Applied:
		return &a, nil
	case a.Stale:
		return nil, errors.New(a.Reason)
	default:
		return nil, fmt.Errorf("the daemon did not apply plan %s (%s): %s", id, resp.Status, a.Reason)
	}
}

// printQuarantined prints the plan's guard, id and report.
func printQuarantined(w io.Writer, sp *gsync.SavedPlan, id string) error {
	fmt.Fprintf(w, "Quarantined plan %s (saved %s)\n", id, sp.Created.UTC().Format(time.RFC3339))
	if sp.Report == nil {
		return nil
	}
	fmt.Fprintln(w)
	// The report names the guard the plan tripped.
	return sp.Report.Render(w, "text")
}
