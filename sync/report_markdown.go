package sync

import (
	"fmt"
	"io"
	"strings"
)

func (r *Report) renderMarkdown(w io.Writer) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, "## groupsync %s\n\n**%s**\n\n%s\n", r.Command, r.headline(), r.scopeLine())
	if l := r.sliceLine(); l != "" {
		fmt.Fprintf(b, "%s\n", l)
	}
	fmt.Fprintf(b, "%s\n", r.ownershipLine())
	if lines := r.grantLines(); len(lines) > 0 {
		b.WriteString("\n" + strings.Join(lines, "\n") + "\n")
	}
	if g := r.Guard; g != nil {
		fmt.Fprintf(b, "\n> **Stopped by guard `%s`:** %s\n", g.Guard, mdEscape(g.Message))
	}
	if len(r.Changes) > 0 {
		b.WriteString("\n| Group | Change | User |\n|---|---|---|\n")
		for _, c := range r.Changes {
			name := "`" + c.Object + "`"
			if c.Relation != "" {
				name = "`" + c.Object + "` " + c.Relation + " (grant)"
			}
			if c.GroupName != "" {
				name += " (" + mdEscape(c.GroupName) + ")"
			}
			for _, u := range c.Add {
				fmt.Fprintf(b, "| %s | add | `%s` |\n", name, u)
			}
			for _, u := range c.Delete {
				fmt.Fprintf(b, "| %s | delete | `%s` |\n", name, u)
			}
		}
	}
	if len(r.Withheld) > 0 {
		b.WriteString("\n### Withheld\n\n| Change | Tuple | Reason |\n|---|---|---|\n")
		for _, h := range r.Withheld {
			fmt.Fprintf(b, "| %s | `%s` | %s |\n", h.Op, h.Tuple, h.Reason)
		}
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintf(b, "\n### Skipped\n\n%s\n", strings.Join(r.skipCounts(), ", "))
		first := true
		for _, s := range r.Skipped {
			if filtered(s) {
				continue
			}
			if first {
				b.WriteString("\n| Kind | Name | Id | Reason | Detail |\n|---|---|---|---|---|\n")
				first = false
			}
			fmt.Fprintf(b, "| %s | %s | `%s` | %s | %s |\n", s.Kind, mdEscape(s.Name), s.ID, s.Reason, mdEscape(s.Detail))
		}
	}
	if res := r.Result; res != nil {
		fmt.Fprintf(b, "\n### Applied\n\n%s\n", res.summary())
		for _, f := range res.Failed {
			fmt.Fprintf(b, "- failed %s `%s`: %s\n", f.Op, f.Tuple, mdEscape(f.Error))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

var mdReplacer = strings.NewReplacer("|", `\|`, "\n", " ", "`", "'")

func mdEscape(s string) string { return mdReplacer.Replace(s) }
