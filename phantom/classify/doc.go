// Package classify is a findings classifier for the procedural chest
// radiographs of package phantom: a small convolutional network, built from
// nn layers and trained with the repository's own autograd and AdamW, that
// reads one grayscale 128x128 image and returns, for each finding of
// Findings, the probability that it is present, together with a
// penultimate feature vector.
//
// It is a measuring instrument for models trained on phantoms: the
// detection rate of each finding on generated images whose prompt states
// or negates it (prompt adherence, laterality included), and its features
// for a Fréchet distance between generated and rendered phantoms.
//
// # Conventions
//
//   - Laterality follows package phantom: the patient's Right is on the
//     image's left and the patient's Left on the image's right. The
//     network keeps coarse position (it pools to a Grid x Grid map, not to a
//     single vector) and training never flips images left-right, so
//     "effusion right" and "effusion left" are separate outputs that mean
//     the patient's sides.
//   - Input: Preprocess turns any image.Image into the network's input:
//     gray by luminance, centre square crop, area-average resize to
//     InputSize x InputSize, values in [0, 1]. The model normalises inside
//     Forward ((x - Config.Mean) / Config.Std).
//   - Determinism: Train draws its phantoms, augmentations, batches and
//     initial weights from TrainOptions.Seed only; the same options give
//     the same model.
//
// # Use
//
//	m, rep, err := classify.Train(ctx, classify.DefaultTrainOptions())
//	fmt.Print(rep)                          // per-finding validation table
//	err = classify.Save("classifier.safetensors", m)
//	m, err = classify.Load("classifier.safetensors")
//	x, err := classify.Preprocess(img)      // any image.Image
//	probs, feats, err := m.Predict([][]float32{x})
//	probs, feats, err = m.PredictImages(imgs) // Preprocess + Predict of []image.Image
package classify
