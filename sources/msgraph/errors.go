package msgraph

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
)

// GiveUpError is returned when a request still fails after the retry caps.
type GiveUpError struct {
	Method, Path string
	Attempts     int
	Waited       time.Duration
	Status       int    // last HTTP status; 0 for a transport error
	Code         string // Graph's error code, when there was a body
	Message      string
	Err          error // last transport error
}

func (e *GiveUpError) Error() string {
	last := fmt.Sprintf("HTTP %d", e.Status)
	if e.Code != "" {
		last += " " + e.Code
	}
	if e.Message != "" {
		last += ": " + e.Message
	}
	if e.Err != nil {
		last = e.Err.Error()
	}
	return fmt.Sprintf("Graph %s %s: gave up after %d attempts and %s of waiting (source.msgraph.max_retries, max_retry_wait); last: %s",
		e.Method, e.Path, e.Attempts, e.Waited.Round(time.Millisecond), last)
}

func (e *GiveUpError) Unwrap() error { return e.Err }

// graphError reads Graph's {"error":{"code","message"}} from a buffered body.
func graphError(resp *http.Response) (code, message string) {
	data, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(data))
	return answerError(data)
}

// answerError reads Graph's {"error":{"code","message"}} from a body.
func answerError(body json.RawMessage) (code, message string) {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return e.Error.Code, e.Error.Message
}

// describe turns an SDK error into one that says what to do.
func describe(err error, permission string) error {
	var od *odataerrors.ODataError
	if errors.As(err, &od) {
		code, msg := "", ""
		if e := od.GetErrorEscaped(); e != nil {
			code, msg = deref(e.GetCode()), deref(e.GetMessage())
		}
		status := od.ResponseStatusCode
		return fmt.Errorf("HTTP %d %s: %s%s", status, code, msg, permissionHint(status, permission))
	}
	return err
}

func permissionHint(status int, permission string) string {
	switch status {
	case http.StatusUnauthorized:
		return " (the token was rejected: check source.msgraph.tenant_id, client_id and the credential)"
	case http.StatusForbidden:
		return fmt.Sprintf(" (grant the app the application permission %s, with admin consent)", permission)
	}
	return ""
}

func statusOf(err error) int {
	var od *odataerrors.ODataError
	if errors.As(err, &od) {
		return od.ResponseStatusCode
	}
	return 0
}
