// Package dataset reads image + caption training sets for fine-tuning
// (RoentGen-style: chest radiographs with the impression of their reports as
// prompts) and turns them into preprocessed samples.
//
// # Scope
//
// Open scans a dataset and keeps its records (image paths and where each
// caption comes from), not its images; Dataset.Iter then streams samples —
// a [3, R, R] float32 image in [-1, 1] (Sample.Pixels, or Sample.Tensor),
// the caption, the source path and id, the split — decoding on a bounded
// pool of worker goroutines a few samples ahead of the consumer. Epochs are
// ordered by Dataset.Order (file order, or a shuffle seeded by Options.Seed
// and the epoch), and an Iterator's Position (epoch, index) resumes the exact
// sequence, so a training checkpoint records it. Training itself, tokenising
// (77-token truncation or chunking) and latent caching are not here; the
// latter plugs in through Options.Load (LoadFunc).
//
// # Layouts (Options.Layout; Auto detects)
//
//   - Folder: images (.png, .jpg, .jpeg, .dcm, .dicom) with a sidecar
//     caption file of the same name and extension .txt (or .caption), the
//     diffusers/kohya convention; subfolders are scanned; a top-level
//     train/test/val(idation) folder gives the split.
//   - Table: a CSV, TSV or JSONL file (or a folder with Hugging Face's
//     metadata.jsonl / metadata.csv) of image path, text and optional
//     split; column names are configurable (defaults image/file_name/path,
//     text/caption/prompt, split). Paths are relative to the table's folder
//     and may not leave it.
//   - MIMICCXR: MIMIC-CXR-JPG as published (files/pNN/pNNNNNNNN/sNNNNNNNN/
//     <dicom_id>.jpg, mimic-cxr-2.0.0-metadata.csv to keep PA/AP views,
//     mimic-cxr-2.0.0-split.csv, .csv.gz accepted) with the free-text
//     reports (files/pNN/pNNNNNNNN/sNNNNNNNN.txt, in mimic-cxr-reports/ or
//     beside the images); the caption is the report's IMPRESSION section,
//     else FINDINGS (Impression, CleanReportText).
//   - CheXpert: train.csv / valid.csv with the Path, Frontal/Lateral and
//     AP/PA columns; captions are built from the 14 label columns (see
//     chexpert.go: positives listed, "possible X" for uncertain by default,
//     "no finding" otherwise).
//
// # Images and preprocessing
//
// PNG (8- and 16-bit gray, RGB, paletted), JPEG, and uncompressed DICOM
// (implicit and explicit VR little endian, deflated explicit VR;
// MONOCHROME1/2 and RGB; 8/16 bits allocated, signed or unsigned, any bits
// stored and high bit; rescale slope/intercept; the first VOI window
// (LINEAR, LINEAR_EXACT, SIGMOID) or else min-max) are read by a strict
// reader that never trusts a length beyond the file; compressed DICOM is
// refused with a TransferSyntaxError naming the UID. The formats are told
// apart by content, not by name. Preprocessing is diffusers'
// train_text_to_image: shorter side resized to the resolution (PIL's
// antialiased bilinear filter, in float32), centre crop, gray replicated to
// 3 channels, scaled to [-1, 1] (resize.go states the details). Flipping is
// off by default; with Options.FlipProbability a flipped sample's caption
// has left and right swapped (SwapLaterality), and a caption that cannot be
// swapped safely keeps its sample unflipped.
//
// # Bad input
//
// Images without a caption, missing files and corrupt images are skipped
// and counted (Stats), or returned as errors with Options.Strict; a dataset
// with no usable image, a resolution that is not a positive multiple of 8,
// and table paths that leave the dataset root are errors. Errors name the
// file (and line) and what was expected; no input makes the package panic.
package dataset
