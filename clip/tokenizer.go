package clip

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"
)

// chunkTokens is the number of prompt tokens per chunk in EncodeChunks (and
// the most Encode keeps): the length minus the BOS and EOS that wrap every
// chunk (75 for CLIP).
func chunkTokens(maxLen int) int { return maxLen - 2 }

// Tokenizer turns a prompt into the fixed-length id sequence a text encoder
// takes. Ids and masks are int32: vocabularies are far below 2^31 entries and
// the embedding lookup indexes with int32.
type Tokenizer interface {
	// Encode returns BOS, the prompt's tokens, EOS, then padding up to
	// MaxLength, and a mask that is 1 for BOS, tokens and EOS and 0 for the
	// padding. A prompt longer than MaxLength-2 tokens is truncated (the last
	// id is then EOS). The empty prompt gives BOS, EOS and padding.
	Encode(text string) (ids, mask []int32, err error)
	// EncodeChunks splits the prompt's tokens into chunks of MaxLength-2 and
	// encodes each as Encode would (BOS + chunk + EOS + padding), so that no
	// token of a long prompt is dropped: ids[c] and masks[c] have MaxLength
	// entries. The text encoder runs once per chunk and the embeddings are
	// concatenated along the sequence, as popular Stable Diffusion front ends
	// do. An empty prompt gives one chunk.
	EncodeChunks(text string) (ids, masks [][]int32, err error)
	// Tokens returns the prompt's token ids without BOS, EOS, truncation or
	// padding.
	Tokens(text string) ([]int32, error)
	// Decode turns ids back into text for debugging, leaving out the
	// special tokens (BOS, EOS, padding).
	Decode(ids []int32) string
	// MaxLength is the length of every encoded sequence (77 for CLIP).
	MaxLength() int
	// VocabSize is one more than the largest id (the embedding table's rows).
	VocabSize() int
	// BOS, EOS and Pad are the ids of the start, end and padding tokens.
	BOS() int32
	EOS() int32
	Pad() int32
}

// padSequence wraps content as BOS + content + EOS, truncating content to
// maxLen-2 ids, and pads to maxLen.
func padSequence(content []int32, maxLen int, bos, eos, pad int32) (ids, mask []int32) {
	if n := chunkTokens(maxLen); len(content) > n {
		content = content[:n]
	}
	ids = make([]int32, maxLen)
	mask = make([]int32, maxLen)
	ids[0], mask[0] = bos, 1
	copy(ids[1:], content)
	for i := 1; i <= len(content); i++ {
		mask[i] = 1
	}
	ids[len(content)+1], mask[len(content)+1] = eos, 1
	for i := len(content) + 2; i < maxLen; i++ {
		ids[i] = pad
	}
	return ids, mask
}

// chunkSequence splits content into chunks of maxLen-2 ids, each padded by
// padSequence; empty content gives one chunk.
func chunkSequence(content []int32, maxLen int, bos, eos, pad int32) (ids, masks [][]int32) {
	n := chunkTokens(maxLen)
	for start := 0; start < len(content) || start == 0; start += n {
		end := min(start+n, len(content))
		i, m := padSequence(content[start:end], maxLen, bos, eos, pad)
		ids = append(ids, i)
		masks = append(masks, m)
		if end == len(content) {
			break
		}
	}
	return ids, masks
}

// Config holds the special tokens and sequence length of a CLIP tokenizer,
// as found in a diffusers tokenizer/ folder (tokenizer_config.json and
// special_tokens_map.json).
type Config struct {
	BOS, EOS, Pad, Unk string
	// Additional lists additional_special_tokens. Like every special token
	// it is split out of the text before cleaning and maps to its own id.
	Additional []string
	// MaxLength is model_max_length: the length of encoded sequences.
	MaxLength int
}

// DefaultConfig returns Stable Diffusion 1.x's tokenizer settings:
// <|startoftext|> and <|endoftext|>, padding with <|endoftext|>, length 77.
// Stable Diffusion 2.x pads with "!" instead (id 0), which its
// special_tokens_map.json says.
func DefaultConfig() Config {
	return Config{
		BOS:       "<|startoftext|>",
		EOS:       "<|endoftext|>",
		Pad:       "<|endoftext|>",
		Unk:       "<|endoftext|>",
		MaxLength: 77,
	}
}

// ApplyJSON reads a tokenizer_config.json or special_tokens_map.json and
// overrides the fields it sets: bos_token, eos_token, pad_token, unk_token
// (each a string or an object {"content": string, ...}),
// additional_special_tokens and model_max_length. Other keys are ignored.
// name is used in errors.
func (c *Config) ApplyJSON(r io.Reader, name string) error {
	var raw map[string]json.RawMessage
	if err := json.NewDecoder(r).Decode(&raw); err != nil {
		return fmt.Errorf("clip: %s: expected a JSON object: %v", name, err)
	}
	for key, dst := range map[string]*string{
		"bos_token": &c.BOS, "eos_token": &c.EOS, "pad_token": &c.Pad, "unk_token": &c.Unk,
	} {
		v, ok := raw[key]
		if !ok {
			continue
		}
		tok, err := parseTokenJSON(v)
		if err != nil {
			return fmt.Errorf("clip: %s: %s: %v", name, key, err)
		}
		*dst = tok
	}
	if v, ok := raw["additional_special_tokens"]; ok {
		var list []json.RawMessage
		if err := json.Unmarshal(v, &list); err != nil {
			return fmt.Errorf("clip: %s: additional_special_tokens: expected a list of tokens: %v", name, err)
		}
		c.Additional = nil
		for i, item := range list {
			tok, err := parseTokenJSON(item)
			if err != nil {
				return fmt.Errorf("clip: %s: additional_special_tokens[%d]: %v", name, i, err)
			}
			c.Additional = append(c.Additional, tok)
		}
	}
	if v, ok := raw["model_max_length"]; ok {
		var f float64
		if err := json.Unmarshal(v, &f); err != nil || f != float64(int(f)) || f < 2 || f > 1<<20 {
			return fmt.Errorf("clip: %s: model_max_length is %s; expected an integer in [2, %d] (77 for CLIP)", name, v, 1<<20)
		}
		c.MaxLength = int(f)
	}
	return nil
}

// parseTokenJSON reads a special token written as a string or as an
// AddedToken object {"content": "...", ...}.
func parseTokenJSON(v json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		if s == "" {
			return "", errors.New("the token is empty; expected a non-empty string")
		}
		return s, nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(v, &obj); err != nil || obj.Content == nil || *obj.Content == "" {
		return "", fmt.Errorf("got %s; expected a string or an object with a non-empty \"content\" string", bytes.TrimSpace(v))
	}
	return *obj.Content, nil
}

// CLIPTokenizer is CLIP's byte-level BPE tokenizer, giving the same ids as
// transformers' CLIPTokenizer (the slow one, with ftfy installed) and
// OpenAI's CLIP tokenizer:
//
//  1. Special tokens (BOS, EOS, pad, unk, additional) written literally in
//     the text are split out first and map to their ids. (So with Stable
//     Diffusion 2's pad token "!", every '!' in a prompt becomes id 0, as in
//     diffusers.)
//  2. Each remaining piece is cleaned: a subset of ftfy.fix_text (HTML
//     entities, mojibake, curly quotes, NFC, ...; see tokenizer_clean.go),
//     white space collapsed and stripped, lower-cased.
//  3. CLIP's pattern splits it into words, single digits and runs of other
//     characters (plus 's 't 're 've 'm 'll 'd).
//  4. Each piece's UTF-8 bytes become visible characters (bytes_to_unicode),
//     "</w>" marks the last, and BPE merges them by merges.txt rank.
//
// Words are cached; a CLIPTokenizer is safe for concurrent use.
type CLIPTokenizer struct {
	bpe     *bpeModel
	cfg     Config
	bos     int32
	eos     int32
	pad     int32
	special []specialToken // longest first
	skip    map[int32]bool // ids Decode leaves out
	// added are the tokens AddToken added, in id order from
	// len(bpe.tokens) (see tokenizer_added.go).
	added []string
}

// specialToken is a string matched before BPE: a special token, or a token
// AddToken added (whose ids are id and then more, for a placeholder with
// several vectors).
type specialToken struct {
	text string
	id   int32
	more []int32
}

var _ Tokenizer = (*CLIPTokenizer)(nil)

// New builds a CLIP tokenizer from the contents of vocab.json and
// merges.txt and a Config (DefaultConfig for Stable Diffusion 1.x).
func New(vocab, merges io.Reader, cfg Config) (*CLIPTokenizer, error) {
	return newCLIP(vocab, merges, cfg, "vocab.json", "merges.txt")
}

func newCLIP(vocab, merges io.Reader, cfg Config, vocabName, mergesName string) (*CLIPTokenizer, error) {
	if cfg.MaxLength < 2 {
		return nil, fmt.Errorf("clip: max length %d is too short; expected at least 2 (BOS and EOS), 77 for CLIP", cfg.MaxLength)
	}
	m, err := newBPEModel(vocab, merges, vocabName, mergesName)
	if err != nil {
		return nil, err
	}
	t := &CLIPTokenizer{bpe: m, cfg: cfg, skip: map[int32]bool{}}
	lookup := func(role, tok string) (int32, error) {
		if tok == "" {
			return 0, fmt.Errorf("clip: the %s token is not set; expected a token of %s", role, vocabName)
		}
		id, ok := m.vocab[tok]
		if !ok {
			return 0, fmt.Errorf("clip: the %s token %q is not in %s; expected one of its tokens", role, tok, vocabName)
		}
		return id, nil
	}
	if t.bos, err = lookup("bos", cfg.BOS); err != nil {
		return nil, err
	}
	if t.eos, err = lookup("eos", cfg.EOS); err != nil {
		return nil, err
	}
	if t.pad, err = lookup("pad", cfg.Pad); err != nil {
		return nil, err
	}
	if m.unk, err = lookup("unk", cfg.Unk); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	add := func(tok string, id int32) {
		if !seen[tok] {
			seen[tok] = true
			t.special = append(t.special, specialToken{text: tok, id: id})
		}
		t.skip[id] = true
	}
	add(cfg.BOS, t.bos)
	add(cfg.EOS, t.eos)
	add(cfg.Unk, m.unk)
	add(cfg.Pad, t.pad)
	for _, tok := range cfg.Additional {
		id, err := lookup("additional special", tok)
		if err != nil {
			return nil, err
		}
		add(tok, id)
	}
	sort.SliceStable(t.special, func(i, j int) bool { return len(t.special[i].text) > len(t.special[j].text) })
	return t, nil
}

// LoadFiles builds a CLIP tokenizer from a vocab.json and a merges.txt path.
func LoadFiles(vocabPath, mergesPath string, cfg Config) (*CLIPTokenizer, error) {
	return openCLIP(osOpen, vocabPath, mergesPath, cfg)
}

func osOpen(name string) (fs.File, error) { return os.Open(name) }

// openCLIP builds a CLIP tokenizer from the vocab.json and merges.txt that
// open opens by these names.
func openCLIP(open func(name string) (fs.File, error), vocabPath, mergesPath string, cfg Config) (*CLIPTokenizer, error) {
	vf, err := open(vocabPath)
	if err != nil {
		return nil, fmt.Errorf("clip: vocabulary: %v; expected a vocab.json file", err)
	}
	defer vf.Close()
	mf, err := open(mergesPath)
	if err != nil {
		return nil, fmt.Errorf("clip: merges: %v; expected a merges.txt file", err)
	}
	defer mf.Close()
	return newCLIP(vf, mf, cfg, vocabPath, mergesPath)
}

// Load builds a CLIP tokenizer from a diffusers tokenizer/ folder:
// vocab.json and merges.txt (required), then tokenizer_config.json and
// special_tokens_map.json when present, applied in that order over
// DefaultConfig (special_tokens_map.json wins, as in transformers).
func Load(dir string) (*CLIPTokenizer, error) {
	return loadFolder(dir, filepath.Join, osOpen, func(name string) error {
		_, err := os.Stat(name)
		return err
	})
}

// LoadFS is Load for the tokenizer folder dir of fsys (a slash-separated
// path as fs.FS takes them, "." for its root), e.g. a model embedded in the
// program with go:embed: the same files, read the same way. Errors name the
// files by their paths in fsys.
func LoadFS(fsys fs.FS, dir string) (*CLIPTokenizer, error) {
	if fsys == nil {
		return nil, errors.New("clip: LoadFS: no file system given; expected an fs.FS holding a tokenizer folder")
	}
	if !fs.ValidPath(dir) {
		return nil, fmt.Errorf("clip: LoadFS: %q is not a valid fs.FS path; expected a slash-separated path without . or .. elements (\".\" for the root)", dir)
	}
	return loadFolder(dir, path.Join, fsys.Open, func(name string) error {
		_, err := fs.Stat(fsys, name)
		return err
	})
}

// loadFolder builds a CLIP tokenizer from the tokenizer folder dir, whose
// files are named by join, opened by open and checked by stat.
func loadFolder(dir string, join func(elem ...string) string, open func(name string) (fs.File, error), stat func(name string) error) (*CLIPTokenizer, error) {
	cfg := DefaultConfig()
	for _, name := range []string{"tokenizer_config.json", "special_tokens_map.json"} {
		file := join(dir, name)
		f, err := open(file)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("clip: %v", err)
		}
		err = cfg.ApplyJSON(f, file)
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	for _, name := range []string{"vocab.json", "merges.txt"} {
		if err := stat(join(dir, name)); err != nil {
			return nil, fmt.Errorf("clip: tokenizer folder %s: %s is missing (%v); expected vocab.json and merges.txt as in a diffusers tokenizer/ folder", dir, name, err)
		}
	}
	return openCLIP(open, join(dir, "vocab.json"), join(dir, "merges.txt"), cfg)
}

// Config returns the settings the tokenizer was built with.
func (t *CLIPTokenizer) Config() Config { return t.cfg }

// MaxLength returns model_max_length (77 for CLIP).
func (t *CLIPTokenizer) MaxLength() int { return t.cfg.MaxLength }

// VocabSize returns one more than the largest id: the size of vocab.json
// (49408) plus the tokens AddToken added.
func (t *CLIPTokenizer) VocabSize() int { return len(t.bpe.tokens) + len(t.added) }

// BOS returns the id of the start token (49406 for CLIP).
func (t *CLIPTokenizer) BOS() int32 { return t.bos }

// EOS returns the id of the end token (49407 for CLIP).
func (t *CLIPTokenizer) EOS() int32 { return t.eos }

// Pad returns the id of the padding token (49407 for SD1, 0 for SD2).
func (t *CLIPTokenizer) Pad() int32 { return t.pad }

// TokenID returns the id of a vocabulary token such as "cat</w>", or of a
// token AddToken added.
func (t *CLIPTokenizer) TokenID(tok string) (int32, bool) {
	id, ok := t.bpe.vocab[tok]
	if !ok {
		return t.addedID(tok)
	}
	return id, ok
}

// TokenString returns the vocabulary token of an id (an added token's
// text for the ids AddToken gave), or "" if there is none.
func (t *CLIPTokenizer) TokenString(id int32) string {
	if id >= 0 && int(id) >= len(t.bpe.tokens) && int(id) < t.VocabSize() {
		return t.added[int(id)-len(t.bpe.tokens)]
	}
	if id < 0 || int(id) >= len(t.bpe.tokens) {
		return ""
	}
	return t.bpe.tokens[id]
}

// Tokens returns the prompt's token ids without BOS, EOS, truncation or
// padding. The text must be valid UTF-8.
func (t *CLIPTokenizer) Tokens(text string) ([]int32, error) {
	if !utf8.ValidString(text) {
		return nil, fmt.Errorf("clip: the prompt is not valid UTF-8 (first bad byte at offset %d); expected UTF-8 text", firstInvalid(text))
	}
	out := make([]int32, 0, len(text)/3+1)
	emit := func(word string) error {
		var err error
		out, err = t.bpe.encodeWord(word, out)
		return err
	}
	for len(text) > 0 {
		pos, sp := t.nextSpecial(text)
		if err := preTokenize(cleanText(text[:pos]), emit); err != nil {
			return nil, err
		}
		if sp == nil {
			break
		}
		out = append(out, sp.id)
		out = append(out, sp.more...)
		text = text[pos+len(sp.text):]
	}
	return out, nil
}

// nextSpecial finds the leftmost special token in s (the longest one where
// several start at the same place); it returns len(s), nil if there is none.
func (t *CLIPTokenizer) nextSpecial(s string) (int, *specialToken) {
	for i := 0; i < len(s); i++ {
		for k := range t.special {
			sp := &t.special[k]
			if s[i] == sp.text[0] && strings.HasPrefix(s[i:], sp.text) {
				return i, sp
			}
		}
	}
	return len(s), nil
}

// Encode returns the ids of BOS, the prompt's tokens (at most MaxLength-2),
// EOS and padding, MaxLength in all, and the attention mask (1 up to EOS,
// then 0): transformers' tokenizer(text, padding="max_length",
// max_length=77, truncation=True), as the diffusers pipelines call it.
func (t *CLIPTokenizer) Encode(text string) (ids, mask []int32, err error) {
	content, err := t.Tokens(text)
	if err != nil {
		return nil, nil, err
	}
	ids, mask = padSequence(content, t.cfg.MaxLength, t.bos, t.eos, t.pad)
	return ids, mask, nil
}

// EncodeChunks encodes a prompt of any length as chunks of 75 tokens, each
// BOS + chunk + EOS + padding to 77 (see Tokenizer.EncodeChunks).
func (t *CLIPTokenizer) EncodeChunks(text string) (ids, masks [][]int32, err error) {
	content, err := t.Tokens(text)
	if err != nil {
		return nil, nil, err
	}
	ids, masks = chunkSequence(content, t.cfg.MaxLength, t.bos, t.eos, t.pad)
	return ids, masks, nil
}

// Decode turns ids back into text: special tokens are left out, the tokens'
// characters become bytes again, "</w>" becomes a space, invalid UTF-8
// becomes U+FFFD, and the ends are trimmed. Unknown ids are shown as
// "<?id>". The text is the cleaned (lower-cased) prompt, for debugging.
func (t *CLIPTokenizer) Decode(ids []int32) string {
	var raw []byte
	for _, id := range ids {
		if t.skip[id] {
			continue
		}
		tok := t.TokenString(id)
		if tok == "" {
			raw = fmt.Appendf(raw, "<?%d>", id)
			continue
		}
		if int(id) >= len(t.bpe.tokens) { // an added token, as written
			raw = append(raw, " "+tok+" "...)
			continue
		}
		for _, r := range tok {
			if b, ok := runeToByte[r]; ok {
				raw = append(raw, b)
			} else {
				raw = utf8.AppendRune(raw, r)
			}
		}
	}
	s := strings.ToValidUTF8(string(raw), "\uFFFD")
	s = strings.ReplaceAll(s, endOfWord, " ")
	return strings.TrimSpace(s)
}

// firstInvalid returns the offset of the first byte of s that is not valid
// UTF-8.
func firstInvalid(s string) int {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(s)
}

// decodeRune decodes the first rune of s.
func decodeRune(s string) (rune, int) { return utf8.DecodeRuneInString(s) }
