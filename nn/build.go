package nn

import "github.com/roentgo/roentgo/tensor"

// Build constructs a model from src with a Builder that converts parameters to dt,
// then runs the strict Check (missing, misshapen and unused keys). newModel is the
// model package's constructor (e.g. unet.New). The Builder is returned too, so
// callers can inspect Missing or Unused keys when err is not nil.
func Build[M, C any](src Source, cfg C, dt tensor.DType, newModel func(*Builder, C) (M, error)) (M, *Builder, error) {
	b := NewBuilder(src).WithDType(dt)
	m, err := newModel(b, cfg)
	if err == nil {
		err = b.Check()
	}
	return m, b, err
}
