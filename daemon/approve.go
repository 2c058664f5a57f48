package daemon

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/groupsync/groupsync/metrics"
	gsync "github.com/groupsync/groupsync/sync"
)

// The quarantine endpoints (daemon.trigger.enabled, bearer
// daemon.trigger.token: an approval writes past a guard, so it takes the
// token that may start a full run, never the webhooks' one):
//
//	GET  /quarantine/plan     the quarantined plan as a saved plan file
//	                          (groupsync apply FILE applies it offline);
//	                          404 when nothing is quarantined
//	POST /quarantine/approve  apply the quarantined plan, named by its id
//	                          (?plan_id=ID or {"plan_id": "ID"}), as the
//	                          daemon's one writer: 200 applied (the
//	                          quarantine clears); 409 the id is not the
//	                          quarantined plan's, nothing is quarantined,
//	                          a run is in progress, or the plan is stale
//	                          (nothing written); 500 the apply failed

// approval is the plan an approve run applies.
type approval struct {
	id   string
	plan *gsync.SavedPlan
}

// ApproveAnswer is the body of POST /quarantine/approve.
type ApproveAnswer struct {
	Applied bool   `json:"applied"`
	PlanID  string `json:"plan_id,omitempty"`
	// Stale: the source or OpenFGA changed since the plan was quarantined;
	// nothing was written.
	Stale   bool     `json:"stale,omitempty"`
	Reason  string   `json:"reason,omitempty"`
	Outcome *Outcome `json:"outcome,omitempty"`
}

// PlanIDHeader carries the plan id with GET /quarantine/plan.
const PlanIDHeader = "X-Groupsync-Plan-Id"

// triggerAllowed answers the request itself and returns false unless the
// trigger is on, the method is method and the request carries the
// trigger's bearer token.
func (d *Daemon) triggerAllowed(w http.ResponseWriter, r *http.Request, method string) bool {
	d.mu.Lock()
	g := gate{on: d.cfg.Daemon.Trigger.Enabled, off: "the quarantine endpoints take daemon.trigger's bearer token, and the trigger is off (daemon.trigger.enabled)",
		method: method, checkToken: true, token: d.token, tokenField: "daemon.trigger.token", refused: "request refused: missing or wrong bearer token"}
	d.mu.Unlock()
	return d.allow(w, r, g)
}

func (d *Daemon) serveQuarantinePlan(w http.ResponseWriter, r *http.Request) {
	if !d.triggerAllowed(w, r, http.MethodGet) {
		return
	}
	d.mu.Lock()
	q := d.quarantine
	d.mu.Unlock()
	if q == nil {
		http.Error(w, "no plan is quarantined", http.StatusNotFound)
		return
	}
	// The file is the approval: forced past the guard it tripped, and
	// applied only if planning again gives exactly these changes.
	w.Header().Set(PlanIDHeader, q.PlanID)
	w.Header().Set("Content-Disposition", `attachment; filename="groupsync-plan-`+q.PlanID+`.json"`)
	writeJSON(w, http.StatusOK, q.approvable())
}

// maxApproveBody bounds POST /quarantine/approve's body: a plan id.
const maxApproveBody = 4 << 10

func (d *Daemon) serveApprove(w http.ResponseWriter, r *http.Request) {
	if !d.triggerAllowed(w, r, http.MethodPost) {
		return
	}
	id, err := approveID(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, ApproveAnswer{Reason: err.Error()})
		return
	}
	d.mu.Lock()
	q, busy, stopped := d.quarantine, d.current != nil, d.runCtx == nil || d.stopping
	var answer *ApproveAnswer
	status := http.StatusConflict
	switch {
	case q == nil:
		answer = &ApproveAnswer{PlanID: id, Reason: "no plan is quarantined (a run cleared it, or it was applied)"}
	case q.PlanID != id:
		answer = &ApproveAnswer{PlanID: id, Reason: "the quarantined plan is " + q.PlanID + ", not " + id +
			": a later run replaced the plan you approved; review the new one (GET /status) and approve that"}
	case d.opts.ApplySaved == nil:
		status = http.StatusNotImplemented
		answer = &ApproveAnswer{PlanID: id, Reason: "this daemon only plans (--dry-run): fetch GET /quarantine/plan and apply it with groupsync apply FILE"}
	case stopped:
		status = http.StatusServiceUnavailable
		answer = &ApproveAnswer{PlanID: id, Reason: "the daemon is not running or is stopping"}
	case busy:
		w.Header().Set("Retry-After", "10")
		answer = &ApproveAnswer{PlanID: id, Reason: "a run is in progress; approve again when it has ended (its outcome may replace or clear the plan)"}
	}
	var ar *run
	if answer == nil {
		ar = &run{trigger: TriggerApprove, approve: &approval{id: id, plan: q.approvable()}, done: make(chan struct{})}
		d.launch(ar)
	}
	d.mu.Unlock()
	if answer != nil {
		writeJSON(w, status, answer)
		return
	}
	d.log.Info("approving the quarantined plan", zap.String("plan_id", id), zap.String("remote", r.RemoteAddr))
	select {
	case <-ar.done:
	case <-r.Context().Done():
		return // the approval goes on; the caller left
	}
	o := ar.outcome
	res := ApproveAnswer{PlanID: id, Outcome: &o}
	status = http.StatusOK
	var stale *gsync.StalePlanError
	switch {
	case o.Result == metrics.ResultOK:
		res.Applied = true
	case errors.As(ar.err, &stale):
		status, res.Stale, res.Reason = http.StatusConflict, true, stale.Error()
	default:
		status, res.Reason = http.StatusInternalServerError, o.Error
	}
	writeJSON(w, status, res)
}

// approveID reads the plan id from ?plan_id= or a JSON body.
func approveID(r *http.Request) (string, error) {
	id := r.URL.Query().Get("plan_id")
	if id == "" && r.Body != nil {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxApproveBody))
		if err != nil {
			return "", err
		}
		if len(strings.TrimSpace(string(body))) > 0 {
			var req struct {
				PlanID string `json:"plan_id"`
			}
			if err := json.Unmarshal(body, &req); err != nil {
				return "", errors.New(`the body is not {"plan_id": "ID"}: ` + err.Error())
			}
			id = req.PlanID
		}
	}
	id = strings.TrimSpace(id)
	if id == "" {
		return "", errors.New("plan_id is required: the id of the quarantined plan you reviewed (GET /status, groupsync approve)")
	}
	if len(id) > 64 || strings.ContainsFunc(id, func(c rune) bool { return !strings.ContainsRune("0123456789abcdef", c) }) {
		return "", errors.New("plan_id " + strconv.Quote(id) + " is not a plan id: hex digits, as GET /status shows")
	}
	return id, nil
}
