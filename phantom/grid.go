package phantom

import (
	"fmt"
	"image"
)

// Grid renders the phantoms as tile x tile images laid out in rows of
// cols, separated by a 2-pixel black gap (a preview sheet).
func Grid(ps []Params, tile, cols int) (*image.Gray, error) {
	if len(ps) == 0 || cols <= 0 {
		return nil, fmt.Errorf("phantom: grid of %d phantoms in %d columns, expected at least one of each", len(ps), cols)
	}
	const gap = 2
	rows := (len(ps) + cols - 1) / cols
	out := image.NewGray(image.Rect(0, 0, cols*tile+(cols-1)*gap, rows*tile+(rows-1)*gap))
	for i, p := range ps {
		im, err := Render(p, tile, tile)
		if err != nil {
			return nil, err
		}
		g := im.Gray()
		x0, y0 := (i%cols)*(tile+gap), (i/cols)*(tile+gap)
		for y := range tile {
			copy(out.Pix[(y0+y)*out.Stride+x0:], g.Pix[y*g.Stride:y*g.Stride+tile])
		}
	}
	return out, nil
}
