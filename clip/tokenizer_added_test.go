package clip

import (
	"strings"
	"testing"
)

// TestAddToken: added tokens take ids from the vocabulary's size upward,
// are matched before cleaning and BPE wherever they are written (the
// spaces around them do not matter; case does), a placeholder of several
// vectors stands for all its ids, and tokens already known are refused.
func TestAddToken(t *testing.T) {
	vocab, merges := tinyVocab()
	tok, err := Load(writeTokenizerDir(t, vocab, merges, "", ""))
	must(t, err)
	n := tok.VocabSize()
	ids, err := tok.AddToken("<x-ray>", 1)
	must(t, err)
	equal(t, []int32{int32(n)}, ids, "first added id")
	equal(t, n+1, tok.VocabSize(), "vocabulary size")
	multi, err := tok.AddToken("<ab>", 3)
	must(t, err)
	equal(t, []int32{int32(n + 1), int32(n + 2), int32(n + 3)}, multi, "a placeholder of 3 vectors")
	equal(t, []string{"<x-ray>", "<ab>", "<ab>_1", "<ab>_2"}, tok.AddedTokens(), "added tokens")
	id, ok := tok.TokenID("<ab>_2")
	check(t, ok && id == int32(n+3), "TokenID of <ab>_2: %d %v", id, ok)
	equal(t, "<ab>_1", tok.TokenString(int32(n+2)), "TokenString")

	cases := []struct {
		text string
		want []string
	}{
		{"low <x-ray> lower", []string{"lo", "w</w>", "<x-ray>", "lower</w>"}},
		{"low<x-ray>lower", []string{"lo", "w</w>", "<x-ray>", "lower</w>"}},
		{"  <x-ray>  ", []string{"<x-ray>"}},
		{"<X-RAY>", nil}, // case matters: this is ordinary (unknown) text
		{"a <ab> b", []string{"a</w>", "<ab>", "<ab>_1", "<ab>_2", "b</w>"}},
	}
	for _, c := range cases {
		ids, err := tok.Tokens(c.text)
		must(t, err, c.text)
		got := tokenStrings(tok, ids)
		if c.want == nil {
			check(t, !strings.Contains(strings.Join(got, " "), "<x-ray>"), "%q matched the added token: %v", c.text, got)
			continue
		}
		equal(t, c.want, got, "tokens of ", c.text)
	}
	ids, err = tok.Tokens("low <x-ray>")
	must(t, err)
	check(t, strings.Contains(tok.Decode(ids), "<x-ray>"), "Decode %q lacks the added token", tok.Decode(ids))

	for _, bad := range []struct {
		text string
		n    int
		want string
	}{
		{"", 1, "empty"}, {"a b", 1, "white space"}, {"lower</w>", 1, "already a token"},
		{"<x-ray>", 1, "already"}, {"<|endoftext|>", 1, "already"}, {"<new>", 0, "vectors"},
		{"<ab>_1", 1, "already"},
	} {
		_, err := tok.AddToken(bad.text, bad.n)
		check(t, err != nil && strings.Contains(err.Error(), bad.want), "AddToken(%q, %d): error %v, want one containing %q", bad.text, bad.n, err, bad.want)
	}
	equal(t, n+4, tok.VocabSize(), "vocabulary size after refusals")
}

// TestAddTokenSharedVocabulary: with CLIP's vocabulary the first added
// token gets id 49408, as transformers' add_tokens gives it.
func TestAddTokenSharedVocabulary(t *testing.T) {
	tok := loadShared(t)
	ids, err := tok.AddToken("<cxr-opacity>", 1)
	must(t, err)
	equal(t, []int32{49408}, ids, "id")
	enc, _, err := tok.Encode("a photo of a <cxr-opacity>")
	must(t, err)
	equal(t, int32(49408), enc[5], "the token's position")
}
