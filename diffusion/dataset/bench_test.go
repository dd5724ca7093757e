package dataset

import (
	"fmt"
	"image"
	"image/color"
	"testing"
)

// BenchmarkDecodePreprocess measures decode + resize + centre crop of a
// 1024x1024 8-bit image to 512x512 [3,512,512] float32, on one goroutine.
//
//	go test -run '^$' -bench DecodePreprocess ./diffusion/dataset
func BenchmarkDecodePreprocess(b *testing.B) {
	gray := grayImage(1024, 1024, func(x, y int) uint8 { return uint8((x*x/7 + y*3 + (x ^ y)) % 256) })
	rgb := image.NewRGBA(image.Rect(0, 0, 1024, 1024))
	grayRGB := image.NewRGBA(image.Rect(0, 0, 1024, 1024)) // R = G = B, as many radiograph PNGs
	for y := range 1024 {
		for x := range 1024 {
			v := gray.Pix[y*1024+x]
			rgb.SetRGBA(x, y, color.RGBA{v, v / 2, 255 - v, 255})
			grayRGB.SetRGBA(x, y, color.RGBA{v, v, v, 255})
		}
	}
	files := []struct {
		name string
		data []byte
	}{
		{"png-gray", encodePNG(b, gray)},
		{"png-rgb", encodePNG(b, rgb)},
		{"png-gray-as-rgb", encodePNG(b, grayRGB)},
		{"jpeg-gray", encodeJPEG(b, gray)},
		{"jpeg-rgb", encodeJPEG(b, rgb)},
	}
	for _, f := range files {
		b.Run(f.name, func(b *testing.B) {
			b.SetBytes(int64(len(f.data)))
			for b.Loop() {
				if _, err := Decode(f.data, 512, false); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
	// The resize + crop alone, from decoded gray and RGB planes.
	for _, c := range []int{1, 3} {
		src := newFloatImage(1024, 1024, c)
		out := make([]float32, 3*512*512)
		b.Run(fmt.Sprintf("resize-only-%dch", c), func(b *testing.B) {
			for b.Loop() {
				preprocess(src, 512, false, out)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

// BenchmarkIterator measures the loader end to end (read, decode, resize,
// crop, caption) over a folder of 1024x1024 8-bit gray PNGs to 512, with
// the default number of workers (GOMAXPROCS, at most 8).
//
//	go test -run '^$' -bench Iterator ./diffusion/dataset
func BenchmarkIterator(b *testing.B) {
	dir := b.TempDir()
	for i := range 8 {
		m := grayImage(1024, 1024, func(x, y int) uint8 { return uint8((x*x/7 + y*(3+i) + (x ^ y)) % 256) })
		writeFile(b, dir, fmt.Sprintf("%d.png", i), encodePNG(b, m))
		writeFile(b, dir, fmt.Sprintf("%d.txt", i), []byte("no acute cardiopulmonary process"))
	}
	d, err := Open(dir, Options{Resolution: 512, Shuffle: true})
	if err != nil {
		b.Fatal(err)
	}
	it, err := d.Iter(Position{})
	if err != nil {
		b.Fatal(err)
	}
	defer it.Close()
	for b.Loop() {
		if _, err := it.Next(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}
