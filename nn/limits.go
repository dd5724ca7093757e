package nn

// Limits of what a model configuration (a config.json, which is user data)
// may ask for. The model packages' Validate methods refuse configs beyond
// them with an error naming the key, before anything is allocated, so that a
// corrupt or hostile config cannot make a program try to allocate terabytes
// (or overflow a size computation). They are far above every released Stable
// Diffusion model: SD 1.x's U-Net has 1280 channels and 0.86 billion
// parameters, SDXL's 2.6 billion.
const (
	// MaxDim bounds every size of a config but the vocabulary: channel
	// counts, widths, head counts, sequence lengths, layer counts (65,536).
	MaxDim = 1 << 16
	// MaxVocab bounds a text encoder's vocabulary (16,777,216 tokens).
	MaxVocab = 1 << 24
	// MaxLevels bounds the number of resolution levels of a U-Net or VAE (its
	// down blocks): images are 2^(levels-1) times the size of their latents.
	MaxLevels = 16
	// MaxParams bounds the parameter count of one model (2^34, about 17.2
	// billion: 69 GB as F32).
	MaxParams = 1 << 34
)
