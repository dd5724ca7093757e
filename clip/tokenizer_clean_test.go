package clip

import (
	"strings"
	"testing"
)

// TestFixText checks the ftfy subset against examples from ftfy's own
// documentation and hand-derived cases.
func TestFixText(t *testing.T) {
	cases := []struct{ in, want string }{
		// ftfy documentation examples (ftfy 6 keeps "…": NFC, not NFKC).
		{"Broken text&hellip; it&#x2019;s ﬂubberiﬁc!", "Broken text… it's flubberific!"},
		{"HTML entities &lt;3", "HTML entities <3"},
		{"<em>HTML entities &lt;3</em>", "<em>HTML entities &lt;3</em>"},
		{"\x01\x1b[36;44mI&#x92;m blue, da ba dee da ba doo&#133;\x1b[0m", "I'm blue, da ba dee da ba doo…"},
		{"\ufeffParty like\nit&rsquo;s 1999!", "Party like\nit's 1999!"},
		{"&amp;amp;", "&"}, // fixed point: repeated until nothing changes
		{"Ãºnico", "único"},
		{"This â€” should be an em dash", "This — should be an em dash"},
		// Mojibake mixed with correct text is fixed sequence by sequence.
		{"café and cafÃ©", "café and café"},
		{"37Â°C", "37°C"},
		{"ÐœÐ¾Ñ\u0081ÐºÐ²Ð°", "Москва"},
		{"ðŸ˜€ âœ“", "😀 ✓"},
		// Not mojibake: ß then a curly quote would decode to U+07D3.
		{"daß“", "daß\""},
		// Correct Latin-1 text is left alone.
		{"café crème brûlée, naïve façade, Ærøskøbing", "café crème brûlée, naïve façade, Ærøskøbing"},
		// Once a line has '<', entities stay in it and in later lines.
		{"a &amp; b\nc < d &amp; e\nf &amp; g", "a & b\nc < d &amp; e\nf &amp; g"},
		// Entities: unknown names, missing ';', upper case, numeric rules.
		{"&notanentity; &amp &AMP; &NTILDE; &#65; &#x263a; &#59; &#0;", "&notanentity; &amp & Ñ A ☺ &#59; \ufffd"},
		// C1 controls read as Windows-1252; curly quotes; ligatures; width.
		{"\u0093quoted\u0094 \u0085", "\"quoted\" …"},
		{"‘single’ “double” ʼ", "'single' \"double\" '"},
		{"ĳ ǆ ﬃ", "ij dž ffi"},
		{"ＡＢＣ１２３\u3000ｶ", "ABC123 カ"},
		// NFC, line breaks, control characters (tab and newline stay).
		{"e\u0301", "é"},
		{"a\r\nb\rc\u2028d", "a\nb\nc\nd"},
		{"a\x00b\x07c\td\u200be\u2060f\ufeffg", "abc\td\u200be\u2060fg"},
	}
	for _, c := range cases {
		if got := fixText(c.in); got != c.want {
			t.Errorf("fixText(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

func TestCleanText(t *testing.T) {
	cases := []struct{ in, want string }{
		{"   leading and trailing   whitespace\twith\ttabs\nand newlines   ", "leading and trailing whitespace with tabs and newlines"},
		{"hello\u00a0non-breaking\u200bzero-width", "hello non-breaking\u200bzero-width"},
		{"UPPER Case", "upper case"},
		// Python's str.lower: İ -> i + combining dot; Σ final at a word end.
		{"İSTANBUL", "i\u0307stanbul"},
		{"ΟΔΟΣ ΣΑΣ Σ", "οδος σας σ"},
		{"A&amp;B", "a&b"},
		{"", ""},
		{" \t\n ", ""},
	}
	for _, c := range cases {
		if got := cleanText(c.in); got != c.want {
			t.Errorf("cleanText(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

func TestPreTokenize(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"it's they're we'll i'd don't", []string{"it", "'s", "they", "'re", "we", "'ll", "i", "'d", "don", "'t"}},
		{"'single'", []string{"'s", "ingle", "'"}},
		{"3.14 50%", []string{"3", ".", "1", "4", "5", "0", "%"}},
		{"a--b...?!", []string{"a", "--", "b", "...?!"}},
		{"x<|endoftext|>", []string{"x", "<|endoftext|>"}},
		{".<|endoftext|>", []string{".<|", "endoftext", "|>"}},
		{"東京 москва", []string{"東京", "москва"}},
		{"😀✓", []string{"😀✓"}},
		{"e\u0301", []string{"e", "\u0301"}},
		{"!'s", []string{"!'", "s"}},
	}
	for _, c := range cases {
		var got []string
		must(t, preTokenize(c.in, func(w string) error { got = append(got, w); return nil }))
		equal(t, c.want, got, "pre-tokens of ", c.in)
	}
}

func TestBytesToUnicode(t *testing.T) {
	// Printable bytes map to themselves; the others to U+0100.. in order:
	// byte 0 -> Ā (U+0100), space (0x20) -> Ġ (U+0120), 0xAD -> Ń (U+0143).
	equal(t, 'A', byteToRune['A'], "A")
	equal(t, rune(0x100), byteToRune[0], "0x00")
	equal(t, rune(0x120), byteToRune[' '], "space")
	equal(t, rune(0x143), byteToRune[0xad], "0xAD")
	seen := map[rune]bool{}
	for b := range 256 {
		r := byteToRune[b]
		check(t, !seen[r], "duplicate %U", r)
		seen[r] = true
		equal(t, byte(b), runeToByte[r], "inverse")
		equal(t, byteToRuneRef(byte(b)), r, "reference at ", b)
	}
	check(t, !strings.ContainsRune(string(byteToRune[:]), ' '), "space must be mapped")
}
