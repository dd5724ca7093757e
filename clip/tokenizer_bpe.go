package clip

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
)

// endOfWord is appended to the last symbol of every pre-token before BPE.
const endOfWord = "</w>"

// maxMerges is the number of merges CLIP uses: transformers and OpenAI both
// keep merges.txt lines 1 .. 49152-256-2 (the vocabulary holds 256 byte
// symbols, 256 byte symbols with "</w>", the merges and 2 special tokens).
const maxMerges = 49152 - 256 - 2

// maxVocabID bounds the ids accepted from vocab.json.
const maxVocabID = 1<<24 - 1

// maxCacheEntries bounds the word cache; words beyond it are encoded each time.
const maxCacheEntries = 1 << 17

// byteToRune is GPT-2/CLIP's bytes_to_unicode: printable Latin-1 bytes
// ('!'..'~', '¡'..'¬', '®'..'ÿ') map to themselves, the other 68 bytes to
// U+0100, U+0101, ... in byte order, so every byte is a visible character.
var byteToRune, runeToByte = func() ([256]rune, map[rune]byte) {
	var fwd [256]rune
	inv := make(map[rune]byte, 256)
	n := rune(0)
	for b := 0; b < 256; b++ {
		if b >= '!' && b <= '~' || b >= 0xa1 && b <= 0xac || b >= 0xae && b <= 0xff {
			fwd[b] = rune(b)
		} else {
			fwd[b] = 256 + n
			n++
		}
		inv[fwd[b]] = byte(b)
	}
	return fwd, inv
}()

// mergeRule is one merges.txt line: the pair's rank (its line order) and the
// symbol the pair becomes.
type mergeRule struct {
	rank   int32
	result int32
}

// bpeModel holds a byte-level BPE vocabulary and its merges. Symbols are
// numbered internally (every vocabulary token, merge part and merge result);
// symVocab maps a symbol to its vocabulary id, or -1.
type bpeModel struct {
	vocab    map[string]int32
	tokens   []string // id -> token ("" where the id is unused)
	symIndex map[string]int32
	symVocab []int32
	merges   map[uint64]mergeRule
	byteSym  [256]int32 // symbol of a byte's character
	byteEnd  [256]int32 // symbol of a byte's character + "</w>"
	unk      int32      // vocabulary id for unknown symbols, or -1

	cache      sync.Map // pre-token string -> []int32 vocabulary ids
	cacheCount atomic.Int64
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// symbol returns the symbol number of s, adding it when new.
func (m *bpeModel) symbol(s string) int32 {
	if id, ok := m.symIndex[s]; ok {
		return id
	}
	id := int32(len(m.symVocab))
	m.symIndex[s] = id
	v, ok := m.vocab[s]
	if !ok {
		v = -1
	}
	m.symVocab = append(m.symVocab, v)
	return id
}

// readVocab parses vocab.json: a JSON object from token to id. name is used
// in errors.
func readVocab(r io.Reader, name string) (map[string]int32, []string, error) {
	var raw map[string]json.Number
	dec := json.NewDecoder(r)
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, nil, fmt.Errorf("clip: %s: expected a JSON object mapping token strings to integer ids: %v", name, err)
	}
	if len(raw) == 0 {
		return nil, nil, fmt.Errorf("clip: %s: the vocabulary is empty; expected a JSON object mapping token strings to integer ids", name)
	}
	vocab := make(map[string]int32, len(raw))
	maxID := int64(-1)
	for tok, num := range raw {
		id, err := num.Int64()
		if err != nil || id < 0 || id > maxVocabID {
			return nil, nil, fmt.Errorf("clip: %s: token %q has id %s; expected an integer in [0, %d]", name, tok, num, maxVocabID)
		}
		vocab[tok] = int32(id)
		maxID = max(maxID, id)
	}
	tokens := make([]string, maxID+1)
	used := make([]bool, maxID+1)
	for tok, id := range vocab {
		if used[id] {
			return nil, nil, fmt.Errorf("clip: %s: id %d is given to both %q and %q; expected one token per id", name, id, tokens[id], tok)
		}
		used[id] = true
		tokens[id] = tok
	}
	return vocab, tokens, nil
}

// readMerges parses merges.txt: an optional "#version" first line, then one
// merge per line, two symbols separated by a space, highest priority first.
// Like transformers, only the first maxMerges merges are used and a pair
// listed twice keeps its later rank.
func (m *bpeModel) readMerges(r io.Reader, name string) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	line := 0
	rank := int32(0)
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if line == 1 && strings.HasPrefix(text, "#") {
			continue
		}
		if rank >= maxMerges {
			break
		}
		if strings.TrimSpace(text) == "" {
			// transformers keeps a blank line as an empty merge that never
			// applies but uses up a rank (which matters only for the cap).
			rank++
			continue
		}
		parts := strings.Fields(text)
		if len(parts) != 2 {
			return fmt.Errorf("clip: %s: line %d is %q; expected two symbols separated by a space (a BPE merge such as \"t h\")", name, line, text)
		}
		a, b := m.symbol(parts[0]), m.symbol(parts[1])
		res := m.symbol(parts[0] + parts[1])
		m.merges[pairKey(a, b)] = mergeRule{rank: rank, result: res}
		rank++
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("clip: %s: reading line %d: %v", name, line+1, err)
	}
	if len(m.merges) == 0 {
		return fmt.Errorf("clip: %s: no merges found; expected a \"#version\" line followed by lines of two symbols", name)
	}
	return nil
}

// newBPEModel builds the model from vocab.json and merges.txt readers.
func newBPEModel(vocabR, mergesR io.Reader, vocabName, mergesName string) (*bpeModel, error) {
	vocab, tokens, err := readVocab(vocabR, vocabName)
	if err != nil {
		return nil, err
	}
	m := &bpeModel{
		vocab:    vocab,
		tokens:   tokens,
		symIndex: make(map[string]int32, len(vocab)+1024),
		symVocab: make([]int32, 0, len(vocab)+1024),
		merges:   make(map[uint64]mergeRule, 50000),
		unk:      -1,
	}
	// Number vocabulary tokens first, in id order, so that symbol numbers are
	// reproducible.
	for _, tok := range tokens {
		if tok != "" {
			m.symbol(tok)
		}
	}
	if err := m.readMerges(mergesR, mergesName); err != nil {
		return nil, err
	}
	for b := 0; b < 256; b++ {
		c := string(byteToRune[b])
		m.byteSym[b] = m.symbol(c)
		m.byteEnd[b] = m.symbol(c + endOfWord)
	}
	return m, nil
}

// encodeWord returns the vocabulary ids of one pre-token (lower-cased text
// from the pre-tokeniser), through the cache.
func (m *bpeModel) encodeWord(word string, dst []int32) ([]int32, error) {
	if v, ok := m.cache.Load(word); ok {
		return append(dst, v.([]int32)...), nil
	}
	ids, err := m.bpeWord(word)
	if err != nil {
		return dst, err
	}
	if m.cacheCount.Load() < maxCacheEntries {
		if _, loaded := m.cache.LoadOrStore(word, ids); !loaded {
			m.cacheCount.Add(1)
		}
	}
	return append(dst, ids...), nil
}

// bpeWord runs byte-level BPE on one pre-token: its UTF-8 bytes become
// symbols (the last one carrying "</w>"), then the adjacent pair with the
// lowest merge rank is merged everywhere, left to right, until no pair has
// a rank.
func (m *bpeModel) bpeWord(word string) ([]int32, error) {
	if word == "" {
		return nil, nil
	}
	if word == "<|startoftext|>" || word == "<|endoftext|>" {
		// transformers' BPE cache starts with these two, whole.
		id, ok := m.vocab[word]
		if !ok {
			return nil, fmt.Errorf("clip: %q is not in the vocabulary", word)
		}
		return []int32{id}, nil
	}
	syms := make([]int32, len(word))
	for i := 0; i < len(word); i++ {
		syms[i] = m.byteSym[word[i]]
	}
	syms[len(syms)-1] = m.byteEnd[word[len(word)-1]]
	for len(syms) > 1 {
		best := -1
		bestRank := int32(math.MaxInt32)
		for i := 0; i+1 < len(syms); i++ {
			if r, ok := m.merges[pairKey(syms[i], syms[i+1])]; ok && r.rank < bestRank {
				best, bestRank = i, r.rank
			}
		}
		if best < 0 {
			break
		}
		a, b := syms[best], syms[best+1]
		res := m.merges[pairKey(a, b)].result
		j := 0
		for i := 0; i < len(syms); j++ {
			if i+1 < len(syms) && syms[i] == a && syms[i+1] == b {
				syms[j] = res
				i += 2
			} else {
				syms[j] = syms[i]
				i++
			}
		}
		syms = syms[:j]
	}
	ids := make([]int32, len(syms))
	for i, s := range syms {
		v := m.symVocab[s]
		if v < 0 {
			if m.unk < 0 {
				return nil, fmt.Errorf("clip: BPE symbol %q of %q is not in the vocabulary and no unk token is set", m.symName(s), word)
			}
			v = m.unk
		}
		ids[i] = v
	}
	return ids, nil
}

// symName returns the string of a symbol number (slow; for errors).
func (m *bpeModel) symName(s int32) string {
	for k, v := range m.symIndex {
		if v == s {
			return k
		}
	}
	return "?"
}

// preTokenize splits cleaned (lower-cased) text like CLIP's pattern
//
//	<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//
// (case-insensitive) and calls emit for each match.
func preTokenize(s string, emit func(string) error) error {
	for i := 0; i < len(s); {
		rest := s[i:]
		if strings.HasPrefix(rest, "<|startoftext|>") {
			if err := emit(rest[:15]); err != nil {
				return err
			}
			i += 15
			continue
		}
		if strings.HasPrefix(rest, "<|endoftext|>") {
			if err := emit(rest[:13]); err != nil {
				return err
			}
			i += 13
			continue
		}
		if n := contraction(rest); n > 0 {
			if err := emit(rest[:n]); err != nil {
				return err
			}
			i += n
			continue
		}
		r, size := decodeRune(rest)
		switch {
		case pyIsSpace(r):
			i += size
			continue
		case unicode.IsLetter(r):
			j := size
			for j < len(rest) {
				r2, sz := decodeRune(rest[j:])
				if !unicode.IsLetter(r2) {
					break
				}
				j += sz
			}
			if err := emit(rest[:j]); err != nil {
				return err
			}
			i += j
		case unicode.IsNumber(r):
			if err := emit(rest[:size]); err != nil {
				return err
			}
			i += size
		default:
			j := size
			for j < len(rest) {
				r2, sz := decodeRune(rest[j:])
				if pyIsSpace(r2) || unicode.IsLetter(r2) || unicode.IsNumber(r2) {
					break
				}
				j += sz
			}
			if err := emit(rest[:j]); err != nil {
				return err
			}
			i += j
		}
	}
	return nil
}

// contraction returns the byte length of 's 't 're 've 'm 'll 'd at the start
// of s (the pattern is case-insensitive, so U+017F LONG S counts as s), or 0.
func contraction(s string) int {
	if len(s) < 2 || s[0] != '\'' {
		return 0
	}
	switch s[1] {
	case 's', 't', 'm', 'd', 'S', 'T', 'M', 'D':
		return 2
	case 'r', 'R':
		if len(s) >= 3 && (s[2] == 'e' || s[2] == 'E') {
			return 3
		}
	case 'v', 'V':
		if len(s) >= 3 && (s[2] == 'e' || s[2] == 'E') {
			return 3
		}
	case 'l', 'L':
		if len(s) >= 3 && (s[2] == 'l' || s[2] == 'L') {
			return 3
		}
	}
	if strings.HasPrefix(s[1:], "ſ") {
		return 1 + len("ſ")
	}
	return 0
}
