package graphtest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"
)

// jsonContentType is what Graph sends with every JSON answer.
const jsonContentType = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"

// Objects are appended to a byte slice by hand: pages of 999 users are
// written without reflection or intermediate maps.

func appendString(b []byte, s string) []byte {
	if !utf8.ValidString(s) {
		q, _ := json.Marshal(s)
		return append(b, q...)
	}
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			const hex = "0123456789abcdef"
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendKey(b []byte, first bool, key string) []byte {
	if !first {
		b = append(b, ',')
	}
	b = appendString(b, key)
	return append(b, ':')
}

// appendProp writes "name":value for one property of object o.
func appendProp(b []byte, ix *index, o int32, p *prop, first bool) []byte {
	b = appendKey(b, first, p.name)
	switch {
	case p.str != nil:
		if v, ok := p.str(ix, o); ok {
			return appendString(b, v)
		}
	case p.boolean != nil:
		return strconv.AppendBool(b, p.boolean(ix, o))
	case p.strs != nil, p.typ == pStrings:
		b = append(b, '[')
		if p.strs != nil {
			for i, s := range p.strs(ix, o) {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendString(b, s)
			}
		}
		return append(b, ']')
	}
	return append(b, "null"...)
}

// appendObject writes one directory object with the projected properties.
// withType adds "@odata.type", as Graph does in directoryObject collections;
// limited writes only the type and id, as Graph does for a member whose type
// the app has no permission to read.
func appendObject(b []byte, ix *index, o int32, proj *[numKinds][]*prop, withType, limited bool) []byte {
	k := ix.kind(o)
	b = append(b, '{')
	first := true
	if withType || limited {
		b = appendKey(b, true, "@odata.type")
		b = appendString(b, odataTypes[k])
		first = false
	}
	if limited {
		b = appendKey(b, false, "id")
		b = appendString(b, ix.id(o))
		return append(b, '}')
	}
	for _, p := range proj[k] {
		b = appendProp(b, ix, o, p, first)
		first = false
	}
	return append(b, '}')
}

// appendError writes Graph's error document. Code and message are always
// set: the SDK's ODataError.Error() panics on an error without a message.
func appendError(b []byte, r *http.Request, e *graphError, requestID string, now time.Time) []byte {
	b = append(b, `{"error":{"code":`...)
	b = appendString(b, e.code)
	b = append(b, `,"message":`...)
	b = appendString(b, e.message)
	b = append(b, `,"innerError":{"date":`...)
	b = appendString(b, now.UTC().Format("2006-01-02T15:04:05"))
	b = append(b, `,"request-id":`...)
	b = appendString(b, requestID)
	b = append(b, `,"client-request-id":`...)
	b = appendString(b, clientRequestID(r, requestID))
	return append(b, "}}}"...)
}

func clientRequestID(r *http.Request, requestID string) string {
	if id := r.Header.Get("client-request-id"); id != "" {
		return id
	}
	return requestID
}
