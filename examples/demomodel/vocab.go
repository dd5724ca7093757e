package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/roentgo/roentgo/clip"
	"github.com/roentgo/roentgo/phantom"
)

// The demo model's tokenizer is CLIP's BPE (clip.CLIPTokenizer, OpenAI's
// vocabulary and merges) restricted to what the phantom reports need:
//
//   - ids 0-511: the 512 byte symbols of CLIP's vocabulary (each byte with
//     and without the end-of-word mark), as in the full vocabulary, so that
//     every text still tokenizes;
//   - then the merges that BPE applies to the words of the corpus, in their
//     original rank order, each adding its result as the next id;
//   - then <|startoftext|> and <|endoftext|>.
//
// BPE applies, at each step, the lowest-ranked merge among the pairs
// present in the word. For a corpus word the merges the full tokenizer
// applies are all kept (in the same relative order), so the reduced
// tokenizer chooses the same merge at every step and gives the same tokens
// (only renumbered); reduceVocab checks this for every corpus word. A word
// outside the corpus is split by the kept merges alone: coarser, still
// valid BPE. The full table (49408 rows) at width 128 would be 6.3 M
// parameters, 12.6 MB in F16, more than the rest of the model together; the
// reduced one has about a thousand rows (0.12 M parameters).

// fullTokenizer is CLIP's vocabulary and merges as read from a diffusers
// tokenizer folder.
type fullTokenizer struct {
	tok    *clip.CLIPTokenizer
	byID   []string          // token strings by id
	ids    map[string]int    // token string -> id
	merges [][2]string       // in rank order
	rank   map[[2]string]int // merge -> rank
}

// loadFullTokenizer reads vocab.json and merges.txt from dir.
func loadFullTokenizer(dir string) (*fullTokenizer, error) {
	tok, err := clip.Load(dir)
	if err != nil {
		return nil, err
	}
	vb, err := os.ReadFile(filepath.Join(dir, "vocab.json"))
	if err != nil {
		return nil, err
	}
	f := &fullTokenizer{tok: tok, ids: map[string]int{}, rank: map[[2]string]int{}}
	if err := json.Unmarshal(vb, &f.ids); err != nil {
		return nil, fmt.Errorf("%s: %v", filepath.Join(dir, "vocab.json"), err)
	}
	f.byID = make([]string, len(f.ids))
	for s, id := range f.ids {
		if id < 0 || id >= len(f.byID) || f.byID[id] != "" {
			return nil, fmt.Errorf("%s: ids are not 0..%d each once (id %d)", filepath.Join(dir, "vocab.json"), len(f.ids)-1, id)
		}
		f.byID[id] = s
	}
	mf, err := os.Open(filepath.Join(dir, "merges.txt"))
	if err != nil {
		return nil, err
	}
	defer mf.Close()
	sc := bufio.NewScanner(mf)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for first := true; sc.Scan(); first = false {
		line := sc.Text()
		if first && strings.HasPrefix(line, "#version") {
			continue
		}
		a, b, ok := strings.Cut(line, " ")
		if !ok || a == "" || b == "" || strings.Contains(b, " ") {
			continue
		}
		m := [2]string{a, b}
		if _, dup := f.rank[m]; !dup {
			f.rank[m] = len(f.merges)
			f.merges = append(f.merges, m)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(f.byID) < 512 || len(f.merges) == 0 {
		return nil, fmt.Errorf("%s: %d tokens, %d merges; expected CLIP's byte-level vocabulary", dir, len(f.byID), len(f.merges))
	}
	return f, nil
}

// bpe splits word (byte symbols, the last one carrying "</w>") with the
// full merges and returns the tokens and the ranks of the merges applied.
// It is CLIP's bpe(): merge every occurrence of the lowest-ranked pair
// present, until no pair is a merge.
func (f *fullTokenizer) bpe(word string) (tokens []string, used []int) {
	base := strings.TrimSuffix(word, "</w>")
	for len(base) > 0 {
		_, n := utf8.DecodeRuneInString(base)
		tokens = append(tokens, base[:n])
		base = base[n:]
	}
	if len(tokens) == 0 {
		return nil, nil
	}
	if strings.HasSuffix(word, "</w>") {
		tokens[len(tokens)-1] += "</w>"
	}
	for len(tokens) > 1 {
		best, bestRank := [2]string{}, -1
		for i := 0; i+1 < len(tokens); i++ {
			if r, ok := f.rank[[2]string{tokens[i], tokens[i+1]}]; ok && (bestRank < 0 || r < bestRank) {
				best, bestRank = [2]string{tokens[i], tokens[i+1]}, r
			}
		}
		if bestRank < 0 {
			break
		}
		used = append(used, bestRank)
		var next []string
		for i := 0; i < len(tokens); i++ {
			if i+1 < len(tokens) && tokens[i] == best[0] && tokens[i+1] == best[1] {
				next = append(next, best[0]+best[1])
				i++
			} else {
				next = append(next, tokens[i])
			}
		}
		tokens = next
	}
	return tokens, used
}

// tokenStrings returns the full tokenizer's tokens of text as strings.
func (f *fullTokenizer) tokenStrings(tok *clip.CLIPTokenizer, text string) ([]string, error) {
	ids, err := tok.Tokens(text)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = tok.TokenString(id)
	}
	return out, nil
}

// reducedVocab is the demo tokenizer's files.
type reducedVocab struct {
	Vocab  []byte // vocab.json
	Merges []byte // merges.txt
	Size   int    // number of tokens
	Words  int    // distinct corpus words
}

// reduceVocab derives the reduced vocabulary from the full tokenizer and a
// corpus of texts, and checks that the reduced tokenizer splits every
// corpus text into the same token strings as the full one.
func reduceVocab(f *fullTokenizer, corpus []string) (*reducedVocab, error) {
	used := map[int]bool{}
	words := map[string]bool{}
	for _, text := range corpus {
		toks, err := f.tokenStrings(f.tok, text)
		if err != nil {
			return nil, fmt.Errorf("corpus text %q: %v", text, err)
		}
		// Words end with a token carrying "</w>".
		var cur []string
		for _, t := range toks {
			cur = append(cur, t)
			if !strings.HasSuffix(t, "</w>") {
				continue
			}
			w := strings.Join(cur, "")
			want := cur
			cur = nil
			if words[w] {
				continue
			}
			words[w] = true
			got, ranks := f.bpe(w)
			if strings.Join(got, " ") != strings.Join(want, " ") {
				return nil, fmt.Errorf("word %q: BPE gives %q, the tokenizer %q", w, got, want)
			}
			for _, r := range ranks {
				used[r] = true
			}
		}
		if len(cur) > 0 {
			return nil, fmt.Errorf("corpus text %q: tokens %q do not end a word", text, cur)
		}
	}
	ranks := make([]int, 0, len(used))
	for r := range used {
		ranks = append(ranks, r)
	}
	sort.Ints(ranks)
	vocab := map[string]int{}
	order := []string{}
	addTok := func(s string) {
		if _, ok := vocab[s]; !ok {
			vocab[s] = len(order)
			order = append(order, s)
		}
	}
	for id := 0; id < 512; id++ {
		addTok(f.byID[id])
	}
	var mb bytes.Buffer
	mb.WriteString("#version: 0.2\n")
	for _, r := range ranks {
		m := f.merges[r]
		fmt.Fprintf(&mb, "%s %s\n", m[0], m[1])
		addTok(m[0] + m[1])
	}
	addTok("<|startoftext|>")
	addTok("<|endoftext|>")
	vb, err := json.Marshal(vocab)
	if err != nil {
		return nil, err
	}
	rv := &reducedVocab{Vocab: vb, Merges: mb.Bytes(), Size: len(order), Words: len(words)}
	small, err := rv.tokenizer()
	if err != nil {
		return nil, err
	}
	for _, text := range corpus {
		a, err := f.tokenStrings(f.tok, text)
		if err != nil {
			return nil, err
		}
		b, err := f.tokenStrings(small, text)
		if err != nil {
			return nil, err
		}
		if strings.Join(a, " ") != strings.Join(b, " ") {
			return nil, fmt.Errorf("the reduced vocabulary splits %q into %q, the full one into %q", text, b, a)
		}
	}
	return rv, nil
}

// tokenizer returns the CLIP tokenizer of the reduced files (SD 1.x's
// settings: 77 tokens, <|endoftext|> pads).
func (rv *reducedVocab) tokenizer() (*clip.CLIPTokenizer, error) {
	return clip.New(bytes.NewReader(rv.Vocab), bytes.NewReader(rv.Merges), clip.DefaultConfig())
}

// tokenizerFiles returns the files of the diffusers tokenizer/ folder.
func (rv *reducedVocab) tokenizerFiles() map[string][]byte {
	return map[string][]byte{
		"vocab.json":              rv.Vocab,
		"merges.txt":              rv.Merges,
		"special_tokens_map.json": []byte(`{"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}` + "\n"),
		"tokenizer_config.json":   []byte(`{"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "do_lower_case": true, "errors": "replace"}` + "\n"),
	}
}

// corpusReports is the number of phantom reports the vocabulary is drawn
// from (at least; the training images' reports are always included).
const corpusReports = 20000

// extraPrompts are prompt phrasings users are likely to type beside the
// reports' own, added to the vocabulary's corpus.
var extraPrompts = []string{
	"a chest radiograph", "chest x-ray", "frontal PA chest radiograph of a patient",
	"normal chest", "no findings", "pleural effusion on the left side", "right pneumothorax",
	"enlarged heart", "lung nodule", "lung mass", "collapse", "pneumonia", "opacity",
	"0 1 2 3 4 5 6 7 8 9 mm cm", "male female", "with without and or",
}

// vocabCorpus returns the texts the vocabulary is drawn from: the reports of
// dataset images 0..max(images, corpusReports)-1 (seed, findings rate) and
// extraPrompts.
func vocabCorpus(seed uint64, rate float64, images int) []string {
	n := max(images, corpusReports)
	out := make([]string, 0, n+len(extraPrompts))
	for i := 0; i < n; i++ {
		p := phantom.Random(phantom.DatasetSeed(seed, i), phantom.Options{FindingsRate: rate})
		out = append(out, phantom.MakeReport(p).Text)
	}
	return append(out, extraPrompts...)
}
