// Package phantom renders procedural frontal (PA) chest radiographs with
// findings, their IMPRESSION-style reports and CheXpert-style labels: the
// data of roentgo's built-in demo model (a phantom, not a clinical
// image). docs/PHANTOMS.md describes what is modelled and what is not.
//
// # Conventions
//
//   - Laterality: the image is displayed as radiographs are, the patient
//     facing the viewer: the patient's Right is on the image's left and
//     the patient's Left on the image's right (heart apex and gastric
//     bubble on the image's right). Side, the reports and the labels all
//     use the patient's sides.
//   - Intensity: bright = attenuating. Structures add attenuation A (in
//     "tissue units": 1 is the path through the chest's soft tissue; air
//     in the lungs subtracts); the detector sees the transmitted fraction
//     exp(-2A), with quantum noise and blur; the image is its log,
//     windowed, with gamma and unsharp-mask processing. Image.Pix is in
//     [0, 1].
//   - Geometry is in normalised coordinates (the shorter image side is 1,
//     about 40 cm at Anatomy.Scale 1), so any size renders the same
//     anatomy; noise per pixel grows with resolution as on a real
//     detector.
//   - Determinism: Params (with Params.Seed) fix every pixel and the report;
//     the package has its own random generator, so results do not depend
//     on the Go version. Random draws anatomy, acquisition and findings
//     from separate streams of its seed.
//
// # Use
//
//	p := phantom.Random(seed, phantom.Options{FindingsRate: 0.5})
//	im, err := phantom.Render(p, 256, 256)    // im.Gray() for a PNG
//	rep := phantom.MakeReport(p)              // rep.Text, rep.Labels
//	row := rep.Row("00001.png", p)            // a labels.csv row (Columns)
//
// Params can also be built by hand (Normal, then set Findings). Landmarks
// gives anatomical positions in pixels (for tests and region statistics).
// examples/phantoms writes whole datasets.
package phantom
