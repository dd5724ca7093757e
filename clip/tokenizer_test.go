package clip

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// writeTokenizerDir writes a tokenizer folder: vocab (token -> id), merges
// lines (after the #version line) and optional config files ("" = absent).
func writeTokenizerDir(t *testing.T, vocab map[string]int, merges []string, tokenizerConfig, specialMap string) string {
	t.Helper()
	dir := t.TempDir()
	if vocab != nil {
		b, err := json.Marshal(vocab)
		must(t, err)
		must(t, os.WriteFile(filepath.Join(dir, "vocab.json"), b, 0o644))
	}
	if merges != nil {
		text := "#version: 0.2\n" + strings.Join(merges, "\n") + "\n"
		must(t, os.WriteFile(filepath.Join(dir, "merges.txt"), []byte(text), 0o644))
	}
	if tokenizerConfig != "" {
		must(t, os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(tokenizerConfig), 0o644))
	}
	if specialMap != "" {
		must(t, os.WriteFile(filepath.Join(dir, "special_tokens_map.json"), []byte(specialMap), 0o644))
	}
	return dir
}

// tinyVocab is a hand-made vocabulary whose merges are derived by hand in
// TestBPEHandDerived.
func tinyVocab() (map[string]int, []string) {
	toks := []string{
		"<|startoftext|>", "<|endoftext|>",
		"l", "o", "w", "e", "r", "a", "b", "c",
		"l</w>", "o</w>", "w</w>", "e</w>", "r</w>", "a</w>", "b</w>", "c</w>",
		"lo", "er</w>", "low", "lower</w>", "oo", "ab", "bc</w>", "!", "!</w>",
	}
	vocab := map[string]int{}
	for i, s := range toks {
		vocab[s] = i
	}
	merges := []string{
		"l o",        // rank 0
		"e r</w>",    // rank 1
		"lo w",       // rank 2
		"low er</w>", // rank 3
		"o o",        // rank 4
		"b c</w>",    // rank 5: outranks "a b"
		"a b",        // rank 6
	}
	return vocab, merges
}

func tokenStrings(t *CLIPTokenizer, ids []int32) []string {
	out := []string{}
	for _, id := range ids {
		out = append(out, t.TokenString(id))
	}
	return out
}

// TestBPEHandDerived checks merges applied by rank on a hand-made vocabulary:
//
//	lower: l o w e r</w> -(l o)-> lo w e r</w> -(e r</w>)-> lo w er</w>
//	       -(lo w)-> low er</w> -(low er</w>)-> lower</w>
//	low:   l o w</w> -(l o)-> lo w</w>; no merge for (lo, w</w>)
//	ooo:   o o o</w>: (o o) merges left to right once -> oo o</w>
//	abc:   a b c</w>: (b c</w>) ranks before (a b) -> a bc</w>
//	abab:  a b a b</w>: (a b) merges; the last b is b</w> -> ab a b</w>
//	ababc: a b a b c</w> -(b c</w>)-> a b a bc</w> -(a b)-> ab a bc</w>
//	x:     not in the vocabulary -> unk (<|endoftext|>)
func TestBPEHandDerived(t *testing.T) {
	vocab, merges := tinyVocab()
	tok, err := Load(writeTokenizerDir(t, vocab, merges, "", ""))
	must(t, err)
	cases := []struct {
		text string
		want []string
	}{
		{"lower", []string{"lower</w>"}},
		{"LOWER", []string{"lower</w>"}},
		{"low", []string{"lo", "w</w>"}},
		{"ooo", []string{"oo", "o</w>"}},
		{"abc", []string{"a", "bc</w>"}},
		{"abab", []string{"ab", "a", "b</w>"}},
		{"ababc", []string{"ab", "a", "bc</w>"}},
		{"low lower", []string{"lo", "w</w>", "lower</w>"}},
		{"x", []string{"<|endoftext|>"}}, // not in the vocabulary: unk
	}
	for _, c := range cases {
		ids, err := tok.Tokens(c.text)
		must(t, err, c.text)
		equal(t, c.want, tokenStrings(tok, ids), "tokens of ", c.text)
	}
}

// naiveBPE is an independent, string-based BPE: it repeatedly merges the
// adjacent pair of lowest rank everywhere, as in the GPT-2/CLIP reference.
func naiveBPE(word string, ranks map[[2]string]int) []string {
	var syms []string
	for i := 0; i < len(word); i++ {
		syms = append(syms, string(byteToRuneRef(word[i])))
	}
	syms[len(syms)-1] += "</w>"
	for len(syms) > 1 {
		best, bestRank := [2]string{}, -1
		for i := 0; i+1 < len(syms); i++ {
			p := [2]string{syms[i], syms[i+1]}
			if r, ok := ranks[p]; ok && (bestRank < 0 || r < bestRank) {
				best, bestRank = p, r
			}
		}
		if bestRank < 0 {
			break
		}
		var next []string
		for i := 0; i < len(syms); {
			if i+1 < len(syms) && syms[i] == best[0] && syms[i+1] == best[1] {
				next = append(next, best[0]+best[1])
				i += 2
			} else {
				next = append(next, syms[i])
				i++
			}
		}
		syms = next
	}
	return syms
}

// byteToRuneRef is bytes_to_unicode written out from its definition.
func byteToRuneRef(b byte) rune {
	keep := func(c int) bool { return c >= 33 && c <= 126 || c >= 161 && c <= 172 || c >= 174 && c <= 255 }
	if keep(int(b)) {
		return rune(b)
	}
	n := 0
	for c := 0; c < int(b); c++ {
		if !keep(c) {
			n++
		}
	}
	return rune(256 + n)
}

// TestBPEMatchesNaive compares the tokenizer's BPE with naiveBPE on the real
// merges for many words: the words of the golden prompts and a sample of
// vocabulary entries.
func TestBPEMatchesNaive(t *testing.T) {
	tok := loadShared(t)
	f, err := os.Open(sharedPath(t, goldenDir+"/model/diffusers/tokenizer/merges.txt"))
	must(t, err)
	defer f.Close()
	ranks := map[[2]string]int{}
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		if line == 1 {
			continue
		}
		p := strings.Fields(sc.Text())
		if len(p) == 2 && line-1 <= maxMerges {
			ranks[[2]string{p[0], p[1]}] = line - 2
		}
	}
	must(t, sc.Err())

	words := map[string]bool{}
	prompts, _, _ := readGoldenIndex(t)
	for _, p := range prompts {
		must(t, preTokenize(cleanText(p.Prompt), func(w string) error { words[w] = true; return nil }))
	}
	for _, w := range strings.Fields("pneumothorax cardiomediastinal atelectasis bibasilar consolidation " +
		"opacification hyperinflation osteopenia kyphoscoliosis sternotomy aaaaaaaaaaaa abababab " +
		"supercalifragilisticexpialidocious ééé 東京 😀😀") {
		words[w] = true
	}
	for i, s := range tok.bpe.tokens {
		if i%97 == 0 && s != "" && !strings.HasPrefix(s, "<|") {
			// Vocabulary entries are byte-level strings: map back to bytes.
			var b []byte
			for _, r := range strings.TrimSuffix(s, "</w>") {
				b = append(b, runeToByte[r])
			}
			words[string(b)] = true
		}
	}
	check(t, len(words) > 500, "only %d words", len(words))
	for w := range words {
		if w == "<|startoftext|>" || w == "<|endoftext|>" {
			continue
		}
		ids, err := tok.bpe.bpeWord(w)
		must(t, err, w)
		equal(t, naiveBPE(w, ranks), tokenStrings(tok, ids), "BPE of ", w)
	}
}

func TestSpecialTokens(t *testing.T) {
	tok := loadShared(t)
	cases := []struct {
		text string
		want []string
	}{
		// Split out before cleaning: even inside a run of punctuation.
		{"a.<|endoftext|>b", []string{"a</w>", ".</w>", "<|endoftext|>", "b</w>"}},
		{"<|startoftext|><|startoftext|>", []string{"<|startoftext|>", "<|startoftext|>"}},
		// Upper case is not a special token, but after lower-casing CLIP's
		// pattern finds it at the start of a match.
		{"x <|ENDOFTEXT|>", []string{"x</w>", "<|endoftext|>"}},
		// The special token is split out before ftfy, so its '<' does not
		// stop HTML unescaping of the rest.
		{"a &amp; b<|endoftext|>", []string{"a</w>", "&</w>", "b</w>", "<|endoftext|>"}},
	}
	for _, c := range cases {
		ids, err := tok.Tokens(c.text)
		must(t, err, c.text)
		equal(t, c.want, tokenStrings(tok, ids), "tokens of ", c.text)
	}
	// An unfinished special token is ordinary text.
	ids, err := tok.Tokens("<|endoftext")
	must(t, err)
	for _, id := range ids {
		check(t, id != tok.EOS(), "<|endoftext gave EOS: %v", ids)
	}

	ids, mask, err := tok.Encode("")
	must(t, err)
	want := make([]int32, 77)
	for i := range want {
		want[i] = 49407
	}
	want[0] = 49406
	equal(t, want, ids, "empty prompt ids")
	equal(t, int32(1), mask[0], "mask[0]")
	equal(t, int32(1), mask[1], "mask[1]")
	equal(t, int32(0), mask[2], "mask[2]")
}

func TestTruncation(t *testing.T) {
	tok := loadShared(t)
	text := strings.Repeat("left lower lobe opacity, ", 40)
	content, err := tok.Tokens(text)
	must(t, err)
	check(t, len(content) > 150, "expected a long prompt, got %d tokens", len(content))
	ids, mask, err := tok.Encode(text)
	must(t, err)
	equal(t, 77, len(ids), "length")
	equal(t, tok.BOS(), ids[0], "first id")
	equal(t, tok.EOS(), ids[76], "last id")
	equal(t, content[:75], ids[1:76], "truncated content")
	for i, m := range mask {
		equal(t, int32(1), m, "mask ", i)
	}
}

// TestSD2Pad writes a Stable Diffusion 2 style config (pad "!") beside the
// shared vocabulary.
func TestSD2Pad(t *testing.T) {
	src := sharedPath(t, goldenDir+"/model/diffusers/tokenizer")
	dir := t.TempDir()
	for _, n := range []string{"vocab.json", "merges.txt"} {
		abs, err := filepath.Abs(filepath.Join(src, n))
		must(t, err)
		must(t, os.Symlink(abs, filepath.Join(dir, n)))
	}
	must(t, os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(`{
  "bos_token": {"__type": "AddedToken", "content": "<|startoftext|>", "lstrip": false},
  "eos_token": {"__type": "AddedToken", "content": "<|endoftext|>"},
  "pad_token": "<|endoftext|>",
  "unk_token": "<|endoftext|>",
  "model_max_length": 77,
  "tokenizer_class": "CLIPTokenizer"
}`), 0o644))
	// special_tokens_map.json wins over tokenizer_config.json.
	must(t, os.WriteFile(filepath.Join(dir, "special_tokens_map.json"), []byte(`{
  "bos_token": {"content": "<|startoftext|>", "lstrip": false, "normalized": true, "rstrip": false, "single_word": false},
  "eos_token": {"content": "<|endoftext|>", "lstrip": false, "normalized": true, "rstrip": false, "single_word": false},
  "pad_token": "!",
  "unk_token": {"content": "<|endoftext|>", "lstrip": false, "normalized": true, "rstrip": false, "single_word": false}
}`), 0o644))
	tok, err := Load(dir)
	must(t, err)
	equal(t, int32(0), tok.Pad(), "pad id")
	equal(t, "!", tok.Config().Pad, "pad token")

	ids, mask, err := tok.Encode("a photo of a cat")
	must(t, err)
	// Same ids as SD1 (golden prompt 0), then "!" (0) padding.
	want := []int32{49406, 320, 1125, 539, 320, 2368, 49407}
	equal(t, want, ids[:7], "head")
	for i := 7; i < 77; i++ {
		equal(t, int32(0), ids[i], "pad at ", i)
		equal(t, int32(0), mask[i], "mask at ", i)
	}
	equal(t, int32(1), mask[6], "mask at EOS")

	// As reported for diffusers/transformers (diffusers issue 4153): with "!"
	// a special token, each '!' is split out on its own and becomes id 0.
	ids, _, err = tok.Encode("! !! !!!")
	must(t, err)
	equal(t, []int32{49406, 0, 0, 0, 0, 0, 0, 49407, 0}, ids[:9], "exclamation marks")
	equal(t, "a photo", tok.Decode([]int32{49406, 320, 1125, 49407, 0, 0}), "decode skips pad")
}

func TestChunks(t *testing.T) {
	tok := loadShared(t)
	prompts, _, _ := readGoldenIndex(t)
	report := prompts[13].Prompt // the long radiology report: 97 tokens
	content, err := tok.Tokens(report)
	must(t, err)
	equal(t, 97, len(content), "report tokens")
	ids, masks, err := tok.EncodeChunks(report)
	must(t, err)
	equal(t, 2, len(ids), "chunks")
	equal(t, 2, len(masks), "mask chunks")
	first, _, err := tok.Encode(report)
	must(t, err)
	equal(t, first, ids[0], "first chunk = Encode")
	equal(t, int32(49406), ids[1][0], "second chunk BOS")
	equal(t, content[75:], ids[1][1:23], "second chunk tokens")
	equal(t, int32(49407), ids[1][23], "second chunk EOS")
	for i := 0; i < 77; i++ {
		wantMask := int32(0)
		if i <= 23 {
			wantMask = 1
		}
		equal(t, wantMask, masks[1][i], "second mask at ", i)
		equal(t, int32(1), masks[0][i], "first mask at ", i)
		if i > 23 {
			equal(t, tok.Pad(), ids[1][i], "second chunk pad at ", i)
		}
	}

	// Exactly 75 tokens fit one chunk; 76 need two; "" gives one.
	for _, c := range []struct {
		n, chunks int
	}{{0, 1}, {1, 1}, {75, 1}, {76, 2}, {150, 2}, {151, 3}} {
		text := strings.TrimSpace(strings.Repeat("a ", c.n))
		ids, masks, err := tok.EncodeChunks(text)
		must(t, err)
		equal(t, c.chunks, len(ids), "chunks for ", c.n, " tokens")
		total := 0
		for k := range ids {
			equal(t, 77, len(ids[k]), "chunk length")
			equal(t, int32(49406), ids[k][0], "chunk BOS")
			n := 0
			for _, m := range masks[k] {
				n += int(m)
			}
			equal(t, int32(49407), ids[k][n-1], "chunk EOS")
			total += n - 2
		}
		equal(t, c.n, total, "tokens over chunks")
	}
	single, _, err := tok.Encode("")
	must(t, err)
	empty, _, err := tok.EncodeChunks("")
	must(t, err)
	equal(t, [][]int32{single}, empty, "empty prompt chunks")
}

func TestDecode(t *testing.T) {
	tok := loadShared(t)
	for _, c := range []struct{ in, want string }{
		{"A photo of a Cat!", "a photo of a cat !"},
		{"café — naïve", "café — naïve"},
		{"Small left-sided pleural effusion.", "small left - sided pleural effusion ."},
	} {
		ids, _, err := tok.Encode(c.in)
		must(t, err)
		equal(t, c.want, tok.Decode(ids), "decode of ", c.in)
	}
	equal(t, "<?99999>", tok.Decode([]int32{99999}), "unknown id")
}

func TestMalformedInputs(t *testing.T) {
	vocab, merges := tinyVocab()
	cases := []struct {
		name    string
		vocab   map[string]int
		merges  []string
		rawV    string // replaces vocab.json when set
		tc, stm string
		want    []string // substrings of the error
	}{
		{name: "missing vocab", merges: merges, want: []string{"vocab.json is missing"}},
		{name: "missing merges", vocab: vocab, want: []string{"merges.txt is missing"}},
		{name: "bad merges line", vocab: vocab, merges: []string{"l o", "lo w x"}, want: []string{"merges.txt: line 3", "two symbols"}},
		{name: "empty merges", vocab: vocab, merges: []string{}, want: []string{"no merges"}},
		{name: "vocab not json", rawV: "[1, 2", merges: merges, want: []string{"vocab.json", "JSON object"}},
		{name: "vocab bad id", rawV: `{"a": -1}`, merges: merges, want: []string{"vocab.json", `"a"`, "integer"}},
		{name: "vocab float id", rawV: `{"a": 1.5}`, merges: merges, want: []string{"vocab.json", "integer"}},
		{name: "vocab duplicate id", rawV: `{"a": 1, "b": 1}`, merges: merges, want: []string{"id 1", "one token per id"}},
		{name: "pad not in vocab", vocab: vocab, merges: merges, stm: `{"pad_token": "<pad>"}`, want: []string{"pad token", `"<pad>"`, "not in"}},
		{name: "bos object without content", vocab: vocab, merges: merges, stm: `{"bos_token": {"lstrip": false}}`, want: []string{"special_tokens_map.json", "bos_token", "content"}},
		{name: "bad max length", vocab: vocab, merges: merges, tc: `{"model_max_length": 1e30}`, want: []string{"tokenizer_config.json", "model_max_length"}},
		{name: "config not json", vocab: vocab, merges: merges, tc: `{`, want: []string{"tokenizer_config.json", "JSON object"}},
		{name: "additional not list", vocab: vocab, merges: merges, stm: `{"additional_special_tokens": "x"}`, want: []string{"additional_special_tokens"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeTokenizerDir(t, c.vocab, c.merges, c.tc, c.stm)
			if c.rawV != "" {
				must(t, os.WriteFile(filepath.Join(dir, "vocab.json"), []byte(c.rawV), 0o644))
			}
			_, err := Load(dir)
			check(t, err != nil, "expected an error")
			for _, w := range c.want {
				check(t, strings.Contains(err.Error(), w), "error %q does not mention %q", err, w)
			}
		})
	}

	tok, err := Load(writeTokenizerDir(t, vocab, merges, "", ""))
	must(t, err)
	_, _, err = tok.Encode("ok \xff bad")
	check(t, err != nil && strings.Contains(err.Error(), "UTF-8") && strings.Contains(err.Error(), "offset 3"), "invalid UTF-8: %v", err)
	_, err = New(strings.NewReader(`{"a": 0}`), strings.NewReader("#version\na a\n"), Config{MaxLength: 1})
	check(t, err != nil && strings.Contains(err.Error(), "max length"), "short max length: %v", err)
}

// TestConcurrentEncode encodes prompts from many goroutines on a fresh
// tokenizer (empty cache) and compares with sequential results; run with
// -race to check the cache.
func TestConcurrentEncode(t *testing.T) {
	seq := loadShared(t)
	conc := loadShared(t)
	prompts, _, _ := readGoldenIndex(t)
	var texts []string
	for _, p := range prompts {
		texts = append(texts, p.Prompt)
	}
	for i := range 50 {
		texts = append(texts, fmt.Sprintf("finding %d: opacity number %d in lobe%dx", i, i*7, i%5))
	}
	want := make([][]int32, len(texts))
	for i, s := range texts {
		ids, _, err := seq.Encode(s)
		must(t, err)
		want[i] = ids
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8*len(texts))
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range texts {
				i := (k + g*7) % len(texts)
				ids, _, err := conc.Encode(texts[i])
				if err != nil || fmt.Sprint(ids) != fmt.Sprint(want[i]) {
					errs <- fmt.Sprintf("goroutine %d, %q: %v %v", g, texts[i], err, ids)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

func TestByteTokenizer(t *testing.T) {
	var tk Tokenizer = NewByteTokenizer()
	equal(t, 77, tk.MaxLength(), "max length")
	equal(t, 259, tk.VocabSize(), "vocab size")
	ids, mask, err := tk.Encode("hé")
	must(t, err)
	// 'h' = 0x68, 'é' = 0xC3 0xA9; ids are byte + 3.
	equal(t, []int32{1, 0x68 + 3, 0xc3 + 3, 0xa9 + 3, 2, 0}, ids[:6], "ids")
	equal(t, []int32{1, 1, 1, 1, 1, 0}, mask[:6], "mask")
	equal(t, "hé", tk.Decode(ids), "decode")

	ids, _, err = tk.Encode("")
	must(t, err)
	equal(t, []int32{1, 2, 0}, ids[:3], "empty")

	long := strings.Repeat("x", 200)
	ids, mask, err = tk.Encode(long)
	must(t, err)
	equal(t, int32(2), ids[76], "truncated EOS")
	equal(t, int32(1), mask[76], "truncated mask")
	chunks, _, err := tk.EncodeChunks(long)
	must(t, err)
	equal(t, 3, len(chunks), "chunks of 200 bytes")
	equal(t, strings.Repeat("x", 50), tk.Decode(chunks[2]), "last chunk")

	small, err := NewByteTokenizerLength(4)
	must(t, err)
	ids, _, err = small.Encode("abc")
	must(t, err)
	equal(t, []int32{1, 'a' + 3, 'b' + 3, 2}, ids, "length 4")
	_, err = NewByteTokenizerLength(1)
	check(t, err != nil, "length 1 should fail")
	_, _, err = tk.Encode("\xc3")
	check(t, err != nil, "invalid UTF-8 should fail")
}
