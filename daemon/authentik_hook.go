package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	gsync "github.com/groupsync/groupsync/sync"
)

// POST /webhooks/authentik takes what authentik can send without code of
// ours on its side:
//
//   - its webhook notification transport's default body:
//     {"body": ..., "severity": ..., "user_email", "user_username" (the
//     notification's recipient), "event_user_email", "event_user_username"
//     (who caused the event)}: the event's user is synced, else the
//     recipient's;
//   - a webhook body mapping's or an expression policy's small object:
//     {"username": "<u>"}, {"email": "<m>"}, {"user": "<u>"} or
//     {"user": {"username": ..., "email": ...}}, and {"group": "<name>"}
//     for a group (its whole membership is read again).
//
// authentik signs nothing: the bearer token, sent through the transport's
// headers mapping, is the only authentication.
//
// Users are named by username (or by email): the run finds them by the
// mapping's user key, so mapping.user.key must be username (or upn), or
// mail with an email in the payload. With key id the payload cannot name
// the user; the request is refused (422) rather than queue a run that
// finds no one: POST /sync/user/{key} with the key itself instead.

// authentikExpected is what a 400 says was expected.
const authentikExpected = `expected a JSON object with "username", "email", "user" or "group", ` +
	`or authentik's notification body with "event_user_username" or "user_username"`

// errMappingKey is a payload that names its user by something the
// mapping's user key is not: the config, not the request, has to change.
type errMappingKey struct{ msg string }

func (e *errMappingKey) Error() string { return e.msg }

func (d *Daemon) serveAuthentik(w http.ResponseWriter, r *http.Request) {
	if !d.hookAllowed(w, r) {
		return
	}
	body, err := io.ReadAll(r.Body) // bounded by hookAllowed
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			d.badEvent(w, r, OriginAuthentik, http.StatusRequestEntityTooLarge, fmt.Errorf("the body is larger than %d bytes", maxEventBody))
			return
		}
		d.badEvent(w, r, OriginAuthentik, http.StatusBadRequest, fmt.Errorf("reading the body: %v", err))
		return
	}
	userKey := d.Config().Mapping.User.Key
	s, err := parseAuthentik(body, userKey)
	if err != nil {
		status := http.StatusBadRequest
		var mk *errMappingKey
		if errors.As(err, &mk) {
			status = http.StatusUnprocessableEntity
		}
		d.badEvent(w, r, OriginAuthentik, status, err)
		return
	}
	d.queueEvent(w, r, Event{Kind: EventSlice, Slice: s, Origin: OriginAuthentik, Received: time.Now()})
}

// authentikIdentity is a username and an email from one part of a payload.
type authentikIdentity struct{ username, email string }

func (a authentikIdentity) empty() bool { return a.username == "" && a.email == "" }

// parseAuthentik reads the user and group an authentik payload names, the
// user by the mapping's user key (userKey; "" is the default, id).
func parseAuthentik(body []byte, userKey string) (gsync.Slice, error) {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return gsync.Slice{}, fmt.Errorf("the body is not a JSON object; %s", authentikExpected)
	}
	if dec.More() {
		return gsync.Slice{}, fmt.Errorf("the body holds more than one JSON value; %s", authentikExpected)
	}
	str := func(name string) (string, error) {
		raw, ok := fields[name]
		if !ok || string(raw) == "null" {
			return "", nil
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return "", fmt.Errorf("%q is not a string", name)
		}
		return v, nil
	}
	var ids []authentikIdentity // in order of preference
	add := func(userField, emailField string) error {
		u, err := str(userField)
		if err != nil {
			return err
		}
		m, err := str(emailField)
		if err != nil {
			return err
		}
		ids = append(ids, authentikIdentity{u, m})
		return nil
	}
	if err := add("username", "email"); err != nil {
		return gsync.Slice{}, err
	}
	if raw, ok := fields["user"]; ok && string(raw) != "null" {
		var id authentikIdentity
		var obj struct {
			Username *string `json:"username"`
			Email    *string `json:"email"`
		}
		if err := json.Unmarshal(raw, &id.username); err != nil {
			if err := json.Unmarshal(raw, &obj); err != nil {
				return gsync.Slice{}, errors.New(`"user" is neither a username nor an object with "username" or "email"`)
			}
			if obj.Username != nil {
				id.username = *obj.Username
			}
			if obj.Email != nil {
				id.email = *obj.Email
			}
		}
		ids = append(ids, id)
	}
	if err := add("event_user_username", "event_user_email"); err != nil {
		return gsync.Slice{}, err
	}
	if err := add("user_username", "user_email"); err != nil {
		return gsync.Slice{}, err
	}
	group, err := str("group")
	if err != nil {
		return gsync.Slice{}, err
	}

	var s gsync.Slice
	if group != "" {
		if err := checkKey("group", group); err != nil {
			return gsync.Slice{}, err
		}
		s.Groups = []string{group}
	}
	var id authentikIdentity
	for _, c := range ids {
		if !c.empty() {
			id = c
			break
		}
	}
	if id.empty() {
		if s.Empty() {
			return gsync.Slice{}, fmt.Errorf("the body names no user or group; %s", authentikExpected)
		}
		return s, nil
	}
	key, err := authentikUserKey(id, userKey)
	if err != nil {
		return gsync.Slice{}, err
	}
	if err := checkKey("user", key); err != nil {
		return gsync.Slice{}, err
	}
	s.Users = []string{key}
	return s, nil
}

// authentikUserKey picks the value of id that the mapping's user key
// holds.
func authentikUserKey(id authentikIdentity, userKey string) (string, error) {
	switch strings.ToLower(userKey) {
	case "username", "upn":
		if id.username == "" {
			return "", &errMappingKey{fmt.Sprintf("mapping.user.key is %s, and the payload gives an email but no username: send {\"username\": ...}", userKey)}
		}
		return id.username, nil
	case "mail":
		if id.email == "" {
			return "", &errMappingKey{"mapping.user.key is mail, and the payload gives no email: send {\"email\": ...} " +
				"(or map the notification's event_user_email)"}
		}
		return id.email, nil
	}
	if userKey == "" {
		userKey = "id"
	}
	return "", &errMappingKey{fmt.Sprintf("mapping.user.key is %s, and an authentik payload names users by username or email: "+
		"set mapping.user.key to username or mail, or POST /sync/user/{key} with the user's %s", userKey, userKey)}
}
