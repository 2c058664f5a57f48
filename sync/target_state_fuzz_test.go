package sync

import (
	"bytes"
	"compress/gzip"
	"reflect"
	"testing"
	"time"
)

// A damaged incremental state never panics and is never used in part:
// decoding it either fails (and the run reads OpenFGA in full) or gives a
// state whose every index names a user and which encodes back to itself.
func FuzzTargetStateDecode(f *testing.F) {
	st := &targetState{Version: targetStateVersion, Fingerprint: "store/model|group#member@user|inc", FullAt: time.Unix(1700000000, 0).UTC(),
		Owned: []string{"group:a", "group:b"}, Positions: map[string]ChangePosition{"group": {Token: "dG9r"}, registryPosition: {Since: time.Unix(1700000000, 0).UTC()}}}
	ms := MembershipsOf([]Tuple{
		{User: "user:x", Relation: "member", Object: "group:a"}, {User: "user:y", Relation: "member", Object: "group:a"},
		{User: "group:a#member", Relation: "member", Object: "group:b"},
	})
	st.keepGroups(ms.groups())
	good, err := encodeTargetState(st)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("not a state"))
	raw := func(json string) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(json))
		zw.Close()
		return b.Bytes()
	}
	f.Add(raw(`{"version":3,"users":["user:x"],"groups":{"group:a":"Bw=="}}`))
	f.Add(raw(`{"version":3,"groups":{"group:a":"AA=="},"extra":1}`))
	f.Add(raw(`{"version":1,"groups":{"group:a":12345}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := decodeTargetState(data)
		if err != nil {
			return
		}
		for obj, users := range s.Groups {
			users.each(func(u uint32) bool {
				if int(u) >= len(s.Users) {
					t.Fatalf("group %s names user %d of %d", obj, u, len(s.Users))
				}
				return true
			})
		}
		again, err := encodeTargetState(s)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeTargetState(again)
		if err != nil {
			t.Fatalf("a decoded state does not decode once encoded again: %v", err)
		}
		if !reflect.DeepEqual(s, back) {
			t.Fatalf("a decoded state changes when encoded again:\n%+v\n%+v", s, back)
		}
	})
}

// The streamed encoding is JSON that encoding/json reads back to the same
// state, and the same state encodes the same bytes.
func TestTargetStateEncodingRoundTrips(t *testing.T) {
	st := &targetState{Version: targetStateVersion, Fingerprint: "s/m|group#member@user|\"quoted\"", FullAt: time.Unix(1700000000, 5).UTC(),
		Owned: []string{"group:a"}, Positions: map[string]ChangePosition{"group": {Token: "dG9r"}}, FullNext: "because"}
	ms := MembershipsOf([]Tuple{
		{User: "user:x", Relation: "member", Object: "group:b"}, {User: "user:y", Relation: "member", Object: "group:b"},
		{User: "group:b#member", Relation: "member", Object: "group:a"},
	})
	st.keepGroups(ms.groups())
	data, err := encodeTargetState(st)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeTargetState(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, st) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", back, st)
	}
	again, _ := encodeTargetState(back)
	if !bytes.Equal(again, data) {
		t.Fatal("the same state encoded to other bytes")
	}
	empty := &targetState{Version: targetStateVersion, Groups: map[string]userList{}}
	if data, err = encodeTargetState(empty); err == nil {
		_, err = decodeTargetState(data)
	}
	if err != nil {
		t.Fatalf("empty state: %v", err)
	}
}
