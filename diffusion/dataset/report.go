package dataset

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Radiology report parsing (MIMIC-CXR free-text reports).
//
// A report is a sequence of sections, each starting at a line whose first
// non-blank text is a header: one to six words of letters (and the
// characters space / & ( ) - ,) followed by a colon, e.g. "IMPRESSION:",
// "Findings:", "FINDINGS AND IMPRESSION:". A line counts as a header when
// the words are a known section name in any letter case (KnownSections), or
// when they are written in upper case (an unknown section such as
// "WET READ:"). Mixed-case words that are not section names ("Note: ...")
// are body text. Text after the colon on the header line belongs to the
// section.
//
// Report picks the impression (the sections named IMPRESSION, IMPRESSIONS,
// CONCLUSION, CONCLUSIONS, FINDINGS AND IMPRESSION, FINDINGS/IMPRESSION, ...;
// the first non-empty one), else the findings (FINDINGS, FINDING), as
// RoentGen used the impression section of MIMIC-CXR reports as prompts; it
// returns "" when neither exists (the sample is then skipped as
// uncaptioned) — the preamble, indication, technique and comparison are
// never used.

// sectionKind classifies a known section name.
type sectionKind int

const (
	sectionOther sectionKind = iota
	sectionImpression
	sectionFindings
)

// KnownSections lists the section names recognised in any letter case, with
// whether each is an impression or findings section. Header words are
// compared after collapsing spaces and removing a trailing "(s)".
var KnownSections = map[string]string{
	"impression":               "impression",
	"impressions":              "impression",
	"conclusion":               "impression",
	"conclusions":              "impression",
	"findings and impression":  "impression",
	"findings and impressions": "impression",
	"findings/impression":      "impression",
	"findings / impression":    "impression",
	"impression and findings":  "impression",
	"summary":                  "impression",
	"findings":                 "findings",
	"finding":                  "findings",
	"indication":               "",
	"indications":              "",
	"history":                  "",
	"clinical history":         "",
	"clinical information":     "",
	"clinical indication":      "",
	"reason for exam":          "",
	"reason for examination":   "",
	"technique":                "",
	"comparison":               "",
	"comparisons":              "",
	"examination":              "",
	"exam":                     "",
	"procedure":                "",
	"type of examination":      "",
	"notification":             "",
	"recommendation":           "",
	"recommendations":          "",
	"addendum":                 "",
	"wet read":                 "",
	"final report":             "",
	"study":                    "",
}

func kindOf(name string) (sectionKind, bool) {
	k, ok := KnownSections[name]
	if !ok {
		return sectionOther, false
	}
	switch k {
	case "impression":
		return sectionImpression, true
	case "findings":
		return sectionFindings, true
	}
	return sectionOther, true
}

// Section is one section of a report.
type Section struct {
	Name string // the header as written, without the colon ("" for the preamble)
	Text string // the raw text of the section (lines joined by "\n")
}

// parseHeader reports whether line starts with a section header and, if so,
// returns the header's name as written and the rest of the line.
func parseHeader(line string) (name, rest string, ok bool) {
	s := strings.TrimLeft(line, " \t")
	colon := strings.IndexByte(s, ':')
	if colon <= 0 || colon > 60 {
		return "", "", false
	}
	head := strings.TrimSpace(s[:colon])
	if head == "" {
		return "", "", false
	}
	words := 0
	inWord := false
	upper := true
	letters := 0
	for _, r := range head {
		switch {
		case unicode.IsLetter(r):
			if !inWord {
				words++
				inWord = true
			}
			letters++
			if unicode.IsLower(r) {
				upper = false
			}
		case r == ' ' || r == '\t' || r == '/' || r == '&' || r == '(' || r == ')' || r == '-' || r == ',':
			inWord = false
		default:
			return "", "", false
		}
	}
	if words == 0 || words > 6 || letters < 2 {
		return "", "", false
	}
	if _, known := kindOf(normSectionName(head)); !known && !upper {
		return "", "", false
	}
	return head, s[colon+1:], true
}

// normSectionName lowercases a header and collapses its spaces; a trailing
// "(s)" is dropped ("IMPRESSION(S)" is "impression").
func normSectionName(h string) string {
	h = strings.ToLower(strings.Join(strings.Fields(h), " "))
	h = strings.TrimSuffix(h, "(s)")
	return strings.TrimSpace(h)
}

// Sections splits a report into its sections; text before the first header
// is a section with an empty Name.
func Sections(report string) []Section {
	report = strings.ReplaceAll(report, "\r\n", "\n")
	report = strings.ReplaceAll(report, "\r", "\n")
	var out []Section
	cur := Section{}
	var body []string
	flush := func() {
		cur.Text = strings.Join(body, "\n")
		if cur.Name != "" || strings.TrimSpace(cur.Text) != "" {
			out = append(out, cur)
		}
		body = body[:0]
	}
	for _, line := range strings.Split(report, "\n") {
		if name, rest, ok := parseHeader(line); ok {
			flush()
			cur = Section{Name: name}
			body = append(body, rest)
			continue
		}
		body = append(body, line)
	}
	flush()
	return out
}

// Impression returns the impression section's text of a report, else its
// findings, cleaned by CleanReportText; "" when the report has neither (or
// they are empty once cleaned).
func Impression(report string) string {
	var findings string
	for _, s := range Sections(report) {
		if s.Name == "" {
			continue
		}
		k, _ := kindOf(normSectionName(s.Name))
		switch k {
		case sectionImpression:
			if t := CleanReportText(s.Text); t != "" {
				return t
			}
		case sectionFindings:
			if findings == "" {
				findings = CleanReportText(s.Text)
			}
		}
	}
	return findings
}

// CleanReportText cleans a section of a report for use as a prompt:
//   - de-identification placeholders (runs of two or more underscores,
//     MIMIC-CXR's "___") are removed;
//   - numbered-list markers ("1.", "2)") at the start of a line or
//     after a sentence's end are removed ("1. No effusion. 2. Clear lungs."
//     gives "No effusion. Clear lungs.");
//   - all white space (line breaks included) collapses to single spaces;
//   - spaces before , . ; : are removed, and runs of commas/periods left by
//     removed placeholders are tidied.
//
// It does not change letter case (see Options.Lowercase).
func CleanReportText(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, " ")
	}
	// Placeholders.
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] == '_' {
			j := i
			for j < len(s) && s[j] == '_' {
				j++
			}
			if j-i >= 2 {
				b.WriteByte(' ')
			} else {
				b.WriteByte('_')
			}
			i = j
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	s = b.String()
	// List markers at line starts.
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		t := strings.TrimLeft(l, " \t")
		if n := listMarker(t); n > 0 {
			lines[i] = t[n:]
		}
	}
	s = strings.Join(strings.Fields(strings.Join(lines, "\n")), " ")
	// Inline list markers after a sentence end: ". 2. " -> ". ".
	words := strings.Split(s, " ")
	kept := words[:0]
	for i, w := range words {
		if i > 0 && listMarker(w+" ") == len(w)+1 && sentenceEnd(kept) && i+1 < len(words) {
			continue
		}
		kept = append(kept, w)
	}
	s = strings.Join(kept, " ")
	s = tidyPunct(s)
	return strings.TrimSpace(s)
}

// listMarker returns the length of a numbered-list marker at the start of t
// (one to three digits, then "." or ")", then a space or the end), or 0. A number followed
// directly by a digit ("1.5 cm") is not a marker.
func listMarker(t string) int {
	i := 0
	for i < len(t) && i < 3 && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 || i >= len(t) {
		return 0
	}
	switch {
	case (t[i] == '.' || t[i] == ')') && i+1 < len(t) && (t[i+1] == ' ' || t[i+1] == '\t'):
		return i + 2
	case (t[i] == '.' || t[i] == ')') && i+1 == len(t):
		return i + 1
	}
	return 0
}

// sentenceEnd reports whether the words so far end a sentence.
func sentenceEnd(words []string) bool {
	if len(words) == 0 {
		return true
	}
	w := words[len(words)-1]
	return strings.HasSuffix(w, ".") || strings.HasSuffix(w, ";") || strings.HasSuffix(w, ":")
}

// tidyPunct removes spaces before punctuation and collapses the runs of
// punctuation that removed placeholders leave behind ("at , ." -> "at.").
func tidyPunct(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' && i+1 < len(s) && strings.IndexByte(",.;:", s[i+1]) >= 0 {
			continue
		}
		if c == ',' && i+1 < len(s) && (s[i+1] == ',' || s[i+1] == '.') {
			continue
		}
		if c == ',' && i+2 < len(s) && s[i+1] == ' ' && (s[i+2] == ',' || s[i+2] == '.') {
			continue
		}
		b.WriteByte(c)
	}
	out := b.String()
	// The removals above can leave double spaces or a leading comma.
	out = strings.Join(strings.Fields(out), " ")
	out = strings.TrimLeft(out, ",;: ")
	return out
}

// CleanCaption collapses white space to single spaces and trims it, and
// lowercases the text when lower is set.
func CleanCaption(s string, lower bool) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, " ")
	}
	s = strings.Join(strings.Fields(s), " ")
	if lower {
		s = strings.ToLower(s)
	}
	return s
}
