package metrics

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// DefaultFrechetEps is the offset pytorch-fid and clean-fid add to both
// covariance diagonals when the square root of their product is not finite.
const DefaultFrechetEps = 1e-6

// imagTol is the tolerance on the imaginary part of the diagonal of
// sqrtm(Σ₁Σ₂) (numpy.allclose(diag.imag, 0, atol=1e-3) in pytorch-fid).
const imagTol = 1e-3

// FrechetResult is a Frechet distance with the details of how it was reached.
type FrechetResult struct {
	// Distance is ||μ₁-μ₂||² + Tr(Σ₁) + Tr(Σ₂) - 2·TraceSqrt.
	Distance float64
	// MeanTerm is ||μ₁-μ₂||².
	MeanTerm float64
	// TraceSqrt is the real part of Tr(sqrtm(Σ₁Σ₂)) (after the offset, if
	// one was added).
	TraceSqrt float64
	// EpsAdded reports that the first square root was not finite and Eps·I
	// was added to both covariances.
	EpsAdded bool
	// Eps is the offset that was (or would have been) added.
	Eps float64
	// MaxImagDiag is the largest |imaginary part| on the diagonal of
	// sqrtm(Σ₁Σ₂); 0 when the root is real.
	MaxImagDiag float64
}

// FrechetDistance returns the Frechet distance between the Gaussians
// described by a and b (the FID when they summarise Inception features),
// with pytorch-fid's handling of singular products and imaginary parts; see
// Frechet.
func FrechetDistance(a, b *Stats) (float64, error) {
	r, err := Frechet(a, b, DefaultFrechetEps)
	return r.Distance, err
}

// Frechet computes the Frechet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂),
//
//	d² = ||μ₁-μ₂||² + Tr(Σ₁ + Σ₂ - 2·sqrtm(Σ₁Σ₂)),
//
// the way pytorch-fid's calculate_frechet_distance (and clean-fid's
// frechet_distance) do:
//
//  1. C = sqrtm(Σ₁Σ₂) with scipy's Schur method (see Sqrtm).
//  2. If C is not finite (the product is singular in a way sqrtm cannot
//     handle), C = sqrtm((Σ₁+εI)(Σ₂+εI)) with ε = eps.
//  3. If C is complex, every diagonal entry must have |Im| <= 1e-3, else an
//     error names the largest one; the imaginary part is then dropped.
//  4. d² uses Tr(Re C).
//
// Finiteness is checked on the triangular factor R of C = Z R Zᴴ and the
// trace is Tr(R) (equal to Tr(C) up to rounding, as Z is unitary), so the
// full product Z R Zᴴ is formed only for the imaginary-part check when C is
// complex. Where pytorch-fid's error reports max|Im C| over the whole
// matrix, this one reports the diagonal maximum.
func Frechet(a, b *Stats, eps float64) (FrechetResult, error) {
	res := FrechetResult{Eps: eps}
	if err := a.validate("Frechet (first)"); err != nil {
		return res, err
	}
	if err := b.validate("Frechet (second)"); err != nil {
		return res, err
	}
	n := a.Dim()
	if b.Dim() != n {
		return res, fmt.Errorf("metrics: Frechet: dimensions differ (%d and %d)", n, b.Dim())
	}
	for i := range a.Mu {
		d := a.Mu[i] - b.Mu[i]
		res.MeanTerm += d * d
	}
	tr1, tr2 := mat.Trace(a.Sigma), mat.Trace(b.Sigma)
	if math.IsNaN(res.MeanTerm+tr1+tr2) || math.IsInf(res.MeanTerm+tr1+tr2, 0) {
		return res, errors.New("metrics: Frechet: statistics have non-finite entries")
	}

	var prod mat.Dense
	prod.Mul(a.Sigma, b.Sigma)
	s, err := newSchurSqrt(prod.RawMatrix().Data, n)
	if err != nil && !errors.Is(err, errSqrtmSingular) {
		return res, err
	}
	if err != nil || !s.finite() {
		res.EpsAdded = true
		s1 := mat.DenseCopyOf(a.Sigma)
		s2 := mat.DenseCopyOf(b.Sigma)
		for i := 0; i < n; i++ {
			s1.Set(i, i, s1.At(i, i)+eps)
			s2.Set(i, i, s2.At(i, i)+eps)
		}
		prod.Mul(s1, s2)
		s, err = newSchurSqrt(prod.RawMatrix().Data, n)
		if err != nil {
			return res, fmt.Errorf("metrics: Frechet: square root of the covariance product failed even with %g added to the diagonals: %w", eps, err)
		}
		if !s.finite() {
			return res, fmt.Errorf("metrics: Frechet: square root of the covariance product is not finite even with %g added to the diagonals", eps)
		}
	}
	if di := s.diagImag(); di != nil {
		for _, v := range di {
			if math.IsNaN(v) {
				res.MaxImagDiag = math.NaN()
				break
			}
			res.MaxImagDiag = max(res.MaxImagDiag, math.Abs(v))
		}
		if !(res.MaxImagDiag <= imagTol) {
			return res, fmt.Errorf("metrics: Frechet: sqrtm(Σ₁Σ₂) has an imaginary component of %g on its diagonal (tolerance %g)", res.MaxImagDiag, imagTol)
		}
	}
	res.TraceSqrt, _ = s.trace()
	res.Distance = res.MeanTerm + tr1 + tr2 - 2*res.TraceSqrt
	return res, nil
}
