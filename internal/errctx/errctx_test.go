package errctx

import (
	"errors"
	"io/fs"
	"testing"
)

func TestWrap(t *testing.T) {
	base := errors.New("safetensors: header length 34104 runs past the end of the 1000-byte file (in m/unet/w.safetensors)")
	chain := Wrap("pipeline: unet", Wrap("unet", Wrap("nn", Wrap("tensor", base))))
	want := "pipeline: unet: header length 34104 runs past the end of the 1000-byte file (in m/unet/w.safetensors)"
	if chain.Error() != want {
		t.Errorf("got  %q\nwant %q", chain.Error(), want)
	}
	if !errors.Is(chain, base) {
		t.Error("errors.Is does not find the base error")
	}
	te := Wrap("pipeline: text encoder", Wrap("clip: text encoder", Wrap("nn", base)))
	if got, want := te.Error(), "pipeline: text encoder: header length 34104 runs past the end of the 1000-byte file (in m/unet/w.safetensors)"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	// A message that does not start with a known prefix is kept whole.
	pe := &fs.PathError{Op: "open", Path: "x", Err: fs.ErrNotExist}
	if got, want := Wrap("nn", pe).Error(), "nn: open x: file does not exist"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	var target *fs.PathError
	if !errors.As(Wrap("a", Wrap("b", pe)), &target) {
		t.Error("errors.As does not find the *fs.PathError")
	}
	if Wrap("x", nil) != nil {
		t.Error("Wrap of nil is not nil")
	}
	// Words that merely start like a package are not cut.
	if got := Trim("tensors are missing", "nn"); got != "tensors are missing" {
		t.Errorf("Trim cut a word: %q", got)
	}
}
