// Package errctx wraps errors with context without repeating it.
//
// roentgo's rule for errors a user sees: the package that finds a problem
// names it once ("safetensors: header length 34104 runs past the end of the
// 1000-byte file (in unet/diffusion_pytorch_model.safetensors)"), and each
// layer above adds what it was doing ("pipeline: unet"), not its own name
// again. Wrap implements that: it puts the context in front and drops the
// package-name prefixes the inner message starts with, and a repeat of the
// context's last part, so that a chain of loaders reads "pipeline: unet:
// header length ..." rather than "pipeline: unet: unet: nn: tensor:
// safetensors: header length ...". errors.Is and errors.As still see the
// wrapped error.
package errctx

import "strings"

// packages are the prefixes the project's packages give their errors.
var packages = []string{
	"pipeline", "diffusion", "clip", "unet", "vae", "nn", "sdckpt", "tensor",
	"safetensors", "torchpickle", "torchzip", "npy", "rng", "kernels", "cpu", "cuda", "optim", "dataset", "metrics",
}

// wrapped is an error with context in front of a trimmed message.
type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.err }

// Wrap returns err with ctx in front ("ctx: message"), where message is
// Trim(err.Error(), ctx); nil for a nil err.
func Wrap(ctx string, err error) error {
	if err == nil {
		return nil
	}
	msg := Trim(err.Error(), ctx)
	if ctx == "" {
		return &wrapped{msg: msg, err: err}
	}
	return &wrapped{msg: ctx + ": " + msg, err: err}
}

// Trim removes from the front of msg, as long as one matches, a package
// prefix ("tensor: ") or a part of ctx ("unet: " in "pipeline: unet"),
// leaving the message that the context does not already say.
func Trim(msg, ctx string) string {
	parts := strings.Split(ctx, ": ")
	for {
		cut := false
		for _, p := range packages {
			if rest, ok := strings.CutPrefix(msg, p+": "); ok {
				msg, cut = rest, true
			}
		}
		for _, p := range parts {
			if p == "" {
				continue
			}
			if rest, ok := strings.CutPrefix(msg, p+": "); ok {
				msg, cut = rest, true
			}
		}
		if !cut {
			return msg
		}
	}
}
