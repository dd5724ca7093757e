package clip

import (
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/roentgo/roentgo/nn"
)

// AddToken adds text as a new token (a textual-inversion placeholder such as
// "<cxr-opacity>") standing for vectors consecutive new ids, the first being
// VocabSize() before the call, as transformers' tokenizer.add_tokens gives
// ids from len(vocab) upward; it returns the ids. Like the special tokens,
// an added token is matched in the text before cleaning and BPE (exactly,
// case and all; the longest match first where several start at the same
// place), and the spaces around it do not matter, as in transformers' slow
// CLIPTokenizer. A placeholder of several vectors stands for all its ids, in
// order (diffusers writes them "<tok> <tok>_1 ..." in the prompt; the extra
// ids are named text+"_1", ...). Decode writes added tokens as they are.
//
// The text must be non-empty valid UTF-8 without white space and not
// already a token of the vocabulary or a special or added token. AddToken
// must not run concurrently with other methods of the tokenizer.
func (t *CLIPTokenizer) AddToken(text string, vectors int) ([]int32, error) {
	switch {
	case text == "":
		return nil, fmt.Errorf("clip: AddToken: the token is empty")
	case !utf8.ValidString(text):
		return nil, fmt.Errorf("clip: AddToken: token %q is not valid UTF-8", text)
	case strings.IndexFunc(text, unicode.IsSpace) >= 0:
		return nil, fmt.Errorf("clip: AddToken: token %q contains white space; expected one word such as <my-token>", text)
	case vectors < 1 || vectors > 1<<10:
		return nil, fmt.Errorf("clip: AddToken: %d vectors for %q, want 1 to %d", vectors, text, 1<<10)
	case t.VocabSize()+vectors > nn.MaxVocab:
		return nil, fmt.Errorf("clip: AddToken: %d tokens would exceed the largest vocabulary, %d", t.VocabSize()+vectors, nn.MaxVocab)
	}
	names := []string{text}
	for i := 1; i < vectors; i++ {
		names = append(names, fmt.Sprintf("%s_%d", text, i))
	}
	for _, n := range names {
		if _, ok := t.TokenID(n); ok {
			return nil, fmt.Errorf("clip: AddToken: %q is already a token of the vocabulary; choose another placeholder", n)
		}
		for _, sp := range t.special {
			if sp.text == n {
				return nil, fmt.Errorf("clip: AddToken: %q is already a special or added token; choose another placeholder", n)
			}
		}
	}
	first := int32(t.VocabSize())
	ids := make([]int32, vectors)
	for i := range ids {
		ids[i] = first + int32(i)
	}
	t.added = append(t.added, names...)
	t.special = append(t.special, specialToken{text: text, id: ids[0], more: ids[1:]})
	sort.SliceStable(t.special, func(i, j int) bool { return len(t.special[i].text) > len(t.special[j].text) })
	return ids, nil
}

// AddedTokens returns the tokens AddToken added (with the extra names of
// several-vector placeholders), in id order from the size of vocab.json.
func (t *CLIPTokenizer) AddedTokens() []string { return append([]string(nil), t.added...) }

// addedID returns the id of an added token.
func (t *CLIPTokenizer) addedID(text string) (int32, bool) {
	for i, a := range t.added {
		if a == text {
			return int32(len(t.bpe.tokens) + i), true
		}
	}
	return 0, false
}
