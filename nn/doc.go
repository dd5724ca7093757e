// Package nn holds the neural-network layers of roentgo's models, named and
// computed like their diffusers (PyTorch) counterparts, and the path-based
// parameter Builder that constructs them.
//
// # Parameters
//
// A Builder (candle's VarBuilder idea) hands out parameters by their diffusers
// state-dict keys, literally:
//
//	b := nn.NewBuilder(src)                 // src: safetensors files, a map, ...
//	blk := b.Path("down_blocks", 1, "attentions", 0, "transformer_blocks", 0)
//	attn := nn.NewAttention(blk.Sub("attn2"), 320, 768, 8, 40)
//	// ... construct the whole model, then:
//	if err := b.Check(); err != nil { ... } // shapes, missing and unused keys
//
// Parameters come from a Source: OpenSafetensors (memory-mapped files; F16 and
// BF16 weights stay 16-bit and are used as stored by Linear and Conv2d),
// OpenTorch (PyTorch .bin/.ckpt zip checkpoints, read lazily without executing
// their pickle), MapSource (tensors in memory), or NewRandomBuilder (PyTorch's
// default initialisations, seeded and deterministic, for benchmarks and
// training from scratch). ComponentDir, FindWeights and OpenComponent find and
// open the weights of a diffusers component folder (safetensors or .bin, .fp16
// variants, sharded index files) for the models' Load functions; package
// nn/sdckpt gives the per-component Sources of a single-file checkpoint.
//
// Builder methods never panic on bad data: a missing key, a wrong shape or an
// unsupported dtype is recorded as an error naming the full key, and the
// parameter comes back nil. Constructors therefore always complete; the caller
// checks b.Err() (problems so far) or b.Check() (also the source's unused keys)
// once, before running the model. A model built by a Builder with errors must not
// be used. Info, GetStored (any stored dtype, unconverted) and Skip (used
// without loading) serve buffers whose stored form varies between files, such
// as CLIP's position_ids.
//
// The models' config validators bound what a config.json may ask for with
// MaxDim, MaxVocab, MaxLevels and MaxParams, so that a corrupt or hostile
// config is an error before anything is allocated.
//
// b.Params() lists every parameter created, in order of creation, for saving
// (SaveSafetensors) and training.
//
// # Training
//
// A ParamSet (NewParamSet(model, b.Params())) is the trainable-parameter
// registry: every parameter by its diffusers name, frozen or trainable
// (Freeze, Unfreeze and Only take name patterns, see MatchName), and for
// each trainable one a Trainable holding the model's tensor (the value, F32,
// F16 or BF16 on any device), its F32 master copy on the host, which the
// optimisers of package nn/optim update, and its F32 gradient. Masters of
// 16-bit or device values are separate copies written back, rounded, by
// SyncValue; a parameter memory-mapped read-only from a file is replaced by
// a writable copy in the model. CollectGrads moves the gradients of
// autograd's Backward into the set (scaled, for gradient accumulation);
// SaveWeights, SaveMasters and LoadMasters write and read the weights in the
// diffusers layout.
//
// # Layers
//
// Each layer is a struct of exported parameter tensors with a constructor
// NewX(b, sizes...) taking the Builder at the layer's path and a Forward method.
// Shapes follow PyTorch: images [N, C, H, W], sequences [B, S, D]. Forward never
// modifies or releases its inputs; it releases its own intermediates
// (tensor's (*Tensor).Release) so that a sampling loop reuses buffers instead of
// churning the garbage collector. The result is a new tensor owned by the caller.
package nn
