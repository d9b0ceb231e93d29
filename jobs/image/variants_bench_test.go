package image_test

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"syscall"
	"testing"
	"time"

	stdimage "image"
	"image/color"
	"image/jpeg"
	"image/png"

	"github.com/moim/moim/jobs/image"
)

var photo12MP = sync.OnceValue(func() []byte {
	return photo(4000, 3000)
})

// photo encodes a deterministic w×h JPEG with smooth gradients, fine rings
// and grain, so resampling has both edges and texture to get right.
func photo(w, h int) []byte {
	img := stdimage.NewRGBA(stdimage.Rect(0, 0, w, h))
	rng := rand.New(rand.NewPCG(1, 2))
	cx, cy := float64(w)/2, float64(h)/2
	for y := range h {
		for x := range w {
			d := math.Hypot(float64(x)-cx, float64(y)-cy)
			ring := 60 * math.Sin(d/9)
			n := float64(rng.IntN(24)) - 12
			r := 255*float64(x)/float64(w) + ring + n
			g := 255*float64(y)/float64(h) - ring + n
			b := 128 + 80*math.Sin(float64(x)/40)*math.Cos(float64(y)/55) + n
			img.SetRGBA(x, y, color.RGBA{clamp(r), clamp(g), clamp(b), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func clamp(v float64) uint8 { return uint8(max(0, min(255, math.Round(v)))) }

// BenchmarkVariants12MP makes the three variants of a 4000×3000 JPEG, and
// beside it has vipsthumbnail make the same three from the same file, then
// compares each pair of outputs by SSIM.
func BenchmarkVariants12MP(b *testing.B) {
	src := photo12MP()
	var ours []image.Variant
	b.Run("go", func(b *testing.B) {
		ours = benchVariants(b, src)
	})
	b.Run("go-png-alpha", func(b *testing.B) {
		// The same photo with an alpha gradient: a PNG decodes to 4
		// bytes a pixel, and its variants are PNG.
		src := translucentPhoto()
		benchVariants(b, src)
	})
	b.Run("vips", func(b *testing.B) {
		vips, err := exec.LookPath("vipsthumbnail")
		if err != nil {
			b.Skip("vipsthumbnail not found (Debian: apt-get install libvips-tools); no comparison")
		}
		dir := b.TempDir()
		in := filepath.Join(dir, "src.jpg")
		if err := os.WriteFile(in, src, 0o600); err != nil {
			b.Fatal(err)
		}
		args := [][]string{
			{"--size", "384x", "-o", filepath.Join(dir, "w384.jpg[Q=85]")},
			{"--size", "758x", "-o", filepath.Join(dir, "w758.jpg[Q=85]")},
			{"--size", "380x380", "--smartcrop", "centre", "-o", filepath.Join(dir, "c380.jpg[Q=85]")},
		}
		var cpu time.Duration
		b.ResetTimer()
		for range b.N {
			for _, a := range args {
				cmd := exec.Command(vips, append([]string{in}, a...)...)
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("vipsthumbnail %v: %v\n%s", a, err, out)
				}
				cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(cpu)/float64(b.N)/1e6, "cpu-ms/op")
		if len(ours) == 0 {
			return
		}
		for _, v := range ours {
			theirs, err := os.ReadFile(filepath.Join(dir, v.Name+".jpg"))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(ssim(b, v.Bytes, theirs), "ssim-"+v.Name)
		}
	})
}

// benchVariants makes the variants of src b.N times, reporting the CPU time
// and the peak heap besides the wall time.
func benchVariants(b *testing.B, src []byte) []image.Variant {
	var vs []image.Variant
	peak := watchHeap()
	cpu := cpuTime()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		var err error
		vs, err = image.Variants(context.Background(), bytes.NewReader(src), image.Options{})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N)/1e6, "cpu-ms/op")
	b.ReportMetric(float64(peak())/(1<<20), "peak-heap-MB")
	return vs
}

// translucentPhoto is the 12 MP photo as a PNG whose alpha falls from 255 at
// the top to 55 at the bottom.
func translucentPhoto() []byte {
	img, err := jpeg.Decode(bytes.NewReader(photo12MP()))
	if err != nil {
		panic(err)
	}
	b := img.Bounds()
	nrgba := stdimage.NewNRGBA(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		a := uint8(255 - 200*y/b.Dy())
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			nrgba.SetNRGBA(x, y, color.NRGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), a})
		}
	}
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, nrgba); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// watchHeap samples the live heap every millisecond until the returned
// function is called, which gives the peak above the heap at the start.
func watchHeap() func() uint64 {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	base := sample[0].Value.Uint64()
	var peak uint64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		s := []metrics.Sample{{Name: sample[0].Name}}
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				metrics.Read(s)
				if v := s[0].Value.Uint64(); v > base && v-base > peak {
					peak = v - base
				}
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-stopped
		return peak
	}
}

// cpuTime is the process's user and system time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ssim is the mean structural similarity of two JPEGs' luma over 8×8
// windows moved 4 pixels at a time, on the area both cover.
func ssim(t testing.TB, a, b []byte) float64 {
	t.Helper()
	ga, gb := gray(t, a), gray(t, b)
	w := min(ga.Rect.Dx(), gb.Rect.Dx())
	h := min(ga.Rect.Dy(), gb.Rect.Dy())
	const c1, c2 = (0.01 * 255) * (0.01 * 255), (0.03 * 255) * (0.03 * 255)
	var sum float64
	var n int
	for y := 0; y+8 <= h; y += 4 {
		for x := 0; x+8 <= w; x += 4 {
			var ma, mb, va, vb, cov float64
			for dy := range 8 {
				for dx := range 8 {
					pa := float64(ga.GrayAt(x+dx, y+dy).Y)
					pb := float64(gb.GrayAt(x+dx, y+dy).Y)
					ma += pa
					mb += pb
					va += pa * pa
					vb += pb * pb
					cov += pa * pb
				}
			}
			ma /= 64
			mb /= 64
			va = va/64 - ma*ma
			vb = vb/64 - mb*mb
			cov = cov/64 - ma*mb
			sum += ((2*ma*mb + c1) * (2*cov + c2)) / ((ma*ma + mb*mb + c1) * (va + vb + c2))
			n++
		}
	}
	return sum / float64(n)
}

func gray(t testing.TB, b []byte) *stdimage.Gray {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	g := stdimage.NewGray(img.Bounds())
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			g.Set(x, y, img.At(x, y))
		}
	}
	return g
}
