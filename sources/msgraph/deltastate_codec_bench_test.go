package msgraph

import (
	"bytes"
	"compress/gzip"
	"encoding/gob"
	"encoding/json"
	"io"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/groupsync/groupsync/sources/msgraph/graphtest"
)

// The standard encodings the hand-written codec was measured against (see
// the first comment of deltastate_codec.go). They need exported types, so
// the state is copied into stateDoc first; the copy is part of the cost.

type stateDoc struct {
	Fingerprint, GroupsLink, UsersLink string
	UsersTracked                       bool
	FullAt, LinkAt                     time.Time
	Groups                             map[string]groupDoc
	Users                              map[string]userDoc
}

type groupDoc struct {
	Name          string
	Flags         uint8
	Users, Groups []string
	Others        [][2]string // id, kind
}

type userDoc struct {
	UPN, Mail string
	Flags     uint8
	Attrs     map[string]string
}

func docOf(st *deltaState) stateDoc {
	d := stateDoc{Fingerprint: st.fingerprint, GroupsLink: st.groupsLink, UsersLink: st.usersLink, UsersTracked: st.usersTracked,
		FullAt: st.fullAt, LinkAt: st.linkAt, Groups: make(map[string]groupDoc, len(st.groups)), Users: make(map[string]userDoc, len(st.users))}
	for id, g := range st.groups {
		gd := groupDoc{Name: g.name, Flags: uint8(g.flags), Users: st.memberIDs(g), Groups: g.groups}
		for _, o := range g.others {
			gd.Others = append(gd.Others, [2]string{o.id, o.kind})
		}
		d.Groups[id] = gd
	}
	for id, u := range st.users {
		d.Users[id] = userDoc{UPN: u.upn, Mail: u.mail, Flags: uint8(u.flags), Attrs: u.attrs}
	}
	return d
}

func (d stateDoc) state() *deltaState {
	st := &deltaState{fingerprint: d.Fingerprint, groupsLink: d.GroupsLink, usersLink: d.UsersLink, usersTracked: d.UsersTracked,
		fullAt: d.FullAt, linkAt: d.LinkAt, groups: make(map[string]*groupRec, len(d.Groups)), users: make(map[string]*userRec, len(d.Users))}
	for id, g := range d.Groups {
		rec := &groupRec{name: g.Name, flags: groupFlags(g.Flags), users: st.ids.internAll(g.Users), groups: g.Groups}
		for _, o := range g.Others {
			rec.others = append(rec.others, otherRef{id: o[0], kind: o[1]})
		}
		st.groups[id] = rec
	}
	for id, u := range d.Users {
		st.users[id] = &userRec{upn: u.UPN, mail: u.Mail, flags: userFlags(u.Flags), attrs: u.Attrs}
	}
	return st
}

// internedDoc is the hand-written codec's model (an id table, member lists
// as gaps between table indexes) with gob doing the bytes: what is left of
// gob's convenience once the size is brought down.
type internedDoc struct {
	Fingerprint, GroupsLink, UsersLink string
	UsersTracked                       bool
	FullAt, LinkAt                     time.Time
	IDs, Kinds                         []string
	Groups                             []internedGroup
	Users                              []internedUser
}

type internedGroup struct {
	ID            uint32
	Name          string
	Flags         uint8
	Users, Groups []uint32 // gaps
	Others        [][2]uint32
}

type internedUser struct {
	ID        uint32
	UPN, Mail string
	Flags     uint8
	Attrs     map[string]string
}

func internedOf(st *deltaState) internedDoc {
	d := internedDoc{Fingerprint: st.fingerprint, GroupsLink: st.groupsLink, UsersLink: st.usersLink, UsersTracked: st.usersTracked,
		FullAt: st.fullAt, LinkAt: st.linkAt}
	seen, kinds := map[string]bool{}, map[string]bool{}
	for id, g := range st.groups {
		seen[id] = true
		for _, m := range st.memberIDs(g) {
			seen[m] = true
		}
		for _, m := range g.groups {
			seen[m] = true
		}
		for _, o := range g.others {
			seen[o.id], kinds[o.kind] = true, true
		}
	}
	for id := range st.users {
		seen[id] = true
	}
	d.IDs, d.Kinds = slices.Sorted(maps.Keys(seen)), slices.Sorted(maps.Keys(kinds))
	ix := make(map[string]uint32, len(d.IDs))
	for i, id := range d.IDs {
		ix[id] = uint32(i)
	}
	kx := map[string]uint32{}
	for i, k := range d.Kinds {
		kx[k] = uint32(i)
	}
	gaps := func(list []string) []uint32 {
		out := make([]uint32, len(list))
		last := uint32(0)
		for i, m := range list {
			out[i] = ix[m] - last
			last = ix[m]
		}
		return out
	}
	for _, id := range slices.Sorted(maps.Keys(st.groups)) {
		g := st.groups[id]
		ig := internedGroup{ID: ix[id], Name: g.name, Flags: uint8(g.flags), Users: gaps(slices.Sorted(slices.Values(st.memberIDs(g)))), Groups: gaps(g.groups)}
		for _, o := range g.others {
			ig.Others = append(ig.Others, [2]uint32{ix[o.id], kx[o.kind]})
		}
		d.Groups = append(d.Groups, ig)
	}
	for _, id := range slices.Sorted(maps.Keys(st.users)) {
		u := st.users[id]
		d.Users = append(d.Users, internedUser{ID: ix[id], UPN: u.upn, Mail: u.mail, Flags: uint8(u.flags), Attrs: u.attrs})
	}
	return d
}

func (d internedDoc) state() *deltaState {
	st := &deltaState{fingerprint: d.Fingerprint, groupsLink: d.GroupsLink, usersLink: d.UsersLink, usersTracked: d.UsersTracked,
		fullAt: d.FullAt, linkAt: d.LinkAt, groups: make(map[string]*groupRec, len(d.Groups)), users: make(map[string]*userRec, len(d.Users))}
	ids := func(gaps []uint32) []string {
		if len(gaps) == 0 {
			return nil
		}
		out := make([]string, len(gaps))
		at := uint32(0)
		for i, g := range gaps {
			at += g
			out[i] = d.IDs[at]
		}
		return out
	}
	for _, g := range d.Groups {
		rec := &groupRec{name: g.Name, flags: groupFlags(g.Flags), users: st.ids.internAll(ids(g.Users)), groups: ids(g.Groups)}
		for _, o := range g.Others {
			rec.others = append(rec.others, otherRef{id: d.IDs[o[0]], kind: d.Kinds[o[1]]})
		}
		st.groups[d.IDs[g.ID]] = rec
	}
	for _, u := range d.Users {
		st.users[d.IDs[u.ID]] = &userRec{upn: u.UPN, mail: u.Mail, flags: userFlags(u.Flags), attrs: u.Attrs}
	}
	return st
}

type stdCodec struct {
	name     string
	interned bool // gob of internedDoc; encode and decode are unused
	encode   func(io.Writer, stateDoc) error
	decode   func(io.Reader) (stateDoc, error)
}

var stdCodecs = []stdCodec{
	{name: "gob+gzip",
		encode: func(w io.Writer, d stateDoc) error { return gob.NewEncoder(w).Encode(d) },
		decode: func(r io.Reader) (d stateDoc, err error) { return d, gob.NewDecoder(r).Decode(&d) }},
	{name: "json+gzip",
		encode: func(w io.Writer, d stateDoc) error { return json.NewEncoder(w).Encode(d) },
		decode: func(r io.Reader) (d stateDoc, err error) { return d, json.NewDecoder(r).Decode(&d) }},
	{name: "gob-interned+gzip", interned: true},
}

func (c stdCodec) encodeState(st *deltaState, level int) ([]byte, error) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, level)
	if c.interned {
		if err := gob.NewEncoder(zw).Encode(internedOf(st)); err != nil {
			return nil, err
		}
	} else if err := c.encode(zw, docOf(st)); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (c stdCodec) decodeState(data []byte) (*deltaState, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	if c.interned {
		var d internedDoc
		if err := gob.NewDecoder(zr).Decode(&d); err != nil {
			return nil, err
		}
		return d.state(), nil
	}
	d, err := c.decode(zr)
	if err != nil {
		return nil, err
	}
	return d.state(), nil
}

var largeState = sync.OnceValue(func() *deltaState { return stateFromTenant(largeTenant()) })

// BenchmarkStateCodec compares the hand-written codec with gob and JSON
// (gzip'd as it is) on the largest tenant's state:
//
//	go test -run '^$' -bench StateCodec -benchmem -benchtime 5x ./sources/msgraph/
func BenchmarkStateCodec(b *testing.B) {
	st := largeState()
	report := func(b *testing.B, n int) {
		b.ReportMetric(float64(n), "state-bytes")
		b.ReportMetric(float64(objectsFor(n)), "objects")
	}
	b.Run("handwritten/encode", func(b *testing.B) {
		var data []byte
		for b.Loop() {
			data, _ = st.encode()
		}
		report(b, len(data))
	})
	b.Run("handwritten/decode", func(b *testing.B) {
		data, _ := st.encode()
		for b.Loop() {
			if _, err := decodeState(data); err != nil {
				b.Fatal(err)
			}
		}
		report(b, len(data))
	})
	for _, c := range stdCodecs {
		for _, lv := range []struct {
			name  string
			level int
		}{{"best", gzip.BestCompression}, {"default", gzip.DefaultCompression}} {
			b.Run(c.name+"-"+lv.name+"/encode", func(b *testing.B) {
				var data []byte
				for b.Loop() {
					var err error
					if data, err = c.encodeState(st, lv.level); err != nil {
						b.Fatal(err)
					}
				}
				report(b, len(data))
			})
			b.Run(c.name+"-"+lv.name+"/decode", func(b *testing.B) {
				data, err := c.encodeState(st, lv.level)
				if err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					if _, err := c.decodeState(data); err != nil {
						b.Fatal(err)
					}
				}
				report(b, len(data))
			})
		}
	}
}

// The measured encodings keep the state, so the numbers compare like with
// like.
func TestStandardStateCodecsRoundTrip(t *testing.T) {
	tn := graphtest.Generate(graphtest.GenOptions{Seed: 5, Users: 200, Groups: 40, MaxDepth: 2, Devices: 5})
	st := stateFromTenant(tn)
	for _, c := range stdCodecs {
		data, err := c.encodeState(st, gzip.DefaultCompression)
		if err != nil {
			t.Fatal(err)
		}
		back, err := c.decodeState(data)
		if err != nil || !sameState(back, st) {
			t.Fatalf("%s: round trip: %v", c.name, err)
		}
	}
}
