package tensor

// RandSource generates random float32 values in bulk. *rng.Generator (package
// tensor/rng, PyTorch's CPU generator) implements it, so that
// Randn(rng.New(seed), shape...) matches torch.randn(shape, generator=
// torch.Generator().manual_seed(seed)).
type RandSource interface {
	// Normal fills dst with samples of N(mean, std^2).
	Normal(dst []float32, mean, std float32)
	// Uniform fills dst with samples of U[from, to).
	Uniform(dst []float32, from, to float32)
}

// Randn returns an F32 CPU tensor of standard normal samples drawn from g in
// row-major order.
func Randn(g RandSource, shape ...int) *Tensor {
	t := newTensor(CPU, F32, checkShape("Randn", shape), false)
	g.Normal(t.st.f32[:t.Numel()], 0, 1)
	return t
}

// Rand returns an F32 CPU tensor of samples of U[0, 1) drawn from g in row-major
// order.
func Rand(g RandSource, shape ...int) *Tensor {
	t := newTensor(CPU, F32, checkShape("Rand", shape), false)
	g.Uniform(t.st.f32[:t.Numel()], 0, 1)
	return t
}
