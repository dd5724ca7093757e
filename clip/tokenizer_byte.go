package clip

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Ids of the ByteTokenizer: padding, start and end, then one id per byte.
const (
	BytePad       int32 = 0
	ByteBOS       int32 = 1
	ByteEOS       int32 = 2
	ByteOffset    int32 = 3       // the id of byte b is ByteOffset + b
	ByteVocabSize       = 256 + 3 // ids 0 .. 258
)

const (
	byteDefaultLength = 77       // CLIP's sequence length
	byteMaxLength     = 1 << 20  // upper bound for NewByteTokenizerLength
	byteUnknown       = "\uFFFD" // how Decode shows ids it does not know
)

// ByteTokenizer is a vocabulary-free tokenizer for the built-in random demo
// model: each byte of the UTF-8 prompt is one token (id 3 + byte), wrapped
// in BOS (1) and EOS (2) and padded with 0. It does no cleaning or
// lower-casing. It satisfies Tokenizer with the same padding, truncation
// and chunking rules as CLIPTokenizer.
type ByteTokenizer struct {
	maxLen int
}

var _ Tokenizer = (*ByteTokenizer)(nil)

// NewByteTokenizer returns a ByteTokenizer whose sequences have 77 ids.
func NewByteTokenizer() *ByteTokenizer { return &ByteTokenizer{maxLen: byteDefaultLength} }

// NewByteTokenizerLength returns a ByteTokenizer whose sequences have maxLen
// ids (at least 2).
func NewByteTokenizerLength(maxLen int) (*ByteTokenizer, error) {
	if maxLen < 2 || maxLen > byteMaxLength {
		return nil, fmt.Errorf("clip: byte tokenizer length %d; expected an integer in [2, %d]", maxLen, byteMaxLength)
	}
	return &ByteTokenizer{maxLen: maxLen}, nil
}

// Tokens returns ByteOffset + b for each byte b of text (which must be valid
// UTF-8).
func (t *ByteTokenizer) Tokens(text string) ([]int32, error) {
	if !utf8.ValidString(text) {
		return nil, fmt.Errorf("clip: the prompt is not valid UTF-8 (first bad byte at offset %d); expected UTF-8 text", firstInvalid(text))
	}
	ids := make([]int32, len(text))
	for i := 0; i < len(text); i++ {
		ids[i] = ByteOffset + int32(text[i])
	}
	return ids, nil
}

// Encode returns BOS, the bytes' ids (at most MaxLength-2), EOS and padding,
// and the attention mask.
func (t *ByteTokenizer) Encode(text string) (ids, mask []int32, err error) {
	content, err := t.Tokens(text)
	if err != nil {
		return nil, nil, err
	}
	ids, mask = padSequence(content, t.maxLen, ByteBOS, ByteEOS, BytePad)
	return ids, mask, nil
}

// EncodeChunks encodes the text as chunks of MaxLength-2 bytes (see
// Tokenizer.EncodeChunks).
func (t *ByteTokenizer) EncodeChunks(text string) (ids, masks [][]int32, err error) {
	content, err := t.Tokens(text)
	if err != nil {
		return nil, nil, err
	}
	ids, masks = chunkSequence(content, t.maxLen, ByteBOS, ByteEOS, BytePad)
	return ids, masks, nil
}

// Decode returns the bytes of the byte ids, skipping BOS, EOS and padding;
// other ids and invalid UTF-8 become U+FFFD.
func (t *ByteTokenizer) Decode(ids []int32) string {
	var b strings.Builder
	for _, id := range ids {
		switch {
		case id == BytePad || id == ByteBOS || id == ByteEOS:
		case id >= ByteOffset && id < ByteVocabSize:
			b.WriteByte(byte(id - ByteOffset))
		default:
			b.WriteString(byteUnknown)
		}
	}
	return strings.ToValidUTF8(b.String(), "\uFFFD")
}

// MaxLength returns the sequence length.
func (t *ByteTokenizer) MaxLength() int { return t.maxLen }

// VocabSize returns 259.
func (t *ByteTokenizer) VocabSize() int { return ByteVocabSize }

// BOS returns 1.
func (t *ByteTokenizer) BOS() int32 { return ByteBOS }

// EOS returns 2.
func (t *ByteTokenizer) EOS() int32 { return ByteEOS }

// Pad returns 0.
func (t *ByteTokenizer) Pad() int32 { return BytePad }
