package demo

import (
	"context"
	"image"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/phantom"
)

// meanLuma is the mean luminance in [0, 1] of im over the rectangle of
// fractions [x0, x1) x [y0, y1) of its size.
func meanLuma(im *image.NRGBA, x0, x1, y0, y1 float64) float64 {
	w, h := im.Bounds().Dx(), im.Bounds().Dy()
	var sum float64
	n := 0
	for y := int(y0 * float64(h)); y < int(y1*float64(h)); y++ {
		for x := int(x0 * float64(w)); x < int(x1*float64(w)); x++ {
			o := im.PixOffset(x, y)
			p := im.Pix[o : o+3]
			sum += (0.299*float64(p[0]) + 0.587*float64(p[1]) + 0.114*float64(p[2])) / 255
			n++
		}
	}
	return sum / float64(n)
}

// Regions of a frontal chest radiograph at the phantoms' usual framing, as
// fractions of the image (the patient's left is on the image's right).
var (
	mediastinum = [4]float64{0.44, 0.56, 0.25, 0.55}
	rightLung   = [4]float64{0.18, 0.34, 0.25, 0.50} // image's left half
	leftLung    = [4]float64{0.66, 0.82, 0.25, 0.50} // image's right half
	// leftBase is the patient's left lower zone, where a large effusion
	// fills the costophrenic angle: the image's lower right.
	leftBase  = [4]float64{0.62, 0.86, 0.62, 0.80}
	rightBase = [4]float64{0.14, 0.38, 0.62, 0.80}
)

func region(im *image.NRGBA, r [4]float64) float64 { return meanLuma(im, r[0], r[1], r[2], r[3]) }

// toNRGBA replicates a gray image into RGB.
func toNRGBA(g *image.Gray) *image.NRGBA {
	out := image.NewNRGBA(g.Bounds())
	for i, v := range g.Pix {
		copy(out.Pix[4*i:], []uint8{v, v, v, 255})
	}
	return out
}

// TestRegionsOnPhantoms checks the test's regions on rendered phantoms (the
// ground truth the model was trained on): a mediastinum brighter than the
// lung fields, and a large left effusion brightening the image's lower
// right more than its lower left.
func TestRegionsOnPhantoms(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		normal := phantom.Normal(seed)
		eff := normal
		eff.Findings.EffusionLeft = phantom.Large
		a, err := phantom.Render(normal, Size, Size)
		require.NoError(t, err)
		b, err := phantom.Render(eff, Size, Size)
		require.NoError(t, err)
		na, nb := toNRGBA(a.Gray()), toNRGBA(b.Gray())
		med, rl, ll := region(na, mediastinum), region(na, rightLung), region(na, leftLung)
		dLeft := region(nb, leftBase) - region(na, leftBase)
		dRight := region(nb, rightBase) - region(na, rightBase)
		t.Logf("phantom %d: mediastinum %.3f lungs %.3f / %.3f; effusion brightens the left base by %.3f, the right by %.3f", seed, med, rl, ll, dLeft, dRight)
		require.Greater(t, med, rl+0.05)
		require.Greater(t, med, ll+0.05)
		require.Greater(t, dLeft, 0.05)
		require.Greater(t, dLeft, dRight)
	}
}

// TestEmbeddedModel loads the embedded model and checks that what it draws
// for a normal chest has a radiograph's layout (a bright mediastinum
// between darker lung fields) and that it follows a laterality prompt: "large left pleural effusion"
// makes the image's lower right (the patient's left base) brighter than "no
// acute cardiopulmonary process" does from the same seed, for each of
// several seeds, while the right base changes less.
func TestEmbeddedModel(t *testing.T) {
	p, err := Load(pipeline.Options{})
	require.NoError(t, err)
	defer p.Close()
	h, w := p.DefaultSize()
	require.Equal(t, Size, h)
	require.Equal(t, Size, w)

	const seeds = 6
	// The same seeds (initial noise) for both prompts: a paired comparison.
	var images []*image.NRGBA
	var prompts []string
	for _, prompt := range []string{"Large left pleural effusion.", "No acute cardiopulmonary process."} {
		r, err := p.Txt2Img(context.Background(), pipeline.Request{Prompt: prompt,
			NumImages: seeds, PerImageSeeds: true, Seed: 11, Steps: Steps, Guidance: Guidance})
		require.NoError(t, err)
		require.Len(t, r.Images, seeds)
		require.Equal(t, Name, r.ModelName)
		images = append(images, r.Images...)
		prompts = append(prompts, r.Prompts...)
	}
	res := struct {
		Images  []*image.NRGBA
		Prompts []string
	}{images, prompts}
	for i, im := range res.Images {
		require.Equal(t, image.Rect(0, 0, Size, Size), im.Bounds())
		all := meanLuma(im, 0, 1, 0, 1)
		t.Logf("image %d (%s): mean %.3f mediastinum %.3f lungs R %.3f L %.3f  bases R %.3f L %.3f", i, res.Prompts[i], all,
			region(im, mediastinum), region(im, rightLung), region(im, leftLung), region(im, rightBase), region(im, leftBase))
		require.True(t, all > 0.15 && all < 0.85, "image %d: mean luminance %.3f, expected a radiograph's mid-gray", i, all)
	}
	// A normal chest: the mediastinum brighter than both lung fields.
	for s := 0; s < seeds; s++ {
		im := res.Images[seeds+s]
		med, rl, ll := region(im, mediastinum), region(im, rightLung), region(im, leftLung)
		require.Greater(t, med, rl+0.05, "seed %d: the mediastinum must be brighter than the right lung field", s)
		require.Greater(t, med, ll+0.05, "seed %d: the mediastinum must be brighter than the left lung field", s)
	}
	// The effusion, seed by seed (paired: the same initial noise for both
	// prompts). The check is that the effusion prompt brightens the
	// patient's left base; the model does that for most seeds, but its
	// laterality is weak (it brightens the right base too in about a third
	// of images: docs/DEMO_MODEL.md measures it), so the side is asserted
	// on the average over the seeds, not seed by seed.
	var sumL, sumR float64
	brighter := 0
	for s := 0; s < seeds; s++ {
		eff, normal := res.Images[s], res.Images[seeds+s]
		dLeft := region(eff, leftBase) - region(normal, leftBase)
		dRight := region(eff, rightBase) - region(normal, rightBase)
		t.Logf("seed %d: the effusion prompt changes the left base by %+.3f, the right base by %+.3f", 11+s, dLeft, dRight)
		sumL += dLeft
		sumR += dRight
		if dLeft > 0.03 {
			brighter++
		}
	}
	require.GreaterOrEqual(t, brighter, seeds-1, "a left effusion must brighten the image's lower right (the patient's left base) for all seeds but at most one")
	require.Greater(t, sumL/seeds, 0.04, "...by a clear margin on average")
	require.Greater(t, sumL, sumR, "...and more than the patient's right base, on average")
}
