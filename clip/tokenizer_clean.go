package clip

import (
	"html"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// This file holds the text cleaning that runs before CLIP's pre-tokeniser:
// a subset of ftfy 6.x fix_text (the default TextFixerConfig), then
// transformers' whitespace_clean and Python's str.lower.
//
// ftfy.fix_text works one line at a time ("\n" ends a line, which stays in it).
// Once a line contains '<', HTML entities are no longer unescaped in that line
// or any later one. Each line is fixed by repeating these steps until nothing
// changes:
//
//	unescape_html      &name; (HTML5 table, and the ALL-CAPS form of lower-case names)
//	                   and &#NN; / &#xNN; character references
//	fix_encoding       UTF-8 mojibake read as Latin-1 or Windows-1252 ("cafÃ©" -> "café")
//	fix_c1_controls    U+0080..U+009F -> the Windows-1252 character of that byte
//	fix_latin_ligatures  ﬁ -> fi, Ĳ -> IJ, ǆ -> dž, ...
//	fix_character_width  fullwidth/halfwidth forms -> NFKC, U+3000 -> space
//	uncurl_quotes      U+02BC, U+2018..U+201B -> ', U+201C..U+201F -> "
//	fix_line_breaks    CRLF, CR, U+2028, U+2029, U+0085 -> LF
//	remove_terminal_escapes  ESC [ digits/; letter
//	remove_control_chars     U+0000..U+0008, U+000B, U+000E..U+001F, U+007F,
//	                         U+206A..U+206F, U+FEFF, U+FFF9..U+FFFC
//	NFC normalisation
//
// Not reproduced from ftfy: mojibake through other code pages (Windows-1250,
// -1251, -1253, -1254, -1257, ISO-8859-2, MacRoman, cp437), its "badness"
// heuristic (replaced by the U+00A0..U+04FF rule in mojibakeAt), the repair of
// sequences whose 0xA0 byte became a space or whose bytes were lost (U+FFFD),
// CESU-8, and surrogates (Go strings cannot hold them; invalid UTF-8 is
// rejected before cleaning). Letters, digits, case and NFC follow Go's Unicode
// tables (15.0), Python 3.11's are 14.0.
//
// OpenAI's CLIP tokenizer also runs html.unescape twice after ftfy;
// transformers' CLIPTokenizer, which diffusers uses and the golden data come
// from, does not, and neither does this package. They differ only on lines
// containing '<' (where ftfy leaves entities alone).

// cleanText applies ftfy.fix_text, whitespace_clean (collapse runs of white
// space to one space, strip) and lower-casing, in that order, as
// transformers' CLIPTokenizer does when ftfy is installed.
func cleanText(s string) string {
	s = fixText(s)
	s = collapseSpace(s)
	return pyLower(s)
}

// fixText is the subset of ftfy.fix_text described at the top of this file.
func fixText(s string) string {
	if s == "" {
		return s
	}
	var out strings.Builder
	out.Grow(len(s))
	unescape := true
	for pos := 0; pos < len(s); {
		end := strings.IndexByte(s[pos:], '\n')
		if end < 0 {
			end = len(s)
		} else {
			end = pos + end + 1
		}
		seg := s[pos:end]
		if strings.IndexByte(seg, '<') >= 0 {
			unescape = false
		}
		out.WriteString(fixSegment(seg, unescape))
		pos = end
	}
	return out.String()
}

// fixSegment runs the ftfy fixes on one line until they reach a fixed point.
func fixSegment(s string, unescape bool) string {
	if strings.IndexByte(s, '<') >= 0 {
		unescape = false
	}
	for iter := 0; iter < 16; iter++ { // ftfy loops until stable; 16 is a safety bound
		orig := s
		if unescape {
			s = unescapeHTML(s)
		}
		s = fixEncoding(s)
		s = removeTerminalEscapes(s) // before the control characters go
		s = fixRunes(s)
		s = fixLineBreaks(s)
		if !norm.NFC.IsNormalString(s) {
			s = norm.NFC.String(s)
		}
		if s == orig {
			break
		}
	}
	return s
}

// fixRunes rewrites each rune of s through fixRune, returning s itself when
// nothing changes.
func fixRunes(s string) string {
	for i, r := range s {
		if !fixRune(r, nil) {
			continue
		}
		var b strings.Builder
		b.Grow(len(s))
		b.WriteString(s[:i])
		for _, r2 := range s[i:] {
			if !fixRune(r2, &b) {
				b.WriteRune(r2)
			}
		}
		return b.String()
	}
	return s
}

// fixRune applies the per-character ftfy fixes (C1 controls, ligatures,
// character width, curly quotes, control characters). With b == nil it only
// reports whether r would change; otherwise it writes the replacement to b
// and reports true, or writes nothing and reports false.
func fixRune(r rune, b *strings.Builder) bool {
	if r >= 0x20 && r < 0x7f || r == '\t' || r == '\n' {
		return false
	}
	var rep string
	switch {
	case r >= 0x80 && r <= 0x9f:
		c := cp1252[r-0x80]
		if c == r {
			return false
		}
		rep = string(c)
	case r == 0x2bc || (r >= 0x2018 && r <= 0x201b):
		rep = "'"
	case r >= 0x201c && r <= 0x201f:
		rep = "\""
	case r == 0x3000:
		rep = " "
	case r >= 0xff01 && r < 0xfff0:
		rep = norm.NFKC.String(string(r))
		if rep == string(r) {
			return false
		}
	case isControlToRemove(r):
		rep = ""
	default:
		l, ok := ligatures[r]
		if !ok {
			return false
		}
		rep = l
	}
	if b != nil {
		b.WriteString(rep)
	}
	return true
}

// isControlToRemove reports whether ftfy's remove_control_chars drops r.
func isControlToRemove(r rune) bool {
	switch {
	case r <= 0x08, r == 0x0b, r >= 0x0e && r <= 0x1f, r == 0x7f:
		return true
	case r >= 0x206a && r <= 0x206f, r == 0xfeff, r >= 0xfff9 && r <= 0xfffc:
		return true
	}
	return false
}

var ligatures = map[rune]string{
	'Ĳ': "IJ", 'ĳ': "ij", 'ŉ': "ʼn",
	'Ǳ': "DZ", 'ǲ': "Dz", 'ǳ': "dz", 'Ǆ': "DŽ", 'ǅ': "Dž", 'ǆ': "dž",
	'Ǉ': "LJ", 'ǈ': "Lj", 'ǉ': "lj", 'Ǌ': "NJ", 'ǋ': "Nj", 'ǌ': "nj",
	'ﬀ': "ff", 'ﬁ': "fi", 'ﬂ': "fl", 'ﬃ': "ffi", 'ﬄ': "ffl", 'ﬅ': "ſt", 'ﬆ': "st",
}

// cp1252 maps bytes 0x80..0x9F to their Windows-1252 characters; the five
// bytes Windows-1252 leaves undefined map to themselves ("sloppy" codec).
var cp1252 = [32]rune{
	0x20ac, 0x81, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
	0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8d, 0x017d, 0x8f,
	0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
	0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0x9d, 0x017e, 0x0178,
}

// cp1252Byte is the inverse of the Windows-1252 upper half (sloppy): the byte
// a character came from, for characters outside Latin-1.
var cp1252Byte = func() map[rune]byte {
	m := make(map[rune]byte, 32)
	for i, r := range cp1252 {
		m[r] = byte(0x80 + i)
	}
	return m
}()

// fixLineBreaks turns CRLF, CR, LINE SEPARATOR, PARAGRAPH SEPARATOR and NEL
// into LF.
func fixLineBreaks(s string) string {
	if !strings.ContainsAny(s, "\r\u2028\u2029\u0085") {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.NewReplacer("\r", "\n", "\u2028", "\n", "\u2029", "\n", "\u0085", "\n").Replace(s)
}

// removeTerminalEscapes drops ANSI sequences ESC '[' (digit|';')* letter.
func removeTerminalEscapes(s string) string {
	if strings.IndexByte(s, 0x1b) < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == ';') {
				j++
			}
			if j < len(s) && (s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z') {
				i = j + 1
				continue
			}
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// unescapeHTML replaces the entities matched by ftfy's pattern
// &#?[0-9A-Za-z]{1,24}; when they name a character.
func unescapeHTML(s string) string {
	if strings.IndexByte(s, '&') < 0 {
		return s
	}
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); i++ {
		if s[i] != '&' {
			continue
		}
		j := i + 1
		if j < len(s) && s[j] == '#' {
			j++
		}
		k := j
		for k < len(s) && k-j < 25 && isASCIIAlnum(s[k]) {
			k++
		}
		if k == j || k-j > 24 || k >= len(s) || s[k] != ';' {
			continue
		}
		m := s[i : k+1]
		rep, ok := decodeEntity(m)
		if !ok {
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString(rep)
		last = k + 1
		i = k
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

func isASCIIAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// decodeEntity decodes one complete entity "&...;" the way ftfy does.
func decodeEntity(m string) (string, bool) {
	if strings.HasPrefix(m, "&#") {
		r, ok := pyCharRef(m[2 : len(m)-1])
		if !ok || strings.Contains(r, ";") {
			return "", false
		}
		return r, true
	}
	if r, ok := namedEntity(m); ok {
		return r, true
	}
	// ftfy also decodes the ALL-CAPS spelling of an entity whose name is all
	// lower case (&NTILDE; -> Ñ), unless that spelling means something else.
	lower := strings.ToLower(m)
	if lower == m || strings.ToUpper(lower) != m || html.UnescapeString(m) != m {
		return "", false
	}
	r, ok := namedEntity(lower)
	if !ok {
		return "", false
	}
	return pyUpper(r), true
}

// namedEntity looks "&name;" up in the HTML5 entity table (through the
// standard library, which holds the same table as Python's html.entities).
func namedEntity(m string) (string, bool) {
	r := html.UnescapeString(m)
	if r == m {
		return "", false
	}
	// html.UnescapeString also decodes legacy entities that lack the ';'
	// ("&notit;" -> "¬it;"); a full match consumes the whole name, so only
	// &semi; itself may leave a ';' behind.
	if strings.HasSuffix(r, ";") && m != "&semi;" {
		return "", false
	}
	return r, true
}

// pyCharRef decodes the body of a numeric character reference ("65", "x41")
// as Python's html.unescape does (which ftfy uses for them). ok is false when
// the body is not entirely digits.
func pyCharRef(body string) (string, bool) {
	base := 10
	if body != "" && (body[0] == 'x' || body[0] == 'X') {
		base = 16
		body = body[1:]
	}
	if body == "" {
		return "", false
	}
	n := 0
	for i := 0; i < len(body); i++ {
		c := body[i]
		var d int
		switch {
		case c >= '0' && c <= '9':
			d = int(c - '0')
		case base == 16 && c >= 'a' && c <= 'f':
			d = int(c-'a') + 10
		case base == 16 && c >= 'A' && c <= 'F':
			d = int(c-'A') + 10
		default:
			return "", false
		}
		if n <= 0x10ffff {
			n = n*base + d
		}
	}
	switch {
	case n == 0:
		return "\ufffd", true
	case n == 0x0d:
		return "\r", true
	case n >= 0x80 && n <= 0x9f:
		return string(cp1252[n-0x80]), true
	case n >= 0xd800 && n <= 0xdfff, n > 0x10ffff:
		return "\ufffd", true
	case n >= 0x1 && n <= 0x8, n >= 0xe && n <= 0x1f, n >= 0x7f && n <= 0x9f,
		n >= 0xfdd0 && n <= 0xfdef, n == 0xb, n&0xfffe == 0xfffe:
		return "", true // Python drops these code points
	}
	return string(rune(n)), true
}

// fixEncoding undoes UTF-8 text that was decoded as Latin-1 or
// Windows-1252 ("mojibake"), repeating while it finds some: first the whole
// segment when it re-encodes to valid UTF-8, otherwise each mojibake
// sequence on its own (ftfy's decode_inconsistent_utf8).
func fixEncoding(s string) string {
	for iter := 0; iter < 8; iter++ {
		if !hasMojibake(s) {
			return s
		}
		if b, ok := encodeSingleByte(s); ok && utf8.Valid(b) {
			s = string(b)
			continue
		}
		fixed := fixMojibakeRuns(s)
		if fixed == s {
			return s
		}
		s = fixed
	}
	return s
}

// singleByte returns the byte that r is in Latin-1 or (sloppy) Windows-1252.
func singleByte(r rune) (byte, bool) {
	if r < 0x100 {
		return byte(r), true
	}
	b, ok := cp1252Byte[r]
	return b, ok
}

// encodeSingleByte encodes s in Latin-1 extended by Windows-1252's upper
// half, if every character has a byte there.
func encodeSingleByte(s string) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		c, ok := singleByte(r)
		if !ok {
			return nil, false
		}
		out = append(out, c)
	}
	return out, true
}

// mojibakeAt reports the length in runes of a UTF-8 sequence of two to four
// bytes written as single-byte characters at the start of rs, and the
// character it decodes to, or 0 when there is none.
func mojibakeAt(rs []rune) (n int, dec rune) {
	lead, ok := singleByte(rs[0])
	if !ok {
		return 0, 0
	}
	switch {
	case lead >= 0xc2 && lead <= 0xdf:
		n = 2
	case lead >= 0xe0 && lead <= 0xef:
		n = 3
	case lead >= 0xf0 && lead <= 0xf4:
		n = 4
	default:
		return 0, 0
	}
	if len(rs) < n {
		return 0, 0
	}
	buf := [4]byte{lead}
	for i := 1; i < n; i++ {
		c, ok := singleByte(rs[i])
		if !ok || c < 0x80 || c > 0xbf {
			return 0, 0
		}
		buf[i] = c
	}
	r, size := utf8.DecodeRune(buf[:n])
	if r == utf8.RuneError || size != n {
		return 0, 0
	}
	// Two-byte sequences are taken only when they decode to Latin, Greek or
	// Cyrillic letters and symbols (U+00A0..U+04FF), the common mojibake.
	// This keeps correct text such as German "daß“" (which would decode to
	// U+07D3) as it is; ftfy's badness heuristic serves the same purpose.
	if n == 2 && (r < 0xa0 || r > 0x4ff) {
		return 0, 0
	}
	return n, r
}

// hasMojibake reports whether s contains a mojibake sequence (mojibakeAt).
func hasMojibake(s string) bool {
	// Every lead byte 0xC2..0xF4 comes from a character U+00C2..U+00F4, whose
	// UTF-8 starts with 0xC3; without one there is nothing to look at.
	if strings.IndexByte(s, 0xc3) < 0 {
		return false
	}
	rs := []rune(s)
	for i, r := range rs {
		if r >= 0xc2 && r <= 0xf4 {
			if n, _ := mojibakeAt(rs[i:]); n > 0 {
				return true
			}
		}
	}
	return false
}

// fixMojibakeRuns decodes each mojibake sequence of s in place.
func fixMojibakeRuns(s string) string {
	rs := []rune(s)
	var b strings.Builder
	for i := 0; i < len(rs); {
		if n, r := mojibakeAt(rs[i:]); n > 0 {
			b.WriteRune(r)
			i += n
			continue
		}
		b.WriteRune(rs[i])
		i++
	}
	return b.String()
}

// pyIsSpace reports whether Python's str.isspace (and the regex module's \s)
// holds for r.
func pyIsSpace(r rune) bool {
	if r < 0x80 {
		return r == ' ' || r >= 0x09 && r <= 0x0d || r >= 0x1c && r <= 0x1f
	}
	return unicode.Is(unicode.White_Space, r)
}

// collapseSpace replaces each run of white space by one space and strips
// both ends (transformers' whitespace_clean).
func collapseSpace(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for i := 0; i < len(s); {
		c := s[i]
		r, size := rune(c), 1
		if c >= 0x80 {
			r, size = utf8.DecodeRuneInString(s[i:])
		}
		if pyIsSpace(r) {
			space = true
			i += size
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteString(s[i : i+size])
		i += size
	}
	return b.String()
}

// pyLower lower-cases s as Python's str.lower: full case mapping of U+0130,
// and capital sigma becomes final sigma at the end of a word.
func pyLower(s string) string {
	ascii, upper := true, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		ascii = ascii && c < 0x80
		upper = upper || c >= 'A' && c <= 'Z'
	}
	if ascii {
		if !upper {
			return s
		}
		b := []byte(s)
		for i, c := range b {
			if c >= 'A' && c <= 'Z' {
				b[i] = c + 'a' - 'A'
			}
		}
		return string(b)
	}
	rs := []rune(s)
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range rs {
		switch r {
		case 0x130:
			b.WriteString("i\u0307")
		case 0x3a3:
			if finalSigma(rs, i) {
				b.WriteRune(0x3c2)
			} else {
				b.WriteRune(0x3c3)
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// pyUpper upper-cases s (used only for upper-case HTML entity names).
func pyUpper(s string) string {
	return strings.ToUpper(strings.ReplaceAll(s, "ß", "SS"))
}

// finalSigma reports Unicode's Final_Sigma condition for rs[i]: a cased
// letter before it and none after it, skipping case-ignorable characters.
func finalSigma(rs []rune, i int) bool {
	j := i - 1
	for j >= 0 && isCaseIgnorable(rs[j]) {
		j--
	}
	if j < 0 || !isCased(rs[j]) {
		return false
	}
	j = i + 1
	for j < len(rs) && isCaseIgnorable(rs[j]) {
		j++
	}
	return j == len(rs) || !isCased(rs[j])
}

func isCased(r rune) bool {
	return unicode.In(r, unicode.Lu, unicode.Ll, unicode.Lt, unicode.Other_Lowercase, unicode.Other_Uppercase)
}

func isCaseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', '^', '`', 0xb7, 0x2019, 0x2024, 0x2027, 0xfe13, 0xfe52, 0xfe55, 0xff07, 0xff0e, 0xff1a:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}
