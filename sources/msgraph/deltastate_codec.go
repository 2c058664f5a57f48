package msgraph

// Why a hand-written codec and not encoding/gob or encoding/json (gzip'd,
// as this one is): the state's size. Measured on the largest benchmarked
// tenant (100k users, 10k groups, ~1M memberships; deltastate_codec_bench_test.go):
//
//	go test -run '^$' -bench StateCodec -benchmem -benchtime 3x ./sources/msgraph/
//
//	                       bytes    1 MiB objects  encode  decode  decode allocs
//	hand-written           3.9 MB   4              2.3 s   0.25 s    352k
//	gob + gzip             24.6 MB  25             2.6 s   0.73 s   1.52M
//	json + gzip            25.0 MB  26             2.6 s   1.2 s    1.67M
//	gob of this model      5.2 MB   6              1.4 s   0.39 s    476k
//	  (id table, gaps)
//
// (2 shared cores under load: times are rough, sizes exact. This codec
// gzips at best compression, the others at the default level: best
// compression changes their sizes by under 0.5% and costs them time.)
// Plain gob and JSON spell every GUID out at every membership: six times
// the bytes, past the eight objects docs/entra.md's Role names for the
// state. gob of the same interned model fits, but only by keeping this
// codec's design (an id table, member lists as gaps), with 1.3x the bytes
// (less headroom under those eight objects), 1.5x the decode time, its own
// bounds checks for damaged input, and a format change that would send
// every installation through one full read.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/groupsync/groupsync/internal/keys"
)

// Layout: "GSDS", a version byte, then a gzip stream of sections, each a
// uvarint length and its bytes. Ids are interned: one sorted table, GUIDs
// as 16 bytes front-coded against the previous one, other ids as strings;
// member lists are ascending table indexes, delta-encoded as uvarints.
// Strings of one kind (names, UPNs, mails) sit together so gzip finds their
// repetitions.

const (
	stateMagic   = "GSDS"
	stateVersion = 1
)

type sectionWriter struct {
	bytes.Buffer
	scratch [binary.MaxVarintLen64]byte // a varint is built here, not in a new slice each
}

func (w *sectionWriter) uvarint(v uint64) { w.Buffer.Write(binary.AppendUvarint(w.scratch[:0], v)) }
func (w *sectionWriter) varint(v int64)   { w.Buffer.Write(binary.AppendVarint(w.scratch[:0], v)) }
func (w *sectionWriter) str(s string)     { w.uvarint(uint64(len(s))); w.Buffer.WriteString(s) }

// gap writes an ascending list's next position as its distance from the
// one before (*last, 0 at the list's start), and remembers it.
func (w *sectionWriter) gap(last *uint64, ix uint64) {
	w.uvarint(ix - *last)
	*last = ix
}

// guidBytes parses a lower-case GUID, as Entra ids are written.
func guidBytes(s string) ([16]byte, bool) {
	var b [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return b, false
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	if strings.ToLower(h) != h {
		return b, false
	}
	if _, err := hex.Decode(b[:], []byte(h)); err != nil {
		return b, false
	}
	return b, true
}

func guidString(b []byte) string {
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// encode serializes and compresses the state.
func (st *deltaState) encode() ([]byte, error) {
	// The id table. One map collects the ids and then gives their
	// positions (a second map of a hundred thousand ids was 4 MB more).
	index := make(map[string]uint64, len(st.groups)+len(st.users))
	add := func(id string) { index[id] = 0 }
	kindSet, attrSet := map[string]struct{}{}, map[string]struct{}{}
	for id, g := range st.groups {
		add(id)
		for _, m := range g.users {
			add(st.ids.at(m))
		}
		for _, m := range g.groups {
			add(m)
		}
		for _, o := range g.others {
			add(o.id)
			kindSet[o.kind] = struct{}{}
		}
	}
	for id, u := range st.users {
		add(id)
		for a := range u.attrs {
			attrSet[a] = struct{}{}
		}
	}
	ids := keys.Sorted(index)
	for i, id := range ids {
		index[id] = uint64(i)
	}
	kinds, attrs := slices.Sorted(maps.Keys(kindSet)), slices.Sorted(maps.Keys(attrSet))
	kindIx, attrIx := map[string]uint64{}, map[string]uint64{}
	for i, k := range kinds {
		kindIx[k] = uint64(i)
	}
	for i, a := range attrs {
		attrIx[a] = uint64(i)
	}

	gids, uids := keys.Sorted(st.groups), keys.Sorted(st.users)
	// positions writes the ascending table positions of ids (sorted), as
	// gaps.
	positions := func(w *sectionWriter, ids []string, each func(id string)) {
		last := uint64(0)
		for _, id := range ids {
			w.gap(&last, index[id])
			if each != nil {
				each(id)
			}
		}
	}
	ascending := func(w *sectionWriter, list []string) {
		w.uvarint(uint64(len(list)))
		positions(w, list, nil)
	}
	// A group's users, as positions in the written table: the state's
	// table has its own order (ids appended since it was read come last).
	var scratch []uint64
	userPositions := func(w *sectionWriter, users []int32) {
		scratch = scratch[:0]
		for _, u := range users {
			scratch = append(scratch, index[st.ids.at(u)])
		}
		slices.Sort(scratch)
		w.uvarint(uint64(len(scratch)))
		last := uint64(0)
		for _, ix := range scratch {
			w.gap(&last, ix)
		}
	}
	// The sections, in order; each is written into one buffer and on into
	// the compressor before the next, so that only one section (not all
	// twelve, ~10 MB at a 100k-user tenant) is held at a time.
	sections := [12]func(w *sectionWriter){
		func(hdr *sectionWriter) {
			hdr.str(st.fingerprint)
			hdr.str(st.groupsLink)
			hdr.str(st.usersLink)
			hdr.varint(st.fullAt.UnixNano())
			hdr.varint(st.linkAt.UnixNano())
			if st.usersTracked {
				hdr.WriteByte(1)
			} else {
				hdr.WriteByte(0)
			}
		},
		func(tables *sectionWriter) {
			tables.uvarint(uint64(len(kinds)))
			for _, k := range kinds {
				tables.str(k)
			}
			tables.uvarint(uint64(len(attrs)))
			for _, a := range attrs {
				tables.str(a)
			}
		},
		func(idKinds *sectionWriter) {
			idKinds.uvarint(uint64(len(ids)))
			for _, id := range ids {
				if _, ok := guidBytes(id); ok {
					idKinds.WriteByte(0)
				} else {
					idKinds.WriteByte(1)
				}
			}
		},
		func(guids *sectionWriter) {
			var prev [16]byte
			for _, id := range ids {
				if b, ok := guidBytes(id); ok {
					p := 0
					for p < 16 && b[p] == prev[p] {
						p++
					}
					guids.WriteByte(byte(p))
					guids.Write(b[p:])
					prev = b
				}
			}
		},
		func(strs *sectionWriter) {
			for _, id := range ids {
				if _, ok := guidBytes(id); !ok {
					strs.str(id)
				}
			}
		},
		func(gmeta *sectionWriter) {
			gmeta.uvarint(uint64(len(gids)))
			positions(gmeta, gids, func(id string) { gmeta.WriteByte(byte(st.groups[id].flags)) })
		},
		func(gnames *sectionWriter) {
			for _, id := range gids {
				gnames.str(st.groups[id].name)
			}
		},
		func(gmembers *sectionWriter) {
			for _, id := range gids {
				g := st.groups[id]
				if g.flags&gComplete == 0 {
					continue
				}
				userPositions(gmembers, g.users)
				ascending(gmembers, g.groups)
				gmembers.uvarint(uint64(len(g.others)))
				last := uint64(0)
				for _, o := range g.others {
					gmembers.gap(&last, index[o.id])
					gmembers.uvarint(kindIx[o.kind])
				}
			}
		},
		func(umeta *sectionWriter) {
			umeta.uvarint(uint64(len(uids)))
			positions(umeta, uids, func(id string) { umeta.WriteByte(byte(userFlagsOut(st.users[id]))) })
		},
		func(upns *sectionWriter) {
			for _, id := range uids {
				upns.str(st.users[id].upn)
			}
		},
		func(mails *sectionWriter) {
			for _, id := range uids {
				if u := st.users[id]; userFlagsOut(u)&uMailIsUPN == 0 {
					mails.str(u.mail)
				}
			}
		},
		func(uattrs *sectionWriter) {
			for _, id := range uids {
				u := st.users[id]
				uattrs.uvarint(uint64(len(u.attrs)))
				for _, a := range slices.Sorted(maps.Keys(u.attrs)) {
					uattrs.uvarint(attrIx[a])
					uattrs.str(u.attrs[a])
				}
			}
		},
	}

	var out bytes.Buffer
	out.WriteString(stateMagic)
	out.WriteByte(stateVersion)
	// The default level: at a 100k-user tenant the best one made the state
	// 0.9% smaller and took 2.6 times as long (2.0 s against 0.78 s, a
	// no-change run's largest cost).
	zw, _ := gzip.NewWriterLevel(&out, gzip.DefaultCompression)
	var w sectionWriter
	for _, write := range sections {
		w.Reset()
		write(&w)
		if _, err := zw.Write(binary.AppendUvarint(nil, uint64(w.Len()))); err != nil {
			return nil, err
		}
		if _, err := zw.Write(w.Bytes()); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// userFlagsOut is a user's flags as encoded: uMailIsUPN when its mail is
// its UPN (the mail is then not written).
func userFlagsOut(u *userRec) userFlags {
	f := u.flags &^ uMailIsUPN
	if u.mail == u.upn {
		f |= uMailIsUPN
	}
	return f
}

// sectionReader reads a section; the first error sticks.
type sectionReader struct {
	b   []byte
	err error
}

var errTruncated = errors.New("truncated")

func (r *sectionReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *sectionReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(errTruncated)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *sectionReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(errTruncated)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *sectionReader) bytes(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail(errTruncated)
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *sectionReader) byte() byte {
	b := r.bytes(1)
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

func (r *sectionReader) str() string { return string(r.bytes(r.uvarint())) }

// count reads a length that must fit in what is left (each item takes at
// least min bytes), so a corrupt count cannot allocate without bound.
func (r *sectionReader) count(min int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)/max(min, 1)+1) {
		r.fail(fmt.Errorf("count %d exceeds the data", n))
		return 0
	}
	return int(n)
}

// maxStateBytes bounds the decompressed state (a 100k-user tenant is ~20 MB).
const maxStateBytes = 1 << 30

// decodeState reads what encode wrote; any damage is an error.
func decodeState(data []byte) (*deltaState, error) {
	if len(data) < len(stateMagic)+1 || string(data[:len(stateMagic)]) != stateMagic {
		return nil, errors.New("not a groupsync delta state")
	}
	if v := data[len(stateMagic)]; v != stateVersion {
		return nil, fmt.Errorf("state format version %d; this groupsync reads version %d", v, stateVersion)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data[len(stateMagic)+1:]))
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(io.LimitReader(bufio.NewReader(zr), maxStateBytes))
	if err != nil {
		return nil, err
	}
	all := &sectionReader{b: raw}
	var sec [12]*sectionReader
	for i := range sec {
		sec[i] = &sectionReader{b: all.bytes(all.uvarint())}
	}
	if all.err != nil {
		return nil, all.err
	}
	st := &deltaState{groups: map[string]*groupRec{}, users: map[string]*userRec{}}
	hdr := sec[0]
	st.fingerprint, st.groupsLink, st.usersLink = hdr.str(), hdr.str(), hdr.str()
	st.fullAt, st.linkAt = time.Unix(0, hdr.varint()), time.Unix(0, hdr.varint())
	st.usersTracked = hdr.byte() == 1

	tables := sec[1]
	kinds := make([]string, tables.count(1))
	for i := range kinds {
		kinds[i] = tables.str()
	}
	attrs := make([]string, tables.count(1))
	for i := range attrs {
		attrs[i] = tables.str()
	}
	idKinds, guids, strs := sec[2], sec[3], sec[4]
	ids := make([]string, idKinds.count(1))
	var prev [16]byte
	for i := range ids {
		if idKinds.byte() == 0 {
			p := int(guids.byte())
			if p > 16 {
				guids.fail(errors.New("bad id prefix"))
				break
			}
			copy(prev[p:], guids.bytes(uint64(16-p)))
			ids[i] = guidString(prev[:])
		} else {
			ids[i] = strs.str()
		}
		// encode writes the table sorted and without duplicates; member
		// lists index it in ascending order, so a table out of order would
		// give members twice or unsorted.
		if i > 0 && ids[i] <= ids[i-1] && idKinds.err == nil && guids.err == nil && strs.err == nil {
			idKinds.fail(errors.New("id table not ascending"))
			break
		}
	}
	st.ids = idTable{ids: ids, sorted: len(ids)}
	id := func(r *sectionReader, ix uint64) string {
		if ix >= uint64(len(ids)) {
			r.fail(fmt.Errorf("id index %d out of range", ix))
			return ""
		}
		return ids[ix]
	}
	// positions reads an ascending list of table positions.
	positions := func(r *sectionReader) []int32 {
		n := r.count(1)
		if n == 0 {
			return nil
		}
		out := make([]int32, n)
		ix := uint64(0)
		for i := range out {
			d := r.uvarint()
			if i > 0 && d == 0 {
				r.fail(errors.New("member list not ascending"))
			}
			ix += d
			if ix >= uint64(len(ids)) {
				r.fail(fmt.Errorf("id index %d out of range", ix))
				return nil
			}
			out[i] = int32(ix)
		}
		return out
	}
	ascending := func(r *sectionReader) []string {
		ps := positions(r)
		if ps == nil {
			return nil
		}
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = ids[p]
		}
		return out
	}
	gmeta, gnames, gmembers := sec[5], sec[6], sec[7]
	n := gmeta.count(2)
	ix := uint64(0)
	for i := range n {
		d := gmeta.uvarint()
		if i > 0 && d == 0 {
			gmeta.fail(errors.New("groups not ascending"))
		}
		ix += d
		g := &groupRec{flags: groupFlags(gmeta.byte()), name: gnames.str()}
		if g.flags&gComplete != 0 {
			// The users index the table as read: it is the state's.
			g.users, g.groups = positions(gmembers), ascending(gmembers)
			if no := gmembers.count(2); no > 0 {
				g.others = make([]otherRef, no)
				oi := uint64(0)
				for j := range g.others {
					oi += gmembers.uvarint()
					k := gmembers.uvarint()
					if k >= uint64(len(kinds)) {
						gmembers.fail(errors.New("member kind out of range"))
						break
					}
					g.others[j] = otherRef{id: id(gmembers, oi), kind: kinds[k]}
				}
			}
		}
		st.groups[id(gmeta, ix)] = g
	}
	umeta, upns, mails, uattrs := sec[8], sec[9], sec[10], sec[11]
	n = umeta.count(2)
	ix = 0
	for i := range n {
		d := umeta.uvarint()
		if i > 0 && d == 0 {
			umeta.fail(errors.New("users not ascending"))
		}
		ix += d
		f := userFlags(umeta.byte())
		u := &userRec{flags: f &^ uMailIsUPN, upn: upns.str()}
		if f&uMailIsUPN != 0 {
			u.mail = u.upn
		} else {
			u.mail = mails.str()
		}
		if na := uattrs.count(2); na > 0 {
			u.attrs = make(map[string]string, na)
			for range na {
				a := uattrs.uvarint()
				if a >= uint64(len(attrs)) {
					uattrs.fail(errors.New("attribute out of range"))
					break
				}
				u.attrs[attrs[a]] = uattrs.str()
			}
		}
		st.users[id(umeta, ix)] = u
	}
	for i, r := range sec {
		if r.err != nil {
			return nil, fmt.Errorf("section %d: %w", i, r.err)
		}
	}
	return st, nil
}
