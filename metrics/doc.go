// Package metrics holds the numbers of an image-generation evaluation, given
// features or images: the statistics and distances that RoentGen's
// evaluation (after pytorch-fid, clean-fid, torch-fidelity and
// pytorch_msssim) reports. The feature extractors themselves (Inception-v3,
// XRV DenseNet-121, CLIP) and the evaluate program live elsewhere; this
// package is plain float64 arithmetic on gonum matrices, with the large
// products and the symmetric eigenvalue problem of FID done by the blocked,
// multi-goroutine routines of internal/f64.
//
// # Feature statistics
//
// Accumulator gathers the mean and covariance of feature vectors in float64,
// batch by batch (Chan et al.'s pairwise update; accumulators of shards
// merge), into Stats (μ, Σ with the N-1 normalisation of numpy.cov).
// ReadStats and WriteStats exchange Stats as .npz files with members "mu" and
// "sigma", the layout of pytorch-fid's --save-stats and clean-fid's reference
// statistics; ParseNPY and ParseNPZ read the little-endian float64/float32
// C-ordered arrays those contain, and reject anything else with an error.
//
// # Frechet distance (FID)
//
// Frechet follows pytorch-fid's calculate_frechet_distance:
//
//	d² = ||μ₁-μ₂||² + Tr(Σ₁) + Tr(Σ₂) - 2 Tr(sqrtm(Σ₁Σ₂)),
//
// with the matrix square root computed as scipy.linalg.sqrtm does (Sqrtm:
// real Schur form, conversion to complex Schur form, the Björck–Hammarling
// recurrence on the triangular factor), an ε·I offset (ε = 1e-6) when the
// root is not finite, and an error when the root's diagonal has an imaginary
// part above 1e-3. FrechetSymmetric gives the same distance for covariance
// matrices from a symmetric eigenvalue problem, much faster (for 2048-d
// statistics under a second on two cores, against about a minute).
//
// # Kernel inception distance (KID)
//
// KID averages MMD2Unbiased, the unbiased squared MMD with the kernel
// k(x, y) = (x·y/d + 1)³, over random subset pairs (clean-fid's
// kernel_distance, torch-fidelity's KID).
//
// # SSIM and MS-SSIM
//
// SSIM and MSSSIM follow pytorch_msssim on one channel: 11-tap Gaussian
// window with σ = 1.5 applied separably without padding, K = (0.01, 0.03),
// five scales with weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), 2×2
// average pooling between scales (zero padding for odd sizes), negative
// contrast terms clamped to 0. PromptDiversity is RoentGen's within-prompt
// diversity score: mean MS-SSIM over all pairs of a prompt's images, data
// range 1.
//
// # Prompt adherence and memorisation
//
// AUROC is the Mann–Whitney U statistic over P·N (ties count one half, as
// sklearn's roc_auc_score). Adherence takes a classifier's scores for one
// finding and what each image's prompt says about it (LabelState, read from
// CheXpert-style values by ParseLabel) and gives detection rates for prompts
// that state, negate and omit the finding, and AUROC of stated against the
// rest. CosineNeighbors and CorrelationNeighbors find each generated image's
// nearest training images (cosine of features; Pearson correlation of
// downsampled pixels); SummarizeMemorization counts those above a threshold,
// ClosestPairs lists the closest pairs and ExcludeSelf turns a set compared
// with itself into its leave-one-out baseline.
//
// Golden values come from scripts/golden_eval.py (numpy, scipy, torch) and
// are committed under testdata/, so the tests need no Python.
package metrics
