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
	// A per-group summary first, then each group's tuples folded away: a
	// plan of thousands of changes stays readable in a pull request.
	var details []string
	if len(r.Changes) > 0 {
		b.WriteString("\n| Group | Add | Delete |\n|---|---|---|\n")
		for _, c := range r.Changes {
			name := c.mdName()
			fmt.Fprintf(b, "| %s | +%d | −%d |\n", name, len(c.Add), len(c.Delete))
			d := &strings.Builder{}
			fmt.Fprintf(d, "\n<details><summary>%s: +%d −%d</summary>\n\n", name, len(c.Add), len(c.Delete))
			for _, u := range c.Add {
				fmt.Fprintf(d, "- add `%s`%s\n", u, mdEscape(r.userLabel(u)))
			}
			for _, u := range c.Delete {
				fmt.Fprintf(d, "- delete `%s`%s\n", u, mdEscape(r.userLabel(u)))
			}
			d.WriteString("\n</details>\n")
			details = append(details, d.String())
		}
	}
	detailsAt := b.Len()
	for _, d := range details {
		b.WriteString(d)
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
		for _, w := range res.Warnings {
			fmt.Fprintf(b, "- warning: %s\n", mdEscape(w))
		}
	}
	_, err := io.WriteString(w, fitComment(b.String(), detailsAt, details))
	return err
}

// maxComment is what fits in a GitHub pull-request comment (65,536
// characters), less room for the note that says what was cut.
const maxComment = 65_536 - 512

// fitComment cuts the groups' details, from the last, until the report
// fits a pull-request comment, and says so; the summary table, withheld
// changes and skips stay.
func fitComment(full string, detailsAt int, details []string) string {
	if len(full) <= maxComment {
		return full
	}
	// The details stand together from detailsAt; the rest follows them.
	end := detailsAt
	for _, d := range details {
		end += len(d)
	}
	head, tail := full[:detailsAt], full[end:]
	var b strings.Builder
	b.WriteString(head)
	kept := 0
	for _, d := range details {
		if b.Len()+len(d)+len(tail) > maxComment {
			break
		}
		b.WriteString(d)
		kept++
	}
	fmt.Fprintf(&b, "\n> _Cut to fit a pull-request comment: the tuples of %d of %d groups are left out. The full plan: `groupsync plan -o text` or `-o json`._\n", len(details)-kept, len(details))
	b.WriteString(tail)
	return b.String()
}

// mdName is a change's object as the Markdown report names it.
func (c GroupChange) mdName() string {
	name := "`" + c.Object + "`"
	if c.Relation != "" {
		name = "`" + c.Object + "` " + c.Relation + " (grant)"
	}
	if c.GroupName != "" {
		name += " (" + mdEscape(c.GroupName) + ")"
	}
	return name
}

var mdReplacer = strings.NewReplacer("|", `\|`, "\n", " ", "`", "'")

func mdEscape(s string) string { return mdReplacer.Replace(s) }
