package sync

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
)

// renderJSON writes the report as indented JSON, its changes one group at
// a time: encoding a first sync's million changes as one value would hold
// the whole document in memory, twice while its buffer grows. The bytes
// are those of encoding the report whole.
func (r *Report) renderJSON(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	head := *r
	head.Changes = nil
	if err := enc.Encode(&head); err != nil {
		return err
	}
	doc := buf.Bytes()
	const marker = "\n  \"changes\": null"
	at := bytes.Index(doc, []byte(marker))
	if at < 0 || r.Changes == nil {
		if r.Changes != nil {
			buf.Reset()
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		_, err := w.Write(buf.Bytes())
		return err
	}
	bw.Write(doc[:at+len(marker)-len("null")])
	if len(r.Changes) == 0 {
		bw.WriteString("[]")
	} else {
		bw.WriteString("[\n")
		var item bytes.Buffer
		ienc := json.NewEncoder(&item)
		ienc.SetEscapeHTML(false)
		ienc.SetIndent("    ", "  ")
		for i := range r.Changes {
			item.Reset()
			if err := ienc.Encode(&r.Changes[i]); err != nil {
				return err
			}
			bw.WriteString("    ")
			bw.Write(bytes.TrimSuffix(item.Bytes(), []byte("\n")))
			if i < len(r.Changes)-1 {
				bw.WriteString(",")
			}
			bw.WriteString("\n")
		}
		bw.WriteString("  ]")
	}
	bw.Write(doc[at+len(marker):])
	return bw.Flush()
}
