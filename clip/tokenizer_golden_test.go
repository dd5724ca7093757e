package clip

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/internal/testutil"
)

// goldenDir is the tiny-sd1 golden set, relative to the shared folder.
const goldenDir = "golden/tiny-sd1"

// sharedPath returns a path under the shared folder beside the checkout
// (../shared; paths under goldenDir go to the golden folder, which
// $ROENTGO_GOLDEN_DIR may move), skipping the test when it is absent — or
// failing it under ROENTGO_REQUIRE_GOLDEN=1 (internal/testutil).
func sharedPath(t testing.TB, rel string) string {
	t.Helper()
	if r, ok := strings.CutPrefix(rel, goldenDir+"/"); ok {
		return testutil.Golden(t, r)
	}
	return testutil.SharedDir(t, rel)
}

// loadShared loads the real CLIP tokenizer from the golden model folder.
func loadShared(t testing.TB) *CLIPTokenizer {
	t.Helper()
	tok, err := Load(sharedPath(t, goldenDir+"/model/diffusers/tokenizer"))
	must(t, err)
	return tok
}

var npyShapeRE = regexp.MustCompile(`'shape':\s*\(([^)]*)\)`)

// readNpyInt64 is a minimal reader of version-1 little-endian int64 C-order
// .npy files.
func readNpyInt64(t testing.TB, path string) (data []int64, shape []int) {
	t.Helper()
	raw, err := os.ReadFile(path)
	must(t, err)
	check(t, len(raw) >= 10 && string(raw[:6]) == "\x93NUMPY", "%s: not a .npy file", path)
	check(t, raw[6] == 1, "%s: only .npy version 1 is read here", path)
	hlen := int(binary.LittleEndian.Uint16(raw[8:10]))
	header := string(raw[10 : 10+hlen])
	check(t, strings.Contains(header, "'descr': '<i8'"), "%s: expected little-endian int64", path)
	check(t, strings.Contains(header, "'fortran_order': False"), "%s: expected C order", path)
	m := npyShapeRE.FindStringSubmatch(header)
	check(t, m != nil, "%s: no shape in header %q", path, header)
	n := 1
	for _, f := range strings.Split(m[1], ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		d, err := strconv.Atoi(f)
		must(t, err)
		shape = append(shape, d)
		n *= d
	}
	body := raw[10+hlen:]
	check(t, n*8 == len(body), "%s: data size %d, expected %d", path, len(body), n*8)
	data = make([]int64, n)
	for i := range data {
		data[i] = int64(binary.LittleEndian.Uint64(body[8*i:]))
	}
	return data, shape
}

type goldenPrompt struct {
	Prompt         string   `json:"prompt"`
	Tokens         []string `json:"tokens"`
	IDsUntruncated []int32  `json:"ids_untruncated"`
	Truncated      bool     `json:"truncated"`
}

func readGoldenIndex(t testing.TB) (prompts []goldenPrompt, maxLen int, padID int32) {
	t.Helper()
	raw, err := os.ReadFile(sharedPath(t, goldenDir+"/index.json"))
	must(t, err)
	var idx struct {
		Tokenizer struct {
			Prompts        []string       `json:"prompts"`
			ModelMaxLength int            `json:"model_max_length"`
			PadTokenID     int32          `json:"pad_token_id"`
			PerPrompt      []goldenPrompt `json:"per_prompt"`
		} `json:"tokenizer"`
	}
	must(t, json.Unmarshal(raw, &idx))
	equal(t, len(idx.Tokenizer.Prompts), len(idx.Tokenizer.PerPrompt), "prompt count")
	for i, p := range idx.Tokenizer.PerPrompt {
		equal(t, idx.Tokenizer.Prompts[i], p.Prompt, "prompt")
	}
	return idx.Tokenizer.PerPrompt, idx.Tokenizer.ModelMaxLength, idx.Tokenizer.PadTokenID
}

// TestGoldenIDs checks every golden prompt against transformers' padded ids
// and attention mask (input_ids.npy, attention_mask.npy), its untruncated
// ids and its token strings (index.json).
func TestGoldenIDs(t *testing.T) {
	tok := loadShared(t)
	prompts, maxLen, padID := readGoldenIndex(t)
	ids, shape := readNpyInt64(t, sharedPath(t, goldenDir+"/tokenizer/input_ids.npy"))
	mask, mshape := readNpyInt64(t, sharedPath(t, goldenDir+"/tokenizer/attention_mask.npy"))
	equal(t, []int{len(prompts), maxLen}, shape, "input_ids shape")
	equal(t, shape, mshape, "attention_mask shape")
	equal(t, maxLen, tok.MaxLength(), "max length")
	equal(t, padID, tok.Pad(), "pad id")
	equal(t, int32(49406), tok.BOS(), "bos")
	equal(t, int32(49407), tok.EOS(), "eos")

	for i, p := range prompts {
		t.Run(fmt.Sprintf("%02d", i), func(t *testing.T) {
			gotIDs, gotMask, err := tok.Encode(p.Prompt)
			must(t, err)
			wantIDs := make([]int32, maxLen)
			wantMask := make([]int32, maxLen)
			for j := range maxLen {
				wantIDs[j] = int32(ids[i*maxLen+j])
				wantMask[j] = int32(mask[i*maxLen+j])
			}
			equal(t, wantIDs, gotIDs, "ids of ", strconv.Quote(p.Prompt))
			equal(t, wantMask, gotMask, "mask of ", strconv.Quote(p.Prompt))

			content, err := tok.Tokens(p.Prompt)
			must(t, err)
			want := p.IDsUntruncated[1 : len(p.IDsUntruncated)-1]
			equal(t, want, content, "untruncated ids of ", strconv.Quote(p.Prompt))
			strs := []string{}
			for _, id := range content {
				strs = append(strs, tok.TokenString(id))
			}
			equal(t, p.Tokens, strs, "tokens of ", strconv.Quote(p.Prompt))
			equal(t, p.Truncated, len(content) > maxLen-2, "truncated")
		})
	}
}

// TestSharedVocabFolder loads the standalone copy of the vocabulary (no
// config files: defaults apply) and checks it agrees with the pipeline's.
func TestSharedVocabFolder(t *testing.T) {
	dir := sharedPath(t, "data/clip-tokenizer")
	a, err := Load(dir)
	must(t, err)
	b := loadShared(t)
	equal(t, DefaultConfig(), a.Config(), "config")
	equal(t, 49408, a.VocabSize(), "vocab size")
	for _, p := range []string{"a photo of a cat", "No acute cardiopulmonary process."} {
		x, _, err := a.Encode(p)
		must(t, err)
		y, _, err := b.Encode(p)
		must(t, err)
		equal(t, y, x, "ids")
	}
}
